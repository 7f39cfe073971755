"""The monitor's page in a real headless browser (Debian's chromium), driven
over the DevTools protocol on --remote-debugging-pipe (fds 3 and 4, JSON
messages ended by NUL): no Playwright, no websocket, stdlib only.

The server (bpfnet.ui.server.UiServer) runs in this process on a free port of
127.0.0.1, fed by a fixed snapshot; the browser reaches nothing else (its
resolver maps every other name to nothing). Checked: the page loads with no
script error, draws one chord group per outer host, and a real mouse click
on a host shows that host's traffic by inner IP.

BPFNET_UI_SCREENSHOT=FILE.png also saves a screenshot of each view
(FILE.png: hosts, FILE-inner.png: the breakdown).
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import serving, need

from bpfnet.ui.server import UiServer, listen_socket

CHROMIUM = os.environ.get("BPFNET_CHROMIUM", "/usr/bin/chromium")
HOSTS = ["10.99.0.1", "10.99.0.2", "10.99.0.3", "10.99.0.4"]
GROUP = "239.1.1.1"


def flow(vni, osip, odip, isip, idip, pkts, nbytes):
    return {"vni": vni, "outer_sip": osip, "outer_dip": odip, "inner_sip": isip,
            "inner_dip": idip, "tx_pkts": pkts, "tx_bytes": nbytes,
            "rx_pkts": pkts, "rx_bytes": nbytes}


def seed_rows() -> list[dict]:
    """h0 (10.99.0.1) talks to three hosts in two VNIs, plus a flood to the group."""
    rows = []
    for vni in (10, 20):
        for i, peer in enumerate(HOSTS[1:], 1):
            rows.append(flow(vni, HOSTS[0], peer, f"192.168.{vni}.1", f"192.168.{vni}.{i + 1}",
                             20 * i, 148 * 20 * i * (vni // 10)))
    rows.append(flow(10, HOSTS[0], GROUP, "0.0.0.0", "0.0.0.0", 3, 270))
    # a conversation h0 is not part of: h1 <-> h2
    rows.append(flow(20, HOSTS[1], HOSTS[2], "192.168.20.2", "192.168.20.3", 5, 740))
    return rows


class FixedSource:
    def __init__(self, rows):
        self.rows = rows

    def snapshot(self):
        return {"flows": self.rows,
                "status": {"namespace": "test", "device": "eth0", "port": 4789,
                           "flows": len(self.rows), "max_flows": 65536,
                           "inserts": len(self.rows), "evicted": 0, "counters": {}}}


class Browser:
    """Headless chromium with a DevTools pipe; one page."""

    def __init__(self, timeout: float = 60):
        self.deadline = time.monotonic() + timeout
        self.tmp = tempfile.mkdtemp(prefix="bpfnet-chromium-")
        cmd_r, self._cmd_w = os.pipe()
        self._res_r, res_w = os.pipe()

        def fds():  # the child's fd 3 reads commands, fd 4 writes results
            a = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(res_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--disable-extensions",
             "--disable-dev-shm-usage", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
             f"--user-data-dir={self.tmp}", "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=fds, pass_fds=(3, 4))
        os.close(cmd_r)
        os.close(res_w)
        self._buf = b""
        self._id = 0
        self.session = None
        self.errors: list[str] = []

    def close(self):
        try:
            if self.proc.poll() is None:
                try:
                    self.call("Browser.close", timeout=5)
                except Exception:  # noqa: BLE001 -- killed below anyway
                    pass
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
        finally:
            for fd in (self._cmd_w, self._res_r):
                try:
                    os.close(fd)
                except OSError:
                    pass
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _read_message(self, until: float) -> dict:
        while b"\0" not in self._buf:
            left = min(until, self.deadline) - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from chromium")
            r, _, _ = select.select([self._res_r], [], [], left)
            if r:
                chunk = os.read(self._res_r, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed its DevTools pipe")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, session: bool = True,
             timeout: float = 20) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        until = time.monotonic() + timeout
        while True:
            m = self._read_message(until)
            if m.get("method") == "Runtime.exceptionThrown":
                self.errors.append(json.dumps(m["params"]["exceptionDetails"])[:500])
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})

    def open(self, url: str, width: int = 1300, height: int = 850):
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target["targetId"], "flatten": True},
                                 session=False)["sessionId"]
        self.call("Runtime.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        self.call("Page.navigate", {"url": url})

    def eval(self, expr: str):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait(self, expr: str, timeout: float = 20):
        """Polls ``expr`` until it is truthy; returns its value."""
        end = time.monotonic() + timeout
        while True:
            try:
                v = self.eval(expr)
            except RuntimeError:  # e.g. the document is not there yet
                v = None
            if v:
                return v
            if time.monotonic() > end:
                raise TimeoutError(f"still false: {expr}")
            time.sleep(0.1)

    def click(self, x: float, y: float):
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent",
                      {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})

    def screenshot(self, path: str):
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))


@pytest.fixture
def server():
    yield from serving(UiServer(listen_socket("127.0.0.1", 0), FixedSource(seed_rows())))


@pytest.fixture
def browser():
    need(os.path.exists(CHROMIUM), f"needs {CHROMIUM} (apt-get install chromium)")
    b = Browser()
    try:
        yield b
    finally:
        b.close()


GROUPS_JS = ("JSON.stringify(Array.from(document.querySelectorAll('#chord g.group:not(.exiting)'))"
             ".map(g => g.getAttribute('data-ip')).sort())")

# the screen position of the middle of a group's arc, from its d3 datum
CLICK_JS = """(() => {
  const g = document.querySelector('#chord g.group[data-ip="%s"]');
  const d = g.__data__, a = (d.startAngle + d.endAngle) / 2;
  const p = g.querySelector('path'), box = p.ownerSVGElement;
  const r = 206, pt = box.createSVGPoint();
  pt.x = r * Math.sin(a); pt.y = -r * Math.cos(a);
  const s = pt.matrixTransform(box.getScreenCTM());
  return [s.x, s.y];
})()"""


def groups(b) -> list[str]:
    return json.loads(b.eval(GROUPS_JS))


def settle(b, want: list[str], timeout: float = 20):
    """Waits until the drawn groups are exactly ``want`` (transitions done)."""
    end = time.monotonic() + timeout
    while groups(b) != sorted(want):
        if time.monotonic() > end:
            raise AssertionError(f"groups {groups(b)} != {sorted(want)}")
        time.sleep(0.1)


def test_page_draws_hosts_and_breaks_one_down(server, browser):
    b = browser
    b.open(f"http://127.0.0.1:{server.server_port}/?interval=400")
    b.wait("document.body && document.body.dataset.renders >= 1")
    # one group per outer host, the multicast group included
    settle(b, HOSTS + [GROUP])
    assert b.eval("document.body.dataset.view") == "hosts"
    assert b.eval("document.getElementById('empty').hidden") is True
    # the VNI selector offers the VNIs seen
    assert b.eval("Array.from(document.querySelectorAll('#vni option')).map(o => o.value)") \
        == ["all", "10", "20"]
    # the group's size is the bytes it exchanged (both directions)
    want = sum(r["tx_bytes"] + r["rx_bytes"] for r in seed_rows()
               if "10.99.0.2" in (r["outer_sip"], r["outer_dip"]))
    assert float(b.eval("document.querySelector('#chord g.group[data-ip=\"10.99.0.2\"]')"
                        ".getAttribute('data-value')")) == want
    shot = os.environ.get("BPFNET_UI_SCREENSHOT")
    if shot:
        b.screenshot(shot)

    x, y = b.eval(CLICK_JS % "10.99.0.2")
    b.click(x, y)
    b.wait("document.body.dataset.view === 'inner'")
    # 10.99.0.2's traffic by inner IP: its tenants and their peers
    inner = sorted({ip for r in seed_rows() if "10.99.0.2" in (r["outer_sip"], r["outer_dip"])
                    for ip in (r["inner_sip"], r["inner_dip"])})
    settle(b, inner)
    cells = b.eval("Array.from(document.querySelectorAll('#table.breakdown tbody tr'))"
                   ".map(tr => Array.from(tr.cells).map(td => td.textContent))")
    assert len(cells) == 3  # vni 10 and 20 with 10.99.0.1, vni 20 with 10.99.0.3
    assert {(c[0], c[1], c[2], c[3]) for c in cells} == {
        ("10", "10.99.0.1", "192.168.10.1", "192.168.10.2"),
        ("20", "10.99.0.1", "192.168.20.1", "192.168.20.2"),
        ("20", "10.99.0.3", "192.168.20.2", "192.168.20.3")}
    assert "10.99.0.2 by inner IP" in b.eval("document.getElementById('title').textContent")
    if shot:
        b.screenshot(shot.replace(".png", "-inner.png"))

    # back to the hosts, then one VNI only: VNI 10 has no h1<->h2 ribbon
    b.eval("document.getElementById('back').click()")
    settle(b, HOSTS + [GROUP])
    b.eval("(() => { const s = document.getElementById('vni'); s.value = '10';"
           " s.dispatchEvent(new Event('change')); })()")
    b.wait("document.querySelectorAll('#chord .ribbons path').length === 4")
    assert b.errors == []


def test_page_empty_monitor(browser):
    srv = UiServer(listen_socket("127.0.0.1", 0), FixedSource([]))
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        browser.open(f"http://127.0.0.1:{srv.server_port}/")
        browser.wait("document.body && document.body.dataset.renders >= 1")
        assert groups(browser) == []
        assert browser.eval("document.getElementById('empty').hidden") is False
        assert "no VXLAN traffic" in browser.eval("document.getElementById('empty').textContent")
        assert browser.errors == []
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)
