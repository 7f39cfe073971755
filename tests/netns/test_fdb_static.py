"""Static FDB entries end to end, on hosts built by hand (tests/floodtopo.py):
`fdb add MAC --vni V --remote IP [--ip ...]` on h0 for h1's tenant. The first
ping then floods nothing on h0 (its ARP is answered on h0, its frames go
straight to h1); the entry is shown static, never ages, survives `load`
upgrades and `fdb flush`, and is not relearned: the same MAC through h2 is
counted as static_conflict. Bad input: exit 2, one line, nothing changed."""
import time

import pytest

from conftest import bad_input_failures, built, run_cli
import floodtopo as ft
from neighframes import arp_request

T1 = ft.tenant_mac(1)


@pytest.fixture(scope="module")
def topo():
    yield from built("tfs", lambda sim: ft.build(sim, 3))


def fdb(sim, h):
    return {r["mac"]: r for r in ft.ctl_json(sim, h, "fdb", "show", "--vni", "10")}


def add_static(sim, h0):
    _, out, _ = sim.bpfnetctl("fdb", "add", T1, "--vni", "10", "--remote", ft.underlay(1),
                              "--ip", ft.tenant_ip(1), netns_=h0)
    return out


def test_static_entry_answers_and_forwards_the_first_frames(topo):
    sim, hosts, tenants = topo["sim"], topo["hosts"], topo["tenants"]
    h0, h1 = hosts[:2]
    out = add_static(sim, h0)
    assert out == f"fdb: {T1} vni 10 -> {ft.underlay(1)} static, answers ARP/ND for {ft.tenant_ip(1)}\n"
    r = fdb(sim, h0)[T1]
    assert set(r) == {"mac", "vni", "port", "remote", "rx_pkts", "tx_pkts", "age_s", "static",
                      "route"}
    assert r["route"] is False
    assert (r["vni"], r["port"], r["remote"], r["static"], r["rx_pkts"]) == \
        (10, "bnp10", ft.underlay(1), True, 0)
    n = ft.ctl_json(sim, h0, "neigh", "show")
    assert [(x["ip"], x["mac"], x["static"]) for x in n] == [(ft.tenant_ip(1), T1, True)]
    b0, b1 = ft.counters(sim, h0), ft.counters(sim, h1)
    assert sim.ping(tenants[0], ft.tenant_ip(1), count=3) == 3
    d0, d1 = ft.delta(ft.counters(sim, h0), b0), ft.delta(ft.counters(sim, h1), b1)
    # h0: the ARP answered locally, no flood; unicast to h1: three echo
    # requests and t0's ARP reply to t1
    assert (d0.get("arp_reply"), d0.get("flood"), d0.get("arp_flood"), d0.get("tx")) == \
        (1, None, None, 4)
    assert d0.get("static_conflict") is None and d0.get("move") is None
    # h1 knew nothing of t0: its tenant's one ARP request flooded
    assert d1.get("arp_flood") == 1
    assert ft.neighbours(sim, tenants[0])[ft.tenant_ip(1)] == T1
    r = fdb(sim, h0)[T1]
    assert (r["static"], r["tx_pkts"], r["rx_pkts"] > 0) == (True, 4, True)


def test_the_static_mac_through_another_vtep_is_a_conflict(topo):
    sim, hosts = topo["sim"], topo["hosts"]
    h0, h2 = hosts[0], hosts[2]
    fake = sim.tenant(h2, "tx2", None, "br10", mac=T1)  # T1's MAC behind h2
    before = ft.counters(sim, h0)
    raw = ft.RawEth(fake)
    try:
        raw.send(arp_request(T1, "192.168.0.77", ft.tenant_ip(0)))
    finally:
        raw.close()
    d = ft.delta(ft.counters(sim, h0), before)
    assert (d.get("static_conflict"), d.get("move"), d.get("rx")) == (1, None, 1)
    r = fdb(sim, h0)[T1]
    assert (r["remote"], r["static"]) == (ft.underlay(1), True)
    with sim.ipr(h2) as ipr:  # the impostor leaves
        ipr.link("del", index=ipr.link_lookup(ifname="ttx2")[0])
    # its flood also reached h1, whose Linux bridge now looks for T1 behind the
    # tunnel: the real T1 speaks, as a VM would, and is found at home again
    assert sim.ping(topo["tenants"][1], ft.tenant_ip(0), count=1) == 1


def test_static_entries_survive_upgrades_flush_and_ageing(topo):
    sim, hosts, tenants = topo["sim"], topo["hosts"], topo["tenants"]
    h0 = hosts[0]
    add_static(sim, h0)
    assert sim.ping(tenants[0], ft.tenant_ip(2), count=1) == 1  # a learned entry too
    assert fdb(sim, h0)[ft.tenant_mac(2)]["static"] is False
    sim.bpfnetctl("load", "bridge", "--ageing", "1", netns_=h0)  # an upgrade, ageing 1 s
    time.sleep(2.5)
    rows = fdb(sim, h0)
    assert list(rows) == [T1] and rows[T1]["static"] is True
    sim.bpfnetctl("load", "bridge", "--ageing", "300", netns_=h0)
    assert sim.ping(tenants[0], ft.tenant_ip(2), count=1) == 1
    _, out, _ = sim.bpfnetctl("fdb", "flush", "--vni", "10", netns_=h0)
    assert out == "fdb: 1 entries flushed\n"  # the learned one only
    rows = fdb(sim, h0)
    assert list(rows) == [T1] and (rows[T1]["remote"], rows[T1]["static"]) == (ft.underlay(1), True)
    assert [x["static"] for x in ft.ctl_json(sim, h0, "neigh", "show", "--vni", "10")
            if x["ip"] == ft.tenant_ip(1)] == [True]
    ft.flush_neighbours(sim, tenants[0])
    before = ft.counters(sim, h0)
    assert sim.ping(tenants[0], ft.tenant_ip(1), count=1) == 1
    d = ft.delta(ft.counters(sim, h0), before)
    assert (d.get("arp_reply"), d.get("flood")) == (1, None)


def test_fdb_del_removes_the_entry_and_its_bindings(topo):
    sim, hosts, tenants = topo["sim"], topo["hosts"], topo["tenants"]
    h0 = hosts[0]
    add_static(sim, h0)
    _, out, _ = sim.bpfnetctl("fdb", "del", T1, "--vni", "10", netns_=h0)
    assert out == f"fdb: {T1} vni 10 deleted\n"
    assert T1 not in fdb(sim, h0)
    assert [x for x in ft.ctl_json(sim, h0, "neigh", "show") if x["ip"] == ft.tenant_ip(1)] == []
    ft.flush_neighbours(sim, tenants[0])
    before = ft.counters(sim, h0)
    assert sim.ping(tenants[0], ft.tenant_ip(1), count=1) == 1
    d = ft.delta(ft.counters(sim, h0), before)
    assert (d.get("arp_flood"), d.get("arp_reply")) == (1, None)
    assert fdb(sim, h0)[T1]["static"] is False  # learned again, as any MAC


BAD = [
    (["fdb", "add", T1, "--vni", "99", "--remote", "10.99.0.2"], "VNI 99 is not configured"),
    (["fdb", "add", "zz:00", "--vni", "10", "--remote", "10.99.0.2"], "invalid MAC address 'zz:00'"),
    (["fdb", "add", "01:00:5e:00:00:01", "--vni", "10", "--remote", "10.99.0.2"], "not unicast"),
    (["fdb", "add", T1, "--vni", "10", "--remote", "10.99.0.300"], "invalid IP address '10.99.0.300'"),
    (["fdb", "add", T1, "--vni", "10", "--remote", "fd00::2"],
     "--remote fd00::2: not of the underlay's address family (IPv4)"),
    (["fdb", "add", T1, "--vni", "10", "--remote", "239.1.1.1"], "invalid unicast IP address"),
    (["fdb", "add", T1, "--vni", "10", "--remote", "10.99.0.2", "--ip", "192.168.0.2,224.0.0.1"],
     "invalid unicast IP address '224.0.0.1'"),
    (["fdb", "add", T1, "--vni", "10", "--remote", "10.99.0.2", "--ip", "127.0.0.1"],
     "--ip 127.0.0.1: not a unicast tenant address"),
    (["fdb", "del", "02:00:00:0a:00:42", "--vni", "10"], "no FDB entry for 02:00:00:0a:00:42 in VNI 10"),
    (["fdb", "del", T1, "--vni", "99"], "VNI 99 is not configured"),
    (["neigh", "add", "192.168.0.9", "--vni", "99", "--mac", T1], "VNI 99 is not configured"),
    (["neigh", "add", "192.168.0.9", "--vni", "10", "--mac", "ff:ff:ff:ff:ff:ff"], "not unicast"),
    (["neigh", "del", "192.168.0.9", "--vni", "10"], "no binding for 192.168.0.9 in VNI 10"),
    (["neigh", "show", "--vni", "99"], "VNI 99 is not configured"),
]


def test_bad_input_is_one_line_exit_2_and_changes_nothing(topo):
    sim, h0 = topo["sim"], topo["hosts"][0]
    before = ft.ctl_json(sim, h0, "fdb", "show"), ft.ctl_json(sim, h0, "neigh", "show")
    assert bad_input_failures(sim, h0, BAD, run_cli) == []
    after = ft.ctl_json(sim, h0, "fdb", "show"), ft.ctl_json(sim, h0, "neigh", "show")
    strip = lambda t: ([(r["mac"], r["remote"], r["static"]) for r in t[0]],  # noqa: E731
                       [(r["ip"], r["mac"], r["static"]) for r in t[1]])
    assert strip(after) == strip(before)
