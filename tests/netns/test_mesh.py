"""The mesh (distributed bridge without multicast) end to end: three hosts in
a full mesh, two VNIs, one tenant subnet in both VNIs; then the same on an
IPv6-only underlay; then unload and bad input on one host.

     h0v10 .1  h0v20 .1          h1v10 .2  h1v20 .2          h2v10 .3  h2v20 .3
     br10: bmp0->h1 bmp1->h2     br10: bmp0->h0 bmp1->h2     br10: bmp0->h0 bmp1->h1
     br20: bmp2->h1 bmp3->h2     br20: bmp2->h0 bmp3->h2     br20: bmp2->h0 bmp3->h1
        vxlan0 (external)           vxlan0                      vxlan0
        eth0 10.99.0.1              eth0 10.99.0.2              eth0 10.99.0.3
           |                           |                           |    x3 10.99.0.4
           +------------------ fabric: sw0 (L2) -------------------+----+ (no peer)

Tenants are 192.168.0.<host+1>/24 in both VNIs, MACs 02:00:00:<vni>:00:<host+1>,
without IPv6 and without ARP re-probes (Sim.quiet, Sim.tenant), so the
counters move only with what a test sends. IPv6 underlay: fd00:99::1..3/64,
no IPv4 on eth0.
"""
import json
import os
import socket
import subprocess

import pytest

from conftest import (BPFNETCTL, LONE_IP, bad_input_failures, built, ctl,
                      lone_tenant, need_tool, pings_lost, snapshot, users_devices)
from packets import vxlan

from bpfnet import libbpf
from bpfnet.demos import mesh as demo
from bpfnet.sim import wait_for

PEER_KEYS = {"remote", "vni", "bridge", "port", "rx_pkts", "rx_bytes", "tx_pkts", "tx_bytes"}


@pytest.fixture(scope="module")
def topo():
    def build(sim):
        t = demo.build(sim)
        t["x3"] = sim.host("x3", "10.99.0.4/24")  # on the fabric, nobody's peer
        return t
    yield from built("tm", build)


def counters(topo):
    return [demo.counters(topo["sim"], h) for h in topo["hosts"]]


def delta(after, before, keys=("rx", "tx", "drop_split_horizon", "drop_unknown_peer")):
    return [{k: a[k] - b[k] for k in keys} for a, b in zip(after, before)]


def peers(topo, host):
    code, out, _ = ctl(topo, "peer", "show", "--json", host=host)
    assert code == 0
    return {(r["remote"], r["vni"]): r for r in json.loads(out)}


def tenants(topo):
    return {f"h{i}v{vni}": ns for (i, vni), ns in topo["tenants"].items()}


# --- broadcast, split horizon, isolation ---------------------------------------

@pytest.mark.parametrize("src,vni", [(0, 10), (2, 20)])
def test_a_broadcast_reaches_each_other_host_exactly_once(topo, src, vni):
    n = 5
    before, pb = counters(topo), peers(topo, (src + 1) % 3)
    got = demo.broadcast_copies(topo["tenants"][(src, vni)], tenants(topo), count=n, expect=2 * n)
    want = {name: n if name.endswith(f"v{vni}") and name != f"h{src}v{vni}" else 0
            for name in tenants(topo)}
    assert got == want  # once per other host, never back to the sender, never in the other VNI
    d = delta(counters(topo), before)
    for i in range(3):
        if i == src:  # one copy per peer, nothing comes back
            assert d[i] == {"rx": 0, "tx": 2 * n, "drop_split_horizon": 0, "drop_unknown_peer": 0}
        else:  # delivered once; the copy the bridge floods to the other peer is dropped
            assert d[i] == {"rx": n, "tx": 0, "drop_split_horizon": n, "drop_unknown_peer": 0}
    # the per-peer counters of a receiver say where it came from
    pa = peers(topo, (src + 1) % 3)
    sender = demo.underlay_ip(src)
    assert pa[(sender, vni)]["rx_pkts"] - pb[(sender, vni)]["rx_pkts"] == n
    assert pa[(sender, vni)]["rx_bytes"] - pb[(sender, vni)]["rx_bytes"] == n * 60
    assert all(pa[k]["tx_pkts"] == pb[k]["tx_pkts"] for k in pa)


def test_every_pair_of_hosts_talks_in_each_vni(topo):
    assert pings_lost(topo, count=2) == (12, [])


def test_vnis_stay_apart_with_the_same_subnet(topo):
    sim = topo["sim"]
    lone_tenant(topo)  # only in VNI 20, on h1; h0's VNI 20 tenant reaches it
    h0v10 = topo["tenants"][(0, 10)]
    try:
        assert sim.ping(h0v10, LONE_IP, count=1, deadline=1) == 0
    finally:  # stop the ARP retries for .99, so later tests count only their frames
        with sim.ipr(h0v10) as ipr:
            ipr.neigh("del", dst=LONE_IP, ifindex=ipr.link_lookup(ifname="eth0")[0])


def vxlan_from(sim, ns, dst, vni, frames):
    """Sends VXLAN datagrams (``frames`` inside, VNI ``vni``) from ``ns`` to
    ``dst``:4789 through a plain UDP socket: a VTEP the mesh never heard of."""
    from pyroute2 import netns
    netns.pushns(ns)
    try:
        s = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET, socket.SOCK_DGRAM)
    finally:
        netns.popns()
    try:
        for f in frames:
            s.sendto(bytes(vxlan(vni) / f), (dst, 4789))
    finally:
        s.close()


@pytest.mark.parametrize("sender,vni", [("x3", 10), ("h1", 30), ("h1", 20)],
                         ids=["stranger", "peer-in-unknown-vni", "peer-known-vni"])
def test_frames_from_an_unknown_vni_remote_are_dropped_and_counted(topo, sender, vni):
    sim = topo["sim"]
    ns = topo["x3"] if sender == "x3" else topo["hosts"][1]
    n = 4
    before = counters(topo)
    with demo.Listener(tenants(topo)) as lis:
        vxlan_from(sim, ns, demo.underlay_ip(0), vni, [lis.frame(i, src="02:00:00:00:bb:09")
                                                       for i in range(n)])
        if sender == "h1" and vni == 20:  # the control: a real peer in its VNI gets through
            assert lis.wait(expect=n) == {k: n if k == "h0v20" else 0 for k in lis.got}
            assert delta(counters(topo), before)[0]["rx"] == n
            return
        wait_for(lambda: demo.counters(sim, topo["hosts"][0])["drop_unknown_peer"]
                 - before[0]["drop_unknown_peer"] >= n)
        assert lis.wait(expect=0, linger=0.3) == {k: 0 for k in lis.got}
    assert delta(counters(topo), before)[0] == {"rx": 0, "tx": 0, "drop_split_horizon": 0,
                                                "drop_unknown_peer": n}


# --- read-outs ------------------------------------------------------------------

def test_peer_show_json(topo):
    sim = topo["sim"]
    assert sim.ping_until(topo["tenants"][(0, 10)], demo.tenant_ip(1))
    code, out, err = ctl(topo, "peer", "show", "--json")
    assert (code, err) == (0, "")
    rows = json.loads(out)
    assert all(set(r) == PEER_KEYS for r in rows)
    assert [(r["remote"], r["vni"], r["bridge"], r["port"]) for r in rows] == [
        ("10.99.0.2", 10, "br10", "bmp0"), ("10.99.0.3", 10, "br10", "bmp1"),
        ("10.99.0.2", 20, "br20", "bmp2"), ("10.99.0.3", 20, "br20", "bmp3")]
    r = rows[0]
    assert r["rx_pkts"] > 0 and r["tx_pkts"] > 0 and r["rx_bytes"] >= 60 * r["rx_pkts"]
    code, out, _ = ctl(topo, "peer", "show")
    assert out.splitlines()[0].split() == ["REMOTE", "VNI", "BRIDGE", "PORT", "RX_PKTS",
                                           "RX_BYTES", "TX_PKTS", "TX_BYTES"]
    assert len(out.splitlines()) == 5


def test_status_shows_ports_per_vni(topo):
    code, out, _ = ctl(topo, "status", "--json", host=1)
    st = json.loads(out)["functions"]["mesh"]
    assert st["vnis"] == [
        {"vni": 10, "bridge": "br10", "ports": ["bmp0", "bmp1"], "peers": ["10.99.0.1", "10.99.0.3"]},
        {"vni": 20, "bridge": "br20", "ports": ["bmp2", "bmp3"], "peers": ["10.99.0.1", "10.99.0.3"]}]
    assert (st["device"], st["local"], st["udp_port"]) == ("vxlan0", "10.99.0.2", 4789)
    hooks = {(a["device"], a["hook"]): a["program"] for a in st["attach"]}
    assert hooks == {("vxlan0", "ingress"): "mesh_ingress", ("bmp0", "egress"): "mesh_egress",
                     ("bmp1", "egress"): "mesh_egress", ("bmp2", "egress"): "mesh_egress",
                     ("bmp3", "egress"): "mesh_egress"}
    assert st["maps"]["mesh_peers"] == {"entries": 4, "max_entries": 4096}
    assert st["maps"]["mesh_ports"]["entries"] == 4
    assert set(st["counters"]) == {"rx", "tx", "drop_no_tunnel", "drop_unknown_peer",
                                   "drop_split_horizon", "drop_no_config", "drop_tunnel_key"}
    code, out, _ = ctl(topo, "status", host=1)
    assert code == 0 and "bmp0,bmp1" in out and "mesh_egress" in out


def test_pinned_maps_dump_with_named_fields(topo):
    need_tool("bpftool")
    sim = topo["sim"]
    d = os.path.join(sim.pin_root, topo["hosts"][0], "mesh")
    dump = lambda m: json.loads(subprocess.run(  # noqa: E731
        ["bpftool", "-j", "map", "dump", "pinned", os.path.join(d, m)],
        check=True, capture_output=True, text=True).stdout)
    e = dump("mesh_peers")[0]["formatted"]
    assert set(e["key"]) == {"vni", "pad", "remote"}
    assert set(e["value"]) == {"port", "id", "rx_pkts", "rx_bytes"}
    e = dump("mesh_ports")[0]["formatted"]
    assert {"remote", "vni", "tx_pkts", "tx_bytes"} <= set(e["value"])
    assert {"rx", "drop_split_horizon", "drop_unknown_peer"} <= \
        set(dump("mesh_stats")[0]["formatted"]["values"][0]["value"])
    for name in ("mesh_cfg", "mesh_peers", "mesh_ports", "mesh_vnis", "mesh_stats",
                 "mesh_ingress", "mesh_egress"):
        assert os.stat(os.path.join(d, name)).st_mode & 0o777 == 0o600
    assert os.stat(d).st_mode & 0o777 == 0o700


# --- changes on a live mesh -----------------------------------------------------

def prog_id(topo, prog, host=0):
    fd = libbpf.obj_get(os.path.join(topo["sim"].pin_root, topo["hosts"][host], "mesh", prog))
    try:
        return libbpf.prog_info(fd).id
    finally:
        os.close(fd)


def test_second_load_upgrades_programs_and_keeps_maps(topo):
    sim = topo["sim"]
    assert sim.ping_until(topo["tenants"][(0, 10)], demo.tenant_ip(2))
    ids = prog_id(topo, "mesh_ingress"), prog_id(topo, "mesh_egress")
    before, st_before = peers(topo, 0), counters(topo)[0]
    code, out, _ = ctl(topo, "load", "mesh")
    assert (code, out.strip()) == (0, "mesh: upgraded on vxlan0; nothing changed")
    assert (prog_id(topo, "mesh_ingress"), prog_id(topo, "mesh_egress")) != ids
    after = peers(topo, 0)
    assert set(after) == set(before)
    assert all(after[k]["port"] == before[k]["port"] and after[k]["rx_pkts"] >= before[k]["rx_pkts"]
               for k in before)
    assert counters(topo)[0]["rx"] >= st_before["rx"] > 0
    code, out, _ = ctl(topo, "status", "--json")
    attach = json.loads(out)["functions"]["mesh"]["attach"]
    assert len(attach) == 5 and all(a["program"] for a in attach)
    assert sim.ping(topo["tenants"][(0, 10)], demo.tenant_ip(2), count=3) == 3


def test_peer_del_cuts_one_peer_and_peer_add_restores_it(topo):
    """h0 forgets h2 in VNI 10: h0<->h2 stops in VNI 10 (h2's frames are now
    unknown at h0), h0<->h1 and VNI 20 go on; h1 does not relay (split
    horizon). Adding the peer back makes a fresh port."""
    sim = topo["sim"]
    code, out, err = ctl(topo, "peer", "del", "10.99.0.3", "--vni", "10")
    assert (code, out.strip(), err) == (0, "peer 10.99.0.3 vni 10: deleted", "")
    with sim.ipr(topo["hosts"][0]) as ipr:
        assert not ipr.link_lookup(ifname="bmp1") and not ipr.link_lookup(ifname="bmq1")
    assert set(peers(topo, 0)) == {("10.99.0.2", 10), ("10.99.0.2", 20), ("10.99.0.3", 20)}
    before = counters(topo)
    got = demo.broadcast_copies(topo["tenants"][(0, 10)], tenants(topo), count=3, expect=3)
    assert got == {k: 3 if k == "h1v10" else 0 for k in got}
    got = demo.broadcast_copies(topo["tenants"][(2, 10)], tenants(topo), count=3, expect=3)
    assert got == {k: 3 if k == "h1v10" else 0 for k in got}
    d = delta(counters(topo), before)
    assert d[0] == {"rx": 0, "tx": 3, "drop_split_horizon": 0, "drop_unknown_peer": 3}
    assert d[1] == {"rx": 6, "tx": 0, "drop_split_horizon": 6, "drop_unknown_peer": 0}
    assert sim.ping(topo["tenants"][(0, 20)], demo.tenant_ip(2), count=2) == 2
    code, out, _ = ctl(topo, "peer", "add", "10.99.0.3", "--vni", "10", "--bridge", "br10")
    assert (code, out.strip()) == (0, "peer 10.99.0.3 vni 10: port bmp4 in bridge br10")
    got = demo.broadcast_copies(topo["tenants"][(0, 10)], tenants(topo), count=3, expect=6)
    assert got == {k: 3 if k in ("h1v10", "h2v10") else 0 for k in got}
    assert sim.ping(topo["tenants"][(2, 10)], demo.tenant_ip(0), count=2) == 2


# --- IPv6-only underlay -----------------------------------------------------------

def test_ipv6_only_underlay(sim):
    t = demo.build(sim, vnis=(10,), family=6)
    for h in t["hosts"]:
        with sim.ipr(h) as ipr:
            eth0 = ipr.link_lookup(ifname="eth0")[0]
            assert list(ipr.get_addr(index=eth0, family=socket.AF_INET)) == []
    rows = demo.check_all_pairs(sim, t, vnis=(10,), count=2)
    assert [r for r in rows if r["received"] != 2] == []
    before = [demo.counters(sim, h) for h in t["hosts"]]
    rx = {f"h{i}v10": ns for (i, _), ns in t["tenants"].items()}
    assert demo.broadcast_copies(t["tenants"][(1, 10)], rx, count=4, expect=8) == \
        {"h0v10": 4, "h1v10": 0, "h2v10": 4}
    d = delta([demo.counters(sim, h) for h in t["hosts"]], before)
    assert d[1]["tx"] == 8 and d[0]["rx"] == d[2]["rx"] == 4
    assert d[0]["drop_split_horizon"] == d[2]["drop_split_horizon"] == 4
    code, out, _ = sim.bpfnetctl("peer", "show", "--json", netns_=t["hosts"][0])
    assert [(r["remote"], r["port"]) for r in json.loads(out)] == [("fd00:99::2", "bmp0"),
                                                                   ("fd00:99::3", "bmp1")]
    code, out, _ = sim.bpfnetctl("status", "--json", netns_=t["hosts"][0])
    st = json.loads(out)["functions"]["mesh"]
    assert st["local"] == "fd00:99::1"
    with sim.ipr(t["hosts"][0]) as ipr:  # sized for the IPv6 outer header
        assert ipr.get_links(ipr.link_lookup(ifname="vxlan0")[0])[0].get_attr("IFLA_MTU") == 1430
    code, _, err = sim.bpfnetctl("peer", "add", "10.99.0.5", "--vni", "10", "--bridge", "br10",
                                 netns_=t["hosts"][0], check=False)
    assert code == 2 and "address family" in err


# --- unload and bad input, on one host (``host``: conftest) ----------------------

def cli(sim, ns, *argv):
    """bpfnetctl's exit code, stdout and stderr, in-process: the same main()
    and error handling without a Python start per call (seconds each in the
    emulated VM); test_unknown_namespace runs ./bpfnetctl as a process."""
    return sim.bpfnetctl(*argv, netns_=ns, check=False)


def test_unload_leaves_no_pin_filter_or_device(host):
    sim, h = host
    before = snapshot(sim, h)
    assert cli(sim, h, "load", "mesh")[0] == 0
    for argv in (["10.99.0.2", "--vni", "10", "--bridge", "br10"],
                 ["10.99.0.3", "--vni", "10", "--bridge", "br10"],
                 ["10.99.0.2", "--vni", "20", "--bridge", "br20"]):
        assert cli(sim, h, "peer", "add", *argv)[0] == 0
    assert cli(sim, h, "peer", "del", "10.99.0.2", "--vni", "10")[0] == 0
    assert snapshot(sim, h) != before
    code, out, err = cli(sim, h, "unload", "mesh")
    assert (code, out, err) == (0, "mesh: unloaded\n", "")
    assert snapshot(sim, h) == before
    assert not os.path.exists(os.path.join(sim.pin_root, h))


def test_unload_keeps_a_users_bridge_and_vxlan(host):
    sim, h = host
    users_devices(sim, h)
    before = snapshot(sim, h)
    assert cli(sim, h, "load", "mesh", "--device", "vx9")[0] == 0
    assert cli(sim, h, "peer", "add", "10.99.0.2", "--vni", "10", "--bridge", "mybr")[0] == 0
    assert cli(sim, h, "unload", "mesh")[0] == 0
    after = snapshot(sim, h)
    assert after[0] == before[0]  # the user's devices stay, ours are gone
    assert after[2] == []


def test_a_half_made_peer_is_cleared(host):
    """What a `peer add` killed half-way leaves (its intent entry, port 0,
    and the veth it had made) blocks nothing: the same `peer add` clears and
    redoes it, `peer del` and `unload` clear it."""
    from bpfnet.abi import MeshPeerKey, MeshPeerVal, ip_pack
    from bpfnet.functions.base import PinDir
    from bpfnet.functions.mesh import Mesh
    from pyroute2 import netns
    sim, h = host
    before = snapshot(sim, h)
    assert cli(sim, h, "load", "mesh")[0] == 0

    def half_made(remote, n):
        netns.pushns(h)
        try:
            m = Mesh(PinDir(sim.pin_root, h))
            try:
                m.map("mesh_peers")[MeshPeerKey(vni=10, remote=ip_pack(remote))] = MeshPeerVal(id=n)
                m.net.add_veth(f"bmp{n}", f"bmq{n}")
            finally:
                m.close()
        finally:
            netns.popns()
    half_made("10.99.0.2", 7)
    code, out, _ = cli(sim, h, "peer", "show", "--json")
    assert [(r["remote"], r["port"]) for r in json.loads(out)] == [("10.99.0.2", None)]
    code, out, err = cli(sim, h, "peer", "add", "10.99.0.2", "--vni", "10", "--bridge", "br10")
    assert (code, err) == (0, "") and "port bmp0" in out
    with sim.ipr(h) as ipr:
        assert not ipr.link_lookup(ifname="bmp7")
    half_made("10.99.0.3", 8)
    assert cli(sim, h, "peer", "del", "10.99.0.3", "--vni", "10")[0] == 0
    half_made("10.99.0.4", 9)
    assert cli(sim, h, "unload", "mesh")[0] == 0
    assert snapshot(sim, h) == before


BAD = [
    # (argv, message fragment) -- every one exits 2 with one line and changes nothing
    (["peer", "add", "10.99.0.300", "--vni", "10", "--bridge", "br10"], "invalid IP address '10.99.0.300'"),
    (["peer", "add", "10.99.0.0/24", "--vni", "10", "--bridge", "br10"], "invalid IP address"),
    (["peer", "add", "239.1.1.1", "--vni", "10", "--bridge", "br10"], "invalid unicast IP"),
    (["peer", "add", "0.0.0.0", "--vni", "10", "--bridge", "br10"], "invalid unicast IP"),
    (["peer", "add", "10.99.0.2", "--vni", "0", "--bridge", "br10"], "invalid VNI '0'"),
    (["peer", "add", "10.99.0.2", "--vni", "16777216", "--bridge", "br10"], "invalid VNI '16777216'"),
    (["peer", "add", "10.99.0.2", "--vni", "ten", "--bridge", "br10"], "invalid VNI 'ten'"),
    (["peer", "add", "10.99.0.2", "--bridge", "br10"], "--vni"),
    (["peer", "add", "10.99.0.2", "--vni", "10"], "--bridge"),
    (["peer", "add", "--vni", "10", "--bridge", "br10"], "REMOTE_IP"),
    (["peer", "add", "10.99.0.2", "--vni", "10", "--bridge", "a-very-long-bridge-name"],
     "invalid interface name"),
    (["peer", "add", "10.99.0.2", "--vni", "10", "--bridge", "eth0"], "is not a bridge"),
    (["peer", "add", "fd00:99::2", "--vni", "10", "--bridge", "br10"], "address family"),
    (["peer", "add", "10.99.0.1", "--vni", "10", "--bridge", "br10"], "is an address of this host"),
    (["peer", "add", "127.0.0.1", "--vni", "10", "--bridge", "br10"], "is an address of this host"),
    (["peer", "add", "10.99.0.2", "--vni", "5", "--bridge", "br5"], "peer 10.99.0.2 is already in VNI 5"),
    (["peer", "add", "10.99.0.3", "--vni", "5", "--bridge", "br6"], "VNI 5 is in bridge br5, not br6"),
    (["peer", "add", "10.99.0.3", "--vni", "6", "--bridge", "br5"], "bridge br5 carries VNI 5"),
    (["peer", "del", "10.99.0.9", "--vni", "5"], "peer 10.99.0.9 is not in VNI 5"),
    (["peer", "del", "10.99.0.2", "--vni", "6"], "peer 10.99.0.2 is not in VNI 6"),
    (["peer", "del", "10.99.0.2"], "--vni"),
    (["peer", "del", "nonsense", "--vni", "5"], "invalid IP address 'nonsense'"),
    (["peer", "show", "--vni", "5"], "unrecognized arguments"),
    (["peer", "frob"], "invalid choice"),
    (["load", "mesh", "--port", "0"], "invalid port '0'"),
    (["load", "mesh", "--port", "70000"], "invalid port '70000'"),
    (["load", "mesh", "--port", "4790"],
     "--port: mesh is loaded with port 4789; `bpfnetctl unload mesh` is needed to change it"),
    (["load", "mesh", "--device", "vx 0"], "invalid interface name"),
    (["load", "mesh", "--device", "vx9"],
     "--device: mesh is loaded with device vxlan0; `bpfnetctl unload mesh` is needed to change it"),
    (["load", "mesh", "--local", "1.2.3"], "invalid IP address"),
    (["load", "mesh", "--local", "10.99.0.9"], "--local 10.99.0.9 is not an address of eth0"),
    (["load", "mesh", "--underlay", "bad/name"], "invalid interface name"),
]


def test_bad_input_exits_2_with_one_line_and_changes_nothing(host):
    sim, h = host
    assert cli(sim, h, "load", "mesh", "--local", "10.99.0.1")[0] == 0
    assert cli(sim, h, "peer", "add", "10.99.0.2", "--vni", "5", "--bridge", "br5")[0] == 0
    assert bad_input_failures(sim, h, BAD, cli) == []


def test_bad_input_before_load(host):
    sim, h = host
    with sim.ipr(h) as ipr:  # a device that is not VXLAN, and one that is not external
        ipr.link("add", ifname="vx7", kind="vxlan", vxlan_id=7, vxlan_port=4790)
    before = snapshot(sim, h)
    for argv, frag in [
        (["load", "mesh", "--underlay", "nosuch0"], "device 'nosuch0' does not exist"),
        (["load", "mesh", "--local", "10.99.0.9"], "is not an address of eth0"),
        (["load", "mesh", "--local", "fd00::1"], "is not an address of eth0"),
        (["load", "mesh", "--device", "eth0"], "is not a VXLAN device"),
        (["load", "mesh", "--device", "vx7"], "not in external (collect_md) mode"),
        (["peer", "add", "10.99.0.2", "--vni", "10", "--bridge", "br10"], "mesh is not loaded"),
        (["peer", "del", "10.99.0.2", "--vni", "10"], "mesh is not loaded"),
        (["peer", "show"], "mesh is not loaded"),
        (["unload", "mesh"], "mesh is not loaded"),
    ]:
        code, out, err = cli(sim, h, *argv)
        assert code == 2, (argv, err)
        assert err.count("\n") == 1 and frag in err, (argv, err)
        assert snapshot(sim, h) == before, argv


def test_a_bridge_owned_vxlan_device_is_refused(host):
    """A mesh and a bridge cannot share one VXLAN device: the mesh says so
    and changes nothing; on a device of its own it loads beside the bridge."""
    sim, h = host
    assert cli(sim, h, "load", "bridge")[0] == 0
    before = snapshot(sim, h)
    code, out, err = cli(sim, h, "load", "mesh")
    assert code == 2
    assert err == ("bpfnetctl: error: load mesh: device 'vxlan0' already carries bpfnet's "
                   "bridge_ingress: give the mesh its own --device\n")
    assert snapshot(sim, h) == before
    code, _, err = cli(sim, h, "load", "mesh", "--device", "vxm", "--port", "4790")
    assert (code, err) == (0, "")
    assert cli(sim, h, "unload", "mesh")[0] == 0
    assert cli(sim, h, "unload", "bridge")[0] == 0


def test_unknown_namespace(sim):
    """As a user runs it: ./bpfnetctl, a process."""
    r = subprocess.run([BPFNETCTL, "--pin-root", sim.pin_root, "--netns", "bpfnet-no-such-ns",
                        "peer", "show"], capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == "bpfnetctl: error: peer show: network namespace 'bpfnet-no-such-ns' does not exist\n"
