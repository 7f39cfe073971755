"""cluster show [--json] [-f FILE | --etcd URL [--cluster NAME]]: the hosts in etcd
(FILE defaults to the agent's, /etc/bpfnet/bpfnet.toml)."""
from __future__ import annotations

import os

from ..cli import Output, add_json, table
from ..errors import BpfnetError, ConfigError

DEFAULT_FILE = "/etc/bpfnet/bpfnet.toml"  # the agent's, as the unit runs it
COLUMNS = ["host", "vtep", "port", "bridge_vnis", "mesh_vnis", "lease_s", "ttl_s"]


def _endpoints(args) -> tuple[list[str], str]:
    from ..cluster import check_name, parse_endpoint
    if args.file and args.etcd:
        raise ConfigError("give -f FILE or --etcd URL, not both")
    if not args.file and not args.etcd and os.path.exists(DEFAULT_FILE):
        args.file = DEFAULT_FILE
    if args.file:
        from ..config import load
        d = load(args.file)
        if d.cluster is None:
            raise ConfigError(f"{args.file}: no [cluster] section")
        return d.cluster.etcd, d.cluster.name
    if not args.etcd:
        raise ConfigError(f"which etcd? give -f FILE (its [cluster] section; {DEFAULT_FILE} "
                          "by default, absent here) or --etcd URL")
    eps = [e for arg in args.etcd for e in arg.split(",") if e]
    for e in eps:
        parse_endpoint(e)
    return eps, check_name("cluster name", args.cluster)


async def _read(ep: str, name: str) -> list[dict]:
    import asyncio

    from ..cluster import RPC_TIMEOUT, client, decode, prefix
    pre = prefix(name).encode()
    c = client(ep)
    try:
        r = await asyncio.wait_for(c.get_prefix(pre), RPC_TIMEOUT)
        rows = []
        for kv in r:
            rec = decode(kv.value) or {}
            left = ttl = None
            if kv.lease:
                info = await asyncio.wait_for(c.get_lease_info(kv.lease, keys=False), RPC_TIMEOUT)
                left, ttl = info.TTL, info.grantedTTL
            rows.append({"host": kv.key[len(pre):].decode(errors="replace"),
                         "vtep": rec.get("vtep"), "port": rec.get("port"),
                         "bridge_vnis": rec.get("bridge_vnis", []),
                         "mesh_vnis": rec.get("mesh_vnis", []),
                         "lease_s": left, "ttl_s": ttl, "valid": bool(rec)})
        return rows
    finally:
        try:
            await asyncio.wait_for(c.close(), RPC_TIMEOUT)
        except Exception:  # noqa: BLE001 -- closing a broken channel
            pass


def _show(args, ctx):
    import asyncio
    eps, name = _endpoints(args)
    errors = []
    for ep in eps:
        try:
            rows = asyncio.run(_read(ep, name))
            break
        except (asyncio.TimeoutError, Exception) as e:  # noqa: BLE001 -- next endpoint
            if isinstance(e, ConfigError):
                raise
            errors.append(f"{ep}: {str(e).strip() or type(e).__name__}")
    else:
        raise BpfnetError(f"etcd unreachable ({'; '.join(errors)})")
    rows.sort(key=lambda r: r["host"])
    text = table([{k: r[k] for k in COLUMNS} for r in rows], COLUMNS) if rows \
        else f"(no hosts in cluster {name})"
    return Output(rows, text)


def register(cli):
    g = cli.group("cluster", help="cluster membership in etcd")
    sp = g.command("show", _show, lock=False,
                   help="the hosts registered in etcd: VTEP, port, VNIs, lease time left")
    sp.add_argument("-f", "--file", metavar="FILE", help="take etcd and the cluster name from "
                    f"FILE's [cluster] section (default {DEFAULT_FILE})")
    sp.add_argument("--etcd", action="append", metavar="URL",
                    help="etcd endpoint http://HOST:PORT (repeat or comma-separate)")
    sp.add_argument("--cluster", default="default", metavar="NAME",
                    help="cluster name: keys under /bpfnet/NAME/ (default: default)")
    add_json(sp)
