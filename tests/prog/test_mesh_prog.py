"""mesh.bpf.o under BPF_PROG_TEST_RUN: verdicts, redirect targets (cb[0],
cb[1]), per-peer counters, split horizon, drop reasons.

Ingress frames need tunnel metadata, which test_run cannot pass in: the
test-side tests/progs/tunnel_inject.bpf.c sets it and tail-calls
mesh_ingress. Egress runs on ifindex 1 (lo), the one device test_run can
always bind skb->ifindex to, so lo plays the port; the other ports and the
VXLAN device (42) are made-up ifindexes, which a redirect does not check."""
import ctypes

import pytest

from conftest import need_root
from inject import Injector
from packets import BCAST, MAC_A, MAC_B, pkt_v4

from bpfnet import abi, libbpf
from bpfnet.abi import MeshCfg, MeshPeerKey, MeshPeerVal, MeshPortVal, ip_pack
from bpfnet.maps import Map, PerCpuArray

TC_ACT_UNSPEC, TC_ACT_SHOT, TC_ACT_REDIRECT = 0xFFFFFFFF, 2, 7  # retval is a u32
BPF_F_INGRESS = 1
PORT, VXLAN = 1, 42
U32 = ctypes.c_uint32
STATS = [f for f, _ in abi.MeshStats._fields_]


class Mesh:
    def __init__(self, obj, inj):
        self.obj, self.inj = obj, inj
        m = lambda n, k, v: Map(obj.map_fd(n), k, v, n, owned=False)  # noqa: E731
        self.cfg = m("mesh_cfg", U32, MeshCfg)
        self.peers = m("mesh_peers", MeshPeerKey, MeshPeerVal)
        self.ports = m("mesh_ports", U32, MeshPortVal)
        self.stats = PerCpuArray(obj.map_fd("mesh_stats"), abi.MeshStats, "mesh_stats", owned=False)
        self.configure("10.99.0.1")

    def configure(self, local=None, vxlan=VXLAN):
        c = MeshCfg(vxlan_ifindex=vxlan, dstport=4789)
        if local:
            c.local = ip_pack(local)
        self.cfg[U32(0)] = c

    def add_peer(self, remote, vni, port):
        """As `peer add` provisions: both directions of one port."""
        self.peers[MeshPeerKey(vni=vni, remote=ip_pack(remote))] = MeshPeerVal(port=port, id=port)
        self.ports[U32(port)] = MeshPortVal(remote=ip_pack(remote), vni=vni)

    def peer(self, remote, vni):
        return self.peers[MeshPeerKey(vni=vni, remote=ip_pack(remote))]

    def counters(self):
        return self.stats.sum_fields()

    def ingress(self, frame, vni=None, remote=None):
        if vni is None:  # no tunnel metadata at all
            return libbpf.prog_test_run(self.obj.prog_fd("mesh_ingress"), frame, ctx=abi.SkBuff())
        return self.inj.run(frame, vni, remote)

    def egress(self, frame, ifindex=PORT, came_from=0):
        return libbpf.prog_test_run(self.obj.prog_fd("mesh_egress"), frame,
                                    ctx=abi.SkBuff(ifindex=ifindex, ingress_ifindex=came_from))


@pytest.fixture
def mesh(loaded_obj):
    need_root()
    obj = loaded_obj("mesh")
    inj = Injector(obj.prog_fd("mesh_ingress"))
    try:
        yield Mesh(obj, inj)
    finally:
        inj.close()


def only(**nonzero):
    """Every counter zero except those given."""
    return {name: nonzero.get(name, 0) for name in STATS}


# --- ingress: {vni, remote} -> port --------------------------------------------

def test_ingress_without_tunnel_metadata_is_dropped_and_counted(mesh):
    mesh.add_peer("10.99.0.2", 10, 11)
    r = mesh.ingress(pkt_v4())
    assert r.retval == TC_ACT_SHOT
    assert mesh.counters() == only(drop_no_tunnel=1)
    assert mesh.peer("10.99.0.2", 10).rx_pkts == 0


@pytest.mark.parametrize("remote,vni,port", [
    ("10.99.0.2", 10, 11),
    ("10.99.0.3", 10, 12),
    ("10.99.0.2", 20, 13),
    ("fd00:99::2", 10, 14),
    ("fd00:99::3", 16777215, 15),
], ids=["v4-vni10-a", "v4-vni10-b", "v4-vni20", "v6-vni10", "v6-max-vni"])
def test_ingress_redirects_into_the_peers_own_port(mesh, remote, vni, port):
    for args in [("10.99.0.2", 10, 11), ("10.99.0.3", 10, 12), ("10.99.0.2", 20, 13),
                 ("fd00:99::2", 10, 14), ("fd00:99::3", 16777215, 15)]:
        mesh.add_peer(*args)
    frame = pkt_v4(dst_mac=BCAST)
    r = mesh.ingress(frame, vni, remote)
    assert r.retval == TC_ACT_REDIRECT
    assert (r.ctx.cb[0], r.ctx.cb[1]) == (port, BPF_F_INGRESS)  # into the port, no clone
    assert r.data == frame                                        # not rewritten
    p = mesh.peer(remote, vni)
    assert (p.rx_pkts, p.rx_bytes) == (1, len(frame))
    assert mesh.counters() == only(rx=1)
    # no other peer counted anything
    assert sum(v.rx_pkts for _, v in mesh.peers.items()) == 1


@pytest.mark.parametrize("remote,vni", [
    ("10.99.0.9", 10),    # a VTEP that is nobody's peer
    ("10.99.0.2", 11),    # a peer, but not in this VNI
    ("fd00:99::2", 20),   # an IPv6 peer in another VNI
    ("10.99.0.3", 10),    # .3 is a peer only by its IPv6 address
], ids=["stranger", "peer-wrong-vni", "v6-peer-wrong-vni", "v4-of-a-v6-peer"])
def test_ingress_from_unknown_vni_remote_is_dropped_and_counted(mesh, remote, vni):
    mesh.add_peer("10.99.0.2", 10, 11)
    mesh.add_peer("fd00:99::2", 10, 14)
    mesh.add_peer("fd00:99::3", 10, 15)
    r = mesh.ingress(pkt_v4(), vni, remote)
    assert r.retval == TC_ACT_SHOT
    assert mesh.counters() == only(drop_unknown_peer=1)
    assert all(v.rx_pkts == 0 for _, v in mesh.peers.items())


def test_ingress_to_a_peer_still_being_added_is_dropped(mesh):
    """`peer add` writes the entry first with port 0 (intent), then the port."""
    mesh.peers[MeshPeerKey(vni=10, remote=ip_pack("10.99.0.2"))] = MeshPeerVal(port=0, id=3)
    r = mesh.ingress(pkt_v4(), 10, "10.99.0.2")
    assert r.retval == TC_ACT_SHOT
    assert mesh.counters() == only(drop_unknown_peer=1)
    assert mesh.peer("10.99.0.2", 10).rx_pkts == 0


def test_ingress_counts_accumulate_per_peer(mesh):
    mesh.add_peer("10.99.0.2", 10, 11)
    mesh.add_peer("10.99.0.3", 10, 12)
    for _ in range(3):
        mesh.ingress(pkt_v4(size=100), 10, "10.99.0.2")
    mesh.ingress(pkt_v4(size=64), 10, "10.99.0.3")
    assert (mesh.peer("10.99.0.2", 10).rx_pkts, mesh.peer("10.99.0.2", 10).rx_bytes) == (3, 300)
    assert (mesh.peer("10.99.0.3", 10).rx_pkts, mesh.peer("10.99.0.3", 10).rx_bytes) == (1, 64)
    assert mesh.counters() == only(rx=4)


# --- egress: port -> {remote, vni} ---------------------------------------------

@pytest.mark.parametrize("remote,local", [
    ("10.99.0.2", "10.99.0.1"),
    ("10.99.0.2", None),
    ("fd00:99::2", "fd00:99::1"),
    ("fd00:99::2", None),
], ids=["v4", "v4-routing-picks-source", "v6", "v6-routing-picks-source"])
@pytest.mark.parametrize("dst", [MAC_B, BCAST], ids=["unicast", "broadcast"])
def test_egress_tunnels_to_the_ports_peer(mesh, remote, local, dst):
    mesh.configure(local)
    mesh.add_peer(remote, 10, PORT)
    frame = pkt_v4(src_mac=MAC_A, dst_mac=dst)
    r = mesh.egress(frame, came_from=5)  # from a tenant's port of the bridge
    assert r.retval == TC_ACT_REDIRECT
    assert (r.ctx.cb[0], r.ctx.cb[1]) == (VXLAN, 0)  # the VXLAN device, egress
    assert r.data == frame
    pv = mesh.ports[U32(PORT)]
    assert (pv.tx_pkts, pv.tx_bytes) == (1, len(frame))
    assert mesh.counters() == only(tx=1)


def test_egress_of_a_locally_made_frame_is_tunnelled(mesh):
    """ingress_ifindex 0: the host itself sent it (an address on the bridge)."""
    mesh.add_peer("10.99.0.2", 10, PORT)
    assert mesh.egress(pkt_v4(), came_from=0).retval == TC_ACT_REDIRECT
    assert mesh.counters() == only(tx=1)


def test_split_horizon_a_frame_from_the_tunnel_never_goes_back(mesh):
    """The bridge floods a frame that peer .3 sent (it entered through port
    12) out of port 1 towards peer .2: .3 has sent .2 its own copy."""
    mesh.add_peer("10.99.0.2", 10, PORT)
    mesh.add_peer("10.99.0.3", 10, 12)
    r = mesh.egress(pkt_v4(dst_mac=BCAST), came_from=12)
    assert r.retval == TC_ACT_SHOT
    assert mesh.counters() == only(drop_split_horizon=1)
    assert mesh.ports[U32(PORT)].tx_pkts == 0


def test_split_horizon_holds_across_vnis_and_families(mesh):
    mesh.add_peer("10.99.0.2", 10, PORT)
    mesh.add_peer("fd00:99::3", 20, 13)
    assert mesh.egress(pkt_v4(), came_from=13).retval == TC_ACT_SHOT
    assert mesh.counters() == only(drop_split_horizon=1)


def test_egress_on_a_device_that_is_not_a_port_passes(mesh):
    """TC_ACT_UNSPEC: the next program on the hook (tcx) or the stack decides."""
    mesh.add_peer("10.99.0.2", 10, 11)  # port 11, but the frame leaves ifindex 1
    r = mesh.egress(pkt_v4())
    assert r.retval == TC_ACT_UNSPEC
    assert mesh.counters() == only()


def test_egress_before_configuration_is_dropped(mesh):
    mesh.add_peer("10.99.0.2", 10, PORT)
    mesh.cfg[U32(0)] = MeshCfg()
    assert mesh.egress(pkt_v4()).retval == TC_ACT_SHOT
    assert mesh.counters() == only(drop_no_config=1)


def test_round_trip_counts_both_directions_of_one_peer(mesh):
    mesh.add_peer("10.99.0.2", 10, PORT)
    mesh.ingress(pkt_v4(), 10, "10.99.0.2")
    mesh.egress(pkt_v4(), came_from=5)
    mesh.egress(pkt_v4(), came_from=5)
    assert mesh.peer("10.99.0.2", 10).rx_pkts == 1
    assert mesh.ports[U32(PORT)].tx_pkts == 2
    assert mesh.counters() == only(rx=1, tx=2)
