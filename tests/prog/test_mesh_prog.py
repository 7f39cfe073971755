"""mesh.bpf.o under BPF_PROG_TEST_RUN: verdicts, redirect targets (cb[0],
cb[1]), per-peer counters, split horizon, drop reasons.

One table, one runner (runner.py). Ingress frames need tunnel metadata,
which test_run cannot pass in: the test-side tests/progs/tunnel_inject.bpf.c
sets it and tail-calls mesh_ingress. Egress runs on ifindex 1 (lo), the one
device test_run can always bind skb->ifindex to, so lo plays the port; the
other ports and the VXLAN device (42) are made-up ifindexes, which a
redirect does not check."""
import pytest

from packets import BCAST, MAC_A, MAC_B, pkt_v4
from runner import (BPF_F_INGRESS, PORT, TC_ACT_REDIRECT, TC_ACT_SHOT, TC_ACT_UNSPEC, U32,  # noqa: F401
                    VXLAN, Case, both, check, ids, mesh, steps)

from bpfnet.abi import MeshCfg, MeshPeerKey, MeshPeerVal, ip_pack

ING, EG = "mesh_ingress", "mesh_egress"
TO_VXLAN = (VXLAN, 0)  # the VXLAN device, egress
FIVE = [("10.99.0.2", 10, 11), ("10.99.0.3", 10, 12), ("10.99.0.2", 20, 13),
        ("fd00:99::2", 10, 14), ("fd00:99::3", 16777215, 15)]


# --- setups ----------------------------------------------------------------------

def peers(*rows):
    """peers((remote, vni, port), ...) as `peer add` provisions them."""
    def fn(d):
        for r in rows:
            d.add_peer(*r)
    return fn


def local(addr):
    return lambda d: d.configure(addr)


def pending_peer(d):
    """`peer add` writes the entry first with port 0 (intent), then the port."""
    d.peers[MeshPeerKey(vni=10, remote=ip_pack("10.99.0.2"))] = MeshPeerVal(port=0, id=3)


def unconfigured(d):
    d.cfg[U32(0)] = MeshCfg()


def received(frame, vni, remote, times=1):
    def fn(d):
        for _ in range(times):
            d.ingress(frame, vni, remote)
    return fn


def sent(frame, came_from, times=1):
    def fn(d):
        for _ in range(times):
            d.egress(frame, came_from=came_from)
    return fn


# --- effects ---------------------------------------------------------------------

def peer_rx(remote, vni, pkts, nbytes=None):
    def fn(d):
        p = d.peer(remote, vni)
        assert p.rx_pkts == pkts
        if nbytes is not None:
            assert p.rx_bytes == nbytes
    return fn


def only_rx(remote, vni, nbytes):
    """That peer counted the frame, no other peer counted anything."""
    def fn(d):
        peer_rx(remote, vni, 1, nbytes)(d)
        assert sum(v.rx_pkts for _, v in d.peers.items()) == 1
    return fn


def no_rx(d):
    assert all(v.rx_pkts == 0 for _, v in d.peers.items())


def port_tx(pkts, nbytes=None, port=PORT):
    def fn(d):
        pv = d.ports[U32(port)]
        assert pv.tx_pkts == pkts
        if nbytes is not None:
            assert pv.tx_bytes == nbytes
    return fn


BC = pkt_v4(dst_mac=BCAST)
CASES = [
    # ingress: {vni, remote} -> port
    Case("ingress-no-tunnel", "a frame without tunnel metadata", ING, pkt_v4(),
         setup=peers(("10.99.0.2", 10, 11)), verdict=TC_ACT_SHOT,
         counters={"drop_no_tunnel": 1}, effect=peer_rx("10.99.0.2", 10, 0)),
    *[Case(f"ingress-into-own-port-{name}", "a flood from a peer: into its own port, no clone",
           ING, BC, tunnel=(vni, remote), setup=peers(*FIVE), verdict=TC_ACT_REDIRECT,
           redirect=(port, BPF_F_INGRESS), counters={"rx": 1}, effect=only_rx(remote, vni, len(BC)))
      for name, (remote, vni, port) in zip(
          ["v4-vni10-a", "v4-vni10-b", "v4-vni20", "v6-vni10", "v6-max-vni"], FIVE)],
    *[Case(f"ingress-unknown-{name}", what, ING, pkt_v4(), tunnel=(vni, remote),
           setup=peers(("10.99.0.2", 10, 11), ("fd00:99::2", 10, 14), ("fd00:99::3", 10, 15)),
           verdict=TC_ACT_SHOT, counters={"drop_unknown_peer": 1}, effect=no_rx)
      for name, what, remote, vni in [
          ("stranger", "a VTEP that is nobody's peer", "10.99.0.9", 10),
          ("peer-wrong-vni", "a peer, but not in this VNI", "10.99.0.2", 11),
          ("v6-peer-wrong-vni", "an IPv6 peer in another VNI", "fd00:99::2", 20),
          ("v4-of-a-v6-peer", ".3 is a peer only by its IPv6 address", "10.99.0.3", 10)]],
    Case("ingress-peer-being-added", "a peer whose port is not made yet (port 0)", ING,
         pkt_v4(), tunnel=(10, "10.99.0.2"), setup=pending_peer, verdict=TC_ACT_SHOT,
         counters={"drop_unknown_peer": 1}, effect=peer_rx("10.99.0.2", 10, 0)),
    Case("ingress-counts-per-peer", "frames from two peers: each counts its own", ING,
         pkt_v4(size=64), tunnel=(10, "10.99.0.3"),
         setup=steps(peers(("10.99.0.2", 10, 11), ("10.99.0.3", 10, 12)),
                     received(pkt_v4(size=100), 10, "10.99.0.2", times=3)),
         verdict=TC_ACT_REDIRECT, redirect=(12, BPF_F_INGRESS), counters={"rx": 4},
         effect=both(peer_rx("10.99.0.2", 10, 3, 300), peer_rx("10.99.0.3", 10, 1, 64))),
    # egress: port -> {remote, vni}
    *[Case(f"egress-to-peer-{fam}-{kind}", f"a {kind} frame from a tenant's port: to the "
           "port's peer", EG, pkt_v4(src_mac=MAC_A, dst_mac=dst),
           ctx={"ifindex": PORT, "ingress_ifindex": 5},
           setup=steps(local(loc), peers((remote, 10, PORT))), verdict=TC_ACT_REDIRECT,
           redirect=TO_VXLAN, counters={"tx": 1},
           effect=port_tx(1, len(pkt_v4(src_mac=MAC_A, dst_mac=dst))))
      for fam, remote, loc in [("v4", "10.99.0.2", "10.99.0.1"),
                               ("v4-routing-picks-source", "10.99.0.2", None),
                               ("v6", "fd00:99::2", "fd00:99::1"),
                               ("v6-routing-picks-source", "fd00:99::2", None)]
      for kind, dst in [("unicast", MAC_B), ("broadcast", BCAST)]],
    Case("egress-local-frame", "ingress_ifindex 0: the host itself sent it (an address on "
         "the bridge)", EG, pkt_v4(), ctx={"ifindex": PORT, "ingress_ifindex": 0},
         setup=peers(("10.99.0.2", 10, PORT)), verdict=TC_ACT_REDIRECT, redirect=TO_VXLAN,
         counters={"tx": 1}),
    # split horizon: the bridge floods a frame that peer .3 sent (it entered
    # through port 12) out of port 1 towards peer .2: .3 sent .2 its own copy
    Case("egress-split-horizon", "a frame that came from the tunnel never goes back", EG, BC,
         ctx={"ifindex": PORT, "ingress_ifindex": 12},
         setup=peers(("10.99.0.2", 10, PORT), ("10.99.0.3", 10, 12)), verdict=TC_ACT_SHOT,
         counters={"drop_split_horizon": 1}, effect=port_tx(0)),
    Case("egress-split-horizon-across", "split horizon across VNIs and families", EG,
         pkt_v4(), ctx={"ifindex": PORT, "ingress_ifindex": 13},
         setup=peers(("10.99.0.2", 10, PORT), ("fd00:99::3", 20, 13)), verdict=TC_ACT_SHOT,
         counters={"drop_split_horizon": 1}),
    Case("egress-not-a-port", "a device that is no port: TC_ACT_UNSPEC, the next program "
         "on the hook or the stack decides", EG, pkt_v4(), ctx={"ifindex": PORT},
         setup=peers(("10.99.0.2", 10, 11)), verdict=TC_ACT_UNSPEC),
    Case("egress-unconfigured", "a frame before mesh_cfg is set", EG, pkt_v4(),
         ctx={"ifindex": PORT}, setup=steps(peers(("10.99.0.2", 10, PORT)), unconfigured),
         verdict=TC_ACT_SHOT, counters={"drop_no_config": 1}),
    Case("round-trip", "both directions of one peer counted", EG, pkt_v4(),
         ctx={"ifindex": PORT, "ingress_ifindex": 5},
         setup=steps(peers(("10.99.0.2", 10, PORT)), received(pkt_v4(), 10, "10.99.0.2"),
                     sent(pkt_v4(), came_from=5)),
         verdict=TC_ACT_REDIRECT, redirect=TO_VXLAN, counters={"rx": 1, "tx": 2},
         effect=both(peer_rx("10.99.0.2", 10, 1), port_tx(2))),
]


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_mesh(mesh, case):
    check(mesh, case)
