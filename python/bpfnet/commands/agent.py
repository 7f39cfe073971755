"""Desired state: apply -f FILE, config show, agent -f FILE."""
from __future__ import annotations

from .. import validate as v
from ..cli import Output, add_json, arg


def _apply(args, ctx):
    from .. import config
    from ..apply import check, execute, plan, read_state
    desired = config.load(args.file)
    actions = plan(desired, read_state(ctx.fn, desired.functions))
    check(actions, ctx.fn, desired)
    if not args.dry_run and actions:
        execute(actions, ctx.fn, desired.file)
    lines = [str(a) for a in actions]
    n = len(actions)
    if not n:
        lines.append(f"apply: {desired.file}: nothing to change")
    elif args.dry_run:
        lines.append(f"apply: {desired.file}: {n} change(s) planned; --dry-run: nothing changed")
    else:
        lines.append(f"apply: {desired.file}: {n} change(s) applied")
    data = {"file": args.file, "namespace": ctx.ns, "dry_run": bool(args.dry_run),
            "changes": n, "actions": [a.as_json() for a in actions]}
    return Output(data, "\n".join(lines))


def _config_show(args, ctx):
    from .. import config
    from ..apply import current_spec, read_state
    from ..functions import available
    d = config.load(args.file) if args.file else None  # a bad file: exit 2 before anything
    loaded = [f for f in available() if ctx.fn(f).is_loaded()]
    spec = current_spec(read_state(ctx.fn, loaded))
    host, cluster = (d.host, d.cluster) if d is not None else (None, None)
    data = config.to_data(spec, host, cluster)
    header = f"bpfnetctl config show: namespace {ctx.ns}" + ("" if spec else "; no function loaded")
    if d is not None:
        header += f"\n[host] and [cluster] from {args.file}" if cluster else \
            f"\n{args.file} has no [cluster] section"
    return Output(data, config.dump(spec, header, host, cluster).rstrip("\n"))


def _agent(args, ctx):
    from ..agent import install_unit, run
    if args.install_unit:
        return install_unit(args.dest, args.file)
    return run(args, ctx)


def register(cli):
    sp = cli.command("apply", _apply, lock="create",
                     help="converge this host to FILE (load, options, VNIs, peers, clients); prints the plan")
    sp.add_argument("-f", "--file", required=True, metavar="FILE",
                    help="the desired state (TOML; - reads standard input)")
    sp.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    add_json(sp)

    g = cli.group("config", help="the desired-state file")
    sp = g.command("show", _config_show,
                   help="what is loaded here, in the file's format (apply of it changes nothing)")
    sp.add_argument("-f", "--file", metavar="FILE",
                    help="also print FILE's [host] and [cluster] (etcd, name, ttl, routes): "
                    "etcd's side is not in the kernel")
    add_json(sp)

    sp = cli.command("agent", _agent, lock=False,
                     help="apply FILE, keep it applied, SIGHUP re-reads it; membership from etcd")
    sp.add_argument("-f", "--file", metavar="FILE", default=None,
                    help="the desired state (TOML); the unit uses /etc/bpfnet/bpfnet.toml")
    sp.add_argument("--metrics", type=arg(_listen), metavar="HOST:PORT", default=None,
                    help="serve Prometheus /metrics there (e.g. 127.0.0.1:9431; default: off)")
    sp.add_argument("--interval", type=arg(v.seconds), metavar="SECONDS", default=5,
                    help="reconcile every SECONDS (default 5)")
    sp.add_argument("--install-unit", action="store_true",
                    help="write bpfnet-agent.service (to --dest) and exit")
    sp.add_argument("--dest", metavar="DIR", default="/etc/systemd/system",
                    help="with --install-unit: where (default /etc/systemd/system)")


def _listen(text):
    from .monitor import Listen
    return Listen(text)

