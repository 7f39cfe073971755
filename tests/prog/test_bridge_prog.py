"""bridge.bpf.o under BPF_PROG_TEST_RUN: verdicts, redirect targets (cb[0],
cb[1]), FDB learning, MAC moves, ageing, flooding, allow lists, counters.

Ingress frames need tunnel metadata, which test_run cannot pass in: the
test-side tests/progs/tunnel_inject.bpf.c sets it and tail-calls
bridge_ingress. The port is ifindex 1 (lo), the one device test_run can
always bind skb->ifindex to; the VXLAN ifindex is a made-up 42."""
import ctypes
import time

import pytest

from conftest import need_root
from inject import Injector
from packets import BCAST, MAC_A, MAC_B, pkt_v4

from bpfnet import abi, libbpf
from bpfnet.abi import (BrAllowKey, BrCfg, BrFdbKey, BrFdbVal, BrPortVal, BrVniVal,
                        ip_pack, ip_unpack, mac_pack)
from bpfnet.maps import Map, PerCpuArray

TC_ACT_UNSPEC, TC_ACT_SHOT, TC_ACT_REDIRECT = 0xFFFFFFFF, 2, 7  # retval is a u32
PORT, VXLAN = 1, 42
U32 = ctypes.c_uint32


class Bridge:
    def __init__(self, obj, inj):
        self.obj, self.inj = obj, inj
        m = lambda n, k, v: Map(obj.map_fd(n), k, v, n, owned=False)  # noqa: E731
        self.cfg = m("br_cfg", U32, BrCfg)
        self.vni = m("br_vni", U32, BrVniVal)
        self.port = m("br_port", U32, BrPortVal)
        self.fdb = m("br_fdb", BrFdbKey, BrFdbVal)
        self.allow = m("br_allow", BrAllowKey, U32)
        self.stats = PerCpuArray(obj.map_fd("br_stats"), abi.BrStats, "br_stats", owned=False)
        self.cfg[U32(0)] = BrCfg(vxlan_ifindex=VXLAN, ageing_s=300, group=ip_pack("239.1.1.1"))

    def add_vni(self, vni, port=PORT, flags=0, group="239.1.1.1"):
        self.vni[U32(vni)] = BrVniVal(port=port, bridge=99, flags=flags, group=ip_pack(group))
        self.port[U32(port)] = BrPortVal(vni=vni)

    def stat(self, name):
        return self.stats.sum_fields()[name]

    def ingress(self, frame, vni, remote="10.0.0.2", tunnel=True):
        if not tunnel:
            return libbpf.prog_test_run(self.obj.prog_fd("bridge_ingress"), frame, ctx=abi.SkBuff())
        return self.inj.run(frame, vni, remote)

    def egress(self, frame, ifindex=PORT):
        return libbpf.prog_test_run(self.obj.prog_fd("bridge_egress"), frame,
                                    ctx=abi.SkBuff(ifindex=ifindex))

    def entry(self, mac, port=PORT):
        return self.fdb.get(BrFdbKey(mac=mac_pack(mac), port=port))


@pytest.fixture
def br(loaded_obj):
    need_root()
    obj = loaded_obj("bridge")
    inj = Injector(obj.prog_fd("bridge_ingress"))
    try:
        yield Bridge(obj, inj)
    finally:
        inj.close()


def test_ingress_without_tunnel_metadata_is_dropped_and_counted(br):
    br.add_vni(10)
    r = br.ingress(pkt_v4(), 10, tunnel=False)
    assert r.retval == TC_ACT_SHOT
    assert br.stat("drop_no_tunnel") == 1
    assert len(br.fdb) == 0


def test_ingress_unknown_vni_is_dropped(br):
    br.add_vni(10)
    r = br.ingress(pkt_v4(), 11)
    assert r.retval == TC_ACT_SHOT
    assert br.stat("drop_unknown_vni") == 1
    assert len(br.fdb) == 0


def test_ingress_redirects_into_the_port_and_learns(br):
    br.add_vni(10)
    before = time.monotonic_ns()
    r = br.ingress(pkt_v4(src_mac=MAC_A), 10, remote="10.0.0.2")
    assert r.retval == TC_ACT_REDIRECT
    assert (r.ctx.cb[0], r.ctx.cb[1]) == (PORT, 1)  # into the port, BPF_F_INGRESS
    assert r.data == pkt_v4(src_mac=MAC_A)           # no rewrite
    e = br.entry(MAC_A)
    assert str(ip_unpack(e.remote)) == "10.0.0.2"
    assert (e.vni, e.rx_pkts, e.tx_pkts) == (10, 1, 0)
    assert e.seen_ns >= before
    assert (br.stat("rx"), br.stat("learn"), br.stat("move")) == (1, 1, 0)
    br.ingress(pkt_v4(src_mac=MAC_A), 10, remote="10.0.0.2")
    assert br.entry(MAC_A).rx_pkts == 2
    assert br.stat("learn") == 1


def test_mac_move_is_relearned_at_once(br):
    br.add_vni(10)
    br.ingress(pkt_v4(src_mac=MAC_A), 10, remote="10.0.0.2")
    br.egress(pkt_v4(dst_mac=MAC_A))
    r = br.ingress(pkt_v4(src_mac=MAC_A), 10, remote="10.0.0.3")
    assert r.retval == TC_ACT_REDIRECT
    e = br.entry(MAC_A)
    assert str(ip_unpack(e.remote)) == "10.0.0.3"
    assert (e.rx_pkts, e.tx_pkts) == (2, 1)  # counters carried over
    assert br.stat("move") == 1


def test_ipv6_vtep_is_learned(br):
    br.add_vni(10)
    r = br.ingress(pkt_v4(src_mac=MAC_B), 10, remote="fd00::2")
    assert r.retval == TC_ACT_REDIRECT
    assert str(ip_unpack(br.entry(MAC_B).remote)) == "fd00::2"


def test_group_source_mac_is_not_learned(br):
    br.add_vni(10)
    r = br.ingress(pkt_v4(src_mac="01:00:5e:00:00:01"), 10)
    assert r.retval == TC_ACT_REDIRECT
    assert len(br.fdb) == 0


def test_allow_list(br):
    br.add_vni(10, flags=abi.BR_VNI_F_ALLOW_LIST)
    br.allow[BrAllowKey(vni=10, remote=ip_pack("10.0.0.2"))] = U32(1)
    assert br.ingress(pkt_v4(), 10, remote="10.0.0.9").retval == TC_ACT_SHOT
    assert br.stat("drop_vtep_denied") == 1
    assert len(br.fdb) == 0
    assert br.ingress(pkt_v4(), 10, remote="10.0.0.2").retval == TC_ACT_REDIRECT
    assert br.stat("rx") == 1


@pytest.mark.parametrize("dst", [MAC_B, BCAST, "01:00:5e:01:02:03", "33:33:00:00:00:01"])
def test_egress_unknown_and_group_destinations_flood(br, dst):
    br.add_vni(10)
    r = br.egress(pkt_v4(dst_mac=dst))
    assert r.retval == TC_ACT_REDIRECT
    assert (r.ctx.cb[0], r.ctx.cb[1]) == (VXLAN, 0)  # VXLAN device, egress
    assert (br.stat("flood"), br.stat("tx")) == (1, 0)


def test_egress_known_destination_goes_to_its_vtep(br):
    br.add_vni(10)
    br.ingress(pkt_v4(src_mac=MAC_A), 10, remote="10.0.0.2")
    r = br.egress(pkt_v4(src_mac=MAC_B, dst_mac=MAC_A))
    assert r.retval == TC_ACT_REDIRECT
    assert r.ctx.cb[0] == VXLAN
    assert (br.stat("tx"), br.stat("flood")) == (1, 0)
    assert br.entry(MAC_A).tx_pkts == 1


def test_egress_aged_entry_floods_and_is_removed(br):
    br.add_vni(10)
    cfg = br.cfg[U32(0)]
    cfg.ageing_s = 1  # short, so the test works right after boot too
    br.cfg[U32(0)] = cfg
    br.ingress(pkt_v4(src_mac=MAC_A), 10, remote="10.0.0.2")
    key = BrFdbKey(mac=mac_pack(MAC_A), port=PORT)
    e = br.fdb[key]
    e.seen_ns -= 3 * 10**9  # seen 3 s ago: older than the ageing time
    br.fdb[key] = e
    r = br.egress(pkt_v4(dst_mac=MAC_A))
    assert r.retval == TC_ACT_REDIRECT
    assert (br.stat("aged"), br.stat("flood"), br.stat("tx")) == (1, 1, 0)
    assert br.entry(MAC_A) is None


def test_egress_on_a_device_that_is_not_a_port_passes(br):
    br.add_vni(10, port=5)  # port 5, but the frame leaves ifindex 1
    r = br.egress(pkt_v4())
    assert r.retval == TC_ACT_UNSPEC  # not ours: the next program decides
    assert br.stat("flood") == 0


def test_egress_before_configuration_is_dropped(br):
    br.add_vni(10)
    br.cfg[U32(0)] = BrCfg()
    assert br.egress(pkt_v4()).retval == TC_ACT_SHOT
    assert br.stat("drop_no_config") == 1


def test_learning_is_per_port(br):
    """The same MAC in two VNIs is two entries (VNIs are isolated)."""
    br.add_vni(10, port=PORT)
    br.vni[U32(20)] = BrVniVal(port=7, bridge=99, group=ip_pack("239.1.1.1"))
    br.ingress(pkt_v4(src_mac=MAC_A), 10, remote="10.0.0.2")
    br.ingress(pkt_v4(src_mac=MAC_A), 20, remote="10.0.0.3")
    assert str(ip_unpack(br.entry(MAC_A, PORT).remote)) == "10.0.0.2"
    assert str(ip_unpack(br.entry(MAC_A, 7).remote)) == "10.0.0.3"
    assert br.entry(MAC_A, 7).vni == 20


def test_full_fdb_keeps_forwarding_known_flows_and_counts_evictions(br, pin_root):
    """Learn 1000 more MACs than br_fdb holds while a known flow keeps
    talking: it stays known (LRU), and the evictions are accounted."""
    from bpfnet.functions.base import PinDir
    from bpfnet.functions.bridge import Bridge as BridgeFn
    br.add_vni(10)
    br.inj.set(10, "10.0.0.2")
    inject = br.inj.fd
    base = bytearray(pkt_v4())
    libbpf.prog_test_run(inject, pkt_v4(src_mac=MAC_A), ctx=abi.SkBuff())
    n = abi.BR_FDB_MAX + 1000
    for i in range(n):
        base[6:12] = (0x020000000000 + 0x100000 + i).to_bytes(6, "big")
        libbpf.prog_test_run(inject, bytes(base), ctx=abi.SkBuff())
        if i % 512 == 0:  # the known flow keeps talking
            assert br.egress(pkt_v4(dst_mac=MAC_A)).retval == TC_ACT_REDIRECT
    assert br.stat("learn") == n + 1
    before = br.stat("tx")
    r = br.egress(pkt_v4(dst_mac=MAC_A))
    assert r.retval == TC_ACT_REDIRECT and br.stat("tx") == before + 1  # still known: no flood
    fn = BridgeFn(PinDir(pin_root, ""))  # the fixture pins at <pin_root>/bridge
    try:
        fill = fn.map_fill()["br_fdb"]
        assert fill["max_entries"] == abi.BR_FDB_MAX
        assert abi.BR_FDB_MAX - 1024 <= fill["entries"] <= abi.BR_FDB_MAX
        assert fill["evictions"] == n + 1 - fill["entries"] >= 1000
    finally:
        fn.close()
