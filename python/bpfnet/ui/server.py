"""A small read-only HTTP server for the monitor's page.

    srv = UiServer(sock, MonitorSource(PinDir(root, "h0")))
    srv.serve_forever()

Routes (GET and HEAD only; anything else is 404, there is no directory
listing and no path is ever mapped onto the file system at request time):

    /                  the page (static/index.html)
    /static/NAME       the files shipped in static/, read once at start
    /tunnel.json       the flows, ``bpfnetctl stats --json``'s objects
    /status.json       flows, capacity, inserts, evictions, counters
    /metrics           Prometheus text format (see ui.metrics)

A server on a loopback address answers only requests whose Host header names
a loopback host, so a web page elsewhere cannot read it through DNS
rebinding.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from netaddr import AddrFormatError, IPAddress

from ..errors import BpfnetError, ConfigError
from . import metrics

log = logging.getLogger("bpfnet.ui")

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".txt": "text/plain; charset=utf-8",
         ".png": "image/png", ".svg": "image/svg+xml", ".json": "application/json"}
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def load_static(directory: str = STATIC_DIR) -> dict[str, tuple[bytes, str]]:
    """URL path -> (body, content type) for every regular file in ``directory``."""
    files = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if name.startswith(".") or not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            body = f.read()
        files[f"/static/{name}"] = (body, TYPES.get(os.path.splitext(name)[1],
                                                    "application/octet-stream"))
    if "/static/index.html" in files:
        files["/"] = files["/static/index.html"]
    return files


class MonitorSource:
    """Reads a loaded monitor's pins afresh for each request (a reload or an
    unload between two requests is seen), thread-safe."""

    def __init__(self, pins, device: str | None = None):
        self.pins = pins
        self.device = device
        self._lock = threading.Lock()

    def snapshot(self) -> dict:
        from ..functions.monitor import Monitor
        with self._lock:
            mon = Monitor(self.pins)
            try:
                mon.require_loaded()
                summary = mon.flow_summary()
                counters = mon.stats()
                cfg = mon.cfg()
                flows = mon.flows()
            finally:
                mon.close()
        return {"flows": flows,
                "status": {"namespace": self.pins.ns, "device": self.device,
                           "port": cfg.port or 4789, **summary, "counters": counters}}


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return IPAddress(host.strip("[]")).is_loopback()
    except (AddrFormatError, ValueError):
        return False


class Handler(BaseHTTPRequestHandler):
    server_version = "bpfnet-ui"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # no access log on stderr
        log.debug("%s " + fmt, self.address_string(), *args)

    def _send(self, code: int, body: bytes, ctype: str, extra: dict | None = None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for k, val in (extra or {}).items():
            self.send_header(k, val)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, code: int, msg: str):
        body = (json.dumps({"error": msg}) + "\n").encode()
        self._send(code, body, "application/json", {"Cache-Control": "no-store"})

    def _host_ok(self) -> bool:
        if not self.server.loopback_only:
            return True
        host = self.headers.get("Host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return _is_loopback(name)

    def do_GET(self):
        if not self._host_ok():
            return self._error(403, "Host header must name a loopback address")
        path = urlsplit(self.path).path
        static = self.server.static.get(path)
        if static is not None:
            body, ctype = static
            extra = {"Cache-Control": "no-cache"}
            if ctype.startswith("text/html"):
                extra["Content-Security-Policy"] = CSP
            return self._send(200, body, ctype, extra)
        if path in ("/tunnel.json", "/status.json", "/metrics"):
            try:
                snap = self.server.source.snapshot()
            except (BpfnetError, OSError) as e:
                return self._error(503, str(e))
            if path == "/metrics":
                body, ctype = metrics.render(snap, inner=self.server.inner_labels)
                return self._send(200, body, ctype, {"Cache-Control": "no-store"})
            data = snap["flows"] if path == "/tunnel.json" else snap["status"]
            return self._send(200, json.dumps(data).encode(), "application/json",
                              {"Cache-Control": "no-store"})
        return self._error(404, "not found")

    do_HEAD = do_GET

    def _refuse(self):
        self._error(405, "read-only: GET and HEAD only")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse


class SocketHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server over an already listening socket (made where
    the caller is, maybe in another namespace: commands/monitor.Listen)."""

    daemon_threads = True

    def __init__(self, sock: socket.socket, handler):
        super().__init__(sock.getsockname()[:2], handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.address_family = sock.family
        self.server_address = sock.getsockname()
        self.server_port = self.server_address[1]
        self.loopback_only = _is_loopback(str(self.server_address[0]))


class UiServer(SocketHTTPServer):
    """The page's server."""

    def __init__(self, sock: socket.socket, source, inner_labels: bool = False,
                 static_dir: str = STATIC_DIR):
        self.source = source
        self.inner_labels = inner_labels
        self.static = load_static(static_dir)
        super().__init__(sock, Handler)


def listen_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: any free port), in
    this thread's network namespace; ConfigError if the address is taken."""
    fam = socket.AF_INET6 if IPAddress(host).version == 6 else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(16)
    except OSError as e:
        s.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    return s


@contextlib.contextmanager
def serving(srv):
    """Serves ``srv`` (any socketserver) in a thread for the block's length;
    then shuts it down and closes it (the main thread stays free to wait for
    a signal)."""
    t = threading.Thread(target=srv.serve_forever, name="ui", daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)
