"""monitor commands: load monitor, stats [--json], stats --watch, ui."""
from __future__ import annotations

import os
import socket
import sys

from netaddr import IPAddress

from .. import validate as v
from ..cli import Output, add_json, arg, table
from ..errors import ConfigError

STATS_COLUMNS = ["vni", "outer_sip", "outer_dip", "inner_sip", "inner_dip",
                 "tx_pkts", "tx_bytes", "rx_pkts", "rx_bytes"]


def _load(args, ctx):
    r = ctx.fn("monitor").load(dev=args.dev, port=args.port)
    verb = "upgraded" if r["upgraded"] else "loaded"
    return Output(r, f"monitor: {verb} on {r['device']} (VXLAN port {r['port']})")


def _stats(args, ctx):
    mon = ctx.fn("monitor")
    if args.watch is None:
        if args.out or args.count is not None:
            raise ConfigError("--out and --count go with --watch SECONDS")
        rows = mon.flows()
        return Output(rows, table(rows, STATS_COLUMNS))
    if not args.out:
        raise ConfigError("--watch needs --out DIR")
    if args.json:
        raise ConfigError("--watch writes JSON files; drop --json")
    try:
        n = mon.watch(args.out, args.watch, count=args.count)
    except KeyboardInterrupt:
        return None
    return f"stats: {n} rounds written to {args.out}"


class Listen:
    """``--listen HOST:PORT``, parsed in the caller's network namespace: it
    holds that namespace open, so that ``--netns NAME ui`` shows NAME's
    monitor but still listens where the user's browser is."""

    def __init__(self, text: str):
        self.host, self.port = v.listen(text)
        self.ns_fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    def close(self):
        if self.ns_fd >= 0:
            os.close(self.ns_fd)
            self.ns_fd = -1

    def bind(self) -> socket.socket:
        """A listening socket made in the caller's namespace."""
        from pyroute2 import netns
        here = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            netns.setns(self.ns_fd)
            try:
                return _listen_socket(self.host, self.port)
            finally:
                netns.setns(here)
        finally:
            os.close(here)


def _listen_socket(host: str, port: int) -> socket.socket:
    fam = socket.AF_INET6 if IPAddress(host).version == 6 else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(16)
    except OSError as e:
        s.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    return s


def _ui(args, ctx):
    from ..ui.server import MonitorSource, UiServer
    listen = args.listen
    try:
        mon = ctx.fn("monitor")
        mon.require_loaded()
        device = ctx.fn("monitor").net.name(mon.cfg().ifindex)
        sock = listen.bind() if ctx.args.netns else _listen_socket(listen.host, listen.port)
    finally:
        listen.close()
    source = MonitorSource(ctx.pins, device=device)
    srv = UiServer(sock, source, inner_labels=args.metrics_inner)
    host = f"[{listen.host}]" if ":" in listen.host else listen.host
    print(f"ui: monitor of {ctx.ns} ({device}) at http://{host}:{srv.server_port}/ , "
          f"Prometheus at /metrics; Ctrl-C stops", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    sys.stdout.flush()
    return "ui: stopped"


def register(cli):
    sp = cli.command("monitor", _load, help="VXLAN tunnel analytics on an underlay device",
                     parent=cli.load_sub)
    sp.set_defaults(opname="load monitor")
    sp.add_argument("--dev", type=arg(v.ifname), metavar="DEV", required=True,
                    help="the underlay device carrying the VXLAN traffic")
    sp.add_argument("--port", type=arg(v.udp_port), help="VXLAN UDP port (default 4789)")

    sp = cli.command("stats", _stats, lock=False,
                     help="the monitor's per-conversation counters (the seed's JSON with --json)")
    add_json(sp)
    sp.add_argument("--watch", type=arg(v.seconds), metavar="SECONDS",
                    help="keep DIR/tunnel.json and DIR/tunnel-delta.json fresh every SECONDS")
    sp.add_argument("--out", metavar="DIR", help="directory for --watch")
    sp.add_argument("--count", type=arg(v.count), metavar="N",
                    help="with --watch: stop after N rounds (default: until interrupted)")

    sp = cli.command("ui", _ui, lock=False,
                     help="live chord diagram of the monitor's traffic; /metrics for Prometheus")
    sp.add_argument("--listen", type=arg(Listen), metavar="HOST:PORT", default="127.0.0.1:8080",
                    help="where to listen (default 127.0.0.1:8080)")
    sp.add_argument("--metrics-inner", action="store_true",
                    help="label /metrics by inner addresses too (one series per inner pair)")
