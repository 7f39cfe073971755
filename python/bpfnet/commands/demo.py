"""demo {bridge,mesh,dhcp,gateway,monitor} [--keep] [--prefix NAME] [--listen HOST:PORT]."""
from __future__ import annotations

import importlib
import os
import re
import sys

from .. import signals
from .. import validate as v
from ..cli import arg
from ..demos import DEMOS
from ..errors import ConfigError, KernelError, NotFound
from ..sim import NETNS_DIR, PIN_BASE

PREFIX_RE = re.compile(r"[A-Za-z0-9_]{1,24}")


def prefix(text: str) -> str:
    """``--prefix``: the demo's namespaces are PREFIX-*, its pins
    /sys/fs/bpf/bpfnet-PREFIX."""
    if not PREFIX_RE.fullmatch(text):
        raise ConfigError(f"invalid prefix {text!r}: 1 to 24 letters, digits or _")
    return text


def _check_free(pfx: str) -> None:
    """A demo removes every namespace of its prefix when it ends: refuse a
    prefix that is in use, so that it only ever removes its own."""
    try:
        taken = sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(pfx + "-"))
    except FileNotFoundError:
        taken = []
    if taken:
        raise ConfigError(f"--prefix {pfx}: namespace {taken[0]} exists already")
    if os.path.exists(os.path.join(PIN_BASE, f"bpfnet-{pfx}")):
        raise ConfigError(f"--prefix {pfx}: {PIN_BASE}/bpfnet-{pfx} exists already")


def _demo(args, ctx):
    if args.listen and args.name != "monitor":
        raise ConfigError("--listen: only demo monitor serves a page")
    if args.listen and not args.keep:
        raise ConfigError("--listen goes with --keep (the page is served while the demo is kept)")
    try:
        mod = importlib.import_module(f"bpfnet.demos.{args.name}")
    except ModuleNotFoundError:
        raise NotFound(f"demo {args.name} is not available in this build") from None
    kw = {}
    if args.prefix:
        _check_free(args.prefix)
        kw["prefix"] = args.prefix
    if args.listen:
        kw["listen"] = args.listen

    def say(line=""):
        print(line, flush=True)
    # SIGINT, SIGTERM and SIGHUP stop it the same way: the demo's cleanup
    # removes its namespaces, processes and pins (signals.py)
    with signals.stopping() as stop:
        try:
            code = mod.run(keep=args.keep, say=say, **kw)
        except Exception:
            if stop.stopped:  # e.g. an in-process bpfnetctl cut short
                raise signals.Interrupted(stop.signum, "its namespaces and pins are removed") from None
            raise
        except signals.Stopped as e:
            raise signals.Interrupted(e.signum, "its namespaces and pins are removed") from None
    if code:
        raise KernelError(f"demo {args.name} failed")
    sys.stdout.flush()


def register(cli):
    sp = cli.command("demo", _demo, help="build a multi-host simulation in namespaces and show it working",
                     lock=False)
    sp.add_argument("name", choices=DEMOS, metavar="{" + ",".join(DEMOS) + "}")
    sp.add_argument("--keep", action="store_true",
                    help="keep the simulation up until Ctrl-C, SIGTERM or SIGHUP, then remove it")
    sp.add_argument("--prefix", type=arg(prefix), metavar="NAME",
                    help="name the namespaces NAME-* (default: bn<random>)")
    sp.add_argument("--listen", type=arg(v.listen), metavar="HOST:PORT",
                    help="demo monitor --keep: where the live page listens (default 127.0.0.1:8080)")
