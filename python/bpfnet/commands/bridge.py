"""bridge commands: load bridge, vni add/del/show, fdb add/del/show/flush,
neigh add/del/show."""
from __future__ import annotations

from ..cli import Output, add_json, arg, table
from .. import validate as v


def _vni_add(args, ctx):
    r = ctx.fn("bridge").vni_add(args.vni, args.bridge, allow=args.allow or (), group=args.group)
    return Output(r, f"vni {r['vni']}: port {r['port']} in bridge {r['bridge']}")


def _vni_del(args, ctx):
    ctx.fn("bridge").vni_del(args.vni)
    return f"vni {args.vni}: deleted"


def _vni_show(args, ctx):
    return Output(rows := ctx.fn("bridge").vni_show(), table(rows))


def _flags(row: dict, names) -> str:
    """The FLAGS column: the row's true flags among ``names``, or -."""
    return ",".join(n for n in names if row.get(n)) or "-"


def _fdb_show(args, ctx):
    rows = ctx.fn("bridge").fdb(args.vni)
    text = [{**r, "flags": _flags(r, ("static", "route"))} for r in rows]
    return Output(rows, table(text, ["mac", "vni", "port", "remote", "rx_pkts", "tx_pkts",
                                     "age_s", "flags"]))


def _fdb_add(args, ctx):
    r = ctx.fn("bridge").fdb_add(args.mac, args.vni, args.remote, ips=args.ip or ())
    ips = f", answers ARP/ND for {','.join(r['ip'])}" if r["ip"] else ""
    return Output(r, f"fdb: {r['mac']} vni {r['vni']} -> {r['remote']} static{ips}")


def _fdb_del(args, ctx):
    r = ctx.fn("bridge").fdb_del(args.mac, args.vni)
    return Output(r, f"fdb: {r['mac']} vni {r['vni']} deleted")


def _neigh_add(args, ctx):
    r = ctx.fn("bridge").neigh_add(args.ip, args.vni, args.mac)
    return Output(r, f"neigh: {r['ip']} vni {r['vni']} -> {r['mac']} static")


def _neigh_del(args, ctx):
    ctx.fn("bridge").neigh_del(args.ip, args.vni)
    return f"neigh: {args.ip} vni {args.vni} deleted"


def _neigh_show(args, ctx):
    rows = ctx.fn("bridge").neigh_show(args.vni)
    text = [{**r, "flags": _flags(r, ("static", "route", "local"))} for r in rows]
    return Output(rows, table(text, ["ip", "vni", "mac", "flags", "replies", "age_s"]))


def _fdb_flush(args, ctx):
    n = ctx.fn("bridge").fdb_flush(args.vni)
    return f"fdb: {n} entries flushed"


def register(cli):
    cli.load_command("bridge", help="distributed bridge over VXLAN with multicast flooding",
                     where=lambda r: r["device"])
    g = cli.group("vni", help="bridge VNIs")
    sp = g.command("add", _vni_add, help="add a VNI: a port for it joins BR")
    sp.add_argument("vni", type=arg(v.vni), metavar="VNI")
    sp.add_argument("--bridge", type=arg(v.ifname), required=True, metavar="BR")
    sp.add_argument("--allow", type=arg(v.ip_list), metavar="IP[,IP...]",
                    help="only these remote VTEPs may send into the VNI")
    sp.add_argument("--group", type=arg(v.mcast_group), metavar="IP",
                    help="this VNI's flood group (default: the load's)")
    sp = g.command("del", _vni_del, help="delete a VNI, its port and its FDB entries")
    sp.add_argument("vni", type=arg(v.vni), metavar="VNI")
    add_json(g.command("show", _vni_show, help="list VNIs"))

    g = cli.group("fdb", help="the bridge's forwarding table")
    sp = g.command("show", _fdb_show, help="learned, static and route entries")
    add_json(sp)
    sp.add_argument("--vni", type=arg(v.vni))
    sp = g.command("flush", _fdb_flush, help="forget learned entries (static ones stay)")
    sp.add_argument("--vni", type=arg(v.vni))
    sp = g.command("add", _fdb_add, help="a static entry: MAC in VNI is behind remote VTEP IP")
    sp.add_argument("mac", type=arg(v.mac), metavar="MAC")
    sp.add_argument("--vni", type=arg(v.vni), required=True)
    sp.add_argument("--remote", type=arg(v.unicast_ip), required=True, metavar="IP")
    sp.add_argument("--ip", type=arg(v.ip_list), metavar="IP[,IP...]",
                    help="tenant addresses of MAC: their ARP/ND requests are answered locally")
    sp = g.command("del", _fdb_del, help="delete an entry (static or learned) and its bindings")
    sp.add_argument("mac", type=arg(v.mac), metavar="MAC")
    sp.add_argument("--vni", type=arg(v.vni), required=True)

    g = cli.group("neigh", help="tenant IP to MAC bindings for ARP and ND suppression")
    sp = g.command("add", _neigh_add, help="a static binding: answer ARP/ND for IP with MAC")
    sp.add_argument("ip", type=arg(v.unicast_ip), metavar="IP")
    sp.add_argument("--vni", type=arg(v.vni), required=True)
    sp.add_argument("--mac", type=arg(v.mac), required=True, metavar="MAC")
    sp = g.command("del", _neigh_del, help="delete a binding")
    sp.add_argument("ip", type=arg(v.unicast_ip), metavar="IP")
    sp.add_argument("--vni", type=arg(v.vni), required=True)
    sp = g.command("show", _neigh_show, help="static, route, local and learned bindings")
    add_json(sp)
    sp.add_argument("--vni", type=arg(v.vni))
