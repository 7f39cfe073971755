"""bench/profile.py's own logic: parsing perf script's output, which samples
count for a variant, the shares and costs it reports (no perf, no root)."""
from bpfnet.bench import profile

SCRIPT = """\
iperf3  100/100    1000000 
\tffffffff81000001 _copy_from_iter+0x12
\tffffffff81000002 tcp_sendmsg_locked+0x40
\tffffffff81000003 tcp_sendmsg+0x2a

ksoftirqd/1    22/22      1000000 
\tffffffff81000004 pskb_expand_head+0x8
\tffffffff81000005 vxlan_rcv+0x100

sleep 7/7    1000000 
\t            de36 _dl_relocate_object

iperf3  200/201    2000000 
\tffffffff81000006 bpf_prog_0123456789abcdef_bridge_egress+0x3
\tffffffff81000007 br_handle_frame+0x99
"""


def test_parse_script():
    got = list(profile.parse_script(SCRIPT.splitlines(keepends=True)))
    assert got == [
        ("iperf3", 100, 100, 1000000, ["_copy_from_iter", "tcp_sendmsg_locked", "tcp_sendmsg"]),
        ("ksoftirqd/1", 22, 22, 1000000, ["pskb_expand_head", "vxlan_rcv"]),
        ("sleep", 7, 7, 1000000, ["_dl_relocate_object"]),
        ("iperf3", 200, 201, 2000000, ["bpf_prog_0123456789abcdef_bridge_egress",
                                       "br_handle_frame"]),
    ]


def test_profile_counts_the_variant_and_ksoftirqd_only():
    p = profile.Profile()
    ns = p.add(profile.parse_script(SCRIPT.splitlines(keepends=True)), {100}, {201})
    assert ns == 4000000            # not sleep's sample
    p.units = 4.0
    r = p.result(top=2)
    assert r["samples"] == 3
    assert r["cpu_ns_per_unit"] == 1000000.0
    assert r["ksoftirqd_pct"] == 25.0
    assert r["top"] == [{"sym": "bpf_prog_0123456789abcdef_bridge_egress", "pct": 50.0},
                        {"sym": "_copy_from_iter", "pct": 25.0}]
    paths = r["paths"]
    assert paths["headroom: pskb_expand_head"] == 25.0
    assert paths["VXLAN device receive: vxlan_rcv"] == 25.0
    assert paths["BPF programs (JIT)"] == 50.0
    assert paths["bridge: br_handle_frame"] == 50.0
    assert paths["copy to/from user"] == 25.0
    assert paths["TCP send: tcp_sendmsg"] == 25.0
    assert paths["software GSO: skb_segment"] == 0.0
    assert r["incl_per_unit"]["br_handle_frame"] == 500000.0
