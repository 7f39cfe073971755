"""monitor commands: load monitor, stats [--json], stats --watch, ui."""
from __future__ import annotations

import os
import socket
import sys

from .. import signals
from .. import validate as v
from ..cli import Output, add_json, arg, table
from ..errors import ConfigError

STATS_COLUMNS = ["vni", "outer_sip", "outer_dip", "inner_sip", "inner_dip",
                 "tx_pkts", "tx_bytes", "rx_pkts", "rx_bytes"]


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
    # SIGINT, SIGTERM and SIGHUP end it between two rounds, never in the
    # middle of writing one (signals.py)
    rounds = 0

    def sleep(seconds):
        nonlocal rounds
        rounds += 1  # a round was written
        stop.sleep(seconds)
    try:
        with signals.stopping() as stop, stop.deferred():
            rounds = mon.watch(args.out, args.watch, count=args.count, sleep=sleep)
    except signals.Stopped as e:
        return f"stats: {rounds} rounds written to {args.out}; stopped by {e.name}"
    return f"stats: {rounds} rounds written to {args.out}"


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

        from ..ui.server import listen_socket
        here = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            netns.setns(self.ns_fd)
            try:
                return listen_socket(self.host, self.port)
            finally:
                netns.setns(here)
        finally:
            os.close(here)


def _ui(args, ctx):
    from ..ui.server import MonitorSource, UiServer, listen_socket, serving
    listen = args.listen
    try:
        mon = ctx.fn("monitor")
        mon.require_loaded()
        device = ctx.fn("monitor").net.name(mon.cfg().ifindex)
        sock = listen.bind() if ctx.args.netns else listen_socket(listen.host, listen.port)
    finally:
        listen.close()
    source = MonitorSource(ctx.pins, device=device)
    srv = UiServer(sock, source, inner_labels=args.metrics_inner)
    host = f"[{listen.host}]" if ":" in listen.host else listen.host
    # served in a thread; SIGINT, SIGTERM and SIGHUP stop it alike (signals.py)
    try:
        with signals.stopping() as stop, serving(srv):
            print(f"ui: monitor of {ctx.ns} ({device}) at http://{host}:{srv.server_port}/ , "
                  f"Prometheus at /metrics; Ctrl-C, SIGTERM or SIGHUP stops", flush=True)
            sig = stop.wait()
    except signals.Stopped as e:
        sig = e.signum
    sys.stdout.flush()
    return f"ui: stopped ({signals.signame(sig)})"


def register(cli):
    cli.load_command("monitor", help="VXLAN tunnel analytics on an underlay device",
                     where=lambda r: f"{r['device']} (VXLAN port {r['port']})")

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
