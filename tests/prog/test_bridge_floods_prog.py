"""bridge.bpf.o under BPF_PROG_TEST_RUN: static FDB entries (never aged, never
relearned, conflicts counted) and ARP/ND suppression (requests for bound IPs
answered back into the port, exact reply bytes; unknown ones flooded and
counted; gratuitous ARP, probes and DAD never answered; bindings learned from
the tunnel side, static ones never overwritten).

The port is ifindex 1 (lo), the VXLAN ifindex a made-up 42, as in
test_bridge_prog.py; ingress goes through the test-side tunnel injector."""
import ctypes
import time

import pytest

from conftest import need_root
from inject import Injector
from neighframes import arp_reply, arp_request, na, ns, parse_arp, parse_na
from packets import MAC_A, MAC_B, pkt_v4
from runner import named

from bpfnet import abi, libbpf
from bpfnet.abi import (BrCfg, BrFdbKey, BrFdbVal, BrNeighKey, BrNeighVal, BrPortVal,
                        BrVniVal, ip_pack, ip_unpack, mac_pack)
from bpfnet.maps import Map, PerCpuArray

TC_ACT_REDIRECT = 7
PORT, VXLAN, INGRESS = 1, 42, 1
U32 = ctypes.c_uint32
MAC_R = "02:00:00:00:00:0c"      # a remote tenant's MAC, bound to IP_R
IP_R, IP_A = "192.168.0.2", "192.168.0.1"
IP6_R, IP6_A = "fd10::2", "fd10::1"
COUNTERS = ("arp_reply", "nd_reply", "arp_flood", "nd_flood", "flood", "tx", "neigh_learn",
            "static_conflict", "learn", "move", "aged")


class Bridge:
    def __init__(self, obj, inj):
        self.obj, self.inj = obj, inj
        m = lambda n, k, v: Map(obj.map_fd(n), k, v, n, owned=False)  # noqa: E731
        self.cfg = m("br_cfg", U32, BrCfg)
        self.vni = m("br_vni", U32, BrVniVal)
        self.port = m("br_port", U32, BrPortVal)
        self.fdb = m("br_fdb", BrFdbKey, BrFdbVal)
        self.neigh = m("br_neigh", BrNeighKey, BrNeighVal)
        self.stats = PerCpuArray(obj.map_fd("br_stats"), abi.BrStats, "br_stats", owned=False)
        self.supp = PerCpuArray(obj.map_fd("br_supp_stats"), abi.BrSuppStats, "br_supp_stats",
                                owned=False)
        self.cfg[U32(0)] = BrCfg(vxlan_ifindex=VXLAN, ageing_s=300, group=ip_pack("239.1.1.1"))
        self.vni[U32(10)] = BrVniVal(port=PORT, bridge=99, group=ip_pack("239.1.1.1"))
        self.port[U32(PORT)] = BrPortVal(vni=10)

    def counters(self):
        s = {**self.stats.sum_fields(), **self.supp.sum_fields()}
        return {k: s[k] for k in COUNTERS if s[k]}

    def ingress(self, frame, vni=10, remote="10.0.0.2"):
        return self.inj.run(frame, vni, remote)

    def egress(self, frame):
        return libbpf.prog_test_run(self.obj.prog_fd("bridge_egress"), frame,
                                    ctx=abi.SkBuff(ifindex=PORT))

    def static(self, mac, remote, vni=10):
        self.fdb[BrFdbKey(mac=mac_pack(mac), port=PORT)] = BrFdbVal(
            remote=ip_pack(remote), vni=vni, flags=abi.BR_FDB_F_STATIC, seen_ns=time.monotonic_ns())

    def entry(self, mac):
        return self.fdb.get(BrFdbKey(mac=mac_pack(mac), port=PORT))

    def bind(self, ip, mac, vni=10, static=True, seen_ns=None):
        self.neigh[BrNeighKey(vni=vni, ip=ip_pack(ip))] = BrNeighVal(
            mac=mac_pack(mac), flags=abi.BR_NEIGH_F_STATIC if static else 0,
            seen_ns=time.monotonic_ns() if seen_ns is None else seen_ns)

    def binding(self, ip, vni=10):
        return self.neigh.get(BrNeighKey(vni=vni, ip=ip_pack(ip)))


def harness(loaded_obj):
    """For a fixture: a Bridge on a freshly loaded object, closed after."""
    need_root()
    obj = loaded_obj("bridge")
    inj = Injector(obj.prog_fd("bridge_ingress"))
    try:
        yield Bridge(obj, inj)
    finally:
        inj.close()


@pytest.fixture
def br(loaded_obj):
    yield from harness(loaded_obj)


def flooded(r):
    return r.retval == TC_ACT_REDIRECT and (r.ctx.cb[0], r.ctx.cb[1]) == (VXLAN, 0)


def answered(r):
    return r.retval == TC_ACT_REDIRECT and (r.ctx.cb[0], r.ctx.cb[1]) == (PORT, INGRESS)


# --- static FDB entries --------------------------------------------------------

def test_static_entry_is_not_relearned_and_the_conflict_counted(br):
    br.static(MAC_A, "10.0.0.2")
    r = br.ingress(pkt_v4(src_mac=MAC_A), remote="10.0.0.3")
    assert answered(r)  # still delivered into the port, as the kernel bridge does
    e = br.entry(MAC_A)
    assert (str(ip_unpack(e.remote)), e.flags, e.rx_pkts) == ("10.0.0.2", abi.BR_FDB_F_STATIC, 0)
    assert br.counters() == {"static_conflict": 1}
    br.ingress(pkt_v4(src_mac=MAC_A), remote="10.0.0.2")  # from its own VTEP: counted
    assert br.entry(MAC_A).rx_pkts == 1
    assert br.counters() == {"static_conflict": 1}


def test_static_entry_never_ages(br):
    br.static(MAC_B, "10.0.0.4")
    e = br.entry(MAC_B)
    e.seen_ns -= 10 * 300 * 10**9  # ten ageing times ago
    br.fdb[BrFdbKey(mac=mac_pack(MAC_B), port=PORT)] = e
    r = br.egress(pkt_v4(dst_mac=MAC_B))
    assert r.retval == TC_ACT_REDIRECT and r.ctx.cb[0] == VXLAN
    assert br.counters() == {"tx": 1}
    assert br.entry(MAC_B).tx_pkts == 1


def test_learned_entry_still_moves(br):
    br.ingress(pkt_v4(src_mac=MAC_A), remote="10.0.0.2")
    br.ingress(pkt_v4(src_mac=MAC_A), remote="10.0.0.3")
    assert br.counters() == {"learn": 1, "move": 1}
    assert br.entry(MAC_A).flags == 0


# --- ARP -------------------------------------------------------------------------

def test_arp_request_for_a_bound_ip_is_answered_into_the_port(br):
    br.bind(IP_R, MAC_R)
    r = br.egress(arp_request(MAC_A, IP_A, IP_R))
    assert answered(r)
    assert r.data == arp_reply(MAC_R, IP_R, MAC_A, IP_A)
    assert br.counters() == {"arp_reply": 1}
    assert br.binding(IP_R).replies == 1


def test_padded_arp_request_keeps_its_length(br):
    br.bind(IP_R, MAC_R)
    r = br.egress(arp_request(MAC_A, IP_A, IP_R, pad_to=60))
    assert answered(r)
    assert r.data == arp_reply(MAC_R, IP_R, MAC_A, IP_A, pad_to=60)


def test_arp_request_for_an_unknown_ip_floods_and_is_counted(br):
    br.bind(IP_R, MAC_R, vni=11)  # another VNI's binding does not answer
    req = arp_request(MAC_A, IP_A, IP_R)
    r = br.egress(req)
    assert flooded(r) and r.data == req
    assert br.counters() == {"arp_flood": 1, "flood": 1}


@pytest.mark.parametrize("what,frame", named([
    ("gratuitous", arp_request(MAC_A, IP_R, IP_R)),
    ("probe", arp_request(MAC_A, "0.0.0.0", IP_R)),
    ("reply", arp_reply(MAC_A, IP_A, "ff:ff:ff:ff:ff:ff", IP_R)),
    ("not IPv4", arp_request(MAC_A, IP_A, IP_R)[:16] + b"\x86\xdd" + arp_request(MAC_A, IP_A, IP_R)[18:]),
    ("truncated", arp_request(MAC_A, IP_A, IP_R)[:41]),
]))
def test_arp_never_answered(br, what, frame):
    never_answered(br, what, frame)


def never_answered(br, what, frame):
    """With both IPs bound, ``frame`` is flooded unchanged and only counted so."""
    br.bind(IP_R, MAC_R)
    br.bind(IP6_R, MAC_R)
    r = br.egress(frame)
    assert flooded(r) and r.data == frame, what
    assert br.counters() == {"flood": 1}, what


def test_unicast_arp_request_goes_to_its_destination(br):
    br.bind(IP_R, MAC_R)
    br.static(MAC_R, "10.0.0.2")
    req = arp_request(MAC_A, IP_A, IP_R, dst=MAC_R)
    r = br.egress(req)
    assert r.retval == TC_ACT_REDIRECT and r.ctx.cb[0] == VXLAN and r.data == req
    assert br.counters() == {"tx": 1}


def test_learned_binding_ages_static_does_not(br):
    old = time.monotonic_ns() - 301 * 10**9
    br.bind(IP_R, MAC_R, static=False, seen_ns=old)
    br.bind(IP_A, MAC_A, static=True, seen_ns=old)
    assert flooded(br.egress(arp_request(MAC_B, "192.168.0.9", IP_R)))
    assert br.binding(IP_R) is None
    assert answered(br.egress(arp_request(MAC_B, "192.168.0.9", IP_A)))
    assert br.counters() == {"arp_flood": 1, "flood": 1, "arp_reply": 1}


# --- ND --------------------------------------------------------------------------

def expect_na(frame, target=IP6_R, mac=MAC_R, asker=MAC_A, asker_ip=IP6_A):
    a = parse_na(frame)
    assert a == {"dst": asker, "src": mac, "proto": 0x86DD, "version": 6, "plen": 32,
                 "nh": 58, "hlim": 255, "ip_src": target, "ip_dst": asker_ip, "type": 136,
                 "code": 0, "flags": 0x60000000, "target": target,
                 "opts": "0201" + mac.replace(":", ""), "checksum_ok": True, "len": 86}


@pytest.mark.parametrize("sll,extra", [(True, b""), (False, b""),
                                       (True, bytes([14, 1]) + b"nonce!")])
def test_ns_for_a_bound_ip_is_answered_with_an_na(br, sll, extra):
    """With the source link-layer option (86 bytes), without it (78: the
    frame grows) and with one more option (94: it shrinks)."""
    br.bind(IP6_R, MAC_R)
    r = br.egress(ns(MAC_A, IP6_A, IP6_R, sll=sll, extra=extra))
    assert answered(r)
    expect_na(r.data)
    assert br.counters() == {"nd_reply": 1}
    assert br.binding(IP6_R).replies == 1


def test_ns_from_a_link_local_address(br):
    br.bind("fe80::2", MAC_R)
    r = br.egress(ns(MAC_A, "fe80::1", "fe80::2"))
    assert answered(r)
    expect_na(r.data, target="fe80::2", asker_ip="fe80::1")


def test_ns_for_an_unknown_ip_floods_and_is_counted(br):
    req = ns(MAC_A, IP6_A, IP6_R)
    r = br.egress(req)
    assert flooded(r) and r.data == req
    assert br.counters() == {"nd_flood": 1, "flood": 1}


@pytest.mark.parametrize("what,frame", named([
    ("DAD", ns(MAC_A, "::", IP6_R, sll=False)),
    ("hop limit 64", ns(MAC_A, IP6_A, IP6_R, hlim=64)),
    ("truncated", ns(MAC_A, IP6_A, IP6_R)[:70]),
    ("an NA", na(MAC_A, IP6_A, "33:33:00:00:00:01", "ff02::1")),
]))
def test_nd_never_answered(br, what, frame):
    never_answered(br, what, frame)


# --- learning from the tunnel ------------------------------------------------------

def test_arp_reply_from_the_tunnel_teaches_a_binding(br):
    r = br.ingress(arp_reply(MAC_R, IP_R, MAC_A, IP_A), remote="10.0.0.2")
    assert answered(r)  # delivered as always
    b = br.binding(IP_R)
    assert (bytes(b.mac).hex(":"), b.flags) == (MAC_R, 0)
    assert br.counters() == {"learn": 1, "neigh_learn": 1}
    assert answered(br.egress(arp_request(MAC_B, "192.168.0.9", IP_R)))


def test_ip_that_changes_mac_is_relearned(br):
    br.ingress(arp_request(MAC_R, IP_R, IP_A), remote="10.0.0.2")
    br.ingress(arp_request(MAC_R, IP_R, IP_A), remote="10.0.0.2")  # same: no change
    new = "02:00:00:00:00:0d"
    br.ingress(arp_request(new, IP_R, IP_R), remote="10.0.0.3")    # its gratuitous ARP
    assert bytes(br.binding(IP_R).mac).hex(":") == new
    assert br.counters()["neigh_learn"] == 2
    r = br.egress(arp_request(MAC_A, IP_A, IP_R))
    assert parse_arp(r.data)["sha"] == new


def test_static_binding_is_not_overwritten_by_learning(br):
    br.bind(IP_R, MAC_R)
    br.ingress(arp_reply("02:00:00:00:00:0d", IP_R, MAC_A, IP_A), remote="10.0.0.3")
    b = br.binding(IP_R)
    assert (bytes(b.mac).hex(":"), b.flags) == (MAC_R, abi.BR_NEIGH_F_STATIC)
    assert "neigh_learn" not in br.counters()


def test_na_and_ns_from_the_tunnel_teach_bindings(br):
    br.ingress(na(MAC_R, IP6_R, MAC_A, IP6_A), remote="10.0.0.2")
    br.ingress(ns(MAC_B, "fd10::3", IP6_A), remote="10.0.0.2")
    br.ingress(ns(MAC_B, "::", "fd10::4", sll=False), remote="10.0.0.2")  # DAD: nothing
    assert bytes(br.binding(IP6_R).mac).hex(":") == MAC_R
    assert bytes(br.binding("fd10::3").mac).hex(":") == MAC_B
    assert br.binding("fd10::4") is None
    assert br.counters()["neigh_learn"] == 2
    expect_na(br.egress(ns(MAC_A, IP6_A, IP6_R)).data)


# --- upgrade from a bpfnet without these maps ---------------------------------------

def test_upgrade_from_a_bpfnet_without_the_new_maps_keeps_fdb_and_counters(pin_root):
    """The previous bpfnet pinned br_fdb with padding where the flags are now
    (zero: learned) and had no br_neigh or br_supp_stats: a load reuses
    br_fdb and br_stats as they are and adds the two new maps."""
    import os

    from bpfnet.functions.base import PinDir, Undo
    from bpfnet.functions.bridge import Bridge as BridgeFn
    need_root()
    fn = BridgeFn(PinDir(pin_root, "host"))
    try:
        with Undo() as undo:
            fn.open_object(undo).close()
        key = BrFdbKey(mac=mac_pack(MAC_A), port=7)
        fn.map("br_fdb")[key] = BrFdbVal(remote=ip_pack("10.0.0.2"), vni=10, rx_pkts=9,
                                         seen_ns=time.monotonic_ns())
        st = fn.map("br_stats")
        v = st.per_cpu(0)[0]
        v.rx = 5
        raw = (ctypes.c_uint8 * (st._stride * st.ncpu))()
        ctypes.memmove(raw, bytes(v), ctypes.sizeof(v))
        st[U32(0)] = raw
        fn.close_maps()
        for m in ("br_neigh", "br_supp_stats"):
            os.unlink(os.path.join(fn.dir, m))
        with Undo() as undo:
            fn.open_object(undo).close()
        assert sorted(os.listdir(fn.dir)) == sorted(fn.maps)
        e = fn.map("br_fdb")[key]
        assert (e.flags, e.rx_pkts) == (0, 9)
        s = fn.stats()
        assert (s["rx"], s["arp_reply"], s["static_conflict"]) == (5, 0, 0)
    finally:
        fn.close()
