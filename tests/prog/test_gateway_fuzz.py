"""Hypothesis-generated frames through both gateway programs: a frame goes
to its client's worker or its worker's trunk and nowhere else; anything else
passes untouched or is a counted drop."""


import errno

from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from runner import (LO, TC_ACT_REDIRECT, TC_ACT_SHOT, TC_ACT_UNSPEC, TRUNK, U32,  # noqa: F401
                               WORKER, gw)

from bpfnet.abi import GwVlanVal
from bpfnet.libbpf import BpfError
from packets import ETH_P_8021Q, MAC_A

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
MAC_A_RAW = bytes.fromhex(MAC_A.replace(":", ""))


@st.composite
def frames(draw):
    dst = draw(st.binary(min_size=6, max_size=6))
    src = draw(st.sampled_from([MAC_A_RAW, draw(st.binary(min_size=6, max_size=6))]))
    tpid = draw(st.sampled_from([b"\x81\x00", b"\x88\xa8", draw(st.binary(min_size=2, max_size=2))]))
    rest = draw(st.binary(min_size=0, max_size=200))
    return dst + src + tpid + rest


def short_ip(data: bytes) -> bool:
    return (data[12:14] == b"\x08\x00" and len(data) < 14 + 20) or \
        (data[12:14] == b"\x86\xdd" and len(data) < 14 + 40)


def run(prog, data: bytes):
    """BPF_PROG_TEST_RUN itself refuses an IPv4/IPv6 frame too short for
    its L3 header (EINVAL on 6.18): not a frame the program can be given."""
    try:
        return prog(data)
    except BpfError as e:
        assert e.errno == errno.EINVAL and short_ip(data), (e, data.hex())
        reject()


def drops(gw):
    return sum(v for k, v in gw.stats.sum_fields().items() if k.startswith("drop_"))


@FUZZ
@given(data=frames())
def test_phys2virt_steers_only_a_clients_frames_to_its_worker(gw, data):
    if not gw.clients:
        gw.add_client(MAC_A, WORKER)
    d0 = drops(gw)
    r = run(gw.phys2virt, data)
    tagged = data[12:14] in (b"\x81\x00", b"\x88\xa8")
    if r.retval == TC_ACT_REDIRECT:
        assert data[6:12] == MAC_A_RAW and tagged
        assert (r.ctx.cb[0], r.ctx.cb[1]) == (WORKER, 0)
        assert r.data == data[:12] + data[16:]  # exactly the tag popped
    elif r.retval == TC_ACT_SHOT:
        assert drops(gw) == d0 + 1
    else:
        assert r.retval == TC_ACT_UNSPEC and r.data == data and r.ctx.cb[0] == 0


@FUZZ
@given(data=st.binary(min_size=14, max_size=300), learned=st.booleans())
def test_virt2phys_sends_only_to_the_learned_trunk(gw, data, learned):
    if learned:
        gw.fdb[U32(LO)] = GwVlanVal(trunk=TRUNK, vlan_tci=10, vlan_proto=ETH_P_8021Q)
    else:
        gw.fdb.discard(U32(LO))
    d0 = drops(gw)
    r = run(gw.virt2phys, data)
    if r.retval == TC_ACT_REDIRECT:
        assert learned
        assert (r.ctx.cb[0], r.ctx.cb[1], r.ctx.cb[2]) == (TRUNK, 0, 10)
    elif r.retval == TC_ACT_SHOT:
        assert drops(gw) == d0 + 1
    else:
        assert r.retval == TC_ACT_UNSPEC and not learned and r.data == data
