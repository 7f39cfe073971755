"""gateway.bpf.o under BPF_PROG_TEST_RUN: tag popped, tag pushed, TPID and
PCP kept, unknown MACs and untagged frames untouched, VLAN moves, counters.

test_run binds skb->ifindex to lo (1): phys2virt learns the trunk as 1, and
virt2phys runs as if on worker port 1. The tag arrives in the packet here
(test_run has no receive path to strip it into skb metadata); the end-to-end
test covers the metadata case. A pushed tag lands in skb metadata, which
test_run does not return: vlan_push() (bpf/lib/vlan.h) records it in cb[2]
(TCI) and cb[3] (TPID, network order), as redirect_to() records the target
in cb[0] and flags in cb[1]."""
import ctypes
import socket
import time

import pytest

from conftest import need_root
from packets import BCAST, ETH_P_8021AD, ETH_P_8021Q, MAC_A, MAC_B, eth, ipv4, udp, vlan

from bpfnet import abi
from bpfnet.abi import GwClientKey, GwClientVal, GwVlanVal, mac_pack
from bpfnet.maps import Map, PerCpuArray

TC_ACT_UNSPEC, TC_ACT_SHOT, TC_ACT_REDIRECT = 0xFFFFFFFF, 2, 7  # retval is a u32
LO, WORKER, TRUNK = 1, 42, 7
U32 = ctypes.c_uint32
PAYLOAD = b"bpfnet gateway"


def frame(src=MAC_A, dst=MAC_B, vid=None, tpid=ETH_P_8021Q, pcp=0) -> bytes:
    """A UDP/IPv4 frame, tagged with ``vid`` unless it is None."""
    e = eth(dst, src)
    if vid is not None:
        e = e / vlan(vid, pcp=pcp, tpid=tpid)
    return bytes(e / ipv4("10.0.0.11", "10.0.0.1") / udp(1000, 2000) / PAYLOAD)


class Gw:
    def __init__(self, obj):
        self.obj = obj
        self.clients = Map(obj.map_fd("gw_clients"), GwClientKey, GwClientVal, "gw_clients",
                           owned=False)
        self.fdb = Map(obj.map_fd("gw_vlan_fdb"), U32, GwVlanVal, "gw_vlan_fdb", owned=False)
        self.stats = PerCpuArray(obj.map_fd("gw_stats"), abi.GwStats, "gw_stats", owned=False)

    def add_client(self, mac=MAC_A, worker=WORKER):
        self.clients[GwClientKey(mac=mac_pack(mac))] = GwClientVal(worker=worker)

    def stat(self, name):
        return self.stats.sum_fields()[name]

    def nonzero_stats(self):
        return {k: v for k, v in self.stats.sum_fields().items() if v}

    def phys2virt(self, data):
        from bpfnet import libbpf
        return libbpf.prog_test_run(self.obj.prog_fd("gw_phys2virt"), data, ctx=abi.SkBuff())

    def virt2phys(self, data):
        from bpfnet import libbpf
        return libbpf.prog_test_run(self.obj.prog_fd("gw_virt2phys"), data, ctx=abi.SkBuff())

    def learned(self, worker=WORKER):
        return self.fdb.get(U32(worker))


@pytest.fixture
def gw(loaded_obj):
    need_root()
    return Gw(loaded_obj("gateway"))


# --- phys2virt ---------------------------------------------------------------

@pytest.mark.parametrize("tpid,vid,pcp,dst", [
    (ETH_P_8021Q, 10, 0, MAC_B),
    (ETH_P_8021Q, 4094, 5, BCAST),    # an ARP-like broadcast: steered all the same
    (ETH_P_8021AD, 30, 7, MAC_B),
], ids=["802.1Q", "802.1Q-pcp-bcast", "802.1ad-pcp"])
def test_client_frame_goes_to_its_worker_with_the_tag_popped(gw, tpid, vid, pcp, dst):
    gw.add_client(MAC_A, WORKER)
    before = time.monotonic_ns()
    r = gw.phys2virt(frame(dst=dst, vid=vid, tpid=tpid, pcp=pcp))
    assert r.retval == TC_ACT_REDIRECT
    assert (r.ctx.cb[0], r.ctx.cb[1]) == (WORKER, 0)   # the worker port, egress
    untagged = frame(dst=dst)
    assert r.data == untagged                          # tag popped, nothing else changed
    e = gw.learned()
    assert (e.trunk, e.vlan_tci, e.vlan_proto) == (LO, pcp << 13 | vid, tpid)
    assert (e.rx_pkts, e.rx_bytes, e.tx_pkts, e.tx_bytes) == (1, len(untagged), 0, 0)
    assert e.seen_ns >= before
    assert gw.nonzero_stats() == {"rx": 1, "learn": 1}


def test_counters_add_up_per_client(gw):
    gw.add_client(MAC_A, WORKER)
    gw.add_client(MAC_B, WORKER + 1)
    for _ in range(3):
        gw.phys2virt(frame(src=MAC_A, vid=10))
    gw.phys2virt(frame(src=MAC_B, vid=20))
    n = len(frame())
    a, b = gw.learned(WORKER), gw.learned(WORKER + 1)
    assert (a.vlan_tci, a.rx_pkts, a.rx_bytes) == (10, 3, 3 * n)
    assert (b.vlan_tci, b.rx_pkts, b.rx_bytes) == (20, 1, n)
    assert gw.nonzero_stats() == {"rx": 4, "learn": 2}


def test_untagged_frame_passes_untouched(gw):
    gw.add_client(MAC_A, WORKER)
    f = frame()
    r = gw.phys2virt(f)
    assert r.retval == TC_ACT_UNSPEC   # passed on: the next program or the stack
    assert r.data == f
    assert r.ctx.cb[0] == 0
    assert len(gw.fdb) == 0
    assert gw.nonzero_stats() == {"pass_untagged": 1}


@pytest.mark.parametrize("tpid", [ETH_P_8021Q, ETH_P_8021AD])
def test_unknown_mac_passes_untouched(gw, tpid):
    gw.add_client(MAC_A, WORKER)
    f = frame(src="02:00:00:00:00:99", vid=10, tpid=tpid)
    r = gw.phys2virt(f)
    assert r.retval == TC_ACT_UNSPEC   # passed on: the next program or the stack
    assert r.data == f                                 # still tagged
    assert r.ctx.cb[0] == 0
    assert len(gw.fdb) == 0
    assert gw.nonzero_stats() == {"pass_unknown": 1}


def test_client_still_being_added_is_not_steered(gw):
    """`client add` writes the entry pending first (intent), attaches the
    way back, then clears the flag: until then the MAC is no client."""
    gw.clients[GwClientKey(mac=mac_pack(MAC_A))] = GwClientVal(
        worker=WORKER, flags=abi.GW_CLIENT_F_PENDING)
    f = frame(vid=10)
    r = gw.phys2virt(f)
    assert (r.retval, r.data, r.ctx.cb[0]) == (TC_ACT_UNSPEC, f, 0)
    assert len(gw.fdb) == 0
    assert gw.nonzero_stats() == {"pass_unknown": 1}
    gw.add_client(MAC_A, WORKER)   # ready
    assert gw.phys2virt(f).retval == TC_ACT_REDIRECT


def test_truncated_vlan_header_is_dropped_and_counted(gw):
    gw.add_client(MAC_A, WORKER)
    f = bytes(eth(MAC_B, MAC_A, type_=ETH_P_8021Q)) + b"\x00\x0a"   # half a tag
    r = gw.phys2virt(f)
    assert r.retval == TC_ACT_SHOT
    assert gw.nonzero_stats() == {"drop_short": 1}


def test_vlan_move_is_followed_at_once(gw):
    gw.add_client(MAC_A, WORKER)
    gw.phys2virt(frame(vid=10))
    r = gw.phys2virt(frame(vid=20))
    assert r.retval == TC_ACT_REDIRECT and r.ctx.cb[0] == WORKER
    e = gw.learned()
    assert (e.vlan_tci, e.vlan_proto, e.rx_pkts) == (20, ETH_P_8021Q, 2)   # counters carried
    assert (gw.stat("learn"), gw.stat("move")) == (1, 1)
    # same VID, other TPID: a move too
    gw.phys2virt(frame(vid=20, tpid=ETH_P_8021AD))
    e = gw.learned()
    assert (e.vlan_tci, e.vlan_proto, e.rx_pkts) == (20, ETH_P_8021AD, 3)
    assert gw.stat("move") == 2
    # same tag again: no move
    gw.phys2virt(frame(vid=20, tpid=ETH_P_8021AD))
    assert (gw.stat("move"), gw.stat("rx")) == (2, 4)


# --- virt2phys ---------------------------------------------------------------

def learn(gw, tci, tpid, trunk=TRUNK, worker=LO):
    gw.fdb[U32(worker)] = GwVlanVal(trunk=trunk, vlan_tci=tci, vlan_proto=tpid)


@pytest.mark.parametrize("tpid,tci", [(ETH_P_8021Q, 10), (ETH_P_8021Q, 3 << 13 | 100),
                                      (ETH_P_8021AD, 7 << 13 | 30)],
                         ids=["802.1Q", "802.1Q-pcp", "802.1ad-pcp"])
def test_worker_frame_gets_the_learned_tag_and_goes_to_the_trunk(gw, tpid, tci):
    learn(gw, tci, tpid)
    f = frame(src=MAC_B, dst=MAC_A)
    r = gw.virt2phys(f)
    assert r.retval == TC_ACT_REDIRECT
    assert (r.ctx.cb[0], r.ctx.cb[1]) == (TRUNK, 0)            # the trunk, egress
    assert (r.ctx.cb[2], r.ctx.cb[3]) == (tci, socket.htons(tpid))  # the tag pushed, TPID kept
    assert r.data == f          # the tag is in skb metadata, the bytes are unchanged
    e = gw.learned(LO)
    assert (e.tx_pkts, e.tx_bytes, e.rx_pkts) == (1, len(f), 0)
    assert gw.nonzero_stats() == {"tx": 1}


def test_worker_frame_before_its_client_was_seen_passes(gw):
    f = frame(src=MAC_B, dst=MAC_A)
    r = gw.virt2phys(f)
    assert r.retval == TC_ACT_UNSPEC   # passed on: the next program or the stack
    assert r.data == f
    assert (r.ctx.cb[0], r.ctx.cb[2]) == (0, 0)
    assert gw.nonzero_stats() == {"pass_unlearned": 1}


@pytest.mark.parametrize("tpid", [ETH_P_8021Q, ETH_P_8021AD])
def test_round_trip_pushes_back_what_was_popped(gw, tpid):
    """A client's frame on VLAN 30 to worker port 1, then the worker's reply
    from port 1: the reply carries VLAN 30 with the client's TPID and PCP;
    after a move to VLAN 40 the next reply carries VLAN 40."""
    gw.add_client(MAC_A, LO)
    gw.phys2virt(frame(vid=30, tpid=tpid, pcp=2))
    r = gw.virt2phys(frame(src=MAC_B, dst=MAC_A))
    assert (r.retval, r.ctx.cb[0]) == (TC_ACT_REDIRECT, LO)      # trunk learned as lo
    assert (r.ctx.cb[2], r.ctx.cb[3]) == (2 << 13 | 30, socket.htons(tpid))
    gw.phys2virt(frame(vid=40, tpid=tpid))
    r = gw.virt2phys(frame(src=MAC_B, dst=MAC_A))
    assert (r.ctx.cb[2], r.ctx.cb[3]) == (40, socket.htons(tpid))
    e = gw.learned(LO)
    assert (e.rx_pkts, e.tx_pkts) == (2, 2)
    assert gw.nonzero_stats() == {"rx": 2, "tx": 2, "learn": 1, "move": 1}
