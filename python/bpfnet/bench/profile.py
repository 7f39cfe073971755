"""Where the time goes: perf profiles of the data path variants.

    python -m bpfnet.bench.profile [--out DIR] [--seconds S] [--rounds N]
                                   [--variants kernel-mcast,bridge,mesh,no-encap]
                                   [--tests tcp,udp] [--cpu N] [--top N]

Writes DIR/profile.md and DIR/profile.json (default build/bench) and prints
the Markdown. Needs root, perf and bpftool, iperf3 and the built objects.

The variants are datapath.py's, built the same way (their own namespaces).
For each round, test and variant (interleaved like the bench) it runs
``perf record -a -g -e cpu-clock`` for the length of one transfer: an iperf3
stream t0 -> t1 (tcp), or datapath.py's 64-byte UDP blast (udp). Samples
count for the variant when they fall in its traffic ends' processes (the
iperf3 client and server; the blasting thread) or in a ksoftirqd thread
(softirq work the kernel deferred; on this machine little else runs
softirqs, and its share is reported apart). Reported per variant:

  - CPU cost: sampled CPU ns per KiB (tcp) or per frame (udp) delivered, and
    the share of it in ksoftirqd (which iperf3's own CPU figure omits);
  - the top kernel symbols by self time, in % of the variant's samples;
  - inclusive shares (a sample counts when a frame of its call chain
    matches) of the paths that could explain a difference: headroom
    reallocation, software GSO, checksums, route lookups, the VXLAN
    device's transmit and receive, GRO, the bridge, the copies to and from
    user space, and the BPF programs;
  - each attached BPF program's own cost from the kernel's run-time stats
    (kernel.bpf_stats_enabled, on only for a pass of transfers of its own,
    the old value restored after): runs, ns per run, and data per run (the
    average frame a program sees: GSO super-frames on TCP).

The traffic ends are pinned to one CPU (--cpu, default the last), as the
bench's TCP measurement is.

Everything runs inside the variants' namespaces; every transfer is bounded in
time; the namespaces go on exit, failure or SIGTERM. The profile perturbs
what it measures a little (sampling at 999 Hz); compare variants, not runs.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from .. import signals
from ..sim import tenant_ip
from . import datapath, report
from .blast import Blaster

DEFAULT_VARIANTS = ("kernel-mcast", "bridge", "mesh", "no-encap")
TESTS = ("tcp", "udp")
REFERENCE = datapath.REFERENCE
DIFFS = 10
# frames every path shares, whose inclusive share only says in which context
# (the sender's write, the receiver's read, ksoftirqd) the softirq work ran
GENERIC = re.compile(r"^(\[unknown\]|entry_SYSCALL|do_syscall_64|x64_sys_call|__x64_sys_|"
                     r"__sys_|ksys_|vfs_|sock_write_iter|sock_read_iter|sock_recvmsg|"
                     r"sock_sendmsg|__sock_sendmsg|inet_sendmsg|inet_recvmsg|____sys_|"
                     r"___sys_|__GI_|__libc|tcp_sendmsg|tcp_recvmsg|udp_sendmsg|"
                     r"ret_from_fork|kthread|smpboot_thread_fn|run_ksoftirqd|do_softirq|"
                     r"__local_bh_enable_ip|handle_softirqs|__do_softirq|irq_exit|"
                     r"main$|_start$|__libc_start|iperf|new_sync_|[0-9a-f]+$)")
FREQ = 999
BPF_STATS = "/proc/sys/kernel/bpf_stats_enabled"

# (label, regex on a call chain's symbols): inclusive shares
PATHS = [
    ("headroom: pskb_expand_head", r"^pskb_expand_head$"),
    ("software GSO: skb_segment", r"^skb_segment$"),
    ("checksum: csum_partial / skb_checksum", r"^(csum_partial|skb_checksum|__skb_checksum|"
                                              r"skb_checksum_help|do_csum)$"),
    ("route: fib_table_lookup / ip_route_output", r"^(fib_table_lookup|ip_route_output_key_hash"
                                                  r"(_rcu)?|ip_route_output_flow|fib6_table_lookup"
                                                  r"|ip6_pol_route)$"),
    ("VXLAN device transmit: vxlan_xmit", r"^vxlan_xmit$"),
    ("VXLAN device receive: vxlan_rcv", r"^vxlan_rcv$"),
    ("UDP tunnel GRO: udp_gro_receive", r"^udp_gro_receive$"),
    ("GRO: napi_gro_receive / gro_receive_skb", r"^(napi_gro_receive|gro_receive_skb|"
                                                r"dev_gro_receive)$"),
    ("bridge: br_handle_frame", r"^br_handle_frame$"),
    ("bridge transmit: br_dev_xmit", r"^br_dev_xmit$"),
    ("veth transmit: veth_xmit", r"^veth_xmit$"),
    ("tc: tcf_classify / tcx", r"^(tcf_classify|tcx_run|sch_handle_egress|sch_handle_ingress)$"),
    ("BPF programs (JIT)", r"^bpf_prog_"),
    ("copy to/from user", r"^(_copy_to_iter|_copy_from_iter|copy_user_generic|"
                          r"rep_movs_alternative|copy_user_enhanced_fast_string|"
                          r"_copy_from_iter_full|skb_copy_datagram_iter|__skb_datagram_iter)$"),
    ("TCP send: tcp_sendmsg", r"^tcp_sendmsg$"),
    ("TCP receive: tcp_recvmsg", r"^tcp_recvmsg$"),
    ("TCP rx: tcp_v4_rcv", r"^tcp_v4_rcv$"),
    ("UDP send: udp_sendmsg", r"^udp_sendmsg$"),
    ("netif_receive_skb core", r"^__netif_receive_skb_core"),
    ("memory: kmem_cache / page alloc+free", r"^(kmem_cache_alloc|kmem_cache_free|__alloc_pages|"
                                             r"__free_pages_ok|free_unref_page|"
                                             r"kmalloc_reserve|__kmalloc_node_track_caller|"
                                             r"skb_release_data|kfree_skb_list_reason)"),
]
_PATHS = [(label, re.compile(rx)) for label, rx in PATHS]


def parse(argv):
    p = argparse.ArgumentParser(prog="python -m bpfnet.bench.profile",
                                description="perf profiles of the data path variants")
    p.add_argument("--out", default="build/bench", help="output directory (default build/bench)")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds per transfer (default 4)")
    p.add_argument("--rounds", type=int, default=2, help="rounds (default 2)")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                   help="comma-separated datapath variants")
    p.add_argument("--tests", default="tcp,udp", help="tcp, udp or both")
    p.add_argument("--cpu", type=int, default=datapath.tcp_cpu(),
                   help="pin the traffic ends (iperf3 client and server, the UDP sender) to "
                   "this CPU, as the bench does (default: the last CPU); -1: no pinning")
    p.add_argument("--top", type=int, default=12, help="symbols per variant (default 12)")
    a = p.parse_args(argv)
    a.variants = [v for v in a.variants.split(",") if v]
    known = {c.key for c in datapath.VARIANTS}
    bad = [v for v in a.variants if v not in known]
    if bad:
        p.error(f"unknown variant {bad[0]!r}")
    if a.cpu is not None and a.cpu < 0:
        a.cpu = None
    a.tests = [t for t in a.tests.split(",") if t]
    if any(t not in TESTS for t in a.tests):
        p.error("tests: tcp, udp")
    return a


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- perf --------------------------------------------------------------------------

class Record:
    """``perf record -a -g`` into a temporary file for ``seconds``."""

    def __init__(self, path: str, seconds: float):
        self.path = path
        self.proc = subprocess.Popen(
            ["perf", "record", "-q", "-a", "-g", "-e", "cpu-clock", "-F", str(FREQ),
             "-o", path, "--", "sleep", f"{seconds:.2f}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise RuntimeError("perf record did not finish")
        if self.proc.returncode != 0:
            raise RuntimeError(f"perf record: exit {self.proc.returncode}: "
                               f"{self.proc.stderr.read().decode().strip()[-300:]}")


def samples(path: str):
    """Yields parse_script's samples from a perf.data file."""
    p = subprocess.Popen(["perf", "script", "-i", path, "-F", "comm,pid,tid,period,ip,sym"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        yield from parse_script(p.stdout)
    finally:
        p.stdout.close()
        p.wait(60)


_HDR = re.compile(r"^(\S.*?)\s+(\d+)/(\d+)\s+(\d+)\s*$")


def parse_script(lines):
    """Yields (comm, pid, tid, period_ns, [symbols, leaf first]) from the
    lines of ``perf script -F comm,pid,tid,period,ip,sym`` with call chains:
    a header line per sample, then one indented "<address> <symbol>+<off>"
    line per frame, then a blank line."""
    head, chain = None, []
    for line in lines:
        if not line.strip():
            if head:
                yield (*head, chain)
            head, chain = None, []
        elif line[0] not in " \t":
            m = _HDR.match(line.rstrip("\n"))
            head = (m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))) \
                if m else None
            chain = []
        else:
            parts = line.split(None, 1)
            sym = parts[1].strip() if len(parts) > 1 else "[unknown]"
            chain.append(sym.split("+0x")[0])
    if head:
        yield (*head, chain)


class Profile:
    """Samples of one variant and test, summed over rounds."""

    def __init__(self):
        self.n = 0
        self.ns = 0
        self.softirqd_ns = 0
        self.self_ns = collections.Counter()
        self.incl_ns = collections.Counter()   # each symbol once per sample
        self.path_ns = collections.Counter()
        self.units = 0.0          # KiB (tcp) or frames (udp) delivered

    def add(self, found, pids: set[int], tids: set[int]) -> int:
        """Adds the samples (parse_script's) that are the variant's: in
        ``pids`` or ``tids`` or a ksoftirqd; returns their CPU ns."""
        ns = self.ns
        for comm, pid, tid, period, chain in found:
            softirqd = comm.startswith("ksoftirqd/")
            if not (softirqd or pid in pids or tid in tids):
                continue
            self.n += 1
            self.ns += period
            if softirqd:
                self.softirqd_ns += period
            self.self_ns[chain[0] if chain else "[unknown]"] += period
            for sym in set(chain):
                self.incl_ns[sym] += period
            seen = set()
            for label, rx in _PATHS:
                if any(rx.search(s) for s in chain):
                    seen.add(label)
            for label in seen:
                self.path_ns[label] += period
        return self.ns - ns

    def result(self, top: int) -> dict:
        def pct(v):
            return 100.0 * v / self.ns if self.ns else None
        def per(v):
            return v / self.units if self.units else None
        return {"samples": self.n, "cpu_s": self.ns / 1e9, "units": self.units,
                "self_per_unit": {s: per(v) for s, v in self.self_ns.most_common(300)},
                "incl_per_unit": {s: per(v) for s, v in self.incl_ns.most_common(300)},
                "cpu_ns_per_unit": self.ns / self.units if self.units else None,
                "ksoftirqd_pct": pct(self.softirqd_ns),
                "top": [{"sym": s, "pct": pct(v)} for s, v in self.self_ns.most_common(top)],
                "paths": {label: pct(self.path_ns[label]) for label, _ in PATHS}}


# --- BPF run-time stats ---------------------------------------------------------------

def prog_ids(sim) -> dict[int, str]:
    """{prog id: "<host>: <program> (<hook> of ifindex N)"} of the programs
    bpfnet attached in ``sim`` (its tcx links, pinned as link_<hook>_<ifindex>
    under the sim's pin root; tc mode: the programs pinned there)."""
    from .. import libbpf
    out = {}
    for root, _, files in os.walk(sim.pin_root):
        host = os.path.basename(os.path.dirname(root)).rsplit("-", 1)[-1]
        for name in files:
            path = os.path.join(root, name)
            m = re.match(r"^link_(ingress|egress)_(\d+)$", name)
            try:
                fd = libbpf.obj_get(path)
            except OSError:
                continue
            try:
                if m:
                    pid = libbpf.link_info(fd).prog_id
                    where = f"{m.group(1)} of ifindex {m.group(2)}"
                elif re.match(r"^\w+_(ingress|egress|decap)$", name):
                    pid = libbpf.prog_info(fd).id
                    where = "tc"
                else:
                    continue
                pfd = libbpf.prog_get_fd_by_id(pid)
                try:
                    pname = libbpf.prog_info(pfd).name.decode()
                finally:
                    os.close(pfd)
            except OSError:
                continue
            finally:
                os.close(fd)
            out[pid] = f"{host}: {pname} ({where})"
    return out


def prog_stats(ids) -> dict[int, tuple[int, int]]:
    """{prog id: (run_time_ns, run_cnt)}."""
    out = {}
    for i in ids:
        r = subprocess.run(["bpftool", "prog", "show", "id", str(i), "-j"],
                           capture_output=True, text=True, timeout=10)
        try:
            j = json.loads(r.stdout)
        except ValueError:
            continue
        out[i] = (j.get("run_time_ns", 0), j.get("run_cnt", 0))
    return out


class BpfStats:
    """kernel.bpf_stats_enabled on while it is held, the old value back after."""

    def __enter__(self):
        with open(BPF_STATS) as f:
            self.old = f.read().strip()
        with open(BPF_STATS, "w") as f:
            f.write("1")
        return self

    def __exit__(self, *exc):
        with open(BPF_STATS, "w") as f:
            f.write(self.old)


# --- transfers ---------------------------------------------------------------------

def tcp(v, seconds: float, rec_path: str | None, cpu: int | None = None
        ) -> tuple[float, set, set, dict]:
    """One iperf3 stream, under perf into ``rec_path`` unless None: (KiB
    received, pids, tids, iperf3's figures)."""
    pin = ["-A", f"{cpu},{cpu}"] if cpu is not None else []
    client = v.sim.spawn(v.tenants[0], ["iperf3", "-c", tenant_ip(1), "-t", f"{seconds:g}",
                                        "-J", *pin], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    rec = Record(rec_path, seconds + 0.3) if rec_path else None
    try:
        out, _ = client.communicate(timeout=seconds + 30)
    finally:
        if rec:
            rec.wait(seconds + 30)
    end = datapath.iperf3_end(v.key, out)
    bits = end["sum_received"]["bytes"] * 8
    used = datapath.iperf3_cpu(end) * end["sum_received"]["seconds"]
    figures = {"gbps": end["sum_received"]["bits_per_second"] / 1e9,
               "iperf3_cpu_s": used, "bits": bits}
    return end["sum_received"]["bytes"] / 1024, {client.pid, v._server.pid}, set(), figures


def udp(v, seconds: float, rec_path: str | None, cpu: int | None = None
        ) -> tuple[float, set, set, dict]:
    """datapath's 64-byte blast, under perf unless ``rec_path`` is None:
    (frames delivered, pids, tids, figures)."""
    tx = Blaster(v._tx, datapath.UDP_PAYLOAD)
    old = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        return _udp(v, tx, seconds, rec_path)
    finally:
        os.sched_setaffinity(0, old)


def _udp(v, tx, seconds, rec_path):
    tx.run(0.2)
    before = v.rx_packets()
    rec = Record(rec_path, seconds + 0.2) if rec_path else None
    time.sleep(0.1)
    c = time.thread_time()
    sent = tx.run(seconds)
    dc = time.thread_time() - c
    if rec:
        rec.wait(seconds + 30)
    time.sleep(0.05)
    got = v.rx_packets() - before
    return got, set(), {threading.get_native_id()}, {"sent": sent, "thread_cpu_s": dc}


# --- run ---------------------------------------------------------------------------

def run(args) -> dict:
    run_id = uuid.uuid4().hex[:4]
    classes = {c.key: c for c in datapath.VARIANTS}
    variants, out = [], {}
    tmp = tempfile.mkdtemp(prefix="bpfnet-profile-")
    try:
        for key in args.variants:
            v = classes[key](run_id)
            out[key] = {"label": v.label, "status": "ok"}
            try:
                v.check()
                v.setup()
                variants.append(v)
                log(f"  {key}: built")
            except Exception as e:
                out[key]["status"] = f"setup failed: {type(e).__name__}: {e}"
                log(f"  {key}: {out[key]['status']}")
                v.teardown()
        ids = {v.key: prog_ids(v.sim) for v in variants}
        profs = {(v.key, t): Profile() for v in variants for t in args.tests}
        extra = {(v.key, t): collections.defaultdict(float) for v in variants for t in args.tests}
        progs = {(v.key, t): {} for v in variants for t in args.tests}
        rounds_ = {(v.key, t): [] for v in variants for t in args.tests}
        for r in range(args.rounds):
            for t in args.tests:
                for v in variants:
                    path = os.path.join(tmp, f"{v.key}-{t}-{r}.data")
                    try:
                        units, pids, tids, fig = (tcp if t == "tcp" else udp)(
                            v, args.seconds, path, args.cpu)
                    except Exception as e:
                        out[v.key].setdefault("errors", []).append(f"round {r} {t}: {e}")
                        log(f"  {v.key} {t}: {e}")
                        continue
                    p = profs[(v.key, t)]
                    p.units += units
                    ns = p.add(samples(path), pids, tids)
                    # per round: Gbit (tcp) or kframes (udp) per sampled CPU s
                    per = units * 8 * 1024 / 1e9 if t == "tcp" else units / 1e3
                    rounds_[(v.key, t)].append(per / (ns / 1e9) if ns else None)
                    for k, val in fig.items():
                        extra[(v.key, t)][k] += val
                    os.unlink(path)
            log(f"  round {r + 1}/{args.rounds} done")
        # the programs' own cost in a pass of its own: the stats cost two
        # clock reads per run, which must not weigh on the profiles
        with BpfStats():
            for t in args.tests:
                for v in variants:
                    if not ids[v.key]:
                        continue
                    before = prog_stats(ids[v.key])
                    try:
                        units = (tcp if t == "tcp" else udp)(v, args.seconds, None, args.cpu)[0]
                    except Exception as e:
                        log(f"  {v.key} {t} (bpf stats): {e}")
                        continue
                    for i, (ns, cnt) in prog_stats(ids[v.key]).items():
                        b = before.get(i, (0, 0))
                        progs[(v.key, t)][i] = [ns - b[0], cnt - b[1], units]
        for v in variants:
            for t in args.tests:
                res = profs[(v.key, t)].result(args.top)
                res.update(dict(extra[(v.key, t)]))
                res["per_sampled_cpu_s"] = report.summary(rounds_[(v.key, t)])
                res["progs"] = [
                    {"prog": ids[v.key][i], "runs": cnt, "ns_per_run": ns / cnt,
                     "runs_per_unit": cnt / units if units else None}
                    for i, (ns, cnt, units) in sorted(progs[(v.key, t)].items()) if cnt]
                out[v.key][t] = res
    finally:
        for v in variants:
            v.teardown()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# --- report ------------------------------------------------------------------------

def _p(v) -> str:
    return "-" if v is None else f"{v:.1f} %"


def markdown(data: dict) -> str:
    prof = data["profile"]
    tests = data["config"]["tests"]
    keys = [k for k, r in prof.items() if r["status"] == "ok"]
    m = data["machine"]
    out = [f"# bpfnet data path profile, {data['started']}", "",
           f"`{data['command']}`: {data['config']['rounds']} interleaved rounds x "
           f"{data['config']['seconds']:g} s per variant and test, perf record -a -g, "
           f"cpu-clock at {FREQ} Hz, traffic ends on CPU {data['config'].get('cpu')}. "
           f"Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, "
           f"kernel {m.get('kernel', '?')}; load average {data['loadavg_start'][0]:.2f} at the start, "
           f"{data['loadavg_end'][0]:.2f} at the end.", ""]
    for k, r in prof.items():
        if r["status"] != "ok":
            out += [f"- {k}: {r['status']}", ""]
    for t in tests:
        unit = "KiB" if t == "tcp" else "frame"
        out += [f"## {t.upper()}", ""]
        rows = []
        for k in keys:
            res = prof[k].get(t)
            if not res:
                continue
            cost = res["cpu_ns_per_unit"]
            if t == "tcp":
                iperf = res["bits"] / 1e9 / res["iperf3_cpu_s"] if res["iperf3_cpu_s"] else None
                rows.append([prof[k]["label"], report.fmt(cost), _p(res["ksoftirqd_pct"]),
                             report.fmt_summary(res["per_sampled_cpu_s"]), report.fmt(iperf),
                             report.fmt(res["gbps"] / data["config"]["rounds"]),
                             str(res["samples"])])
            else:
                own = res["units"] / res["thread_cpu_s"] / 1e3 if res["thread_cpu_s"] else None
                rows.append([prof[k]["label"], report.fmt(cost), _p(res["ksoftirqd_pct"]),
                             report.fmt_summary(res["per_sampled_cpu_s"]), report.fmt(own),
                             str(res["samples"])])
        if t == "tcp":
            hdr = ["variant", f"sampled CPU ns per {unit}", "in ksoftirqd",
                   "Gbit per sampled CPU s, median (range)", "Gbit per CPU s (iperf3's)",
                   "Gbit/s (mean)", "samples"]
        else:
            hdr = ["variant", f"sampled CPU ns per {unit}", "in ksoftirqd",
                   "kframes per sampled CPU s, median (range)",
                   "kframes per CPU s (sender thread)", "samples"]
        out += [report.md_table(hdr, rows), ""]
        out += [f"Inclusive cost by path ({t}): sampled CPU ns per {unit} (share of the "
                "variant's samples); a sample counts for a path when a frame of its call "
                "chain matches:", ""]
        prow = []
        for label, _ in PATHS:
            cells = []
            for k in keys:
                res = prof[k].get(t, {})
                pct = res.get("paths", {}).get(label)
                cost = res.get("cpu_ns_per_unit")
                cells.append("-" if not pct or cost is None
                             else f"{pct * cost / 100:.0f} ({pct:.1f} %)")
            if all(c == "-" for c in cells):
                continue
            prow.append([label] + cells)
        out += [report.md_table(["path"] + keys, prow), ""]
        ref = REFERENCE if REFERENCE in keys else (keys[0] if keys else None)
        for k in keys:
            if k == ref or not prof[k].get(t) or not prof[ref].get(t):
                continue
            out += [f"Where {k} spends more than {ref} ({t}): the largest differences, "
                    f"sampled CPU ns per {unit}, self and inclusive:", ""]
            rows = []
            for kind in ("self_per_unit", "incl_per_unit"):
                a, b = prof[k][t][kind], prof[ref][t][kind]
                diff = sorted(((a.get(x, 0) - b.get(x, 0), x) for x in set(a) | set(b)
                               if not GENERIC.search(x)), reverse=True)[:DIFFS]
                rows.append([f"{x} +{d:.0f}" for d, x in diff])
            out += [report.md_table(["self", "inclusive"], list(map(list, zip(*rows)))), ""]
        out += [f"Top symbols by self time ({t}, % of the variant's samples):", ""]
        n = max((len(prof[k].get(t, {}).get("top", [])) for k in keys), default=0)
        trow = []
        for i in range(n):
            cells = []
            for k in keys:
                top = prof[k].get(t, {}).get("top", [])
                cells.append(f"{top[i]['sym']} {top[i]['pct']:.1f}" if i < len(top) else "")
            trow.append([str(i + 1)] + cells)
        out += [report.md_table(["#"] + keys, trow), ""]
        brow = []
        for k in keys:
            for pr in prof[k].get(t, {}).get("progs", []):
                brow.append([pr["prog"], f"{pr['runs']:,}", report.fmt(pr["ns_per_run"]),
                             report.fmt(1 / pr["runs_per_unit"] if pr["runs_per_unit"] else None)])
        if brow:
            out += [f"BPF programs' own cost ({t}, kernel.bpf_stats_enabled):", ""]
            out += [report.md_table(["program", "runs", "ns per run", f"data {unit}s per run"],
                                    brow), ""]
    return "\n".join(out)


def main(argv=None) -> int:
    args = parse(argv)
    if os.geteuid() != 0:
        log("profile: needs root")
        return 2
    for tool in ("perf", "bpftool", "iperf3"):
        if not shutil.which(tool):
            log(f"profile: needs {tool}")
            return 2
    data = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": report.machine(),
            "command": "python -m bpfnet.bench.profile " + " ".join(
                argv if argv is not None else sys.argv[1:]),
            "config": {"rounds": args.rounds, "seconds": args.seconds, "tests": args.tests,
                       "cpu": args.cpu,
                       "variants": args.variants, "freq": FREQ},
            "loadavg_start": list(os.getloadavg())}
    with signals.stopping():
        data["profile"] = run(args)
    data["loadavg_end"] = list(os.getloadavg())
    text = markdown(data)
    os.makedirs(args.out, exist_ok=True)
    mp, jp = os.path.join(args.out, "profile.md"), os.path.join(args.out, "profile.json")
    with open(jp, "w") as f:
        json.dump(data, f, indent=1)
    with open(mp, "w") as f:
        f.write(text + "\n")
    print(text)
    log(f"profile: wrote {mp} and {jp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
