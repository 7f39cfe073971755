"""One runner for the programs under BPF_PROG_TEST_RUN: each test module is a
table of cases (katran's fixtures: a description, the input packet, the
expected verdict and output), and this module runs a row and checks it.

    CASES = [Case("unknown-vni", "a frame on a VNI with no port", "bridge_ingress",
                  pkt_v4(), tunnel=(11, "10.0.0.2"), setup=vni(10),
                  verdict=TC_ACT_SHOT, counters={"drop_unknown_vni": 1}, effect=fdb_empty)]

    @pytest.mark.parametrize("case", CASES, ids=ids)
    def test_bridge(br, case):
        check(br, case)

A row says: the frame and what it is, the program and its ctx (or the
tunnel metadata the injector sets: (vni, remote)), the provisioning before
it (``setup``, which may also send frames), and what must come out: the
verdict, the redirect target (cb[0], cb[1]; none: both 0), the VLAN tag
pushed (cb[2], cb[3]; none: both 0), the output bytes (default: the input,
unchanged), the counters (every counter not named must be 0, so a row's
counters are the whole truth), and the map effect (``effect(dut)``).

The harnesses (Bridge, Mesh, Gw, Monitor) wrap a loaded object's maps; the
fixtures ``br``, ``mesh``, ``gw`` and ``mon`` load them with their maps pinned in a throwaway
directory (conftest's ``loaded_obj``).
"""
from __future__ import annotations

import ctypes
import dataclasses
import time
from typing import Callable

import pytest

from conftest import need_root
from inject import Injector

from bpfnet import abi, libbpf
from bpfnet.abi import (BrAllowKey, BrCfg, BrFdbKey, BrFdbVal, BrPortVal, BrVniVal, GwClientKey,
                        GwClientVal, GwVlanVal, MeshCfg, MeshPeerKey, MeshPeerVal, MeshPortVal,
                        MonCfg, MonFlowKey, MonFlowVal, ip_pack, mac_pack)
from bpfnet.maps import Map, PerCpuArray

TC_ACT_UNSPEC, TC_ACT_SHOT, TC_ACT_REDIRECT = 0xFFFFFFFF, 2, 7  # retval is a u32
BPF_F_INGRESS = 1
U32 = ctypes.c_uint32
SAME = object()  # Case.output: the frame comes out unchanged


@dataclasses.dataclass
class Case:
    id: str
    what: str                          # what the frame is, in words
    prog: str                          # the program under test
    frame: bytes
    verdict: int
    redirect: tuple | None = None      # (cb[0], cb[1]): target ifindex, flags
    pushed: tuple | None = None        # (cb[2], cb[3]): VLAN TCI, TPID (network order)
    output: object = SAME              # bytes, SAME, or None (not checked)
    counters: dict = dataclasses.field(default_factory=dict)  # the non-zero ones, exactly
    effect: Callable | None = None     # effect(dut): asserts the maps' state afterwards
    setup: Callable | None = None      # setup(dut): provisioning (and frames) before
    tunnel: tuple | None = None        # (vni, remote): through the tunnel injector
    ctx: dict = dataclasses.field(default_factory=dict)  # __sk_buff fields
    times: int = 1                     # the frame sent this many times


def ids(case: Case) -> str:
    return case.id


def named(rows) -> list:
    """Rows of a ``parametrize`` whose first item says what the row is: that
    is the row's id (a frame's bytes would make one that the VM's junit
    names do not keep)."""
    return [pytest.param(*r, id=r[0]) for r in rows]


def check(dut, case: Case):
    """Runs one row on a fresh harness and asserts all it says."""
    if case.setup:
        case.setup(dut)
    dut.started_ns = time.monotonic_ns()
    for _ in range(case.times):
        r = dut.run(case.prog, case.frame, tunnel=case.tunnel, **case.ctx)
        assert r.retval == case.verdict, f"{case.what}: verdict"
    cb = tuple(r.ctx.cb)
    assert cb[:2] == (case.redirect or (0, 0)), f"{case.what}: redirect target"
    assert cb[2:4] == (case.pushed or (0, 0)), f"{case.what}: VLAN pushed"
    want = case.frame if case.output is SAME else case.output
    if want is not None:
        assert r.data == want, f"{case.what}: output bytes"
    assert dut.nonzero() == case.counters, f"{case.what}: counters"
    if case.effect:
        case.effect(dut)
    return r


def steps(*fns):
    """One setup (or effect) made of several, in order:
    setup=steps(vni(10), heard(MAC_A, "10.0.0.2")), effect=both(learned(...), ...)."""
    def run(dut):
        for fn in fns:
            fn(dut)
    return run


both = steps


# --- harnesses ------------------------------------------------------------------

class Harness:
    """A loaded object: its maps by name, its per-CPU counters, test_run."""
    stats_map = ""
    stats_type = None
    ingress_prog = ""  # the program the tunnel injector tail-calls

    def __init__(self, obj, inj=None):
        self.obj, self.inj = obj, inj
        self.stats = PerCpuArray(obj.map_fd(self.stats_map), self.stats_type, self.stats_map,
                                 owned=False)
        self.started_ns = 0

    def map(self, name, key, value):
        return Map(self.obj.map_fd(name), key, value, name, owned=False)

    def counters(self) -> dict:
        return self.stats.sum_fields()

    def stat(self, name) -> int:
        return self.counters()[name]

    def nonzero(self) -> dict:
        return {k: v for k, v in self.counters().items() if v}

    def run(self, prog, frame, tunnel=None, **ctx):
        if tunnel is not None:
            assert prog == self.ingress_prog and not ctx, "the injector runs the ingress program"
            return self.inj.run(frame, *tunnel)
        return libbpf.prog_test_run(self.obj.prog_fd(prog), frame, ctx=abi.SkBuff(**ctx))


def harness_fixture(name: str, fn: str, cls):
    """A fixture ``name`` yielding ``cls`` over a fresh load of ``fn``."""
    def fixture(loaded_obj):
        need_root()
        obj = loaded_obj(fn)
        inj = Injector(obj.prog_fd(cls.ingress_prog)) if cls.ingress_prog else None
        try:
            yield cls(obj, inj)
        finally:
            if inj is not None:
                inj.close()
    fixture.__name__ = name
    return pytest.fixture(name=name)(fixture)


# bridge: the port is ifindex 1 (lo), the one device test_run can always bind
# skb->ifindex to; the VXLAN ifindex is a made-up 42
PORT, VXLAN = 1, 42


class Bridge(Harness):
    stats_map, stats_type, ingress_prog = "br_stats", abi.BrStats, "bridge_ingress"

    def __init__(self, obj, inj):
        super().__init__(obj, inj)
        self.cfg = self.map("br_cfg", U32, BrCfg)
        self.vni = self.map("br_vni", U32, BrVniVal)
        self.port = self.map("br_port", U32, BrPortVal)
        self.fdb = self.map("br_fdb", BrFdbKey, BrFdbVal)
        self.allow = self.map("br_allow", BrAllowKey, U32)
        self.cfg[U32(0)] = BrCfg(vxlan_ifindex=VXLAN, ageing_s=300, group=ip_pack("239.1.1.1"))

    def add_vni(self, vni, port=PORT, flags=0, group="239.1.1.1"):
        self.vni[U32(vni)] = BrVniVal(port=port, bridge=99, flags=flags, group=ip_pack(group))
        self.port[U32(port)] = BrPortVal(vni=vni)

    def ingress(self, frame, vni, remote="10.0.0.2", tunnel=True):
        if not tunnel:
            return self.run("bridge_ingress", frame)
        return self.inj.run(frame, vni, remote)

    def egress(self, frame, ifindex=PORT):
        return self.run("bridge_egress", frame, ifindex=ifindex)

    def entry(self, mac, port=PORT):
        return self.fdb.get(BrFdbKey(mac=mac_pack(mac), port=port))


# mesh: egress runs on ifindex 1 (lo), so lo plays the port; the other ports
# and the VXLAN device (42) are made-up ifindexes, which a redirect does not check
class Mesh(Harness):
    stats_map, stats_type, ingress_prog = "mesh_stats", abi.MeshStats, "mesh_ingress"

    def __init__(self, obj, inj):
        super().__init__(obj, inj)
        self.cfg = self.map("mesh_cfg", U32, MeshCfg)
        self.peers = self.map("mesh_peers", MeshPeerKey, MeshPeerVal)
        self.ports = self.map("mesh_ports", U32, MeshPortVal)
        self.configure("10.99.0.1")

    def configure(self, local=None, vxlan=VXLAN):
        c = MeshCfg(vxlan_ifindex=vxlan, dstport=4789)
        if local:
            c.local = ip_pack(local)
        self.cfg[U32(0)] = c

    def add_peer(self, remote, vni, port):
        """As `peer add` provisions: both directions of one port."""
        self.peers[MeshPeerKey(vni=vni, remote=ip_pack(remote))] = MeshPeerVal(port=port, id=port)
        self.ports[U32(port)] = MeshPortVal(remote=ip_pack(remote), vni=vni)

    def peer(self, remote, vni):
        return self.peers[MeshPeerKey(vni=vni, remote=ip_pack(remote))]

    def ingress(self, frame, vni=None, remote=None):
        if vni is None:  # no tunnel metadata at all
            return self.run("mesh_ingress", frame)
        return self.inj.run(frame, vni, remote)

    def egress(self, frame, ifindex=PORT, came_from=0):
        return self.run("mesh_egress", frame, ifindex=ifindex, ingress_ifindex=came_from)


# gateway: test_run binds skb->ifindex to lo (1): phys2virt learns the trunk
# as 1, and virt2phys runs as if on worker port 1
LO, WORKER, TRUNK = 1, 42, 7


class Gw(Harness):
    stats_map, stats_type = "gw_stats", abi.GwStats

    def __init__(self, obj, inj=None):
        super().__init__(obj, inj)
        self.clients = self.map("gw_clients", GwClientKey, GwClientVal)
        self.fdb = self.map("gw_vlan_fdb", U32, GwVlanVal)

    def add_client(self, mac, worker=WORKER, flags=0):
        self.clients[GwClientKey(mac=mac_pack(mac))] = GwClientVal(worker=worker, flags=flags)

    def learn(self, tci, tpid, trunk=TRUNK, worker=LO):
        """What phys2virt would have learned for ``worker``."""
        self.fdb[U32(worker)] = GwVlanVal(trunk=trunk, vlan_tci=tci, vlan_proto=tpid)

    def phys2virt(self, data):
        return self.run("gw_phys2virt", data)

    def virt2phys(self, data):
        return self.run("gw_virt2phys", data)

    def learned(self, worker=WORKER):
        return self.fdb.get(U32(worker))


# monitor: it only reads (every frame TC_ACT_UNSPEC, never changed)
class Monitor(Harness):
    stats_map, stats_type = "mon_stats", abi.MonStats

    def __init__(self, obj, inj=None):
        super().__init__(obj, inj)
        self.cfg = self.map("mon_cfg", U32, MonCfg)
        self.flows = self.map("mon_flows", MonFlowKey, MonFlowVal)
        self.set_port(4789)

    def set_port(self, port):
        self.cfg[U32(0)] = MonCfg(ifindex=1, port=port)

    def send(self, frame: bytes, rx: bool = True, repeat: int = 1):
        """``frame`` arriving on the device (rx) or leaving it, ``repeat`` times."""
        prog = "monitor_ingress" if rx else "monitor_egress"
        return libbpf.prog_test_run(self.obj.prog_fd(prog), frame, ctx=abi.SkBuff(),
                                    repeat=repeat)

    def stat(self, name=None):
        s = self.counters()
        return s if name is None else s[name]

    def rows(self):
        """mon_flows as `stats --json` rows, sorted."""
        from bpfnet.functions.monitor import flow_json
        return sorted((flow_json(k, v) for k, v in self.flows.dump()),
                      key=lambda r: (r["vni"], r["outer_sip"], r["inner_sip"]))

    def reset(self):
        self.flows.clear()
        self.stats.zero(0)


br = harness_fixture("br", "bridge", Bridge)
mesh = harness_fixture("mesh", "mesh", Mesh)
gw = harness_fixture("gw", "gateway", Gw)
mon = harness_fixture("mon", "monitor", Monitor)
