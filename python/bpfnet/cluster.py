"""Cluster membership in etcd (aetcd, asyncio, in a thread of its own).

    m = Membership(["http://10.0.0.250:2379"], "default", "h0", ttl=10,
                   record={"vtep": "10.0.0.1", "port": 4789, "bridge_vnis": [], "mesh_vnis": [40]},
                   on_change=lambda hosts: print(sorted(hosts)))
    m.start()          # registers /bpfnet/default/hosts/h0 under a lease, keeps it alive, watches
    m.health()         # {"connected": True, "last_sync": ..., "hosts": 3, "errors": 0, "revision": 17,
                       #  "relists": 1, "bad_records": 0, "last_error": ""}
    m.stop()           # revokes the lease: the others see h0 leave at once

Layout: ``/bpfnet/<cluster>/hosts/<host>`` -> JSON ``{"vtep", "port", "bridge_vnis",
"mesh_vnis"}``, put under this host's lease. A host that dies stops refreshing its
lease; etcd deletes the key when the TTL runs out and every watcher sees it go.

MAC/IP routes (``on_macs`` given): ``/bpfnet/<cluster>/macs/<host>/<vni>/<mac>`` -> JSON
``{"ips": [...]}``, under the same lease, so a dead host's routes go with its record.
The watch then covers ``/bpfnet/<cluster>/`` (hosts and macs in one list, one
revision, one stream: the faults below are handled once for both).
``set_macs({(vni, mac): ips})`` says which MACs are local here; the membership
thread makes this host's keys exactly these (one transaction per 64 changes) and
does it again whenever its keys are not under its current lease (a new lease, an
etcd that lost its data, a key someone deleted). ``on_macs(view)`` gets every
published entry ``{(host, vni, mac): Mac(ips, rev, lease)}``; :func:`winners`
picks, per {vni, mac}, the live host that carries the VNI and wrote last
(highest mod_revision), so a MAC that moved converges before its old host
withdraws it.

How faults are handled (each is tested in tests/netns/test_cluster.py, and with
agents in test_cluster_agent.py):

- One session = one gRPC channel to one endpoint: register (reuse the lease if it
  is still alive, else grant a new one, then put the record), sync, watch, refresh
  the lease every ``min(ttl / 3, 1 s)``. Any failure ends the session; the next one
  starts after a short back-off on the next endpoint. aetcd's watches never restart
  by themselves: this loop restarts them.
- Sync: the first session lists the prefix. A later one resumes the watch at the
  last revision seen + 1, so etcd replays exactly what was missed; if that
  revision is compacted, it lists the prefix again (a full re-list), and so it
  does if etcd's first answer shows another cluster id or a revision behind
  ours (etcd lost its data: a resumed watch would wait for its future).
- A frozen etcd (SIGSTOP) accepts TCP but answers nothing: every RPC has a
  deadline (2 s) and the channel sends HTTP/2 keepalive pings (6 s, 2 s timeout; etcd
  refuses pings more often than every 5 s by default), so the next lease refresh
  fails within ``min(ttl / 3, 1 s) + 2 s`` and ``health()["connected"]`` turns False.
- ``on_change(hosts)`` runs in a callback thread of its own that the Membership
  starts, with every live host (this one included) after each change and each
  re-list; bursts are coalesced (only the latest view is delivered), and a slow
  callback never delays a lease refresh.

Network namespaces: setns() moves only the calling thread, and a thread inherits
the namespace of the thread that creates it. gRPC's core creates its threads
(event engine pollers, timers, executors) lazily when the first channel is made,
from that thread, and later ones from those; it opens its sockets from them. So
the Membership thread enters ``netns`` (if given) before it imports aetcd/grpc and
creates a channel; all gRPC threads then live there, and etcd is reached through
that namespace's links. A process must therefore use gRPC in one network
namespace at a time: while a channel is open, gRPC's threads stay where they
were born and every new connection leaves from there, whatever namespace the
caller is in (seen here: a member whose thread was in h0 reached the root
namespace's network instead). When its last channel closes, gRPC stops its
threads, and the next channel starts them afresh. ``start()`` refuses a second
Membership in another namespace while one runs (tests/netns/test_cluster.py
checks the namespace of every thread of a member started from elsewhere).

``python -m bpfnet.cluster member --etcd URL --cluster C --host H --record JSON`` runs
one Membership and prints one JSON line per view (``--macs '[[VNI, MAC, [IP, ...]]]'``:
publishes those MAC routes too and prints every host's, a ``macs`` line per view); ``python -m bpfnet.cluster admin URL
status|revision|compact|put|del`` makes one etcd call (debugging aids; the tests, the
demo and the bench use them).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
import urllib.parse
from typing import Callable, NamedTuple

from .errors import ConfigError

log = logging.getLogger("bpfnet.cluster")

RPC_TIMEOUT = 2.0           # seconds, every etcd call
REVOKE_TIMEOUT = 3.0        # seconds, revoking the lease on stop (all endpoints)
REFRESH_MAX = 1.0           # lease refresh at least this often (and ttl / 3)
BACKOFF = (0.2, 0.5, 1.0)   # seconds between failed sessions
CHANNEL_OPTIONS = {
    "grpc.keepalive_time_ms": 6000,
    "grpc.keepalive_timeout_ms": 2000,
    "grpc.keepalive_permit_without_calls": 1,
    "grpc.http2.max_pings_without_data": 0,
    "grpc.initial_reconnect_backoff_ms": 200,
    "grpc.min_reconnect_backoff_ms": 200,
    "grpc.max_reconnect_backoff_ms": 1000,
    "grpc.enable_retries": 0,
}
RECORD_KEYS = ("vtep", "port", "bridge_vnis", "mesh_vnis")
TXN_OPS = 64                # MAC puts/deletes per transaction (etcd allows 128)


class Mac(NamedTuple):
    """One published MAC: its IPs, the revision that wrote it, its lease."""
    ips: tuple
    rev: int
    lease: int = 0


_ns_lock = threading.Lock()
_ns_users: dict[str, int] = {}   # network namespace ("net:[inode]") -> running Memberships


def _netns_id(name: str | None) -> str:
    if name is None:
        return os.readlink("/proc/thread-self/ns/net")
    from .netlink import NETNS_DIR
    try:
        return f"net:[{os.stat(os.path.join(NETNS_DIR, name)).st_ino}]"
    except OSError:
        raise ConfigError(f"network namespace {name!r} does not exist") from None


def prefix(cluster: str) -> str:
    return f"/bpfnet/{cluster}/hosts/"


def macs_prefix(cluster: str) -> str:
    return f"/bpfnet/{cluster}/macs/"


def mac_key(cluster: str, host: str, vni: int, mac: str) -> bytes:
    return f"{macs_prefix(cluster)}{host}/{vni}/{mac}".encode()


def parse_mac(rest: bytes, value: bytes | None):
    """``<host>/<vni>/<mac>`` (after the macs prefix) and its value ->
    (host, vni, mac, ips), or None if it is not bpfnet's; ``value`` None: a
    deletion, the key alone is checked."""
    from netaddr import EUI, AddrFormatError, IPAddress
    try:
        host, vni, mac = rest.decode().split("/")
        vni = int(vni)
        if not host or not 1 <= vni <= 0xFFFFFF or str(EUI(mac)).lower().replace("-", ":") != mac:
            return None
        ips: tuple = ()
        if value is not None:
            doc = json.loads(value)
            if not isinstance(doc, dict) or not isinstance(doc.get("ips"), list):
                return None
            ips = tuple(str(IPAddress(str(a))) for a in doc["ips"])
        return host, vni, mac, ips
    except (ValueError, UnicodeDecodeError, AddrFormatError, TypeError):
        return None


def encode_mac(ips) -> bytes:
    return json.dumps({"ips": list(ips)}, separators=(",", ":")).encode()


def winners(macs: dict, hosts: dict) -> dict:
    """{(vni, mac): (host, Mac)}: per {vni, mac}, the entry of the live host
    (in ``hosts``) carrying the VNI as a bridge VNI with the highest revision
    (the last writer)."""
    out: dict = {}
    for (host, vni, mac), e in macs.items():
        rec = hosts.get(host)
        if rec is None or vni not in (rec.get("bridge_vnis") or ()):
            continue
        cur = out.get((vni, mac))
        if cur is None or e.rev > cur[1].rev:
            out[(vni, mac)] = (host, e)
    return out


def parse_endpoint(url: str) -> tuple[str, int]:
    """``http://HOST:PORT`` (or ``HOST:PORT``) -> (host, port). TLS is not
    supported: an ``https`` URL is refused."""
    text = url.strip()
    u = urllib.parse.urlsplit(text if "//" in text else f"http://{text}")
    if u.scheme != "http" or not u.hostname or u.path not in ("", "/"):
        raise ConfigError(f"etcd endpoint {url!r}: expected http://HOST:PORT")
    try:
        port = u.port or 2379
    except ValueError:
        raise ConfigError(f"etcd endpoint {url!r}: bad port") from None
    return u.hostname, port


def check_name(what: str, name: str) -> str:
    if not name or "/" in name or not name.isprintable() or name.strip() != name:
        raise ConfigError(f"{what} {name!r}: must be non-empty, printable, without '/' or spaces")
    return name


def check_record(record: dict) -> dict:
    missing = [k for k in RECORD_KEYS if k not in record]
    if missing:
        raise ConfigError(f"cluster record lacks {', '.join(missing)}")
    from netaddr import AddrFormatError, IPAddress
    try:
        IPAddress(str(record["vtep"]))
    except (AddrFormatError, ValueError):
        raise ConfigError(f"cluster record: vtep {record['vtep']!r} is no IP address") from None
    return {k: record[k] for k in RECORD_KEYS}


def encode(record: dict) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def decode(value: bytes) -> dict | None:
    """A host's record, or None if it is not one (logged, counted)."""
    try:
        rec = json.loads(value)
        if isinstance(rec, dict) and all(k in rec for k in RECORD_KEYS):
            return rec
    except (ValueError, UnicodeDecodeError):
        pass
    return None


def client(endpoint: str):
    """An aetcd client for ``endpoint`` with bpfnet's deadlines and keepalives."""
    import aetcd
    host, port = parse_endpoint(endpoint)
    return aetcd.Client(host=host, port=port, timeout=RPC_TIMEOUT, options=CHANNEL_OPTIONS)


async def _cancel(tasks) -> None:
    for t in tasks:
        t.cancel()
    for t in tasks:
        try:
            await t
        except BaseException:  # noqa: BLE001 -- cancelled or failed: it is over
            pass


class Membership:
    def __init__(self, endpoints: list[str], cluster: str, host: str, ttl: int,
                 record: dict, on_change: Callable[[dict], None],
                 netns: str | None = None, on_health: Callable[[dict], None] | None = None,
                 on_macs: Callable[[dict], None] | None = None):
        if not endpoints:
            raise ConfigError("cluster: no etcd endpoint")
        for e in endpoints:
            parse_endpoint(e)
        if not isinstance(ttl, int) or not 2 <= ttl <= 3600:
            raise ConfigError(f"cluster ttl {ttl!r}: expected whole seconds in 2..3600")
        self.endpoints = list(endpoints)
        self.cluster = check_name("cluster name", cluster)
        self.host = check_name("host name", host)
        self.ttl = ttl
        self.netns = netns
        self.on_change = on_change
        self.on_health = on_health
        self.prefix = prefix(cluster).encode()
        self.key = self.prefix + host.encode()
        self.on_macs = on_macs      # None: no routes (the hosts prefix alone is watched)
        self.mprefix = macs_prefix(cluster).encode()
        self.watched = f"/bpfnet/{cluster}/".encode() if on_macs else self.prefix
        self._macs: dict[tuple, Mac] = {}   # (host, vni, mac) -> Mac, every host's
        self._want: dict | None = None      # (vni, mac) -> ips: this host's, from set_macs
        self._pub_dirty: asyncio.Event | None = None
        self._mac_puts = 0
        self._mac_deletes = 0
        self._record = check_record(record)
        self._lock = threading.Lock()
        self._hosts: dict[str, dict] = {}
        self._revision = 0          # last revision seen (list header or event)
        self._lease = 0
        self._connected = False
        self._last_sync = 0.0
        self._errors = 0
        self._relists = 0
        self._bad_records = 0       # keys under the prefix that are no host record (ignored)
        self._last_error = ""
        self._synced = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task | None = None
        self._dirty: asyncio.Event | None = None
        self._revoke = True
        self._stop_req = False
        self._cluster_id = 0        # etcd's, from the last response header
        # on_change delivery: latest view only
        self._cb_cond = threading.Condition()
        self._cb_view: dict | None = None
        self._cb_stop = False
        self._cb_thread: threading.Thread | None = None

    # --- the interface -------------------------------------------------------------
    def start(self, wait: float = 5.0) -> bool:
        """Starts the membership thread; waits up to ``wait`` seconds for the
        first sync. Returns whether it synced (it keeps trying if not: etcd may
        come later, the data path does not depend on it)."""
        if self._thread is not None:
            raise RuntimeError("membership already started")
        ns = _netns_id(self.netns)
        with _ns_lock:
            other = next((n for n, k in _ns_users.items() if k and n != ns), None)
            if other:
                raise ConfigError(f"cluster: gRPC runs in network namespace {other} in this "
                                  f"process; a Membership in {ns} would reach etcd from there")
            _ns_users[ns] = _ns_users.get(ns, 0) + 1
        self._ns_id = ns
        self._thread = threading.Thread(target=self._thread_main, name=f"bpfnet-etcd-{self.host}",
                                        daemon=True)
        self._thread.start()
        return self._synced.wait(wait)

    def update(self, record: dict) -> None:
        """Publishes a new record for this host (its VNIs changed)."""
        rec = check_record(record)
        with self._lock:
            self._record = rec
        loop, dirty = self._loop, self._dirty
        if loop is not None and dirty is not None:
            loop.call_soon_threadsafe(dirty.set)

    def set_macs(self, macs: dict) -> None:
        """This host's MACs, ``{(vni, mac): ips}``: published under the lease
        (puts for new or changed ones, deletes for those gone)."""
        want = {(int(vni), str(mac)): tuple(ips) for (vni, mac), ips in macs.items()}
        with self._lock:
            if want == self._want:
                return
            self._want = want
        loop, dirty = self._loop, self._pub_dirty
        if loop is not None and dirty is not None:
            loop.call_soon_threadsafe(dirty.set)

    def macs(self) -> dict:
        with self._lock:
            return dict(self._macs)

    def stop(self, revoke: bool = True, timeout: float = 5.0) -> None:
        """Stops; with ``revoke`` (default) revokes the lease first, so the
        host leaves at once instead of after its TTL."""
        self._revoke = revoke
        self._stop_req = True  # before reading _main: the thread checks it after setting it
        loop, main = self._loop, self._main
        if loop is not None and main is not None:
            loop.call_soon_threadsafe(main.cancel)
        if self._thread is not None:
            self._thread.join(timeout)
        with self._cb_cond:
            self._cb_stop = True
            self._cb_cond.notify()
        if self._cb_thread is not None:
            self._cb_thread.join(timeout)
        ns, self._ns_id = getattr(self, "_ns_id", None), None
        if ns is not None and not (self._thread and self._thread.is_alive()):
            with _ns_lock:
                _ns_users[ns] -= 1

    def health(self) -> dict:
        with self._lock:
            return {"connected": self._connected, "last_sync": self._last_sync,
                    "hosts": len(self._hosts), "errors": self._errors,
                    "revision": self._revision, "relists": self._relists,
                    "bad_records": self._bad_records, "last_error": self._last_error,
                    "macs": len(self._macs),
                    "published": sum(1 for k in self._macs if k[0] == self.host),
                    "mac_puts": self._mac_puts, "mac_deletes": self._mac_deletes}

    def hosts(self) -> dict[str, dict]:
        with self._lock:
            return {k: dict(v) for k, v in self._hosts.items()}

    # --- the thread ----------------------------------------------------------------
    def _thread_main(self) -> None:
        if self.netns:
            # before the first gRPC channel: gRPC's threads are born from this one
            from .netlink import enter_netns
            enter_netns(self.netns)
        self._cb_thread = threading.Thread(target=self._cb_main, name=f"bpfnet-etcd-cb-{self.host}",
                                           daemon=True)
        self._cb_thread.start()
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._main = loop.create_task(self._run())
            if self._stop_req:
                self._main.cancel()
            loop.run_until_complete(self._main)
        except asyncio.CancelledError:
            pass
        finally:
            with self._lock:
                self._connected = False
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._loop = None

    def _cb_main(self) -> None:
        while True:
            with self._cb_cond:
                while self._cb_view is None and not self._cb_stop:
                    self._cb_cond.wait()
                if self._cb_view is None:
                    return
                (view, macs), self._cb_view = self._cb_view, None
            try:
                if macs is not None:
                    self.on_macs(macs)
                self.on_change(view)
            except Exception:  # noqa: BLE001 -- the caller's bug must not stop membership
                log.exception("on_change failed")

    def _publish(self) -> None:
        with self._lock:
            view = ({k: dict(v) for k, v in self._hosts.items()},
                    dict(self._macs) if self.on_macs else None)
        with self._cb_cond:
            self._cb_view = view
            self._cb_cond.notify()

    def _set_connected(self, up: bool, error: str = "") -> None:
        with self._lock:
            changed = self._connected != up
            self._connected = up
            if error:
                self._errors += 1
                self._last_error = error
        if changed:
            if up:
                log.warning("etcd connected (revision %d, %d hosts)",
                            self._revision, len(self._hosts))
            else:
                log.warning("etcd disconnected: %s", error or "stopped")
            if self.on_health:
                try:
                    self.on_health(self.health())
                except Exception:  # noqa: BLE001
                    log.exception("on_health failed")

    def _touch(self, revision: int = 0) -> None:
        with self._lock:
            self._last_sync = time.time()
            if revision > self._revision:
                self._revision = revision

    async def _run(self) -> None:
        self._dirty = asyncio.Event()
        self._pub_dirty = asyncio.Event()
        n = 0
        failures = 0
        try:
            while True:
                ep = self.endpoints[n % len(self.endpoints)]
                n += 1
                try:
                    await self._session(ep)
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # noqa: BLE001 -- any failure: next session
                    failures += 1
                    self._set_connected(False, f"{ep}: {type(e).__name__}: {e}".strip())
                await asyncio.sleep(BACKOFF[min(failures, len(BACKOFF)) - 1] if failures else 0)
        except asyncio.CancelledError:
            self._set_connected(False)
            if self._revoke and self._lease:
                try:  # bounded: a stop must not hang on a frozen etcd
                    await asyncio.wait_for(self._revoke_lease(), REVOKE_TIMEOUT)
                except asyncio.TimeoutError:
                    log.warning("lease %x not revoked within %g s; it runs out "
                                "after its TTL", self._lease, REVOKE_TIMEOUT)

    async def _revoke_lease(self) -> None:
        for ep in self.endpoints:
            c = client(ep)
            try:
                await asyncio.wait_for(c.revoke_lease(self._lease), RPC_TIMEOUT)
                log.info("lease %x revoked", self._lease)
                self._lease = 0
                return
            except Exception as e:  # noqa: BLE001
                log.warning("revoke on %s failed: %s", ep, e)
            finally:
                await self._close(c)

    @staticmethod
    async def _close(c) -> None:
        try:
            await asyncio.wait_for(c.close(), RPC_TIMEOUT)
        except Exception:  # noqa: BLE001 -- closing a broken channel
            pass

    async def _session(self, ep: str) -> None:
        c = client(ep)
        tasks: list[asyncio.Task] = []
        try:
            await c.connect()
            await self._register(c)
            tasks = [asyncio.ensure_future(self._watching(c)),
                     asyncio.ensure_future(self._keepalive(c))]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()  # raises the failure
        finally:
            await _cancel(tasks)
            await self._close(c)

    async def _watching(self, c) -> None:
        """Sync, then apply the watch's events; a compacted revision: re-list."""
        import aetcd
        relist = False
        while True:
            watch = await self._sync(c, relist)
            self._set_connected(True)
            self._synced.set()
            events: asyncio.Queue = asyncio.Queue()
            tasks = [asyncio.ensure_future(self._pump(watch, events)),
                     asyncio.ensure_future(self._apply(events))]
            if self.on_macs:
                self._pub_dirty.set()  # after a (re-)list: our keys as etcd has them
                tasks.append(asyncio.ensure_future(self._publishing(c)))
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    t.result()
                raise ConnectionError("watch stream ended")
            except aetcd.RevisionCompactedError as e:
                log.warning("watch from revision %d: %s: full re-list",
                            self._revision + 1, e)
                relist = True
            finally:
                await _cancel(tasks)

    async def _grant(self, c) -> None:
        lease = await c.lease(self.ttl)
        self._lease = lease.id
        log.info("lease %x granted, ttl %d s", lease.id, self.ttl)
        if self._pub_dirty is not None:
            self._pub_dirty.set()  # our MACs go under the new lease

    async def _put(self, c) -> None:
        with self._lock:
            value = encode(self._record)
        self._dirty.clear()
        r = await c.put(self.key, value, lease=self._lease)
        self._touch()
        h = r.header
        if self._revision and (h.cluster_id != self._cluster_id or h.revision <= self._revision):
            # another etcd cluster, or this one lost its data: our revision means nothing
            log.warning("etcd cluster %x at revision %d (was %x at %d): full re-list",
                        h.cluster_id, h.revision, self._cluster_id, self._revision)
            with self._lock:
                self._revision = 0
        self._cluster_id = h.cluster_id
        return r

    async def _register(self, c) -> None:
        if self._lease:
            r = await c.refresh_lease(self._lease)
            if r is None or r.TTL <= 0:
                log.warning("lease %x expired; registering again", self._lease)
                self._lease = 0
        if not self._lease:
            await self._grant(c)
        await self._put(c)

    async def _list(self, c) -> int:
        r = await c.get_prefix(self.watched)
        hosts, macs = {}, {}
        for kv in r:
            if kv.key.startswith(self.mprefix):
                m = parse_mac(kv.key[len(self.mprefix):], kv.value)
                if m is None:
                    self._bad(kv.key.decode(errors="replace"))
                else:
                    macs[m[:3]] = Mac(m[3], kv.mod_revision, kv.lease)
                continue
            if not kv.key.startswith(self.prefix):
                continue
            name = kv.key[len(self.prefix):].decode(errors="replace")
            rec = decode(kv.value)
            if rec is None:
                self._bad(name)
                continue
            hosts[name] = rec
        with self._lock:
            self._hosts = hosts
            self._macs = macs
            self._relists += 1
        self._touch(r.header.revision)
        self._set_connected(True)
        self._publish()
        return r.header.revision

    def _bad(self, name: str) -> None:
        with self._lock:
            self._bad_records += 1
        log.warning("host %s: record is not bpfnet's JSON; ignored", name)

    async def _sync(self, c, relist: bool = False):
        """A watch from the last revision seen + 1 (etcd replays what we
        missed); the first time, or if that revision was compacted, a full
        list first."""
        import aetcd
        if self._revision and not relist:
            try:
                return await c.watch_prefix(self.watched, start_revision=self._revision + 1)
            except aetcd.RevisionCompactedError as e:
                log.warning("watch from revision %d: %s: full re-list",
                            self._revision + 1, e)
        rev = await self._list(c)
        return await c.watch_prefix(self.watched, start_revision=rev + 1)

    async def _pump(self, watch, events: asyncio.Queue) -> None:
        async for ev in watch:
            events.put_nowait(ev)

    async def _apply(self, events: asyncio.Queue) -> None:
        while True:
            batch = [await events.get()]
            while not events.empty():
                batch.append(events.get_nowait())
            rev = 0
            mine_gone = False
            with self._lock:
                for ev in batch:
                    rev = max(rev, ev.kv.mod_revision)
                    if ev.kv.key.startswith(self.mprefix):
                        mine_gone |= self._mac_event(ev)
                        continue
                    if not ev.kv.key.startswith(self.prefix):
                        continue
                    name = ev.kv.key[len(self.prefix):].decode(errors="replace")
                    if ev.kind == "DELETE":
                        self._hosts.pop(name, None)
                        continue
                    rec = decode(ev.kv.value)
                    if rec is None:
                        self._hosts.pop(name, None)
                        self._bad_records += 1
                        log.warning("host %s: record is not bpfnet's JSON; ignored", name)
                        continue
                    self._hosts[name] = rec
            self._touch(rev)
            self._publish()
            if any(ev.kind == "DELETE" and ev.kv.key == self.key for ev in batch):
                # our own key went (lease expired, or someone deleted it): back in
                self._dirty.set()
            if mine_gone:
                self._pub_dirty.set()

    def _mac_event(self, ev) -> bool:
        """One event under macs/ (the lock held); True if it removed one of
        this host's keys. An event older than what this thread wrote to
        the key (replayed after a re-grant) is ignored."""
        m = parse_mac(ev.kv.key[len(self.mprefix):], None if ev.kind == "DELETE" else ev.kv.value)
        if m is None:
            self._bad_records += 1
            log.warning("%s: not a bpfnet MAC route; ignored", ev.kv.key.decode(errors="replace"))
            return False
        k = m[:3]
        old = self._macs.get(k)
        if old is not None and ev.kv.mod_revision <= old.rev:
            return False
        if ev.kind == "DELETE":
            self._macs.pop(k, None)
            return k[0] == self.host
        self._macs[k] = Mac(m[3], ev.kv.mod_revision, ev.kv.lease)
        return False

    async def _publishing(self, c) -> None:
        while True:
            await self._pub_dirty.wait()
            self._pub_dirty.clear()
            await self._publish_macs(c)

    async def _publish_macs(self, c) -> None:
        """Makes this host's keys under macs/ what ``set_macs`` said, under
        the current lease."""
        with self._lock:
            want = self._want
            have = {(vni, mac): e for (h, vni, mac), e in self._macs.items() if h == self.host}
        if want is None or not self._lease:
            return  # nothing said yet: leave what is there
        lease = self._lease
        ops = [("put", k, ips) for k, ips in sorted(want.items())
               if k not in have or have[k].ips != ips or have[k].lease != lease]
        ops += [("del", k, None) for k in sorted(have) if k not in want]
        for i in range(0, len(ops), TXN_OPS):
            chunk = ops[i:i + TXN_OPS]
            t = c.transactions
            _, resp = await c.transaction(compare=[], failure=[], success=[
                t.put(mac_key(self.cluster, self.host, *k), encode_mac(ips), lease=lease)
                if op == "put" else t.delete(mac_key(self.cluster, self.host, *k))
                for op, k, ips in chunk])
            rev = max((getattr(r, r.WhichOneof("response")).header.revision for r in resp),
                      default=0)
            with self._lock:
                for op, (vni, mac), ips in chunk:
                    if op == "put":
                        self._macs[(self.host, vni, mac)] = Mac(ips, rev, lease)
                        self._mac_puts += 1
                    else:
                        self._macs.pop((self.host, vni, mac), None)
                        self._mac_deletes += 1
            self._touch()
        if ops:
            self._publish()

    async def _keepalive(self, c) -> None:
        period = min(self.ttl / 3, REFRESH_MAX)
        while True:
            try:
                await asyncio.wait_for(self._dirty.wait(), period)
            except asyncio.TimeoutError:
                pass
            r = await asyncio.wait_for(c.refresh_lease(self._lease), RPC_TIMEOUT)
            if r is None or r.TTL <= 0:
                log.warning("lease %x expired; registering again", self._lease)
                await self._grant(c)
                await self._put(c)
                continue
            self._touch()
            if self._dirty.is_set():
                await self._put(c)


# --- python -m bpfnet.cluster: debugging aids -------------------------------------------

def _member(a) -> int:
    """One member; one JSON line per view (and per health change, and on SIGUSR1)."""
    import signal
    out_lock = threading.Lock()

    def say(kind, **kw):
        with out_lock:
            print(json.dumps({"t": time.time(), "event": kind, **kw}, sort_keys=True), flush=True)
    routes = a.macs is not None
    m = Membership(a.etcd.split(","), a.cluster, a.host, a.ttl, json.loads(a.record),
                   on_change=lambda hosts: say("hosts", hosts=hosts, health=m.health()),
                   netns=a.netns, on_health=lambda h: say("health", health=h),
                   on_macs=(lambda macs: say("macs", macs=_macs_rows(macs))) if routes else None)
    if routes:  # [[vni, mac, [ip, ...]], ...]
        m.set_macs({(vni, mac): ips for vni, mac, ips in json.loads(a.macs)})
    # SIGTERM/SIGINT/SIGHUP stop it; SIGUSR1 prints its state. Two traps: the
    # kernel may deliver a signal to one of gRPC's threads, leaving a main
    # thread blocked in a lock unaware (signals.stopping() waits on the wakeup
    # fd that every handled signal writes to); and a handler that prints can
    # be entered again inside itself by the next signal and wait for ever on
    # its own lock. So the handler only counts, into a pipe, and the main
    # thread prints (it must be the main thread: the test checks that every
    # other thread is in --netns).
    from . import signals
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def usr1(*_):
        with contextlib.suppress(OSError):
            os.write(w, b".")
    with signals.stopping() as stop:
        signal.signal(signal.SIGUSR1, usr1)
        try:
            m.start(wait=0)
            while stop.wait(0.1) is None:
                with contextlib.suppress(BlockingIOError):
                    for _ in os.read(r, 64):
                        say("state", health=m.health(), hosts=m.hosts(), threads=_thread_netns())
        except signals.Stopped:
            pass
        finally:
            signal.signal(signal.SIGUSR1, signal.SIG_DFL)
            os.close(r)
            os.close(w)
        m.stop(revoke=not a.no_revoke)
    say("stopped", health=m.health())
    return 0


def _macs_rows(macs: dict) -> list:
    return [{"host": h, "vni": vni, "mac": mac, "ips": list(e.ips), "revision": e.rev}
            for (h, vni, mac), e in sorted(macs.items())]


async def _admin(a) -> dict:
    """status [--wait S] | revision | compact | put KEY VALUE | del KEY, as JSON."""
    c = client(a.url)
    try:
        if a.cmd == "status":
            end = time.monotonic() + a.wait
            while True:
                try:
                    st = await c.status()
                    return {"version": st.version, "raft_index": st.raft_index}
                except Exception:  # noqa: BLE001 -- not up yet
                    if time.monotonic() > end:
                        raise
                    await c.close()
                    await asyncio.sleep(0.2)
        if a.cmd in ("revision", "compact"):
            rev = (await c.get_prefix(b"/")).header.revision
            if a.cmd == "revision":
                return {"revision": rev}
            await c.compact(rev, physical=True)
            return {"compacted": rev}
        if a.cmd == "put":  # KEY VALUE [TIMES]
            for _ in range(int(a.args[2]) if len(a.args) > 2 else 1):
                r = await c.put(a.args[0].encode(), a.args[1].encode())
            return {"revision": r.header.revision}
        if a.cmd == "del":
            r = await c.delete(a.args[0].encode())
            return {"deleted": bool(r and r.deleted)}
        raise ConfigError(f"unknown admin command {a.cmd!r}")
    finally:
        await c.close()


def _main(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="python -m bpfnet.cluster",
                                description="cluster membership: debugging aids")
    sub = p.add_subparsers(dest="what", required=True)
    m = sub.add_parser("member", help="run one member; print each view as a JSON line")
    m.add_argument("--etcd", required=True, help="comma-separated endpoints")
    m.add_argument("--cluster", default="default")
    m.add_argument("--host", required=True)
    m.add_argument("--ttl", type=int, default=10)
    m.add_argument("--record", required=True, help="this host's record, JSON")
    m.add_argument("--netns", help="reach etcd from this network namespace (the thread's)")
    m.add_argument("--no-revoke", action="store_true", help="on SIGTERM leave the lease to expire")
    m.add_argument("--macs", help="publish these MAC routes, JSON [[vni, mac, [ip, ...]], ...], "
                   "and print every host's (a 'macs' line per view)")
    ad = sub.add_parser("admin", help="one etcd call, its answer as JSON")
    ad.add_argument("url")
    ad.add_argument("cmd", choices=("status", "revision", "compact", "put", "del"))
    ad.add_argument("args", nargs="*")
    ad.add_argument("--wait", type=float, default=0, help="status: retry this many seconds")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="bpfnet.cluster: %(message)s")
    if a.what == "member":
        return _member(a)
    print(json.dumps(asyncio.run(_admin(a))))
    return 0


def _thread_netns() -> dict:
    """{thread id: network namespace inode} for every thread of this process."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            out[tid] = os.readlink(f"/proc/self/task/{tid}/ns/net")
        except OSError:
            pass
    return out


if __name__ == "__main__":
    import sys
    sys.exit(_main())
