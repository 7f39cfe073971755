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
                   "tcp_gbit_per_cpu_s": s(9.5), "udp_pps": s(100e3),
                   "udp_pps_per_cpu_s": s(120e3)},
        "bridge-mon": {"label": "bpfnet bridge + monitor", "status": "ok", "tcp_gbps": s(9.5),
                       "udp_pps": s(95e3), "udp_pps_per_cpu_s": s(114e3)},
        "kernel-mcast": {"label": "kernel VXLAN + bridge (multicast)", "status": "ok",
                         "tcp_gbps": s(10.5), "tcp_gbit_per_cpu_s": s(10), "udp_pps": s(100e3),
                         "udp_pps_per_cpu_s": s(100e3)},
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
    assert t["bridge (native) >= 1.10x kernel (64 B, per CPU s)"] == ("1.20x", True)
    assert t["bridge (native) >= 1.00x kernel (TCP, per CPU s)"] == ("0.95x", False)
    assert not any(k.startswith("mesh") for k in t)  # not available in this run
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
    assert "| bpfnet bridge | 9.50 (9.00–10.0) | 0.90x | 9.50 (9.50–9.50) | 0.95x | " \
           "100 (100–100) | 1.00x | 120 (120–120) | 1.20x |" in lines
    assert "| bpfnet mesh | not available: object not built |  |  |  |  |  |  |  |" in lines
    assert "| monitor | `monitor_ingress` | VXLAN frame | 60.0 (60.0–60.0) | 65.0 (65.0–65.0) |" in lines
    assert "| gateway |  | not available: object not built |  |  |" in lines
    assert "| 1M FDB entries provisioned in <= 1 s | 0.500 s | yes |" in lines
    assert "| bridge >= 1.0x kernel bridge (TCP) | 0.90x | **no** |" in lines
    assert any(ln.startswith("| provision 1,000,000 | 0.500 (0.500–0.500) | 20.0 (20.0–20.0) | "
                             "~400 (extrapolated from 10,000) |") for ln in lines)


# --- the flood bench (bench/floods.py): what it counts and how it reads -------------

def test_flood_classify():
    from bpfnet import packets as P
    from bpfnet.bench import floods

    def flood(inner, odst="239.1.1.1", port=4789):
        return P.pkt_vxlan(osrc="10.99.0.3", odst=odst, vni=20, port=port, inner_frame=inner)
    arp = bytes(P.eth(P.BCAST, P.TMAC_A, type_=P.ETH_P_ARP) / (b"\0" * 28))
    assert floods.classify(flood(arp)) == ("10.99.0.3", 20, "arp", P.TMAC_A)
    assert floods.classify(flood(P.pkt_v4(dst_mac=P.BCAST))) == \
        ("10.99.0.3", 20, "broadcast", P.MAC_A)
    assert floods.classify(flood(P.pkt_v4(dst_mac="33:33:00:00:00:01")))[2] == "multicast"
    assert floods.classify(flood(P.pkt_v4(dst_mac="01:00:5e:00:00:fb")))[2] == "multicast"
    assert floods.classify(flood(P.pkt_v4()))[2] == "unknown_unicast"
    # not floods: unicast to a VTEP, another UDP port, not VXLAN at all, truncated
    assert floods.classify(flood(arp, odst="10.99.0.2")) is None
    assert floods.classify(flood(arp, port=4790)) is None
    assert floods.classify(P.pkt_v4()) is None
    assert floods.classify(flood(arp)[:60]) is None


def test_flood_tenants_and_files():
    from bpfnet import config
    from bpfnet.bench import floods
    assert floods.tenant_addr(3, 0) == (10, "10.10.3.1", "02:00:00:0a:03:01")
    assert floods.tenant_addr(3, 5) == (20, "10.20.3.6", "02:00:00:14:03:06")
    both = {"routes": True, "suppress": True}
    text = floods.host_toml(2, "http://10.99.0.250:2379", "floods", floods.CASES["learning"], both)
    assert "routes = false\n" in text and 'suppress = "off"\n' in text
    assert 'local = "10.99.0.3"' in text
    assert '{ vni = 20, bridge = "br20", allow = "cluster" }' in text
    bare = floods.host_toml(2, "http://10.99.0.250:2379", "floods", floods.CASES["routes"],
                            {"routes": False, "suppress": False})
    assert "routes" not in bare and "suppress" not in bare
    d = config.parse(bare)      # what a checkout without them runs is a good file
    assert d.host == "h2" and sorted(d.functions["bridge"].children) == [10, 20]


def flood_case(label, flood, arp_flood, arp_local, arp_reply, routes, kinds, know,
               status="ok"):
    """A case's run: per-host per-minute figures as the bench stores them."""
    st = {"window_s": 60.0, "datagrams": 800, "answered": 790,
          "flood_per_min": s(*flood), "arp_flood_per_min": s(*arp_flood),
          "arp_local_per_min": s(*arp_local), "arp_reply_per_min": s(*arp_reply),
          "route_entries": s(*routes), "tx_per_min": s(100)}
    for k, v in kinds.items():
        st[f"{k}_per_min"] = s(*v)
    return {"status": status, "label": label, "steady": st, "loadavg": [3.25, 2.0, 1.0],
            "new_tenants": [{"host": "h1", "vni": 10, "hosts": 9, "known_by": kb,
                             "first_s": f, "all_s": a, "floods": fl}
                            for kb, f, a, fl in know]}


def flood_data(features=None):
    zero = (0, 0)
    learning = flood_case("learning only", (60, 40, 80), (58, 40, 76), (), (0, 0, 0), (0, 0),
                          {"arp": (58, 40, 76), "broadcast": zero, "multicast": zero,
                           "unknown_unicast": (2, 0, 4)},
                          [(9, 0.001, 0.004, {"arp": 1}), (9, 0.002, 0.003, {"arp": 1})])
    routes = flood_case("routes + suppression", (0, 1, 3), (0, 1, 3), (0, 1, 2), (50, 60, 70),
                        (38, 38),
                        {"arp": (0, 1, 3), "broadcast": zero, "multicast": zero,
                         "unknown_unicast": zero},
                        [(9, 0.001, 5.5, {}), (9, 0.001, 4.5, {}), (2, 0.001, None, {})])
    return {"hosts": 10, "tenants_per_host": 4, "vnis": [10, 20], "warmup_s": 20.0,
            "window_s": 60.0, "period_s": 3.0, "peers": 3, "churn_s": 30.0,
            "features": features or {"routes": True, "suppress": True},
            "cases": {"learning": [learning], "routes": [routes]}}


def test_flood_markdown():
    from bpfnet.bench import floods
    lines = "\n".join(floods.markdown(flood_data())).splitlines()
    assert lines[0] == "## Floods in a cluster: learning against routes + suppression"
    # a counter this bridge lacks (arp_local: ARP for a tenant of the same host) is "-"
    assert "| learning only | 60.0 (40.0–80.0) | 58.0 (40.0–76.0) | - | 0.0 (0.0–0.0) | " \
           "0.0 (0.0–0.0) | 790 / 800 | 3.2 |" in lines
    assert "| routes + suppression | 1.0 (0.0–3.0) | 1.0 (0.0–3.0) | 1.0 (0.0–2.0) | " \
           "60.0 (50.0–70.0) | 38.0 (38.0–38.0) | 790 / 800 | 3.2 |" in lines
    assert "| learning only | 58.0 (40.0–76.0) | 0.0 (0.0–0.0) | 0.0 (0.0–0.0) | " \
           "2.0 (0.0–4.0) |" in lines
    # time to know: medians over the tenants every host knew; the others said as such
    assert "| learning only | 0.002 (0.001–0.002) | 0.004 (0.003–0.004) | 2 of 2 | - | " \
           "2 of 2 |" in lines
    assert "| routes + suppression | 0.001 (0.001–0.001) | 5.000 (4.500–5.500) | 2 of 3 | " \
           "2/9 | 0 of 3 |" in lines
    assert not any("left out" in ln or "before their first frame" in ln for ln in lines)
    early = flood_data()
    early["cases"]["routes"][0]["new_tenants"][0]["known_before"] = 3
    assert "1 new tenant(s) were known somewhere before their first frame: those times are " \
           "not what they say." in floods.markdown(early)
    old = floods.markdown(flood_data({"routes": False, "suppress": False}))
    assert any(ln.startswith("This checkout has no routes and no suppress yet") for ln in old)


def test_flood_markdown_not_measured():
    from bpfnet.bench import floods
    data = flood_data()
    data["cases"] = {"learning": [{"status": "agents not ready (timeout): ..."}]}
    assert floods.markdown(data)[2] == "Not measured: learning: agents not ready (timeout): ..."
    one = flood_data()
    one["cases"]["learning"] = [{"status": "agents not ready (timeout)"}]
    assert "| learning only | agents not ready (timeout) |  |  |  |  |  |  |" in \
        "\n".join(floods.markdown(one)).splitlines()


def test_flood_targets_in_the_report(tmp_path):
    from bpfnet.bench import floods
    data = run_data()
    data["floods"] = flood_data()
    t = {x["target"]: (x["measured"], x["met"]) for x in floods.targets(data)}
    assert t == {
        "10 hosts, routes + suppression: floods per host per minute close to zero (median < 1)":
            ("1.0 (learning only: 60.0)", False),
        "10 hosts, routes: every other host knows a new MAC (all of 3)":
            ("max 5.50 s, 2 of 3", False)}
    text, _, _ = report.publish(data, str(tmp_path))
    assert "## Floods in a cluster: learning against routes + suppression" in text.splitlines()
    assert "| 10 hosts, routes: every other host knows a new MAC (all of 3) | " \
           "max 5.50 s, 2 of 3 | **no** |" in text.splitlines()
    # without routes and suppression built, there is no target to meet
    data["floods"] = flood_data({"routes": False, "suppress": False})
    assert floods.targets(data) == []
