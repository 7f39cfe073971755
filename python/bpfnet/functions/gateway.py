"""The physical-to-virtual gateway: clients on a VLAN trunk, each steered by
its source MAC to its own worker port, VLAN popped; replies get the learned
VLAN pushed back.

    gw = Gateway(PinDir(root, "host"))
    gw.load(trunk="eth1")
    gw.client_add(EUI("02:00:00:00:00:0a"), "w1")   # w1: host side of a worker's veth
    gw.clients()    # [{"mac": ..., "worker": "w1", "vlan": 10, ...}]

``gw_phys2virt`` sits on the trunk's tc ingress, ``gw_virt2phys`` on each
worker port's tc ingress. The trunk and the worker ports are the user's
devices: bpfnet attaches and detaches its programs and never changes them
otherwise (a clsact qdisc it had to add goes away with its last filter).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import time

from .. import abi
from ..abi import GwCfg, GwClientKey, GwClientVal, GwStats, GwVlanVal, mac_pack, mac_unpack
from ..errors import ConfigError, NotFound
from .. import validate
from .base import Function, Undo
from .options import Option, text

C_U32 = ctypes.c_uint32
PROTO_NAMES = {abi.ETH_P_8021Q: "802.1Q", abi.ETH_P_8021AD: "802.1ad"}


class Gateway(Function):
    name = "gateway"
    programs = ("gw_phys2virt", "gw_virt2phys")
    options = (Option("trunk", text(validate.ifname), in_place=False, required=True, metavar="DEV",
                      help="the VLAN trunk the clients arrive on (required on first load)"),)
    cfg_map, cfg_type = "gw_cfg", GwCfg
    maps = {
        "gw_cfg": (C_U32, GwCfg),
        "gw_clients": (GwClientKey, GwClientVal),
        "gw_vlan_fdb": (C_U32, GwVlanVal),
        "gw_stats": ("percpu", GwStats),
    }
    stats_map = "gw_stats"

    def _check_port(self, idx: int, name: str, what: str, prog: str) -> None:
        """A trunk or worker port must be an Ethernet device whose hook no
        other bpfnet function holds (tc mode would replace its filter)."""
        if not self.net.is_ether(idx):
            raise ConfigError(f"{what} {name!r} is not an Ethernet device")
        other = self.net.ours_attached(idx, "ingress")
        if other not in (None, prog):
            raise ConfigError(f"{what} {name!r}: its ingress already runs bpfnet's {other}")

    # --- load / unload: the steps of the lifecycle (base.Function) -------------
    def prepare(self, values: dict, given: dict) -> dict:
        idx = self.net.index(values["trunk"])
        self._check_port(idx, values["trunk"], "trunk", "gw_phys2virt")
        return {**values, "trunk_ifindex": idx}

    def setup(self, obj, plan: dict, undo: Undo) -> dict:
        idx = plan["trunk_ifindex"]
        # intent first: a run killed after attaching still tells the next
        # load or unload which device to clear
        self.write_cfg(GwCfg(trunk=idx))
        self.attach(idx, "ingress", obj.prog_fd("gw_phys2virt"), "gw_phys2virt", undo)
        return {"trunk": plan["trunk"], "trunk_ifindex": idx}

    def option_values(self) -> dict:
        return {"trunk": self.net.name(self.cfg().trunk)}

    def check_reload(self, given: dict, have: dict) -> None:
        if "trunk" in given:
            self.net.index(given["trunk"])

    def hooks(self) -> list[tuple[int, str, str]]:
        """The trunk's ingress, and each worker port's that still exists;
        every map (clients, learned VLANs, counters) is kept."""
        out = [(self.cfg().trunk, "ingress", "gw_phys2virt")]
        out += [(v.worker, "ingress", "gw_virt2phys") for _, v in self.map("gw_clients").items()
                if self.net.name(v.worker) is not None]  # a worker port may be gone
        return out

    def result(self) -> dict:
        trunk = self.cfg().trunk
        return {"trunk": self.net.name(trunk), "trunk_ifindex": trunk}

    def teardown(self, given: dict | None = None) -> None:
        """Every client's attach point, then the trunk's. Recovering a killed
        first load (``given``), whatever cannot be read is skipped."""
        if given is None:
            cfg = self.cfg()
            for k, v in self.map("gw_clients").items():
                self._client_teardown(k, v)
            self.detach(cfg.trunk, "ingress")
            return
        with contextlib.suppress(Exception):
            trunk = self.cfg().trunk
            if trunk:
                self.detach(trunk, "ingress")
        with contextlib.suppress(Exception):
            for k, v in self.map("gw_clients").items():
                self._client_teardown(k, v)

    # --- clients ---------------------------------------------------------------
    def client_add(self, mac, worker: str) -> dict:
        """Frames from ``mac`` on the trunk go to port ``worker``, VLAN
        popped; ``worker``'s frames go back with the learned VLAN."""
        self.require_loaded()
        net = self.net
        clients = self.map("gw_clients")
        key = GwClientKey(mac=mac_pack(mac))
        old = clients.get(key)
        if old is not None and not old.flags & abi.GW_CLIENT_F_PENDING:
            raise ConfigError(f"client {mac} already exists (client del it first)")
        idx = net.index(worker)
        if idx == self.cfg().trunk:
            raise ConfigError(f"--worker {worker} is the trunk")
        self._check_port(idx, worker, "worker", "gw_virt2phys")
        items = clients.items()
        for k, v in items:
            if v.worker == idx and not v.flags & abi.GW_CLIENT_F_PENDING:
                raise ConfigError(f"worker {worker} already serves client {mac_unpack(k.mac)}")
        if len(items) >= abi.GW_CLIENT_MAX:
            raise ConfigError(f"the gateway holds at most {abi.GW_CLIENT_MAX} clients")
        # entries a killed `client add` left pending: commands are
        # serialized, so none of them is in progress
        for k, v in items:
            if v.flags & abi.GW_CLIENT_F_PENDING:
                self._client_teardown(k, v)
        prog_fd = self.prog_pin_fd("gw_virt2phys")
        try:
            with Undo() as undo:
                # intent first (pending: the trunk does not steer it yet)
                clients.insert(key, GwClientVal(worker=idx, flags=abi.GW_CLIENT_F_PENDING))
                undo.push(clients.discard, key)
                self.attach(idx, "ingress", prog_fd, "gw_virt2phys", undo)
                # an entry left by an earlier client of this port (learned
                # while it was being deleted) must not lend its VLAN
                self.map("gw_vlan_fdb").discard(C_U32(idx))
                # last: from here on the trunk steers this MAC
                clients[key] = GwClientVal(worker=idx)
        finally:
            os.close(prog_fd)
        return {"mac": str(mac), "worker": worker}

    def _client(self, mac) -> tuple[GwClientKey, GwClientVal]:
        key = GwClientKey(mac=mac_pack(mac))
        try:
            return key, self.map("gw_clients")[key]
        except KeyError:
            raise NotFound(f"client {mac} is not configured") from None

    def _client_teardown(self, key: GwClientKey, val: GwClientVal) -> None:
        # first stop steering, then the way back, then what was learned
        self.map("gw_clients").discard(key)
        self.detach(val.worker, "ingress")
        self.map("gw_vlan_fdb").discard(C_U32(val.worker))

    def client_del(self, mac) -> None:
        self.require_loaded()
        self._client_teardown(*self._client(mac))

    def clients(self) -> list[dict]:
        """One row per client: its worker port, the VLAN it was last seen on
        (None before its first tagged frame) and its counters. Entries a
        killed `client add` left pending are not clients (yet)."""
        self.require_loaded()
        fdb = self.map("gw_vlan_fdb")
        now = time.monotonic_ns()
        rows = []
        for k, v in self.map("gw_clients").items():
            if v.flags & abi.GW_CLIENT_F_PENDING:
                continue
            row = {"mac": str(mac_unpack(k.mac)), "worker": self.net.name(v.worker),
                   "vlan": None, "proto": None, "pcp": None,
                   "rx_pkts": 0, "rx_bytes": 0, "tx_pkts": 0, "tx_bytes": 0, "age_s": None}
            learned = fdb.get(C_U32(v.worker))
            if learned is not None:
                row.update(vlan=learned.vlan_tci & abi.VLAN_VID_MASK,
                           proto=PROTO_NAMES.get(learned.vlan_proto, hex(learned.vlan_proto)),
                           pcp=learned.vlan_tci >> 13,
                           rx_pkts=learned.rx_pkts, rx_bytes=learned.rx_bytes,
                           tx_pkts=learned.tx_pkts, tx_bytes=learned.tx_bytes,
                           age_s=round(max(0, now - learned.seen_ns) / 1e9, 1))
            rows.append(row)
        rows.sort(key=lambda r: r["mac"])
        return rows

    # --- status ----------------------------------------------------------------
    def status(self) -> dict:
        self.require_loaded()
        net = self.net
        cfg = self.cfg()
        attach = [self.attach_row(cfg.trunk, "ingress")]
        clients = sorted(self.map("gw_clients").items(), key=lambda kv: bytes(kv[0].mac))
        pending = 0
        for k, v in clients:
            pending += bool(v.flags & abi.GW_CLIENT_F_PENDING)
            attach.append(self.attach_row(v.worker, "ingress", client=str(mac_unpack(k.mac))))
        return {"function": self.name, "trunk": net.name(cfg.trunk),
                "clients": len(clients) - pending, "pending": pending, "attach": attach,
                "maps": self.map_fill(), "counters": self.stats()}


FUNCTION = Gateway
