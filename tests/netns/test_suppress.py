"""ARP and ND suppression end to end, on hosts built by hand
(tests/floodtopo.py): a request for an IP with no binding floods (counted
`arp_flood`/`nd_flood`); the reply that comes back through the tunnel
teaches the binding; later requests are answered on the host
(`arp_reply`/`nd_reply`), the tenant's neighbour table gets the MAC, and
nothing reaches the remote host. Gratuitous ARP and probes are never
answered. An IP that changes MAC is followed."""
import json

import pytest

from conftest import built
import floodtopo as ft
from neighframes import arp, arp_request

T1_NEW = "02:00:00:0a:00:99"


@pytest.fixture(scope="module", params=[None, "device"], ids=["default-encap", "encap-device"])
def topo(request):
    """Both paths: the programs' own encapsulation (the default where the
    kernel can) and the VXLAN device's (the bindings are learned on either
    ingress: bridge_decap or bridge_ingress)."""
    yield from built("tsu", lambda sim: ft.build(sim, 2, encap=request.param))


def resolve(sim, h, t, ip, flush=True) -> dict:
    """t pings ip once (after forgetting its neighbours); h's counter deltas."""
    if flush:
        ft.flush_neighbours(sim, t)
    before = ft.counters(sim, h)
    assert sim.ping(t, ip, count=1) == 1
    return ft.delta(ft.counters(sim, h), before)


def forget(sim, h, ip):
    """No binding for ip on h (static or learned)."""
    sim.bpfnetctl("neigh", "del", ip, "--vni", "10", netns_=h, check=False)


def remote_bindings(sim, h, *argv):
    """`neigh show` rows of remote tenants (not this host's: local)."""
    return [r for r in ft.ctl_json(sim, h, "neigh", "show", *argv) if not r["local"]]


def local_bindings(sim, h, *argv):
    return [r for r in ft.ctl_json(sim, h, "neigh", "show", *argv) if r["local"]]


def test_unknown_request_floods_then_the_learned_binding_answers(topo):
    sim, (h0, h1), (t0, t1) = topo["sim"], topo["hosts"], topo["tenants"]
    forget(sim, h0, ft.tenant_ip(1))
    d = resolve(sim, h0, t0, ft.tenant_ip(1))
    assert (d.get("arp_flood"), d.get("arp_reply"), d.get("neigh_learn")) == (1, None, 1)
    rows = remote_bindings(sim, h0, "--vni", "10")
    assert [(r["ip"], r["mac"], r["static"]) for r in rows] == \
        [(ft.tenant_ip(1), ft.tenant_mac(1), False)]
    assert set(rows[0]) == {"ip", "vni", "mac", "static", "route", "local", "replies", "age_s"}
    # t0's own request taught h0 that 192.168.0.1 is a tenant of h0's
    assert [(r["ip"], r["mac"], r["local"], r["route"]) for r in local_bindings(sim, h0)] == \
        [(ft.tenant_ip(0), ft.tenant_mac(0), True, False)]
    # the tenant forgets; its next request is answered on h0
    d = resolve(sim, h0, t0, ft.tenant_ip(1))
    assert (d.get("arp_reply"), d.get("arp_flood")) == (1, None)
    assert ft.neighbours(sim, t0)[ft.tenant_ip(1)] == ft.tenant_mac(1)
    assert remote_bindings(sim, h0)[0]["replies"] == 1


def test_answered_requests_never_reach_the_remote_host(topo):
    sim, (h0, h1), (t0, t1) = topo["sim"], topo["hosts"], topo["tenants"]
    forget(sim, h0, ft.tenant_ip(1))
    sim.bpfnetctl("neigh", "add", ft.tenant_ip(1), "--vni", "10", "--mac", ft.tenant_mac(1),
                  netns_=h0)
    b0, b1, rx1 = ft.counters(sim, h0), ft.counters(sim, h1), ft.rx_packets(sim, t1)
    raw = ft.RawEth(t0)
    try:
        for _ in range(5):
            raw.send(arp_request(ft.tenant_mac(0), ft.tenant_ip(0), ft.tenant_ip(1)))
        replies = raw.arp_replies(5)
    finally:
        raw.close()
    assert [(r["sha"], r["spa"], r["tha"], r["tpa"], r["dst"]) for r in replies] == \
        [(ft.tenant_mac(1), ft.tenant_ip(1), ft.tenant_mac(0), ft.tenant_ip(0), ft.tenant_mac(0))] * 5
    assert ft.delta(ft.counters(sim, h0), b0) == {"arp_reply": 5}
    assert ft.delta(ft.counters(sim, h1), b1) == {}     # nothing arrived at h1
    assert ft.rx_packets(sim, t1) == rx1                # nor at its tenant
    rows = remote_bindings(sim, h0)
    assert [(r["ip"], r["static"], r["replies"]) for r in rows] == [(ft.tenant_ip(1), True, 5)]


def test_gratuitous_arp_and_probes_are_never_answered(topo):
    sim, (h0, h1), (t0, t1) = topo["sim"], topo["hosts"], topo["tenants"]
    sim.bpfnetctl("neigh", "add", ft.tenant_ip(1), "--vni", "10", "--mac", ft.tenant_mac(1),
                  netns_=h0)
    b0, rx1 = ft.counters(sim, h0), ft.rx_packets(sim, t1)
    raw = ft.RawEth(t0)
    try:
        # gratuitous: t0 announces itself; probe: is 192.168.0.2 free?
        raw.send(arp_request(ft.tenant_mac(0), ft.tenant_ip(0), ft.tenant_ip(0)))
        raw.send(arp(1, ft.tenant_mac(0), "0.0.0.0", "00:00:00:00:00:00", ft.tenant_ip(1)))
        raw.arp_replies(1, wait=1.0)  # t1 itself answers the probe
    finally:
        raw.close()
    d = ft.delta(ft.counters(sim, h0), b0)
    assert (d.get("flood"), d.get("arp_reply"), d.get("arp_flood")) == (2, None, None)
    assert ft.rx_packets(sim, t1) == rx1 + 2            # both went to the remote tenant


def test_an_ip_that_changes_mac_is_followed(topo):
    sim, (h0, h1), (t0, t1) = topo["sim"], topo["hosts"], topo["tenants"]
    forget(sim, h0, ft.tenant_ip(1))
    assert sim.ping(t0, ft.tenant_ip(1), count=1) == 1
    with sim.ipr(t1) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="eth0")[0], address=T1_NEW)
    before = ft.counters(sim, h0)
    raw = ft.RawEth(t1)
    try:  # as `arping -U` after the change
        raw.send(arp_request(T1_NEW, ft.tenant_ip(1), ft.tenant_ip(1)))
    finally:
        raw.close()
    rows = remote_bindings(sim, h0)
    assert [(r["ip"], r["mac"]) for r in rows] == [(ft.tenant_ip(1), T1_NEW)]
    ft.flush_neighbours(sim, t0)
    assert sim.ping(t0, ft.tenant_ip(1), count=1) == 1
    assert ft.neighbours(sim, t0)[ft.tenant_ip(1)] == T1_NEW
    d = ft.delta(ft.counters(sim, h0), before)
    assert (d.get("neigh_learn"), d.get("arp_reply"), d.get("arp_flood")) == (1, 1, None)
    macs = {r["mac"]: r["remote"] for r in ft.ctl_json(sim, h0, "fdb", "show")}
    assert macs[T1_NEW] == ft.underlay(1)


@pytest.fixture(scope="module")
def topo6():
    yield from built("ts6", lambda sim: ft.build(sim, 2, ipv6=True))


def test_neighbour_solicitation_floods_then_is_answered(topo6):
    sim, (h0, h1), (t0, t1) = topo6["sim"], topo6["hosts"], topo6["tenants"]
    d = resolve(sim, h0, t0, ft.tenant_ip6(1), flush=False)
    assert (d.get("nd_flood"), d.get("nd_reply")) == (1, None)
    rows = ft.ctl_json(sim, h0, "neigh", "show")
    assert (ft.tenant_ip6(1), ft.tenant_mac(1), False) in [(r["ip"], r["mac"], r["static"])
                                                          for r in rows]
    d = resolve(sim, h0, t0, ft.tenant_ip6(1))
    assert (d.get("nd_reply"), d.get("nd_flood")) == (1, None)
    assert ft.neighbours(sim, t0)[ft.tenant_ip6(1)] == ft.tenant_mac(1)


def test_static_ipv6_binding_answers_the_first_solicitation(topo6):
    sim, (h0, h1), (t0, t1) = topo6["sim"], topo6["hosts"], topo6["tenants"]
    sim.bpfnetctl("neigh", "add", ft.tenant_ip6(0), "--vni", "10", "--mac", ft.tenant_mac(0),
                  netns_=h1)
    d = resolve(sim, h1, t1, ft.tenant_ip6(0))
    assert (d.get("nd_reply"), d.get("nd_flood")) == (1, None)
    assert ft.neighbours(sim, t1)[ft.tenant_ip6(0)] == ft.tenant_mac(0)


def test_bindings_dump_with_named_fields(topo):
    """br_neigh is pinned and BTF-typed: bpftool names its fields."""
    import os
    import subprocess

    from conftest import need_tool
    need_tool("bpftool")
    sim, h0 = topo["sim"], topo["hosts"][0]
    sim.bpfnetctl("neigh", "add", "192.168.0.50", "--vni", "10", "--mac", "02:00:00:0a:00:50",
                  netns_=h0)
    d = os.path.join(sim.pin_root, h0, "bridge")
    for name in ("br_neigh", "br_supp_stats"):
        st = os.stat(os.path.join(d, name))
        assert (st.st_mode & 0o777, st.st_uid) == (0o600, 0)
    out = json.loads(subprocess.run(["bpftool", "-j", "map", "dump", "pinned",
                                     os.path.join(d, "br_neigh")],
                                    check=True, capture_output=True, text=True).stdout)
    e = [x["formatted"] for x in out if x["formatted"]["key"]["ip"]["addr"][3] != 0]
    assert e and set(e[0]["key"]) == {"vni", "pad", "ip"}
    assert {"mac", "flags", "replies", "seen_ns"} <= set(e[0]["value"])
    stats = json.loads(subprocess.run(["bpftool", "-j", "map", "dump", "pinned",
                                       os.path.join(d, "br_supp_stats")],
                                      check=True, capture_output=True, text=True).stdout)
    assert {"arp_reply", "nd_reply", "arp_flood", "nd_flood", "static_conflict",
            "neigh_learn"} <= set(stats[0]["formatted"]["values"][0]["value"])
