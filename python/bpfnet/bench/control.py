"""Control plane: `bpfnetctl load bridge` as a whole process, and FDB
provisioning and dumps against the kernel's FDB over netlink.

load      ``python -m bpfnet.cli --netns NS load bridge`` (what ./bpfnetctl
          execs) in a fresh host namespace: wall time and the process's peak
          RSS (wait4's ru_maxrss); the bridge is unloaded between rounds.

FDB       one host namespace holds both tables:
  bpfnet  the bridge loaded through Bridge.load, its br_fdb resized to
          FDB_MAP_MAX before load (bpf_map__set_max_entries; BR_FDB_MAX is
          65536), and a VNI whose port the entries point at.
          provision: Map.update_raw (bpf_map_update_batch, 4096 a call) of
          keys and values packed into two buffers; the packing is timed
          apart (prepare_s).
          dump: Map.dump_batches (bpf_map_lookup_batch), and `fdb show
          --json`'s path: Bridge.fdb() -> cli.to_json.
  kernel  a VXLAN device (id 20, not external) whose FDB holds MAC -> remote
          VTEP, the kernel's own form of the same table
          (`bridge fdb add MAC dev vxk dst IP`, NUD_PERMANENT, NTF_SELF); UDP port
          4790, since the bridge's external device holds 4789 in that namespace.
          netlink-batch: prepared RTM_NEWNEIGH messages written many per
            sendmsg on a raw NETLINK_ROUTE socket, acks read per chunk: the
            kernel's own speed over netlink, little Python on the way.
          pyroute2: IPRoute.fdb("add") one request at a time, and
            IPRoute.fdb("dump"), as a Python control plane would.
          dump -> JSON rows {mac, vni, port, remote} -> json.dumps.
          The device is recreated (empty) before each round.
pyroute2 is slow (hundreds of microseconds a request): it runs at the
smallest count every round, at the middle count once, and the largest count
is extrapolated linearly from the middle one, and labelled so. Dumps (and
JSON) run up to json_max (100k); above it, provisioning and Map.dump only.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import socket
import struct
import subprocess
import sys
import time

from netaddr import IPAddress
from pyroute2 import netns

from .. import abi, libbpf
from ..cli import to_json
from ..functions.base import PinDir
from ..functions.bridge import Bridge
from ..sim import Sim
from .report import summary

FDB_MAP_MAX = 1 << 21       # LRU: room to spare so nothing is evicted early
VNI = 10
KERNEL_VNI = 20
LOCAL = "10.99.0.1"

# netlink constants (linux/netlink.h, linux/rtnetlink.h, linux/neighbour.h)
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWNEIGH, RTM_GETNEIGH = 28, 30
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_DUMP = 1, 4, 0x200, 0x400, 0x300
NUD_PERMANENT, NTF_SELF = 0x80, 0x02
NDA_DST, NDA_LLADDR = 1, 2
AF_BRIDGE = 7
SO_RCVBUFFORCE = 33


# --- `bpfnetctl load bridge` as a process ----------------------------------------

def load_bridge(rounds: int, log) -> dict:
    sim = Sim(prefix=f"bbl{os.getpid() % 100000}")
    wall, rss = [], []
    try:
        sim.fabric()
        h = sim.host("h0", f"{LOCAL}/24")
        argv = [sys.executable, "-m", "bpfnet.cli", "--pin-root", sim.pin_root, "--netns", h,
                "load", "bridge", "--underlay", "eth0", "--local", LOCAL]
        for _ in range(rounds):
            t = time.perf_counter()
            p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _, status, ru = os.wait4(p.pid, 0)
            dt = time.perf_counter() - t
            p.returncode = os.waitstatus_to_exitcode(status)
            err = p.stderr.read().decode().strip()
            p.stderr.close()
            if p.returncode != 0:
                raise RuntimeError(f"bpfnetctl load bridge: exit {p.returncode}: {err}")
            wall.append(dt)
            rss.append(ru.ru_maxrss / 1024)  # KiB -> MiB
            sim.bpfnetctl("unload", "bridge", netns_=h)
    finally:
        sim.cleanup()
    return {"argv": "bpfnetctl --netns NS load bridge --underlay eth0 --local IP",
            "wall_s": summary(wall), "peak_rss_mib": summary(rss)}


# --- the FDB tables ------------------------------------------------------------------

@contextlib.contextmanager
def _in_ns(ns: str):
    netns.pushns(ns)
    try:
        yield
    finally:
        netns.popns()


class BigFdbBridge(Bridge):
    """The bridge, loaded by Bridge.load, with br_fdb resized before load."""

    fdb_max = FDB_MAP_MAX

    def open_object(self, undo):
        orig = libbpf.BpfObject.load
        size = self.fdb_max

        def load(obj):
            obj.set_max_entries("br_fdb", size)
            orig(obj)
        libbpf.BpfObject.load = load
        try:
            return super().open_object(undo)
        finally:
            libbpf.BpfObject.load = orig


def mac_of(i: int) -> bytes:
    return bytes([0x02]) + i.to_bytes(5, "big")


def remote_of(i: int) -> bytes:
    """One of 4096 remote VTEPs, 10.98.x.y (network order)."""
    return bytes([10, 98, (i >> 8) & 15, i & 255])


class BpfnetFdb:
    def __init__(self, sim: Sim, host: str):
        self.host = host
        with _in_ns(host):
            self.br = BigFdbBridge(PinDir(sim.pin_root, host))
            self.br.load(underlay="eth0", local=IPAddress(LOCAL), ageing=86400)
            self.br.vni_add(VNI, "br10")
            self.port = self.br.map("br_vni")[ctypes.c_uint32(VNI)].port
            self.fdb = self.br.map("br_fdb")
        if self.fdb.max_entries != FDB_MAP_MAX:
            raise RuntimeError(f"br_fdb has {self.fdb.max_entries} entries, not {FDB_MAP_MAX}")
        self.keys = b""
        self.vals = b""

    def prepare(self, n: int) -> float:
        """Packs the first ``n`` keys and values into two contiguous buffers
        (kept); returns seconds."""
        t = time.perf_counter()
        now = time.monotonic_ns()
        mapped = b"\0" * 10 + b"\xff\xff"
        port = self.port.to_bytes(4, "little")
        have = len(self.keys) // abi.BR_FDB_KEY.size
        self.keys += b"".join(mac_of(i) + b"\0\0" + port for i in range(have, n))
        self.vals += b"".join(abi.BR_FDB_VAL.pack(mapped + remote_of(i), VNI, 0, 0, 0, now)
                              for i in range(have, n))
        return time.perf_counter() - t

    def clear(self, n: int) -> None:
        self.fdb.delete_raw(self.keys[:n * abi.BR_FDB_KEY.size])

    def measure(self, n: int, as_json: bool) -> dict:
        keys = self.keys[:n * abi.BR_FDB_KEY.size]
        vals = self.vals[:n * abi.BR_FDB_VAL.size]
        t = time.perf_counter()
        self.fdb.update_raw(keys, vals)
        prov = time.perf_counter() - t
        t = time.perf_counter()
        held = sum(c for _, _, c in self.fdb.dump_batches())
        dump = time.perf_counter() - t
        out = {"provision_s": prov, "dump_s": dump}
        if as_json:
            with _in_ns(self.host):
                t = time.perf_counter()
                rows = self.br.fdb()
                text = to_json(rows)
                out["json_s"] = time.perf_counter() - t
                out["json_bytes"] = len(text)
            if len(rows) != n:
                raise RuntimeError(f"bpfnet FDB shows {len(rows)}, not {n}")
        if held != n:
            raise RuntimeError(f"bpfnet FDB holds {held}, not {n}")
        self.clear(n)
        return out

    def close(self):
        with _in_ns(self.host):
            with contextlib.suppress(Exception):
                self.br.unload()
            self.br.close()


class KernelFdb:
    """The FDB of a VXLAN device, over netlink."""

    def __init__(self, sim: Sim, host: str):
        self.sim, self.host = sim, host
        self.vx = 0
        self.msgs: list[bytes] = []
        self.entries: list[tuple[str, str]] = []
        with _in_ns(host):
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20)
        self.sock.bind((0, 0))
        self.seq = 0

    def recreate(self) -> None:
        with self.sim.ipr(self.host) as ipr:
            for idx in ipr.link_lookup(ifname="vxk"):
                ipr.link("del", index=idx)
            eth0 = ipr.link_lookup(ifname="eth0")[0]
            ipr.link("add", ifname="vxk", kind="vxlan", vxlan_id=KERNEL_VNI, vxlan_link=eth0,
                     vxlan_local=LOCAL, vxlan_port=4790, vxlan_learning=0)
            self.vx = ipr.link_lookup(ifname="vxk")[0]
            ipr.link("set", index=self.vx, state="up")

    def prepare(self, n: int) -> float:
        """RTM_NEWNEIGH messages (for the raw socket) and (mac, ip) strings
        (for pyroute2) for the first ``n`` entries; returns seconds."""
        t = time.perf_counter()
        for i in range(len(self.msgs), n):
            mac, ip = mac_of(i), remote_of(i)
            body = (struct.pack("=BxxxiHBB", AF_BRIDGE, 0, NUD_PERMANENT, NTF_SELF, 0)
                    + struct.pack("=HH", 10, NDA_LLADDR) + mac + b"\0\0"
                    + struct.pack("=HH", 8, NDA_DST) + ip)
            self.msgs.append(body)
            self.entries.append((mac.hex(":"), socket.inet_ntoa(ip)))
        return time.perf_counter() - t

    # raw netlink ------------------------------------------------------------
    def _acks(self, want: int) -> None:
        got = 0
        while got < want:
            data = self.sock.recv(1 << 20)
            off = 0
            while off < len(data):
                ln, typ = struct.unpack_from("=IH", data, off)
                if typ == NLMSG_ERROR:
                    err = struct.unpack_from("=i", data, off + 16)[0]
                    if err:
                        raise OSError(-err, f"RTM_NEWNEIGH: {os.strerror(-err)}")
                    got += 1
                off += (ln + 3) & ~3
        return None

    def add_batch(self, n: int, chunk: int = 1024) -> None:
        flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
        vx = self.vx
        for start in range(0, n, chunk):
            parts = []
            for body in self.msgs[start:min(start + chunk, n)]:
                self.seq += 1
                body = body[:4] + struct.pack("=i", vx) + body[8:]
                parts.append(struct.pack("=IHHII", 16 + len(body), RTM_NEWNEIGH, flags,
                                         self.seq, 0) + body)
            self.sock.send(b"".join(parts))
            self._acks(len(parts))

    def dump_rows(self) -> list[dict]:
        """RTM_GETNEIGH dump (AF_BRIDGE), this device's entries as rows."""
        self.seq += 1
        req = struct.pack("=IHHII", 16 + 12, RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP,
                          self.seq, 0) + struct.pack("=BxxxiHBB", AF_BRIDGE, 0, 0, 0, 0)
        self.sock.send(req)
        rows, vx = [], self.vx
        name = "vxk"
        while True:
            data = self.sock.recv(1 << 20)
            off = 0
            while off < len(data):
                ln, typ = struct.unpack_from("=IH", data, off)
                if typ == NLMSG_DONE:
                    return rows
                if typ == NLMSG_ERROR:
                    err = struct.unpack_from("=i", data, off + 16)[0]
                    raise OSError(-err, "RTM_GETNEIGH dump")
                ifindex = struct.unpack_from("=i", data, off + 20)[0]
                if ifindex == vx:
                    mac = ip = None
                    a, end = off + 28, off + ln
                    while a < end:
                        alen, atyp = struct.unpack_from("=HH", data, a)
                        if atyp == NDA_LLADDR:
                            mac = data[a + 4:a + 10].hex(":")
                        elif atyp == NDA_DST:
                            ip = socket.inet_ntoa(data[a + 4:a + 8])
                        a += (alen + 3) & ~3
                    if mac != "00:00:00:00:00:00":
                        rows.append({"mac": mac, "vni": KERNEL_VNI, "port": name, "remote": ip})
                off += (ln + 3) & ~3

    # pyroute2 -------------------------------------------------------------------
    def add_pyroute2(self, n: int) -> None:
        with self.sim.ipr(self.host) as ipr:
            for mac, ip in self.entries[:n]:
                ipr.fdb("add", ifindex=self.vx, lladdr=mac, dst=ip)

    def dump_pyroute2(self) -> list[dict]:
        with self.sim.ipr(self.host) as ipr:
            return [{"mac": m.get_attr("NDA_LLADDR"), "vni": KERNEL_VNI, "port": "vxk",
                     "remote": m.get_attr("NDA_DST")}
                    for m in ipr.fdb("dump", ifindex=self.vx)
                    if m["ifindex"] == self.vx and m.get_attr("NDA_DST")]

    def measure(self, n: int, how: str, as_json: bool) -> dict:
        self.recreate()
        t = time.perf_counter()
        if how == "batch":
            self.add_batch(n)
        else:
            self.add_pyroute2(n)
        prov = time.perf_counter() - t
        if not as_json:
            return {"provision_s": prov}
        t = time.perf_counter()
        rows = self.dump_rows() if how == "batch" else self.dump_pyroute2()
        text = json.dumps(rows, indent=2)
        js = time.perf_counter() - t
        if len(rows) != n:
            raise RuntimeError(f"kernel FDB ({how}) shows {len(rows)}, not {n}")
        return {"provision_s": prov, "json_s": js, "json_bytes": len(text)}

    def close(self):
        self.sock.close()


def fdb(counts: list[int], rounds: int, log, json_max: int, pyroute2_full: int,
        pyroute2_once: int) -> dict:
    """Interleaved per count: bpfnet, kernel netlink-batch, kernel pyroute2
    (counts <= pyroute2_full every round, <= pyroute2_once in round 1 only,
    larger ones extrapolated from the largest measured). Dumps (and JSON)
    for counts <= json_max; above it, bpfnet's raw Map.dump only."""
    sim = Sim(prefix=f"bbf{os.getpid() % 100000}")
    out: dict = {}
    bp = kf = None
    try:
        sim.fabric()
        h = sim.host("h0", f"{LOCAL}/24")
        bp = BpfnetFdb(sim, h)
        kf = KernelFdb(sim, h)
        top = max(counts)
        prep_b = bp.prepare(top)
        prep_k = kf.prepare(top)
        log(f"  fdb: prepared {top} entries: bpfnet structs {prep_b:.1f} s, "
            f"netlink messages {prep_k:.1f} s")
        # The prepared entries are millions of live objects a real bpfnetctl
        # would not hold; without this, each cyclic GC pass in a measured
        # section would walk them all (a dump of 100k looked 5x slower).
        gc.collect()
        gc.freeze()
        for n in counts:
            acc: dict = {"bpfnet": [], "kernel_batch": [], "kernel_pyroute2": []}
            for r in range(rounds):
                js = n <= json_max
                acc["bpfnet"].append(bp.measure(n, js))
                acc["kernel_batch"].append(kf.measure(n, "batch", js))
                if n <= pyroute2_full or (n <= pyroute2_once and r == 0):
                    acc["kernel_pyroute2"].append(kf.measure(n, "pyroute2", js))
            row = {}
            for who, ms in acc.items():
                row[who] = {k: summary([m[k] for m in ms]) for k in (ms[0] if ms else {})}
            row["bpfnet"]["prepare_s_per_entry"] = prep_b / top
            out[str(n)] = row
            b = row["bpfnet"]
            log(f"  fdb {n}: " + "; ".join(
                f"{who} " + ", ".join(f"{k} {v['median']:.3f}" for k, v in row[who].items()
                                      if isinstance(v, dict) and k.endswith("_s"))
                for who in acc if row[who]))
        # pyroute2 beyond what was measured: linear, from the largest measured
        measured = [n for n in counts if out[str(n)]["kernel_pyroute2"]]
        if measured:
            base = max(measured)
            for n in counts:
                if n not in measured:
                    src = out[str(base)]["kernel_pyroute2"]
                    out[str(n)]["kernel_pyroute2"] = {
                        k: {"median": v["median"] * n / base, "min": v["min"] * n / base,
                            "max": v["max"] * n / base, "n": 0, "values": [],
                            "extrapolated_from": base}
                        for k, v in src.items()}
    finally:
        gc.unfreeze()
        if bp is not None:
            bp.close()
        if kf is not None:
            kf.close()
        sim.cleanup()
    return out
