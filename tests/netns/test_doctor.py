"""`bpfnetctl doctor` finds the failures users hit and says the fix.

     h0: eth0 10.99.0.1/24 (default route) --- fabric --- h1: eth0 10.99.0.2/24
         vxlan0 + br10/bnp10 + tenant t10 (MTU 1500 unless a test lowers it)
"""
import json
import os
import shutil
import subprocess

import pytest

from conftest import BPFNETCTL, ROOT, need_tool


def doctor(sim, ns, *pre, env=None):
    r = subprocess.run([*pre, BPFNETCTL, "--pin-root", sim.pin_root] + (["--netns", ns] if ns else [])
                       + ["doctor", "--json"], capture_output=True, text=True, timeout=60, env=env)
    rows = json.loads(r.stdout) if r.stdout.strip() else []
    return r.returncode, {row["check"]: row for row in rows}, r.stderr


@pytest.fixture
def host(sim):
    sim.fabric()
    h = sim.host("h0", "10.99.0.1/24")
    sim.bpfnetctl("load", "bridge", netns_=h)
    sim.bpfnetctl("vni", "add", "10", "--bridge", "br10", netns_=h)
    sim.tenant(h, "t10", "192.168.0.1/24", "br10")
    with sim.ipr(h) as ipr:  # tenant MTU that fits the tunnel
        ipr.link("set", index=ipr.link_lookup(ifname="tt10")[0], mtu=1450)
    return sim, h


def test_healthy_bridge_is_all_ok(host):
    sim, h = host
    code, rows, err = doctor(sim, h)
    assert code == 0, err
    assert {r["status"] for r in rows.values()} == {"ok"}, rows
    assert rows["bridge"]["detail"].startswith("loaded, 2 attach point(s)")


def test_floods_need_no_route_and_a_lost_flood_route_is_found(host):
    """Floods leave by the underlay with only a connected route (bpfnet's
    route to the group); a link that goes down takes that route with it:
    doctor says so, and a second load puts it back."""
    sim, h = host
    with sim.ipr(h) as ipr:
        eth0 = ipr.link_lookup(ifname="eth0")[0]
        ipr.route("del", dst="0.0.0.0/0", oif=eth0)
    code, rows, err = doctor(sim, h)
    assert code == 0, err
    assert (rows["multicast route"]["status"], rows["multicast route"]["detail"]) == \
        ("ok", "floods to 239.1.1.1 (VNI 10) leave by eth0")
    with sim.ipr(h) as ipr:
        ipr.link("set", index=eth0, state="down")
        ipr.link("set", index=eth0, state="up")
    code, rows, err = doctor(sim, h)
    assert code == 1
    assert rows["multicast route"]["status"] == "fail"
    assert rows["multicast route"]["detail"].startswith("floods to 239.1.1.1 (VNI 10) cannot leave")
    assert rows["multicast route"]["fix"].startswith(f"bpfnetctl --netns {h} load bridge")
    assert err.strip() == "bpfnetctl: error: doctor: 1 problem(s) found: multicast route"
    sim.bpfnetctl("load", "bridge", netns_=h)
    code, rows, err = doctor(sim, h)
    assert code == 0, err
    assert rows["multicast route"]["detail"] == "floods to 239.1.1.1 (VNI 10) leave by eth0"


def test_floods_by_the_management_nic_are_found(host):
    """With bpfnet's flood route gone and a default route by another NIC,
    floods would leave by that NIC: doctor names it."""
    sim, h = host
    with sim.ipr(h) as ipr:
        ipr.link("add", ifname="mgmt0", kind="veth", peer="mgmtp")
        mgmt = ipr.link_lookup(ifname="mgmt0")[0]
        ipr.link("set", index=ipr.link_lookup(ifname="mgmtp")[0], state="up")
        ipr.link("set", index=mgmt, state="up")
        ipr.addr("add", index=mgmt, address="10.1.0.1", prefixlen=24)
        eth0 = ipr.link_lookup(ifname="eth0")[0]
        ipr.route("del", dst="0.0.0.0/0", oif=eth0)
        ipr.route("add", dst="0.0.0.0/0", gateway="10.1.0.254", oif=mgmt)
        ipr.link("set", index=eth0, state="down")  # takes bpfnet's route to the group
        ipr.link("set", index=eth0, state="up")
    code, rows, _ = doctor(sim, h)
    assert code == 1
    assert rows["multicast route"]["detail"].startswith(
        "floods to 239.1.1.1 (VNI 10) leave by mgmt0, not the underlay eth0")
    sim.bpfnetctl("load", "bridge", netns_=h)
    code, rows, err = doctor(sim, h)
    assert code == 0, err
    assert rows["multicast route"]["detail"] == "floods to 239.1.1.1 (VNI 10) leave by eth0"


def test_group_not_joined_by_a_device_without_vni_filter(host):
    sim, h = host
    sim.bpfnetctl("unload", "bridge", netns_=h)
    with sim.ipr(h) as ipr:
        ipr.link("add", ifname="vx9", kind="vxlan", vxlan_collect_metadata=1, vxlan_port=4789,
                 vxlan_learning=0, vxlan_link=ipr.link_lookup(ifname="eth0")[0])
    sim.bpfnetctl("load", "bridge", "--device", "vx9", netns_=h)
    sim.bpfnetctl("vni", "add", "10", "--bridge", "br10", netns_=h)
    code, rows, _ = doctor(sim, h)
    assert code == 1
    assert rows["multicast route"]["status"] == "ok"
    assert rows["multicast group"]["detail"] == \
        "eth0 is not a member of 239.1.1.1 (VNI 10): floods from other hosts do not arrive"
    assert "vx9 has no VNI filter" in rows["multicast group"]["fix"]


def test_tenant_mtu_too_large(host):
    sim, h = host
    with sim.ipr(h) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="tt10")[0], mtu=1500)
    code, rows, _ = doctor(sim, h)
    assert rows["bridge MTU"]["status"] == "warn"
    assert "tt10 MTU 1500 > 1450" in rows["bridge MTU"]["detail"]


def test_strict_rp_filter(host):
    sim, h = host
    sim.sysctl(h, "net.ipv4.conf.eth0.rp_filter", "1")
    _, rows, _ = doctor(sim, h)
    assert rows["rp_filter"]["status"] == "warn"
    assert rows["rp_filter"]["fix"] == "sysctl -w net.ipv4.conf.eth0.rp_filter=2"


def test_program_detached_behind_our_back(host):
    sim, h = host
    d = os.path.join(sim.pin_root, h, "bridge")
    links = [f for f in os.listdir(d) if f.startswith("link_egress_")]
    if links:
        os.unlink(os.path.join(d, links[0]))  # tcx: the link is gone
    else:
        with sim.ipr(h) as ipr:
            ipr.tc("del-filter", "bpf", ipr.link_lookup(ifname="bnp10")[0], 0xBF,
                   parent="ffff:fff3", prio=0xBF00)
    code, rows, _ = doctor(sim, h)
    assert code == 1
    assert rows["bridge attach"]["detail"] == "nothing attached on bnp10 egress"
    assert "load bridge" in rows["bridge attach"]["fix"]
    sim.bpfnetctl("load", "bridge", netns_=h)  # the fix works
    assert doctor(sim, h)[0] == 0


def test_hidden_bpffs_under_ip_netns_exec(host):
    need_tool("ip")
    sim, h = host
    code, rows, _ = doctor(sim, None, "ip", "netns", "exec", h)
    assert code == 1
    assert rows["bpffs"]["status"] == "fail"
    assert f"bpfnetctl --netns {h}" in rows["bpffs"]["fix"]


def test_stale_and_half_made_pins(host):
    sim, h = host
    gone = os.path.join(sim.pin_root, "bt-gone-ns", "bridge")
    os.makedirs(gone)
    half = os.path.join(sim.pin_root, h, "mesh")
    os.makedirs(half, exist_ok=True)
    try:
        code, rows, _ = doctor(sim, h)
        assert code == 1
        assert rows["stale pins"]["fix"] == "rm -r " + os.path.dirname(gone)
        if "mesh pins" in rows:  # the mesh function is part of this build
            assert rows["mesh pins"]["fix"] == f"bpfnetctl --netns {h} unload mesh"
    finally:
        shutil.rmtree(os.path.dirname(gone))
        shutil.rmtree(half)


def test_filter_that_runs_before_ours(host, monkeypatch):
    """In tc mode, a foreign filter with a lower prio number runs first."""
    sim, h = host
    monkeypatch.setenv("BPFNET_ATTACH", "tc")
    sim.bpfnetctl("vni", "add", "20", "--bridge", "br20", netns_=h)
    from bpfnet import libbpf
    with sim.ipr(h) as ipr:
        idx = ipr.link_lookup(ifname="bnp20")[0]
        obj = libbpf.BpfObject.open(os.path.join(ROOT, "build", "tests", "tunnel_inject.bpf.o"))
        obj.load()
        ipr.tc("add-filter", "bpf", idx, 5, fd=obj.prog_fd("inject_tunnel"), name="foreign",
               parent="ffff:fff3", classid=1, direct_action=True, prio=3)
        obj.close()
    _, rows, _ = doctor(sim, h, env={**os.environ, "BPFNET_ATTACH": "tc"})
    assert rows["bridge tc order"]["status"] == "warn"
    assert "bnp20 egress run before bpfnet's (prio 3)" in rows["bridge tc order"]["detail"]
