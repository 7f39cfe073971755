"""Hosts for the static-FDB and suppression tests, built by hand: one L2
switch, hosts with only connected routes (floods leave by the underlay
whatever the routing table says), bridge loaded with --underlay and
--local, VNI 10 in br10, one quiet tenant per host.

     t0 192.168.0.1         t1 192.168.0.2         (t2 192.168.0.3)
     br10 / bnp10           br10 / bnp10
     eth0 10.99.0.1         eth0 10.99.0.2         eth0 10.99.0.3
        +------------------- sw0 ----------------------+
"""
from __future__ import annotations

import json
import socket
import time

from pyroute2 import netns

from neighframes import parse_arp

VNI = 10


def underlay(i: int) -> str:
    return f"10.99.0.{i + 1}"


def tenant_ip(i: int) -> str:
    return f"192.168.0.{i + 1}"


def tenant_ip6(i: int) -> str:
    return f"fd10::{i + 1}"


def tenant_mac(i: int) -> str:
    return f"02:00:00:0a:00:{i + 1:02x}"


def build(sim, n: int = 2, ipv6: bool = False, load: bool = True, encap: str | None = None) -> dict:
    """``load=False``: hosts and tenants only (the bridge comes from `apply`);
    ``encap``: the load's --encap (None: the default, native where the kernel
    can)."""
    sim.fabric()
    hosts, tenants = [], []
    for i in range(n):
        h = sim.ns(f"h{i}")
        sim.quiet(h, everything=False)
        sim.veth(h, "eth0", sim._fabric, f"ph{i}")
        sim.enslave(sim._fabric, f"ph{i}", "sw0")
        sim.addr(h, "eth0", f"{underlay(i)}/24")
        if load:
            extra = ["--encap", encap] if encap else []
            sim.bpfnetctl("load", "bridge", "--underlay", "eth0", "--local", underlay(i), *extra,
                          netns_=h)
            sim.bpfnetctl("vni", "add", str(VNI), "--bridge", "br10", netns_=h)
        t = sim.tenant(h, f"t{i}", f"{tenant_ip(i)}/24", "br10", mac=tenant_mac(i), mtu=1400)
        if ipv6:
            enable_ipv6(sim, t, f"{tenant_ip6(i)}/64")
        hosts.append(h)
        tenants.append(t)
    return {"hosts": hosts, "tenants": tenants}


def enable_ipv6(sim, ns: str, cidr: str) -> None:
    """IPv6 on the tenant's eth0 only: no link-local address, no DAD, no
    router solicitations, so the neighbour discovery a test starts is what
    crosses (MLD reports still go out when the address is added)."""
    for k, v in (("addr_gen_mode", "1"), ("accept_dad", "0"), ("router_solicitations", "0"),
                 ("disable_ipv6", "0")):
        sim.sysctl(ns, f"net.ipv6.conf.eth0.{k}", v)
    sim.addr(ns, "eth0", cidr)


def counters(sim, h) -> dict:
    _, out, _ = sim.bpfnetctl("status", "--json", netns_=h)
    return json.loads(out)["functions"]["bridge"]["counters"]


def delta(after: dict, before: dict) -> dict:
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


def ctl_json(sim, h, *argv):
    _, out, _ = sim.bpfnetctl(*argv, "--json", netns_=h)
    return json.loads(out)


def neighbours(sim, ns: str) -> dict:
    """The tenant's neighbour table: {ip: mac} of entries with an address."""
    with sim.ipr(ns) as ipr:
        return {n.get_attr("NDA_DST"): n.get_attr("NDA_LLADDR") for n in ipr.get_neighbours()
                if n.get_attr("NDA_LLADDR")}


def flush_neighbours(sim, ns: str) -> None:
    with sim.ipr(ns) as ipr:
        idx = ipr.link_lookup(ifname="eth0")[0]
        for n in ipr.get_neighbours(ifindex=idx):
            ipr.neigh("del", ifindex=idx, dst=n.get_attr("NDA_DST"))


def rx_packets(sim, ns: str, ifname: str = "eth0") -> int:
    with sim.ipr(ns) as ipr:
        return ipr.get_links(ipr.link_lookup(ifname=ifname)[0])[0].get_attr("IFLA_STATS64")["rx_packets"]


class RawEth:
    """An AF_PACKET socket on ``ifname`` in namespace ``ns``, as a tenant's
    arping would use. Always bounded: every receive waits at most ``wait``."""

    def __init__(self, ns: str, ifname: str = "eth0", proto: int = 0x0806):
        netns.pushns(ns)
        try:
            self.s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
        finally:
            netns.popns()
        self.s.bind((ifname, proto))

    def send(self, frame: bytes) -> None:
        self.s.send(frame)

    def arp_replies(self, n: int, wait: float = 2.0) -> list[dict]:
        """Up to ``n`` ARP replies received (not our own frames)."""
        got, end = [], time.monotonic() + wait
        while len(got) < n and time.monotonic() < end:
            self.s.settimeout(max(0.01, end - time.monotonic()))
            try:
                data, addr = self.s.recvfrom(2048)
            except socket.timeout:
                break
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            a = parse_arp(data)
            if a["op"] == 2:
                got.append(a)
        return got

    def close(self):
        self.s.close()
