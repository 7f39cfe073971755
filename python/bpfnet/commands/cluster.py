"""cluster show [--json] [-f FILE | --etcd URL [--cluster NAME]]: the hosts in etcd
(FILE defaults to the agent's, /etc/bpfnet/bpfnet.toml), with the MAC routes each
publishes; cluster macs [--json] [--vni N] [--host H]: the MAC routes themselves."""
from __future__ import annotations

import os

from .. import validate as v
from ..cli import Output, add_json, arg, table
from ..errors import BpfnetError, ConfigError

DEFAULT_FILE = "/etc/bpfnet/bpfnet.toml"  # the agent's, as the unit runs it
COLUMNS = ["host", "vtep", "port", "bridge_vnis", "mesh_vnis", "lease_s", "ttl_s", "macs"]
MAC_COLUMNS = ["vni", "mac", "host", "vtep", "ips", "revision", "active"]


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


async def _read(ep: str, name: str) -> tuple[list[dict], list[dict]]:
    """(hosts, macs) from one listing of /bpfnet/NAME/ (one revision)."""
    import asyncio

    from ..cluster import RPC_TIMEOUT, client, decode, macs_prefix, parse_mac, prefix
    pre, mpre = prefix(name).encode(), macs_prefix(name).encode()
    c = client(ep)
    try:
        r = await asyncio.wait_for(c.get_prefix(f"/bpfnet/{name}/".encode()), RPC_TIMEOUT)
        rows, macs = [], []
        for kv in r:
            if kv.key.startswith(mpre):
                m = parse_mac(kv.key[len(mpre):], kv.value)
                if m is not None:
                    macs.append({"vni": m[1], "mac": m[2], "host": m[0], "ips": list(m[3]),
                                 "revision": kv.mod_revision})
                continue
            if not kv.key.startswith(pre):
                continue
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
        return rows, macs
    finally:
        try:
            await asyncio.wait_for(c.close(), RPC_TIMEOUT)
        except Exception:  # noqa: BLE001 -- closing a broken channel
            pass


def _fetch(args) -> tuple[str, list[dict], list[dict]]:
    """(cluster name, hosts, macs) from the first endpoint that answers."""
    import asyncio
    eps, name = _endpoints(args)
    errors = []
    for ep in eps:
        try:
            return (name, *asyncio.run(_read(ep, name)))
        except (asyncio.TimeoutError, Exception) as e:  # noqa: BLE001 -- next endpoint
            if isinstance(e, ConfigError):
                raise
            errors.append(f"{ep}: {str(e).strip() or type(e).__name__}")
    raise BpfnetError(f"etcd unreachable ({'; '.join(errors)})")


def _show(args, ctx):
    name, rows, macs = _fetch(args)
    for r in rows:
        r["macs"] = sum(1 for m in macs if m["host"] == r["host"])
    rows.sort(key=lambda r: r["host"])
    text = table([{k: r[k] for k in COLUMNS} for r in rows], COLUMNS) if rows \
        else f"(no hosts in cluster {name})"
    return Output(rows, text)


def _macs(args, ctx):
    """Every published MAC route; ``active``: the one hosts install (the
    live host carrying the VNI that wrote last)."""
    from ..cluster import Mac, winners
    name, rows, macs = _fetch(args)
    hosts = {r["host"]: r for r in rows if r["valid"]}
    win = winners({(m["host"], m["vni"], m["mac"]): Mac(tuple(m["ips"]), m["revision"])
                   for m in macs}, hosts)
    out = []
    for m in macs:
        if args.vni is not None and m["vni"] != args.vni or args.host and m["host"] != args.host:
            continue
        w = win.get((m["vni"], m["mac"]))
        out.append({"vni": m["vni"], "mac": m["mac"], "host": m["host"],
                    "vtep": hosts.get(m["host"], {}).get("vtep"), "ips": m["ips"],
                    "revision": m["revision"], "active": w is not None and w[0] == m["host"]})
    out.sort(key=lambda r: (r["vni"], r["mac"], -r["revision"]))
    text = table([{**r, "active": "yes" if r["active"] else "no"} for r in out], MAC_COLUMNS) \
        if out else f"(no MAC routes in cluster {name})"
    return Output(out, text)


def register(cli):
    g = cli.group("cluster", help="cluster membership in etcd")
    sp = g.command("show", _show, lock=False,
                   help="the hosts registered in etcd: VTEP, port, VNIs, lease time left")
    _where(sp)
    sp = g.command("macs", _macs, lock=False,
                   help="the MAC routes hosts publish in etcd: VNI, MAC, host, VTEP, IPs, revision")
    _where(sp)
    sp.add_argument("--vni", type=arg(v.vni), metavar="VNI", help="only this VNI")
    sp.add_argument("--host", metavar="HOST", help="only what this host publishes")


def _where(sp) -> None:
    sp.add_argument("-f", "--file", metavar="FILE", help="take etcd and the cluster name from "
                    f"FILE's [cluster] section (default {DEFAULT_FILE})")
    sp.add_argument("--etcd", action="append", metavar="URL",
                    help="etcd endpoint http://HOST:PORT (repeat or comma-separate)")
    sp.add_argument("--cluster", default="default", metavar="NAME",
                    help="cluster name: keys under /bpfnet/NAME/ (default: default)")
    add_json(sp)
