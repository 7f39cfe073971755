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

etcd listens only on its namespace's address, keeps its data in a temporary
directory (removed at cleanup) and compacts its history by itself
(``--auto-compaction-mode revision``). It is started with a setns() in the
child (sim.spawn), never through ``ip netns exec``.

Run as a script (``python tests/etcd.py URL status|compact|revision|put KEY VALUE|del KEY``)
it is the tests' etcd admin, through aetcd, one process per call, in the
namespace it is started in: the test process itself never opens a gRPC
channel (gRPC's threads keep the namespace they were born in).
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ETCD = "/usr/bin/etcd"
ADDR = "10.99.0.250"
PY = sys.executable
HERE = os.path.abspath(__file__)


class Etcd:
    def __init__(self, sim, addr: str = ADDR, short: str = "etcd", cidr: int = 24):
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
        assert self.proc is None or self.proc.poll() is not None, "etcd is running"
        with open(self.log, "a") as log:
            self.proc = self.sim.spawn(self.ns, self.argv(), stdout=log, stderr=subprocess.STDOUT)
        self.frozen = False
        self.admin("status", "--wait", str(wait), timeout=wait + 10)

    def stop(self) -> None:
        """SIGTERM (a clean stop), as an operator's `systemctl stop`."""
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
        """SIGSTOP: the sockets stay open, nothing answers."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.frozen and self.proc is not None:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.frozen = False

    def admin(self, *argv: str, timeout: float = 20) -> dict:
        """Runs this file as the etcd admin in etcd's namespace; its JSON answer."""
        r = self.sim.run(self.ns, [PY, HERE, self.url, *argv], timeout=timeout)
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


class Member:
    """``python -m bpfnet.cluster`` (one Membership) as a process in ``ns``:
    each view it prints is kept with the time it arrived."""

    def __init__(self, sim, ns: str | None, host: str, url: str, vtep: str, port: int = 4789,
                 bridge_vnis=(), mesh_vnis=(10,), ttl: int = 10, cluster: str = "test",
                 netns: str | None = None, no_revoke: bool = False):
        self.host = host
        self.record = {"vtep": vtep, "port": port, "bridge_vnis": list(bridge_vnis),
                       "mesh_vnis": list(mesh_vnis)}
        argv = [PY, "-m", "bpfnet.cluster", "--etcd", url, "--cluster", cluster, "--host", host,
                "--ttl", str(ttl), "--record", json.dumps(self.record)]
        if netns:
            argv += ["--netns", netns]
        if no_revoke:
            argv += ["--no-revoke"]
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


# --- the admin script ------------------------------------------------------------------

def _admin(argv) -> int:
    import asyncio

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "python"))
    from bpfnet.cluster import client
    url, cmd, *rest = argv

    async def main():
        c = client(url)
        try:
            if cmd == "status":
                wait = float(rest[1]) if rest[:1] == ["--wait"] else 0
                end = time.monotonic() + wait
                while True:
                    try:
                        st = await c.status()
                        return {"version": st.version, "raft_index": st.raft_index}
                    except Exception:  # noqa: BLE001 -- not up yet
                        if time.monotonic() > end:
                            raise
                        await c.close()
                        await asyncio.sleep(0.2)
            if cmd in ("revision", "compact"):
                r = await c.get(b"/")
                rev = (await c.get_prefix(b"/")).header.revision if r is None else r.header.revision
                if cmd == "revision":
                    return {"revision": rev}
                await c.compact(rev, physical=True)
                return {"compacted": rev}
            if cmd == "put":
                r = await c.put(rest[0].encode(), rest[1].encode())
                return {"revision": r.header.revision}
            if cmd == "del":
                r = await c.delete(rest[0].encode())
                return {"deleted": bool(r and r.deleted)}
            raise SystemExit(f"unknown admin command {cmd!r}")
        finally:
            await c.close()
    print(json.dumps(asyncio.run(main())))
    return 0


if __name__ == "__main__":
    sys.exit(_admin(sys.argv[1:]))
