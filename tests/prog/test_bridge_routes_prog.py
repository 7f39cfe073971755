"""bridge.bpf.o under BPF_PROG_TEST_RUN: the tenant MACs of this host (br_local,
learned on a port's egress, forgotten when the MAC comes from the tunnel),
the IPs they claim (local bindings: never answered), route entries and
route bindings (never aged, moved by learning with the flag kept), and the
suppression switch (BR_CFG_F_NO_SUPPRESS: requests flood, counted).

The port is ifindex 1 (lo), the VXLAN ifindex a made-up 42, as in
test_bridge_floods_prog.py; ingress goes through the test-side tunnel injector."""
import time

import pytest

from neighframes import arp_reply, arp_request, na, ns, parse_arp
from packets import MAC_A, MAC_B, pkt_v4
from runner import TC_ACT_SHOT, named
from test_bridge_floods_prog import (IP6_A, IP6_R, IP_A, IP_R, MAC_R, PORT, U32, answered,
                                     flooded, harness)
from test_bridge_floods_prog import Bridge as _Bridge

from bpfnet import abi
from bpfnet.abi import (BrFdbKey, BrFdbVal, BrLocalKey, BrLocalVal, ip_pack, ip_unpack,
                        mac_pack)
from bpfnet.maps import Map, PerCpuArray

ROUTE, STATIC, LOCAL = abi.BR_NEIGH_F_ROUTE, abi.BR_NEIGH_F_STATIC, abi.BR_NEIGH_F_LOCAL
COUNTERS = ("arp_reply", "nd_reply", "arp_flood", "nd_flood", "flood", "tx", "rx", "neigh_learn",
            "static_conflict", "learn", "move", "aged", "local_learn", "local_neigh",
            "local_moved", "route_move", "arp_local", "nd_local")


class Bridge(_Bridge):
    def __init__(self, obj, inj):
        super().__init__(obj, inj)
        self.local = Map(obj.map_fd("br_local"), BrLocalKey, BrLocalVal, "br_local", owned=False)
        self.route_stats = PerCpuArray(obj.map_fd("br_route_stats"), abi.BrRouteStats,
                                       "br_route_stats", owned=False)
        self.last = PerCpuArray(obj.map_fd("br_local_last"), abi.BrLocalLast, "br_local_last",
                                owned=False)

    def counters(self):
        s = {**self.stats.sum_fields(), **self.supp.sum_fields(), **self.route_stats.sum_fields()}
        return {k: s[k] for k in COUNTERS if s[k]}

    def local_entry(self, mac, vni=10):
        return self.local.get(BrLocalKey(vni=vni, mac=mac_pack(mac)))

    def route(self, mac, remote, vni=10):
        self.fdb[BrFdbKey(mac=mac_pack(mac), port=PORT)] = BrFdbVal(
            remote=ip_pack(remote), vni=vni, flags=abi.BR_FDB_F_ROUTE, seen_ns=time.monotonic_ns())

    def bind_flags(self, ip, mac, flags, seen_ns=None):
        self.bind(ip, mac, seen_ns=seen_ns)
        b = self.binding(ip)
        b.flags = flags
        self.neigh[abi.BrNeighKey(vni=10, ip=ip_pack(ip))] = b

    def suppress(self, on):
        c = self.cfg[U32(0)]
        c.flags = 0 if on else abi.BR_CFG_F_NO_SUPPRESS
        self.cfg[U32(0)] = c


@pytest.fixture
def br(loaded_obj):
    for b in harness(loaded_obj):
        yield Bridge(b.obj, b.inj)


def mac_of(b) -> str:
    return bytes(b.mac).hex(":")


# --- br_local: the tenant MACs of this host ------------------------------------------

def test_a_frame_toward_the_tunnel_records_its_source_once(br):
    for _ in range(3):
        assert flooded(br.egress(pkt_v4(src_mac=MAC_A, dst_mac=MAC_B)))
    e = br.local_entry(MAC_A)
    assert e is not None and e.seen_ns == e.first_ns  # within a second: not rewritten
    assert br.local_entry(MAC_A, vni=11) is None and br.local_entry(MAC_B) is None
    assert br.counters() == {"local_learn": 1, "flood": 3}


def test_the_stamp_is_refreshed_after_a_second(br):
    br.egress(pkt_v4(src_mac=MAC_A))
    e = br.local_entry(MAC_A)
    e.seen_ns -= 2 * 10**9
    br.local[BrLocalKey(vni=10, mac=mac_pack(MAC_A))] = e
    br.last.zero(0)  # as a second later: the per-CPU memo no longer covers it
    br.egress(pkt_v4(src_mac=MAC_A))
    after = br.local_entry(MAC_A)
    assert after.seen_ns > e.seen_ns and after.first_ns == e.first_ns
    assert br.counters() == {"local_learn": 1, "flood": 2}


def test_within_a_second_the_same_source_costs_no_lookup(br):
    """The per-CPU memo (br_local_last) holds the last source looked up; a
    br_local entry deleted under a flow comes back once the memo no longer
    covers it (zeroed here: as a second later)."""
    br.egress(pkt_v4(src_mac=MAC_A))
    br.local.discard(BrLocalKey(vni=10, mac=mac_pack(MAC_A)))
    memo = [m for m in br.last.per_cpu(0) if m.stamp_ns]
    assert [(m.key.vni, bytes(m.key.mac).hex(":")) for m in memo] == [(10, MAC_A)]
    br.egress(pkt_v4(src_mac=MAC_B))  # another source: looked up, learned
    assert br.local_entry(MAC_B) is not None
    br.last.zero(0)
    br.egress(pkt_v4(src_mac=MAC_A))
    assert br.local_entry(MAC_A) is not None
    assert br.counters() == {"local_learn": 3, "flood": 3}


def test_a_group_source_is_not_recorded(br):
    br.egress(pkt_v4(src_mac="01:00:5e:00:00:01"))
    assert len(br.local) == 0
    assert br.counters() == {"flood": 1}


def test_the_mac_from_the_tunnel_is_forgotten_as_local(br):
    br.egress(pkt_v4(src_mac=MAC_A))
    assert answered(br.ingress(pkt_v4(src_mac=MAC_A), remote="10.0.0.3"))
    assert br.local_entry(MAC_A) is None
    br.ingress(pkt_v4(src_mac=MAC_A), remote="10.0.0.3")  # known: nothing more
    assert br.counters() == {"local_learn": 1, "flood": 1, "learn": 1, "rx": 2,
                             "local_moved": 1}


# --- local bindings: the IPs this host's tenants claim ---------------------------------

@pytest.mark.parametrize("what,frame,ip", named([
    ("ARP request", arp_request(MAC_A, IP_A, IP_R), IP_A),
    ("ARP reply", arp_reply(MAC_A, IP_A, MAC_B, "192.168.0.9"), IP_A),
    ("ARP announcement", arp_request(MAC_A, IP_A, IP_A), IP_A),
    ("NS with the source link-layer option", ns(MAC_A, IP6_A, IP6_R), IP6_A),
    ("NA with the target link-layer option", na(MAC_A, IP6_A, MAC_B, "fd10::9"), IP6_A),
]))
def test_a_claim_toward_the_tunnel_is_a_local_binding(br, what, frame, ip):
    br.egress(frame)
    b = br.binding(ip)
    assert (mac_of(b), b.flags) == (MAC_A, LOCAL), what
    assert br.local_entry(MAC_A) is not None
    c = br.counters()
    assert (c["local_learn"], c["local_neigh"]) == (1, 1), what


@pytest.mark.parametrize("what,frame", named([
    ("ARP probe", arp_request(MAC_A, "0.0.0.0", IP_A)),
    ("DAD", ns(MAC_A, "::", IP6_A, sll=False)),
    ("NS without the option", ns(MAC_A, IP6_A, IP6_R, sll=False)),
]))
def test_no_claim_without_an_address(br, what, frame):
    br.egress(frame)
    assert len(br.neigh) == 0, what
    assert "local_neigh" not in br.counters(), what


def test_a_request_for_a_local_tenant_stays_off_the_tunnel(br):
    # a tenant of this host announces IP_R (and, below, IP6_R): its frames
    # passed the port, so its MAC is in br_local
    br.egress(arp_request(MAC_R, IP_R, IP_R))
    req = arp_request(MAC_B, "192.168.0.9", IP_R)
    r = br.egress(req)
    assert r.retval == TC_ACT_SHOT and r.data == req  # not answered, not tunnelled:
    # its owner answers on the tenants' bridge, which delivered it already
    br.egress(ns(MAC_R, IP6_R, IP6_A))
    req6 = ns(MAC_B, "fd10::9", IP6_R)
    assert br.egress(req6).retval == TC_ACT_SHOT
    # the announcement is no request; the NS for IP6_A has no binding
    assert br.counters() == {"local_learn": 2, "local_neigh": 4, "flood": 2, "arp_local": 1,
                             "nd_local": 1, "nd_flood": 1}


def test_a_request_for_a_local_binding_whose_mac_is_gone_floods(br):
    br.egress(arp_request(MAC_R, IP_R, IP_R))
    br.egress(ns(MAC_R, IP6_R, IP6_A))
    br.local.discard(BrLocalKey(vni=10, mac=mac_pack(MAC_R)))  # no longer a tenant here
    br.last.zero(0)
    req = arp_request(MAC_B, "192.168.0.9", IP_R)
    r = br.egress(req)
    assert flooded(r) and r.data == req
    assert flooded(br.egress(ns(MAC_B, "fd10::9", IP6_R)))
    assert br.counters() == {"local_learn": 2, "local_neigh": 4, "flood": 4, "arp_flood": 1,
                             "nd_flood": 2}


def test_a_local_claim_replaces_a_route_binding_not_a_static_one(br):
    br.bind_flags(IP_R, MAC_R, ROUTE)
    br.bind_flags(IP_A, MAC_R, STATIC)
    br.egress(arp_request(MAC_B, IP_R, IP_A))
    br.egress(arp_request(MAC_B, IP_A, IP_R))
    assert (mac_of(br.binding(IP_R)), br.binding(IP_R).flags) == (MAC_B, LOCAL)
    assert (mac_of(br.binding(IP_A)), br.binding(IP_A).flags) == (MAC_R, STATIC)


def test_the_tunnel_makes_a_local_binding_remote_again(br):
    br.egress(arp_request(MAC_A, IP_A, IP_A))
    br.ingress(arp_request(MAC_A, IP_A, IP_A), remote="10.0.0.3")  # it moved there
    b = br.binding(IP_A)
    assert (mac_of(b), b.flags) == (MAC_A, 0)
    assert answered(br.egress(arp_request(MAC_B, "192.168.0.9", IP_A)))
    c = br.counters()
    assert (c["neigh_learn"], c["local_moved"], c["arp_reply"]) == (1, 1, 1)


# --- route entries --------------------------------------------------------------------

def test_a_route_entry_never_ages_and_counts_its_frames(br):
    br.route(MAC_R, "10.0.0.2")
    e = br.entry(MAC_R)
    e.seen_ns -= 10 * 300 * 10**9
    br.fdb[BrFdbKey(mac=mac_pack(MAC_R), port=PORT)] = e
    r = br.egress(pkt_v4(src_mac=MAC_A, dst_mac=MAC_R))
    assert r.retval == 7 and r.ctx.cb[0] == 42
    br.ingress(pkt_v4(src_mac=MAC_R), remote="10.0.0.2")
    e2 = br.entry(MAC_R)
    assert (e2.flags, e2.tx_pkts, e2.rx_pkts, e2.seen_ns) == \
        (abi.BR_FDB_F_ROUTE, 1, 1, e.seen_ns)  # its own VTEP: no stamp, not aged
    assert br.counters() == {"tx": 1, "rx": 1, "local_learn": 1}


def test_learning_moves_a_route_entry_and_keeps_the_flag(br):
    br.route(MAC_R, "10.0.0.2")
    br.ingress(pkt_v4(src_mac=MAC_R), remote="10.0.0.3")
    e = br.entry(MAC_R)
    assert (str(ip_unpack(e.remote)), e.flags, e.rx_pkts) == ("10.0.0.3", abi.BR_FDB_F_ROUTE, 1)
    assert br.counters() == {"rx": 1, "move": 1, "route_move": 1}


def test_a_route_binding_is_answered_never_ages_and_follows_a_new_mac(br):
    br.bind_flags(IP_R, MAC_R, ROUTE, seen_ns=time.monotonic_ns() - 10 * 300 * 10**9)
    r = br.egress(arp_request(MAC_A, IP_A, IP_R))
    assert answered(r) and parse_arp(r.data)["sha"] == MAC_R
    br.ingress(arp_reply(MAC_B, IP_R, MAC_A, IP_A), remote="10.0.0.3")  # IP_R is MAC_B's now
    b = br.binding(IP_R)
    assert (mac_of(b), b.flags, b.replies) == (MAC_B, ROUTE, 1)
    assert parse_arp(br.egress(arp_request(MAC_A, IP_A, IP_R)).data)["sha"] == MAC_B
    c = br.counters()
    assert (c["arp_reply"], c["neigh_learn"]) == (2, 1)


# --- the suppression switch -------------------------------------------------------------

def test_suppression_off_floods_bound_requests_and_counts_them(br):
    br.bind_flags(IP_R, MAC_R, ROUTE)
    br.bind_flags(IP6_R, MAC_R, STATIC)
    br.suppress(False)
    req, req6 = arp_request(MAC_A, IP_A, IP_R), ns(MAC_A, IP6_A, IP6_R)
    r, r6 = br.egress(req), br.egress(req6)
    assert flooded(r) and r.data == req and flooded(r6) and r6.data == req6
    assert br.binding(IP_R).replies == 0
    assert br.counters() == {"arp_flood": 1, "nd_flood": 1, "flood": 2, "local_learn": 1,
                             "local_neigh": 2}
    br.suppress(True)
    assert answered(br.egress(req))


# --- a bridge loaded by a bpfnet without br_local and br_route_stats ---------------------

def test_a_bridge_without_the_new_maps_is_loaded_and_a_load_adds_them(pin_root):
    """A bpfnet from before local learning pinned neither map: its bridge is
    loaded all the same (not half-made, which a load would tear down), its
    counters and local_macs read without them, and the next load adds them."""
    import os

    from conftest import need_root
    from bpfnet.functions.base import PinDir, Undo
    from bpfnet.functions.bridge import Bridge as BridgeFn
    need_root()
    fn = BridgeFn(PinDir(pin_root, "host"))
    try:
        with Undo() as undo:
            obj = fn.open_object(undo)
            fn.pin_programs(obj)
            obj.close()
        fn.map("br_cfg")[U32(0)] = abi.BrCfg(vxlan_ifindex=42, ageing_s=300,
                                             group=ip_pack("239.1.1.1"))
        fn.close_maps()
        for m in ("br_local", "br_route_stats"):
            os.unlink(os.path.join(fn.dir, m))
        assert fn.is_loaded() and not fn.is_partial()
        assert fn.local_macs() == []
        assert "local_learn" not in fn.stats() and fn.stats()["rx"] == 0
        assert set(fn.map_fill()) == set(fn.maps) - {"br_local", "br_route_stats"}
        assert fn.option_values()["suppress"] == "on"
        with Undo() as undo:
            fn.open_object(undo).close()
        assert fn.stats()["local_learn"] == 0 and os.path.exists(os.path.join(fn.dir, "br_local"))
    finally:
        fn.close()
