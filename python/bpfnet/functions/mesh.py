"""The distributed bridge without multicast: one port per (VNI, peer).

    mesh = Mesh(PinDir(root, "host"))
    mesh.load(underlay="eth0", local=IPAddress("10.99.0.1"))
    mesh.peer_add(IPAddress("10.99.0.2"), 10, "br10")
    mesh.peer_show()

Each peer of a VNI gets a veth pair ``bmp<N>``/``bmq<N>`` (N from a counter
kept in ``mesh_cfg``): ``bmp<N>`` joins the VNI's Linux bridge and carries
``mesh_egress`` on its tc egress, which tunnels everything leaving it to that
one peer; ``mesh_ingress`` on the VXLAN device redirects frames from the peer
into ``bmp<N>``. The Linux bridge floods broadcast to every port, hence to
every peer once; ``mesh_egress`` drops what entered through another of our
ports (split horizon). ``bmq<N>`` only keeps the pair's carrier up.
The underlay may be IPv4 or IPv6: peers and ``--local`` are ``bpfnet_ip``.
"""
from __future__ import annotations

import os
import socket
from dataclasses import replace

from netaddr import IPAddress

from .. import abi
from ..abi import (MeshCfg, MeshPeerKey, MeshPeerVal, MeshPortVal, MeshVniVal,
                   ip_pack, ip_unpack)
from ..errors import ConfigError, NotFound
from .base import Undo
from .options import DEVICE, ENCAP, LOCAL, PORT, UNDERLAY
from .overlay import C_U32, Overlay

PORT_PREFIX = ("bmp", "bmq")


def port_names(n: int) -> tuple[str, str]:
    return f"{PORT_PREFIX[0]}{n}", f"{PORT_PREFIX[1]}{n}"


class Mesh(Overlay):
    name = "mesh"
    cfg_map, cfg_type, created_flag = "mesh_cfg", MeshCfg, abi.MESH_CFG_F_VXLAN_CREATED
    ingress_prog, egress_prog, ports_map = "mesh_ingress", "mesh_egress", "mesh_ports"
    encap_prefix = "mesh"
    options = (UNDERLAY,
               replace(LOCAL, help="local VTEP address, IPv4 or IPv6 (default: routing picks)"),
               PORT, DEVICE, ENCAP)
    maps = {
        "mesh_cfg": (C_U32, MeshCfg),
        "mesh_peers": (MeshPeerKey, MeshPeerVal),
        "mesh_ports": (C_U32, MeshPortVal),
        "mesh_vnis": (C_U32, MeshVniVal),
        "mesh_stats": ("percpu", abi.MeshStats),
    }
    stats_map = "mesh_stats"

    # --- load / unload: the steps of the lifecycle (base.Function, Overlay) -----
    def local(self) -> IPAddress | None:
        cfg = self.cfg()
        return None if abi.ip_is_zero(cfg.local) else ip_unpack(cfg.local)

    def family(self, plan: dict) -> int:
        """The underlay family the MTU is sized for: --local's, else IPv6 as
        soon as the underlay has a global IPv6 address (either may be used)."""
        if plan["local"] is not None:
            return plan["local"].version
        v6 = [IPAddress(a) for a in self.net.addresses(plan["under_idx"], socket.AF_INET6)]
        return 6 if any(not a.is_link_local() for a in v6) else 4

    def make_cfg(self, vx: int, flags: int, values: dict) -> MeshCfg:
        cfg = MeshCfg(vxlan_ifindex=vx, flags=flags, dstport=values["port"])
        if values["local"] is not None:
            cfg.local = ip_pack(values["local"])
        return cfg

    def teardown_entries(self) -> None:
        for key, val in self.map("mesh_peers").items():
            self._peer_teardown(key, val)

    # --- peers -----------------------------------------------------------------
    def _check_remote(self, remote: IPAddress) -> None:
        local = self.local()
        if local is not None and remote.version != local.version:
            raise ConfigError(f"peer {remote}: not of --local {local}'s address family")
        if remote.version == 6 and (remote.is_link_local() or remote.is_ipv4_mapped()):
            raise ConfigError(f"peer {remote}: link-local and IPv4-mapped addresses are not supported")
        if remote.is_loopback() or any(IPAddress(a) == remote for a in self.net.local_addresses()):
            raise ConfigError(f"peer {remote} is an address of this host")

    def _vni_peers(self, vni: int) -> int:
        return sum(1 for k in self.map("mesh_peers") if k.vni == vni)

    def peer_add(self, remote: IPAddress, vni: int, bridge: str) -> dict:
        self.require_loaded()
        net = self.net
        self._check_remote(remote)
        peers, ports, vnis = self.map("mesh_peers"), self.map("mesh_ports"), self.map("mesh_vnis")
        key = MeshPeerKey(vni=vni, remote=ip_pack(remote))
        old = peers.get(key)
        if old is not None and old.port == 0:
            self._peer_teardown(key, old)  # left half-made by a killed `peer add`
        elif old is not None:
            raise ConfigError(f"peer {remote} is already in VNI {vni}")
        if len(peers) >= abi.MESH_PEER_MAX:
            raise ConfigError(f"the mesh holds at most {abi.MESH_PEER_MAX} peers")
        br_idx = net.lookup(bridge)
        if br_idx is not None and net.kind(br_idx) != "bridge":
            raise ConfigError(f"device {bridge!r} exists and is not a bridge")
        vval = vnis.get(C_U32(vni))
        if vval is not None and vval.bridge and vval.bridge != br_idx:
            raise ConfigError(f"VNI {vni} is in bridge {net.name(vval.bridge)}, not {bridge}")
        if br_idx is not None:
            for k, v in vnis.items():
                if v.bridge == br_idx and k.value != vni:
                    raise ConfigError(f"bridge {bridge} carries VNI {k.value}: one bridge per VNI")
        if vval is None and len(vnis) >= abi.MESH_VNI_MAX:
            raise ConfigError(f"the mesh holds at most {abi.MESH_VNI_MAX} VNIs")
        cfg = self.cfg()
        listing = (vval is None or not vval.bridge) and self.needs_listing(cfg.vxlan_ifindex, vni)
        n = cfg.next_port
        while any(net.lookup(x) is not None for x in port_names(n)):
            n += 1
        pname, qname = port_names(n)
        prog_fd = self.prog_pin_fd("mesh_egress")
        try:
            with Undo() as undo:
                # intent first (port 0: the data path drops; bmp<n> is named
                # in the entry), so a killed run leaves a peer that `peer
                # del`, `peer add` or `unload` can clear
                cfg.next_port = n + 1
                self.write_cfg(cfg)
                peers.insert(key, MeshPeerVal(port=0, id=n))
                undo.push(peers.discard, key)
                if vval is None or not vval.bridge:
                    flags = abi.MESH_VNI_F_BRIDGE_CREATED if br_idx is None else 0
                    flags |= abi.MESH_VNI_F_FILTER_ADDED if listing else 0
                    vnis[C_U32(vni)] = MeshVniVal(bridge=br_idx or 0, flags=flags)
                    undo.push(vnis.discard, C_U32(vni))
                    if br_idx is None:
                        br_idx = net.add_bridge(bridge)
                        undo.push(net.delete, br_idx)
                        vnis[C_U32(vni)] = MeshVniVal(bridge=br_idx, flags=flags)
                p = net.add_veth(pname, qname)
                undo.push(net.delete, p)
                q = net.index(qname)
                mtu = net.mtu(cfg.vxlan_ifindex)
                net.set_mtu(p, mtu)
                net.set_mtu(q, mtu)
                net.set_master(p, br_idx)
                net.up(q)
                net.up(p)
                self.attach(p, "egress", prog_fd, "mesh_egress", undo)
                ports[C_U32(p)] = MeshPortVal(remote=ip_pack(remote), vni=vni)
                undo.push(ports.discard, C_U32(p))
                peers[key] = MeshPeerVal(port=p, id=n)
                if listing:  # last: the device receives the VNI from now on
                    net.vni_filter_set(cfg.vxlan_ifindex, vni)
                    undo.push(net.vni_filter_del, cfg.vxlan_ifindex, vni)
        finally:
            os.close(prog_fd)
        return {"remote": str(remote), "vni": vni, "bridge": bridge, "port": pname}

    def _peer(self, remote: IPAddress, vni: int) -> tuple[MeshPeerKey, MeshPeerVal]:
        key = MeshPeerKey(vni=vni, remote=ip_pack(remote))
        try:
            return key, self.map("mesh_peers")[key]
        except KeyError:
            raise NotFound(f"peer {remote} is not in VNI {vni}") from None

    def _peer_teardown(self, key: MeshPeerKey, val: MeshPeerVal) -> None:
        """Forgets a peer: ingress stops first, then its port goes; the VNI's
        bridge goes with the VNI's last peer if bpfnet made it and it is
        empty. Tolerates a peer that was only half set up."""
        net = self.net
        self.map("mesh_peers").discard(key)
        ports = {val.port} if val.port else set()
        ports |= {i for i in map(net.lookup, port_names(val.id)) if i}
        for p in ports:
            self.map("mesh_ports").discard(C_U32(p))
            self.detach(p, "egress")
            net.delete(p)
        if self._vni_peers(key.vni):
            return
        vnis = self.map("mesh_vnis")
        v = vnis.get(C_U32(key.vni))
        vx = self.cfg().vxlan_ifindex
        if v is not None and v.flags & abi.MESH_VNI_F_FILTER_ADDED and vx and net.name(vx):
            net.vni_filter_del(vx, key.vni)
        if v is not None and v.flags & abi.MESH_VNI_F_BRIDGE_CREATED and v.bridge \
                and net.name(v.bridge) is not None and not net.ports(v.bridge):
            net.delete(v.bridge)
        vnis.discard(C_U32(key.vni))

    def peer_del(self, remote: IPAddress, vni: int) -> None:
        self.require_loaded()
        self._peer_teardown(*self._peer(remote, vni))

    def peer_show(self) -> list[dict]:
        self.require_loaded()
        net = self.net
        ports = {k.value: v for k, v in self.map("mesh_ports").items()}
        bridges = {k.value: v.bridge for k, v in self.map("mesh_vnis").items()}
        rows = []
        for k, v in self.map("mesh_peers").items():
            pv = ports.get(v.port)
            rows.append({"remote": str(ip_unpack(k.remote)), "vni": k.vni,
                         "bridge": net.name(bridges[k.vni]) if bridges.get(k.vni) else None,
                         "port": net.name(v.port) if v.port else None,
                         "rx_pkts": v.rx_pkts, "rx_bytes": v.rx_bytes,
                         "tx_pkts": pv.tx_pkts if pv else 0,
                         "tx_bytes": pv.tx_bytes if pv else 0})
        rows.sort(key=lambda r: (r["vni"], IPAddress(r["remote"]).version, IPAddress(r["remote"])))
        return rows

    # --- status ----------------------------------------------------------------
    def status(self) -> dict:
        self.require_loaded()
        net = self.net
        cfg = self.cfg()
        vx = cfg.vxlan_ifindex
        attach = [self.attach_row(vx, "ingress", vni=None, remote=None)]
        vnis: dict[int, dict] = {}
        for k, v in sorted(self.map("mesh_vnis").items(), key=lambda kv: kv[0].value):
            vnis[k.value] = {"vni": k.value, "bridge": net.name(v.bridge) if v.bridge else None,
                             "ports": [], "peers": []}
        idx = {k.vni: {} for k in self.map("mesh_peers")}
        for k, v in self.map("mesh_peers").items():
            idx[k.vni][str(ip_unpack(k.remote))] = v.port
        for r in self.peer_show():
            p = idx[r["vni"]][r["remote"]]
            attach.append({"device": r["port"], "hook": "egress",
                           **(self.attached(p, "egress") if p else
                              {"program": None, "mode": None, "prog_id": None, "tag": None}),
                           "vni": r["vni"], "remote": r["remote"]})
            if r["vni"] in vnis:
                vnis[r["vni"]]["ports"].append(r["port"])
                vnis[r["vni"]]["peers"].append(r["remote"])
        return {"function": self.name, "device": net.name(vx),
                "local": self.local_in_use(cfg), "udp_port": cfg.dstport,
                "attach": attach, "vnis": list(vnis.values()),
                "maps": self.map_fill(), "counters": self.stats(), "encap": self.encap_status()}


FUNCTION = Mesh
