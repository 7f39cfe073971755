"""One control-plane class per network function, on one base.

    from bpfnet.functions import get
    from bpfnet.functions.pins import PinDir
    br = get("bridge")(PinDir("/sys/fs/bpf/bpfnet", "host"))
    br.load(ageing=60)          # first load or upgrade; options as declared in Bridge.options

Modules, each importing only those below it:

    bridge, mesh -> overlay -> base -> options, attach, mapset, migrate, pins -> bpffs, objects, undo
    gateway, monitor -------> base

``base`` holds the lifecycle (load, upgrade, recover, unload); ``options`` the
load-option declaration; ``attach`` tc/tcx hooks and clsact ownership;
``mapset`` maps by name, counters and fill; ``migrate`` map migration on
load; ``pins`` PinDir and its lock; ``bpffs`` the bpffs checks and mount;
``objects`` where the BPF objects are; ``undo`` compensating actions.
"""
import importlib

FUNCTIONS = ("bridge", "mesh", "gateway", "monitor")


def get(name: str):
    """The Function class for ``name``."""
    mod = importlib.import_module(f"bpfnet.functions.{name}")
    return mod.FUNCTION


def available() -> list[str]:
    """The functions whose control plane is present in this build."""
    import importlib.util
    return [f for f in FUNCTIONS if importlib.util.find_spec(f"bpfnet.functions.{f}")]
