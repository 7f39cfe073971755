"""bridge commands: load bridge, vni add/del/show, fdb show/flush."""
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


def _fdb_show(args, ctx):
    rows = ctx.fn("bridge").fdb(args.vni)
    return Output(rows, table(rows, ["mac", "vni", "port", "remote", "rx_pkts", "tx_pkts", "age_s"]))


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

    g = cli.group("fdb", help="the bridge's learned forwarding table")
    sp = g.command("show", _fdb_show, help="learned entries")
    add_json(sp)
    sp.add_argument("--vni", type=arg(v.vni))
    sp = g.command("flush", _fdb_flush, help="forget learned entries")
    sp.add_argument("--vni", type=arg(v.vni))
