"""Commands every function shares: unload, status, doctor."""
from __future__ import annotations

from ..cli import Output, add_json, table
from ..errors import NotFound
from ..functions import FUNCTIONS, available


def _unload(args, ctx):
    fn = ctx.fn(args.function) if args.function in available() else None
    if fn is None or not (fn.is_loaded() or fn.is_partial()):
        raise NotFound(f"{args.function} is not loaded in namespace {ctx.ns}")
    ctx.fn(args.function).unload()
    return f"{args.function}: unloaded"


def _status(args, ctx):
    loaded = [f for f in available() if ctx.fn(f).is_loaded()]
    data = {"namespace": ctx.ns, "pin_dir": ctx.pins.path,
            "functions": {f: ctx.fn(f).status() for f in loaded}}
    lines = [f"namespace {ctx.ns}  pins {ctx.pins.path}"]
    if not loaded:
        lines.append("no function loaded")
    for f, st in data["functions"].items():
        lines.append("")
        head = {k: v for k, v in st.items() if not isinstance(v, (list, dict))}
        lines.append(f"{f}: " + "  ".join(f"{k} {'-' if v is None else v}"
                                          for k, v in head.items() if k != "function"))
        if st.get("attach"):
            lines.append(table(st["attach"]))
        if st.get("maps"):
            lines.append(table([{"map": m, **v} for m, v in st["maps"].items()]))
        if st.get("counters"):
            nz = {k: v for k, v in st["counters"].items() if v}
            lines.append("counters: " + ("  ".join(f"{k}={v}" for k, v in nz.items()) or "all zero"))
        for k, v in st.items():
            if isinstance(v, list) and k != "attach" and v:
                lines.append(table(v))
    return Output(data, "\n".join(lines))


def _doctor(args, ctx):
    from ..doctor import run
    return run(ctx)


def register(cli):
    sp = cli.command("unload", _unload, help="remove every filter, device and pin a function made")
    sp.add_argument("function", choices=FUNCTIONS, metavar="FUNCTION")
    add_json(cli.command("status", _status, help="what is loaded here: attach points, map fill, counters"))
    add_json(cli.command("doctor", _doctor, lock=False,
                         help="find what keeps traffic from crossing, and say the fix (exit 1 if any)"))
