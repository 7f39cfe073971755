"""What the bridge and the mesh share: an external (collect_md) VXLAN device
on an underlay, ``<fn>_ingress`` on its tc ingress, ``<fn>_egress`` on each
tenant-facing port.

    class Bridge(Overlay):
        cfg_map, cfg_type, created_flag = "br_cfg", BrCfg, BR_CFG_F_VXLAN_CREATED
        ingress_prog, egress_prog, ports_map = "bridge_ingress", "bridge_egress", "br_port"
        options = (UNDERLAY, LOCAL, GROUP, PORT, DEVICE, AGEING)  # programs: from the two names
        def make_cfg(self, vx, flags, values): ...                 # the function's cfg
        def teardown_entries(self): ...                             # its VNIs (peers) and ports

Load, upgrade (every hook again: the ingress and each port in ``ports_map``),
recovery of a killed first load and unload are this class's steps of the
lifecycle in base.Function.

The cfg struct of each function starts with ``vxlan_ifindex`` and ``flags``
(``created_flag`` set when bpfnet made the device), which is all this class
reads or writes of it besides what ``make_cfg`` builds.
"""
from __future__ import annotations

import ctypes
import socket

from netaddr import IPAddress

from .. import abi
from ..abi import ip_unpack
from ..errors import ConfigError
from .base import Function, Undo
from .options import DEVICE, LOCAL, PORT, UNDERLAY

VXLAN_OVERHEAD = {4: 50, 6: 70}  # outer Ethernet + IPv4/IPv6 + UDP + VXLAN
DEFAULT_PORT = 4789
DEFAULT_DEVICE = "vxlan0"
C_U32 = ctypes.c_uint32


class Overlay(Function):
    """The scaffolding of the bridge and the mesh: a function declares its
    cfg map and type, its created flag, its two programs, its ports map and
    ``make_cfg``; load, upgrade, recovery and unload are these."""
    created_flag = 0
    ingress_prog = ""
    egress_prog = ""
    ports_map = ""
    options = (UNDERLAY, LOCAL, PORT, DEVICE)

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if cls.ingress_prog and not cls.__dict__.get("programs"):
            cls.programs = (cls.ingress_prog, cls.egress_prog)

    # --- checks before anything changes ----------------------------------------
    def underlay_index(self, underlay: str | None, local=None) -> int:
        """The underlay device: ``underlay``; else the device that holds
        ``local``; else the default route's (an ECMP default route's when
        all its nexthops leave by one device)."""
        net = self.net
        if underlay is not None:
            return net.index(underlay)
        if local is not None:
            idx = net.address_dev(local)
            if idx is not None and not net.is_ether(idx):
                raise ConfigError(f"--local {local} is on {net.name(idx)}, not an Ethernet device: "
                                  "give --underlay DEV")
            if idx is not None:
                return idx
        devs = net.default_route_devs()
        if not devs and local is not None:
            raise ConfigError(f"--local {local} is not an address of this host")
        if not devs:
            raise ConfigError("no default route to take the underlay from: give --underlay DEV")
        if len(devs) > 1:
            raise ConfigError(f"the default route is ECMP over {' and '.join(map(net.name, devs))}: "
                              "give --underlay DEV")
        return devs[0]

    def check_local(self, local, under_idx: int) -> None:
        if local is not None and not any(IPAddress(a) == local for a in self.net.addresses(under_idx)):
            raise ConfigError(f"--local {local} is not an address of {self.net.name(under_idx)}")

    def needs_listing(self, vx: int, vni: int, group=None) -> bool:
        """Whether ``vni`` must be added to device ``vx``'s VNI filter: a
        device with one (vnifilter) receives only the VNIs listed there
        (frames of others never reach the ingress program), so the bridge
        and the mesh list each VNI they carry, and remove it with the VNI
        (BR_/MESH_VNI_F_FILTER_ADDED records that bpfnet listed it). A VNI
        the user listed already stays theirs; listed with a group other
        than ``group``, it is refused."""
        net = self.net
        if not net.has_vnifilter(vx):
            return False
        listed = net.vni_filter(vx)
        if vni not in listed:
            return True
        if group is not None and listed[vni] not in (None, group):
            raise ConfigError(f"VNI {vni} is in {net.name(vx)}'s VNI filter with group {listed[vni]}")
        return False

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

    # --- the lifecycle's steps (see base.Function) ------------------------------
    def make_cfg(self, vx: int, flags: int, values: dict):
        """The function's cfg for a first load on device ``vx``."""
        raise NotImplementedError

    def family(self, plan: dict) -> int:
        """The underlay's address family (4 or 6) the MTU is sized for."""
        raise NotImplementedError

    def vxlan_group(self, values: dict):
        """The group a device bpfnet creates is given (the bridge's)."""
        return None

    def prepare(self, values: dict, given: dict) -> dict:
        under_idx = self.underlay_index(values["underlay"], values["local"])
        self.check_local(values["local"], under_idx)
        existing = self.net.lookup(values["device"])
        if existing is not None:
            self.check_vxlan(existing, values["device"], given.get("port"))
        return {**values, "under_idx": under_idx, "existing": existing}

    def setup(self, obj, plan: dict, undo: Undo) -> dict:
        """Creates the device unless it exists, writes the cfg that
        ``make_cfg`` builds (intent first), attaches the ingress program."""
        net = self.net
        flags = 0
        vx = plan["existing"]
        if vx is None:
            # intent first: a run killed right after creating the device
            # still lets the next load know it was ours
            flags |= self.created_flag
            self.write_cfg(self.cfg_type(flags=flags))
            mtu = net.mtu(plan["under_idx"]) - VXLAN_OVERHEAD[self.family(plan)]
            vx = net.add_vxlan(plan["device"], plan["under_idx"], plan["port"], local=plan["local"],
                               group=self.vxlan_group(plan), mtu=mtu)
            undo.push(net.delete, vx)
        net.up(vx)
        self.write_cfg(self.make_cfg(vx, flags, plan))
        self.attach(vx, "ingress", obj.prog_fd(self.ingress_prog), self.ingress_prog, undo)
        return {"device": plan["device"], "vxlan_ifindex": vx}

    def option_values(self) -> dict:
        out = super().option_values()
        vx = self.cfg().vxlan_ifindex
        info = self.net.vxlan_info(vx) if self.net.name(vx) else {}
        link = info.get("IFLA_VXLAN_LINK")
        out["underlay"] = self.net.name(link) if link else None
        out["port"] = info.get("IFLA_VXLAN_PORT")
        out["device"] = self.net.name(vx)
        return out

    def check_reload(self, given: dict, have: dict) -> None:
        under = given.get("underlay")
        under_idx = self.net.index(under) if under is not None else None
        if given.get("local") is not None:
            if under_idx is None and have.get("underlay"):
                under_idx = self.net.index(have["underlay"])
            if under_idx is not None:
                self.check_local(given["local"], under_idx)

    def hooks(self) -> list[tuple[int, str, str]]:
        out = [(self.cfg().vxlan_ifindex, "ingress", self.ingress_prog)]
        out += [(p.value, "egress", self.egress_prog) for p in self.map(self.ports_map)]
        return out

    def result(self) -> dict:
        vx = self.cfg().vxlan_ifindex
        return {"device": self.net.name(vx), "vxlan_ifindex": vx}

    def local_in_use(self, cfg, family: int | None = None) -> str | None:
        """The local VTEP address: --local's, else the address the kernel
        picks, the underlay's first global one (of ``family``), else None."""
        if not abi.ip_is_zero(cfg.local):
            return str(ip_unpack(cfg.local))
        link = self.net.vxlan_info(cfg.vxlan_ifindex).get("IFLA_VXLAN_LINK") \
            if self.net.name(cfg.vxlan_ifindex) else None
        if not link:
            return None
        fams = {4: socket.AF_INET, 6: socket.AF_INET6}
        for fam in ([fams[family]] if family else [socket.AF_INET, socket.AF_INET6]):
            for a in self.net.addresses(link, fam):
                ip = IPAddress(a)
                if not ip.is_link_local():
                    return str(ip)
        return None

    def teardown_entries(self) -> None:
        """Removes every VNI or peer, with its ports and bridge."""
        raise NotImplementedError

    def teardown(self, given: dict | None = None) -> None:
        """Every entry (with its ports), the ingress program, and the device
        if bpfnet made it. ``given`` (recovering a killed first load): what
        could not be read is skipped, and the device is looked up by the
        load's --device name when the ifindex was never recorded."""
        if given is None:
            cfg = self.cfg()
            self.teardown_entries()
            self.teardown_vxlan(cfg)
            return
        try:
            cfg = self.cfg()
        except (KeyError, OSError):
            cfg = self.cfg_type()
        try:
            self.teardown_entries()
        except Exception:  # noqa: BLE001 -- half-made state: clear what can be
            pass
        self.teardown_vxlan(cfg, given.get("device") or DEVICE.default)

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
