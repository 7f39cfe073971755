"""Agents (``bpfnetctl --netns hN agent -f hN.toml``) with mesh peers from a
real etcd, under faults: the data path must not care.

- etcd stopped for 10 s under a running ping: 0 lost; /metrics says etcd is
  down, then up again; a host that joined meanwhile is meshed once it is back.
- agent kill -9 and restart under a running ping: 0 lost, state identical.
- a host that dies (agent killed, namespace gone): its peers vanish from every
  other host within the TTL plus 1 s.
"""
from __future__ import annotations

import re
import signal
import time
import urllib.request

from conftest import snapshot
from etcd import etcd  # noqa: F401 -- the fixture

from bpfnet.demos.cluster import Hosts
from bpfnet.sim import tenant_ip, underlay_ip


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mesh(sim, etcd, n: int, ttl: int = 5, metrics: bool = False) -> Hosts:
    """n hosts with agents, meshed by etcd; with ``metrics``, h0's agent serves
    /metrics where it was started (loopback of the test's namespace)."""
    hs = Hosts(sim, etcd, ttl=ttl, cluster="test")
    for i in range(n):
        hs.add(i)
        hs.start(i, extra=["--metrics", f"127.0.0.1:{free_port()}"] if metrics and i == 0 else ())
    assert hs.wait_converged(range(n), timeout=60) is not None, hs.log(0)
    return hs


class Flow:
    """A ping from host a's tenant to host b's at 20 per second, bounded."""

    def __init__(self, sim, hs: Hosts, a: int, b: int, seconds: float):
        import subprocess
        self.count = int(seconds * 20)
        sim.ping_until(hs.tenants[(a, 10)], tenant_ip(b))
        self.proc = sim.spawn(hs.tenants[(a, 10)],
                              ["ping", "-n", "-q", "-i", "0.05", "-W", "1", "-c", str(self.count),
                               "-w", str(int(seconds) + 10), tenant_ip(b)],
                              stdout=subprocess.PIPE, text=True)

    def result(self) -> tuple[int, int]:
        out, _ = self.proc.communicate(timeout=60)
        m = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", out)
        assert m, out
        return int(m.group(1)), int(m.group(2))


def metrics_url(hs: Hosts, i: int, timeout: float = 20) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        m = re.search(r"metrics: (http://\S+/metrics)", hs.log(i, 200))
        if m:
            return m.group(1)
        time.sleep(0.1)
    raise AssertionError(f"no metrics line in h{i}'s log: {hs.log(i)}")


def scrape(url: str, name: str) -> float | None:
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def wait_metric(url: str, name: str, value: float, timeout: float = 10) -> float:
    end = time.monotonic() + timeout
    while True:
        v = scrape(url, name)
        if v == value or time.monotonic() > end:
            return v
        time.sleep(0.1)


def test_etcd_stopped_10s_no_loss_and_converges(sim, etcd):
    hs = mesh(sim, etcd, 3, metrics=True)
    url = metrics_url(hs, 0)
    assert wait_metric(url, "bpfnet_agent_etcd_connected", 1) == 1
    flow = Flow(sim, hs, 0, 1, seconds=14)
    time.sleep(1)
    etcd.stop()
    assert wait_metric(url, "bpfnet_agent_etcd_connected", 0) == 0
    hs.add(3)
    hs.start(3)  # joins while etcd is down: it applies its file and keeps trying
    time.sleep(10)
    assert hs.converged(range(3)), "peers changed while etcd was down"
    etcd.start()
    assert wait_metric(url, "bpfnet_agent_etcd_connected", 1) == 1
    sent, got = flow.result()
    assert (sent, got) == (flow.count, flow.count)
    assert hs.wait_converged(range(4), timeout=20) is not None, hs.log(3)


def test_agent_kill_9_and_restart_no_loss_same_state(sim, etcd):
    hs = mesh(sim, etcd, 3)
    before = [snapshot(sim, hs.ns[i]) for i in range(3)]
    peers = [hs.peers(i) for i in range(3)]
    flow = Flow(sim, hs, 0, 1, seconds=8)
    time.sleep(1)
    for i in range(3):
        hs.stop(i, signal.SIGKILL)
    time.sleep(1)
    for i in range(3):
        hs.start(i)
    time.sleep(3)  # the agents apply their file and sync with etcd again
    sent, got = flow.result()
    assert (sent, got) == (flow.count, flow.count)
    assert [hs.peers(i) for i in range(3)] == peers
    assert [snapshot(sim, hs.ns[i]) for i in range(3)] == before


def test_dead_host_vanishes_everywhere_within_ttl_plus_1s(sim, etcd):
    ttl = 3
    hs = mesh(sim, etcd, 4, ttl=ttl)
    t0 = time.monotonic()
    hs.remove(3)  # agent kill -9, namespace gone: nothing revokes the lease
    took = hs.wait_converged(range(3), timeout=ttl + 10)
    assert took is not None, hs.log(0)
    print(f"dead host's peers gone from every host after {time.monotonic() - t0:.2f} s "
          f"(ttl {ttl} s)")
    assert time.monotonic() - t0 <= ttl + 1


def test_new_vni_in_file_republished_and_followed(sim, etcd):
    """SIGHUP after a VNI is added to two hosts' files: their records in etcd
    say so (Membership.update) and exactly those two peer on the new VNI."""
    import json

    from conftest import run_cli

    from bpfnet.demos.cluster import config
    hs = mesh(sim, etcd, 3)
    for i in (0, 1):
        with open(hs.file(i), "w") as f:
            f.write(config(i, etcd.url, hs.ttl, vnis=(10, 20), cluster="test"))
        hs.agents[i].send_signal(signal.SIGHUP)
    ip = [underlay_ip(i) for i in range(3)]
    want = {0: {(10, ip[1]), (10, ip[2]), (20, ip[1])},
            1: {(10, ip[0]), (10, ip[2]), (20, ip[0])},
            2: {(10, ip[0]), (10, ip[1])}}
    end = time.monotonic() + 20
    while time.monotonic() < end and any(hs.peers(i) != want[i] for i in range(3)):
        time.sleep(0.1)
    assert {i: hs.peers(i) for i in range(3)} == want, hs.log(0)
    code, out, err = run_cli(sim, hs.ns[2], "cluster", "show", "--json", "--etcd", etcd.url,
                             "--cluster", "test")
    assert code == 0, err
    assert {r["host"]: r["mesh_vnis"] for r in json.loads(out)} == {
        "h0": [10, 20], "h1": [10, 20], "h2": [10]}
