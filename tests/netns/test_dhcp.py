"""DHCP across the mesh: a real dnsmasq on host 0 behind br10, real DHCP
clients (ISC dhclient) on hosts 1 and 2; every DISCOVER, OFFER, REQUEST and
ACK crosses the VXLAN tunnels; the clients then talk on their leases.

     srv 192.168.0.1 (dnsmasq)    c1 (dhclient)               c2 (dhclient)
       br10: bmp0->h1 bmp1->h2     br10: bmp0->h0 bmp1->h2     br10: bmp0->h0 bmp1->h1
        vxlan0                      vxlan0                      vxlan0
        eth0 10.99.0.1              eth0 10.99.0.2              eth0 10.99.0.3
           +------------------ fabric: sw0 (L2) -------------------+

Leases from 192.168.0.100-149 (demos/dhcp.py); MACs c<n>: 02:00:00:0a:dc:0<n>.
"""
import json
import os

import pytest

from conftest import need_root, need_tool

from bpfnet.demos import dhcp as demo
from bpfnet.demos import mesh
from bpfnet.sim import Sim


@pytest.fixture(scope="module")
def topo():
    need_root()
    need_tool("dnsmasq")
    need_tool("dhclient")
    sim = Sim(prefix=f"td{os.getpid() % 100000}")
    try:
        t = demo.build(sim)
        t["sim"] = sim
        t["dhcp"] = demo.start_server(sim, t["server"])
        yield t
    finally:
        sim.cleanup()


def peer_row(sim, host, remote):
    _, out, _ = sim.bpfnetctl("peer", "show", "--json", netns_=host)
    return {r["remote"]: r for r in json.loads(out) if r["vni"] == demo.VNI}[remote]


def test_clients_lease_through_the_tunnels_and_talk_on_their_leases(topo):
    sim, hosts = topo["sim"], topo["hosts"]
    before = {i: peer_row(sim, hosts[i], mesh.underlay_ip(0)) for i in (1, 2)}
    leases = [demo.lease(sim, ns, f"c{n}") for n, ns in enumerate(topo["clients"], start=1)]
    assert all(leases), leases
    ips = [g["ip"] for g in leases]
    assert len(set(ips)) == 2 and all(demo.in_range(ip) for ip in ips)
    assert all(g["server"] == demo.SERVER_IP and g["prefixlen"] == 24 for g in leases)
    # dnsmasq handed them out to these MACs, which live on h1 and h2
    with open(topo["dhcp"]["leases"]) as f:
        table = {ln.split()[1]: ln.split()[2] for ln in f if ln.strip()}
    assert table == {demo.client_mac(1): ips[0], demo.client_mac(2): ips[1]}
    with open(topo["dhcp"]["log"]) as f:
        log = f.read().splitlines()
    for n in (1, 2):
        for msg in ("DHCPDISCOVER(eth0)", "DHCPOFFER(eth0)", "DHCPREQUEST(eth0)", "DHCPACK(eth0)"):
            assert any(msg in ln and demo.client_mac(n) in ln for ln in log), (msg, n)
    # the exchange went through each client host's port towards h0, both ways
    for i in (1, 2):
        after = peer_row(sim, hosts[i], mesh.underlay_ip(0))
        assert after["tx_pkts"] - before[i]["tx_pkts"] >= 2   # DISCOVER, REQUEST
        assert after["rx_pkts"] - before[i]["rx_pkts"] >= 2   # OFFER, ACK
    # the clients reach each other, and the server, on the leased addresses
    c1, c2 = topo["clients"]
    assert sim.ping_until(c1, ips[1], tries=5)
    assert sim.ping(c1, ips[1], count=3) == 3
    assert sim.ping(c2, ips[0], count=3) == 3
    assert sim.ping(c2, demo.SERVER_IP, count=2) == 2


def test_no_lease_without_a_tunnel_to_the_server(topo):
    """h2 forgets h0: its DISCOVERs reach only h1, whose split horizon keeps
    them from h0; no lease. With the peer back, a lease comes."""
    sim, hosts = topo["sim"], topo["hosts"]
    late = mesh.tenant(sim, hosts[2], "c9", None, f"br{demo.VNI}", mac=demo.client_mac(9))
    code, _, err = sim.bpfnetctl("peer", "del", mesh.underlay_ip(0), "--vni", str(demo.VNI),
                                 netns_=hosts[2], check=False)
    assert (code, err) == (0, "")
    try:
        st = mesh.counters(sim, hosts[1])
        assert demo.lease(sim, late, "c9-cut", timeout=3) is None
        assert mesh.counters(sim, hosts[1])["drop_split_horizon"] > st["drop_split_horizon"]
        with open(topo["dhcp"]["log"]) as f:
            assert demo.client_mac(9) not in f.read()
    finally:
        sim.bpfnetctl("peer", "add", mesh.underlay_ip(0), "--vni", str(demo.VNI),
                      "--bridge", f"br{demo.VNI}", netns_=hosts[2])
    got = demo.lease(sim, late, "c9")
    assert got is not None and demo.in_range(got["ip"])
    assert sim.ping_until(late, demo.SERVER_IP, tries=5)
