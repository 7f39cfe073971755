"""The seed's distributed bridge without multicast: three hosts in a full
mesh, two VNIs, one tenant per host and VNI, the same tenant subnet in both
VNIs. Every host has one port per (VNI, peer): bmp0..bmp3.

     tenant h0v10 192.168.0.1    tenant h1v10 192.168.0.2    tenant h2v10 192.168.0.3
     tenant h0v20 192.168.0.1    tenant h1v20 192.168.0.2    tenant h2v20 192.168.0.3
       br10: bmp0->h1 bmp1->h2     br10: bmp0->h0 bmp1->h2     br10: bmp0->h0 bmp1->h1
       br20: bmp2->h1 bmp3->h2     br20: bmp2->h0 bmp3->h2     br20: bmp2->h0 bmp3->h1
     +-----------+               +-----------+               +-----------+
     | h0 vxlan0 |               | h1 vxlan0 |               | h2 vxlan0 |
     | 10.99.0.1 |               | 10.99.0.2 |               | 10.99.0.3 |
     +-----eth0--+               +-----eth0--+               +-----eth0--+
           +------------- fabric (sw0, L2, no multicast needed) -------+

With ``family=6`` the underlay is IPv6 only: fd00:99::1..3/64.
Tenants and the hosts' bridges and ports run without IPv6, so that the
counters show only the traffic the demo and tests make.
"""
from __future__ import annotations

import json
import select
import socket
import struct
import time

from pyroute2 import netns

from . import answered, finish
from ..sim import Sim, tenant_ip, tenant_mac, underlay_cidr, underlay_ip  # noqa: F401
from .bridge import check_all_pairs

VNIS = (10, 20)
ETH_P_EXP = 0x88B5  # IEEE 802 local experimental ethertype
PACKET_OUTGOING = 4


def tenant(sim: Sim, host: str, short: str, cidr: str | None, bridge: str,
           mac: str | None = None) -> str:
    return sim.tenant(host, short, cidr, bridge, mac=mac)


def add_host(sim: Sim, i: int, family: int = 4, say=lambda *_: None) -> str:
    """Host ``h<i>`` on the fabric with the mesh loaded (no peers yet)."""
    h = sim.host(f"h{i}", underlay_cidr(i, family))
    sim.quiet(h, everything=False)  # eth0 keeps its IPv6 (the v6 underlay needs it)
    ip = underlay_ip(i, family)
    say(f"$ bpfnetctl --netns {h} load mesh --local {ip}")
    sim.bpfnetctl("load", "mesh", "--local", ip, netns_=h)
    return h


def build(sim: Sim, n_hosts: int = 3, vnis=VNIS, family: int = 4, tenants: bool = True,
          say=lambda *_: None):
    """Builds the full mesh. Returns {"hosts": [ns...], "tenants": {(i, vni): ns}}."""
    sim.fabric()
    hosts = [add_host(sim, i, family, say) for i in range(n_hosts)]
    topo = {"hosts": hosts, "tenants": {}, "family": family}
    for i, h in enumerate(hosts):
        for vni in vnis:
            for j in range(n_hosts):
                if j == i:
                    continue
                say(f"$ bpfnetctl --netns {h} peer add {underlay_ip(j, family)} "
                    f"--vni {vni} --bridge br{vni}")
                sim.bpfnetctl("peer", "add", underlay_ip(j, family), "--vni", str(vni),
                              "--bridge", f"br{vni}", netns_=h)
            if tenants:
                topo["tenants"][(i, vni)] = tenant(sim, h, f"h{i}v{vni}", f"{tenant_ip(i)}/24",
                                                   f"br{vni}", mac=tenant_mac(i, vni))
    return topo


def counters(sim: Sim, host: str) -> dict:
    _, out, _ = sim.bpfnetctl("status", "--json", netns_=host)
    return json.loads(out)["functions"]["mesh"]["counters"]


# --- broadcast copies ---------------------------------------------------------

def _packet_socket(ns: str, proto: int = ETH_P_EXP, ifname: str = "eth0") -> socket.socket:
    netns.pushns(ns)
    try:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
        s.bind((ifname, proto))
    finally:
        netns.popns()
    s.setblocking(False)
    return s


class Listener:
    """Counts the tagged frames (ethertype 0x88b5) each tenant's eth0
    receives. Open it before sending; ``frame(seq)`` makes one to send."""

    def __init__(self, receivers: dict):
        self.tag = struct.pack("!Q", time.monotonic_ns()) + b"bpfnet-mesh"
        self.socks = {name: _packet_socket(ns) for name, ns in receivers.items()}
        self.got = {name: 0 for name in receivers}

    def frame(self, seq: int, src: str = "02:00:00:00:bb:01") -> bytes:
        """A broadcast Ethernet frame carrying the tag, padded to 60 bytes."""
        head = b"\xff" * 6 + bytes.fromhex(src.replace(":", "")) + struct.pack("!H", ETH_P_EXP)
        return (head + self.tag + struct.pack("!H", seq)).ljust(60, b"\0")

    def _drain(self, timeout: float) -> None:
        ready, _, _ = select.select(list(self.socks.values()), [], [], max(0.0, timeout))
        for name, s in self.socks.items():
            if s not in ready:
                continue
            while True:
                try:
                    data, addr = s.recvfrom(2048)
                except BlockingIOError:
                    break
                if addr[2] != PACKET_OUTGOING and data[14:14 + len(self.tag)] == self.tag:
                    self.got[name] += 1

    def wait(self, expect: int, deadline: float = 5.0, linger: float = 0.5) -> dict:
        """Waits until ``expect`` copies in all arrived (at most ``deadline``
        seconds), then ``linger`` seconds more for any duplicate; returns
        name -> copies."""
        end = time.monotonic() + deadline
        while sum(self.got.values()) < expect and time.monotonic() < end:
            self._drain(min(0.05, end - time.monotonic()))
        end = time.monotonic() + linger
        while time.monotonic() < end:
            self._drain(min(0.05, end - time.monotonic()))
        return dict(self.got)

    def close(self) -> None:
        for s in self.socks.values():
            s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def send_frames(ns: str, frames) -> None:
    """Sends raw Ethernet frames out of ``ns``'s eth0."""
    tx = _packet_socket(ns)
    try:
        for f in frames:
            tx.send(f)
    finally:
        tx.close()


def broadcast_copies(sender: str, receivers: dict, count: int = 3, expect: int | None = None,
                     deadline: float = 5.0, linger: float = 0.5) -> dict:
    """Sends ``count`` tagged broadcast frames from ``sender``'s eth0 and
    counts the copies each of ``receivers`` (name -> namespace; the sender
    may be one) sees (:class:`Listener`). Returns name -> copies."""
    with Listener(receivers) as lis:
        send_frames(sender, [lis.frame(seq) for seq in range(count)])
        return lis.wait(expect if expect is not None else 0, deadline, linger)


def run(keep: bool, say, prefix: str | None = None) -> int:
    from ..cli import table
    sim = Sim(prefix=prefix)
    try:
        say(f"# mesh demo: 3 hosts in a full mesh, VNIs {', '.join(map(str, VNIS))}, "
            f"no multicast, run {sim.prefix}")
        topo = build(sim, say=say)
        hosts = topo["hosts"]
        say("")
        say("# ping every pair of hosts in each VNI (same tenant subnet in both VNIs)")
        rows = check_all_pairs(sim, topo)
        say(table(rows))
        ok = all(r["received"] == r["sent"] for r in rows)

        say("")
        say("# 3 broadcast frames from h0's tenant in VNI 10: copies seen by every tenant")
        before = [counters(sim, h) for h in hosts]
        receivers = {f"h{i}v{vni}": ns for (i, vni), ns in topo["tenants"].items()}
        got = broadcast_copies(topo["tenants"][(0, 10)], receivers, count=3, expect=6)
        after = [counters(sim, h) for h in hosts]
        want = {name: (3 if name in ("h1v10", "h2v10") else 0) for name in receivers}
        bc = [{"tenant": n, "copies": got[n], "expected": want[n]} for n in sorted(got)]
        say(table(bc))
        delta = [{"host": f"h{i}", **{k: after[i][k] - before[i][k]
                                      for k in ("tx", "rx", "drop_split_horizon")}}
                 for i in range(len(hosts))]
        say("# counter deltas: h0 tunnels each frame to both peers; h1 and h2 deliver it")
        say("# and drop the copy their bridge floods towards the other peer (split horizon)")
        say(table(delta))
        ok = ok and got == want

        say("")
        say(f"$ bpfnetctl --netns {hosts[0]} peer show")
        _, out, _ = sim.bpfnetctl("peer", "show", netns_=hosts[0])
        say(out.rstrip())
        say("")
        say(f"$ bpfnetctl --netns {hosts[0]} status")
        _, out, _ = sim.bpfnetctl("status", netns_=hosts[0])
        say(out.rstrip())
        say("")
        return finish(sim, say, ok, answered(rows) + ", broadcast copies "
                      + ("as expected" if got == want else "WRONG"), keep)
    finally:
        sim.cleanup()
