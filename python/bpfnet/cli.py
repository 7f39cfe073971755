"""bpfnetctl: the command line (see README and CLI.md).

    bpfnetctl [--netns NAME] [--pin-root DIR] [-v] COMMAND ...

Exit status: 0 success, 2 bad usage or input, 1 the kernel refused. Errors
are one line on stderr, ``bpfnetctl: error: ...``; ``-v`` adds the traceback
and libbpf's last log lines.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import sys
import traceback

from . import __version__
from .errors import BpfnetError, ConfigError
from .functions.bpffs import check_bpffs
from .functions.pins import DEFAULT_PIN_ROOT, PinDir

PROG = "bpfnetctl"
# modules that add commands: each has register(cli) (see commands/)
COMMAND_MODULES = ("core", "bridge", "mesh", "gateway", "monitor", "cluster", "demo", "agent")
# commands that do not read --pin-root (doctor reports a bad one itself)
NO_PIN_ROOT = ("demo", "doctor")


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def arg(fn):
    """Wraps a validate.* function as an argparse type with its message."""
    def wrapped(text):
        try:
            return fn(text)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    wrapped.__name__ = fn.__name__
    return wrapped


class Ctx:
    """What a command handler gets besides its arguments."""

    def __init__(self, args):
        self.args = args
        self.ns = args.netns or "host"
        self.pins = PinDir(args.pin_root, self.ns)
        self._fns = {}

    def fn(self, name: str):
        if name not in self._fns:
            from .functions import get
            self._fns[name] = get(name)(self.pins)
        return self._fns[name]

    def close(self):
        for f in self._fns.values():
            f.close()


class Cli:
    """The parser and its sub-commands; command modules add to it."""

    def __init__(self):
        self.parser = Parser(prog=PROG, description="BPF network functions: bridge, mesh, gateway, monitor")
        p = self.parser
        p.add_argument("--netns", metavar="NAME",
                       help="act in network namespace /var/run/netns/NAME (pins stay in the host's bpffs)")
        p.add_argument("--pin-root", metavar="DIR",
                       default=os.environ.get("BPFNET_PIN_ROOT", DEFAULT_PIN_ROOT),
                       help=f"bpffs directory for pins (default {DEFAULT_PIN_ROOT}, env BPFNET_PIN_ROOT)")
        p.add_argument("-v", "--verbose", action="store_true", help="tracebacks and libbpf log on errors")
        p.add_argument("--version", action="version", version=f"{PROG} {__version__}",
                       help="print the version and exit")
        self.sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
        self.sub.required = True
        self.load = self.sub.add_parser("load", help="load a function (idempotent: a second load upgrades)")
        self.load_sub = self.load.add_subparsers(dest="function", metavar="FUNCTION", parser_class=Parser)
        self.load_sub.required = True
        for m in COMMAND_MODULES:
            try:
                mod = importlib.import_module(f"bpfnet.commands.{m}")
            except ModuleNotFoundError as e:
                if e.name != f"bpfnet.commands.{m}":
                    raise
                continue
            mod.register(self)

    def command(self, name, handler, help=None, lock=True, parent=None):
        """Adds a sub-command; ``handler(args, ctx)`` returns what to print."""
        sp = (parent or self.sub).add_parser(name, help=help)
        sp.set_defaults(handler=handler, lock=lock, opname=name)
        return sp

    def load_command(self, name, help, where):
        """``load NAME``: its arguments made from the function's option
        declaration (functions/options.py); ``where(result)`` says what it
        was loaded on ("vxlan0", "trunk eth1")."""
        from .functions import get
        sp = self.command(name, _load, help=help, parent=self.load_sub)
        sp.set_defaults(opname=f"load {name}", load_function=name, load_where=where)
        for o in get(name).options:
            kw = {"choices": o.choices} if o.choices else {}
            sp.add_argument(o.flag, dest=f"opt_{o.name}", type=arg(o.parse), metavar=o.metavar,
                            help=o.help, **kw)
        return sp

    def group(self, name, help=None):
        """A command with sub-commands of its own (``vni add``)."""
        sp = self.sub.add_parser(name, help=help)
        sub = sp.add_subparsers(dest=f"{name}_cmd", metavar="COMMAND", parser_class=Parser)
        sub.required = True
        return _Group(self, name, sub)


class _Group:
    def __init__(self, cli, name, sub):
        self.cli, self.name, self.sub = cli, name, sub

    def command(self, name, handler, help=None, lock=True):
        sp = self.cli.command(name, handler, help=help, lock=lock, parent=self.sub)
        sp.set_defaults(opname=f"{self.name} {name}")
        return sp


def add_json(sp):
    sp.add_argument("--json", action="store_true", help="machine-readable output (stable keys)")


def _load(args, ctx):
    """Every ``load FUNCTION``: a first load, or a second that applies or
    refuses each option given, and says what changed."""
    from .functions.options import describe_changes
    fn = ctx.fn(args.load_function)
    r = fn.load(**{o.name: getattr(args, f"opt_{o.name}") for o in fn.options})
    text = f"{fn.name}: {'upgraded' if r['upgraded'] else 'loaded'} on {args.load_where(r)}"
    if r["upgraded"]:
        text += f"; {describe_changes(r['changed'])}"
    return Output(r, text)


# --- output ------------------------------------------------------------------

def table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "(none)"
    if columns is None:  # every key any row has, in first-seen order
        columns = list(dict.fromkeys(k for r in rows for k in r))

    def cell(v):
        if isinstance(v, list):
            return ",".join(map(str, v)) or "-"
        return "-" if v is None else str(v)
    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def to_json(data) -> str:
    """Indented JSON; a long list compact, on one line (an indent makes
    CPython use its pure-Python encoder, several times slower on 100k FDB
    rows). The keys are the contract, not the layout."""
    if isinstance(data, list) and len(data) > 1000:
        return json.dumps(data, separators=(",", ":"))
    return json.dumps(data, indent=2)


def emit(result, as_json: bool) -> None:
    if result is None:
        return
    if as_json:
        if hasattr(result, "data"):
            result = result.data
        print(to_json(result))
    elif isinstance(result, str):
        print(result)
    elif hasattr(result, "text"):
        print(result.text)
    elif isinstance(result, list):
        print(table(result))
    else:
        print(json.dumps(result, indent=2))


class Output:
    """A result with a JSON form and a human form."""

    def __init__(self, data, text: str):
        self.data, self.text = data, text


# --- errors ------------------------------------------------------------------

def _describe(exc) -> tuple[str, int]:
    from pyroute2.netlink.exceptions import NetlinkError

    from .libbpf import BpfError
    if isinstance(exc, BpfnetError):
        return str(exc), exc.exit_code
    if isinstance(exc, BpfError):
        return str(exc), 1
    if isinstance(exc, NetlinkError):
        return f"netlink: {os.strerror(exc.code)}", 1
    if isinstance(exc, PermissionError):
        return f"{exc.strerror}: {exc.filename or ''} (run as root)".strip(), 1
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), 1
    return f"{type(exc).__name__}: {exc}", 1


def _fail(msg: str, code: int) -> int:
    print(f"{PROG}: error: {msg}", file=sys.stderr)
    return code


def main(argv=None) -> int:
    cli = Cli()
    try:
        args = cli.parser.parse_args(argv)
    except UsageError as e:
        return _fail(str(e), 2)
    except SystemExit as e:  # --help
        return e.code or 0
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.ERROR,
                        format=f"{PROG}: %(name)s: %(message)s")
    logging.getLogger("pyroute2").setLevel(logging.ERROR if not args.verbose else logging.INFO)
    if args.verbose:
        logging.getLogger("bpfnet.libbpf").setLevel(logging.INFO)
    else:
        logging.getLogger("bpfnet.libbpf").setLevel(logging.CRITICAL)
    op = getattr(args, "opname", args.command)
    saved_ns = None
    ctx = None
    try:
        if os.geteuid() != 0:
            raise BpfnetError("bpfnetctl needs root (CAP_BPF and CAP_NET_ADMIN)")
        if args.command not in NO_PIN_ROOT:
            check_bpffs(args.pin_root)  # read-only commands too: off bpffs nothing is "not loaded"
        if args.netns:
            from .netlink import enter_netns
            saved_ns = os.open("/proc/self/ns/net", os.O_RDONLY)
            enter_netns(args.netns)
        ctx = Ctx(args)
        if args.lock:
            with ctx.pins.locked(create=args.lock == "create" or args.command == "load"):
                result = args.handler(args, ctx)
        else:
            result = args.handler(args, ctx)
        emit(result, getattr(args, "json", False))
        return 0
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 -- the one place errors become exit codes
        msg, code = _describe(exc)
        if args.verbose:
            traceback.print_exc()
            from .libbpf import log_tail
            for line in getattr(exc, "log", None) or log_tail():
                print(f"libbpf: {line}", file=sys.stderr)
        return _fail(f"{op}: {msg}", code)
    finally:
        if ctx is not None:
            ctx.close()
            with contextlib.suppress(OSError):
                ctx.pins.remove_if_empty()  # a command that made nothing leaves no dir
        if saved_ns is not None:
            from pyroute2 import netns as _netns
            _netns.setns(saved_ns)
            os.close(saved_ns)


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()

