"""mesh commands: load mesh, peer add/del/show."""
from __future__ import annotations

from ..cli import Output, add_json, arg, table
from .. import validate as v

PEER_COLUMNS = ["remote", "vni", "bridge", "port", "rx_pkts", "rx_bytes", "tx_pkts", "tx_bytes"]


def _peer_add(args, ctx):
    r = ctx.fn("mesh").peer_add(args.remote, args.vni, args.bridge)
    return Output(r, f"peer {r['remote']} vni {r['vni']}: port {r['port']} in bridge {r['bridge']}")


def _peer_del(args, ctx):
    ctx.fn("mesh").peer_del(args.remote, args.vni)
    return f"peer {args.remote} vni {args.vni}: deleted"


def _peer_show(args, ctx):
    rows = ctx.fn("mesh").peer_show()
    return Output(rows, table(rows, PEER_COLUMNS))


def register(cli):
    cli.load_command("mesh", help="distributed bridge over VXLAN without multicast: "
                     "one port per (VNI, peer)", where=lambda r: r["device"])
    g = cli.group("peer", help="mesh peers: remote VTEPs per VNI")
    sp = g.command("add", _peer_add, help="add a peer to a VNI: a port for it joins BR")
    sp.add_argument("remote", type=arg(v.unicast_ip), metavar="REMOTE_IP")
    sp.add_argument("--vni", type=arg(v.vni), required=True, metavar="VNI")
    sp.add_argument("--bridge", type=arg(v.ifname), required=True, metavar="BR")
    sp = g.command("del", _peer_del, help="remove a peer from a VNI, with its port")
    sp.add_argument("remote", type=arg(v.unicast_ip), metavar="REMOTE_IP")
    sp.add_argument("--vni", type=arg(v.vni), required=True, metavar="VNI")
    add_json(g.command("show", _peer_show, help="list peers with their ports and counters"))
