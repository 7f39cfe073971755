"""Membership from etcd: etcd in its own namespace on the fabric, five hosts
each running ``bpfnetctl --netns hN agent -f hN.toml``; every host's mesh VNI
10 has ``peers = "cluster"``, so the agents make the full mesh from etcd.

     etcd 10.99.0.250:2379   (Debian's etcd-server, data in a temporary dir)
       |
     fabric (sw0) --- h0 10.99.0.1 --- h1 10.99.0.2 --- ... --- h4 10.99.0.5
                      agent, br10, tenant 192.168.0.1 ... 192.168.0.5

The demo pings every pair of tenants; then h4 leaves (its agent stops and
revokes its lease), h5 joins (its agent starts) and h3 dies (kill -9: its
lease runs out), and it prints how long each took until every other host had
exactly the right peers, then pings every pair again.

``Etcd`` (the server in a namespace) is shared with the tests
(tests/etcd.py) and the bench (bench/cluster.py).
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from . import answered, finish
from ..sim import Sim, tenant_ip, tenant_mac, underlay_ip

ETCD = "/usr/bin/etcd"
ETCD_ADDR = "10.99.0.250"
PY = sys.executable
VNI = 10
CLUSTER = "demo"


class Etcd:
    """etcd in namespace ``<prefix>-etcd`` on the Sim's fabric, listening only
    on ``addr`` there; data in a temporary directory; removed with the Sim."""

    def __init__(self, sim: Sim, addr: str = ETCD_ADDR, short: str = "etcd", cidr: int = 24):
        self.sim = sim
        self.addr = addr
        self.url = f"http://{addr}:2379"
        self.ns = sim.host(short, f"{addr}/{cidr}")
        self.dir = tempfile.mkdtemp(prefix="bpfnet-etcd-")
        self.proc: subprocess.Popen | None = None
        self.frozen = False
        self.log = os.path.join(self.dir, "etcd.log")
        sim.on_cleanup(self.cleanup)

    def argv(self) -> list[str]:
        peer = f"http://{self.addr}:2380"
        return [ETCD, "--name", "e0", "--data-dir", os.path.join(self.dir, "data"),
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"e0={peer}", "--initial-cluster-state", "new",
                "--auto-compaction-mode", "revision", "--auto-compaction-retention", "10000",
                "--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn"]

    def start(self, wait: float = 20) -> None:
        """Starts etcd (setns in the child, no ``ip netns exec``) and waits
        until it answers."""
        if not os.access(ETCD, os.X_OK):
            raise RuntimeError(f"{ETCD} is missing: apt-get install etcd-server (make deps)")
        assert self.proc is None or self.proc.poll() is not None, "etcd is running"
        with open(self.log, "a") as log:
            self.proc = self.sim.spawn(self.ns, self.argv(), stdout=log, stderr=subprocess.STDOUT)
        self.frozen = False
        self.admin("status", "--wait", str(wait), timeout=wait + 10)

    def stop(self) -> None:
        """SIGTERM, a clean stop (as ``systemctl stop etcd``)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.thaw()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def freeze(self) -> None:
        """SIGSTOP: its sockets stay open, nothing answers."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.frozen and self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.frozen = False

    def admin(self, *argv: str, timeout: float = 20) -> dict:
        """``python -m bpfnet.cluster admin`` in etcd's namespace (a process:
        this one never opens a gRPC channel, whose threads would stay in
        whatever namespace they were born in)."""
        r = self.sim.run(self.ns, [PY, "-m", "bpfnet.cluster", "admin", self.url, *argv],
                         timeout=timeout)
        if r.returncode:
            raise RuntimeError(f"etcd admin {' '.join(argv)}: exit {r.returncode}: "
                               f"{r.stderr.strip()[-2000:]}")
        return json.loads(r.stdout)

    def compact(self) -> int:
        """Compacts the history up to the current revision; returns it."""
        return self.admin("compact")["compacted"]

    def revision(self) -> int:
        return self.admin("revision")["revision"]

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


# --- hosts with agents ---------------------------------------------------------------

def config(i: int, etcd_url: str, ttl: int, vnis=(VNI,), cluster: str = CLUSTER) -> str:
    """hN.toml: this host's mesh VNIs with their peers from the cluster."""
    items = ",\n        ".join(f'{{ vni = {v}, bridge = "br{v}", peers = "cluster" }}' for v in vnis)
    return (f'[host]\nname = "h{i}"\n\n'
            f'[cluster]\netcd = ["{etcd_url}"]\nname = "{cluster}"\nttl = {ttl}\n\n'
            f'[mesh]\nlocal = "{underlay_ip(i)}"\nvnis = [ {items} ]\n')


class Hosts:
    """Host namespaces on the Sim's fabric, each with a config file, a tenant
    per VNI and (once started) an agent process."""

    def __init__(self, sim: Sim, etcd: Etcd, ttl: int = 5, vnis=(VNI,), tenants: bool = True,
                 cluster: str = CLUSTER):
        self.sim, self.etcd, self.ttl, self.vnis = sim, etcd, ttl, tuple(vnis)
        self.tenants_on, self.cluster = tenants, cluster
        self.dir = tempfile.mkdtemp(prefix="bpfnet-cluster-")
        sim.on_cleanup(shutil.rmtree, self.dir, True)
        self.ns: dict[int, str] = {}
        self.tenants: dict[tuple, str] = {}
        self.agents: dict[int, subprocess.Popen] = {}
        self.logs: dict[int, str] = {}
        self.lines: dict[int, list] = {}

    def add(self, i: int) -> str:
        sim = self.sim
        h = sim.host(f"h{i}", f"{underlay_ip(i)}/24")
        sim.quiet(h)
        self.ns[i] = h
        if self.tenants_on:
            for v in self.vnis:
                self.tenants[(i, v)] = sim.tenant(h, f"h{i}v{v}", f"{tenant_ip(i)}/24", f"br{v}",
                                                  mac=tenant_mac(i, v))
        with open(self.file(i), "w") as f:
            f.write(config(i, self.etcd.url, self.ttl, self.vnis, self.cluster))
        return h

    def file(self, i: int) -> str:
        return os.path.join(self.dir, f"h{i}.toml")

    def argv(self, i: int, extra=()) -> list[str]:
        return [PY, "-m", "bpfnet.cli", "--pin-root", self.sim.pin_root, "--netns", self.ns[i],
                "agent", "-f", self.file(i), *extra]

    def start(self, i: int, extra=()) -> subprocess.Popen:
        """``bpfnetctl --netns hN agent -f hN.toml [extra]``. Its log lines
        are kept with the time each arrived (``lines[i]``) and written to
        ``logs[i]``."""
        self.logs[i] = os.path.join(self.dir, f"h{i}.log")
        p = subprocess.Popen(self.argv(i, extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)
        self.sim.procs.append(p)
        self.agents[i] = p
        lines = self.lines.setdefault(i, [])
        threading.Thread(target=self._read, args=(p, self.logs[i], lines), daemon=True).start()
        return p

    @staticmethod
    def _read(p, path: str, lines: list) -> None:
        with open(path, "a") as log:
            for line in p.stdout:
                lines.append((time.monotonic(), line.rstrip("\n")))
                log.write(line)
                log.flush()

    def logged(self, i: int, text: str, after: float, timeout: float = 30) -> float | None:
        """When host i's agent logged a line containing ``text`` (after
        ``after``, monotonic), waiting up to ``timeout``; None if it did not."""
        end = time.monotonic() + timeout
        while True:
            for t, line in list(self.lines.get(i, ())):
                if t >= after and text in line:
                    return t
            if time.monotonic() > end:
                return None
            time.sleep(0.01)

    def stop(self, i: int, sig: int = signal.SIGTERM, wait: float = 15) -> None:
        p = self.agents.pop(i)
        p.send_signal(sig)
        try:
            p.wait(wait)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)

    def remove(self, i: int) -> None:
        """The host is gone (its namespace with it)."""
        if i in self.agents:
            self.stop(i, signal.SIGKILL)
        from pyroute2 import netns
        for key in [k for k in self.tenants if k[0] == i]:
            ns = self.tenants.pop(key)
            netns.remove(ns)
            self.sim.namespaces.remove(ns)
        ns = self.ns.pop(i)
        netns.remove(ns)
        self.sim.namespaces.remove(ns)

    def log(self, i: int, lines: int = 20) -> str:
        try:
            with open(self.logs[i]) as f:
                return "".join(f.readlines()[-lines:])
        except (KeyError, OSError):
            return ""

    # --- what the data path has ------------------------------------------------------
    def peers(self, i: int) -> set | None:
        """{(vni, remote)} of host i's mesh (read from its pinned map), None
        if the mesh is not loaded yet."""
        from .. import abi
        from ..maps import Map
        path = os.path.join(self.sim.pin_root, self.ns[i], "mesh", "mesh_peers")
        try:
            m = Map.pinned(path, abi.MeshPeerKey, abi.MeshPeerVal)
        except OSError:
            return None
        try:
            return {(k.vni, str(abi.ip_unpack(k.remote))) for k, v in m.items() if v.port}
        finally:
            m.close()

    def want(self, i: int, live) -> set:
        return {(v, underlay_ip(j)) for v in self.vnis for j in live if j != i}

    def converged(self, live) -> bool:
        return all(self.peers(i) == self.want(i, live) for i in live)

    def wait_converged(self, live, timeout: float = 30, step: float = 0.02) -> float | None:
        """Seconds until every live host has exactly the others as peers
        (polled every ``step``), or None after ``timeout``."""
        t0 = time.monotonic()
        while True:
            if self.converged(live):
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout or any(
                    self.agents[i].poll() is not None for i in live if i in self.agents):
                return None
            time.sleep(step)


def ping_all(sim: Sim, hosts: Hosts, live, count: int = 2) -> list[dict]:
    rows = []
    for a, b in itertools.permutations(sorted(live), 2):
        for v in hosts.vnis:
            src = hosts.tenants[(a, v)]
            sim.ping_until(src, tenant_ip(b), tries=5)
            got = sim.ping(src, tenant_ip(b), count=count, interval=0.05)
            rows.append({"vni": v, "from": f"h{a}", "to": f"h{b}", "dst": tenant_ip(b),
                         "sent": count, "received": got})
    return rows


def run(keep: bool, say, prefix: str | None = None, n_hosts: int = 5, ttl: int = 5) -> int:
    from ..cli import table
    sim = Sim(prefix=prefix)
    try:
        say(f"# cluster demo: etcd + {n_hosts} hosts with agents, mesh VNI {VNI} with "
            f'peers = "cluster", run {sim.prefix}')
        sim.fabric()
        etcd = Etcd(sim)
        etcd.start()
        say(f"# etcd {etcd.url} in namespace {etcd.ns} ({ETCD}, data in {etcd.dir})")
        hosts = Hosts(sim, etcd, ttl=ttl)
        live = list(range(n_hosts))
        for i in live:
            hosts.add(i)
        say(f"$ cat {hosts.file(0)}")
        with open(hosts.file(0)) as f:
            say(f.read().rstrip())
        t0 = time.monotonic()
        for i in live:
            say(f"$ bpfnetctl --netns {hosts.ns[i]} agent -f h{i}.toml &")
            hosts.start(i)
        took = hosts.wait_converged(live, timeout=60)
        if took is None:
            say("# the agents did not converge within 60 s; h0's log:")
            say(hosts.log(0))
            return 1
        say(f"# full mesh from etcd after {time.monotonic() - t0:.2f} s (agents started)")
        say("")
        say(f"$ bpfnetctl --netns {hosts.ns[0]} cluster show -f h0.toml")
        # a process: this one stays free of gRPC (its threads keep their namespace)
        r = subprocess.run([PY, "-m", "bpfnet.cli", "--netns", hosts.ns[0], "cluster", "show",
                            "-f", hosts.file(0)], capture_output=True, text=True, timeout=30)
        say((r.stdout or r.stderr).rstrip())
        say("")
        say("# every pair of tenants pings (VNI 10, the same subnet everywhere)")
        rows = ping_all(sim, hosts, live)
        say(table(rows))
        ok = all(r["received"] == r["sent"] for r in rows)

        events = []

        def event(what: str, t: float, timeout: float) -> None:
            took = hosts.wait_converged(live, timeout=timeout)
            events.append({"event": what, "hosts": len(live),
                           "converged_s": None if took is None else round(time.monotonic() - t, 2)})

        leaver, joiner, victim = live[-1], n_hosts, live[-2]
        say("")
        say(f"# h{leaver} leaves: its agent stops (SIGTERM revokes its lease)")
        t = time.monotonic()
        hosts.stop(leaver)
        live.remove(leaver)
        event(f"h{leaver} leaves (agent stopped)", t, ttl + 30)
        hosts.remove(leaver)
        say(f"# h{joiner} joins: a new host, its agent starts")
        hosts.add(joiner)
        t = time.monotonic()
        hosts.start(joiner)
        live.append(joiner)
        event(f"h{joiner} joins (agent started)", t, 60)
        say(f"# h{victim} dies: its agent is killed (kill -9), its lease runs out after {ttl} s")
        t = time.monotonic()
        hosts.remove(victim)
        live.remove(victim)
        event(f"h{victim} dies (kill -9, ttl {ttl} s)", t, ttl + 30)
        say("# convergence: until every other host has exactly the right peers")
        say(table(events, ["event", "hosts", "converged_s"]))
        ok = ok and all(e["converged_s"] is not None for e in events)
        say("")
        say("# every pair of live hosts pings again")
        rows2 = ping_all(sim, hosts, live)
        say(table(rows2))
        ok = ok and all(r["received"] == r["sent"] for r in rows2)
        rows += rows2
        say("")
        say(f"$ bpfnetctl --netns {hosts.ns[0]} peer show")
        _, out, _ = sim.bpfnetctl("peer", "show", netns_=hosts.ns[0])
        say(out.rstrip())
        say("")
        return finish(sim, say, ok, answered(rows) + f", {len(events)} membership changes "
                      "converged", keep)
    finally:
        sim.cleanup()
