"""Floods in a cluster: N namespaced hosts (default 10), each running the real
``bpfnetctl --netns hN agent -f hN.toml`` with ``[cluster]`` against etcd in
its own namespace on the fabric (demos/cluster.py's Etcd and Hosts, as
bench/cluster.py), a bridge with VNIs 10 and 20 (``allow = "cluster"``) and
4 tenants per host (2 in each VNI, so each VNI spans every host with 2N
tenants).

Two cases, each on a cluster built afresh:
- "learning only": ``[cluster] routes = false`` and the bridge's ``suppress
  = "off"``: flood and learn;
- "routes + suppression": ``routes = true`` and ``suppress = "on"``: every
  host installs the MACs (and IPs) the others publish in etcd, and answers
  ARP for them on the port.

Tenant traffic, bounded (one thread, one UDP socket per tenant): each tenant
sends a datagram every PERIOD_S (jittered) to the next of its K_PEERS
peers (random tenants of its VNI, on any host), which answers; every
CHURN_S (jittered) it swaps one peer for another random one. The tenants'
ARP caches are short-lived (base_reachable_time_ms 10000, gc_stale_time 15,
delay_first_probe_time 1) and re-validate by broadcast (ucast_solicit 0,
mcast_resolicit 1: what every entry does once it has been dropped), so each
pair in use re-resolves every 5 to 15 s: minutes of a real host's ARP
refreshes, compressed.

(1) Floods per host per minute in steady state: after a warm-up of 20 s
(15 s with --quick), the delta of each host's own counters
(``br_stats.flood``, ``br_supp_stats.arp_flood``, ``arp_reply``; read from
the pinned maps) over 60 s (20 s). By kind, from a
packet socket on the fabric switch (every flood is a VXLAN frame to the
group, which the switch also delivers to itself): the inner destination
says broadcast (ARP or other), multicast, or unknown unicast.

(2) Time to know a new MAC: 6 new tenants (3 with --quick), each on a
random host, VNIs alternating, wired first and then started STAGGER_S
apart; from each one's first frame (a datagram to a random tenant of its
VNI on another host, so an ARP request first) until every other host
has ``{mac, bnp<vni>} -> its host's VTEP`` in its ``br_fdb`` (one map
lookup per host every POLL_S, on the pinned map: no process per poll). A
host that never learns it within KNOW_TIMEOUT_S is reported as such.
"""
from __future__ import annotations

import contextlib
import ctypes
import heapq
import os
import random
import selectors
import socket
import struct
import threading
import time

from netaddr import EUI
from pyroute2 import netns

from .. import abi
from ..demos.cluster import Etcd, Hosts
from ..maps import Map, PerCpuArray
from ..sim import Sim, underlay_ip
from .report import fmt, fmt_summary, md_table, summary

VNIS = (10, 20)
TENANTS_PER_HOST = 4
PORT = 7777
PERIOD_S = 3.0
K_PEERS = 3
CHURN_S = 30.0
POLL_S = 0.01
KNOW_TIMEOUT_S = 15.0
STAGGER_S = 2.0
TTL = 10
CASES = {
    "learning": {"label": "learning only", "routes": False, "suppress": "off"},
    "routes": {"label": "routes + suppression", "routes": True, "suppress": "on"},
}
KINDS = ("arp", "broadcast", "multicast", "unknown_unicast")
# the tenants' ARP: short-lived entries, re-validated by broadcast
TENANT_NEIGH = {"base_reachable_time_ms": "10000", "gc_stale_time": "15",
                "delay_first_probe_time": "1", "ucast_solicit": "0", "mcast_resolicit": "1"}


def tenant_addr(i: int, j: int) -> tuple[int, str, str]:
    """Host i's tenant j: (VNI, IP, MAC). VNIs alternate; each VNI is one
    /16 (10.<vni>.0.0/16)."""
    vni = VNIS[j % len(VNIS)]
    return vni, f"10.{vni}.{i}.{j + 1}", f"02:00:00:{vni:02x}:{i:02x}:{j + 1:02x}"


def host_toml(i: int, url: str, cluster: str, case: dict, features: dict) -> str:
    """hN.toml for a case; the keys this checkout does not know yet are left out."""
    routes = f"routes = {str(case['routes']).lower()}\n" if features["routes"] else ""
    suppress = f'suppress = "{case["suppress"]}"\n' if features["suppress"] else ""
    vnis = ", ".join(f'{{ vni = {v}, bridge = "br{v}", allow = "cluster" }}' for v in VNIS)
    return (f'[host]\nname = "h{i}"\n\n'
            f'[cluster]\netcd = ["{url}"]\nname = "{cluster}"\nttl = {TTL}\n{routes}\n'
            f'[bridge]\nlocal = "{underlay_ip(i)}"\n{suppress}vnis = [ {vnis} ]\n')


def features() -> dict:
    """What this checkout has: ``[cluster] routes`` and the bridge's
    ``suppress`` option (issue 15, being built)."""
    from .. import config
    from ..functions.bridge import Bridge
    has = {"suppress": any(o.name == "suppress" for o in Bridge.options)}
    probe = host_toml(0, "http://10.99.0.250:2379", "probe", CASES["routes"],
                      {"routes": True, "suppress": has["suppress"]})
    try:
        config.parse(probe)
        has["routes"] = True
    except Exception:  # noqa: BLE001 - an unknown key: not built yet
        has["routes"] = False
    return has


# --- what crosses the fabric ------------------------------------------------------

def classify(frame: bytes) -> tuple[str, int, str, str] | None:
    """A frame on the fabric: (outer source IP, VNI, kind, inner source MAC)
    if it is a VXLAN flood (IPv4 to a multicast group, UDP 4789), else None.
    Kind from the inner destination MAC: ``arp`` (broadcast ARP),
    ``broadcast`` (other), ``multicast``, ``unknown_unicast``."""
    if len(frame) < 14 + 20 + 8 + 8 + 14 or frame[12:14] != b"\x08\x00":
        return None
    ihl = (frame[14] & 0x0F) * 4
    if frame[23] != 17 or not 224 <= frame[30] <= 239:
        return None
    udp = 14 + ihl
    if struct.unpack_from("!H", frame, udp + 2)[0] != 4789 or len(frame) < udp + 8 + 8 + 14:
        return None
    vni = int.from_bytes(frame[udp + 12:udp + 15], "big")
    inner = udp + 16
    dst, etype = frame[inner:inner + 6], frame[inner + 12:inner + 14]
    if dst == b"\xff" * 6:
        kind = "arp" if etype == b"\x08\x06" else "broadcast"
    elif dst[0] & 1:
        kind = "multicast"
    else:
        kind = "unknown_unicast"
    return socket.inet_ntoa(frame[26:30]), vni, kind, frame[inner + 6:inner + 12].hex(":")


class Tap:
    """A packet socket on the fabric switch's own device: every VXLAN flood
    once (the switch delivers multicast to itself too), stamped and
    classified as it arrives."""

    def __init__(self, fabric_ns: str, dev: str = "sw0"):
        netns.pushns(fabric_ns)
        try:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
            self.sock.bind((dev, 0))
        finally:
            netns.popns()
        self.sock.settimeout(0.2)
        self.events: list[tuple[float, str, int, str, str]] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                frame = self.sock.recv(2048)
            except socket.timeout:
                continue
            except OSError:
                return
            ev = classify(frame)
            if ev:
                self.events.append((time.monotonic(), *ev))

    def count(self, t0: float, t1: float) -> dict:
        """{source IP: {kind: n}} of the floods between t0 and t1."""
        out: dict[str, dict] = {}
        for t, src, _vni, kind, _mac in list(self.events):
            if t0 <= t < t1:
                d = out.setdefault(src, dict.fromkeys(KINDS, 0))
                d[kind] += 1
        return out

    def sent_by(self, mac: str, t0: float) -> dict:
        """{kind: n} of the floods since t0 whose inner source is ``mac``."""
        out: dict[str, int] = {}
        for t, _src, _vni, kind, m in list(self.events):
            if t >= t0 and m == mac:
                out[kind] = out.get(kind, 0) + 1
        return out

    def close(self) -> None:
        self._stop.set()
        self._t.join(2)
        self.sock.close()


# --- tenants and their traffic ----------------------------------------------------

class Talk:
    """Every tenant's datagrams, from one thread: each active tenant sends
    ``q`` to its next peer (an active tenant) every ``period`` s (jittered)
    and swaps a peer every ``churn`` s; whoever receives ``q`` answers ``r``.
    An inactive tenant (a new one being timed) sends only what ``send``
    makes it, so nothing else talks to it first. Bounded: about
    len(tenants) / period datagrams a second each way, until ``stop()`` or
    ``limit_s``."""

    def __init__(self, rng: random.Random, period: float = PERIOD_S, churn: float = CHURN_S,
                 k: int = K_PEERS, limit_s: float = 900):
        self.rng, self.period, self.churn, self.k = rng, period, churn, k
        self.sel = selectors.DefaultSelector()
        self.tenants: dict[str, dict] = {}      # name -> {vni, ip, sock, peers}
        self.sent = self.answered = self.errors = 0
        self._heap: list = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + limit_s
        self._t: threading.Thread | None = None

    def socket_in(self, ns: str, ip: str) -> socket.socket:
        """A UDP socket bound to ``ip``:PORT in namespace ``ns`` (main thread)."""
        netns.pushns(ns)
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        finally:
            netns.popns()
        s.bind((ip, PORT))
        s.setblocking(False)
        return s

    def add(self, name: str, ns: str, vni: int, ip: str, active: bool = True) -> dict:
        s = self.socket_in(ns, ip)
        t = {"name": name, "vni": vni, "ip": ip, "sock": s, "peers": [], "i": 0,
             "active": active}
        with self._lock:
            self.tenants[name] = t
            self.sel.register(s, selectors.EVENT_READ, t)
            if active:
                t["peers"] = self._pick(t, self.k)
                now = time.monotonic()
                heapq.heappush(self._heap, (now + self.rng.uniform(0, self.period), "send", name))
                heapq.heappush(self._heap, (now + self.rng.uniform(0.5, 1.5) * self.churn,
                                            "churn", name))
        return t

    def _pick(self, t: dict, n: int, exclude=()) -> list[str]:
        pool = [o["ip"] for o in self.tenants.values() if o["active"] and o["vni"] == t["vni"]
                and o["ip"] != t["ip"] and o["ip"] not in exclude]
        return self.rng.sample(pool, min(n, len(pool)))

    def send(self, t: dict, ip: str) -> bool:
        try:
            t["sock"].sendto(b"q", (ip, PORT))
        except OSError:
            self.errors += 1
            return False
        self.sent += 1
        return True

    def start(self) -> None:
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            with self._lock:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    _, what, name = heapq.heappop(self._heap)
                    t = self.tenants[name]
                    if what == "send" and t["peers"]:
                        t["i"] = (t["i"] + 1) % len(t["peers"])
                        self.send(t, t["peers"][t["i"]])
                        heapq.heappush(self._heap, (now + self.rng.uniform(0.8, 1.2) * self.period,
                                                    "send", name))
                    elif what == "churn" and t["peers"]:
                        new = self._pick(t, 1, exclude=t["peers"])
                        if new:
                            t["peers"][self.rng.randrange(len(t["peers"]))] = new[0]
                        heapq.heappush(self._heap, (now + self.rng.uniform(0.5, 1.5) * self.churn,
                                                    "churn", name))
                wait = max(0.0, min(0.2, (self._heap[0][0] - now) if self._heap else 0.2))
            for key, _ in self.sel.select(wait):
                t = key.data
                with contextlib.suppress(OSError):
                    while True:
                        data, addr = t["sock"].recvfrom(64)
                        if data == b"q":
                            with contextlib.suppress(OSError):
                                t["sock"].sendto(b"r", addr)
                        elif data == b"r":
                            self.answered += 1

    def stop(self) -> None:
        self._stop.set()
        if self._t:
            self._t.join(5)
        for t in self.tenants.values():
            t["sock"].close()
        self.sel.close()


class FloodHosts(Hosts):
    """demos/cluster.Hosts with a bridge config (bridge VNIs, allow =
    "cluster", the case's routes/suppress) and 4 tenants per host."""

    def __init__(self, sim: Sim, etcd: Etcd, case: dict, feats: dict, cluster: str = "floods"):
        super().__init__(sim, etcd, ttl=TTL, vnis=VNIS, tenants=False, cluster=cluster)
        self.case, self.feats = case, feats
        self.fdb_maps: dict[int, Map] = {}
        self.ports: dict[tuple, int] = {}    # (host, vni) -> ifindex of bnp<vni>

    def add(self, i: int) -> str:
        h = self.sim.host(f"h{i}", f"{underlay_ip(i)}/24")
        self.sim.quiet(h)
        self.ns[i] = h
        with open(self.file(i), "w") as f:
            f.write(host_toml(i, self.etcd.url, self.cluster, self.case, self.feats))
        return h

    def tenant(self, i: int, j: int) -> tuple[str, int, str, str]:
        """Host i's tenant j, wired into br<vni>: (namespace, vni, ip, mac)."""
        vni, ip, mac = tenant_addr(i, j)
        ns = self.sim.tenant(self.ns[i], f"h{i}t{j}", f"{ip}/16", f"br{vni}", mac=mac)
        for k, v in TENANT_NEIGH.items():
            self.sim.sysctl(ns, f"net.ipv4.neigh.eth0.{k}", v)
        self.tenants[(i, j)] = ns
        return ns, vni, ip, mac

    def pin(self, i: int, name: str) -> str:
        return os.path.join(self.sim.pin_root, self.ns[i], "bridge", name)

    def allowed(self, i: int) -> set | None:
        """{(vni, remote)} of host i's br_allow, None before the bridge is loaded."""
        try:
            m = Map.pinned(self.pin(i, "br_allow"), abi.BrAllowKey, ctypes.c_uint32)
        except OSError:
            return None
        try:
            return {(k.vni, str(abi.ip_unpack(k.remote))) for k in m.keys_list()}
        finally:
            m.close()

    def ready(self, live) -> bool:
        want = {i: {(v, underlay_ip(j)) for v in VNIS for j in live if j != i} for i in live}
        return all(self.allowed(i) == want[i] for i in live)

    def counters(self, i: int) -> dict:
        """Host i's bridge counters by name (br_stats, br_supp_stats, and
        br_route_stats where the bridge has it)."""
        out = {}
        maps = [("br_stats", abi.BrStats), ("br_supp_stats", abi.BrSuppStats)]
        if hasattr(abi, "BrRouteStats") and os.path.exists(self.pin(i, "br_route_stats")):
            maps.append(("br_route_stats", abi.BrRouteStats))
        for name, typ in maps:
            m = PerCpuArray.pinned(self.pin(i, name), typ)
            try:
                out.update(m.sum_fields(0))
            finally:
                m.close()
        return out

    def fdb_kinds(self, i: int) -> dict:
        """Host i's br_fdb entries: {"route": n, "other": n} (any age)."""
        route = getattr(abi, "BR_FDB_F_ROUTE", 0)
        out = {"route": 0, "other": 0}
        for _, vb, _ in self.fdb_maps[i].dump_batches():
            for v in abi.BR_FDB_VAL.iter_unpack(vb):
                out["route" if v[2] & route else "other"] += 1
        return out

    def open_fdbs(self, live) -> None:
        for i in live:
            self.fdb_maps[i] = Map.pinned(self.pin(i, "br_fdb"), abi.BrFdbKey, abi.BrFdbVal)
            for v in VNIS:
                self.ports[(i, v)] = self.sim.idx(self.ns[i], f"bnp{v}")

    def knows(self, i: int, vni: int, mac: str, vtep: str) -> bool:
        """Host i's br_fdb has {mac, bnp<vni>} -> vtep (one lookup)."""
        key = abi.BrFdbKey(mac=abi.mac_pack(EUI(mac)), port=self.ports[(i, vni)])
        try:
            v = self.fdb_maps[i][key]
        except KeyError:
            return False
        return str(abi.ip_unpack(v.remote)) == vtep

    def close_fdbs(self) -> None:
        for m in self.fdb_maps.values():
            m.close()
        self.fdb_maps.clear()


def _delta(a: dict, b: dict) -> dict:
    return {k: b[k] - a.get(k, 0) for k in b}


def steady(hosts: FloodHosts, tap: Tap, live, talk: Talk, window_s: float) -> dict:
    """Counters and classified floods per host over ``window_s``."""
    c0 = {i: hosts.counters(i) for i in live}
    s0, a0 = talk.sent, talk.answered
    t0 = time.monotonic()
    time.sleep(window_s)
    t1 = time.monotonic()
    c1 = {i: hosts.counters(i) for i in live}
    per_min = 60.0 / (t1 - t0)
    d = {i: _delta(c0[i], c1[i]) for i in live}
    kinds = tap.count(t0, t1)
    rows = {}
    for i in live:
        k = kinds.get(underlay_ip(i), dict.fromkeys(KINDS, 0))
        rows[f"h{i}"] = {"flood": d[i]["flood"], "arp_flood": d[i].get("arp_flood", 0),
                         "arp_local": d[i].get("arp_local"), "arp_reply": d[i].get("arp_reply", 0),
                         "tx": d[i]["tx"], "kinds": k, "fdb": hosts.fdb_kinds(i)}
    out = {"window_s": t1 - t0, "hosts": rows,
           "datagrams": talk.sent - s0, "answered": talk.answered - a0,
           "route_entries": summary([r["fdb"]["route"] for r in rows.values()])}
    for key in ("flood", "arp_flood", "arp_local", "arp_reply", "tx"):
        out[f"{key}_per_min"] = summary([None if r[key] is None else r[key] * per_min
                                         for r in rows.values()])
    for kind in KINDS:
        out[f"{kind}_per_min"] = summary([r["kinds"][kind] * per_min for r in rows.values()])
    return out


def time_to_know(hosts: FloodHosts, live, talk: Talk, tap: Tap, rng: random.Random, n: int,
                 log) -> list[dict]:
    """n new tenants (host at random, VNIs alternating), all wired first,
    then their first frames STAGGER_S apart: seconds from each one's first
    frame until each other host has its MAC in br_fdb (None: not within
    KNOW_TIMEOUT_S of it), and the floods it sent meanwhile (the tap, by
    inner source MAC)."""
    new = []
    for k in range(n):
        i = rng.choice(live)
        j = TENANTS_PER_HOST + k
        ns, vni, ip, mac = hosts.tenant(i, j)
        t = talk.add(f"h{i}t{j}", ns, vni, ip, active=False)
        peers = [o["ip"] for o in list(talk.tenants.values()) if o["active"] and o["vni"] == vni
                 and int(o["ip"].split(".")[2]) != i]
        new.append({"i": i, "vni": vni, "mac": mac, "t": t, "to": rng.choice(peers),
                    "vtep": underlay_ip(i), "others": [h for h in live if h != i],
                    "t0": None, "when": {}})
    time.sleep(0.5)  # the new ports settle; nothing crossed from the new tenants yet
    k = 0
    while True:
        now = time.monotonic()
        if k < len(new) and (k == 0 or now - new[k - 1]["t0"] >= STAGGER_S):
            r = new[k]  # known before its first frame would be a fault of the bench
            r["known_before"] = sum(hosts.knows(h, r["vni"], r["mac"], r["vtep"])
                                    for h in r["others"])
            new[k]["t0"] = time.monotonic()
            talk.send(new[k]["t"], new[k]["to"])
            k += 1
        pending = False
        for r in new[:k]:
            left = [h for h in r["others"] if h not in r["when"]]
            if not left or time.monotonic() - r["t0"] > KNOW_TIMEOUT_S:
                continue
            pending = True
            for h in left:
                if hosts.knows(h, r["vni"], r["mac"], r["vtep"]):
                    r["when"][h] = time.monotonic() - r["t0"]
        if k == len(new) and not pending:
            break
        time.sleep(POLL_S)
    out = []
    for r in new:
        known = [r["when"][h] for h in r["others"] if h in r["when"]]
        row = {"host": f"h{r['i']}", "vni": r["vni"], "mac": r["mac"], "to": r["to"],
               "hosts": len(r["others"]), "known_by": len(known),
               "first_s": min(known) if known else None,
               "all_s": max(known) if len(known) == len(r["others"]) else None,
               "per_host_s": {f"h{h}": r["when"].get(h) for h in r["others"]},
               "floods": tap.sent_by(r["mac"], r["t0"]), "known_before": r["known_before"]}
        log(f"floods: new tenant {r['mac']} on {row['host']} vni {r['vni']}: known by "
            f"{len(known)}/{len(r['others'])}"
            + (f", by all after {row['all_s']:.3f} s" if row["all_s"] is not None else "")
            + (f"; it flooded {row['floods']}" if row["floods"] else ""))
        out.append(row)
    return out


def run_case(name: str, n_hosts: int, warmup_s: float, window_s: float, new_tenants: int,
             feats: dict, seed: int, log) -> dict:
    case = CASES[name]
    rng = random.Random(seed)
    sim = Sim(prefix=f"bf{os.getpid() % 100000}")
    tap = talk = None
    hosts = None
    try:
        fab = sim.fabric()
        etcd = Etcd(sim)
        etcd.start()
        hosts = FloodHosts(sim, etcd, case, feats)
        live = list(range(n_hosts))
        talk = Talk(rng)
        for i in live:
            hosts.add(i)
        for i in live:
            for j in range(TENANTS_PER_HOST):
                ns, vni, ip, _ = hosts.tenant(i, j)
                talk.add(f"h{i}t{j}", ns, vni, ip)
        t0 = time.monotonic()
        for i in live:
            hosts.start(i)
        end = t0 + 180
        while not hosts.ready(live):
            dead = [i for i in live if hosts.agents[i].poll() is not None]
            if dead or time.monotonic() > end:
                why = f"h{dead[0]} exited" if dead else "timeout"
                return {"status": f"agents not ready ({why}): "
                                  f"{hosts.log(dead[0] if dead else 0, 5)}"}
            time.sleep(0.2)
        ready_s = time.monotonic() - t0
        log(f"floods: {case['label']}: {n_hosts} agents ready after {ready_s:.1f} s; "
            f"warm-up {warmup_s:g} s, window {window_s:g} s")
        hosts.open_fdbs(live)
        tap = Tap(fab)
        talk.start()
        time.sleep(warmup_s)
        st = steady(hosts, tap, live, talk, window_s)
        log(f"floods: {case['label']}: floods per host per minute "
            f"{fmt_summary(st['flood_per_min'], digits=1)}")
        know = time_to_know(hosts, live, talk, tap, rng, new_tenants, log)
        all_s = [r["all_s"] for r in know]
        return {"status": "ok", "label": case["label"], "routes": case["routes"],
                "suppress": case["suppress"],
                "applied": {"routes": feats["routes"], "suppress": feats["suppress"]},
                "hosts": n_hosts, "ready_s": ready_s, "steady": st, "new_tenants": know,
                "know_all_s": summary(all_s),
                "know_first_s": summary([r["first_s"] for r in know]),
                "never_all": sum(1 for x in all_s if x is None),
                "loadavg": list(os.getloadavg())}
    finally:
        if talk:
            talk.stop()
        if tap:
            tap.close()
        if hosts:
            hosts.close_fdbs()
        sim.cleanup()


def run(quick: bool, log, n_hosts: int = 10, cases=tuple(CASES), rounds: int = 1,
        seed: int = 15) -> dict:
    """Every case on a fresh cluster, interleaved over ``rounds``."""
    feats = features()
    warmup_s, window_s, new = (15.0, 20.0, 3) if quick else (20.0, 60.0, 6)
    out = {"hosts": n_hosts, "tenants_per_host": TENANTS_PER_HOST, "vnis": list(VNIS),
           "warmup_s": warmup_s, "window_s": window_s, "period_s": PERIOD_S, "peers": K_PEERS,
           "churn_s": CHURN_S, "tenant_neigh": TENANT_NEIGH, "features": feats,
           "cases": {c: [] for c in cases}}
    for r in range(rounds):
        for c in cases:
            log(f"floods: {CASES[c]['label']}, round {r + 1} of {rounds}")
            out["cases"][c].append(run_case(c, n_hosts, warmup_s, window_s, new, feats,
                                            seed + r, log))
    return out


# --- the report ---------------------------------------------------------------------

def _merge(runs: list[dict], key: str) -> dict:
    """One summary of a steady-state figure over every host of every round."""
    vals = []
    for r in runs:
        if r.get("status") == "ok":
            vals += (r["steady"].get(key) or {}).get("values", [])
    return summary(vals)


def _ok(runs: list[dict]) -> list[dict]:
    return [r for r in runs if r.get("status") == "ok"]


def _know(runs: list[dict]) -> tuple[dict, int, int, str]:
    """(summary of all-hosts times, tenants never known by all, tenants, hosts
    that knew them when not all did)."""
    rows = [t for r in _ok(runs) for t in r["new_tenants"]]
    s = summary([t["all_s"] for t in rows])
    partial = [f"{t['known_by']}/{t['hosts']}" for t in rows if t["all_s"] is None]
    return s, len(partial), len(rows), ", ".join(partial)


def markdown(fl: dict) -> list[str]:
    out = ["## Floods in a cluster: learning against routes + suppression", ""]
    cases = fl.get("cases") or {}
    if not any(_ok(v) for v in cases.values()):
        why = "; ".join(f"{c}: {r.get('status')}" for c, v in cases.items() for r in v) or \
            "no case ran"
        return out + [f"Not measured: {why}", ""]
    f = fl["features"]
    missing = [k for k in ("routes", "suppress") if not f.get(k)]
    rows, krows = [], []
    for c, runs in cases.items():
        ok = _ok(runs)
        label = CASES[c]["label"]
        if not ok:
            rows.append([label, runs[0].get("status") if runs else "not run"] + [""] * 6)
            continue
        dg = sum(r["steady"]["datagrams"] for r in ok)
        an = sum(r["steady"]["answered"] for r in ok)
        rows.append([label] + [fmt_summary(_merge(ok, k), digits=1) for k in (
            "flood_per_min", "arp_flood_per_min", "arp_local_per_min", "arp_reply_per_min",
            "route_entries")] + [f"{an:,} / {dg:,}", f"{ok[0]['loadavg'][0]:.1f}"])
        krow = [label] + [fmt_summary(_merge(ok, f"{k}_per_min"), digits=1) for k in KINDS]
        krows.append(krow)
    out += [f"{fl['hosts']} hosts in namespaces, each with `bpfnetctl agent` (`[cluster]`, "
            f"bridge VNIs {' and '.join(str(v) for v in fl['vnis'])} with `allow = \"cluster\"`) "
            f"and {fl['tenants_per_host']} tenants (half in each VNI), etcd in its own namespace. "
            f"Each tenant sends a UDP datagram every {fmt(fl['period_s'])} s to the next of its "
            f"{fl['peers']} peers (random tenants of its VNI, answered), swapping one every "
            f"~{fl['churn_s']:g} s; tenant ARP entries live 5-15 s and re-validate by broadcast. "
            f"Per host, over {fl['window_s']:g} s after {fl['warmup_s']:g} s of warm-up, from "
            "the bridge's own counters; median (min–max) over the hosts.", ""]
    if missing:
        out += [f"This checkout has no {' and no '.join(missing)} yet: those keys were left "
                "out of the hosts' files (the bridge's defaults ran), so the cases differ only "
                "in what is built.", ""]
    out += [md_table(["case", "floods / host / min", "of them: ARP, no binding",
                      "ARP for a tenant of the same host, kept home / min",
                      "ARP answered on the host / min",
                      "route entries in br_fdb", "datagrams answered / sent", "load avg"],
                     rows), "",
            "The same floods by kind, from the fabric (per host per minute):", "",
            md_table(["case", "ARP (broadcast)", "other broadcast", "multicast",
                      "unknown unicast"], krows), ""]
    trows = []
    for c, runs in cases.items():
        if not _ok(runs):
            continue
        s, never, n, partial = _know(runs)
        first = summary([t["first_s"] for r in _ok(runs) for t in r["new_tenants"]])
        flooded = [t for r in _ok(runs) for t in r["new_tenants"] if t.get("floods")]
        trows.append([CASES[c]["label"], fmt_summary(first, digits=3),
                      fmt_summary(s, digits=3), f"{n - never} of {n}",
                      partial or "-", f"{len(flooded)} of {n}"])
    out += ["A new tenant's MAC: seconds from its first frame (a datagram to a tenant of its "
            "VNI on another host) until the first and until every other host has it in "
            f"`br_fdb` (polled every {POLL_S * 1000:g} ms on the pinned map), median "
            f"(min–max); within {KNOW_TIMEOUT_S:g} s or never.", "",
            md_table(["case", "first host s", "every host s", "known by all",
                      "hosts that knew it otherwise", "tenants whose frames flooded"],
                     trows), ""]
    early = sum(1 for runs in cases.values() for r in _ok(runs) for t in r["new_tenants"]
                if t.get("known_before"))
    if early:
        out += [f"{early} new tenant(s) were known somewhere before their first frame: "
                "those times are not what they say.", ""]
    return out


def targets(data: dict) -> list[dict]:
    fl = data.get("floods") or {}
    runs = _ok((fl.get("cases") or {}).get("routes", []))
    if not runs or not fl["features"].get("routes") or not fl["features"].get("suppress"):
        return []
    m = _merge(runs, "flood_per_min")["median"]
    base = _ok((fl.get("cases") or {}).get("learning", []))
    b = _merge(base, "flood_per_min")["median"] if base else None
    out = [{"target": f"{fl['hosts']} hosts, routes + suppression: floods per host per minute "
                      "close to zero (median < 1)",
            "measured": None if m is None else f"{m:.1f}" + (f" (learning only: {b:.1f})"
                                                            if b is not None else ""),
            "met": m is not None and m < 1}]
    s, never, n, _ = _know(runs)
    out.append({"target": f"{fl['hosts']} hosts, routes: every other host knows a new MAC "
                          f"(all of {n})",
                "measured": None if s["max"] is None else
                f"max {s['max']:.2f} s, {n - never} of {n}",
                "met": n > 0 and never == 0})
    return out
