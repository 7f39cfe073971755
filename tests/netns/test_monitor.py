"""The tunnel monitor end to end: exact counts over kernel-native VXLAN (IPv4
and IPv6 underlay) and over bpfnet's bridge; the command line (load,
upgrade, unload, bad input), the watch files, the UI server's JSON and
/metrics on a real monitor.

Kernel-native VXLAN, two hosts on one veth (the monitor on each eth0):

     h0                                     h1
     vx42 192.168.42.1/24  fd42::1/64       vx42 192.168.42.2/24  fd42::2/64
       (VNI 42, unicast remote h1)            (VNI 42, unicast remote h0)
     vx6 (VNI 60 over IPv6) fd60::1/64      vx6 fd60::2/64
     eth0 10.98.0.1/24 fd98::1/64 ======== eth0 10.98.0.2/24 fd98::2/64

The bridge: bpfnet.demos.bridge.build(), three hosts on the fabric, VNI 10,
the monitor on h0's eth0 (the underlay):

     h0v10 192.168.0.1        h1v10 192.168.0.2        h2v10 192.168.0.3
     h0 vxlan0 (bridge)       h1 vxlan0                h2 vxlan0
     eth0 10.99.0.1           eth0 10.99.0.2           eth0 10.99.0.3
        +--------------- fabric sw0 (239.1.1.1) ---------------+

Frame sizes for `ping -s S`: inner IPv4 ICMP frame 14+20+8+S, inner IPv6
14+40+8+S; outer IPv4 adds 14+20+8+8 = 50, outer IPv6 14+40+8+8 = 70.
"""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import serving, need_root

from bpfnet.sim import Sim

OUT4, OUT6 = 50, 70


def icmp4(size):
    return OUT4 + 14 + 20 + 8 + size


def vxlan_link(sim, ns, name, vni, remote, local, v6=False):
    with sim.ipr(ns) as ipr:
        kw = {"vxlan_group6" if v6 else "vxlan_group": remote,
              "vxlan_local6" if v6 else "vxlan_local": local}
        ipr.link("add", ifname=name, kind="vxlan", vxlan_id=vni, vxlan_port=4789,
                 vxlan_link=ipr.link_lookup(ifname="eth0")[0], **kw)
        ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")


def underlay_pair(sim, tunnels: bool = True) -> tuple[str, str]:
    """h0 and h1 on one veth, the monitor on each eth0; with ``tunnels`` the
    kernel VXLAN devices of the picture above."""
    h0, h1 = sim.ns("h0"), sim.ns("h1")
    for h in (h0, h1):
        # no router solicitations from the VXLAN devices: the kernel
        # repeats them with a backoff for ever (1, 5, 13, ... 253, 509 s
        # after up), each a flow over the tunnel to ff02::2
        sim.sysctl(h, "net.ipv6.conf.default.router_solicitations", "0")
    sim.veth(h0, "eth0", h1, "eth0")
    for i, h in enumerate((h0, h1)):
        sim.addr(h, "eth0", f"10.98.0.{i + 1}/24")
        sim.addr(h, "eth0", f"fd98::{i + 1}/64")
    for i, h in enumerate((h0, h1)):
        peer = 2 - i
        if tunnels:
            vxlan_link(sim, h, "vx42", 42, f"10.98.0.{peer}", f"10.98.0.{i + 1}")
            vxlan_link(sim, h, "vx6", 60, f"fd98::{peer}", f"fd98::{i + 1}", v6=True)
            sim.addr(h, "vx42", f"192.168.42.{i + 1}/24")
            sim.addr(h, "vx42", f"fd42::{i + 1}/64")
            sim.addr(h, "vx6", f"fd60::{i + 1}/64")
        sim.bpfnetctl("load", "monitor", "--dev", "eth0", netns_=h)
    if tunnels:
        # permanent neighbours over the tunnels: no ARP, ND or unreachability
        # probes of the kernel's own, which came at any time (a fifth frame
        # in a flow of four pings, a new flow between two reads)
        for i, (h, peer) in enumerate(((h0, h1), (h1, h0))):
            p = 2 - i
            for dev, ips in (("vx42", (f"192.168.42.{p}", f"fd42::{p}")), ("vx6", (f"fd60::{p}",))):
                for ip in ips:
                    sim.pin_neigh(h, dev, ip, sim.mac(peer, dev))
    return h0, h1


@pytest.fixture(scope="module")
def native():
    """Two hosts with kernel VXLAN devices; the monitor loaded on both eth0."""
    need_root()
    sim = Sim(prefix=f"mo{os.getpid() % 100000}")
    try:
        yield {"sim": sim, "hosts": underlay_pair(sim)}
    finally:
        sim.cleanup()


def flows(sim, ns) -> list[dict]:
    _, out, _ = sim.bpfnetctl("stats", "--json", netns_=ns)
    return json.loads(out)


def entry(rows, vni, osip, odip, isip, idip) -> dict:
    zero = {"tx_pkts": 0, "tx_bytes": 0, "rx_pkts": 0, "rx_bytes": 0}
    for r in rows:
        if (r["vni"], r["outer_sip"], r["outer_dip"], r["inner_sip"], r["inner_dip"]) == \
                (vni, osip, odip, isip, idip):
            return r
    return zero


COUNTS = ("tx_pkts", "tx_bytes", "rx_pkts", "rx_bytes")


def key5(r) -> tuple:
    return (r["vni"], r["outer_sip"], r["outer_dip"], r["inner_sip"], r["inner_dip"])


def assert_between(before, mid, after):
    """``mid`` was read between ``before`` and ``after``: the background
    frames nobody waits for (ND, ARP) may move counters meanwhile, so each of
    its flows lies between the two reads, exactly when nothing moved."""
    b, a = {key5(r): r for r in before}, {key5(r): r for r in after}
    assert {key5(r) for r in mid} <= set(a)
    for r in mid:
        lo = b.get(key5(r), dict.fromkeys(COUNTS, 0))
        assert all(lo[c] <= r[c] <= a[key5(r)][c] for c in COUNTS), (lo, r, a[key5(r)])


def moved(before, after):
    return {k: after[k] - before[k] for k in ("tx_pkts", "tx_bytes", "rx_pkts", "rx_bytes")}


def measure(sim, ns_list, key, fn):
    """Counters of ``key`` on each namespace's monitor, moved while ``fn`` ran."""
    before = [entry(flows(sim, ns), *key) for ns in ns_list]
    fn()
    return [moved(b, entry(flows(sim, ns), *key)) for b, ns in zip(before, ns_list)]


# --- exact counts -------------------------------------------------------------

@pytest.mark.parametrize("count,size", [(5, 56), (3, 1000)])
def test_native_vxlan_ipv4_exact(native, count, size):
    sim, (h0, h1) = native["sim"], native["hosts"]
    assert sim.ping_until(h0, "192.168.42.2")
    key = (42, "10.98.0.1", "10.98.0.2", "192.168.42.1", "192.168.42.2")
    got = []
    d0, d1 = measure(sim, (h0, h1), key,
                     lambda: got.append(sim.ping(h0, "192.168.42.2", count=count, size=size)))
    assert got == [count]
    b = count * icmp4(size)
    # h0 sent the requests and got the replies; h1 saw it the other way round
    assert d0 == {"tx_pkts": count, "tx_bytes": b, "rx_pkts": count, "rx_bytes": b}
    assert d1 == d0


def test_native_vxlan_ipv6_underlay_and_inner_exact(native):
    sim, (h0, h1) = native["sim"], native["hosts"]
    assert sim.ping_until(h1, "fd60::1")
    # h1 -> h0: the key still starts with the lower outer address (fd98::1)
    key = (60, "fd98::1", "fd98::2", "fd60::1", "fd60::2")
    d0, d1 = measure(sim, (h0, h1), key, lambda: sim.ping(h1, "fd60::1", count=4, size=100))
    b = 4 * (OUT6 + 14 + 40 + 8 + 100)
    assert d1 == {"tx_pkts": 4, "tx_bytes": b, "rx_pkts": 4, "rx_bytes": b}
    assert d0 == d1


def test_inner_ipv6_over_ipv4_underlay(native):
    sim, (h0, h1) = native["sim"], native["hosts"]
    assert sim.ping_until(h0, "fd42::2")
    key = (42, "10.98.0.1", "10.98.0.2", "fd42::1", "fd42::2")
    (d0,) = measure(sim, (h0,), key, lambda: sim.ping(h0, "fd42::2", count=2, size=56))
    b = 2 * (OUT4 + 14 + 40 + 8 + 56)
    assert d0 == {"tx_pkts": 2, "tx_bytes": b, "rx_pkts": 2, "rx_bytes": b}


def test_non_vxlan_traffic_is_not_a_flow(sim):
    # hosts of their own without tunnels: over the tunnels of ``native`` the
    # kernel sends frames of its own at any time (MLD reports, neighbour
    # probes, a new flow each), and two of them landed inside this test in
    # the slow VM; here any flow at all would be the pings'
    h0, h1 = underlay_pair(sim, tunnels=False)

    def counters(h):
        _, out, _ = sim.bpfnetctl("status", "--json", netns_=h)
        return json.loads(out)["functions"]["monitor"]["counters"]
    # neighbours first: requests queued behind a slow first ARP/ND are
    # answered together, and ping's -w then counts replies beyond -c
    for dst in ("10.98.0.2", "fd98::2"):
        assert sim.ping_until(h0, dst)
    other = counters(h0)["other"]
    assert sim.ping(h0, "10.98.0.2", count=3) == 3  # plain underlay pings
    assert sim.ping(h0, "fd98::2", count=3) == 3
    assert flows(sim, h0) == [] and flows(sim, h1) == []
    st = counters(h0)
    assert st["other"] >= other + 12  # 6 requests out, 6 replies in
    assert st["malformed"] == 0 and st["no_room"] == 0


def test_status_shows_attach_points_and_evictions(native):
    sim, (h0, _) = native["sim"], native["hosts"]
    before = len(flows(sim, h0))
    _, out, _ = sim.bpfnetctl("status", "--json", netns_=h0)
    st = json.loads(out)["functions"]["monitor"]
    assert (st["device"], st["port"]) == ("eth0", 4789)
    assert [(a["hook"], a["program"]) for a in st["attach"]] == \
        [("ingress", "monitor_ingress"), ("egress", "monitor_egress")]
    # read between two dumps: the tunnels' own ND/MLD may add a flow meanwhile
    assert 0 < before <= st["flows"] <= len(flows(sim, h0))
    assert st["evicted"] == 0 and st["inserts"] == st["flows"]
    assert st["maps"]["mon_flows"] == {"entries": st["flows"], "max_entries": 65536,
                                       "evictions": 0}
    code, out, _ = sim.bpfnetctl("stats", netns_=h0)
    head = out.splitlines()[0].split()
    assert head == ["VNI", "OUTER_SIP", "OUTER_DIP", "INNER_SIP", "INNER_DIP",
                    "TX_PKTS", "TX_BYTES", "RX_PKTS", "RX_BYTES"]


def test_stats_json_has_exactly_the_seed_keys(native):
    sim, (h0, _) = native["sim"], native["hosts"]
    rows = flows(sim, h0)
    assert rows
    for r in rows:
        assert list(r) == ["vni", "outer_sip", "outer_dip", "inner_sip", "inner_dip",
                           "tx_pkts", "tx_bytes", "rx_pkts", "rx_bytes"]
        assert isinstance(r["vni"], int) and all(isinstance(r[k], int) for k in list(r)[5:])


# --- the watch files ------------------------------------------------------------

def test_watch_writes_totals_and_last_interval(native, tmp_path):
    from bpfnet.functions.base import PinDir
    from bpfnet.functions.monitor import Monitor
    sim, (h0, h1) = native["sim"], native["hosts"]
    key = (42, "10.98.0.1", "10.98.0.2", "192.168.42.1", "192.168.42.2")
    assert sim.ping_until(h0, "192.168.42.2")
    seen = []

    def sleep(_):  # between two rounds: check the files, then send 3 pings
        seen.append({n: json.loads((tmp_path / n).read_text())
                     for n in ("tunnel.json", "tunnel-delta.json")})
        assert sim.ping(h0, "192.168.42.2", count=3) == 3
    mon = Monitor(PinDir(sim.pin_root, h0))
    try:
        assert mon.watch(str(tmp_path), 1, count=2, sleep=sleep) == 2
    finally:
        mon.close()
    seen.append({n: json.loads((tmp_path / n).read_text())
                 for n in ("tunnel.json", "tunnel-delta.json")})
    first, second = seen
    # round 1: the delta is everything since the monitor started (the seed's)
    assert first["tunnel-delta.json"] == [r for r in first["tunnel.json"]
                                          if r["tx_pkts"] or r["rx_pkts"]]
    # round 2: the totals moved by the 3 pings, and the delta is just them
    t1, t2 = entry(first["tunnel.json"], *key), entry(second["tunnel.json"], *key)
    b = 3 * icmp4(56)
    assert moved(t1, t2) == {"tx_pkts": 3, "tx_bytes": b, "rx_pkts": 3, "rx_bytes": b}
    d = entry(second["tunnel-delta.json"], *key)
    assert {k: d[k] for k in ("tx_pkts", "tx_bytes", "rx_pkts", "rx_bytes")} == moved(t1, t2)
    # replaced atomically: no temporary file is left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tunnel-delta.json", "tunnel.json"]


def test_watch_command(native, tmp_path):
    sim, (h0, _) = native["sim"], native["hosts"]
    before = flows(sim, h0)
    code, out, err = sim.bpfnetctl("stats", "--watch", "1", "--out", str(tmp_path),
                                   "--count", "2", netns_=h0)
    assert (code, err) == (0, "")
    assert_between(before, json.loads((tmp_path / "tunnel.json").read_text()), flows(sim, h0))
    assert isinstance(json.loads((tmp_path / "tunnel-delta.json").read_text()), list)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tunnel-delta.json", "tunnel.json"]
    for argv in (["--watch", "1"], ["--out", str(tmp_path)],
                 ["--watch", "1", "--out", str(tmp_path / "nope")],
                 ["--watch", "0", "--out", str(tmp_path)]):
        code, _, err = sim.bpfnetctl("stats", *argv, netns_=h0, check=False)
        assert code == 2 and err.startswith("bpfnetctl: error:"), argv


# --- the UI server on a real monitor ----------------------------------------------

@pytest.fixture
def ui(native):
    from bpfnet.functions.base import PinDir
    from bpfnet.ui.server import MonitorSource, UiServer, listen_socket
    sim, (h0, _) = native["sim"], native["hosts"]
    yield from serving(UiServer(listen_socket("127.0.0.1", 0),
                                MonitorSource(PinDir(sim.pin_root, h0), "eth0")))


def get(srv, path, method="GET"):
    req = urllib.request.Request(f"http://127.0.0.1:{srv.server_port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def test_ui_json_and_metrics(native, ui):
    sim, (h0, _) = native["sim"], native["hosts"]
    assert sim.ping_until(h0, "192.168.42.2")
    code, ctype, body = get(ui, "/tunnel.json")
    assert (code, ctype) == (200, "application/json")
    rows = json.loads(body)
    later = flows(sim, h0)  # ARP and ND may move between the two reads; pings do not
    ids = lambda rs: [tuple(r.values())[:5] for r in rs]  # noqa: E731
    assert set(ids(rows)) <= set(ids(later)) and ids(rows) == sorted(ids(rows), key=ids(later).index)
    key = (42, "10.98.0.1", "10.98.0.2", "192.168.42.1", "192.168.42.2")
    assert entry(rows, *key) == entry(later, *key)
    code, ctype, body = get(ui, "/metrics")
    assert code == 200 and ctype.startswith("text/plain")
    fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
    rows2 = json.loads(get(ui, "/tunnel.json")[2])

    def per_pair(rs) -> dict:
        out: dict = {}
        for r in rs:
            k = (str(r["vni"]), r["outer_sip"], r["outer_dip"])
            out[k] = out.get(k, 0) + r["tx_bytes"]
        return out
    lo, hi = per_pair(rows), per_pair(rows2)  # /metrics was read between the two
    got = {(s.labels["vni"], s.labels["outer_sip"], s.labels["outer_dip"]): s.value
           for s in fams["bpfnet_tunnel_tx_bytes"].samples if s.name.endswith("_total")}
    assert set(lo) <= set(got) <= set(hi)
    assert all(lo.get(k, 0) <= v <= hi[k] for k, v in got.items())
    assert all(set(s.labels) == {"vni", "outer_sip", "outer_dip"}
               for s in fams["bpfnet_tunnel_rx_packets"].samples)
    assert len(rows) <= fams["bpfnet_monitor_flows"].samples[0].value <= len(rows2)
    code, _, body = get(ui, "/status.json")
    st = json.loads(body)
    assert (st["device"], st["evicted"]) == ("eth0", 0) and st["flows"] >= len(rows2)


def test_ui_metrics_with_inner_labels(native, ui):
    ui.inner_labels = True
    _, _, body = get(ui, "/metrics")
    fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
    labels = {tuple(sorted(s.labels)) for s in fams["bpfnet_tunnel_tx_bytes"].samples}
    assert labels == {("inner_dip", "inner_sip", "outer_dip", "outer_sip", "vni")}


def test_ui_serves_only_its_own_files(native, ui):
    code, ctype, body = get(ui, "/")
    assert code == 200 and ctype.startswith("text/html") and b"chord.js" in body
    code, _, body = get(ui, "/static/d3.min.js")
    assert code == 200 and b"d3js.org" in body[:200]
    for path in ("/static/", "/static", "/static/../server.py", "/../../etc/passwd",
                 "/static/%2e%2e/server.py", "/ui/server.py", "/etc/passwd"):
        assert get(ui, path)[0] == 404, path
    assert get(ui, "/tunnel.json", method="POST")[0] == 405
    assert get(ui, "/", method="DELETE")[0] == 405
    assert get(ui, "/", method="HEAD")[0] == 200


# --- over the bridge ----------------------------------------------------------------

def test_bridge_traffic_counted_exactly(sim):
    from bpfnet.demos import bridge as demo
    topo = demo.build(sim, vnis=(10,))
    h0 = topo["hosts"][0]
    sim.bpfnetctl("load", "monitor", "--dev", "eth0", netns_=h0)
    t0 = topo["tenants"][(0, 10)]
    for peer in (1, 2):
        assert sim.ping_until(t0, demo.tenant_ip(peer))
    for peer, count, size in ((1, 4, 56), (2, 2, 500)):
        key = (10, "10.99.0.1", f"10.99.0.{peer + 1}", "192.168.0.1", demo.tenant_ip(peer))
        (d,) = measure(sim, (h0,), key, lambda: sim.ping(t0, demo.tenant_ip(peer),
                                                         count=count, size=size))
        b = count * icmp4(size)
        assert d == {"tx_pkts": count, "tx_bytes": b, "rx_pkts": count, "rx_bytes": b}
    # the bridge's floods to the group are tunnel traffic too (ARP: non-IP inner)
    assert any(r["outer_dip"] == demo.GROUP and r["inner_sip"] == "0.0.0.0"
               for r in flows(sim, h0))
    # the monitor and the bridge coexist on h0, and unloading one leaves the other
    _, out, _ = sim.bpfnetctl("status", "--json", netns_=h0)
    assert set(json.loads(out)["functions"]) == {"bridge", "monitor"}
    sim.bpfnetctl("unload", "monitor", netns_=h0)
    assert sim.ping(t0, demo.tenant_ip(1), count=2) == 2


# --- load, upgrade, unload, bad input ------------------------------------------------

def pins(sim, ns):
    d = os.path.join(sim.pin_root, ns, "monitor")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def test_load_upgrade_unload(sim):
    h = sim.ns("h0")
    sim.veth(h, "eth0", sim.ns("h1"), "eth0")
    sim.addr(h, "eth0", "10.97.0.1/24")
    with sim.ipr(h) as ipr:
        idx = ipr.link_lookup(ifname="eth0")[0]
    sim.bpfnetctl("load", "monitor", "--dev", "eth0", netns_=h)
    assert "mon_flows" in pins(sim, h)
    # a frame so the table is not empty, then an upgrade keeps it
    from bpfnet import abi
    from bpfnet.maps import Map
    m = Map.pinned(os.path.join(sim.pin_root, h, "monitor", "mon_flows"),
                   abi.MonFlowKey, abi.MonFlowVal)
    try:
        m[abi.MonFlowKey(vni=7)] = abi.MonFlowVal(tx_pkts=5)
    finally:
        m.close()
    code, out, _ = sim.bpfnetctl("load", "monitor", "--dev", "eth0", "--port", "8472", netns_=h)
    assert "upgraded" in out
    assert [r["vni"] for r in flows(sim, h)] == [7]
    _, out, _ = sim.bpfnetctl("status", "--json", netns_=h)
    assert json.loads(out)["functions"]["monitor"]["port"] == 8472
    # another device while loaded: refused, nothing changed
    code, _, err = sim.bpfnetctl("load", "monitor", "--dev", "lo", netns_=h, check=False)
    assert code == 2 and "unload" in err
    sim.bpfnetctl("unload", "monitor", netns_=h)
    assert pins(sim, h) == []
    with sim.ipr(h) as ipr:  # no filter and no qdisc of ours left on eth0
        assert [q.get_attr("TCA_KIND") for q in ipr.get_qdiscs(idx)
                if q.get_attr("TCA_KIND") == "clsact"] == []
    code, _, err = sim.bpfnetctl("unload", "monitor", netns_=h, check=False)
    assert code == 2


def test_unload_keeps_a_clsact_qdisc_it_did_not_create(sim):
    h = sim.ns("h0")
    sim.veth(h, "eth0", sim.ns("h1"), "eth0")
    with sim.ipr(h) as ipr:
        idx = ipr.link_lookup(ifname="eth0")[0]
        ipr.tc("add", "clsact", idx)
    from bpfnet import libbpf
    env = os.environ.get("BPFNET_ATTACH")
    for mode in ("tc", "tcx") if libbpf.tcx_supported() else ("tc",):
        os.environ["BPFNET_ATTACH"] = mode
        try:
            sim.bpfnetctl("load", "monitor", "--dev", "eth0", netns_=h)
            sim.bpfnetctl("unload", "monitor", netns_=h)
        finally:
            if env is None:
                os.environ.pop("BPFNET_ATTACH", None)
            else:
                os.environ["BPFNET_ATTACH"] = env
        with sim.ipr(h) as ipr:
            assert [q.get_attr("TCA_KIND") for q in ipr.get_qdiscs(idx)].count("clsact") == 1, mode


@pytest.mark.parametrize("argv,msg", [
    (["load", "monitor", "--dev", "nosuch0"], "does not exist"),
    (["load", "monitor", "--dev", "eth0", "--port", "0"], "invalid port"),
    (["load", "monitor", "--dev", "eth0", "--port", "65536"], "invalid port"),
    (["load", "monitor"], "--dev"),
    (["load", "monitor", "--dev", "vx9"], "VXLAN device"),
    (["stats"], "not loaded"),
    (["stats", "--json"], "not loaded"),
    (["ui", "--listen", "nowhere"], "listen"),
    (["ui", "--listen", "127.0.0.1:99999"], "port"),
    (["ui"], "not loaded"),
    (["unload", "monitor"], "not loaded"),
])
def test_bad_input_exits_2_and_changes_nothing(sim, argv, msg):
    h = sim.ns("h0")
    sim.veth(h, "eth0", sim.ns("h1"), "eth0")
    sim.addr(h, "eth0", "10.97.0.1/24")
    vxlan_link(sim, h, "vx9", 9, "10.97.0.2", "10.97.0.1")
    code, out, err = sim.bpfnetctl(*argv, netns_=h, check=False)
    assert code == 2, err
    assert err.startswith("bpfnetctl: error:") and msg in err, err
    assert pins(sim, h) == []
    with sim.ipr(h) as ipr:
        idx = ipr.link_lookup(ifname="eth0")[0]
        assert "clsact" not in [q.get_attr("TCA_KIND") for q in ipr.get_qdiscs(idx)]


def test_ui_command_listens_where_the_caller_is(native):
    """`bpfnetctl --netns H ui` shows H's monitor but listens on the caller's
    loopback (here the test's namespace), so a browser there reaches it."""
    import signal
    import socket
    import subprocess
    import time
    from conftest import ROOT
    sim, (h0, _) = native["sim"], native["hosts"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen([os.path.join(ROOT, "bpfnetctl"), "--pin-root", sim.pin_root,
                          "--netns", h0, "ui", "--listen", f"127.0.0.1:{port}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = p.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in first and "eth0" in first
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json",
                                            timeout=5) as r:
                    st = json.loads(r.read())
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert (st["namespace"], st["device"]) == (h0, "eth0")
    finally:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
    assert p.returncode == 0, err
    assert "ui: stopped" in out


def test_demo(root):
    from bpfnet.demos import monitor as demo
    lines = []
    assert demo.run(keep=False, say=lines.append) == 0
    text = "\n".join(lines)
    assert "PASS" in text and "FAIL" not in text
    assert text.count(" yes") == len(demo.VNIS)
