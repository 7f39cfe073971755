"""Per packet: each bpfnet program under BPF_PROG_TEST_RUN.

The objects are loaded with their maps pinned in a throwaway directory and
provisioned as a running instance would be: one VNI whose port is ifindex 1
(lo, the one device test_run can bind skb->ifindex to), a made-up VXLAN
ifindex 42, and the peer's MAC learned. Each case runs ``repeat`` times in
the kernel per call (the kernel reports the mean ns per run); cases are
interleaved across rounds like the data path variants.

Ingress programs need tunnel metadata, which test_run cannot pass in: as in
tests/prog, build/tests/tunnel_inject.bpf.o sets it and tail-calls the
program. Its own cost is measured alone ("injector only": the tail call
finds no program) so it can be subtracted.

Frame sizes are the bytes handed to the program, Ethernet header on, no FCS.
The monitor sees VXLAN frames: its "64 B" case carries a 64-byte inner frame.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import time
import uuid

from .. import abi, libbpf
from ..abi import InjectCfg, ip_pack, mac_pack
from ..functions.base import ensure_bpffs, obj_dir
from ..maps import Map
from ..packets import BCAST, pkt_v4, pkt_vxlan

TC_ACT_UNSPEC, TC_ACT_OK, TC_ACT_SHOT, TC_ACT_REDIRECT = -1, 0, 2, 7
PORT, VXLAN, VNI = 1, 42, 10
MAC_A = "02:00:00:00:0a:01"   # local tenant
MAC_B = "02:00:00:00:0a:02"   # remote tenant, learned
REMOTE, LOCAL, GROUP = "10.99.0.2", "10.99.0.1", "239.1.1.1"
SIZES = (64, 1400)
U32 = ctypes.c_uint32
INJECT_OBJ = os.path.join(os.path.dirname(obj_dir()), "tests", "tunnel_inject.bpf.o")


# --- frames (bpfnet.packets, as in tests/prog) ------------------------------------

def frame(size: int, dst: str = MAC_B, src: str = MAC_A) -> bytes:
    """An Ethernet/IPv4/UDP frame of ``size`` bytes."""
    return pkt_v4(src_mac=src, dst_mac=dst, size=size)


def vxlan_frame(inner: bytes) -> bytes:
    """``inner`` in Ethernet/IPv4/UDP 4789/VXLAN (VNI 10), host to host."""
    return pkt_vxlan(LOCAL, REMOTE, vni=VNI, inner_frame=inner)


# --- objects ---------------------------------------------------------------------

class Objects:
    """Loads objects with maps pinned under one throwaway bpffs directory."""

    def __init__(self):
        self.root = f"/sys/fs/bpf/bpfnet-bench-{uuid.uuid4().hex[:8]}"
        ensure_bpffs(self.root)
        self.objs: list[libbpf.BpfObject] = []

    def load(self, path: str, pinned: bool = True) -> libbpf.BpfObject:
        d = os.path.join(self.root, os.path.basename(path).split(".")[0])
        os.makedirs(d, exist_ok=True)
        o = libbpf.BpfObject.open(path, pin_root=d if pinned else None)
        self.objs.append(o)
        o.load()
        return o

    def close(self):
        for o in self.objs:
            o.close()
        self.objs.clear()
        shutil.rmtree(self.root, ignore_errors=True)


def _map(obj, name, k, v):
    return Map(obj.map_fd(name), k, v, name, owned=False)


class Case:
    """One program on one kind of frame; ``run`` returns ns per packet."""

    def __init__(self, fn: str, prog: str, what: str, fd: int, frames: dict, ctx_kw: dict,
                 expect: int, before=None, check=None):
        self.fn, self.prog, self.what = fn, prog, what
        self.fd, self.frames, self.ctx_kw = fd, frames, ctx_kw
        self.expect, self.before, self.check = expect, before, check
        self.problem = None

    def verify(self) -> None:
        """After a run: did the program take the path the case names? (A
        verdict alone does not tell a unicast from a flood.)"""
        if self.check and self.problem is None:
            self.problem = self.check()

    def run(self, size: int, repeat: int) -> tuple[float, int]:
        if self.before:
            self.before()
        r = libbpf.prog_test_run(self.fd, self.frames[size], ctx=abi.SkBuff(**self.ctx_kw),
                                 repeat=repeat)
        return float(r.duration), ctypes.c_int32(r.retval).value


def bridge_cases(objs: Objects, inj) -> list[Case]:
    o = objs.load(os.path.join(obj_dir(), "bridge.bpf.o"))
    _map(o, "br_cfg", U32, abi.BrCfg)[U32(0)] = abi.BrCfg(
        vxlan_ifindex=VXLAN, ageing_s=300, group=ip_pack(GROUP), local=ip_pack(LOCAL))
    _map(o, "br_vni", U32, abi.BrVniVal)[U32(VNI)] = abi.BrVniVal(
        port=PORT, bridge=99, group=ip_pack(GROUP))
    _map(o, "br_port", U32, abi.BrPortVal)[U32(PORT)] = abi.BrPortVal(vni=VNI)
    fdb = _map(o, "br_fdb", abi.BrFdbKey, abi.BrFdbVal)
    fdb_val = abi.BrFdbVal(remote=ip_pack(REMOTE), vni=VNI, rx_pkts=1)
    key_b = abi.BrFdbKey(mac=mac_pack(MAC_B), port=PORT)

    def learned():  # the remote tenant is known and fresh
        fdb_val.seen_ns = time.monotonic_ns()
        fdb[key_b] = fdb_val

    def sent_to_remote():  # each run was a unicast to the learned remote
        e = fdb.get(key_b)
        if e is None or e.tx_pkts == 0:
            return "FDB entry gone or never hit: measured the flood path"
        return None

    learned()
    uni = {s: frame(s) for s in SIZES}
    bc = {s: frame(s, dst=BCAST) for s in SIZES}
    from_remote = {s: frame(s, dst=MAC_A, src=MAC_B) for s in SIZES}
    eg = o.prog_fd("bridge_egress")
    cases = [Case("bridge", "bridge_egress", "known unicast (FDB hit)", eg, uni,
                  {"ifindex": PORT}, TC_ACT_REDIRECT, learned, sent_to_remote),
             Case("bridge", "bridge_egress", "broadcast (flood)", eg, bc,
                  {"ifindex": PORT}, TC_ACT_REDIRECT)]
    if inj is not None:
        cases.append(_inject_case(inj, o.prog_fd("bridge_ingress"), "bridge", "bridge_ingress",
                                  "from a known remote (learned) (+ injector)", from_remote,
                                  learned))
    return cases


def _inject_case(inj, target_fd: int | None, fn: str, prog: str, what: str, frames, before=None,
                 expect: int = TC_ACT_REDIRECT):
    """``prog`` behind the tunnel injector (VNI 10 from REMOTE); with no
    ``target_fd`` the tail call misses: the injector alone."""
    progs_fd = inj.map_fd("inject_progs")
    cfg = _map(inj, "inject_cfg", U32, InjectCfg)

    def setup():
        cfg[U32(0)] = InjectCfg(remote=ip_pack(REMOTE), vni=VNI)
        if target_fd is None:
            libbpf.delete(progs_fd, U32(0))
        else:
            libbpf.update(progs_fd, U32(0), ctypes.c_int(target_fd))
        if before:
            before()
    return Case(fn, prog, what, inj.prog_fd("inject_tunnel"), frames, {"ifindex": PORT}, expect,
                setup)


def injector_case(inj) -> Case:
    return _inject_case(inj, None, "test", "inject_tunnel", "injector only (tail call misses)",
                        {s: frame(s, dst=MAC_A, src=MAC_B) for s in SIZES}, expect=97)


def mesh_cases(objs: Objects, inj) -> list[Case]:
    o = objs.load(os.path.join(obj_dir(), "mesh.bpf.o"))
    _map(o, "mesh_cfg", U32, abi.MeshCfg)[U32(0)] = abi.MeshCfg(
        vxlan_ifindex=VXLAN, dstport=4789, local=ip_pack(LOCAL))
    _map(o, "mesh_ports", U32, abi.MeshPortVal)[U32(PORT)] = abi.MeshPortVal(
        remote=ip_pack(REMOTE), vni=VNI)
    _map(o, "mesh_peers", abi.MeshPeerKey, abi.MeshPeerVal)[
        abi.MeshPeerKey(vni=VNI, remote=ip_pack(REMOTE))] = abi.MeshPeerVal(port=PORT)
    uni = {s: frame(s) for s in SIZES}
    cases = [Case("mesh", "mesh_egress", "to its peer", o.prog_fd("mesh_egress"), uni,
                  {"ifindex": PORT}, TC_ACT_REDIRECT)]
    if inj is not None:
        cases.append(_inject_case(inj, o.prog_fd("mesh_ingress"), "mesh", "mesh_ingress",
                                  "from a known peer (+ injector)",
                                  {s: frame(s, dst=MAC_A, src=MAC_B) for s in SIZES}))
    return cases


def monitor_cases(objs: Objects) -> list[Case]:
    o = objs.load(os.path.join(obj_dir(), "monitor.bpf.o"))
    frames = {s: vxlan_frame(frame(s if s == 64 else s - 50)) for s in SIZES}
    return [Case("monitor", p, "VXLAN frame (flow known)", o.prog_fd(p), frames,
                 {"ifindex": PORT}, TC_ACT_UNSPEC) for p in ("monitor_egress", "monitor_ingress")]


def run(rounds: int, repeat: int, log) -> dict:
    """{"repeat": n, "cases": [{fn, prog, what, ns: {size: summary}, verdict}]}."""
    from .report import summary
    objs = Objects()
    rows, cases = [], []
    try:
        inj = None
        if os.path.exists(INJECT_OBJ):
            inj = objs.load(INJECT_OBJ, pinned=False)
        else:
            log(f"  {INJECT_OBJ} not built: ingress programs skipped (run make)")
        builders = [("bridge", lambda: bridge_cases(objs, inj)),
                    ("mesh", lambda: mesh_cases(objs, inj)),
                    ("monitor", lambda: monitor_cases(objs))]
        for fn, build in builders:
            if not os.path.exists(os.path.join(obj_dir(), f"{fn}.bpf.o")):
                rows.append({"fn": fn, "status": "not available: object not built"})
                continue
            try:
                cases += build()
            except Exception as e:
                rows.append({"fn": fn, "status": f"failed: {type(e).__name__}: {e}"})
                log(f"  {fn}: {rows[-1]['status']}")
        if inj is not None:
            cases.append(injector_case(inj))
        got = {(id(c), s): [] for c in cases for s in SIZES}
        verdicts: dict = {}
        for _ in range(rounds):
            for s in SIZES:
                for c in cases:
                    ns, verdict = c.run(s, repeat)
                    c.verify()
                    got[(id(c), s)].append(ns)
                    verdicts[id(c)] = verdict
        for c in cases:
            ok = verdicts.get(id(c)) == c.expect
            status = "ok" if ok else f"unexpected verdict {verdicts.get(id(c))} (expected {c.expect})"
            if c.problem:
                status = c.problem
            rows.append({"fn": c.fn, "prog": c.prog, "what": c.what, "status": status,
                         "ns": {str(s): summary(got[(id(c), s)]) for s in SIZES}})
    finally:
        objs.close()
    return {"repeat": repeat, "rounds": rounds, "sizes": list(SIZES), "cases": rows}

