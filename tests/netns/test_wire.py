"""Wire compatibility with the kernel's own VXLAN: a bpfnet host and a host
whose VNI runs on `ip link add vx0 type vxlan ...` exchange ARP, pings, TCP
and broadcasts in one VNI, each way, the monitor on both hosts counts them
exactly, and tshark dissects what bpfnet sends as VXLAN with the right VNI
and good checksums.

      tb 192.168.10.1/24                      tk 192.168.10.2/24
        | br10                                  | br10
      bnp10 / bmp0 (bpfnet bridge or mesh)     vx0 (kernel VXLAN, id 10, 4789)
      hb eth0 10.97.0.1/24, fd97::1/64         hk eth0 10.97.0.2/24, fd97::2/64
           +---------------- fabric: sw0 (L2) ----------------+

Cases: the bridge with group 239.1.1.1 against `vxlan ... group 239.1.1.1`;
the mesh against `vxlan ... remote` on an IPv4 and an IPv6 underlay; the
bridge with `--encap device` (today's path, still selectable).
"""
import json
import os
import subprocess
import time

import pytest

from conftest import built, need_tool

from bpfnet.demos.mesh import broadcast_copies
from pyroute2 import netns

VNI = 10
MB = 4
CASES = {  # name: (function, underlay family, --encap)
    "bridge4": ("bridge", 4, None),
    "mesh4": ("mesh", 4, None),
    "mesh6": ("mesh", 6, None),
    "bridge4-device": ("bridge", 4, "device"),
}


def under(i: int, family: int) -> str:
    return f"10.97.0.{i + 1}" if family == 4 else f"fd97::{i + 1}"


def build(sim, fn: str, family: int, encap):
    sim.fabric()
    hb = sim.host("hb", "10.97.0.1/24", extra=("fd97::1/64",))
    hk = sim.host("hk", "10.97.0.2/24", extra=("fd97::2/64",))
    for h in (hb, hk):
        sim.quiet(h, everything=False)
    mtu = 1500 - (50 if family == 4 else 70)
    extra = ["--encap", encap] if encap else []
    if fn == "bridge":
        sim.bpfnetctl("load", "bridge", "--local", under(0, 4), "--group", "239.1.1.1",
                      *extra, netns_=hb)
        sim.bpfnetctl("vni", "add", str(VNI), "--bridge", "br10", netns_=hb)
        peer = ["group", "239.1.1.1", "local", under(1, 4)]
    else:
        sim.bpfnetctl("load", "mesh", "--local", under(0, family), *extra, netns_=hb)
        sim.bpfnetctl("peer", "add", under(1, family), "--vni", str(VNI), "--bridge", "br10",
                      netns_=hb)
        peer = ["remote", under(0, family), "local", under(1, family)]
    # the kernel's own VXLAN, as a user sets it up
    r = sim.run(hk, ["ip", "link", "add", "vx0", "type", "vxlan", "id", str(VNI), *peer,
                     "dstport", "4789", "dev", "eth0"])
    assert r.returncode == 0, r.stderr
    sim.run(hk, ["ip", "link", "add", "br10", "type", "bridge"], check=True)
    sim.run(hk, ["ip", "link", "set", "vx0", "master", "br10", "up"], check=True)
    sim.run(hk, ["ip", "link", "set", "br10", "up"], check=True)
    tb = sim.tenant(hb, "tb", "192.168.10.1/24", "br10", mac="02:00:00:0a:00:01", mtu=mtu)
    tk = sim.tenant(hk, "tk", "192.168.10.2/24", "br10", mac="02:00:00:0a:00:02", mtu=mtu)
    return {"hb": hb, "hk": hk, "tb": tb, "tk": tk, "fn": fn, "family": family,
            "encap": encap or "native"}


@pytest.fixture(scope="module", params=sorted(CASES))
def topo(request):
    fn, family, encap = CASES[request.param]
    yield from built(f"tw{request.param[:2]}{family}", lambda sim: build(sim, fn, family, encap))


def encap_status(topo) -> dict:
    _, out, _ = topo["sim"].bpfnetctl("status", "--json", netns_=topo["hb"])
    return json.loads(out)["functions"][topo["fn"]]["encap"]


def snmp(ns: str, path: str, prefix: str) -> dict:
    """One table of /proc/net/snmp or /proc/net/netstat (per namespace) in
    ``ns``: the ``prefix`` rows ("Tcp:", "TcpExt:") as {name: value}."""
    netns.pushns(ns)
    try:
        with open(path) as f:
            rows = [ln.split() for ln in f if ln.startswith(prefix)]
    finally:
        netns.popns()
    return {k: int(v) for k, v in zip(rows[0][1:], rows[1][1:])}


def retransmits(ns: str) -> int:
    """Tcp RetransSegs of namespace ``ns``."""
    return snmp(ns, "/proc/net/snmp", "Tcp:")["RetransSegs"]


def tcp_ext(ns: str) -> dict:
    """The non-zero reordering and loss counters of TcpExt in ``ns``, to say
    what happened when retransmits are not 0."""
    return {k: v for k, v in snmp(ns, "/proc/net/netstat", "TcpExt:").items() if v and any(
        x in k for x in ("Retrans", "Loss", "Timeout", "Reorder", "OFO", "Ofo", "SACK"))}


def iperf3(sim, server_ns: str, client_ns: str, dst: str, reverse: bool) -> dict:
    """One bounded iperf3 run of MB megabytes (client to server, or back
    with ``reverse``), both ends pinned to one CPU: on veth every hop runs in
    the sender's context, so a sender that moves between CPUs puts one
    flow's frames in two CPUs' backlogs, which reorders them whichever path
    they take. Returns iperf3's JSON end summary."""
    cpu = str(min(os.sched_getaffinity(0)))
    srv = sim.spawn(server_ns, ["taskset", "-c", cpu, "iperf3", "-s", "-1", "-B", dst, "-p", "5201"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            r = sim.run(client_ns, ["taskset", "-c", cpu, "iperf3", "-c", dst, "-p", "5201",
                                    "-n", f"{MB}M", "-J", *(["-R"] if reverse else [])], timeout=30)
            if "Connection refused" not in r.stdout:
                break
            time.sleep(0.1)  # the server is not listening yet
        assert r.returncode == 0, r.stdout[-500:]
        end = json.loads(r.stdout)["end"]
        assert "sum_sent" in end, r.stdout[-800:]
        return end
    finally:
        try:
            srv.wait(10)  # -1: it serves one client and exits
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()


def test_arp_and_ping_both_ways(topo):
    sim = topo["sim"]
    assert sim.ping_until(topo["tb"], "192.168.10.2")
    assert sim.ping(topo["tb"], "192.168.10.2", count=5) == 5
    assert sim.ping(topo["tk"], "192.168.10.1", count=5) == 5
    # ARP resolved across the tunnel, both ways
    for ns, ip in ((topo["tb"], "192.168.10.2"), (topo["tk"], "192.168.10.1")):
        r = sim.run(ns, ["ip", "neigh", "show", ip])
        assert "lladdr" in r.stdout, r.stdout


def test_the_path_taken_is_the_one_status_names(topo):
    sim = topo["sim"]
    before = encap_status(topo)["counters"]
    assert sim.ping(topo["tb"], "192.168.10.2", count=5, interval=0.05) == 5
    st = encap_status(topo)
    d = {k: st["counters"][k] - before[k] for k in before}
    assert st["mode"] == topo["encap"]
    if topo["encap"] == "device":
        assert (d["encap"], d["decap"], d["tx_device"]) == (0, 0, 5)
        assert st["paths"]["tx_ip"] == "device"
        return
    assert (d["encap"], d["tx_device"], d["drop_mtu"], d["drop_encap"]) == (5, 0, 0, 0)
    assert st["paths"]["tx_ip"] == "native"
    if topo["family"] == 4:  # replies come back one frame each: decapsulated here
        assert (d["decap"], d["rx_fallback"]) == (5, 0)
        assert st["paths"]["rx"] == "native"
    else:  # IPv6 underlay: the device verifies the UDP checksum
        assert (d["decap"], d["rx_fallback"]) == (0, 5)
        assert st["paths"]["rx"] == "device"


def test_tcp_crosses_both_ways(topo):
    """A few MB of TCP each way through bpfnet's path and the kernel's VXLAN:
    iperf3 completes its MB each way (the VM runs this one: what the
    kernel does with the frames; the retransmit check below is the host's)."""
    need_tool("iperf3")
    sim = topo["sim"]
    assert sim.ping_until(topo["tb"], "192.168.10.2")
    for reverse in (False, True):
        end = iperf3(sim, topo["tk"], topo["tb"], "192.168.10.2", reverse)
        assert end["sum_sent"]["bytes"] >= MB << 20


def test_tcp_both_ways_without_retransmits(topo):
    """Nothing lost, nothing reordered: every segment retransmitted (if any)
    was a tail loss probe, the timer TCP arms for the last segment in
    flight, which a busy machine's scheduling delay can fire (the receiver
    then reports it as a duplicate); it fires on the device path alike."""
    need_tool("iperf3")
    sim = topo["sim"]
    assert sim.ping_until(topo["tb"], "192.168.10.2")
    before = [(retransmits(ns), tcp_ext(ns)) for ns in (topo["tb"], topo["tk"])]
    for reverse in (False, True):
        end = iperf3(sim, topo["tk"], topo["tb"], "192.168.10.2", reverse)
        assert end["sum_sent"]["bytes"] >= MB << 20
    for (r0, x0), ns in zip(before, (topo["tb"], topo["tk"])):
        x = tcp_ext(ns)
        probes = x.get("TCPLossProbes", 0) - x0.get("TCPLossProbes", 0)
        # a probe resends the last segment, or sends a new one (not counted)
        assert retransmits(ns) - r0 <= probes, (x0, x, encap_status(topo)["counters"])
        for k in ("TCPSACKReorder", "TCPFastRetrans", "TCPOFOQueue", "TCPTimeouts"):
            assert x.get(k, 0) == x0.get(k, 0), (k, x0, x)


def test_broadcasts_cross_exactly_once_each_way(topo):
    n = 5
    tenants = {"tb": topo["tb"], "tk": topo["tk"]}
    assert broadcast_copies(topo["tb"], tenants, count=n, expect=n) == {"tb": 0, "tk": n}
    assert broadcast_copies(topo["tk"], tenants, count=n, expect=n) == {"tb": n, "tk": 0}


def test_the_monitor_counts_both_hosts_frames_exactly(topo):
    """The monitor on each host's underlay (eth0) counts the pings of one
    flow exactly, each way: bpfnet's frames as they leave it and as the
    kernel host receives them, the kernel's as they leave and as the bpfnet
    host receives them (outer + inner addresses, VNI, packets, whole-frame
    bytes)."""
    from test_monitor import entry, flows
    sim, hb, hk, fam = topo["sim"], topo["hb"], topo["hk"], topo["family"]
    ob, ok = under(0, fam), under(1, fam)
    ib, ik = "192.168.10.1", "192.168.10.2"
    n, size = 7, 200
    frame = (50 if fam == 4 else 70) + 14 + 20 + 8 + size  # outer + inner ICMP frame
    for h in (hb, hk):
        sim.bpfnetctl("load", "monitor", "--dev", "eth0", netns_=h)
    try:
        assert sim.ping_until(topo["tb"], ik)
        before = {h: flows(sim, h) for h in (hb, hk)}
        assert sim.ping(topo["tb"], ik, count=n, size=size, interval=0.05) == n
        after = {h: flows(sim, h) for h in (hb, hk)}

        def moved(h):
            # one flow a pair: the monitor keys it lower outer address first
            a, b = (entry(x[h], VNI, ob, ok, ib, ik) for x in (after, before))
            return {k: a[k] - b[k] for k in ("tx_pkts", "tx_bytes", "rx_pkts", "rx_bytes")}
        # hb sends n echo requests (bpfnet's frames) and receives n replies
        # (the kernel's); hk the other way round: each counts both exactly
        both = {"tx_pkts": n, "tx_bytes": n * frame, "rx_pkts": n, "rx_bytes": n * frame}
        assert moved(hb) == both
        assert moved(hk) == both
    finally:
        for h in (hb, hk):
            sim.bpfnetctl("unload", "monitor", netns_=h)


def test_tshark_dissects_bpfnets_frames_as_vxlan(topo, tmp_path):
    need_tool("tshark")
    sim = topo["sim"]
    fam = topo["family"]
    src = "10.97.0.1" if fam == 4 else "fd97::1"
    pcap = tmp_path / "wire.pcap"
    assert sim.ping_until(topo["tb"], "192.168.10.2")
    cap = sim.spawn(topo["hk"], ["tshark", "-q", "-i", "eth0", "-c", "4", "-a", "duration:15",
                                 "-f", f"udp port 4789 and src host {src}", "-w", str(pcap)],
                    stdout=open(tmp_path / "tshark.out", "w"), stderr=open(tmp_path / "tshark.err", "w"))
    # tshark needs a moment to open the device: ping until it has its 4 frames
    for _ in range(60):  # at most ~15 s, as tshark's own limit
        sim.ping(topo["tb"], "192.168.10.2", count=1, deadline=1)
        if cap.poll() is not None:
            break
        time.sleep(0.25)
    cap.wait(20)
    ip = "ip" if fam == 4 else "ipv6"
    r = sim.run(topo["hk"], ["tshark", "-r", str(pcap), "-o", "ip.check_checksum:TRUE",
                             "-o", "udp.check_checksum:TRUE", "-T", "fields", "-E", "separator=,", "-E", "occurrence=f",
                             "-e", "vxlan.vni", "-e", f"{ip}.src", "-e", "udp.dstport",
                             "-e", "ip.checksum.status", "-e", "udp.checksum.status",
                             "-e", "eth.dst", "-e", "ip.flags.df"], timeout=30)
    rows = [ln.split(",") for ln in r.stdout.split()]
    assert len(rows) == 4, (r.stdout, r.stderr)
    for vni, s, dport, ipck, udpck, _dmac, df in rows:
        assert (vni, s, dport) == (str(VNI), src, "4789")
        if fam == 4:
            assert ipck == "1"           # Good
            if topo["encap"] == "native":
                assert udpck == "3", rows  # zero: not present (RFC 7348)
                assert df == "1"         # DF: never fragmented on the way
            # the device path: bpf_skb_set_tunnel_key asks for a UDP
            # checksum, left to offload on veth, so a capture there sees it
            # unfinished
        else:
            assert udpck == "1"          # Good (IPv6 requires it)


def test_switching_path_under_traffic_loses_nothing(topo):
    """`load --encap` to the other path and back, in place, three times
    each during a 100 packets-per-second ping: every ping is answered, and
    the path switched each time; the case's own path is left in place."""
    sim, hb, fn = topo["sim"], topo["hb"], topo["fn"]
    other = "native" if topo["encap"] == "device" else "device"
    assert sim.ping_until(topo["tb"], "192.168.10.2")
    ping = sim.spawn(topo["tb"], ["ping", "-n", "-q", "-c", "400", "-i", "0.01", "-w", "30",
                                  "192.168.10.2"], stdout=subprocess.PIPE, text=True)
    modes = []
    for mode in (other, topo["encap"]) * 3:
        time.sleep(0.4)
        sim.bpfnetctl("load", fn, "--encap", mode, netns_=hb)
        modes.append(encap_status(topo)["mode"])
    out, _ = ping.communicate(timeout=40)
    assert modes == [other, topo["encap"]] * 3
    assert " 400 received" in out, out
