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
import os
import socket
import struct

from netaddr import EUI, IPAddress

from .. import abi, libbpf
from ..abi import EncapCfg, ip_pack, ip_unpack, mac_pack
from ..errors import ConfigError
from .base import Function, Undo
from .options import DEVICE, ENCAP, LOCAL, PORT, UNDERLAY

VXLAN_OVERHEAD = abi.ENCAP_HLEN  # outer Ethernet + IPv4/IPv6 + UDP + VXLAN
DEFAULT_PORT = 4789
DEFAULT_DEVICE = "vxlan0"
C_U32 = ctypes.c_uint32
PORT_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"


def _probe_frame() -> bytes:
    """An IPv4/UDP frame for the native-path probe (vxlan_probe)."""
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + 18, 0, 0x4000, 64, 17, 0,
                     bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    return (bytes.fromhex("020000000002" "020000000001" "0800") + ip
            + struct.pack("!HHHH", 1, 2, 8 + 18, 0) + bytes(18))


class Overlay(Function):
    """The scaffolding of the bridge and the mesh: a function declares its
    cfg map and type, its created flag, its two programs, its ports map and
    ``make_cfg``; load, upgrade, recovery and unload are these."""
    created_flag = 0
    ingress_prog = ""
    egress_prog = ""
    ports_map = ""
    options = (UNDERLAY, LOCAL, PORT, DEVICE, ENCAP)
    # native encapsulation (include/encap.h, bpf/lib/vxlan.h): its maps
    # (<prefix>_encap, <prefix>_encap_stats), the decapsulation program on
    # the underlay's ingress (<fn>_decap) and the probe (<fn>_probe, run at
    # load, never attached)
    encap_prefix = ""

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if cls.encap_prefix:
            cls.encap_map = f"{cls.encap_prefix}_encap"
            cls.encap_stats_map = f"{cls.encap_prefix}_encap_stats"
            cls.decap_prog = f"{cls.name}_decap"
            cls.probe_prog = f"{cls.name}_probe"
            cls.tc_prios = {cls.decap_prog: abi.BPFNET_TC_PRIO_DECAP}
            cls.maps = {**cls.maps, cls.encap_map: (C_U32, EncapCfg),
                        cls.encap_stats_map: ("percpu", abi.EncapStats)}
        if cls.ingress_prog and not cls.__dict__.get("programs"):
            cls.programs = (cls.ingress_prog, cls.egress_prog) + \
                ((cls.decap_prog,) if cls.encap_prefix else ())

    @property
    def optional_pins(self) -> tuple:
        """Pins a bpfnet from before native encapsulation did not make: a
        function it loaded is loaded all the same (a second load adds
        them, on the device path it ran), not half-made."""
        return (self.encap_map, self.encap_stats_map, self.decap_prog) if self.encap_prefix else ()

    def is_loaded(self) -> bool:
        return os.path.isdir(self.dir) and all(
            os.path.exists(os.path.join(self.dir, m))
            for m in (*self.maps, *self.programs) if m not in self.optional_pins)

    def open_object(self, undo: Undo):
        # kept for the steps of this command that need the object (the
        # probe and the decapsulation program when --encap changes in place)
        self._obj = super().open_object(undo)
        return self._obj

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
        return {**values, "under_idx": under_idx, "existing": existing, "given": given}

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
        mode = self.setup_encap(obj, undo, plan["encap"], "encap" in plan["given"],
                                plan["under_idx"], plan["port"], self.family(plan), plan["local"])
        return {"device": plan["device"], "vxlan_ifindex": vx, "encap": mode}

    def option_values(self) -> dict:
        out = super().option_values()
        vx = self.cfg().vxlan_ifindex
        info = self.net.vxlan_info(vx) if self.net.name(vx) else {}
        link = info.get("IFLA_VXLAN_LINK")
        out["underlay"] = self.net.name(link) if link else None
        out["port"] = info.get("IFLA_VXLAN_PORT")
        out["device"] = self.net.name(vx)
        ec = self.encap_cfg()
        out["encap"] = "native" if ec is not None and ec.flags & abi.ENCAP_F_NATIVE else "device"
        return out

    def apply_option(self, opt, value, undo: Undo) -> None:
        if opt.name != "encap":
            return super().apply_option(opt, value, undo)
        vx = self.cfg().vxlan_ifindex
        have = self.option_values()
        under_idx, port = self.device_underlay(vx)
        local = have.get("local")
        family = local.version if local is not None else self.underlay_family(under_idx)
        old = self.encap_cfg()
        if old is not None and old.underlay:
            family = 6 if old.flags & abi.ENCAP_F_IPV6 else 4
        self.setup_encap(self._obj, undo, value, True, under_idx, port, family, local)

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
        ec = self.encap_cfg()
        if ec is not None and ec.flags & abi.ENCAP_F_NATIVE:
            out.append((ec.underlay, "ingress", self.decap_prog))
        return out

    def result(self) -> dict:
        vx = self.cfg().vxlan_ifindex
        return {"device": self.net.name(vx), "vxlan_ifindex": vx,
                "encap": self.option_values()["encap"]}

    # --- native encapsulation --------------------------------------------------
    def device_underlay(self, vx: int) -> tuple[int, int]:
        """(underlay ifindex, UDP port) of VXLAN device ``vx``: its link, else
        the default route's device."""
        info = self.net.vxlan_info(vx)
        under = info.get("IFLA_VXLAN_LINK") or self.underlay_index(None)
        return under, info.get("IFLA_VXLAN_PORT") or DEFAULT_PORT

    def underlay_family(self, under_idx: int) -> int:
        """IPv6 if the underlay has a global IPv6 address and no IPv4 one."""
        if self.net.addresses(under_idx, socket.AF_INET):
            return 4
        return 6 if self._underlay_address(under_idx, 6) is not None else 4

    def encap_cfg(self) -> EncapCfg | None:
        """The encap_cfg, or None where it is not pinned (a function loaded
        by a bpfnet from before native encapsulation)."""
        if not self.encap_prefix or not os.path.exists(os.path.join(self.dir, self.encap_map)):
            return None
        return self.map(self.encap_map)[C_U32(0)]

    def probe_native(self, obj) -> bool:
        """Whether this kernel takes the native path: the object's probe
        program (vxlan_probe) run on a frame, for an IPv4 and an IPv6 outer
        header. Probed, never by kernel version."""
        fd = obj.prog_fd(self.probe_prog)
        try:
            return all(libbpf.prog_test_run(fd, _probe_frame(), ctx=abi.SkBuff(mark=m)).retval == 0
                       for m in (4, 6))
        except libbpf.BpfError:
            return False

    def _underlay_address(self, under_idx: int, family: int) -> IPAddress | None:
        """The outer source address the native path uses without --local:
        the underlay's first global address of the family, the one the
        kernel's VXLAN device would take."""
        fam = socket.AF_INET if family == 4 else socket.AF_INET6
        for a in self.net.addresses(under_idx, fam):
            ip = IPAddress(a)
            if not ip.is_link_local():
                return ip
        return None

    def resolve_encap(self, obj, want: str, explicit: bool, under_idx: int, family: int,
                      local) -> tuple[str, IPAddress | None]:
        """The path to use, ("native" | "device", outer source address).
        Native is the default where the kernel passes the probe and the
        underlay has an address; a given ``--encap native`` where it cannot
        be is refused."""
        if want == "device":
            return "device", local
        if not self.probe_native(obj):
            if explicit:
                raise ConfigError("--encap native: this kernel refuses bpf_skb_adjust_room's "
                                  "encapsulation flags; use --encap device")
            return "device", local
        src = local if local is not None else self._underlay_address(under_idx, family)
        if src is None:
            if explicit:
                raise ConfigError(f"--encap native: {self.net.name(under_idx)} has no IPv{family} "
                                  f"address to send from: give --local")
            return "device", local
        return "native", src

    def _port_range(self) -> tuple[int, int]:
        """The kernel's ip_local_port_range, which its VXLAN device takes its
        UDP source ports from."""
        try:
            with open(PORT_RANGE) as f:
                lo, hi = (int(x) for x in f.read().split())
            return lo, hi
        except (OSError, ValueError):
            return 32768, 60999

    def setup_encap(self, obj, undo: Undo, want: str, explicit: bool, under_idx: int,
                    port: int, family: int, local) -> str:
        """Writes the encap_cfg and attaches (native) or detaches (device)
        the decapsulation program on the underlay; returns the mode. In
        place, no frame is lost: the programs switch paths with the one
        write of the cfg, and either receive path takes VXLAN from peers of
        either kind."""
        mode, src = self.resolve_encap(obj, want, explicit, under_idx, family, local)
        lo, hi = self._port_range()
        mac = self.net.link(under_idx).get_attr("IFLA_ADDRESS")
        ec = EncapCfg(underlay=under_idx, dstport=port, src_mac=mac_pack(EUI(mac)),
                      sport_min=lo, sport_max=hi)
        ec.flags = abi.ENCAP_F_IPV6 if family == 6 else 0
        if src is not None:
            ec.local = ip_pack(src)
        emap = self.map(self.encap_map)
        old = self.encap_cfg()
        if old is not None:
            undo.push(emap.__setitem__, C_U32(0), EncapCfg.from_buffer_copy(old))
        if mode == "native":
            self.attach(under_idx, "ingress", obj.prog_fd(self.decap_prog), self.decap_prog, undo)
            ec.flags |= abi.ENCAP_F_NATIVE
            emap[C_U32(0)] = ec
        else:
            emap[C_U32(0)] = ec
            self.detach(under_idx, "ingress", abi.BPFNET_TC_PRIO_DECAP)
        return mode

    def teardown_encap(self) -> None:
        """Stops the native path and detaches the decapsulation program."""
        ec = self.encap_cfg()
        if ec is None or not ec.underlay:
            return
        under = ec.underlay
        self.map(self.encap_map)[C_U32(0)] = EncapCfg()
        if self.net.name(under) is not None:
            self.detach(under, "ingress", abi.BPFNET_TC_PRIO_DECAP)

    def encap_status(self) -> dict:
        """Which path each class of frame takes, and the path counters."""
        ec = self.encap_cfg()
        counters = (self.map(self.encap_stats_map).sum_fields(0)
                    if os.path.exists(os.path.join(self.dir, self.encap_stats_map)) else {})
        if ec is None or not ec.underlay:
            return {"mode": "device", "underlay": None, "local": None, "paths": {},
                    "counters": counters, "decap_attach": None}
        native = bool(ec.flags & abi.ENCAP_F_NATIVE)
        v6 = bool(ec.flags & abi.ENCAP_F_IPV6)
        path = lambda ok: "native" if native and ok else "device"  # noqa: E731
        paths = {
            "tx_ip": path(True),          # unicast and floods, IP inside
            "tx_non_ip": path(not v6),    # ARP and other non-IP frames (unicast ones: when
                                          # bpf_fib_lookup answers, else the device)
            "tx_gso": path(not v6),       # TCP super-frames (IPv6: the device's UDP checksum)
            "rx": path(not v6),           # VXLAN for us, one frame, not TCP inside
            "rx_tcp": "device",           # TCP: its flow's GRO frames take the device
            "rx_gso": "device",           # GRO/GSO frames: the device (tunnel GRO)
            "rx_fragment": "device",      # outer IP fragments: the device reassembles
        }
        return {"mode": "native" if native else "device", "underlay": self.net.name(ec.underlay),
                "local": None if abi.ip_is_zero(ec.local) else str(ip_unpack(ec.local)),
                "paths": paths, "counters": counters,
                "decap_attach": self.attached(ec.underlay, "ingress", abi.BPFNET_TC_PRIO_DECAP)
                if native else None}

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
            self.teardown_encap()
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
        try:
            self.teardown_encap()
        except Exception:  # noqa: BLE001
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
