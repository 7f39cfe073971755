"""python -m bpfnet.bench [--out DIR] [--quick] [--rounds N] [--seconds S]
                         [--only datapath,progs,control,cluster,floods] [--variants a,b]
                         [--flood-hosts N] [--flood-cases learning,routes]
                         [--flood-rounds N] [--render bench.json]

Writes DIR/bench.md and DIR/bench.json and prints the table. Needs root,
iperf3 (datapath), etcd (cluster, floods) and the built objects (make).
Takes about fifteen minutes in full (the floods 3.5 a round); --quick (1
round, 1 s, 100k test_run repeats, FDB up to 100k, shorter flood windows) is
for development. SIGTERM, SIGINT or SIGHUP stops it: what was built is
removed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import uuid

from .. import signals
from . import report

SECTIONS = ("datapath", "progs", "control", "cluster", "floods")


def parse(argv):
    p = argparse.ArgumentParser(prog="python -m bpfnet.bench",
                                description="bpfnet against the kernel's own VXLAN bridge")
    p.add_argument("--out", default="build/bench", help="output directory (default build/bench)")
    p.add_argument("--quick", action="store_true",
                   help="development run: 1 round, 1 s, 100k repeats, FDB up to 100k")
    p.add_argument("--rounds", type=int, help="rounds per measurement (default 5)")
    p.add_argument("--seconds", type=float, help="seconds per traffic run (default 3)")
    p.add_argument("--repeat", type=int, help="BPF_PROG_TEST_RUN repeats (default 1000000)")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"comma-separated sections of {', '.join(SECTIONS)}")
    p.add_argument("--variants", help="comma-separated data path variants (default all)")
    p.add_argument("--flood-hosts", type=int, default=10,
                   help="hosts in the flood bench's cluster (default 10)")
    p.add_argument("--flood-cases", default="learning,routes",
                   help="flood bench cases: learning, routes (default both)")
    p.add_argument("--flood-rounds", type=int, default=1,
                   help="rounds of the flood cases, interleaved (default 1)")
    p.add_argument("--render", metavar="JSON",
                   help="only rewrite the Markdown (and targets) from an earlier bench.json")
    a = p.parse_args(argv)
    a.only = [s for s in a.only.split(",") if s]
    bad = [s for s in a.only if s not in SECTIONS]
    if bad:
        p.error(f"unknown section {bad[0]!r}")
    a.flood_cases = [c for c in a.flood_cases.split(",") if c]
    bad = [c for c in a.flood_cases if c not in ("learning", "routes")]
    if bad:
        p.error(f"unknown flood case {bad[0]!r}")
    if a.flood_hosts < 2 or a.flood_rounds < 1:
        p.error("--flood-hosts needs 2 or more, --flood-rounds 1 or more")
    q = a.quick
    a.rounds = a.rounds or (1 if q else 5)
    a.seconds = a.seconds or (1.0 if q else 3.0)
    a.repeat = a.repeat or (100_000 if q else 1_000_000)
    a.fdb_counts = [10_000, 100_000] if q else [10_000, 100_000, 1_000_000]
    a.pyroute2_once = 10_000 if q else 100_000
    a.variants = a.variants.split(",") if a.variants else None
    return a


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def preflight(only) -> str | None:
    if os.geteuid() != 0:
        return "needs root (CAP_BPF, CAP_NET_ADMIN, namespaces)"
    if "datapath" in only and not shutil.which("iperf3"):
        return "needs iperf3 (make deps)"
    from ..demos.cluster import ETCD
    if {"cluster", "floods"} & set(only) and not os.access(ETCD, os.X_OK):
        return f"needs {ETCD} (etcd-server, make deps)"
    return None


def main(argv=None) -> int:
    args = parse(argv)
    if args.render:
        with open(args.render) as f:
            return publish(json.load(f), args.out)
    why = preflight(args.only)
    if why:
        log(f"bench: {why}")
        return 2
    with signals.stopping():
        try:
            return measure(args, argv)
        except signals.Stopped as e:
            log(f"bench: {e}: everything it built is removed")
            return 128 + e.signum


def measure(args, argv) -> int:
    run_id = uuid.uuid4().hex[:4]
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    t0 = time.monotonic()
    cpu = report.CpuSampler()
    data = {"started": started, "machine": report.machine(),
            "command": "python -m bpfnet.bench " + " ".join(argv if argv is not None
                                                             else sys.argv[1:]),
            "config": {"rounds": args.rounds, "seconds": args.seconds, "repeat": args.repeat,
                       "fdb_counts": args.fdb_counts, "quick": args.quick}}
    if "datapath" in args.only:
        from . import datapath
        log(f"datapath: {args.rounds} rounds x {args.seconds:g} s")
        data["datapath"] = datapath.run(run_id, args.rounds, args.seconds, log, args.variants)
    if "progs" in args.only:
        from . import progs
        log(f"progs: BPF_PROG_TEST_RUN x {args.repeat:,}")
        data["progs"] = progs.run(args.rounds, args.repeat, log)
    if "control" in args.only:
        from . import control
        log("control: load bridge")
        cp = {"load": control.load_bridge(args.rounds, log)}
        log(f"control: FDB {', '.join(f'{n:,}' for n in args.fdb_counts)}")
        cp["fdb"] = control.fdb(args.fdb_counts, args.rounds, log,
                                json_max=100_000, pyroute2_full=10_000,
                                pyroute2_once=args.pyroute2_once)
        data["control"] = cp
    if "cluster" in args.only:  # bench/cluster.py: agents and etcd
        from . import cluster
        log("cluster: agents with peers from etcd, join/leave convergence")
        data["cluster"] = cluster.run(args.quick, log)
    if "floods" in args.only:  # bench/floods.py: learning against routes + suppression
        from . import floods
        log(f"floods: {args.flood_hosts} hosts, cases {', '.join(args.flood_cases)}")
        data["floods"] = floods.run(args.quick, log, n_hosts=args.flood_hosts,
                                    cases=tuple(args.flood_cases), rounds=args.flood_rounds)
    data["elapsed_s"] = time.monotonic() - t0
    data["cpu_busy"] = cpu.busy()
    data["loadavg_end"] = list(os.getloadavg())
    return publish(data, args.out)


def publish(data: dict, out: str) -> int:
    """The targets, the Markdown and the JSON into ``out``; prints the table."""
    text, mp, jp = report.publish(data, out)
    print(text)
    log(f"bench: wrote {mp} and {jp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
