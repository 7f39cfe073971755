"""Hypothesis fuzz of the command line: an argument replaced by anything its
validator rejects gets exit 2, one line on stderr, and changes nothing.

     h0: eth0 10.99.0.1/24 --- fabric;  bridge loaded, VNI 5 (br5)
"""
import io
import uuid
from contextlib import redirect_stderr, redirect_stdout

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import need_root, snapshot

from bpfnet import validate
from bpfnet.cli import main
from bpfnet.errors import ConfigError
from bpfnet.sim import Sim

# (argv template with X where the bad value goes, the validator that must reject it)
TEMPLATES = [
    (["vni", "add", "X", "--bridge", "br9"], validate.vni),
    (["vni", "add", "9", "--bridge", "X"], validate.ifname),
    (["vni", "add", "9", "--bridge", "br9", "--allow", "X"], validate.ip_list),
    (["vni", "add", "9", "--bridge", "br9", "--group", "X"], validate.mcast_group),
    (["vni", "del", "X"], validate.vni),
    (["fdb", "show", "--vni", "X"], validate.vni),
    (["fdb", "flush", "--vni", "X"], validate.vni),
    (["load", "bridge", "--group", "X"], validate.mcast_group),
    (["load", "bridge", "--port", "X"], validate.udp_port),
    (["load", "bridge", "--local", "X"], validate.unicast_ip),
    (["load", "bridge", "--underlay", "X"], validate.ifname),
    (["load", "bridge", "--device", "X"], validate.ifname),
    (["load", "bridge", "--ageing", "X"], validate.seconds),
    (["load", "mesh", "--local", "X"], validate.unicast_ip),
    (["load", "mesh", "--port", "X"], validate.udp_port),
    (["load", "mesh", "--device", "X"], validate.ifname),
    (["peer", "add", "X", "--vni", "10", "--bridge", "br10"], validate.unicast_ip),
    (["peer", "add", "10.99.0.2", "--vni", "X", "--bridge", "br10"], validate.vni),
    (["peer", "add", "10.99.0.2", "--vni", "10", "--bridge", "X"], validate.ifname),
    (["peer", "del", "X", "--vni", "10"], validate.unicast_ip),
    (["load", "gateway", "--trunk", "X"], validate.ifname),
    (["client", "add", "X", "--worker", "w0"], validate.mac),
    (["client", "add", "02:00:00:00:00:01", "--worker", "X"], validate.ifname),
    (["client", "del", "X"], validate.mac),
    (["load", "monitor", "--dev", "X"], validate.ifname),
    (["load", "monitor", "--dev", "eth0", "--port", "X"], validate.udp_port),
    (["stats", "--watch", "X", "--out", "/tmp"], validate.seconds),
]

values = st.one_of(
    st.text(max_size=24),
    st.integers(min_value=-2**40, max_value=2**40).map(str),
    st.from_regex(r"\A[0-9a-fA-F:.,/x-]{0,40}\Z"),
    st.sampled_from(["", "-", "--", "0", "0x0", "16777216", "1e3", "10.0.0.256", "::ffff:1.2.3",
                     "239.1.1.1/24", "ff02::1%eth0", "a" * 16, "br 0", "../x", "00:11:22:33:44"]),
)


@pytest.fixture(scope="module")
def host():
    need_root()
    sim = Sim(prefix=f"tf{uuid.uuid4().hex[:6]}")
    try:
        sim.fabric()
        h = sim.host("h0", "10.99.0.1/24")
        sim.bpfnetctl("load", "bridge", netns_=h)
        sim.bpfnetctl("vni", "add", "5", "--bridge", "br5", netns_=h)
        yield sim, h, snapshot(sim, h)
    finally:
        sim.cleanup()


def rejected(fn, text) -> bool:
    try:
        fn(text)
    except ConfigError:
        return True
    return False


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tpl=st.sampled_from(TEMPLATES), bad=values)
def test_rejected_arguments_exit_2_one_line_no_change(host, tpl, bad):
    sim, h, before = host
    argv, fn = tpl
    if not rejected(fn, bad) or "\0" in bad:
        return  # a valid value: not this test's business
    full = ["--pin-root", sim.pin_root, "--netns", h] + [bad if a == "X" else a for a in argv]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(full)
    lines = err.getvalue().splitlines()
    assert code == 2, (full, err.getvalue())
    assert len(lines) == 1 and lines[0].startswith("bpfnetctl: error: "), err.getvalue()
    assert out.getvalue() == ""
    assert snapshot(sim, h) == before
