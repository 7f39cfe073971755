"""``bpfnetctl agent -f FILE``: keeps this host (namespace) at FILE.

    bpfnetctl agent -f /etc/bpfnet/bpfnet.toml --metrics 127.0.0.1:9431

- At start: reads FILE (a bad file is exit 2, nothing changed) and applies it.
- Every ``--interval`` seconds (default 5) it reconciles: reads the kernel,
  plans against FILE and carries the plan out, so a deleted port, bridge,
  peer or VXLAN device is made again. One action failing does not stop the
  others; each failure is logged once (until it changes or clears) and
  counted (/metrics).
- SIGHUP re-reads FILE; a bad new file is logged and the old one kept.
- SIGTERM (or SIGINT) stops it: the lease is revoked (the others drop this
  host at once) and everything in the data path stays as it is.
- With ``[cluster]``: a Membership (cluster.py) registers this host in etcd
  under a lease and watches the others. Its callback runs in its own thread
  and only hands the hosts to the main loop through a queue; only the main
  thread changes bpfnet state. ``peers = "cluster"`` and ``allow =
  "cluster"`` follow the live hosts that carry the VNI.
- MAC/IP routes (``[cluster] routes = true``, the default, and a bridge):
  every ``PUBLISH_EVERY`` seconds the main loop reads the bridge's
  ``local_macs()`` and hands them to the Membership (``set_macs``: it
  publishes the difference under the lease); on every change of the
  published MACs or of the hosts, and at each reconcile, each bridge VNI of
  the file gets ``routes_set(vni, ...)`` with the winning entries
  (cluster.winners) of the other live hosts carrying it, remote = their
  vtep. One line per route change (``+``/``~``/``-``), at most
  ``ROUTE_LINES`` a pass and a summary beyond.
- Logs one line per change on stderr, ``agent: + mesh peer 10.0.0.2 vni 40
  bridge=br40``, without timestamps (the journal adds them).

Namespaces: ``--netns NS`` has moved the main thread into NS before this
runs. Threads inherit the namespace of the thread that creates them, so the
metrics server's threads (reads only) and the Membership's (gRPC: see
cluster.py) live in NS too; the metrics socket itself is bound in the
caller's namespace (commands/monitor.Listen), where the scraper is.
"""
from __future__ import annotations

import contextlib
import os
import queue
import shutil
import sys
import threading
import time

from . import config, signals
from .apply import plan, read_state, run_one
from .config import Desired
from .errors import ConfigError

UNIT = "bpfnet-agent.service"
DATA_DIR = os.path.join(os.path.dirname(__file__), "data")
TICK = 0.2  # seconds: how often the main loop looks at its queue
PUBLISH_EVERY = 1.0  # seconds: local MACs read and published this often
ROUTE_LINES = 20     # route lines logged per pass; the rest as one summary


def say(line: str) -> None:
    print(f"agent: {line}", file=sys.stderr, flush=True)


class _Fns:
    """Function objects for one pass (fresh maps and netlink each pass)."""

    def __init__(self, pins):
        self.pins, self._fns = pins, {}

    def __call__(self, name: str):
        if name not in self._fns:
            from .functions import get
            self._fns[name] = get(name)(self.pins)
        return self._fns[name]

    def close(self):
        for f in self._fns.values():
            with contextlib.suppress(Exception):
                f.close()
        self._fns.clear()


class Agent:
    def __init__(self, path: str, pins, netns: str | None = None, log=say):
        self.path, self.pins, self.netns, self.log = path, pins, netns, log
        self.desired: Desired | None = None
        self.hosts: dict | None = None          # the cluster's live hosts, from the queue
        self.membership = None
        self.events: queue.Queue = queue.Queue()
        self.failing: dict[str, str] = {}       # action or function -> message logged
        self.macs: dict | None = None           # every host's published MACs, from the queue
        self.installed: dict[int, dict] = {}    # vni -> {mac: (remote, ips, host)} set here
        self.routes_failing: dict[int, str] = {}
        self.counts = {"reconciles": 0, "reconcile_errors": 0, "changes": 0, "failing": 0,
                       "last_reconcile": 0.0, "reloads": 0, "reload_errors": 0,
                       "started": time.time(), "routes": False, "routes_installed": 0,
                       "route_added": 0, "route_removed": 0, "route_moved": 0,
                       "route_skipped": 0, "route_errors": 0}

    # --- the file -----------------------------------------------------------------
    def read(self) -> Desired:
        return config.load(self.path)

    @staticmethod
    def routes_on(d: Desired | None) -> bool:
        return d is not None and d.cluster is not None and d.cluster.routes \
            and "bridge" in d.functions

    def set_desired(self, d: Desired) -> None:
        old = self.desired
        self.desired = d
        self.counts["routes"] = self.routes_on(d)
        if not self.routes_on(d):
            self.macs = None
            self.clear_routes()
        if d.cluster is None:
            self._stop_membership()
            self.hosts = None
            return
        record = config.record_of(d)
        same = old is not None and old.cluster == d.cluster and old.host == d.host \
            and self.routes_on(old) == self.routes_on(d)
        if self.membership is not None and same:
            self.membership.update(record)
            return
        self._stop_membership()
        self.hosts = None
        self.macs = None
        from .cluster import Membership
        c = d.cluster
        self.membership = Membership(c.etcd, c.name, d.host, c.ttl, record,
                                     on_change=self._on_change, netns=self.netns,
                                     on_health=self._on_health,
                                     on_macs=self._on_macs if self.routes_on(d) else None)
        self.log(f"cluster {c.name}: host {d.host} vtep {record['vtep']} via {', '.join(c.etcd)}")
        self.membership.start(wait=0)

    def _on_health(self, health: dict) -> None:
        # the membership's thread: the queue carries it to the log line
        self.events.put(("health", health))

    def _on_change(self, hosts: dict) -> None:
        # the membership's thread: hand over, touch nothing
        self.events.put(("hosts", hosts))

    def _on_macs(self, macs: dict) -> None:
        self.events.put(("macs", macs))

    def _stop_membership(self, revoke: bool = True) -> None:
        if self.membership is not None:
            m, self.membership = self.membership, None
            with contextlib.suppress(Exception):
                m.stop(revoke=revoke)

    def reload(self) -> None:
        try:
            d = self.read()
        except ConfigError as e:
            self.counts["reload_errors"] += 1
            self.log(f"error: reload: {e}; keeping the previous file")
            return
        self.counts["reloads"] += 1
        self.log(f"reload: {self.path}")
        self.set_desired(d)

    # --- reconcile ----------------------------------------------------------------
    def reconcile(self) -> int:
        """One pass: every function of the file planned and carried out on
        its own; returns the actions that failed."""
        d = self.desired
        failing: dict[str, str] = {}
        hosts = self.hosts if d.cluster is not None else None
        fns = _Fns(self.pins)
        try:
            with self.pins.locked(create=True):
                for name, spec in d.functions.items():
                    one = Desired(d.file, d.host, d.cluster, {name: spec})
                    try:
                        actions = plan(one, read_state(fns, [name]), hosts=hosts)
                    except Exception as e:  # noqa: BLE001 -- reported, the others go on
                        failing[name] = _msg(e)
                        continue
                    for a in actions:
                        try:
                            run_one(fns, a)
                        except Exception as e:  # noqa: BLE001
                            failing[str(a)] = _msg(e)
                            continue
                        self.counts["changes"] += 1
                        self.log(str(a))
                        fns.close()  # a reload or a removal may have replaced pins
        finally:
            fns.close()
        for what, msg in failing.items():
            if self.failing.get(what) != msg:
                self.log(f"error: {what}: {msg}")
        for what in set(self.failing) - set(failing):
            self.log(f"ok: {what}")
        self.failing = failing
        self.counts["reconciles"] += 1
        self.counts["reconcile_errors"] += len(failing)
        self.counts["failing"] = len(failing)
        self.counts["last_reconcile"] = time.time()
        return len(failing)

    # --- MAC/IP routes ----------------------------------------------------------------
    def _bridge(self):
        from .functions import get
        return get("bridge")(self.pins)

    def publish_macs(self) -> None:
        """This host's tenant MACs (the bridge's ``local_macs()``, VNIs of
        the file) to the membership, which publishes what changed."""
        m, d = self.membership, self.desired
        if m is None or not self.routes_on(d):
            return
        br = self._bridge()
        try:
            if not br.is_loaded():
                m.set_macs({})
                return
            vnis = d.functions["bridge"].children
            m.set_macs({(e["vni"], e["mac"]): tuple(e["ips"]) for e in br.local_macs()
                        if e["vni"] in vnis})
        except Exception as e:  # noqa: BLE001 -- a bridge being reloaded: next time
            self._route_error(0, f"local MACs: {_msg(e)}")
        finally:
            br.close()

    def wanted_routes(self) -> dict:
        """{vni: {mac: (remote, ips, host)}} for each bridge VNI of the file:
        the winning entries of the other live hosts that carry it."""
        from .cluster import winners
        d = self.desired
        want: dict[int, dict] = {vni: {} for vni in d.functions["bridge"].children}
        hosts = self.hosts or {}
        for (vni, mac), (host, e) in winners(self.macs or {}, hosts).items():
            if host != d.host and vni in want:
                want[vni][mac] = (str(hosts[host]["vtep"]), e.ips, host)
        return want

    def install_routes(self, force: bool = False) -> None:
        """routes_set for each bridge VNI whose routes changed (``force``:
        every VNI, as a reconcile does: it repairs what was lost)."""
        if not self.routes_on(self.desired) or self.macs is None or self.hosts is None:
            return
        want = self.wanted_routes()
        for vni in set(self.installed) - set(want):
            del self.installed[vni]  # the VNI left the file: its entries went with it
        todo = {vni: r for vni, r in want.items() if force or self.installed.get(vni) != r}
        if todo:
            self._routes_set(todo)

    def clear_routes(self) -> None:
        """Routes off (or the cluster gone): the entries set here are removed."""
        if self.installed:
            self._routes_set({vni: {} for vni in self.installed})
        self.installed = {}
        self.counts["routes_installed"] = 0

    def _routes_set(self, todo: dict) -> None:
        lines: list[str] = []
        br = self._bridge()
        try:
            with self.pins.locked(create=True):
                loaded = br.is_loaded()
                for vni, routes in sorted(todo.items()):
                    if not loaded:
                        self._route_error(vni, "bridge is not loaded")
                        continue
                    try:
                        res = br.routes_set(vni, [
                            {"mac": mac, "remote": remote, "ips": list(ips), "host": host}
                            for mac, (remote, ips, host) in sorted(routes.items())])
                    except Exception as e:  # noqa: BLE001 -- the VNI not made yet: next pass
                        self._route_error(vni, _msg(e))
                        continue
                    for k, name in _COUNT.items():
                        self.counts[name] += res.get(k, 0)
                    lines += _route_lines(vni, self.installed.get(vni, {}), routes)
                    self.installed[vni] = routes
                    if self.routes_failing.pop(vni, None) is not None:
                        self.log(f"ok: routes vni {vni}")
        finally:
            br.close()
        self.counts["routes_installed"] = sum(len(r) for r in self.installed.values())
        for line in lines[:ROUTE_LINES]:
            self.log(line)
        if len(lines) > ROUTE_LINES:
            rest = lines[ROUTE_LINES:]
            ops = {op: sum(1 for x in rest if x[0] == op) for op in "+~-"}
            self.log(f"... {len(rest)} more route changes not shown "
                     f"(+{ops['+']} ~{ops['~']} -{ops['-']})")

    def _route_error(self, vni: int, msg: str) -> None:
        self.counts["route_errors"] += 1
        if self.routes_failing.get(vni) != msg:
            self.routes_failing[vni] = msg
            self.log(f"error: routes{f' vni {vni}' if vni else ''}: {msg}")

    def health(self) -> dict:
        h = dict(self.counts)
        m = self.membership
        h["cluster"] = m.health() if m is not None else None
        return h

    # --- the main loop --------------------------------------------------------------
    def run(self, stop, interval: float) -> int:
        """Until ``stop`` (signals.Stopper) says so. Each pass runs deferred:
        a SIGTERM lets the action in progress finish (then Stopped is
        raised: signals.py). Returns the signal that stopped it."""
        try:
            self._loop(stop, interval)
        except KeyboardInterrupt as e:  # signals.Stopped, or a Ctrl-C
            import signal
            return getattr(e, "signum", signal.SIGINT)
        return stop.signum

    def _loop(self, stop, interval: float) -> None:
        next_pass = next_publish = 0.0
        while True:
            due = time.monotonic() >= next_pass
            routes_due = False
            try:
                while True:
                    kind, val = self.events.get_nowait()
                    if kind == "hosts":
                        self.hosts = val
                        due = True
                        routes_due = True
                    elif kind == "macs":
                        self.macs = val
                        routes_due = True
                    elif kind == "health":
                        self.log("etcd connected" if val.get("connected") else
                                 f"etcd disconnected: {val.get('last_error') or 'no answer'}")
            except queue.Empty:
                pass
            if due:
                with stop.deferred():
                    self.reconcile()
                    self.install_routes(force=True)
                next_pass = time.monotonic() + interval
            elif routes_due:
                with stop.deferred():
                    self.install_routes()
            if time.monotonic() >= next_publish:
                self.publish_macs()
                next_publish = time.monotonic() + PUBLISH_EVERY
            sig = stop.wait(TICK)
            if stop.stopped:
                return
            if sig is not None:  # SIGHUP
                with stop.deferred():
                    self.reload()
                next_pass = 0.0

    def close(self, revoke: bool = True) -> None:
        self._stop_membership(revoke)


_COUNT = {"added": "route_added", "removed": "route_removed", "moved": "route_moved",
          "skipped": "route_skipped"}


def _route_text(vni: int, mac: str, r: tuple) -> str:
    remote, ips, host = r
    return f"vni {vni} {mac} -> {remote} ({host})" + (f" ip={','.join(ips)}" if ips else "")


def _route_lines(vni: int, old: dict, new: dict) -> list[str]:
    """``+ route ...`` (new), ``~ route ... (was ...)`` (moved or new IPs),
    ``- route ...`` (gone), in MAC order."""
    out = []
    for mac in sorted(set(old) | set(new)):
        a, b = old.get(mac), new.get(mac)
        if a == b:
            continue
        if a is None:
            out.append(f"+ route {_route_text(vni, mac, b)}")
        elif b is None:
            out.append(f"- route {_route_text(vni, mac, a)}")
        else:
            was = _route_text(vni, mac, a).split(" -> ", 1)[1]
            out.append(f"~ route {_route_text(vni, mac, b)} (was {was})")
    return out


def _msg(exc) -> str:
    from .cli import _describe
    return _describe(exc)[0]


def run(args, ctx):
    """The ``agent`` command."""
    import signal
    if not args.file:
        raise ConfigError("give the desired state: agent -f FILE")
    if args.file == "-":
        raise ConfigError("-f -: the agent re-reads its file on SIGHUP; give a path")
    agent = Agent(args.file, ctx.pins, netns=args.netns)
    guard = _one_agent(ctx)
    srv = None
    with signals.stopping(reload=True) as stop:
        try:
            d = agent.read()  # a bad file at start: exit 2, nothing changed
            agent.log(f"start: {args.file} in namespace {ctx.ns}, reconcile every {args.interval} s")
            if args.metrics is not None:
                from .agent_metrics import MetricsServer
                try:
                    sock = args.metrics.bind()  # in the caller's namespace
                finally:
                    args.metrics.close()
                srv = MetricsServer(sock, ctx.pins, health=agent.health)
                threading.Thread(target=srv.serve_forever, name="bpfnet-metrics", daemon=True).start()
                host = args.metrics.host
                agent.log(f"metrics: http://{f'[{host}]' if ':' in host else host}:{srv.server_port}/metrics")
            with stop.deferred():
                agent.desired = d
                agent.reconcile()   # the file's static state first, then the cluster's
                agent.set_desired(d)
            sig = agent.run(stop, args.interval)
            agent.log(f"stop: {signal.Signals(sig).name}; the data path stays as it is")
        finally:
            agent.close()
            guard.close()
            if srv is not None:
                srv.shutdown()
                srv.server_close()
    return None


def _one_agent(ctx):
    """One agent per namespace and pin root: an abstract unix socket bound
    in the namespace (abstract names are per network namespace, and the
    kernel frees one when its process dies, kill -9 too)."""
    import errno
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        s.bind(f"\0bpfnet-agent {ctx.pins.path}")
    except OSError as e:
        s.close()
        if e.errno == errno.EADDRINUSE:
            from .errors import BpfnetError
            raise BpfnetError(f"another agent keeps namespace {ctx.ns} ({ctx.pins.path})") from None
        raise
    return s


# --- the systemd unit ------------------------------------------------------------

def _bpfnetctl_path() -> str:
    """The bpfnetctl the unit should run: the checkout's wrapper when this
    package runs from a checkout, else the console script installed beside
    this Python (a venv's bin/), else the one on PATH."""
    here = os.path.dirname(os.path.abspath(__file__))
    wrapper = os.path.normpath(os.path.join(here, "..", "..", "bpfnetctl"))
    script = os.path.join(os.path.dirname(sys.executable), "bpfnetctl")
    for exe in (wrapper, script):
        if os.path.isfile(exe) and os.access(exe, os.X_OK):
            return exe
    return shutil.which("bpfnetctl") or "/usr/local/bin/bpfnetctl"


def unit_text(file: str | None = None, exe: str | None = None) -> str:
    with open(os.path.join(DATA_DIR, UNIT)) as f:
        text = f.read()
    exe = exe or _bpfnetctl_path()
    out = []
    for line in text.splitlines():
        if line.startswith("ExecStart="):
            rest = line.split(" agent ", 1)[1]
            if file:
                rest = rest.replace("/etc/bpfnet/bpfnet.toml", os.path.abspath(file))
            line = f"ExecStart={exe} agent {rest}"
        elif line.startswith("ConditionPathExists=") and file:
            line = f"ConditionPathExists={os.path.abspath(file)}"
        out.append(line)
    return "\n".join(out) + "\n"


def install_unit(dest: str, file: str | None = None) -> str:
    """Writes DEST/bpfnet-agent.service (atomically, 0644)."""
    if not os.path.isdir(dest):
        raise ConfigError(f"--dest {dest}: no such directory")
    path = os.path.join(dest, UNIT)
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(unit_text(file))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return (f"wrote {path}; then: systemctl daemon-reload && systemctl enable --now "
            f"{UNIT[:-len('.service')]}")
