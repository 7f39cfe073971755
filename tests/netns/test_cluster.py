"""Cluster membership against a real etcd (Debian's etcd-server) in its own
namespace on the fabric; every member is a process (``python -m
bpfnet.cluster``) in its own host namespace that reaches etcd only through
that namespace's eth0. Faults: etcd stopped, frozen (SIGSTOP), a member killed
(kill -9), a cut link, a compacted history."""
from __future__ import annotations

import json
import os
import time

from conftest import run_cli
from etcd import Member, etcd  # noqa: F401 -- etcd: the fixture


def vtep(i: int) -> str:
    return f"10.99.0.{i + 1}"


def hosts(sim, n: int, start: int = 0) -> list[str]:
    return [sim.host(f"h{i}", f"{vtep(i)}/24") for i in range(start, start + n)]


def record(i: int, mesh=(10,), bridge=()) -> dict:
    return {"vtep": vtep(i), "port": 4789, "bridge_vnis": list(bridge), "mesh_vnis": list(mesh)}


def member(sim, etcd, ns, i: int, **kw) -> Member:
    return Member(sim, ns, f"h{i}", etcd.url, vtep(i), **kw)


def names(n):
    return lambda hs: set(hs) == set(n)


def test_members_see_each_other_exact_records(sim, etcd, tmp_path):
    ns = hosts(sim, 3)
    ms = [Member(sim, ns[0], "h0", etcd.url, vtep(0), mesh_vnis=(10, 20)),
          Member(sim, ns[1], "h1", etcd.url, vtep(1), bridge_vnis=(30,), mesh_vnis=()),
          # started in the test's namespace: only its membership thread enters h2
          Member(sim, None, "h2", etcd.url, vtep(2), port=4790, netns=ns[2])]
    want = {"h0": record(0, mesh=(10, 20)), "h1": record(1, mesh=(), bridge=(30,)),
            "h2": {**record(2), "port": 4790}}
    for m in ms:
        ev = m.wait(lambda hs: hs == want)
        assert ev["health"]["connected"] is True
        assert ev["health"]["hosts"] == 3 and ev["health"]["errors"] == 0

    # where gRPC lives: every thread but the main one is in h2's namespace
    st = ms[2].state()
    h2_ino = os.stat(f"/var/run/netns/{ns[2]}").st_ino
    main = str(ms[2].proc.pid)
    threads = st["threads"]
    assert threads[main] == os.readlink("/proc/self/ns/net")
    others = {tid: link for tid, link in threads.items() if tid != main}
    assert len(others) >= 3 and set(others.values()) == {f"net:[{h2_ino}]"}, threads

    # bpfnetctl cluster show, as an operator on h0 runs it
    code, out, err = run_cli(sim, ns[0], "cluster", "show", "--json", "--etcd", etcd.url,
                             "--cluster", "test")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["host"] for r in rows] == ["h0", "h1", "h2"]
    for r in rows:
        assert {k: r[k] for k in ("vtep", "port", "bridge_vnis", "mesh_vnis")} == want[r["host"]]
        assert r["ttl_s"] == 10 and 0 < r["lease_s"] <= 10 and r["valid"] is True
    code, out, err = run_cli(sim, ns[0], "cluster", "show", "--etcd", etcd.url, "--cluster", "test")
    assert code == 0 and out.splitlines()[0].split() == [
        "HOST", "VTEP", "PORT", "BRIDGE_VNIS", "MESH_VNIS", "LEASE_S", "TTL_S", "MACS"]
    assert out.splitlines()[3].split()[:5] == ["h2", "10.99.0.3", "4790", "-", "10"]

    # the same from an agent's file
    from bpfnet.demos.cluster import config
    f = tmp_path / "h0.toml"
    f.write_text(config(0, etcd.url, 10, cluster="test"))
    code, out2, err = run_cli(sim, ns[0], "cluster", "show", "--json", "-f", str(f))
    assert code == 0 and [r["host"] for r in json.loads(out2)] == ["h0", "h1", "h2"], err

    # a dead first endpoint: the next session goes to the next one
    m3 = Member(sim, ns[0], "h3", "http://10.99.0.77:2379," + etcd.url, vtep(3))
    ev = m3.wait(lambda hs: set(hs) == {"h0", "h1", "h2", "h3"}, timeout=20)
    assert ev["health"]["errors"] >= 1 and "10.99.0.77" in ev["health"]["last_error"]
    m3.stop()

    # a clean stop revokes the lease: the others see h1 leave at once
    ms[1].stop()
    for m in (ms[0], ms[2]):
        m.wait(names({"h0", "h2"}), timeout=3)


def test_member_answers_every_sigusr1_and_sigterm(sim, etcd):
    # the test tool itself: each SIGUSR1 one state line, back to back (a
    # handler that printed could be entered again inside itself and hang; a
    # signal the kernel gave a gRPC thread left the main thread asleep)
    ns = hosts(sim, 1)
    m = Member(sim, None, "h0", etcd.url, vtep(0), netns=ns[0])
    m.wait(names({"h0"}))
    for _ in range(200):
        assert m.state()["hosts"].keys() == {"h0"}
    assert m.stop()["event"] == "stopped"
    assert m.proc.returncode == 0


def test_cluster_show_bad_input_one_line_exit_2(sim, etcd, tmp_path):
    ns = hosts(sim, 1)
    nofile = tmp_path / "none.toml"
    nocluster = tmp_path / "plain.toml"
    nocluster.write_text('[host]\nname = "h0"\n')
    for argv, frag in ((["cluster", "show"], "give -f FILE"),
                       (["cluster", "show", "--etcd", "https://10.99.0.250:2379"],
                        "expected http://HOST:PORT"),
                       (["cluster", "show", "--etcd", "http://10.99.0.250:99999"], "bad port"),
                       (["cluster", "show", "--etcd", etcd.url, "--cluster", "a/b"], "without '/'"),
                       (["cluster", "show", "-f", str(nofile)], "none.toml"),
                       (["cluster", "show", "-f", str(nocluster)], "no [cluster] section"),
                       (["cluster", "show", "-f", str(nocluster), "--etcd", etcd.url], "not both")):
        code, out, err = run_cli(sim, ns[0], *argv)
        assert (code, out) == (2, ""), (argv, code, out, err)
        assert err.count("\n") == 1 and err.startswith("bpfnetctl: error: cluster show: "), err
        assert frag in err, (argv, err)
    # unreachable: exit 1, one line, within the deadline
    code, out, err = run_cli(sim, ns[0], "cluster", "show", "--etcd", "http://10.99.0.77:2379")
    assert (code, out) == (1, "") and err.count("\n") == 1
    assert err.startswith("bpfnetctl: error: cluster show: etcd unreachable (http://10.99.0.77:2379")


def test_etcd_stopped_10s_members_report_it_and_converge(sim, etcd):
    ns = hosts(sim, 3)
    m0, m1 = member(sim, etcd, ns[0], 0), member(sim, etcd, ns[1], 1)
    for m in (m0, m1):
        m.wait(names({"h0", "h1"}))
    rev = m0.state()["health"]["revision"]
    etcd.stop()
    for m in (m0, m1):
        ev = m.wait(lambda h: h["connected"] is False, timeout=5, kind="health")
        assert ev["health"]["hosts"] == 2
    m2 = member(sim, etcd, ns[2], 2)  # joins while etcd is down: it keeps trying
    time.sleep(10)
    st = m0.state()["health"]
    assert st["connected"] is False and st["errors"] >= 1 and st["hosts"] == 2
    etcd.start()
    for m in (m0, m1, m2):
        ev = m.wait(names({"h0", "h1", "h2"}), timeout=10)
        assert ev["hosts"]["h2"] == record(2)
    st = m0.state()["health"]
    # resumed at the revision it had, no full list: etcd replayed what it missed
    assert st["connected"] is True and st["relists"] == 1 and st["revision"] > rev
    # and it keeps following: h1 leaves
    m1.stop()
    for m in (m0, m2):
        m.wait(names({"h0", "h2"}), timeout=3)


def test_etcd_frozen_detected_within_seconds(sim, etcd):
    ns = hosts(sim, 2)
    m0, m1 = member(sim, etcd, ns[0], 0), member(sim, etcd, ns[1], 1)
    for m in (m0, m1):
        m.wait(names({"h0", "h1"}))
    t0 = time.time()
    etcd.freeze()
    for m in (m0, m1):
        ev = m.wait(lambda h: h["connected"] is False, timeout=10, kind="health")
        # the next lease refresh (<= 1 s) times out (2 s): a few seconds, not a hang
        assert ev["seen"] - t0 < 5, ev["seen"] - t0
        assert "Timeout" in ev["health"]["last_error"], ev
    etcd.thaw()
    for m in (m0, m1):
        m.wait(lambda h: h["connected"] is True, timeout=10, kind="health")
    m1.stop()
    m0.wait(names({"h0"}), timeout=3)


def test_killed_member_vanishes_within_ttl_plus_1s(sim, etcd):
    ttl = 3
    ns = hosts(sim, 3)
    ms = [member(sim, etcd, ns[i], i, ttl=ttl) for i in range(3)]
    for m in ms:
        m.wait(names({"h0", "h1", "h2"}))
    t0 = time.time()
    ms[2].kill()  # kill -9: no revoke, the lease runs out
    took = []
    for m in ms[:2]:
        ev = m.wait(names({"h0", "h1"}), timeout=ttl + 5)
        took.append(ev["seen"] - t0)
    print(f"killed member gone after {took[0]:.2f} s, {took[1]:.2f} s (ttl {ttl} s)")
    assert max(took) <= ttl + 1, took

    # kill -9 and restart within the TTL: the others never see it leave
    for m in ms[:2]:
        m.view()
    ms[1].kill()
    m1 = member(sim, etcd, ns[1], 1, ttl=ttl)
    m1.wait(names({"h0", "h1"}))
    time.sleep(ttl + 1)  # the old lease expires: it no longer holds the key
    left = [e for e in ms[0].events if e["event"] == "hosts" and "h1" not in e["hosts"]
            and e["seen"] > t0 + max(took)]
    assert left == [] and set(ms[0].view()) == {"h0", "h1"}
    assert etcd.admin("revision")["revision"] > 0


def test_cut_link_longer_than_ttl_registers_again(sim, etcd):
    ttl = 3
    ns = hosts(sim, 2)
    m0, m1 = member(sim, etcd, ns[0], 0, ttl=ttl), member(sim, etcd, ns[1], 1, ttl=ttl)
    for m in (m0, m1):
        m.wait(names({"h0", "h1"}))
    with sim.ipr(ns[1]) as ipr:
        eth0 = ipr.link_lookup(ifname="eth0")[0]
        ipr.link("set", index=eth0, state="down")
        m1.wait(lambda h: h["connected"] is False, timeout=5, kind="health")
        m0.wait(names({"h0"}), timeout=ttl + 2)  # h1's lease ran out
        ipr.link("set", index=eth0, state="up")
        ipr.route("add", dst="0.0.0.0/0", oif=eth0)
    for m in (m0, m1):
        m.wait(names({"h0", "h1"}), timeout=10)
    assert m1.state()["hosts"] == {"h0": record(0), "h1": record(1)}


def test_compacted_revision_full_relist(sim, etcd):
    ns = hosts(sim, 3)
    m0, m1 = member(sim, etcd, ns[0], 0, ttl=30), member(sim, etcd, ns[1], 1)
    for m in (m0, m1):
        m.wait(names({"h0", "h1"}))
    assert m0.state()["health"]["relists"] == 1
    with sim.ipr(ns[0]) as ipr:  # h0 loses etcd; its lease (30 s) outlives the cut
        eth0 = ipr.link_lookup(ifname="eth0")[0]
        ipr.link("set", index=eth0, state="down")
        m0.wait(lambda h: h["connected"] is False, timeout=5, kind="health")
        # meanwhile: h1 leaves, h2 joins, some other key moves, and history is compacted
        m1.stop()
        m2 = member(sim, etcd, ns[2], 2)
        m2.wait(names({"h0", "h2"}))
        etcd.admin("put", "/other/key", "x")
        rev = etcd.compact()
        ipr.link("set", index=eth0, state="up")
        ipr.route("add", dst="0.0.0.0/0", oif=eth0)
    ev = m0.wait(names({"h0", "h2"}), timeout=10)
    assert ev["hosts"] == {"h0": record(0), "h2": record(2)}
    st = m0.state()["health"]
    assert st["relists"] == 2 and st["revision"] >= rev and st["connected"] is True
    end = time.monotonic() + 5  # stderr has a reader thread of its own: it may lag stdout
    while not any("compacted" in line for line in m0.stderr) and time.monotonic() < end:
        time.sleep(0.1)
    assert any("compacted" in line for line in m0.stderr), m0.stderr[-5:]


def test_second_namespace_in_one_process_refused(sim, etcd):
    """gRPC's threads live in one namespace per process: a second Membership
    elsewhere is refused, not silently routed through the first one's."""
    import subprocess
    import sys
    ns = hosts(sim, 2)
    code = f"""
import json
from bpfnet.cluster import Membership
from bpfnet.errors import ConfigError
rec = {json.dumps(record(0))}
a = Membership(["{etcd.url}"], "test", "h0", 5, rec, lambda h: None, netns="{ns[0]}")
print("first", a.start(wait=10))
b = Membership(["{etcd.url}"], "test", "h1", 5, rec, lambda h: None, netns="{ns[1]}")
try:
    b.start()
except ConfigError as e:
    print("refused", e)
a.stop()
c = Membership(["{etcd.url}"], "test", "h1", 5, rec, lambda h: None, netns="{ns[1]}")
print("after stop", c.start(wait=10))
c.stop()
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    lines = r.stdout.splitlines()
    ino0 = os.stat(f"/var/run/netns/{ns[0]}").st_ino
    ino1 = os.stat(f"/var/run/netns/{ns[1]}").st_ino
    assert lines == ["first True",
                     f"refused cluster: gRPC runs in network namespace net:[{ino0}] in this "
                     f"process; a Membership in net:[{ino1}] would reach etcd from there",
                     "after stop True"], (r.stdout, r.stderr[-2000:])


def test_etcd_wiped_members_register_again_and_relist(sim, etcd):
    """etcd comes back empty (its data lost): revisions start again from 1, so
    a resumed watch would wait for the future; the members see the reset,
    register under new leases and list afresh."""
    import shutil
    ns = hosts(sim, 2)
    m0, m1 = member(sim, etcd, ns[0], 0), member(sim, etcd, ns[1], 1)
    for m in (m0, m1):
        m.wait(names({"h0", "h1"}))
    # 50 events the members see (a key that is no host record): their revision is
    # now well ahead of what a fresh etcd will have
    etcd.admin("put", "/bpfnet/test/hosts/junk", "x", "50")
    etcd.admin("del", "/bpfnet/test/hosts/junk")
    for m in (m0, m1):
        end = time.monotonic() + 10
        while (st := m.state()["health"])["bad_records"] < 50 and time.monotonic() < end:
            time.sleep(0.2)
        assert (st["bad_records"], st["errors"], st["hosts"]) == (50, 0, 2)
    etcd.stop()
    shutil.rmtree(os.path.join(etcd.dir, "data"))
    etcd.start()
    for m in (m0, m1):
        m.wait(lambda h: h["connected"] is True, timeout=10, kind="health")
    m2 = member(sim, etcd, ns[0], 2)
    for m in (m0, m1, m2):
        m.wait(names({"h0", "h1", "h2"}), timeout=10)
    for m in (m0, m1):
        assert m.state()["health"]["relists"] == 2
