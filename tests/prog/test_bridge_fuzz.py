"""Hypothesis-generated frames through both bridge programs: never
redirected where they do not belong, every drop counted under a reason."""

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from runner import PORT, TC_ACT_REDIRECT, TC_ACT_SHOT, VXLAN, U32, br  # noqa: F401

from bpfnet import abi, libbpf

frames = st.binary(min_size=14, max_size=300)
FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def counters(br):
    return br.stats.sum_fields()


@FUZZ
@given(frame=frames)
def test_egress_sends_every_port_frame_to_the_tunnel_only(br, frame):
    if not br.vni.get(U32(10)):
        br.add_vni(10)
    before = counters(br)
    r = br.egress(frame)
    after = counters(br)
    assert r.retval == TC_ACT_REDIRECT
    assert (r.ctx.cb[0], r.ctx.cb[1]) == (VXLAN, 0)
    moved = {k for k in after if after[k] != before[k]}
    assert moved in ({"tx"}, {"flood"}, {"flood", "aged"})


@FUZZ
@given(frame=frames, vni=st.sampled_from([10, 11]))
def test_ingress_delivers_only_into_the_vnis_port(br, frame, vni):
    if not br.vni.get(U32(10)):
        br.add_vni(10)
    before = counters(br)
    n_before = len(br.fdb)
    r = br.inj.run(frame, vni, "10.0.0.2")
    after = counters(br)
    if vni == 10:
        assert r.retval == TC_ACT_REDIRECT and (r.ctx.cb[0], r.ctx.cb[1]) == (PORT, 1)
        assert after["rx"] == before["rx"] + 1
        if frame[6] & 1:  # group source address: never learned
            assert len(br.fdb) == n_before
        else:
            e = br.entry(":".join(f"{b:02x}" for b in frame[6:12]))
            assert e is not None and e.vni == 10
    else:
        assert r.retval == TC_ACT_SHOT
        assert after["drop_unknown_vni"] == before["drop_unknown_vni"] + 1
        assert len(br.fdb) == n_before


@FUZZ
@given(frame=frames)
def test_ingress_without_metadata_is_always_a_counted_drop(br, frame):
    before = counters(br)["drop_no_tunnel"]
    r = libbpf.prog_test_run(br.obj.prog_fd("bridge_ingress"), frame, ctx=abi.SkBuff())
    assert r.retval == TC_ACT_SHOT
    assert counters(br)["drop_no_tunnel"] == before + 1


# --- ARP and ND: suppression answers exactly what it should -----------------------

import struct  # noqa: E402

import pytest  # noqa: E402
from neighframes import arp, ns, parse_arp, parse_na  # noqa: E402
from netaddr import IPAddress  # noqa: E402

from bpfnet.maps import Map  # noqa: E402
from test_bridge_floods_prog import harness  # noqa: E402

BOUND4, BOUND6, BOUND_MAC = "192.168.0.2", "fd10::2", "02:00:00:00:00:0c"
ASKER = "02:00:00:00:00:0a"
ip4s = st.sampled_from([BOUND4, "192.168.0.1", "0.0.0.0", "192.168.0.9"])
ip6s = st.sampled_from([BOUND6, "fd10::1", "::", "fe80::1", "ff02::1"])
macs = st.sampled_from([ASKER, BOUND_MAC, "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01"])
dsts = st.sampled_from(["ff:ff:ff:ff:ff:ff", "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", BOUND_MAC])
targets4 = st.sampled_from([BOUND4, BOUND4, "192.168.0.1", "0.0.0.0"])
targets6 = st.sampled_from([BOUND6, BOUND6, "fd10::1", "ff02::1", "::"])


@pytest.fixture
def fbr(loaded_obj):
    for b in harness(loaded_obj):
        b.bind(BOUND4, BOUND_MAC)
        b.bind(BOUND6, BOUND_MAC)
        yield b


@st.composite
def arp_frames(draw):
    f = bytearray(arp(draw(st.sampled_from([1, 1, 1, 2, 3])), draw(macs), draw(ip4s),
                      "00:00:00:00:00:00", draw(targets4), dst=draw(dsts), src=ASKER,
                      pad_to=draw(st.sampled_from([0, 60]))))
    if draw(st.integers(0, 3)) == 0:  # one header field off
        i = draw(st.sampled_from([14, 15, 16, 17, 18, 19]))
        f[i] ^= draw(st.integers(1, 255))
    if draw(st.integers(0, 3)) == 0:  # truncated
        f = f[:draw(st.integers(14, len(f)))]
    return bytes(f)


@st.composite
def nd_frames(draw):
    f = bytearray(ns(ASKER, draw(ip6s), draw(targets6), sll=draw(st.booleans()),
                     hlim=draw(st.sampled_from([255, 255, 64])),
                     extra=draw(st.sampled_from([b"", bytes([14, 1]) + b"nonce!"]))))
    if draw(st.integers(0, 3)) == 0:
        f[0] = 0x02  # a unicast destination
    if draw(st.integers(0, 3)) == 0:  # one field off: next header, type, code, payload length
        i = draw(st.sampled_from([20, 54, 55, 18, 19]))
        f[i] ^= draw(st.integers(1, 255))
    # test_run refuses an IPv6 frame shorter than the IPv6 header
    if draw(st.integers(0, 3)) == 0:
        f = f[:draw(st.integers(54, len(f)))]
    return bytes(f)


def arp_request_target(f: bytes) -> str | None:
    """The target IP of a request bpfnet would look up (a broadcast ARP request,
    not a probe or gratuitous ARP), else None."""
    if len(f) < 42 or f[12:14] != b"\x08\x06" or not f[0] & 1:
        return None
    htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", f[14:22])
    spa, tpa = f[28:32], f[38:42]
    if (htype, ptype, hlen, plen, op) == (1, 0x0800, 6, 4, 1) and spa != bytes(4) and spa != tpa:
        return str(IPAddress(int.from_bytes(tpa, "big"), 4))
    return None


def nd_request_target(f: bytes) -> str | None:
    """The target of a multicast NS bpfnet would look up (not DAD, not a
    multicast target), else None."""
    if len(f) < 78 or f[12:14] != b"\x86\xdd" or not f[0] & 1:
        return None
    plen, nh, hlim = struct.unpack("!HBB", f[18:22])
    if nh == 58 and hlim == 255 and f[54] == 135 and f[55] == 0 and plen >= 24 \
            and f[22:38] != bytes(16) and f[62] != 0xff:
        return str(IPAddress(int.from_bytes(f[62:78], "big"), 6))
    return None


def arp_should_answer(f: bytes) -> bool:
    return arp_request_target(f) == BOUND4


def nd_should_answer(f: bytes) -> bool:
    return nd_request_target(f) == BOUND6


def local_request(fbr, f: bytes) -> str | None:
    """"arp_local"/"nd_local" if @f asks for an IP a tenant of this host claimed
    (a local binding, after the frame's own claim was learned) and that MAC is
    a tenant of this host (in br_local: its frames passed the port), else None."""
    local = Map(fbr.obj.map_fd("br_local"), abi.BrLocalKey, abi.BrLocalVal, "br_local",
                owned=False)
    for target, counter in ((arp_request_target(f), "arp_local"),
                            (nd_request_target(f), "nd_local")):
        if target is not None:
            b = fbr.binding(target)
            if b is not None and b.flags & abi.BR_NEIGH_F_LOCAL and \
                    local.get(abi.BrLocalKey(vni=10, mac=b.mac)) is not None:
                return counter
    return None


@FUZZ
@given(frame=st.one_of(arp_frames(), nd_frames()))
def test_egress_answers_exactly_the_requests_for_bound_ips(fbr, frame):
    before = fbr.counters()
    r = fbr.egress(frame)
    d = {k: v - before.get(k, 0) for k, v in fbr.counters().items() if v != before.get(k, 0)}
    local = local_request(fbr, frame)
    if local:  # for a tenant of this host: its bridge delivered it; kept off the tunnel
        event("request for a local tenant")
        assert r.retval == TC_ACT_SHOT  # (arp_local/nd_local: test_bridge_routes_prog)
        assert not {"arp_reply", "nd_reply", "arp_flood", "nd_flood", "flood"} & set(d)
        return
    assert r.retval == TC_ACT_REDIRECT
    if arp_should_answer(frame):
        event("ARP answered")
        assert (r.ctx.cb[0], r.ctx.cb[1]) == (PORT, 1) and d == {"arp_reply": 1}
        a, q = parse_arp(r.data), parse_arp(frame)
        assert (a["op"], a["sha"], a["src"], a["spa"]) == (2, BOUND_MAC, BOUND_MAC, BOUND4)
        assert (a["dst"], a["tha"], a["tpa"]) == (ASKER, q["sha"], q["spa"])
        assert len(r.data) == len(frame)
    elif nd_should_answer(frame):
        event("NS answered")
        assert (r.ctx.cb[0], r.ctx.cb[1]) == (PORT, 1) and d == {"nd_reply": 1}
        a = parse_na(r.data)
        assert (a["type"], a["target"], a["ip_src"], a["src"], a["dst"], a["checksum_ok"],
                a["len"]) == (136, BOUND6, BOUND6, BOUND_MAC, ASKER, True, 86)
    else:  # forwarded as it came, to the tunnel
        assert (r.ctx.cb[0], r.ctx.cb[1]) == (VXLAN, 0) and r.data == frame
        assert not {"arp_reply", "nd_reply"} & set(d)


@FUZZ
@given(frame=st.one_of(arp_frames(), nd_frames()))
def test_ingress_delivers_every_arp_and_nd_frame_and_keeps_static_bindings(fbr, frame):
    r = fbr.ingress(frame)
    assert r.retval == TC_ACT_REDIRECT and (r.ctx.cb[0], r.ctx.cb[1]) == (PORT, 1)
    assert r.data == frame
    for ip in (BOUND4, BOUND6):  # learning never overwrites a static binding
        b = fbr.binding(ip)
        assert (bytes(b.mac).hex(":"), b.flags) == (BOUND_MAC, abi.BR_NEIGH_F_STATIC)
    for k, v in fbr.neigh.items():  # nor learns a group MAC or an unspecified IP
        assert not v.mac[0] & 1 and any(k.ip.addr)


@FUZZ
@given(frame=st.one_of(arp_frames(), nd_frames()), suppress=st.booleans())
def test_egress_claims_are_local_and_off_answers_nothing(fbr, frame, suppress):
    """What a tenant of this host sends becomes local bindings only (never
    over a static one, never a group MAC or an unspecified IP); with
    suppression off nothing is answered."""
    c = fbr.cfg[U32(0)]
    c.flags = 0 if suppress else abi.BR_CFG_F_NO_SUPPRESS
    fbr.cfg[U32(0)] = c
    r = fbr.egress(frame)
    if not suppress:
        assert (r.ctx.cb[0], r.ctx.cb[1]) == (VXLAN, 0) and r.data == frame
    for ip in (BOUND4, BOUND6):
        b = fbr.binding(ip)
        assert (bytes(b.mac).hex(":"), b.flags) == (BOUND_MAC, abi.BR_NEIGH_F_STATIC)
    for k, v in fbr.neigh.items():
        if bytes(k.ip.addr) not in (bytes(abi.ip_pack(BOUND4)), bytes(abi.ip_pack(BOUND6))):
            assert v.flags == abi.BR_NEIGH_F_LOCAL and not v.mac[0] & 1 and any(k.ip.addr)
