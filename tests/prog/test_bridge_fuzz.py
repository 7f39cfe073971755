"""Hypothesis-generated frames through both bridge programs: never
redirected where they do not belong, every drop counted under a reason."""

from hypothesis import HealthCheck, given, settings
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
