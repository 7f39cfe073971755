"""One control-plane class per network function.

    from bpfnet.functions import get
    br = get("bridge")(PinDir.for_ns("/sys/fs/bpf/bpfnet", "host", "bridge"))
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
