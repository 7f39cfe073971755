"""demo {bridge,mesh,dhcp,gateway,monitor} [--keep]."""
from __future__ import annotations

import importlib
import sys

from ..demos import DEMOS
from ..errors import NotFound


def _demo(args, ctx):
    try:
        mod = importlib.import_module(f"bpfnet.demos.{args.name}")
    except ModuleNotFoundError:
        raise NotFound(f"demo {args.name} is not available in this build") from None

    def say(line=""):
        print(line, flush=True)
    code = mod.run(keep=args.keep, say=say)
    if code:
        from ..errors import KernelError
        raise KernelError(f"demo {args.name} failed")
    sys.stdout.flush()


def register(cli):
    sp = cli.command("demo", _demo, help="build a multi-host simulation in namespaces and show it working",
                     lock=False)
    sp.add_argument("name", choices=DEMOS, metavar="{" + ",".join(DEMOS) + "}")
    sp.add_argument("--keep", action="store_true", help="leave the simulation up")
