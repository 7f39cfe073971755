"""MAC/IP routes over etcd: ``/bpfnet/<cluster>/macs/<host>/<vni>/<mac>`` ->
``{"ips": [...]}`` under each host's lease.

- Memberships as processes (``python -m bpfnet.cluster member --macs``): the
  exact keys, the last writer wins a MAC published twice, a killed host's
  routes go with its lease, re-published after etcd lost its data.
"""
from __future__ import annotations

import json
import time

from conftest import run_cli
from etcd import Member, etcd  # noqa: F401 -- etcd: the fixture

MAC_A = "02:00:00:0a:00:01"
MAC_B = "02:00:00:0a:00:02"


def vtep(i: int) -> str:
    return f"10.99.0.{i + 1}"


def routes(view: list) -> set:
    return {(r["host"], r["vni"], r["mac"], tuple(r["ips"])) for r in view}


def macs_json(sim, ns, etcd, *extra) -> list:
    code, out, err = run_cli(sim, ns, "cluster", "macs", "--json", "--etcd", etcd.url,
                             "--cluster", "test", *extra)
    assert code == 0, err
    return json.loads(out)


def test_members_publish_last_writer_wins_lease_takes_them(sim, etcd):
    ns = [sim.host(f"h{i}", f"{vtep(i)}/24") for i in range(3)]
    m0 = Member(sim, ns[0], "h0", etcd.url, vtep(0), bridge_vnis=(10,), mesh_vnis=(), ttl=3,
                macs=[(10, MAC_A, ["192.168.0.1"]), (10, MAC_B, [])])
    m2 = Member(sim, ns[2], "h2", etcd.url, vtep(2), bridge_vnis=(10,), mesh_vnis=(), macs=[])
    want = {("h0", 10, MAC_A, ("192.168.0.1",)), ("h0", 10, MAC_B, ())}
    m2.wait(lambda v: routes(v) == want, kind="macs")
    rows = macs_json(sim, ns[2], etcd)
    assert [(r["vni"], r["mac"], r["host"], r["vtep"], r["ips"], r["active"]) for r in rows] == [
        (10, MAC_A, "h0", vtep(0), ["192.168.0.1"], True), (10, MAC_B, "h0", vtep(0), [], True)]
    # MAC_A moves to h1: published there later, it wins before h0 withdraws it
    m1 = Member(sim, ns[1], "h1", etcd.url, vtep(1), bridge_vnis=(10,), mesh_vnis=(),
                macs=[(10, MAC_A, ["192.168.0.1"])])
    m2.wait(lambda v: ("h1", 10, MAC_A, ("192.168.0.1",)) in routes(v), kind="macs")
    rows = macs_json(sim, ns[2], etcd, "--vni", "10")
    assert [(r["mac"], r["host"], r["active"]) for r in rows] == [
        (MAC_A, "h1", True), (MAC_A, "h0", False), (MAC_B, "h0", True)]
    assert rows[0]["revision"] > rows[1]["revision"]
    code, out, _ = run_cli(sim, ns[2], "cluster", "show", "--json", "--etcd", etcd.url,
                           "--cluster", "test")
    assert {r["host"]: r["macs"] for r in json.loads(out)} == {"h0": 2, "h1": 1, "h2": 0}
    # h0 dies: its lease runs out, its routes go with its record
    m0.kill()
    m2.wait(lambda v: routes(v) == {("h1", 10, MAC_A, ("192.168.0.1",))}, timeout=15,
            kind="macs")
    assert [(r["mac"], r["host"]) for r in macs_json(sim, ns[2], etcd)] == [(MAC_A, "h1")]
    m1.stop()
    m2.wait(lambda v: routes(v) == set(), timeout=5, kind="macs")


def test_routes_published_again_after_etcd_lost_its_data(sim, etcd):
    ns = sim.host("h0", f"{vtep(0)}/24")
    m0 = Member(sim, ns, "h0", etcd.url, vtep(0), bridge_vnis=(10,), mesh_vnis=(),
                macs=[(10, MAC_A, ["192.168.0.1"])])
    m0.wait(lambda v: len(v) == 1, kind="macs")
    etcd.stop()
    import shutil
    shutil.rmtree(f"{etcd.dir}/data")
    etcd.start()
    end = time.monotonic() + 20
    rows = []
    while time.monotonic() < end:
        code, out, _ = run_cli(sim, ns, "cluster", "macs", "--json", "--etcd", etcd.url,
                               "--cluster", "test")
        rows = json.loads(out) if code == 0 else []
        if rows:
            break
        time.sleep(0.2)
    assert [(r["mac"], r["host"], r["ips"], r["active"]) for r in rows] == [
        (MAC_A, "h0", ["192.168.0.1"], True)]
