"""Static FDB entries from the desired-state file, end to end on hosts built
by hand (tests/floodtopo.py): `apply` installs them (the first ping floods
nothing on h0), a second `apply` and a `load` upgrade change nothing and
keep them, `config show` writes them back, a changed remote is replaced,
`fdb = []` removes them, and learned entries are never touched."""
import json

import pytest

from conftest import built
import floodtopo as ft

T1 = ft.tenant_mac(1)


def bridge_file(i: int, fdb: str | None = None) -> str:
    extra = f", fdb = {fdb}" if fdb is not None else ""
    return (f'[host]\nname = "h{i}"\n[bridge]\nunderlay = "eth0"\nlocal = "{ft.underlay(i)}"\n'
            f'vnis = [ {{ vni = 10, bridge = "br10"{extra} }} ]\n')


@pytest.fixture(scope="module")
def topo(tmp_path_factory):
    d = tmp_path_factory.mktemp("fdb")

    def build(sim):
        t = ft.build(sim, 3, load=False)
        t["dir"] = d
        return t
    yield from built("taf", build)


def apply(topo, i, text):
    path = topo["dir"] / f"h{i}.toml"
    path.write_text(text)
    code, out, err = topo["sim"].bpfnetctl("apply", "-f", str(path), netns_=topo["hosts"][i],
                                           check=False)
    assert (code, err) == (0, ""), err
    return out.splitlines()


def statics(topo, i=0):
    rows = ft.ctl_json(topo["sim"], topo["hosts"][i], "fdb", "show")
    return [(r["mac"], r["remote"]) for r in rows if r["static"]]


def test_apply_installs_static_entries_that_survive_apply_and_upgrades(topo):
    sim, (h0, h1, h2), (t0, t1, t2) = topo["sim"], topo["hosts"], topo["tenants"]
    fdb = f'[ {{ mac = "{T1}", remote = "{ft.underlay(1)}", ip = "{ft.tenant_ip(1)}" }} ]'
    assert apply(topo, 0, bridge_file(0, fdb)) == [
        f"+ bridge load underlay=eth0 local={ft.underlay(0)}",
        "+ bridge vni 10 bridge=br10",
        f"+ bridge vni 10 fdb {T1} remote={ft.underlay(1)} ip={ft.tenant_ip(1)}",
        "apply: h0.toml: 3 change(s) applied"]
    for i in (1, 2):
        apply(topo, i, bridge_file(i))
    assert statics(topo) == [(T1, ft.underlay(1))]
    before = ft.counters(sim, h0)
    assert sim.ping(t0, ft.tenant_ip(1), count=1) == 1
    d = ft.delta(ft.counters(sim, h0), before)
    assert (d.get("arp_reply"), d.get("flood")) == (1, None)
    assert sim.ping(t0, ft.tenant_ip(2), count=1) == 1  # a learned entry beside it
    assert apply(topo, 0, bridge_file(0, fdb)) == ["apply: h0.toml: nothing to change"]
    sim.bpfnetctl("load", "bridge", netns_=h0)  # an upgrade
    assert apply(topo, 0, bridge_file(0, fdb)) == ["apply: h0.toml: nothing to change"]
    assert statics(topo) == [(T1, ft.underlay(1))]
    _, out, _ = sim.bpfnetctl("config", "show", "--json", netns_=h0)
    assert json.loads(out)["bridge"]["vnis"] == [
        {"vni": 10, "bridge": "br10",
         "fdb": [{"mac": T1, "remote": ft.underlay(1), "ip": [ft.tenant_ip(1)]}]}]


def test_apply_replaces_a_changed_entry_and_removes_one_no_longer_listed(topo):
    sim, (h0, h1, h2), (t0, t1, t2) = topo["sim"], topo["hosts"], topo["tenants"]
    assert sim.ping(t0, ft.tenant_ip(2), count=1) == 1
    learned = {r["mac"] for r in ft.ctl_json(sim, h0, "fdb", "show") if not r["static"]}
    assert ft.tenant_mac(2) in learned
    moved = f'[ {{ mac = "{T1}", remote = "{ft.underlay(2)}" }} ]'
    assert apply(topo, 0, bridge_file(0, moved)) == [
        f"~ bridge vni 10 fdb {T1} remote={ft.underlay(1)} ip={ft.tenant_ip(1)} -> "
        f"remote={ft.underlay(2)}",
        "apply: h0.toml: 1 change(s) applied"]
    assert statics(topo) == [(T1, ft.underlay(2))]
    assert [r for r in ft.ctl_json(sim, h0, "neigh", "show") if r["static"]] == []
    assert bridge_file(0) and apply(topo, 0, bridge_file(0)) == ["apply: h0.toml: nothing to change"]
    assert apply(topo, 0, bridge_file(0, "[]")) == [
        f"- bridge vni 10 fdb {T1}", "apply: h0.toml: 1 change(s) applied"]
    assert statics(topo) == []
    # learned entries were never touched by any of it
    assert ft.tenant_mac(2) in {r["mac"] for r in ft.ctl_json(sim, h0, "fdb", "show")}
