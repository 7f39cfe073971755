"""What the bridge and the mesh share: an external (collect_md) VXLAN device
on an underlay, ``<fn>_ingress`` on its tc ingress, ``<fn>_egress`` on each
tenant-facing port.

    class Bridge(Overlay):
        cfg_map, cfg_type, created_flag = "br_cfg", BrCfg, BR_CFG_F_VXLAN_CREATED
        ingress_prog, egress_prog, ports_map = "bridge_ingress", "bridge_egress", "br_port"

The cfg struct of each function starts with ``vxlan_ifindex`` and ``flags``
(``created_flag`` set when bpfnet made the device), which is all this class
reads or writes of it besides what ``make_cfg`` builds.
"""
from __future__ import annotations

import ctypes

from netaddr import IPAddress

from ..errors import ConfigError
from .base import Function, Undo

VXLAN_OVERHEAD = {4: 50, 6: 70}  # outer Ethernet + IPv4/IPv6 + UDP + VXLAN
DEFAULT_PORT = 4789
DEFAULT_DEVICE = "vxlan0"
C_U32 = ctypes.c_uint32


class Overlay(Function):
    cfg_map = ""
    cfg_type = None
    created_flag = 0
    ingress_prog = ""
    egress_prog = ""
    ports_map = ""

    def cfg(self):
        return self.map(self.cfg_map)[C_U32(0)]

    def write_cfg(self, cfg) -> None:
        self.map(self.cfg_map)[C_U32(0)] = cfg

    # --- checks before anything changes ----------------------------------------
    def underlay_index(self, underlay: str | None) -> int:
        """The underlay device: ``underlay``, else the default route's."""
        if underlay is not None:
            return self.net.index(underlay)
        idx = self.net.default_route_dev()
        if idx is None:
            raise ConfigError("no default route to take the underlay from: give --underlay DEV")
        return idx

    def check_local(self, local, under_idx: int) -> None:
        if local is not None and not any(IPAddress(a) == local for a in self.net.addresses(under_idx)):
            raise ConfigError(f"--local {local} is not an address of {self.net.name(under_idx)}")

    def check_vxlan(self, idx: int, device: str, port=None) -> None:
        """An existing device may serve if it is an external VXLAN device on
        ``port`` that no other bpfnet function uses."""
        net = self.net
        if net.kind(idx) != "vxlan":
            raise ConfigError(f"device {device!r} exists and is not a VXLAN device")
        info = net.vxlan_info(idx)
        if not info.get("IFLA_VXLAN_COLLECT_METADATA"):
            raise ConfigError(f"VXLAN device {device!r} is not in external (collect_md) mode")
        if port is not None and info.get("IFLA_VXLAN_PORT") not in (None, port):
            raise ConfigError(f"VXLAN device {device!r} uses port {info['IFLA_VXLAN_PORT']}, not {port}")
        owner = self._other_owner(idx)
        if owner is not None:
            raise ConfigError(f"device {device!r} already carries bpfnet's {owner}: "
                              f"give the {self.name} its own --device")

    def _other_owner(self, idx: int) -> str | None:
        """The program another bpfnet function runs on ``idx``'s ingress
        (a bridge on vxlan0, say), if any."""
        from . import available, get
        for name in self.pins.loaded():
            if name == self.name or name not in available():
                continue
            other = get(name)(self.pins)
            try:
                prog = other.attached(idx, "ingress")["program"]
            finally:
                other.close()
            if prog is not None and prog not in self.programs:
                return prog
        prog = self.net.ours_attached(idx, "ingress")
        return prog if prog not in (None, *self.programs) else None

    # --- set-up, upgrade, teardown -------------------------------------------------
    def setup_vxlan(self, obj, undo: Undo, device: str, existing: int | None, under_idx: int,
                    port: int, family: int, make_cfg, local=None, group=None) -> int:
        """Creates the device unless ``existing``, writes the cfg that
        ``make_cfg(vxlan_ifindex, flags)`` builds, attaches the ingress
        program and pins the programs (the commit point of a load)."""
        net = self.net
        flags = 0
        if existing is None:
            # intent first: a run killed right after creating the device
            # still lets the next load know it was ours
            flags |= self.created_flag
            self.write_cfg(self.cfg_type(flags=flags))
            mtu = net.mtu(under_idx) - VXLAN_OVERHEAD[family]
            vx = net.add_vxlan(device, under_idx, port, local=local, group=group, mtu=mtu)
            undo.push(net.delete, vx)
        else:
            vx = existing
        net.up(vx)
        self.write_cfg(make_cfg(vx, flags))
        self.attach(vx, "ingress", obj.prog_fd(self.ingress_prog), self.ingress_prog, undo)
        self.pin_programs(obj)
        return vx

    def upgrade_programs(self) -> int:
        """A second load: new programs on every hook, in place; maps kept."""
        vx = self.cfg().vxlan_ifindex
        with Undo() as undo:
            obj = self.open_object(undo)
            try:
                self.attach(vx, "ingress", obj.prog_fd(self.ingress_prog), self.ingress_prog)
                fd = obj.prog_fd(self.egress_prog)
                for p in self.map(self.ports_map):
                    self.attach(p.value, "egress", fd, self.egress_prog)
                self.pin_programs(obj)
            finally:
                obj.close()
        return vx

    def teardown_vxlan(self, cfg, device: str | None = None) -> None:
        """Detaches the ingress program and deletes the device if bpfnet
        made it (``device``: its name, when a killed load never recorded
        the ifindex)."""
        vx = cfg.vxlan_ifindex
        if cfg.flags & self.created_flag:
            vx = vx or (self.net.lookup(device) if device else None)
        if vx:
            self.detach(vx, "ingress")
            if cfg.flags & self.created_flag:
                self.net.delete(vx)

    def recover(self, device: str, teardown_entries) -> None:
        """Clears what a first load that died half-way left: its device (if
        the intent flag says bpfnet created it), its entries (through
        ``teardown_entries()``), links and pins."""
        try:
            cfg = self.cfg()
        except (KeyError, OSError):
            cfg = self.cfg_type()
        try:
            teardown_entries()
        except Exception:  # noqa: BLE001 -- half-made state: clear what can be
            pass
        self.teardown_vxlan(cfg, device)
        self.remove_pins()
