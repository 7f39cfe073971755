"""Summaries of repeated measurements, the targets, and the Markdown/JSON
report.

    data["datapath"]["bridge"]["tcp_gbps"] = summary([9.8, 13.0, 12.2])
    text, md_path, json_path = publish(data, "build/bench")
"""
from __future__ import annotations

import json
import os
import platform
import statistics


def summary(values: list[float]) -> dict:
    """median, min, max and every round's value (None when nothing ran)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0, "values": []}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "n": len(vals), "values": vals}


def ratio(a: dict | None, b: dict | None) -> float | None:
    """median(a) / median(b)."""
    if not a or not b or not a.get("median") or not b.get("median"):
        return None
    return a["median"] / b["median"]


def fmt(v, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.{digits}f}"


def fmt_summary(s: dict | None, scale: float = 1.0, digits: int = 2) -> str:
    """'median (min-max)'."""
    if not s or s.get("median") is None:
        return "-"
    return (f"{fmt(s['median'] * scale, digits)} "
            f"({fmt(s['min'] * scale, digits)}–{fmt(s['max'] * scale, digits)})")


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |",
           "| " + " | ".join("---" for _ in header) + " |"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def machine() -> dict:
    """What the run ran on: CPU, cores, memory, kernel, load."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu": model, "cores": os.cpu_count(), "memory_mib": mem,
            "kernel": platform.release(), "python": platform.python_version(),
            "loadavg": list(os.getloadavg())}


class CpuSampler:
    """Share of the machine's CPU time spent busy between two samples
    (/proc/stat), to say how loaded a shared machine was."""

    def __init__(self):
        self.start = self._read()

    @staticmethod
    def _read():
        with open("/proc/stat") as f:
            vals = [int(x) for x in f.readline().split()[1:]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
        return sum(vals[:8]), idle

    def busy(self) -> float:
        tot, idle = self._read()
        dt, di = tot - self.start[0], idle - self.start[1]
        return 0.0 if dt <= 0 else 1.0 - di / dt


def write(out_dir: str, data: dict, markdown: str) -> tuple[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    jp, mp = os.path.join(out_dir, "bench.json"), os.path.join(out_dir, "bench.md")
    for path, text in ((jp, json.dumps(data, indent=2, sort_keys=False) + "\n"), (mp, markdown)):
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    return mp, jp


# --- the Markdown and the targets ---------------------------------------------------

# TCP per CPU s: both iperf3 ends pinned to one CPU, their CPU time plus that
# CPU's ksoftirqd (datapath.py), so the softirq work deferred there counts.
DP_METRICS = (("tcp_gbps", "TCP Gbit/s", 1, 2),
              ("tcp_gbit_per_cpu_s", "TCP Gbit per CPU s", 1, 2),
              ("udp_pps", "64 B kpps", 1e-3, 0),
              ("udp_pps_per_cpu_s", "64 B kpps per CPU s", 1e-3, 0))
# issue 14's goals for the native paths (per CPU second against the kernel)
NATIVE_GOALS = (("udp_pps_per_cpu_s", "64 B, per CPU s", 1.10),
                ("tcp_gbit_per_cpu_s", "TCP, per CPU s", 1.0))


def md_datapath(dp: dict, rounds: int, seconds: float) -> list[str]:
    from .datapath import REFERENCE
    ref = dp.get(REFERENCE, {})
    rows = []
    for key, r in dp.items():
        if r["status"] != "ok":
            rows.append([r["label"], r["status"]] + [""] * (2 * len(DP_METRICS) - 1))
            continue
        row = [r["label"]]
        for k, _, scale, digits in DP_METRICS:
            row += [fmt_summary(r.get(k), scale, digits), fmt_ratio(ratio(r.get(k), ref.get(k)))]
        rows.append(row)
    head = ["variant"]
    for _, name, _, _ in DP_METRICS:
        head += [name, "vs kernel"]
    out = ["## Data path: two hosts, tenant to tenant", "",
           f"Median (min–max) of {rounds} interleaved rounds; ratios of medians against the "
           "kernel's VXLAN + Linux bridge (multicast). TCP: one iperf3 stream, "
           f"{seconds:g} s after 1 s omitted. 64 B: 18-byte UDP payloads (64-byte frames with "
           f"FCS) sent with sendmmsg for {seconds:g} s, counted as delivered into the receiving "
           "tenant. Underlay MTU 1550, tenant MTU 1500; bridged frames skip iptables. On veth "
           "every hop of a frame runs in the sender's context, so the 64 B path is CPU-bound "
           "on one core: \"per CPU s\" divides the frames delivered by the sending thread's "
           "CPU time, which is what a dedicated core would do and stays steady while the "
           "wall-clock figures swing with the machine's load.", "",
           md_table(head, rows), ""]
    b, m = dp.get("bridge"), dp.get("bridge-mon")
    if b and m and b["status"] == "ok" and m["status"] == "ok":
        cost = [[f"{(1 - (ratio(m.get(k), b.get(k)) or 1)) * 100:+.1f} %"
                 for k, _, _, _ in DP_METRICS]]
        out += ["Monitor cost (bridge + monitor against bridge, same run; positive = slower):",
                "", md_table([name for _, name, _, _ in DP_METRICS], cost), ""]
    return out


def md_progs(pr: dict) -> list[str]:
    rows = []
    for c in pr["cases"]:
        if "ns" not in c:
            rows.append([c["fn"], "", c["status"], "", ""])
            continue
        what = c["what"] + ("" if c["status"] == "ok" else f" ({c['status']})")
        rows.append([c["fn"], f"`{c['prog']}`", what,
                     fmt_summary(c["ns"]["64"], digits=0), fmt_summary(c["ns"]["1400"], digits=0)])
    return ["## Per packet: BPF_PROG_TEST_RUN", "",
            f"Mean ns per run over {pr['repeat']:,} repeats, median (min–max) of "
            f"{pr['rounds']} interleaved rounds. Ingress programs run behind the test-side "
            "tunnel injector (its cost alone is the last row).", "",
            md_table(["function", "program", "case", "64 B ns", "1400 B ns"], rows), ""]


def md_control(cp: dict) -> list[str]:
    out = ["## Control plane", ""]
    ld = cp.get("load")
    if ld:
        out += [f"`{ld['argv']}` as a whole process (fresh namespace, {ld['wall_s']['n']} rounds): "
                f"wall {fmt_summary(ld['wall_s'], digits=3)} s, peak RSS "
                f"{fmt_summary(ld['peak_rss_mib'], digits=1)} MiB.", ""]
    fdb = cp.get("fdb")
    if fdb:
        rows = []

        def cell(d, k):
            s = d.get(k) if d else None
            if not s or s.get("median") is None:
                return "-"
            if "extrapolated_from" in s:
                return f"~{fmt(s['median'], 3)} (extrapolated from {int(s['extrapolated_from']):,})"
            return fmt_summary(s, digits=3)

        def sp(a, b, k):
            r = ratio((b or {}).get(k), (a or {}).get(k))
            return fmt_ratio(r)
        for n, row in fdb.items():
            b, kb, kp = row["bpfnet"], row["kernel_batch"], row["kernel_pyroute2"]
            rows.append([f"provision {int(n):,}", cell(b, "provision_s"),
                         cell(kb, "provision_s"), cell(kp, "provision_s"),
                         sp(b, kb, "provision_s"), sp(b, kp, "provision_s")])
        for n, row in fdb.items():
            b, kb, kp = row["bpfnet"], row["kernel_batch"], row["kernel_pyroute2"]
            if b.get("json_s"):
                rows.append([f"dump {int(n):,} as JSON", cell(b, "json_s"),
                             cell(kb, "json_s"), cell(kp, "json_s"), sp(b, kb, "json_s"),
                             sp(b, kp, "json_s")])
        for n, row in fdb.items():
            rows.append([f"dump {int(n):,}, batches only", cell(row["bpfnet"], "dump_s"),
                         "", "", "", ""])
        out += ["FDB entries, seconds, median (min–max). bpfnet: `Map.update_raw` / "
                "`Map.dump_batches` (batch syscalls, 4096 entries a call, keys and values in "
                "contiguous buffers) on the bridge's `br_fdb` resized to 2M entries; JSON: "
                "`Bridge.fdb()` + `cli.to_json` (the `fdb show --json` path). Kernel: the FDB of "
                "a VXLAN device (MAC -> remote VTEP) over raw netlink, many requests per sendmsg "
                "(batched), and through pyroute2, one request at a time.", "",
                md_table(["operation", "bpfnet s", "kernel netlink batched s",
                          "kernel pyroute2 s", "speedup vs batched", "speedup vs pyroute2"],
                         rows), ""]
    return out


def monitor_estimate(data: dict) -> float | None:
    """The monitor's share of a 64-byte frame's path, from this run's figures:
    (monitor_egress + monitor_ingress ns under test_run) x the bridge's frames
    per CPU second, the inverse of the whole path's CPU cost per frame."""
    dp = (data.get("datapath") or {}).get("bridge") or {}
    pps = (dp.get("udp_pps_per_cpu_s") or {}).get("median")
    ns = 0.0
    for c in (data.get("progs") or {}).get("cases", []):
        if c.get("fn") == "monitor" and c.get("status") == "ok":
            ns += c["ns"]["64"]["median"]
    if not pps or not ns:
        return None
    return ns * 1e-9 * pps * 100


def targets(data: dict) -> list[dict]:
    """The issue's targets, each a ratio or a time from this run."""
    out = []
    dp = data.get("datapath") or {}
    ref, br, mon = dp.get("kernel-mcast"), dp.get("bridge"), dp.get("bridge-mon")

    def ok(r):
        return r and r.get("status") == "ok"
    pairs = (("tcp_gbps", "TCP"), ("udp_pps_per_cpu_s", "64 B, per CPU s"),
             ("udp_pps", "64 B, wall clock"))
    if ok(ref) and ok(br):
        for k, name in pairs:
            r = ratio(br.get(k), ref.get(k))
            out.append({"target": f"bridge >= 1.0x kernel bridge ({name})",
                        "measured": None if r is None else f"{r:.2f}x",
                        "met": r is not None and r >= 1.0})
    for key, name in (("bridge", "bridge"), ("mesh", "mesh")):
        r0 = dp.get(key)
        if not (ok(ref) and ok(r0)):
            continue
        for k, what, goal in NATIVE_GOALS:
            r = ratio(r0.get(k), ref.get(k))
            out.append({"target": f"{name} (native) >= {goal:.2f}x kernel ({what})",
                        "measured": None if r is None else f"{r:.2f}x",
                        "met": r is not None and r >= goal})
    if ok(br) and ok(mon):
        for k, name in pairs:
            r = ratio(mon.get(k), br.get(k))
            cost = None if r is None else (1 - r) * 100
            out.append({"target": f"monitor costs <= 2 % ({name})",
                        "measured": None if cost is None else f"{cost:+.1f} %",
                        "met": cost is not None and cost <= 2.0})
    est = monitor_estimate(data)
    if est is not None:
        out.append({"target": "monitor costs <= 2 % (64 B, estimated: test_run ns x frames "
                              "per CPU s)",
                    "measured": f"{est:.1f} %", "met": est <= 2.0})
    fdb = (data.get("control") or {}).get("fdb") or {}
    for n, key, limit, what in (("1000000", "provision_s", 1.0, "1M FDB entries provisioned"),
                                ("100000", "json_s", 1.0, "100k FDB entries dumped as JSON")):
        row = fdb.get(n)
        if not row or not row["bpfnet"].get(key):
            continue
        t = row["bpfnet"][key]["median"]
        out.append({"target": f"{what} in <= {limit:g} s", "measured": f"{t:.3f} s",
                    "met": t <= limit})
        for who, label in (("kernel_batch", "kernel netlink batched"),
                           ("kernel_pyroute2", "kernel via pyroute2")):
            r = ratio(row[who].get(key), row["bpfnet"][key])
            ex = " (extrapolated)" if row[who].get(key, {}).get("extrapolated_from") else ""
            out.append({"target": f"{what}: >= 20x {label}",
                        "measured": None if r is None else f"{r:.1f}x{ex}",
                        "met": r is not None and r >= 20})
    from . import cluster, floods  # bench/cluster.py and floods.py check their own goals
    out += cluster.targets(data)
    out += floods.targets(data)
    return out


def markdown(data: dict) -> str:
    m, cfg = data["machine"], data["config"]
    out = ["# bpfnet benchmarks", "",
           f"Run {data['started']} on {m['cpu'] or 'unknown CPU'}, {m['cores']} cores, "
           f"{m['memory_mib']:,} MiB, kernel {m['kernel']}. Machine load: load average "
           f"{m['loadavg'][0]:.2f} at start, {data['loadavg_end'][0]:.2f} at end; "
           f"CPU busy {data['cpu_busy'] * 100:.0f} % of the machine during the run "
           f"(the benchmark included). Took {data['elapsed_s']:.0f} s. "
           f"Reproduce: `make bench` ({data['command']}).", ""]
    if "datapath" in data:
        out += md_datapath(data["datapath"], cfg["rounds"], cfg["seconds"])
    if "progs" in data:
        out += md_progs(data["progs"])
    if "control" in data:
        out += md_control(data["control"])
    if "cluster" in data:  # bench/cluster.py renders its own section
        from . import cluster
        out += cluster.markdown(data["cluster"])
    if "floods" in data:  # bench/floods.py too
        from . import floods
        out += floods.markdown(data["floods"])
    t = data.get("targets") or []
    if t:
        out += ["## Targets", "",
                md_table(["target", "measured", "met"],
                         [[x["target"], x["measured"] or "-", "yes" if x["met"] else "**no**"]
                          for x in t]), ""]
    return "\n".join(out)


def publish(data: dict, out_dir: str) -> tuple[str, str, str]:
    """Checks the targets into ``data``, renders it, writes DIR/bench.md and
    DIR/bench.json; returns (Markdown, its path, the JSON's path)."""
    data["targets"] = targets(data)
    text = markdown(data)
    mp, jp = write(out_dir, data, text)
    return text, mp, jp
