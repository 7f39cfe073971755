"""The bench's report without running a benchmark: summaries, formatting,
the targets and the Markdown from a made-up run. Pure: no root. (Nothing
here times anything: benchmarks are not tests.)"""
import json

from bpfnet.bench import report


def s(*vals):
    return report.summary(list(vals))


def test_summary_and_ratio():
    assert s(3, 1, 2) == {"median": 2, "min": 1, "max": 3, "n": 3, "values": [3, 1, 2]}
    assert s(None, 4) == {"median": 4, "min": 4, "max": 4, "n": 1, "values": [4]}
    assert s()["median"] is None and s()["n"] == 0
    assert report.ratio(s(6), s(3)) == 2.0
    assert report.ratio(s(), s(3)) is None and report.ratio(None, s(3)) is None


def test_formatting():
    assert [report.fmt(v) for v in (None, "x", 1234.5, 123.4, 12.34, 1.234)] == \
        ["-", "x", "1,234", "123", "12.3", "1.23"]
    assert report.fmt_summary(s(1.5, 2.5, 3.5)) == "2.50 (1.50–3.50)"
    assert report.fmt_summary(s(120e3, 110e3), scale=1e-3, digits=0) == "115 (110–120)"
    assert report.fmt_summary(None) == "-" and report.fmt_ratio(None) == "-"
    assert report.fmt_ratio(0.754) == "0.75x"
    assert report.md_table(["a", "b"], [[1, "x"]]) == "| a | b |\n| --- | --- |\n| 1 | x |"


def run_data():
    """A made-up run: bridge at 0.9x the kernel, the monitor costing 5 %."""
    dp = {
        "bridge": {"label": "bpfnet bridge", "status": "ok", "tcp_gbps": s(9, 10),
                   "udp_pps": s(100e3), "udp_pps_per_cpu_s": s(120e3)},
        "bridge-mon": {"label": "bpfnet bridge + monitor", "status": "ok", "tcp_gbps": s(9.5),
                       "udp_pps": s(95e3), "udp_pps_per_cpu_s": s(114e3)},
        "kernel-mcast": {"label": "kernel VXLAN + bridge (multicast)", "status": "ok",
                         "tcp_gbps": s(10.5), "udp_pps": s(100e3), "udp_pps_per_cpu_s": s(100e3)},
        "mesh": {"label": "bpfnet mesh", "status": "not available: object not built"},
    }
    progs = {"repeat": 1000, "rounds": 1, "sizes": [64, 1400], "cases": [
        {"fn": "monitor", "prog": "monitor_egress", "what": "VXLAN frame", "status": "ok",
         "ns": {"64": s(40), "1400": s(45)}},
        {"fn": "monitor", "prog": "monitor_ingress", "what": "VXLAN frame", "status": "ok",
         "ns": {"64": s(60), "1400": s(65)}},
        {"fn": "gateway", "status": "not available: object not built"}]}
    fdb = {"1000000": {"bpfnet": {"provision_s": s(0.5), "dump_s": s(0.2)},
                       "kernel_batch": {"provision_s": s(20.0)},
                       "kernel_pyroute2": {"provision_s": {"median": 400.0, "min": 400.0,
                                                           "max": 400.0, "n": 1,
                                                           "extrapolated_from": 10000}}}}
    return {"started": "2026-12-01 10:00:00 UTC", "command": "python -m bpfnet.bench --quick",
            "machine": {"cpu": "a CPU", "cores": 2, "memory_mib": 1024, "kernel": "6.1",
                        "loadavg": [1.0, 1.0, 1.0]},
            "config": {"rounds": 1, "seconds": 1.0, "repeat": 1000},
            "datapath": dp, "progs": progs,
            "control": {"load": {"argv": "bpfnetctl load bridge", "wall_s": s(0.3),
                                 "peak_rss_mib": s(40.0)}, "fdb": fdb},
            "elapsed_s": 100.0, "cpu_busy": 0.5, "loadavg_end": [2.0, 1.0, 1.0]}


def test_targets():
    t = {x["target"]: (x["measured"], x["met"]) for x in report.targets(run_data())}
    assert t["bridge >= 1.0x kernel bridge (TCP)"] == ("0.90x", False)
    assert t["bridge >= 1.0x kernel bridge (64 B, per CPU s)"] == ("1.20x", True)
    assert t["monitor costs <= 2 % (64 B, per CPU s)"] == ("+5.0 %", False)
    # (40 + 60) ns x 120k frames per CPU second = 1.2 %
    assert t["monitor costs <= 2 % (64 B, estimated: test_run ns x frames per CPU s)"] == \
        ("1.2 %", True)
    assert t["1M FDB entries provisioned in <= 1 s"] == ("0.500 s", True)
    assert t["1M FDB entries provisioned: >= 20x kernel netlink batched"] == ("40.0x", True)
    assert t["1M FDB entries provisioned: >= 20x kernel via pyroute2"] == \
        ("800.0x (extrapolated)", True)
    assert not any("JSON" in k for k in t)   # no 100k dump measured


def test_markdown_and_publish(tmp_path):
    data = run_data()
    text, mp, jp = report.publish(data, str(tmp_path))
    assert open(mp).read() == text
    assert json.load(open(jp))["targets"] == data["targets"] == report.targets(data)
    lines = text.splitlines()
    assert lines[0] == "# bpfnet benchmarks"
    assert "| bpfnet bridge | 9.50 (9.00–10.0) | 0.90x | 100 (100–100) | 1.00x | " \
           "120 (120–120) | 1.20x |" in lines
    assert "| bpfnet mesh | not available: object not built |  |  |  |  |  |" in lines
    assert "| monitor | `monitor_ingress` | VXLAN frame | 60.0 (60.0–60.0) | 65.0 (65.0–65.0) |" in lines
    assert "| gateway |  | not available: object not built |  |  |" in lines
    assert "| 1M FDB entries provisioned in <= 1 s | 0.500 s | yes |" in lines
    assert "| bridge >= 1.0x kernel bridge (TCP) | 0.90x | **no** |" in lines
    assert any(ln.startswith("| provision 1,000,000 | 0.500 (0.500–0.500) | 20.0 (20.0–20.0) | "
                             "~400 (extrapolated from 10,000) |") for ln in lines)
