"""gateway commands: load gateway, client add/del/show."""
from __future__ import annotations

from ..cli import Output, add_json, arg, table
from .. import validate as v

SHOW_COLUMNS = ["mac", "worker", "vlan", "proto", "pcp", "rx_pkts", "rx_bytes",
                "tx_pkts", "tx_bytes", "age_s"]


def _client_add(args, ctx):
    r = ctx.fn("gateway").client_add(args.mac, args.worker)
    return Output(r, f"client {r['mac']}: frames go to {r['worker']}, VLAN popped")


def _client_del(args, ctx):
    ctx.fn("gateway").client_del(args.mac)
    return f"client {args.mac}: deleted"


def _client_show(args, ctx):
    rows = ctx.fn("gateway").clients()
    return Output(rows, table(rows, SHOW_COLUMNS))


def register(cli):
    cli.load_command("gateway", help="physical-to-virtual gateway: VLAN learning, vlan pop/push",
                     where=lambda r: f"trunk {r['trunk']}")
    g = cli.group("client", help="gateway clients")
    sp = g.command("add", _client_add,
                   help="frames from MAC on the trunk go to IFNAME, VLAN popped")
    sp.add_argument("mac", type=arg(v.mac), metavar="MAC")
    sp.add_argument("--worker", type=arg(v.ifname), required=True, metavar="IFNAME",
                    help="the worker's port in this namespace (host side of its veth)")
    sp = g.command("del", _client_del, help="delete a client, its learned VLAN and counters")
    sp.add_argument("mac", type=arg(v.mac), metavar="MAC")
    add_json(g.command("show", _client_show,
                       help="clients: worker, learned VLAN, rx/tx packets and bytes"))
