"""Operations under stress: upgrades under traffic, kill -9 at any point,
parallel commands.

     h0v10 192.168.0.1                h1v10 192.168.0.2
        br10 -- bnp10                    br10 -- bnp10
        vxlan0  eth0 10.99.0.1 -- fabric -- eth0 10.99.0.2  vxlan0
"""
import json
import random
import signal
import subprocess
import time

import pytest

from conftest import BPFNETCTL, snapshot

from bpfnet.demos import bridge as demo

def cli(sim, ns, *argv, timeout=60):
    return subprocess.run([BPFNETCTL, "--pin-root", sim.pin_root, "--netns", ns, *argv],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def two_hosts(sim):
    topo = demo.build(sim, n_hosts=2, vnis=(10,))
    return sim, topo


def test_ten_upgrades_under_100pps_lose_nothing(two_hosts):
    sim, topo = two_hosts
    src = topo["tenants"][(0, 10)]
    assert sim.ping_until(src, demo.tenant_ip(1))
    _, st0, _ = sim.bpfnetctl("status", "--json", netns_=topo["hosts"][0])
    count = 700  # 7 s at 100 packets per second
    ping = sim.spawn(src, ["ping", "-n", "-q", "-i", "0.01", "-c", str(count), "-w", "30",
                           demo.tenant_ip(1)], stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    for i in range(10):
        host = topo["hosts"][i % 2]
        r = cli(sim, host, "load", "bridge")
        assert r.returncode == 0, r.stderr
        assert "upgraded" in r.stdout
        time.sleep(0.2)
    out, _ = ping.communicate(timeout=40)
    assert f"{count} packets transmitted, {count} received" in out, out
    _, st1, _ = sim.bpfnetctl("status", "--json", netns_=topo["hosts"][0])
    c0 = json.loads(st0)["functions"]["bridge"]["counters"]
    c1 = json.loads(st1)["functions"]["bridge"]["counters"]
    assert c1["rx"] >= c0["rx"] + count  # counters survived and kept counting
    _, fdb, _ = sim.bpfnetctl("fdb", "show", "--json", netns_=topo["hosts"][0])
    row = {r["mac"]: r for r in json.loads(fdb)}[demo.tenant_mac(1, 10)]
    assert row["rx_pkts"] >= count


OPS = [("load", "bridge"), ("vni", "add", "30", "--bridge", "br30"),
       ("vni", "add", "31", "--bridge", "br31", "--allow", "10.99.0.2"),
       ("vni", "del", "30"), ("unload", "bridge")]


def test_kill_9_at_any_point_blocks_nothing(sim):
    sim.fabric()
    h = sim.host("h0", "10.99.0.1/24")
    before = snapshot(sim, h)
    rng = random.Random(1)
    kills = 0
    for rnd in range(4):
        for op in OPS:
            p = subprocess.Popen([BPFNETCTL, "--pin-root", sim.pin_root, "--netns", h, *op],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.05, 0.6))
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                kills += 1
            p.wait(10)
            # the same command again must work, whatever state the kill left
            r = cli(sim, h, *op)
            if op[:2] == ("vni", "del") and r.returncode == 2:
                assert "not configured" in r.stderr  # the killed run had finished it
            elif op[0] == "unload" and r.returncode == 2:
                assert "not loaded" in r.stderr
            elif op[:2] == ("vni", "add") and r.returncode == 2:
                assert "already exists" in r.stderr  # finished before the kill: whole
                _, out, _ = sim.bpfnetctl("vni", "show", "--json", netns_=h)
                assert {x["vni"]: x["port"] for x in json.loads(out)}[int(op[2])] == f"bnp{op[2]}"
            else:
                assert r.returncode == 0, (rnd, op, r.stderr)
        cli(sim, h, "vni", "del", "31")
    assert kills >= 5
    assert snapshot(sim, h) == before


def test_eight_parallel_commands_all_land(sim):
    sim.fabric()
    h = sim.host("h0", "10.99.0.1/24")
    assert cli(sim, h, "load", "bridge").returncode == 0
    procs = [subprocess.Popen([BPFNETCTL, "--pin-root", sim.pin_root, "--netns", h,
                               "vni", "add", str(100 + i), "--bridge", f"br{100 + i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(8)]
    results = [(p.wait(60), p.stderr.read()) for p in procs]
    assert [c for c, _ in results] == [0] * 8, results
    _, out, _ = sim.bpfnetctl("vni", "show", "--json", netns_=h)
    assert [r["vni"] for r in json.loads(out)] == list(range(100, 108))
    assert cli(sim, h, "unload", "bridge").returncode == 0
