"""Attach modes: tcx links where the kernel has them (probed), clsact +
cls_bpf otherwise; upgrades in place in both; a foreign tc program on the
same hook survives load, upgrade and unload.

     h0: eth0 10.99.0.1 --- fabric --- h1: eth0 10.99.0.2
         vxlan0 (bridge_ingress)           (plain host)
"""
import os

import pytest

from conftest import need_root

from bpfnet import libbpf


@pytest.fixture
def two(sim):
    sim.fabric()
    return sim, sim.host("h0", "10.99.0.1/24"), sim.host("h1", "10.99.0.2/24")


def status(sim, ns):
    import json
    _, out, _ = sim.bpfnetctl("status", "--json", netns_=ns)
    return json.loads(out)["functions"]["bridge"]


def test_mode_is_probed_from_the_kernel(two, monkeypatch):
    monkeypatch.delenv("BPFNET_ATTACH", raising=False)
    sim, h0, _ = two
    sim.bpfnetctl("load", "bridge", netns_=h0)
    sim.bpfnetctl("vni", "add", "10", "--bridge", "br10", netns_=h0)
    want = "tcx" if libbpf.tcx_supported() else "tc"
    st = status(sim, h0)
    assert {a["mode"] for a in st["attach"]} == {want}
    assert all(a["program"] for a in st["attach"])
    assert (st["encap"]["decap_attach"]["program"], st["encap"]["decap_attach"]["mode"]) == \
        ("bridge_decap", want)
    links = [f for f in os.listdir(os.path.join(sim.pin_root, h0, "bridge")) if f.startswith("link_")]
    # the VXLAN device's ingress, the port's egress, the underlay's ingress
    # (native decapsulation)
    assert len(links) == (3 if want == "tcx" else 0)


@pytest.mark.parametrize("mode", ["tc", "probed"])
def test_foreign_tc_program_survives_load_upgrade_unload(two, monkeypatch, mode):
    """A user's own cls_bpf filter (here: bpfnet's egress object under another
    prio/handle) on the VXLAN device stays through our whole life cycle."""
    need_root()
    if mode == "tc":
        monkeypatch.setenv("BPFNET_ATTACH", "tc")
    else:
        monkeypatch.delenv("BPFNET_ATTACH", raising=False)
    sim, h0, _ = two
    with sim.ipr(h0) as ipr:
        ipr.link("add", ifname="vxu", kind="vxlan", vxlan_collect_metadata=1, vxlan_port=4789)
        idx = ipr.link_lookup(ifname="vxu")[0]
        ipr.tc("add", "clsact", idx)
        obj = libbpf.BpfObject.open(os.path.join(os.path.dirname(__file__), "..", "..", "build",
                                                 "tests", "tunnel_inject.bpf.o"))
        obj.load()
        ipr.tc("add-filter", "bpf", idx, 7, fd=obj.prog_fd("inject_tunnel"), name="foreign",
               parent="ffff:fff2", classid=1, direct_action=True, prio=10)
        obj.close()

    def foreign():
        with sim.ipr(h0) as ipr:
            return [(f["info"] >> 16, f["handle"]) for f in ipr.get_filters(idx, parent="ffff:fff2")
                    if f["handle"]]
    assert foreign() == [(10, 7)]
    sim.bpfnetctl("load", "bridge", "--device", "vxu", netns_=h0)
    ours = status(sim, h0)["attach"][0]
    assert ours["program"] == "bridge_ingress"
    expect = [(10, 7)] if ours["mode"] == "tcx" else sorted([(10, 7), (0xBF00, 0xBF)])
    assert sorted(foreign()) == expect
    sim.bpfnetctl("load", "bridge", netns_=h0)  # upgrade
    assert sorted(foreign()) == expect
    sim.bpfnetctl("unload", "bridge", netns_=h0)
    assert foreign() == [(10, 7)]
    with sim.ipr(h0) as ipr:  # the user's clsact stays
        assert any(q.get_attr("TCA_KIND") == "clsact" for q in ipr.get_qdiscs(index=idx))


def test_tc_mode_removes_the_clsact_it_created(two, monkeypatch):
    monkeypatch.setenv("BPFNET_ATTACH", "tc")
    sim, h0, _ = two
    with sim.ipr(h0) as ipr:
        ipr.link("add", ifname="vxu", kind="vxlan", vxlan_collect_metadata=1, vxlan_port=4789)
        idx = ipr.link_lookup(ifname="vxu")[0]
    sim.bpfnetctl("load", "bridge", "--device", "vxu", netns_=h0)
    with sim.ipr(h0) as ipr:
        assert any(q.get_attr("TCA_KIND") == "clsact" for q in ipr.get_qdiscs(index=idx))
    sim.bpfnetctl("unload", "bridge", netns_=h0)
    with sim.ipr(h0) as ipr:
        assert not any(q.get_attr("TCA_KIND") == "clsact" for q in ipr.get_qdiscs(index=idx))
