"""bridge.bpf.o under BPF_PROG_TEST_RUN: verdicts, redirect targets (cb[0],
cb[1]), FDB learning, MAC moves, ageing, flooding, allow lists, counters.

One table, one runner (runner.py): each row is a frame, what it is, the
provisioning before it, and the verdict, redirect target, counters and FDB
state it must produce. Ingress frames need tunnel metadata, which test_run
cannot pass in: the test-side tests/progs/tunnel_inject.bpf.c sets it and
tail-calls bridge_ingress. The port is ifindex 1 (lo), the one device
test_run can always bind skb->ifindex to; the VXLAN ifindex is a made-up 42."""
import pytest

from packets import BCAST, MAC_A, MAC_B, pkt_v4
from runner import (PORT, TC_ACT_REDIRECT, TC_ACT_SHOT, TC_ACT_UNSPEC, U32, VXLAN, Case, both,  # noqa: F401
                    br, check, ids, steps)

from bpfnet import abi, libbpf
from bpfnet.abi import BrAllowKey, BrCfg, BrFdbKey, BrVniVal, ip_pack, ip_unpack, mac_pack

INTO_PORT = (PORT, 1)     # bpf_redirect(port, BPF_F_INGRESS)
TO_VXLAN = (VXLAN, 0)     # the VXLAN device, egress


# --- setups ----------------------------------------------------------------------

def vni(n, **kw):
    return lambda d: d.add_vni(n, **kw)


def heard(mac, remote, vni_=10):
    """A frame from ``mac`` came in from ``remote`` (so it is learned)."""
    return lambda d: d.ingress(pkt_v4(src_mac=mac), vni_, remote=remote)


def sent_to(mac):
    return lambda d: d.egress(pkt_v4(dst_mac=mac))


def allow(remote, vni_=10):
    def fn(d):
        d.add_vni(vni_, flags=abi.BR_VNI_F_ALLOW_LIST)
        d.allow[BrAllowKey(vni=vni_, remote=ip_pack(remote))] = U32(1)
    return fn


def ageing(seconds):
    def fn(d):
        cfg = d.cfg[U32(0)]
        cfg.ageing_s = seconds
        d.cfg[U32(0)] = cfg
    return fn


def backdate(mac, seconds):
    """The entry of ``mac`` was last seen ``seconds`` ago."""
    def fn(d):
        key = BrFdbKey(mac=mac_pack(mac), port=PORT)
        e = d.fdb[key]
        e.seen_ns -= seconds * 10**9
        d.fdb[key] = e
    return fn


def unconfigured(d):
    d.cfg[U32(0)] = BrCfg()


def vni20_on_port7(d):
    d.vni[U32(20)] = BrVniVal(port=7, bridge=99, group=ip_pack("239.1.1.1"))


# --- effects ---------------------------------------------------------------------

def fdb_empty(d):
    assert len(d.fdb) == 0


def learned(mac, remote, vni_=10, rx=None, tx=None, port=PORT, fresh=False):
    def fn(d):
        e = d.entry(mac, port)
        assert e is not None, f"{mac} not learned"
        assert str(ip_unpack(e.remote)) == remote
        assert e.vni == vni_
        if rx is not None:
            assert e.rx_pkts == rx
        if tx is not None:
            assert e.tx_pkts == tx
        if fresh:
            assert e.seen_ns >= d.started_ns
    return fn


def forgotten(mac):
    def fn(d):
        assert d.entry(mac) is None
    return fn


ING, EG = "bridge_ingress", "bridge_egress"
ON_PORT = {"ifindex": PORT}

CASES = [
    # ingress on the VXLAN device: VNI -> port, learning
    Case("ingress-no-tunnel", "a frame without tunnel metadata", ING, pkt_v4(),
         setup=vni(10), verdict=TC_ACT_SHOT, counters={"drop_no_tunnel": 1}, effect=fdb_empty),
    Case("ingress-unknown-vni", "a frame on a VNI with no port", ING, pkt_v4(),
         tunnel=(11, "10.0.0.2"), setup=vni(10), verdict=TC_ACT_SHOT,
         counters={"drop_unknown_vni": 1}, effect=fdb_empty),
    Case("ingress-learns", "a frame from a new MAC: into the port, no rewrite, learned",
         ING, pkt_v4(src_mac=MAC_A), tunnel=(10, "10.0.0.2"), setup=vni(10),
         verdict=TC_ACT_REDIRECT, redirect=INTO_PORT, counters={"rx": 1, "learn": 1},
         effect=learned(MAC_A, "10.0.0.2", rx=1, tx=0, fresh=True)),
    Case("ingress-known-mac", "the same MAC twice: counted, learned once",
         ING, pkt_v4(src_mac=MAC_A), tunnel=(10, "10.0.0.2"), setup=vni(10), times=2,
         verdict=TC_ACT_REDIRECT, redirect=INTO_PORT, counters={"rx": 2, "learn": 1},
         effect=learned(MAC_A, "10.0.0.2", rx=2, tx=0)),
    Case("ingress-mac-move", "a learned MAC from another VTEP: relearned at once, counters kept",
         ING, pkt_v4(src_mac=MAC_A), tunnel=(10, "10.0.0.3"),
         setup=steps(vni(10), heard(MAC_A, "10.0.0.2"), sent_to(MAC_A)),
         verdict=TC_ACT_REDIRECT, redirect=INTO_PORT,
         counters={"rx": 2, "tx": 1, "learn": 1, "move": 1},
         effect=learned(MAC_A, "10.0.0.3", rx=2, tx=1)),
    Case("ingress-ipv6-vtep", "a frame from an IPv6 VTEP", ING, pkt_v4(src_mac=MAC_B),
         tunnel=(10, "fd00::2"), setup=vni(10), verdict=TC_ACT_REDIRECT, redirect=INTO_PORT,
         counters={"rx": 1, "learn": 1}, effect=learned(MAC_B, "fd00::2")),
    Case("ingress-group-source", "a group source MAC: delivered, never learned", ING,
         pkt_v4(src_mac="01:00:5e:00:00:01"), tunnel=(10, "10.0.0.2"), setup=vni(10),
         verdict=TC_ACT_REDIRECT, redirect=INTO_PORT, counters={"rx": 1}, effect=fdb_empty),
    Case("ingress-allow-denied", "a VTEP not on the VNI's allow list", ING, pkt_v4(),
         tunnel=(10, "10.0.0.9"), setup=allow("10.0.0.2"), verdict=TC_ACT_SHOT,
         counters={"drop_vtep_denied": 1}, effect=fdb_empty),
    Case("ingress-allow-allowed", "a VTEP on the VNI's allow list", ING, pkt_v4(),
         tunnel=(10, "10.0.0.2"), setup=allow("10.0.0.2"), verdict=TC_ACT_REDIRECT,
         redirect=INTO_PORT, counters={"rx": 1, "learn": 1}),
    Case("ingress-per-port", "the same MAC in another VNI: a second entry (VNIs isolated)",
         ING, pkt_v4(src_mac=MAC_A), tunnel=(20, "10.0.0.3"),
         setup=steps(vni(10), vni20_on_port7, heard(MAC_A, "10.0.0.2")),
         verdict=TC_ACT_REDIRECT, redirect=(7, 1), counters={"rx": 2, "learn": 2},
         effect=both(learned(MAC_A, "10.0.0.2", port=PORT),
                     learned(MAC_A, "10.0.0.3", vni_=20, port=7))),
    # egress on a port: FDB -> remote VTEP, else the VNI's group
    *[Case(f"egress-flood-{name}", f"{name} destination: flooded to the group", EG,
           pkt_v4(dst_mac=dst), ctx=ON_PORT, setup=vni(10), verdict=TC_ACT_REDIRECT,
           redirect=TO_VXLAN, counters={"flood": 1})
      for name, dst in [("unknown", MAC_B), ("broadcast", BCAST),
                        ("ipv4-multicast", "01:00:5e:01:02:03"), ("ipv6-multicast", "33:33:00:00:00:01")]],
    Case("egress-known", "a learned destination: to its VTEP", EG,
         pkt_v4(src_mac=MAC_B, dst_mac=MAC_A), ctx=ON_PORT,
         setup=steps(vni(10), heard(MAC_A, "10.0.0.2")), verdict=TC_ACT_REDIRECT,
         redirect=TO_VXLAN, counters={"rx": 1, "learn": 1, "tx": 1},
         effect=learned(MAC_A, "10.0.0.2", tx=1)),
    Case("egress-aged", "a destination older than the ageing time: flooded, entry removed",
         EG, pkt_v4(dst_mac=MAC_A), ctx=ON_PORT,
         # ageing 1 s and an entry seen 3 s ago: works right after boot too
         setup=steps(vni(10), ageing(1), heard(MAC_A, "10.0.0.2"), backdate(MAC_A, 3)),
         verdict=TC_ACT_REDIRECT, redirect=TO_VXLAN,
         counters={"rx": 1, "learn": 1, "aged": 1, "flood": 1}, effect=forgotten(MAC_A)),
    Case("egress-not-a-port", "a frame leaving a device that is no port: not ours, passed",
         EG, pkt_v4(), ctx=ON_PORT, setup=vni(10, port=5), verdict=TC_ACT_UNSPEC),
    Case("egress-unconfigured", "a frame before br_cfg is set", EG, pkt_v4(), ctx=ON_PORT,
         setup=steps(vni(10), unconfigured), verdict=TC_ACT_SHOT,
         counters={"drop_no_config": 1}),
]


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_bridge(br, case):
    check(br, case)


def test_full_fdb_keeps_forwarding_known_flows_and_counts_evictions(br, pin_root):
    """Learn 1000 more MACs than br_fdb holds while a known flow keeps
    talking: it stays known (LRU), and the evictions are accounted."""
    from bpfnet.functions.base import PinDir
    from bpfnet.functions.bridge import Bridge as BridgeFn
    br.add_vni(10)
    br.inj.set(10, "10.0.0.2")
    inject = br.inj.fd
    base = bytearray(pkt_v4())
    libbpf.prog_test_run(inject, pkt_v4(src_mac=MAC_A), ctx=abi.SkBuff())
    n = abi.BR_FDB_MAX + 1000
    for i in range(n):
        base[6:12] = (0x020000000000 + 0x100000 + i).to_bytes(6, "big")
        libbpf.prog_test_run(inject, bytes(base), ctx=abi.SkBuff())
        if i % 512 == 0:  # the known flow keeps talking
            assert br.egress(pkt_v4(dst_mac=MAC_A)).retval == TC_ACT_REDIRECT
    assert br.stat("learn") == n + 1
    before = br.stat("tx")
    r = br.egress(pkt_v4(dst_mac=MAC_A))
    assert r.retval == TC_ACT_REDIRECT and br.stat("tx") == before + 1  # still known: no flood
    fn = BridgeFn(PinDir(pin_root, ""))  # the fixture pins at <pin_root>/bridge
    try:
        fill = fn.map_fill()["br_fdb"]
        assert fill["max_entries"] == abi.BR_FDB_MAX
        assert abi.BR_FDB_MAX - 1024 <= fill["entries"] <= abi.BR_FDB_MAX
        assert fill["evictions"] == n + 1 - fill["entries"] >= 1000
    finally:
        fn.close()
