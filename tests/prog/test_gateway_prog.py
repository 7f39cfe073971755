"""gateway.bpf.o under BPF_PROG_TEST_RUN: tag popped, tag pushed, TPID and
PCP kept, unknown MACs and untagged frames untouched, VLAN moves, counters.

One table, one runner (runner.py). test_run binds skb->ifindex to lo (1):
phys2virt learns the trunk as 1, and virt2phys runs as if on worker port 1.
The tag arrives in the packet here (test_run has no receive path to strip it
into skb metadata); the end-to-end test covers the metadata case. A pushed
tag lands in skb metadata, which test_run does not return: vlan_push()
(bpf/lib/vlan.h) records it in cb[2] (TCI) and cb[3] (TPID, network order),
as redirect_to() records the target in cb[0] and flags in cb[1]."""
import socket

import pytest

from packets import BCAST, ETH_P_8021AD, ETH_P_8021Q, MAC_A, MAC_B, eth, ipv4, udp, vlan
from runner import (LO, TC_ACT_REDIRECT, TC_ACT_SHOT, TC_ACT_UNSPEC, TRUNK, WORKER,  # noqa: F401
                    Case, both, check, gw, ids, steps)

from bpfnet import abi

PAYLOAD = b"bpfnet gateway"
P2V, V2P = "gw_phys2virt", "gw_virt2phys"


def frame(src=MAC_A, dst=MAC_B, vid=None, tpid=ETH_P_8021Q, pcp=0) -> bytes:
    """A UDP/IPv4 frame, tagged with ``vid`` unless it is None."""
    e = eth(dst, src)
    if vid is not None:
        e = e / vlan(vid, pcp=pcp, tpid=tpid)
    return bytes(e / ipv4("10.0.0.11", "10.0.0.1") / udp(1000, 2000) / PAYLOAD)


REPLY = frame(src=MAC_B, dst=MAC_A)   # a worker's reply to client A
N = len(frame())                      # bytes are counted untagged


# --- setups ----------------------------------------------------------------------

def client(mac=MAC_A, worker=WORKER, flags=0):
    return lambda d: d.add_client(mac, worker, flags)


def pending(mac=MAC_A, worker=WORKER):
    """`client add` writes the entry pending first (intent), attaches the way
    back, then clears the flag: until then the MAC is no client."""
    return client(mac, worker, abi.GW_CLIENT_F_PENDING)


def from_trunk(*frames):
    def fn(d):
        for f in frames:
            d.phys2virt(f)
    return fn


def from_worker(*frames):
    def fn(d):
        for f in frames:
            d.virt2phys(f)
    return fn


def learned_tag(tci, tpid):
    return lambda d: d.learn(tci, tpid)


# --- effects ---------------------------------------------------------------------

def fdb_empty(d):
    assert len(d.fdb) == 0


def learned(worker=WORKER, trunk=None, tci=None, proto=None, rx=None, rx_bytes=None, tx=None,
            tx_bytes=None, fresh=False):
    """gw_vlan_fdb[worker] holds these (None: not checked)."""
    def fn(d):
        e = d.learned(worker)
        assert e is not None, f"nothing learned for worker {worker}"
        got = dict(trunk=e.trunk, tci=e.vlan_tci, proto=e.vlan_proto, rx=e.rx_pkts,
                   rx_bytes=e.rx_bytes, tx=e.tx_pkts, tx_bytes=e.tx_bytes)
        want = dict(trunk=trunk, tci=tci, proto=proto, rx=rx, rx_bytes=rx_bytes, tx=tx,
                    tx_bytes=tx_bytes)
        assert {k: got[k] for k, v in want.items() if v is not None} == \
            {k: v for k, v in want.items() if v is not None}
        if fresh:
            assert e.seen_ns >= d.started_ns
    return fn


TO_WORKER = (WORKER, 0)   # the worker port, egress
TO_TRUNK = (TRUNK, 0)     # the trunk, egress
Q, AD = ETH_P_8021Q, ETH_P_8021AD

CASES = [
    # phys2virt: a client's frame to its worker, the tag popped and learned
    *[Case(f"pop-{name}", "a client's tagged frame: to its worker, tag popped, nothing else "
           "changed", P2V, frame(dst=dst, vid=vid, tpid=tpid, pcp=pcp), setup=client(),
           verdict=TC_ACT_REDIRECT, redirect=TO_WORKER, output=frame(dst=dst),
           counters={"rx": 1, "learn": 1},
           effect=learned(trunk=LO, tci=pcp << 13 | vid, proto=tpid, rx=1, rx_bytes=N, tx=0,
                          tx_bytes=0, fresh=True))
      for name, tpid, vid, pcp, dst in [
          ("802.1Q", Q, 10, 0, MAC_B),
          ("802.1Q-pcp-bcast", Q, 4094, 5, BCAST),   # an ARP-like broadcast: steered all the same
          ("802.1ad-pcp", AD, 30, 7, MAC_B)]],
    Case("counters-per-client", "frames of two clients: each worker's entry counts its own",
         P2V, frame(src=MAC_B, vid=20),
         setup=steps(client(MAC_A, WORKER), client(MAC_B, WORKER + 1),
                     from_trunk(*[frame(src=MAC_A, vid=10)] * 3)),
         verdict=TC_ACT_REDIRECT, redirect=(WORKER + 1, 0), output=frame(src=MAC_B),
         counters={"rx": 4, "learn": 2},
         effect=both(learned(WORKER, tci=10, rx=3, rx_bytes=3 * N),
                     learned(WORKER + 1, tci=20, rx=1, rx_bytes=N))),
    Case("untagged", "an untagged frame: passed on untouched (the next program or the stack)",
         P2V, frame(), setup=client(), verdict=TC_ACT_UNSPEC,
         counters={"pass_untagged": 1}, effect=fdb_empty),
    *[Case(f"unknown-mac-{name}", "a tagged frame from a MAC that is no client: passed on, "
           "still tagged", P2V, frame(src="02:00:00:00:00:99", vid=10, tpid=tpid),
           setup=client(), verdict=TC_ACT_UNSPEC, counters={"pass_unknown": 1}, effect=fdb_empty)
      for name, tpid in [("802.1Q", Q), ("802.1ad", AD)]],
    Case("client-being-added", "a client still pending: not steered", P2V, frame(vid=10),
         setup=pending(), verdict=TC_ACT_UNSPEC, counters={"pass_unknown": 1}, effect=fdb_empty),
    Case("client-ready", "the same client once `client add` finished: steered", P2V,
         frame(vid=10), setup=steps(pending(), from_trunk(frame(vid=10)), client()),
         verdict=TC_ACT_REDIRECT, redirect=TO_WORKER, output=frame(),
         counters={"pass_unknown": 1, "rx": 1, "learn": 1}),
    Case("truncated-tag", "half a VLAN tag: dropped and counted", P2V,
         bytes(eth(MAC_B, MAC_A, type_=Q)) + b"\x00\x0a", setup=client(),
         verdict=TC_ACT_SHOT, counters={"drop_short": 1}),
    Case("vlan-move", "a client seen on another VLAN: followed at once, counters carried", P2V,
         frame(vid=20), setup=steps(client(), from_trunk(frame(vid=10))),
         verdict=TC_ACT_REDIRECT, redirect=TO_WORKER, output=frame(),
         counters={"rx": 2, "learn": 1, "move": 1}, effect=learned(tci=20, proto=Q, rx=2)),
    Case("tpid-move", "the same VID with another TPID: a move too", P2V, frame(vid=20, tpid=AD),
         setup=steps(client(), from_trunk(frame(vid=10), frame(vid=20))),
         verdict=TC_ACT_REDIRECT, redirect=TO_WORKER, output=frame(),
         counters={"rx": 3, "learn": 1, "move": 2}, effect=learned(tci=20, proto=AD, rx=3)),
    Case("same-tag-no-move", "the same tag again: no move", P2V, frame(vid=20, tpid=AD),
         setup=steps(client(), from_trunk(frame(vid=10), frame(vid=20), frame(vid=20, tpid=AD))),
         verdict=TC_ACT_REDIRECT, redirect=TO_WORKER, output=frame(),
         counters={"rx": 4, "learn": 1, "move": 2}),
    # virt2phys: the worker's reply to the trunk, with the learned tag pushed
    *[Case(f"push-{name}", "a worker's frame: the learned tag pushed (in skb metadata, the "
           "bytes unchanged), to the trunk", V2P, REPLY, setup=learned_tag(tci, tpid),
           verdict=TC_ACT_REDIRECT, redirect=TO_TRUNK, pushed=(tci, socket.htons(tpid)),
           counters={"tx": 1}, effect=learned(LO, tx=1, tx_bytes=len(REPLY), rx=0))
      for name, tpid, tci in [("802.1Q", Q, 10), ("802.1Q-pcp", Q, 3 << 13 | 100),
                              ("802.1ad-pcp", AD, 7 << 13 | 30)]],
    Case("unlearned", "a worker's frame before its client was ever seen: passed on", V2P,
         REPLY, verdict=TC_ACT_UNSPEC, counters={"pass_unlearned": 1}),
    # round trip: a client's frame on VLAN 30 to worker port 1, then the
    # worker's reply from port 1 carries VLAN 30 with the client's TPID and
    # PCP; after a move to VLAN 40 the next reply carries VLAN 40
    *[c for tpid in (Q, AD) for c in [
        Case(f"round-trip-{tpid:#x}", "the reply carries back what was popped", V2P, REPLY,
             setup=steps(client(MAC_A, LO), from_trunk(frame(vid=30, tpid=tpid, pcp=2))),
             verdict=TC_ACT_REDIRECT, redirect=(LO, 0),    # the trunk, learned as lo
             pushed=(2 << 13 | 30, socket.htons(tpid)), counters={"rx": 1, "tx": 1, "learn": 1}),
        Case(f"round-trip-after-move-{tpid:#x}", "after the client moved, the next reply "
             "follows", V2P, REPLY,
             setup=steps(client(MAC_A, LO), from_trunk(frame(vid=30, tpid=tpid, pcp=2)),
                         from_worker(REPLY), from_trunk(frame(vid=40, tpid=tpid))),
             verdict=TC_ACT_REDIRECT, redirect=(LO, 0), pushed=(40, socket.htons(tpid)),
             counters={"rx": 2, "tx": 2, "learn": 1, "move": 1},
             effect=learned(LO, rx=2, tx=2))]],
]


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_gateway(gw, case):
    check(gw, case)
