"""Membership convergence: N namespaced hosts, each with its agent
(``bpfnetctl --netns hN agent -f hN.toml``, mesh VNI 10 with ``peers =
"cluster"``), and etcd in its own namespace (demos/cluster.py builds them).

Events alternate: a host leaves (its agent stops: SIGTERM revokes its lease)
and joins again (its agent starts). For each, the time from the action until
every other host's agent has logged the change to its mesh (``agent: - mesh
peer IP vni 10``; each agent's stderr is read as it comes, stamped on arrival),
then checked against every host's pinned ``mesh_peers``. A join is timed from
the agent's start (a Python process: imports, file, etcd session), and also
from the moment its key appears in etcd (an observer member with no VNIs
watches the prefix), which is the membership's own share. Each event also
records the CPU time each other agent spent on it: on 2 cores, N agents
reconciling at once queue behind each other, which a host with its own CPU
does not.

At rest (converged, nothing happening): every agent's RSS and CPU time over
10 s, from /proc. The goal (< 2 s) is reported, not asserted.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

from ..demos.cluster import PY, VNI, Etcd, Hosts
from ..sim import Sim, underlay_ip
from .report import fmt_summary, md_table, summary

GOAL_S = 2.0
POLL_S = 0.02


class Observer:
    """``python -m bpfnet.cluster member`` with no VNIs (nobody peers with
    it): the wall-clock time each host appears in or leaves its view."""

    def __init__(self, sim: Sim, ns: str, url: str, cluster: str):
        rec = {"vtep": "10.99.0.249", "port": 4789, "bridge_vnis": [], "mesh_vnis": []}
        self.proc = sim.spawn(ns, [PY, "-m", "bpfnet.cluster", "member", "--etcd", url,
                                   "--cluster", cluster, "--host", "observer", "--ttl", "10",
                                   "--record", json.dumps(rec)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.seen: dict[str, float] = {}    # host -> last time it appeared
        self.gone: dict[str, float] = {}    # host -> last time it left
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        view: set = set()
        for line in self.proc.stdout:
            ev = json.loads(line)
            if ev["event"] != "hosts":
                continue
            now = set(ev["hosts"])
            with self._lock:
                for h in now - view:
                    self.seen[h] = ev["t"]
                for h in view - now:
                    self.gone[h] = ev["t"]
            view = now

    def appeared(self, host: str, after: float, timeout: float = 30) -> float | None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                t = self.seen.get(host)
            if t is not None and t >= after:
                return t
            time.sleep(POLL_S)
        return None


def _proc_stats(pid: int) -> tuple[float, float]:
    """(CPU seconds used, RSS MiB) of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    return cpu, rss


def at_rest(pids: list[int], seconds: float) -> dict:
    before = {p: _proc_stats(p)[0] for p in pids}
    time.sleep(seconds)
    cpu, rss = [], []
    for p in pids:
        c, r = _proc_stats(p)
        cpu.append((c - before[p]) / seconds * 100)
        rss.append(r)
    return {"seconds": seconds, "cpu_pct": summary(cpu), "rss_mib": summary(rss)}


def run(quick: bool, log) -> dict:
    n = 5 if quick else 20
    events = 4 if quick else 20  # half leaves, half joins
    ttl = 10
    sim = Sim(prefix=f"bc{os.getpid() % 100000}")
    try:
        sim.fabric()
        etcd = Etcd(sim)
        etcd.start()
        hosts = Hosts(sim, etcd, ttl=ttl, tenants=False, cluster="bench")
        live = list(range(n))
        for i in live:
            hosts.add(i)
        obs = Observer(sim, etcd.ns, etcd.url, "bench")
        t0 = time.monotonic()
        for i in live:
            hosts.start(i)
        took = hosts.wait_converged(live, timeout=180, step=0.1)
        if took is None:
            return {"status": f"the {n} agents did not converge: {hosts.log(0, 5)}"}
        start_s = time.monotonic() - t0
        log(f"cluster: {n} agents converged {start_s:.1f} s after their start")
        rest = at_rest([p.pid for p in hosts.agents.values()], 10 if not quick else 3)
        rest_etcd = _proc_stats(etcd.proc.pid)[1]
        leave, join, join_etcd, cpu = [], [], [], []
        for k in range(events):
            i = n - 1 - (k // 2) % n
            others = [j for j in live if j != i]
            pids = [hosts.agents[j].pid for j in others]
            cpu0 = {p: _proc_stats(p)[0] for p in pids}
            if k % 2 == 0:
                sign, what, series = "-", "leaves", leave
                t = time.monotonic()
                hosts.stop(i, signal.SIGTERM)
                live.remove(i)
            else:
                sign, what, series = "+", "joins", join
                wall, t = time.time(), time.monotonic()
                hosts.start(i)
                live.append(i)
            line = f"{sign} mesh peer {underlay_ip(i)} vni {VNI}"
            done = [hosts.logged(j, line, t, timeout=ttl + 30) for j in others]
            ok = None not in done and hosts.wait_converged(live, timeout=10, step=0.1) is not None
            series.append(max(done) - t if ok else None)
            cpu.append(sum(_proc_stats(p)[0] - cpu0[p] for p in pids) / len(pids))
            if what == "joins":
                seen = obs.appeared(f"h{i}", wall)
                join_etcd.append(series[-1] - (seen - wall) if ok and seen is not None else None)
            log(f"cluster: h{i} {what}: " + (f"{series[-1]:.2f} s" if ok else "not converged"))
            time.sleep(1)
        return {"status": "ok", "hosts": n, "ttl": ttl, "events": events,
                "start_all_s": start_s, "leave_s": summary(leave), "join_s": summary(join),
                "join_from_etcd_s": summary(join_etcd), "event_cpu_s": summary(cpu), "rest": rest,
                "etcd_rss_mib": rest_etcd, "goal_s": GOAL_S}
    finally:
        sim.cleanup()


def _max(s: dict | None):
    return None if not s else s.get("max")


def markdown(cl: dict) -> list[str]:
    out = ["## Cluster membership: agents and etcd", ""]
    if cl.get("status") != "ok":
        return out + [f"Not measured: {cl.get('status')}", ""]
    r = cl["rest"]
    rows = [["a host leaves (agent stopped, lease revoked)", fmt_summary(cl["leave_s"], digits=2),
             f"{cl['leave_s']['n']}"],
            ["a host joins (from its agent's start)", fmt_summary(cl["join_s"], digits=2),
             f"{cl['join_s']['n']}"],
            ["a host joins (from its key in etcd)", fmt_summary(cl["join_from_etcd_s"], digits=2),
             f"{cl['join_from_etcd_s']['n']}"]]
    return out + [
        f"{cl['hosts']} hosts in namespaces, each with `bpfnetctl agent` (mesh VNI 10, "
        f"`peers = \"cluster\"`, TTL {cl['ttl']} s), etcd 3.4 in its own namespace, all on "
        "this machine's cores. Seconds until every other host's agent has changed its mesh "
        "(its log line, stamped on arrival; then checked against every pinned `mesh_peers`), "
        f"median (min–max). All {cl['hosts']} agents were meshed {cl['start_all_s']:.1f} s after "
        "they were started together.", "",
        md_table(["event", "seconds", "n"], rows), "",
        f"CPU time each other agent spent on one event: {fmt_summary(cl['event_cpu_s'], digits=3)}"
        f" s; {cl['hosts'] - 1} agents doing that at once on this machine's cores queue behind "
        "each other, a host with a CPU of its own does not.", "",
        f"At rest ({r['seconds']:g} s, converged): agent CPU "
        f"{fmt_summary(r['cpu_pct'], digits=2)} % of a core, RSS "
        f"{fmt_summary(r['rss_mib'], digits=1)} MiB per agent; etcd RSS "
        f"{cl['etcd_rss_mib']:.0f} MiB.", ""]


def targets(data: dict) -> list[dict]:
    cl = data.get("cluster") or {}
    if cl.get("status") != "ok":
        return []
    out = []
    for key, what in (("join_s", "join"), ("leave_s", "leave")):
        m = _max(cl[key])
        out.append({"target": f"{cl['hosts']} hosts: every host's peers right after a {what} "
                              f"in < {GOAL_S:g} s (max of {cl[key]['n']})",
                    "measured": None if m is None else f"{m:.2f} s",
                    "met": m is not None and m < GOAL_S})
    return out
