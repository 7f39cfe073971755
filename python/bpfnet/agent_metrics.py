"""The agent's /metrics (prometheus_client, a CollectorRegistry of its own).

    srv = MetricsServer(sock, pins, health=agent.health)   # sock: already listening
    threading.Thread(target=srv.serve_forever, daemon=True).start()

Each scrape reads the pins afresh (a function loaded or unloaded since is
seen), in the server's thread: read-only map lookups and netlink queries,
never a change. Series:

- ``bpfnet_build_info{version, attach}``
- ``bpfnet_function_loaded{function}``; ``bpfnet_function_events_total{function, event}``
  (rx, tx, flood, learn, ...) and ``bpfnet_function_drops_total{function, reason}``
  (the drop_* counters, ``drop_`` left out of the reason)
- map pressure: ``bpfnet_map_entries``, ``bpfnet_map_capacity``,
  ``bpfnet_map_fill_ratio`` and (LRU maps, where known) ``bpfnet_map_evictions_total``,
  labelled {function, map}
- ``bpfnet_mesh_peer_{rx,tx}_{packets,bytes}_total{vni, remote}``,
  ``bpfnet_bridge_vni_fdb_entries{vni}``
- the monitor's tunnel series when it is loaded (ui/metrics.py: per VNI and VTEP pair)
- agent health: ``bpfnet_agent_reconciles_total``, ``bpfnet_agent_reconcile_errors_total``,
  ``bpfnet_agent_changes_total``, ``bpfnet_agent_failing_actions``,
  ``bpfnet_agent_last_reconcile_timestamp_seconds``, ``bpfnet_agent_config_reloads_total{result}``,
  and with a [cluster]: ``bpfnet_agent_etcd_connected``,
  ``bpfnet_agent_etcd_last_sync_timestamp_seconds``, ``bpfnet_agent_cluster_hosts``,
  ``bpfnet_agent_etcd_errors_total``, ``bpfnet_agent_etcd_revision``; MAC/IP routes:
  ``bpfnet_agent_routes_enabled``, ``bpfnet_agent_routes_published`` (this host's keys),
  ``bpfnet_agent_route_writes_total{op}`` (put, delete), ``bpfnet_agent_cluster_macs``
  (entries of every host seen), ``bpfnet_agent_routes_installed``,
  ``bpfnet_agent_route_changes_total{change}`` (added, removed, moved, skipped: what
  routes_set did) and ``bpfnet_agent_route_errors_total``
- ``bpfnet_scrape_errors_total{function}``: reads that failed (a function unloaded mid-scrape)
"""
from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import (CounterMetricFamily, GaugeMetricFamily,
                                            InfoMetricFamily)

from . import __version__
from .ui.server import SocketHTTPServer

log = logging.getLogger("bpfnet.agent")


def _fam(kind, name, doc, labels=()):
    return (CounterMetricFamily if kind == "c" else GaugeMetricFamily)(name, doc, labels=list(labels))


class FunctionsCollector:
    """Every loaded function of one namespace, read at each scrape."""

    def __init__(self, pins):
        self.pins = pins
        self.errors: dict[str, int] = {}

    def _read(self) -> dict:
        from .functions import available, get
        out = {}
        for name in available():
            fn = get(name)(self.pins)
            try:
                if not fn.is_loaded():
                    continue
                st = fn.status()
                extra = {}
                if name == "mesh":
                    extra["peers"] = fn.peer_show()
                elif name == "bridge":
                    extra["vnis"] = fn.vni_show()
                elif name == "monitor":
                    extra["flows"] = fn.flows()
                out[name] = (st, extra)
            except Exception as e:  # noqa: BLE001 -- counted; the scrape goes on
                log.debug("metrics: %s: %s", name, e)
                self.errors[name] = self.errors.get(name, 0) + 1
            finally:
                fn.close()
        return out

    def collect(self):
        from .functions import FUNCTIONS
        from .functions.base import attach_mode
        info = InfoMetricFamily("bpfnet_build", "bpfnet's version and attach mode")
        info.add_metric([], {"version": __version__, "attach": attach_mode()})
        yield info
        data = self._read()
        loaded = _fam("g", "bpfnet_function_loaded", "1 if the function is loaded here", ["function"])
        events = _fam("c", "bpfnet_function_events", "a function's counters (packets, floods, learns)",
                      ["function", "event"])
        drops = _fam("c", "bpfnet_function_drops", "packets a function dropped, by reason",
                     ["function", "reason"])
        entries = _fam("g", "bpfnet_map_entries", "entries in a map", ["function", "map"])
        cap = _fam("g", "bpfnet_map_capacity", "a map's max_entries", ["function", "map"])
        fill = _fam("g", "bpfnet_map_fill_ratio", "entries / max_entries", ["function", "map"])
        evict = _fam("c", "bpfnet_map_evictions", "entries an LRU map evicted to make room",
                     ["function", "map"])
        for name in FUNCTIONS:
            loaded.add_metric([name], 1 if name in data else 0)
        for name, (st, _) in data.items():
            for k, val in sorted(st.get("counters", {}).items()):
                if k.startswith("drop_"):
                    drops.add_metric([name, k[5:]], val)
                else:
                    events.add_metric([name, k], val)
            for m, mv in sorted(st.get("maps", {}).items()):
                entries.add_metric([name, m], mv["entries"])
                cap.add_metric([name, m], mv["max_entries"])
                fill.add_metric([name, m], mv["entries"] / mv["max_entries"] if mv["max_entries"] else 0)
                if mv.get("evictions") is not None:
                    evict.add_metric([name, m], mv["evictions"])
        yield from (loaded, events, drops, entries, cap, fill, evict)
        if "mesh" in data:
            peers = data["mesh"][1]["peers"]
            for field, metric, doc in (("rx_pkts", "rx_packets", "frames from a peer into its port"),
                                       ("rx_bytes", "rx_bytes", "bytes from a peer into its port"),
                                       ("tx_pkts", "tx_packets", "frames tunnelled to a peer"),
                                       ("tx_bytes", "tx_bytes", "bytes tunnelled to a peer")):
                f = _fam("c", f"bpfnet_mesh_peer_{metric}", doc, ["vni", "remote"])
                for r in peers:
                    f.add_metric([str(r["vni"]), r["remote"]], r[field])
                yield f
        if "bridge" in data:
            f = _fam("g", "bpfnet_bridge_vni_fdb_entries", "learned FDB entries of a VNI", ["vni"])
            for r in data["bridge"][1]["vnis"]:
                f.add_metric([str(r["vni"])], r["fdb_entries"])
            yield f
        if "monitor" in data:
            from .ui.metrics import _Snapshot
            st, extra = data["monitor"]
            yield from _Snapshot({"flows": extra["flows"], "status": st}, inner=False).collect()
        err = _fam("c", "bpfnet_scrape_errors", "function reads that failed during a scrape",
                   ["function"])
        for name in FUNCTIONS:
            err.add_metric([name], self.errors.get(name, 0))
        yield err


class HealthCollector:
    """The agent's own state: ``health()`` returns the agent's counters and,
    with a cluster, the membership's health."""

    def __init__(self, health):
        self.health = health

    def collect(self):
        h = self.health()
        for kind, name, key, doc in (
                ("c", "bpfnet_agent_reconciles", "reconciles", "reconcile passes"),
                ("c", "bpfnet_agent_reconcile_errors", "reconcile_errors",
                 "actions that failed (each pass counts again)"),
                ("c", "bpfnet_agent_changes", "changes", "actions carried out"),
                ("g", "bpfnet_agent_failing_actions", "failing", "actions failing at the last pass"),
                ("g", "bpfnet_agent_last_reconcile_timestamp_seconds", "last_reconcile",
                 "end of the last reconcile pass (unix time)"),
                ("g", "bpfnet_agent_start_time_seconds", "started", "when the agent started (unix time)")):
            cls = CounterMetricFamily if kind == "c" else GaugeMetricFamily
            yield cls(name, doc, value=h[key])
        f = CounterMetricFamily("bpfnet_agent_config_reloads", "re-reads of the file (SIGHUP)",
                                labels=["result"])
        f.add_metric(["ok"], h["reloads"])
        f.add_metric(["error"], h["reload_errors"])
        yield f
        yield GaugeMetricFamily("bpfnet_agent_cluster_enabled", "1 with a [cluster] section",
                                value=1 if h.get("cluster") else 0)
        c = h.get("cluster")
        if c:
            yield GaugeMetricFamily("bpfnet_agent_etcd_connected", "1 while etcd answers",
                                    value=1 if c["connected"] else 0)
            yield GaugeMetricFamily("bpfnet_agent_etcd_last_sync_timestamp_seconds",
                                    "last full view of the cluster (unix time)", value=c["last_sync"])
            yield GaugeMetricFamily("bpfnet_agent_cluster_hosts", "live hosts seen, this one included",
                                    value=c["hosts"])
            yield CounterMetricFamily("bpfnet_agent_etcd_errors", "etcd sessions that failed",
                                      value=c["errors"])
            yield GaugeMetricFamily("bpfnet_agent_etcd_revision", "last etcd revision seen",
                                    value=c["revision"])
            yield from self._routes(h, c)

    @staticmethod
    def _routes(h: dict, c: dict):
        yield GaugeMetricFamily("bpfnet_agent_routes_enabled",
                                "1 if MAC/IP routes are published and installed",
                                value=1 if h["routes"] else 0)
        yield GaugeMetricFamily("bpfnet_agent_routes_published",
                                "this host's MAC routes in etcd", value=c.get("published", 0))
        f = CounterMetricFamily("bpfnet_agent_route_writes", "this host's MAC route writes to etcd",
                                labels=["op"])
        f.add_metric(["put"], c.get("mac_puts", 0))
        f.add_metric(["delete"], c.get("mac_deletes", 0))
        yield f
        yield GaugeMetricFamily("bpfnet_agent_cluster_macs",
                                "MAC routes in etcd, every host's", value=c.get("macs", 0))
        yield GaugeMetricFamily("bpfnet_agent_routes_installed",
                                "route entries this agent set in the bridge",
                                value=h["routes_installed"])
        f = CounterMetricFamily("bpfnet_agent_route_changes",
                                "route entries changed in the bridge (routes_set)",
                                labels=["change"])
        for k in ("added", "removed", "moved", "skipped"):
            f.add_metric([k], h[f"route_{k}"])
        yield f
        yield CounterMetricFamily("bpfnet_agent_route_errors", "route reads or writes that failed",
                                  value=h["route_errors"])


def registry(pins, health=None) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(FunctionsCollector(pins))
    if health is not None:
        reg.register(HealthCollector(health))
    return reg


class _Handler(BaseHTTPRequestHandler):
    server_version = "bpfnet-agent"
    sys_version = ""

    def log_message(self, fmt, *args):
        log.debug("%s " + fmt, self.address_string(), *args)

    def do_GET(self):
        path = urlsplit(self.path).path
        if path != "/metrics":
            body, code, ctype = b"see /metrics\n", 404, "text/plain"
        else:
            with self.server.lock:
                body = generate_latest(self.server.registry)
            code, ctype = 200, CONTENT_TYPE_LATEST
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET


class MetricsServer(SocketHTTPServer):
    """/metrics over an already listening socket (made in the caller's
    namespace: see commands/monitor.Listen)."""

    def __init__(self, sock: socket.socket, pins, health=None):
        self.registry = registry(pins, health)
        self.lock = threading.Lock()
        super().__init__(sock, _Handler)
