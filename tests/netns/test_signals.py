"""Long-running commands stopped as `kill`, `timeout`, systemd or a closed
terminal stop them: the real ./bpfnetctl process gets SIGTERM (SIGHUP,
SIGINT) once it is up, and leaves nothing behind.

- `demo NAME --keep --prefix P` for every demo (the cluster's agents and
  etcd included): once it says "# kept", a
  signal makes it exit 0; no namespace P-* remains, no pin dir
  /sys/fs/bpf/bpfnet-P, and no process is left in the namespaces it had
  (found by their inodes, as `ip netns pids` does).
- `demo mesh` cut short while it builds: exit 128 + 15, one error line,
  nothing left.
- `ui --listen 127.0.0.1:PORT` on a loaded monitor: exit 0 once the page
  answers, "ui: stopped (SIG...)", the port closed.
- `stats --watch 1 --out DIR`: exit 0, both files complete JSON (the flows
  of a VXLAN ping), nothing else in DIR.
- bpfnet.signals itself, in this process (no root): where a signal raises,
  where it returns, deferred sections, a second signal, reload mode.
"""
from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid

import pytest

from conftest import BPFNETCTL, need, need_root, need_tool

NETNS_DIR = "/var/run/netns"
UP_TIMEOUT = 300     # a demo's build and checks on a loaded 2-core machine
EXIT_TIMEOUT = 60    # its cleanup


class Cli:
    """./bpfnetctl as a process; its stdout read line by line in a thread."""

    def __init__(self, argv):
        self.err = tempfile.TemporaryFile("w+")
        # PYTHONFAULTHANDLER: a process that hangs is sent SIGABRT and shows
        # where each of its threads was
        self.p = subprocess.Popen([BPFNETCTL, *argv], stdout=subprocess.PIPE, stderr=self.err,
                                  text=True, bufsize=1,
                                  env={**os.environ, "PYTHONFAULTHANDLER": "1"})
        self.lines: list[str] = []
        self._q: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def wait_line(self, pattern: str, timeout: float = UP_TIMEOUT) -> str:
        """The first stdout line matching ``pattern``; fails at EOF or timeout."""
        end = time.monotonic() + timeout
        while True:
            try:
                line = self._q.get(timeout=max(0.1, end - time.monotonic()))
            except queue.Empty:
                line = None
                if time.monotonic() < end:
                    continue
                pytest.fail(f"no line {pattern!r} in {timeout} s:\n" + self.output())
            if line is None:
                self.p.wait(10)
                pytest.fail(f"exit {self.p.returncode} before {pattern!r}:\n" + self.output())
            self.lines.append(line)
            if re.search(pattern, line):
                return line

    def stop(self, sig) -> int:
        """Sends ``sig``; returns the exit status (all output read)."""
        self.p.send_signal(sig)
        try:
            code = self.p.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.p.send_signal(signal.SIGABRT)
            self.p.wait(10)
            pytest.fail(f"still running {EXIT_TIMEOUT} s after {signal.Signals(sig).name}:\n"
                        + self.output())
        while True:
            line = self._q.get(timeout=10)
            if line is None:
                break
            self.lines.append(line)
        return code

    def stderr(self) -> str:
        self.err.seek(0)
        return self.err.read()

    def output(self) -> str:
        return "\n".join(self.lines) + "\n--- stderr:\n" + self.stderr()

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(10)


def namespaces(prefix: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix + "-"))
    except FileNotFoundError:
        return []


def ns_ids(names) -> set:
    ids = set()
    for n in names:
        st = os.stat(os.path.join(NETNS_DIR, n))
        ids.add((st.st_dev, st.st_ino))
    return ids


def procs_in(ids: set) -> list[int]:
    """Processes whose network namespace is one of ``ids``."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{pid}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in ids:
            out.append(int(pid))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 60):
    """GET ``url`` until it answers (bounded): (status, body)."""
    end = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.status, r.read()
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def demo_prefix():
    """A fresh prefix; whatever a failing run leaves under it is removed."""
    need_root()
    from bpfnet.sim import Sim
    prefix = f"sg{uuid.uuid4().hex[:6]}"
    try:
        yield prefix
    finally:
        Sim(prefix=prefix).cleanup()


def keep_and_stop(prefix: str, name: str, sig, extra=(), up=None):
    """Runs `demo NAME --keep --prefix PREFIX`, waits for it to be up, sends
    ``sig``, and checks that it exits 0 leaving nothing behind."""
    cli = Cli(["demo", name, "--keep", "--prefix", prefix, *extra])
    try:
        cli.wait_line(r"^# kept: namespaces " + prefix + r"-\*")
        if up:
            up()
        had = namespaces(prefix)
        assert had, cli.output()
        ids = ns_ids(had)
        assert os.path.isdir(f"/sys/fs/bpf/bpfnet-{prefix}")
        code = cli.stop(sig)
    finally:
        cli.kill()
    assert code == 0, cli.output()
    assert f"# {signal.Signals(sig).name}: removing the simulation" in cli.lines, cli.output()
    assert "PASS" in "\n".join(cli.lines) and cli.stderr() == "", cli.output()
    assert namespaces(prefix) == []
    assert not os.path.exists(f"/sys/fs/bpf/bpfnet-{prefix}")
    assert procs_in(ids) == []
    return cli


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT],
                         ids=["SIGTERM", "SIGHUP", "SIGINT"])
def test_demo_bridge_keep_stopped(demo_prefix, sig):
    keep_and_stop(demo_prefix, "bridge", sig)


@pytest.mark.parametrize("name", ["mesh", "gateway", "dhcp", "cluster"])
def test_demo_keep_stopped_by_sigterm(demo_prefix, name):
    if name == "dhcp":
        need_tool("dnsmasq")
        need_tool("dhclient")
    if name == "cluster":
        from bpfnet.demos.cluster import ETCD
        need(os.access(ETCD, os.X_OK), f"needs {ETCD} (Debian's etcd-server)")
    keep_and_stop(demo_prefix, name, signal.SIGTERM)


def test_demo_monitor_keep_stopped_by_sigterm(demo_prefix):
    """The issue's case: the live page up, traffic rounds going, SIGTERM."""
    port = free_port()

    def up():
        status, body = get(f"http://127.0.0.1:{port}/status.json")
        assert status == 200 and json.loads(body)["device"] == "eth0"
    cli = keep_and_stop(demo_prefix, "monitor", signal.SIGTERM,
                        extra=("--listen", f"127.0.0.1:{port}"), up=up)
    assert any(f"http://127.0.0.1:{port}/" in ln for ln in cli.lines), cli.output()
    assert refused(port)


def test_demo_cut_short_while_building(demo_prefix):
    cli = Cli(["demo", "mesh", "--prefix", demo_prefix])
    try:
        cli.wait_line(r"^\$ bpfnetctl --netns " + demo_prefix + r"-h1 load mesh")
        code = cli.stop(signal.SIGTERM)
    finally:
        cli.kill()
    assert code == 128 + signal.SIGTERM, cli.output()
    assert cli.stderr() == ("bpfnetctl: error: demo: stopped by SIGTERM; "
                            "its namespaces and pins are removed\n"), cli.output()
    assert namespaces(demo_prefix) == []
    assert not os.path.exists(f"/sys/fs/bpf/bpfnet-{demo_prefix}")


def test_demo_prefix_in_use_refused(demo_prefix):
    """A demo removes every namespace of its prefix: one in use is refused."""
    from bpfnet.sim import Sim
    sim = Sim(prefix=demo_prefix)
    sim.ns("x")
    r = subprocess.run([BPFNETCTL, "demo", "bridge", "--prefix", demo_prefix],
                       capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == (f"bpfnetctl: error: demo: --prefix {demo_prefix}: namespace "
                        f"{demo_prefix}-x exists already\n")
    assert namespaces(demo_prefix) == [f"{demo_prefix}-x"]


@pytest.fixture
def monitored(sim):
    """h0 and h1 joined by kernel VXLAN (VNI 42) over eth0; the monitor on
    h0's eth0; 3 pings across so it has flows."""
    h0, h1 = sim.ns("h0"), sim.ns("h1")
    sim.veth(h0, "eth0", h1, "eth0")
    for i, h in enumerate((h0, h1)):
        sim.quiet(h)
        sim.addr(h, "eth0", f"10.96.0.{i + 1}/24")
    for i, h in enumerate((h0, h1)):
        with sim.ipr(h) as ipr:
            ipr.link("add", ifname="vx42", kind="vxlan", vxlan_id=42, vxlan_port=4789,
                     vxlan_group=f"10.96.0.{2 - i}", vxlan_local=f"10.96.0.{i + 1}",
                     vxlan_link=ipr.link_lookup(ifname="eth0")[0])
            ipr.link("set", index=ipr.link_lookup(ifname="vx42")[0], state="up")
        sim.addr(h, "vx42", f"192.168.96.{i + 1}/24")
    sim.bpfnetctl("load", "monitor", "--dev", "eth0", netns_=h0)
    assert sim.ping(h0, "192.168.96.2", count=3) == 3
    return sim, h0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT],
                         ids=["SIGTERM", "SIGHUP", "SIGINT"])
def test_ui_stopped(monitored, sig):
    sim, h0 = monitored
    port = free_port()
    cli = Cli(["--pin-root", sim.pin_root, "--netns", h0, "ui", "--listen", f"127.0.0.1:{port}"])
    try:
        cli.wait_line(rf"^ui: monitor of {h0} \(eth0\) at http://127\.0\.0\.1:{port}/ ", 60)
        status, body = get(f"http://127.0.0.1:{port}/tunnel.json")
        assert status == 200 and {r["vni"] for r in json.loads(body)} == {42}
        code = cli.stop(sig)
    finally:
        cli.kill()
    assert code == 0, cli.output()
    assert cli.lines[-1] == f"ui: stopped ({signal.Signals(sig).name})", cli.output()
    assert cli.stderr() == ""
    assert refused(port)
    # the monitor stays loaded: ui only reads it
    code, out, _ = sim.bpfnetctl("stats", "--json", netns_=h0)
    assert {r["vni"] for r in json.loads(out)} == {42}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stats_watch_stopped(monitored, tmp_path, sig):
    sim, h0 = monitored
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cli = Cli(["--pin-root", sim.pin_root, "--netns", h0, "stats", "--watch", "1",
               "--out", str(out_dir)])
    try:
        end = time.monotonic() + 60
        while not all((out_dir / f).exists() for f in ("tunnel.json", "tunnel-delta.json")):
            assert time.monotonic() < end and cli.p.poll() is None, cli.output()
            time.sleep(0.1)
        code = cli.stop(sig)
    finally:
        cli.kill()
    assert code == 0, cli.output()
    m = re.fullmatch(rf"stats: (\d+) rounds written to {re.escape(str(out_dir))}; "
                     rf"stopped by {signal.Signals(sig).name}", cli.lines[-1])
    assert m and int(m.group(1)) >= 1, cli.output()
    assert cli.stderr() == ""
    assert sorted(os.listdir(out_dir)) == ["tunnel-delta.json", "tunnel.json"]
    totals = json.loads((out_dir / "tunnel.json").read_text())
    pings = [r for r in totals if (r["inner_sip"], r["inner_dip"]) == ("192.168.96.1", "192.168.96.2")]
    assert [(r["vni"], r["tx_pkts"], r["rx_pkts"]) for r in pings] == [(42, 3, 3)], totals
    assert isinstance(json.loads((out_dir / "tunnel-delta.json").read_text()), list)


# --- bpfnet.signals in this process (pytest runs tests in the main thread) ---

def kill_self_later(sig, after: float = 0.1):
    t = threading.Timer(after, os.kill, (os.getpid(), sig))
    t.start()
    return t


def test_stopping_raises_where_working_and_restores_handlers():
    from bpfnet import signals
    before = {s: signal.getsignal(s) for s in signals.SIGNALS}
    with signals.stopping() as stop:
        with pytest.raises(signals.Stopped) as e:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        assert (e.value.signum, stop.name, str(e.value)) == (signal.SIGTERM, "SIGTERM",
                                                             "stopped by SIGTERM")
        assert isinstance(e.value, KeyboardInterrupt)
        os.kill(os.getpid(), signal.SIGINT)  # a second one: ignored, the cleanup goes on
        time.sleep(0.05)
        assert stop.signum == signal.SIGTERM
    assert {s: signal.getsignal(s) for s in signals.SIGNALS} == before
    assert signals.active() is None


def test_wait_returns_the_signal_or_none():
    from bpfnet import signals
    with signals.stopping() as stop:
        assert stop.wait(0.05) is None
        kill_self_later(signal.SIGHUP)
        assert stop.wait(30) == signal.SIGHUP and stop.stopped
        assert stop.wait(0) == signal.SIGHUP   # stays stopped


def test_deferred_section_raises_at_its_end():
    from bpfnet import signals
    done = []
    with signals.stopping():
        with pytest.raises(signals.Stopped):
            with signals.deferred():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
                done.append("section")
    assert done == ["section"]


def test_reload_mode_sighup_wakes_wait_without_stopping():
    from bpfnet import signals
    with signals.stopping(reload=True) as stop:
        kill_self_later(signal.SIGHUP)
        assert stop.wait(30) == signal.SIGHUP and not stop.stopped
        assert stop.wait(0.05) is None
        kill_self_later(signal.SIGTERM)
        assert stop.wait(30) == signal.SIGTERM and stop.stopped
