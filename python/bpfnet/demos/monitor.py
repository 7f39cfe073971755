"""The seed's tunnel-monitor simulation: hosts on one L2 fabric, four VNIs of
kernel-native VXLAN (one multicast group each), one client per host and VNI,
the monitor on host0's underlay; host0's clients send at different rates.

     h0c0..h0c3            h1c0..h1c3            h2c0..h2c3            h3c0..h3c3
     192.168.<v>.1         192.168.<v>.2         192.168.<v>.3         192.168.<v>.4
       br0..br3              br0..br3              br0..br3              br0..br3
     vxlan0..3 (VNI 10000+v, group 239.1.1.<v+1>)    ...
     h0 eth0 172.16.1.100  h1 eth0 172.16.1.101  h2 eth0 172.16.1.102  h3 eth0 172.16.1.103
     [monitor]
        +-------------------------- fabric sw0 (L2) -------------------------+

`demo monitor --keep` then serves the live page on 127.0.0.1:8080 (--listen)
while bounded rounds of the same traffic keep it moving, until SIGINT,
SIGTERM or SIGHUP removes it all.
"""
from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading

from . import finish
from ..sim import Sim

N_HOSTS = 4
VNIS = (0, 1, 2, 3)            # VNI 10000 + v, as in the seed
PORT = 4789
LISTEN = ("127.0.0.1", 8080)
# host0's client in VNI v talks to host PEER[v] at its own rate and size
PEER = (1, 2, 3, 1)
INTERVAL = (0.02, 0.05, 0.1, 0.25)
COUNT = (100, 40, 20, 8)
SIZE = (56, 200, 500, 1000)
KEEP_ROUNDS = 60               # --keep: at most this many rounds of traffic ...
KEEP_PAUSE = 8                 # ... this many seconds apart (about 10 minutes)


def vni_id(v: int) -> int:
    return 10000 + v


def underlay_ip(i: int) -> str:
    return f"172.16.1.{100 + i}"


def client_ip(i: int, v: int) -> str:
    return f"192.168.{v}.{i + 1}"


def frame_bytes(size: int) -> int:
    """One echo request or reply on the underlay: outer Ethernet, IPv4, UDP,
    VXLAN (50 bytes), inner Ethernet, IPv4, ICMP (42) and the payload."""
    return 50 + 42 + size


def build(sim: Sim, n_hosts: int = N_HOSTS, vnis=VNIS, say=lambda *_: None) -> dict:
    """The hosts, their VXLAN devices, bridges and clients; the monitor on h0."""
    sim.fabric()
    hosts, clients = [], {}
    for i in range(n_hosts):
        h = sim.host(f"h{i}", f"{underlay_ip(i)}/24")
        hosts.append(h)
        sim.quiet(h)
        with sim.ipr(h) as ipr:
            eth0 = ipr.link_lookup(ifname="eth0")[0]
            for v in vnis:
                br = sim.bridge(h, f"br{v}")
                ipr.link("add", ifname=f"vxlan{v}", kind="vxlan", vxlan_id=vni_id(v),
                         vxlan_link=eth0, vxlan_port=PORT, vxlan_group=f"239.1.1.{v + 1}")
                vx = ipr.link_lookup(ifname=f"vxlan{v}")[0]
                ipr.link("set", index=vx, master=br, state="up")
        for v in vnis:
            c = sim.ns(f"h{i}c{v}")
            sim.quiet(c)
            sim.veth(h, f"th{i}c{v}", c, "eth0")
            sim.enslave(h, f"th{i}c{v}", f"br{v}")
            sim.addr(c, "eth0", f"{client_ip(i, v)}/24")
            clients[(i, v)] = c
    say(f"$ bpfnetctl --netns {hosts[0]} load monitor --dev eth0")
    sim.bpfnetctl("load", "monitor", "--dev", "eth0", netns_=hosts[0])
    return {"hosts": hosts, "clients": clients, "vnis": tuple(vnis)}


def settle(sim: Sim, topo) -> bool:
    """One answered ping per pair first (ARP through the groups)."""
    return all(sim.ping_until(topo["clients"][(0, v)], client_ip(PEER[v], v), tries=5)
               for v in topo["vnis"])


def traffic(sim: Sim, topo, scale: float = 1.0) -> list[dict]:
    """host0's clients ping their peers at the same time, each at its own
    rate and size (bounded by count and deadline). Returns one row per client."""
    procs = []
    for v in topo["vnis"]:
        count = max(1, int(COUNT[v] * scale))
        argv = ["ping", "-n", "-q", "-c", str(count), "-i", str(INTERVAL[v]),
                "-s", str(SIZE[v]), "-W", "1", "-w", str(int(count * INTERVAL[v]) + 5),
                client_ip(PEER[v], v)]
        p = sim.spawn(topo["clients"][(0, v)], argv, stdout=subprocess.PIPE,
                      stderr=subprocess.DEVNULL, text=True)
        procs.append((v, count, p))
    rows = []
    for v, count, p in procs:
        out, _ = p.communicate(timeout=count * INTERVAL[v] + 15)
        m = re.search(r"(\d+) (?:packets )?received", out)
        rows.append({"vni": vni_id(v), "client": client_ip(0, v),
                     "peer": client_ip(PEER[v], v), "rate_pps": round(1 / INTERVAL[v]),
                     "size": SIZE[v], "sent": count, "received": int(m.group(1)) if m else 0})
    return rows


def _stats(sim: Sim, ns: str) -> list[dict]:
    _, out, _ = sim.bpfnetctl("stats", "--json", netns_=ns)
    return json.loads(out)


def _key(r):
    return (r["vni"], r["outer_sip"], r["outer_dip"], r["inner_sip"], r["inner_dip"])


def check(before: list[dict], after: list[dict], rows: list[dict]) -> list[dict]:
    """Per client: what the monitor counted for its pings, and whether that is
    exactly what ping sent and received."""
    old = {_key(r): r for r in before}
    out = []
    for row in rows:
        v = row["vni"] - 10000
        key = (row["vni"], underlay_ip(0), underlay_ip(PEER[v]), row["client"], row["peer"])
        new = next((r for r in after if _key(r) == key), None)
        prev = old.get(key, {"tx_pkts": 0, "tx_bytes": 0, "rx_pkts": 0, "rx_bytes": 0})
        got = {c: (new[c] if new else 0) - prev[c]
               for c in ("tx_pkts", "tx_bytes", "rx_pkts", "rx_bytes")}
        b = frame_bytes(row["size"])
        exact = got == {"tx_pkts": row["sent"], "tx_bytes": row["sent"] * b,
                        "rx_pkts": row["received"], "rx_bytes": row["received"] * b}
        out.append({**row, "tx_pkts": got["tx_pkts"], "rx_pkts": got["rx_pkts"],
                    "tx_bytes": got["tx_bytes"], "rx_bytes": got["rx_bytes"],
                    "exact": "yes" if exact else "NO"})
    return out


def serve(sim: Sim, topo, say, sock) -> int:
    """--keep: the live page on the listening ``sock`` while bounded rounds
    of traffic run, until SIGINT, SIGTERM or SIGHUP (returns it)."""
    from ..functions.base import PinDir
    from ..ui.server import MonitorSource, UiServer, serving
    srv = UiServer(sock, MonitorSource(PinDir(sim.pin_root, topo["hosts"][0]), "eth0"))
    done = threading.Event()

    def rounds():
        for _ in range(KEEP_ROUNDS):
            if done.is_set():
                return
            with contextlib.suppress(Exception):  # the simulation may be going away
                traffic(sim, topo, scale=0.5)
            done.wait(KEEP_PAUSE)
    gen = threading.Thread(target=rounds, daemon=True)
    with serving(srv):
        gen.start()
        host = srv.server_address[0]
        say(f"# live page: http://{f'[{host}]' if ':' in host else host}:{srv.server_port}/  "
            f"(Prometheus: /metrics); traffic for about {KEEP_ROUNDS * KEEP_PAUSE // 60} minutes")
        try:
            return sim.hold(say)
        finally:
            done.set()
            sim.stop_procs()  # the round in flight ends now
            gen.join(10)


def run(keep: bool, say, prefix: str | None = None, listen=LISTEN) -> int:
    from ..cli import table
    from ..ui.server import listen_socket
    sock = listen_socket(*listen) if keep else None  # a taken port fails before anything is built
    sim = Sim(prefix=prefix)
    try:
        say(f"# monitor demo: {N_HOSTS} hosts, VNIs {', '.join(str(vni_id(v)) for v in VNIS)} "
            f"(kernel VXLAN, multicast groups), monitor on h0's eth0, run {sim.prefix}")
        topo = build(sim, say=say)
        h0 = topo["hosts"][0]
        ok = settle(sim, topo)
        before = _stats(sim, h0)
        say("")
        say("# h0's clients ping their peers at the same time, at different rates")
        rows = traffic(sim, topo)
        after = _stats(sim, h0)
        checked = check(before, after, rows)
        say(table(checked, ["vni", "client", "peer", "rate_pps", "size", "sent", "received",
                            "tx_pkts", "rx_pkts", "tx_bytes", "rx_bytes", "exact"]))
        say("")
        say(f"$ bpfnetctl --netns {h0} stats")
        _, out, _ = sim.bpfnetctl("stats", netns_=h0)
        say(out.rstrip())
        _, out, _ = sim.bpfnetctl("status", "--json", netns_=h0)
        st = json.loads(out)["functions"]["monitor"]
        c = st["counters"]
        say("")
        say(f"# h0 monitor: {st['flows']} flows, {st['evicted']} evicted; frames: "
            f"vxlan={c['vxlan']} other={c['other']} malformed={c['malformed']}")
        ok = ok and all(r["exact"] == "yes" and r["received"] == r["sent"] for r in checked)
        code = finish(sim, say, ok, "every ping counted exactly (packets and bytes, both ways)")
        if keep:
            serve(sim, topo, say, sock)
        return code
    finally:
        if sock is not None:
            sock.close()
        sim.cleanup()
