"""A real etcd (Debian's etcd-server, /usr/bin/etcd) in its own network
namespace on a Sim's fabric, and cluster members as real processes.

    with Sim() as sim:
        sim.fabric()
        e = Etcd(sim)                      # namespace <prefix>-etcd, 10.99.0.250 on the fabric
        e.start()                          # waits until it answers; sim.cleanup() kills it
        h0 = sim.host("h0", "10.99.0.1/24")
        m = Member(sim, h0, "h0", e.url, vtep="10.99.0.1")
        m.wait(lambda hosts: "h0" in hosts)
        e.freeze(); e.thaw(); e.stop(); e.start(); e.compact()

``Etcd`` (bpfnet.demos.cluster, shared with the demo and the bench) listens
only on its namespace's address, keeps its data in a temporary directory
(removed at cleanup) and compacts its history by itself
(``--auto-compaction-mode revision``). It is started with a setns() in the
child (sim.spawn), never through ``ip netns exec``. Its admin calls
(``python -m bpfnet.cluster admin``) are processes in etcd's namespace: the
test process itself never opens a gRPC channel (gRPC's threads keep the
namespace they were born in).
"""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from bpfnet.demos.cluster import ETCD, Etcd  # the server, shared with demo and bench

PY = sys.executable


@pytest.fixture
def etcd(sim):
    """etcd started on ``sim``'s fabric (made here), stopped with it.
    Test modules take it with ``from etcd import etcd``."""
    return start_etcd(sim)


def start_etcd(sim) -> Etcd:
    """etcd on ``sim``'s fabric (made if there is none yet: a topology
    builder may have made it), stopped with the Sim."""
    from conftest import need, need_root
    need_root()
    need(os.access(ETCD, os.X_OK), f"needs {ETCD} (Debian's etcd-server)")
    if getattr(sim, "_fabric", None) is None:
        sim.fabric()
    e = Etcd(sim)
    e.start()
    return e


class Member:
    """``python -m bpfnet.cluster member`` (one Membership) as a process in ``ns``:
    each view it prints is kept with the time it arrived."""

    def __init__(self, sim, ns: str | None, host: str, url: str, vtep: str, port: int = 4789,
                 bridge_vnis=(), mesh_vnis=(10,), ttl: int = 10, cluster: str = "test",
                 netns: str | None = None, no_revoke: bool = False, macs=None):
        self.host = host
        self.record = {"vtep": vtep, "port": port, "bridge_vnis": list(bridge_vnis),
                       "mesh_vnis": list(mesh_vnis)}
        argv = [PY, "-m", "bpfnet.cluster", "member", "--etcd", url, "--cluster", cluster,
                "--host", host, "--ttl", str(ttl), "--record", json.dumps(self.record)]
        if netns:
            argv += ["--netns", netns]
        if no_revoke:
            argv += ["--no-revoke"]
        if macs is not None:  # [(vni, mac, [ip, ...]), ...]: publishes them, prints "macs" views
            argv += ["--macs", json.dumps([list(m) for m in macs])]
        kw = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if ns is None:  # started where the test runs; --netns moves its thread
            self.proc = subprocess.Popen(argv, start_new_session=True, **kw)
            sim.procs.append(self.proc)
        else:
            self.proc = sim.spawn(ns, argv, **kw)
        self.lines: queue.Queue = queue.Queue()
        self.events: list[dict] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def _read_err(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip())

    def _next(self, timeout: float) -> dict | None:
        try:
            ev = self.lines.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None
        ev["seen"] = time.time()
        self.events.append(ev)
        return ev

    def wait(self, pred, timeout: float = 15, kind: str = "hosts") -> dict:
        """Waits for the first new event of ``kind`` whose payload
        (``hosts``, or ``health``) satisfies ``pred``; returns the event."""
        end = time.monotonic() + timeout
        for ev in self._unread(kind):
            if pred(ev.get(kind, ev)):
                return ev
        while True:
            ev = self._next(end - time.monotonic())
            if ev is None:
                raise AssertionError(f"{self.host}: no {kind} event as expected within {timeout} s; "
                                     f"last events {self.events[-3:]}; stderr {self.stderr[-5:]}")
            if ev["event"] == kind and pred(ev.get(kind, ev)):
                self._cursor = len(self.events)
                return ev

    _cursor = 0

    def _unread(self, kind):
        evs = self.events[self._cursor:]
        self._cursor = len(self.events)
        return [e for e in evs if e["event"] == kind]

    def view(self) -> dict:
        """The last view seen (drains what arrived)."""
        while self._next(0) is not None:
            pass
        hs = [e for e in self.events if e["event"] == "hosts"]
        return hs[-1]["hosts"] if hs else {}

    def state(self, timeout: float = 5) -> dict:
        """SIGUSR1: the member prints health, hosts and its threads' namespaces."""
        self.proc.send_signal(signal.SIGUSR1)
        return self.wait(lambda _: True, timeout, kind="state")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(5)

    def stop(self) -> dict:
        self.proc.terminate()
        try:
            ev = self.wait(lambda _: True, 10, kind="stopped")
        finally:
            self.proc.wait(10)
        return ev
