"""The monitor's counters in Prometheus text format (prometheus_client).

    text, content_type = render(snapshot, inner=False)

Tunnel counters are summed per (vni, outer_sip, outer_dip) by default, so a
scrape has at most one series per VNI and pair of VTEPs whatever the tenants
do; ``inner=True`` (``ui --metrics-inner``) adds inner_sip and inner_dip
labels, one series per mon_flows entry (at most MON_FLOWS_MAX).

A counter can go down when mon_flows evicts an entry: Prometheus's rate()
takes that as a counter reset. bpfnet_monitor_flow_evictions_total says when
it happens.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily

TUNNEL = (("tx_pkts", "tx_packets", "VXLAN frames sent on the monitored device"),
          ("tx_bytes", "tx_bytes", "bytes of VXLAN frames sent (outer Ethernet on)"),
          ("rx_pkts", "rx_packets", "VXLAN frames received on the monitored device"),
          ("rx_bytes", "rx_bytes", "bytes of VXLAN frames received (outer Ethernet on)"))
OUTER = ("vni", "outer_sip", "outer_dip")
INNER = ("inner_sip", "inner_dip")
RESULTS = ("vxlan", "other", "fragment", "malformed", "no_room")


class _Snapshot:
    """A prometheus_client collector over one read of the maps."""

    def __init__(self, snap: dict, inner: bool):
        self.snap, self.inner = snap, inner

    def collect(self):
        labels = OUTER + INNER if self.inner else OUTER
        sums: dict[tuple, list[int]] = {}
        for r in self.snap["flows"]:
            acc = sums.setdefault(tuple(str(r[k]) for k in labels), [0] * len(TUNNEL))
            for i, (field, _, _) in enumerate(TUNNEL):
                acc[i] += r[field]
        for i, (_, name, doc) in enumerate(TUNNEL):
            fam = CounterMetricFamily(f"bpfnet_tunnel_{name}", doc, labels=list(labels))
            for lv in sorted(sums):
                fam.add_metric(list(lv), sums[lv][i])
            yield fam
        st = self.snap["status"]
        yield GaugeMetricFamily("bpfnet_monitor_flows", "live mon_flows entries", value=st["flows"])
        yield GaugeMetricFamily("bpfnet_monitor_flows_max", "mon_flows capacity",
                                value=st["max_flows"])
        yield CounterMetricFamily("bpfnet_monitor_flow_inserts", "mon_flows entries inserted",
                                  value=st["inserts"])
        yield CounterMetricFamily("bpfnet_monitor_flow_evictions",
                                  "mon_flows entries the LRU evicted to make room",
                                  value=st["evicted"])
        fam = CounterMetricFamily("bpfnet_monitor_frames",
                                  "frames seen by the monitor, by what the parser found",
                                  labels=["result"])
        for res in RESULTS:
            fam.add_metric([res], st["counters"].get(res, 0))
        yield fam


def render(snap: dict, inner: bool = False) -> tuple[bytes, str]:
    """Prometheus text for ``snap`` ({"flows": rows, "status": {...}}, see
    ui.server.MonitorSource) and its content type."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Snapshot(snap, inner))
    return generate_latest(reg), CONTENT_TYPE_LATEST
