"""Floods leave by the underlay, each VNI's group is joined, the underlay
is chosen as a user expects: on hosts built as a user builds them (a
namespace, a NIC on an L2 fabric, addresses, only connected routes; a
management NIC with the default route where a test says so). What crosses
is counted on the wire (AF_PACKET on each host's NICs) and at the tenants.

    mgmt router m<i> --- mgmt0 10.1.<i>.1 (default route, where given)
                         h<i>: vxlan0 + br<vni>/bnp<vni> + tenants
                         eth0 10.99.0.<i+1>/24, fd99::<i+1>/64 --- fabric sw0
"""
import json
import select
import socket
import struct
import subprocess

import pytest
from netaddr import IPAddress
from pyroute2 import netns

from conftest import need_tool, run_cli, snapshot

from bpfnet.demos.mesh import Listener, send_frames
from bpfnet.netlink import BPFNET_RTPROT

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
VXLAN_PORT = 4789

cli = run_cli


# --- hosts, as a user makes them ---------------------------------------------------

def fabric(sim, snooping: bool = False) -> str:
    """The underlay switch. ``snooping``: IGMP/MLD snooping with the switch
    as querier, and no flooding of unregistered multicast to host ports, so
    a group's frames reach only the ports whose host joined it."""
    ns = sim.ns("fab")
    sim.sysctl(ns, "net.ipv6.conf.default.accept_dad", "0")
    # a Linux bridge forwards by its MDB only while a querier exists and
    # not for a query response interval after its querier is turned on (and
    # after each query): 0.1 s, set first; one query at start, the next in
    # 3000 s (memberships are learned from the hosts' own reports)
    kw = dict(br_mcast_query_response_intvl=10, br_mcast_startup_query_cnt=1,
              br_mcast_query_intvl=300000) if snooping else {}
    with sim.ipr(ns) as ipr:
        ipr.link("add", ifname="sw0", kind="bridge", br_mcast_snooping=int(snooping), **kw)
        sw0 = ipr.link_lookup(ifname="sw0")[0]
        if snooping:
            ipr.link("set", index=sw0, kind="bridge", br_mcast_querier=1)
        ipr.link("set", index=sw0, state="up")
    return ns


def host(sim, fab: str, i: int, snooping: bool = False, mgmt: bool = False) -> str:
    """h<i>: eth0 on the fabric with an IPv4 and an IPv6 address (their
    connected routes only); ``mgmt``: a second NIC, mgmt0, towards its own
    router m<i>, holding both default routes. Devices made later (bpfnet's,
    the tenants') get no IPv6 and send no link-local IGMP, so the only
    floods are those a test sends."""
    ns = sim.ns(f"h{i}")
    sim.sysctl(ns, "net.ipv6.conf.default.accept_dad", "0")
    sim.veth(ns, "eth0", fab, f"p{i}")
    sim.enslave(fab, f"p{i}", "sw0")
    if snooping:
        with sim.ipr(fab) as ipr:
            ipr.brport("set", index=ipr.link_lookup(ifname=f"p{i}")[0], mcast_flood=0)
    sim.addr(ns, "eth0", f"10.99.0.{i + 1}/24")
    sim.addr(ns, "eth0", f"fd99::{i + 1}/64")
    if mgmt:
        m = sim.ns(f"m{i}")
        sim.veth(ns, "mgmt0", m, "down0")
        sim.addr(ns, "mgmt0", f"10.1.{i}.1/24")
        sim.addr(ns, "mgmt0", f"fd01:{i}::1/64")
        sim.addr(m, "down0", f"10.1.{i}.254/24")
        sim.addr(m, "down0", f"fd01:{i}::fe/64")
        sim.route(ns, "0.0.0.0/0", "mgmt0", gateway=f"10.1.{i}.254")
        sim.route(ns, "::/0", "mgmt0", gateway=f"fd01:{i}::fe")
    sim.quiet(ns, everything=False)
    return ns


def ctl(sim, ns, *argv):
    code, out, err = cli(sim, ns, *argv)
    assert code == 0, (argv, err)
    return out


def jctl(sim, ns, *argv):
    return json.loads(ctl(sim, ns, *argv, "--json"))


def counters(sim, ns, function="bridge") -> dict:
    return jctl(sim, ns, "status")["functions"][function]["counters"]


# --- what crosses a NIC ------------------------------------------------------------

class Wire:
    """The VXLAN frames (UDP to 4789) a NIC sends and receives, read with
    an AF_PACKET socket opened in the host's namespace: a list of
    (direction "out"|"in", outer destination, VNI)."""

    def __init__(self, ns: str, ifname: str):
        netns.pushns(ns)
        try:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            self.sock.bind((ifname, ETH_P_ALL))
        finally:
            netns.popns()
        self.sock.setblocking(False)
        self.frames: list[tuple[str, IPAddress, int]] = []

    @staticmethod
    def parse(data: bytes):
        etype = struct.unpack("!H", data[12:14])[0]
        if etype == 0x0800 and data[23] == 17:
            dst, l4 = IPAddress(socket.inet_ntoa(data[30:34])), 14 + (data[14] & 0xF) * 4
        elif etype == 0x86DD and data[20] == 17:
            dst, l4 = IPAddress(socket.inet_ntop(socket.AF_INET6, data[38:54])), 54
        else:
            return None
        if struct.unpack("!H", data[l4 + 2:l4 + 4])[0] != VXLAN_PORT:
            return None
        return dst, int.from_bytes(data[l4 + 12:l4 + 15], "big")

    def read(self, linger: float = 0.5) -> list:
        while select.select([self.sock], [], [], linger)[0]:
            while True:
                try:
                    data, addr = self.sock.recvfrom(65535)
                except BlockingIOError:
                    break
                v = self.parse(data)
                if v:
                    self.frames.append(("out" if addr[2] == PACKET_OUTGOING else "in", *v))
        return self.frames

    def count(self, direction: str | None = None, dst=None, vni: int | None = None) -> int:
        return sum(1 for d, ip, v in self.read(0.2) if direction in (None, d)
                   and (dst is None or ip == IPAddress(dst)) and vni in (None, v))

    def close(self):
        self.sock.close()


@pytest.fixture
def wires():
    opened = []

    def wire(ns, ifname):
        w = Wire(ns, ifname)
        opened.append(w)
        return w
    try:
        yield wire
    finally:
        for w in opened:
            w.close()


def flood_routes(sim, ns) -> dict:
    with sim.ipr(ns) as ipr:
        return {r.get_attr("RTA_DST"): ipr.get_links(r.get_attr("RTA_OIF"))[0].get_attr("IFLA_IFNAME")
                for fam in (socket.AF_INET, socket.AF_INET6)
                for r in ipr.get_routes(family=fam, table=255) if r["proto"] == BPFNET_RTPROT}


def igmp_groups(sim, ns, ifname="eth0") -> set:
    """The groups ``ifname`` of ``ns`` is a member of, read by the test
    itself from /proc/net/igmp and igmp6 inside the namespace."""
    from bpfnet.netlink import Net
    netns.pushns(ns)
    try:
        with Net() as net:
            return {str(g) for g in net.joined_groups(net.index(ifname))
                    if not (g.is_link_local() or str(g).startswith(("224.0.0.", "ff01:", "ff02:")))}
    finally:
        netns.popns()


# --- floods leave by the underlay --------------------------------------------------

@pytest.mark.parametrize("group", ["239.1.1.1", "ff0e::1"], ids=["ipv4", "ipv6"])
def test_floods_leave_by_the_underlay_not_by_the_default_route(sim, wires, group):
    """Two hosts whose default routes (IPv4 and IPv6) point at a management
    NIC: every VXLAN frame the bridge sends leaves by eth0, as many as its
    counters say, none by mgmt0; the tenants ping each other."""
    fab = fabric(sim)
    hosts = [host(sim, fab, i, mgmt=True) for i in range(2)]
    tenants = []
    for i, h in enumerate(hosts):
        ctl(sim, h, "load", "bridge", "--underlay", "eth0", "--group", group)
        ctl(sim, h, "vni", "add", "10000", "--bridge", "br0")
        tenants.append(sim.tenant(h, f"t{i}", f"192.168.0.{i + 1}/24", "br0",
                                  mac=f"02:00:00:00:00:0{i + 1}"))
        assert flood_routes(sim, h) == {group: "eth0"}
    mgmt = [wires(h, "mgmt0") for h in hosts]
    eth0 = [wires(h, "eth0") for h in hosts]
    before = [counters(sim, h) for h in hosts]
    assert sim.ping(tenants[0], "192.168.0.2", count=3) == 3
    after = [counters(sim, h) for h in hosts]
    for i in range(2):
        d = {k: after[i][k] - before[i][k] for k in ("flood", "tx", "rx")}
        assert d["flood"] >= (1 if i == 0 else 0)  # h0's ARP request, at least
        assert eth0[i].count("out", dst=group, vni=10000) == d["flood"]
        assert eth0[i].count("out") == d["flood"] + d["tx"]
        assert eth0[i].count("in", vni=10000) >= d["rx"] > 0
        assert mgmt[i].count() == 0, mgmt[i].frames


def test_the_mesh_sends_nothing_by_the_management_nic(sim, wires):
    """The mesh's unicast to peers on the underlay's subnet takes the
    connected route, not the default route by mgmt0."""
    fab = fabric(sim)
    hosts = [host(sim, fab, i, mgmt=True) for i in range(2)]
    tenants = []
    for i, h in enumerate(hosts):
        ctl(sim, h, "load", "mesh", "--underlay", "eth0")
        ctl(sim, h, "peer", "add", f"10.99.0.{2 - i}", "--vni", "10", "--bridge", "br10")
        tenants.append(sim.tenant(h, f"t{i}", f"192.168.0.{i + 1}/24", "br10"))
    mgmt = [wires(h, "mgmt0") for h in hosts]
    eth0 = [wires(h, "eth0") for h in hosts]
    before = [counters(sim, h, "mesh")["tx"] for h in hosts]
    assert sim.ping(tenants[0], "192.168.0.2", count=3) == 3
    for i, h in enumerate(hosts):
        tx = counters(sim, h, "mesh")["tx"] - before[i]
        assert tx >= 4  # ARP and 3 pings, or their replies
        assert eth0[i].count("out", dst=f"10.99.0.{2 - i}", vni=10) == tx
        assert mgmt[i].count() == 0, mgmt[i].frames


def test_no_route_at_all_and_the_kernels_own_vxlan_as_peer(sim, wires):
    """Hosts with nothing but connected routes: bpfnet on h0 talks to the
    kernel's own `vxlan id 10000 group 239.1.1.1 dev eth0` on h1."""
    need_tool("ip")
    fab = fabric(sim)
    h0, h1 = host(sim, fab, 0), host(sim, fab, 1)
    code, _, err = cli(sim, h0, "load", "bridge")
    assert (code, err) == (2, "bpfnetctl: error: load bridge: no default route to take the "
                              "underlay from: give --underlay DEV\n")
    ctl(sim, h0, "load", "bridge", "--underlay", "eth0")
    ctl(sim, h0, "vni", "add", "10000", "--bridge", "br0")
    for cmd in (["link", "add", "vx0", "type", "vxlan", "id", "10000", "group", "239.1.1.1",
                 "dev", "eth0", "dstport", "4789"],
                ["link", "set", "vx0", "up"], ["link", "add", "br0", "type", "bridge"],
                ["link", "set", "vx0", "master", "br0"], ["link", "set", "br0", "up"]):
        r = subprocess.run(["ip", "-n", h1, *cmd], capture_output=True, text=True)
        assert r.returncode == 0, (cmd, r.stderr)
    t0 = sim.tenant(h0, "t0", "192.168.0.1/24", "br0")
    sim.tenant(h1, "t1", "192.168.0.2/24", "br0")
    w = wires(h0, "eth0")
    assert sim.ping(t0, "192.168.0.2", count=3) == 3
    assert w.count("out", dst="239.1.1.1", vni=10000) >= 1
    assert w.count("in", vni=10000) >= 3


def test_a_link_that_goes_down_takes_the_flood_route_and_a_second_load_restores_it(sim):
    fab = fabric(sim)
    h = host(sim, fab, 0, mgmt=True)
    ctl(sim, h, "load", "bridge", "--underlay", "eth0")
    ctl(sim, h, "vni", "add", "10", "--bridge", "br10")
    with sim.ipr(h) as ipr:
        eth0 = ipr.link_lookup(ifname="eth0")[0]
        ipr.link("set", index=eth0, state="down")
        ipr.link("set", index=eth0, state="up")
    assert flood_routes(sim, h) == {}
    out = ctl(sim, h, "load", "bridge")
    assert "upgraded" in out
    assert flood_routes(sim, h) == {"239.1.1.1": "eth0"}


# --- per-VNI groups -------------------------------------------------------------------

def test_each_vni_floods_to_its_group_and_only_members_receive(sim, wires):
    """Three hosts on a snooping switch: VNI 10 floods to 239.1.1.10 (h0,
    h1), VNI 20 to ff0e::20 (h0, h2). Each host joins its VNIs' groups, so
    the switch delivers each flood to exactly the members: counted on every
    NIC and at every tenant. A group is left with its last VNI."""
    fab = fabric(sim, snooping=True)
    hosts = [host(sim, fab, i, snooping=True) for i in range(3)]
    vnis = {0: (10, 20), 1: (10,), 2: (20,)}
    groups = {10: "239.1.1.10", 20: "ff0e::20"}
    tenants = {}
    for i, h in enumerate(hosts):
        ctl(sim, h, "load", "bridge", "--underlay", "eth0")
        for vni in vnis[i]:
            out = ctl(sim, h, "vni", "add", str(vni), "--bridge", f"br{vni}", "--group", groups[vni])
            assert out == f"vni {vni}: port bnp{vni} in bridge br{vni}\n"
            tenants[f"h{i}v{vni}"] = sim.tenant(h, f"h{i}v{vni}", None, f"br{vni}",
                                                mac=f"02:00:00:{vni:02x}:00:0{i + 1}")
        rows = jctl(sim, h, "vni", "show")
        assert [(r["vni"], r["group"], r["joined"]) for r in rows] == \
            [(v, groups[v], True) for v in vnis[i]]
        assert igmp_groups(sim, h) == {groups[v] for v in vnis[i]}
        assert flood_routes(sim, h) == {groups[v]: "eth0" for v in vnis[i]}

    def mdb():
        r = subprocess.run(["bridge", "-j", "mdb", "show", "dev", "sw0"], capture_output=True,
                           text=True, preexec_fn=lambda: netns.setns(fab, flags=0))
        return {(e["port"], e["grp"]) for m in json.loads(r.stdout or "[]") for e in m.get("mdb", [])}
    need_tool("bridge")
    from bpfnet.sim import wait_for
    want = {("p0", "239.1.1.10"), ("p1", "239.1.1.10"), ("p0", "ff0e::20"), ("p2", "ff0e::20")}
    assert wait_for(lambda: want <= mdb(), timeout=10), mdb()  # the switch saw the joins
    assert not {("p2", "239.1.1.10"), ("p1", "ff0e::20")} & mdb()

    n = 5
    for vni, members in ((10, {1}), (20, {2})):
        eth0 = {i: wires(h, "eth0") for i, h in enumerate(hosts)}
        with Listener(tenants) as lis:
            send_frames(tenants[f"h0v{vni}"], [lis.frame(s) for s in range(n)])
            got = lis.wait(expect=n * len(members))
        assert got == {k: n if k in {f"h{m}v{vni}" for m in members} else 0 for k in got}, vni
        assert eth0[0].count("out", dst=groups[vni], vni=vni) == n
        for i in (1, 2):
            assert eth0[i].count("in") == (n if i in members else 0), (vni, i, eth0[i].frames)
        for w in eth0.values():
            w.close()

    # a group is left with its last VNI: h0 adds VNI 11 to 239.1.1.10, deletes 10, then 11
    ctl(sim, hosts[0], "vni", "add", "11", "--bridge", "br11", "--group", "239.1.1.10")
    ctl(sim, hosts[0], "vni", "del", "10")
    assert igmp_groups(sim, hosts[0]) == {"239.1.1.10", "ff0e::20"}
    assert flood_routes(sim, hosts[0]) == {"239.1.1.10": "eth0", "ff0e::20": "eth0"}
    ctl(sim, hosts[0], "vni", "del", "11")
    assert igmp_groups(sim, hosts[0]) == {"ff0e::20"}
    assert flood_routes(sim, hosts[0]) == {"ff0e::20": "eth0"}
    ctl(sim, hosts[0], "unload", "bridge")
    assert igmp_groups(sim, hosts[0]) == set() and flood_routes(sim, hosts[0]) == {}


def test_per_vni_group_refused_on_a_device_without_vni_filter(sim):
    fab = fabric(sim)
    h = host(sim, fab, 0)
    with sim.ipr(h) as ipr:
        ipr.link("add", ifname="vx9", kind="vxlan", vxlan_collect_metadata=1, vxlan_port=4789,
                 vxlan_learning=0, vxlan_link=ipr.link_lookup(ifname="eth0")[0],
                 vxlan_group="239.1.1.1")
    ctl(sim, h, "load", "bridge", "--device", "vx9", "--underlay", "eth0")
    ctl(sim, h, "vni", "add", "10", "--bridge", "br10")  # the device's own group: fine
    before = snapshot(sim, h)
    routes = flood_routes(sim, h)
    for argv, msg in [
        (["vni", "add", "20", "--bridge", "br20", "--group", "239.1.1.20"],
         "vni add: --group 239.1.1.20: vx9 has no VNI filter (vnifilter), so every VNI floods "
         "to the bridge's group 239.1.1.1; a VXLAN device bpfnet creates has one"),
    ]:
        code, out, err = cli(sim, h, *argv)
        assert (code, out, err) == (2, "", f"bpfnetctl: error: {msg}\n")
    assert snapshot(sim, h) == before and flood_routes(sim, h) == routes
    assert [r["joined"] for r in jctl(sim, h, "vni", "show")] == [True]
    ctl(sim, h, "unload", "bridge")
    assert flood_routes(sim, h) == {}


def test_groups_the_underlay_cannot_carry_are_refused(sim):
    fab = fabric(sim)
    h = host(sim, fab, 0)
    ctl(sim, h, "load", "bridge", "--underlay", "eth0", "--local", "10.99.0.1")
    v4only = sim.ns("v4only")
    sim.quiet(v4only)
    sim.veth(v4only, "eth0", fab, "p9")
    sim.addr(v4only, "eth0", "10.99.0.9/24")
    ctl(sim, v4only, "load", "bridge", "--underlay", "eth0")
    for ns, msg in [(h, "--group ff0e::20: not of --local 10.99.0.1's address family"),
                    (v4only, "--group ff0e::20: the underlay eth0 has no IPv6")]:
        before = snapshot(sim, ns)
        code, out, err = cli(sim, ns, "vni", "add", "20", "--bridge", "br20", "--group", "ff0e::20")
        assert (code, out, err) == (2, "", f"bpfnetctl: error: vni add: {msg}\n")
        assert snapshot(sim, ns) == before and flood_routes(sim, ns) == {}


# --- the underlay a load takes ---------------------------------------------------------

def vxlan_link(sim, ns, device="vxlan0") -> str:
    with sim.ipr(ns) as ipr:
        link = ipr.get_links(ipr.link_lookup(ifname=device)[0])[0]
        idx = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA").get_attr("IFLA_VXLAN_LINK")
        return ipr.get_links(idx)[0].get_attr("IFLA_IFNAME")


def test_ecmp_default_route_gives_the_underlay(sim):
    need_tool("ip")
    fab = fabric(sim)
    h = host(sim, fab, 0)
    sim.veth(h, "eth1", sim.ns("x"), "up0")
    sim.addr(h, "eth1", "10.98.0.1/24")
    ecmp = ["ip", "-n", h, "route", "replace", "default", "nexthop", "via", "10.99.0.253", "dev",
            "eth0", "nexthop", "via", "10.99.0.254", "dev", "eth0"]
    assert subprocess.run(ecmp, capture_output=True).returncode == 0
    ctl(sim, h, "load", "bridge")
    assert vxlan_link(sim, h) == "eth0"
    ctl(sim, h, "unload", "bridge")
    ecmp[-1] = "eth1"
    ecmp[-3] = "10.98.0.254"
    assert subprocess.run(ecmp, capture_output=True).returncode == 0
    code, out, err = cli(sim, h, "load", "bridge")
    assert (code, err) == (2, "bpfnetctl: error: load bridge: the default route is ECMP over "
                              "eth0 and eth1: give --underlay DEV\n")


@pytest.mark.parametrize("function", ["bridge", "mesh"])
def test_local_alone_gives_the_underlay(sim, function):
    """--local on eth1 while the default route leaves by eth0: the
    underlay is eth1, the device that holds the address."""
    fab = fabric(sim)
    h = host(sim, fab, 0)
    sim.veth(h, "eth1", sim.ns("x"), "up0")
    sim.addr(h, "eth1", "10.98.0.1/24")
    sim.route(h, "0.0.0.0/0", "eth0", gateway="10.99.0.254")
    ctl(sim, h, "load", function, "--local", "10.98.0.1")
    assert vxlan_link(sim, h) == "eth1"
    ctl(sim, h, "unload", function)
    code, _, err = cli(sim, h, "load", function, "--local", "10.97.0.1")
    assert (code, err) == (2, f"bpfnetctl: error: load {function}: --local 10.97.0.1 is not an "
                              "address of eth0\n")


# --- the mesh on a user's VXLAN device with a VNI filter --------------------------------

def test_mesh_lists_its_vnis_in_a_users_vni_filter(sim):
    need_tool("ip")
    fab = fabric(sim)
    hosts = [host(sim, fab, i) for i in range(2)]
    tenants = []
    for i, h in enumerate(hosts):
        r = subprocess.run(["ip", "-n", h, "link", "add", "vxm", "type", "vxlan", "external",
                            "vnifilter", "dev", "eth0", "dstport", "4790"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        ctl(sim, h, "load", "mesh", "--device", "vxm", "--port", "4790", "--underlay", "eth0")
        ctl(sim, h, "peer", "add", f"10.99.0.{2 - i}", "--vni", "30", "--bridge", "br30")
        tenants.append(sim.tenant(h, f"t{i}", f"192.168.0.{i + 1}/24", "br30"))
    listed = subprocess.run(["bridge", "-j", "vni", "show", "dev", "vxm"], capture_output=True, text=True,
                            preexec_fn=lambda: netns.setns(hosts[0], flags=0)).stdout
    assert [v["vni"] for d in json.loads(listed) for v in d["vnis"]] == [30]
    assert sim.ping(tenants[0], "192.168.0.2", count=3) == 3
    ctl(sim, hosts[0], "peer", "del", "10.99.0.2", "--vni", "30")
    listed = subprocess.run(["bridge", "-j", "vni", "show", "dev", "vxm"], capture_output=True, text=True,
                            preexec_fn=lambda: netns.setns(hosts[0], flags=0)).stdout
    assert [v for d in json.loads(listed or "[]") for v in d.get("vnis", [])] == []
