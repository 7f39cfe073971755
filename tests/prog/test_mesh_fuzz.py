"""Hypothesis-generated frames through both mesh programs: a frame from a
peer goes into that peer's port only, a frame from a port goes to the tunnel
only, and every drop is counted under a reason."""
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runner import PORT, TC_ACT_REDIRECT, TC_ACT_SHOT, VXLAN, mesh  # noqa: F401

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
PEERS = {("10.99.0.2", 10): 11, ("10.99.0.3", 10): 12, ("fd00:99::2", 20): 13}
frames = st.binary(min_size=14, max_size=300)


def setup(mesh):
    if not len(mesh.peers):
        for (remote, vni), port in PEERS.items():
            mesh.add_peer(remote, vni, port)
        mesh.add_peer("10.99.0.4", 30, PORT)  # lo plays the port for egress


def drops(c):
    return sum(v for k, v in c.items() if k.startswith("drop_"))


@FUZZ
@given(frame=frames, sender=st.sampled_from(list(PEERS) + [("10.99.0.9", 10), ("10.99.0.2", 20)]))
def test_ingress_delivers_only_into_the_senders_port(mesh, frame, sender):
    setup(mesh)
    before = mesh.counters()
    r = mesh.ingress(frame, vni=sender[1], remote=sender[0])
    after = mesh.counters()
    if sender in PEERS:
        assert r.retval == TC_ACT_REDIRECT
        assert (r.ctx.cb[0], r.ctx.cb[1]) == (PEERS[sender], 1)
        assert after["rx"] == before["rx"] + 1
    else:
        assert r.retval == TC_ACT_SHOT
        assert after["drop_unknown_peer"] == before["drop_unknown_peer"] + 1


@FUZZ
@given(frame=frames, came_from=st.sampled_from([0, 2, 11, 12, 13, 77]))
def test_egress_tunnels_only_frames_that_did_not_come_from_a_peer(mesh, frame, came_from):
    setup(mesh)
    before = mesh.counters()
    r = mesh.egress(frame, came_from=came_from)
    after = mesh.counters()
    if came_from in PEERS.values():
        assert r.retval == TC_ACT_SHOT
        assert drops(after) == drops(before) + 1
        assert after["drop_split_horizon"] == before["drop_split_horizon"] + 1
    else:
        assert r.retval == TC_ACT_REDIRECT
        assert (r.ctx.cb[0], r.ctx.cb[1]) == (VXLAN, 0)
        assert after["tx"] == before["tx"] + 1
