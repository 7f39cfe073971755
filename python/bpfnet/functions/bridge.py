"""The distributed bridge over VXLAN with multicast flooding.

    br = Bridge(PinDir(root, "host"))
    br.load(underlay="eth0", group=IPAddress("239.1.1.1"))
    br.vni_add(10, "br10", allow=[IPAddress("10.0.0.2")])
    br.fdb()

Per VNI, a veth pair ``bnp<vni>``/``bnq<vni>``: ``bnp<vni>`` joins the
tenant's Linux bridge and carries ``bridge_egress`` on its tc egress; frames
from the tunnel are redirected into it. The peer ``bnq<vni>`` only keeps
the pair's carrier up.
"""
from __future__ import annotations

import errno
import os
import socket
import time

from netaddr import EUI, AddrFormatError, IPAddress, mac_unix_expanded
from pyroute2.netlink.exceptions import NetlinkError

from .. import abi
from ..abi import (BrAllowKey, BrCfg, BrFdbKey, BrFdbVal, BrLocalKey, BrLocalVal, BrNeighKey,
                   BrNeighVal, BrPortVal, BrVniVal, ip_pack, ip_unpack, mac_pack)
from ..errors import ConfigError, NotFound
from .. import validate
from .base import Undo
from .options import DEVICE, ENCAP, LOCAL, PORT, SUPPRESS, UNDERLAY, Option, text
from .overlay import C_U32, Overlay

DEFAULT_GROUP = IPAddress("239.1.1.1")
# entries the control plane provisions (not learned: never aged, not flushed)
FDB_PROVISIONED = abi.BR_FDB_F_STATIC | abi.BR_FDB_F_ROUTE
NEIGH_NO_AGEING = abi.BR_NEIGH_F_STATIC | abi.BR_NEIGH_F_ROUTE


def port_names(vni: int) -> tuple[str, str]:
    return f"bnp{vni}", f"bnq{vni}"


def _age_s(age_ns: int) -> float:
    return (age_ns // 100_000_000) / 10 if age_ns > 0 else 0.0


class Bridge(Overlay):
    name = "bridge"
    cfg_map, cfg_type, created_flag = "br_cfg", BrCfg, abi.BR_CFG_F_VXLAN_CREATED
    ingress_prog, egress_prog, ports_map = "bridge_ingress", "bridge_egress", "br_port"
    encap_prefix = "br"
    options = (UNDERLAY, LOCAL,
               Option("group", text(validate.mcast_group), in_place=False, metavar="IP",
                      default=DEFAULT_GROUP, cfg_field="group",
                      help=f"multicast group for unknown and broadcast (default {DEFAULT_GROUP})"),
               PORT, DEVICE,
               Option("ageing", text(validate.seconds), in_place=True, metavar="SECONDS",
                      default=abi.BPFNET_AGEING_S, cfg_field="ageing_s",
                      help=f"FDB ageing time (default {abi.BPFNET_AGEING_S})"),
               ENCAP, SUPPRESS)
    maps = {
        "br_cfg": (C_U32, BrCfg),
        "br_vni": (C_U32, BrVniVal),
        "br_port": (C_U32, BrPortVal),
        "br_fdb": (BrFdbKey, BrFdbVal),
        "br_allow": (BrAllowKey, C_U32),
        "br_neigh": (BrNeighKey, BrNeighVal),
        "br_stats": ("percpu", abi.BrStats),
        "br_supp_stats": ("percpu", abi.BrSuppStats),
        "br_local": (BrLocalKey, BrLocalVal),
        "br_route_stats": ("percpu", abi.BrRouteStats),
    }
    stats_map = "br_stats"
    # maps an older bpfnet did not pin: a bridge it loaded is loaded all the
    # same (its second load adds them), not half-made
    added_maps = ("br_neigh", "br_supp_stats", "br_local", "br_route_stats")

    @property
    def optional_pins(self) -> tuple:
        return super().optional_pins + self.added_maps

    def _has(self, name: str) -> bool:
        return os.path.exists(os.path.join(self.dir, name))

    def stats(self) -> dict[str, int]:
        """br_stats, br_supp_stats and br_route_stats, one set of counters by name."""
        out = super().stats()
        for m in ("br_supp_stats", "br_route_stats"):
            if self._has(m):
                out.update(self.map(m).sum_fields(0))
        return out

    def map_fill(self) -> dict[str, dict]:
        saved = self.maps
        try:  # a bridge an older bpfnet loaded, before its second load
            self.maps = {k: v for k, v in saved.items() if self._has(k)}
            return super().map_fill()
        finally:
            self.maps = saved

    def option_values(self) -> dict:
        out = super().option_values()
        out["suppress"] = "off" if self.cfg().flags & abi.BR_CFG_F_NO_SUPPRESS else "on"
        return out

    def apply_option(self, opt, value, undo) -> None:
        if opt.name != "suppress":
            return super().apply_option(opt, value, undo)
        cfg = self.cfg()
        old = BrCfg.from_buffer_copy(cfg)
        cfg.flags = (cfg.flags & ~abi.BR_CFG_F_NO_SUPPRESS) | \
            (abi.BR_CFG_F_NO_SUPPRESS if value == "off" else 0)
        self.write_cfg(cfg)
        undo.push(self.write_cfg, old)

    # --- load / unload: the steps of the lifecycle (base.Function, Overlay) -----
    def prepare(self, values: dict, given: dict) -> dict:
        local, group = values["local"], values["group"]
        if local is not None and local.version != group.version:
            raise ConfigError(f"--local {local} and --group {group} are of different families")
        return super().prepare(values, given)

    def check_reload(self, given: dict, have: dict) -> None:
        local = given.get("local", have.get("local"))
        group = given.get("group", have.get("group"))
        if local is not None and group is not None and local.version != group.version:
            raise ConfigError(f"--local {local} and --group {group} are of different families")
        super().check_reload(given, have)

    def family(self, plan: dict) -> int:
        return plan["group"].version

    def vxlan_group(self, values: dict):
        return values["group"]

    def make_cfg(self, vx: int, flags: int, values: dict) -> BrCfg:
        if values["suppress"] == "off":
            flags |= abi.BR_CFG_F_NO_SUPPRESS
        cfg = BrCfg(vxlan_ifindex=vx, ageing_s=values["ageing"], flags=flags,
                    group=ip_pack(values["group"]))
        if values["local"] is not None:
            cfg.local = ip_pack(values["local"])
        return cfg

    def teardown_entries(self) -> None:
        for vni in [k.value for k in self.map("br_vni")]:
            self._vni_teardown(vni)

    # --- VNIs ------------------------------------------------------------------
    def underlay(self) -> int | None:
        """The underlay the VXLAN device sits on (its ``dev``), if any."""
        vx = self.cfg().vxlan_ifindex
        return self.net.vxlan_info(vx).get("IFLA_VXLAN_LINK") or None \
            if vx and self.net.name(vx) else None

    def sync_flood_routes(self) -> None:
        """One route per group the VNIs use, on the underlay, in table
        local (netlink.Net.flood_routes): floods leave by the underlay
        whatever the routing table says, as the kernel's own VXLAN device
        with ``dev`` does. Adds what is missing or points elsewhere, removes
        bpfnet's routes to groups no VNI uses. br_vni is the record: a run
        killed half-way leaves nothing this does not clear."""
        net = self.net
        under = self.underlay()
        want = {ip_unpack(v.group) for v in self.map("br_vni").values()} if under else set()
        have = net.flood_routes()
        for g in sorted(want, key=lambda g: (g.version, g)):
            if have.get(g) == under:
                continue
            try:
                net.add_flood_route(g, under, replace=g in have)
            except NetlinkError as e:
                if e.code != errno.EEXIST:
                    raise
                raise ConfigError(f"table local has a route to {g} that is not bpfnet's: "
                                  f"floods to it would not leave by {net.name(under)}") from None
        for g in set(have) - want:
            net.del_flood_route(g)

    def repair(self) -> None:
        self.sync_flood_routes()

    def _check_group(self, vni: int, group: IPAddress, given: bool) -> bool:
        """Whether ``vni`` must be listed in the device's VNI filter (a
        device bpfnet makes has one: it joins each VNI's group on the
        underlay). A device without a filter joins one group for every VNI,
        so another group for one VNI is refused; a VNI the user listed in
        the filter with another group too."""
        net, cfg = self.net, self.cfg()
        vx = cfg.vxlan_ifindex
        local = None if abi.ip_is_zero(cfg.local) else ip_unpack(cfg.local)
        if local is not None and local.version != group.version:
            raise ConfigError(f"--group {group}: not of --local {local}'s address family")
        under = self.underlay()
        if group.version == 6 and under and not net.addresses(under, socket.AF_INET6):
            raise ConfigError(f"--group {group}: the underlay {net.name(under)} has no IPv6")
        if not net.has_vnifilter(vx):
            if given and group != ip_unpack(cfg.group):
                raise ConfigError(f"--group {group}: {net.name(vx)} has no VNI filter (vnifilter), so "
                                  f"every VNI floods to the bridge's group {ip_unpack(cfg.group)}; "
                                  "a VXLAN device bpfnet creates has one")
            return False
        return self.needs_listing(vx, vni, group)

    def vni_add(self, vni: int, bridge: str, allow=(), group=None) -> dict:
        self.require_loaded()
        net = self.net
        vnis = self.map("br_vni")
        old = vnis.get(C_U32(vni))
        if old is not None and old.port == 0:
            self._vni_teardown(vni)  # left half-made by a killed `vni add`
        elif old is not None:
            raise ConfigError(f"VNI {vni} already exists")
        if len(vnis) >= abi.BR_VNI_MAX:
            raise ConfigError(f"the bridge holds at most {abi.BR_VNI_MAX} VNIs")
        cfg = self.cfg()
        given = group is not None
        group = group if given else ip_unpack(cfg.group)
        for ip in allow:
            if ip.version != group.version:
                raise ConfigError(f"--allow {ip}: not of the underlay's address family")
        listing = self._check_group(vni, group, given)
        pname, qname = port_names(vni)
        for n in (pname, qname):
            # bnp/bnq<vni> of a VNI that is not configured: left by a killed
            # `vni add`; the names are bpfnet's, so clear them
            idx = net.lookup(n)
            if idx is not None:
                self.detach(idx, "egress")
                net.delete(idx)
        br_idx = net.lookup(bridge)
        if br_idx is not None and net.kind(br_idx) != "bridge":
            raise ConfigError(f"device {bridge!r} exists and is not a bridge")
        prog_fd = self.prog_pin_fd("bridge_egress")
        flags = abi.BR_VNI_F_ALLOW_LIST if allow else 0
        if listing:
            flags |= abi.BR_VNI_F_FILTER_ADDED
        try:
            with Undo() as undo:
                # intent first (port 0: the data path drops), so a killed run
                # leaves a VNI that `vni del` or `unload` can clear
                if br_idx is None:
                    flags |= abi.BR_VNI_F_BRIDGE_CREATED
                undo.push(self.sync_flood_routes)  # runs after the entry is gone
                vnis[C_U32(vni)] = BrVniVal(flags=flags, group=ip_pack(group))
                undo.push(vnis.discard, C_U32(vni))
                self.sync_flood_routes()
                if br_idx is None:
                    br_idx = net.add_bridge(bridge)
                    undo.push(net.delete, br_idx)
                    vnis[C_U32(vni)] = BrVniVal(bridge=br_idx, flags=flags, group=ip_pack(group))
                p = net.add_veth(pname, qname)
                undo.push(net.delete, p)
                net.set_mtu(p, net.mtu(cfg.vxlan_ifindex))
                net.set_mtu(net.index(qname), net.mtu(cfg.vxlan_ifindex))
                net.set_master(p, br_idx)
                net.up(net.index(qname))
                net.up(p)
                self.attach(p, "egress", prog_fd, "bridge_egress", undo)
                allow_map = self.map("br_allow")
                for ip in allow:
                    k = BrAllowKey(vni=vni, remote=ip_pack(ip))
                    allow_map[k] = C_U32(1)
                    undo.push(allow_map.discard, k)
                self.map("br_port")[C_U32(p)] = BrPortVal(vni=vni)
                undo.push(self.map("br_port").discard, C_U32(p))
                vnis[C_U32(vni)] = BrVniVal(port=p, bridge=br_idx, flags=flags,
                                            group=ip_pack(group))
                if listing:  # last: the device receives the VNI and joins its group
                    net.vni_filter_set(cfg.vxlan_ifindex, vni, group)
                    undo.push(net.vni_filter_del, cfg.vxlan_ifindex, vni)
        finally:
            os.close(prog_fd)
        return {"vni": vni, "bridge": bridge, "port": pname}

    def _vni(self, vni: int) -> BrVniVal:
        try:
            return self.map("br_vni")[C_U32(vni)]
        except KeyError:
            raise NotFound(f"VNI {vni} is not configured") from None

    def _vni_teardown(self, vni: int) -> None:
        """Removes a VNI's devices, links and entries; tolerant of a VNI that
        was only half set up (the VNI entry is written first, as intent)."""
        net = self.net
        v = self._vni(vni)
        vx = self.cfg().vxlan_ifindex
        if v.flags & abi.BR_VNI_F_FILTER_ADDED and vx and net.name(vx):
            net.vni_filter_del(vx, vni)  # first: stops receiving, leaves the group if last
        self.fdb_flush(vni, static=True)
        neigh = self.map("br_neigh")
        for k in [k for k in neigh if k.vni == vni]:
            neigh.discard(k)
        if self._has("br_local"):
            local = self.map("br_local")
            for k in [k for k in local if k.vni == vni]:
                local.discard(k)
        for k in [k for k in self.map("br_allow") if k.vni == vni]:
            self.map("br_allow").discard(k)
        ports = {v.port} if v.port else set()
        ports |= {i for i in map(net.lookup, port_names(vni)) if i}
        for p in ports:
            self.map("br_port").discard(C_U32(p))
            self.detach(p, "egress")
            net.delete(p)
        if v.flags & abi.BR_VNI_F_BRIDGE_CREATED and v.bridge and not net.ports(v.bridge):
            net.delete(v.bridge)
        self.map("br_vni").discard(C_U32(vni))
        self.sync_flood_routes()

    def vni_del(self, vni: int) -> None:
        self.require_loaded()
        self._vni(vni)
        self._vni_teardown(vni)

    def vni_set_allow(self, vni: int, allow) -> None:
        """Replaces VNI ``vni``'s allow list in place (the agent's ``allow =
        "cluster"``): None lets any VTEP send, a list (an empty one too) only
        those. New entries go in before the flag turns on and old ones go
        after, so a sender on both lists is never dropped."""
        self.require_loaded()
        val = self._vni(vni)
        fam = ip_unpack(val.group).version  # the VNI's group: its floods' and senders' family
        for ip in allow or ():
            if ip.version != fam:
                raise ConfigError(f"allow {ip}: not of the underlay's address family")
        amap, vnis = self.map("br_allow"), self.map("br_vni")
        want = {bytes(ip_pack(ip)): ip for ip in allow or ()}
        for ip in want.values():
            amap[BrAllowKey(vni=vni, remote=ip_pack(ip))] = C_U32(1)
        if allow is None:
            val.flags &= ~abi.BR_VNI_F_ALLOW_LIST
        else:
            val.flags |= abi.BR_VNI_F_ALLOW_LIST
        vnis[C_U32(vni)] = val
        for k in [k for k in amap if k.vni == vni and bytes(k.remote) not in want]:
            amap.discard(k)

    def vni_show(self) -> list[dict]:
        self.require_loaded()
        allow: dict[int, list[str]] = {}
        for k in self.map("br_allow"):
            allow.setdefault(k.vni, []).append(str(ip_unpack(k.remote)))
        counts: dict[int, int] = {}
        for _, v in self.map("br_fdb").dump():
            counts[v.vni] = counts.get(v.vni, 0) + 1
        under = self.underlay()
        joined = self.net.joined_groups(under) if under else set()
        rows = []
        for k, v in sorted(self.map("br_vni").items(), key=lambda kv: kv[0].value):
            rows.append({"vni": k.value, "bridge": self.net.name(v.bridge),
                         "port": self.net.name(v.port), "group": str(ip_unpack(v.group)),
                         "joined": ip_unpack(v.group) in joined,
                         "allow": sorted(allow.get(k.value, [])),
                         "fdb_entries": counts.get(k.value, 0)})
        return rows

    # --- FDB -------------------------------------------------------------------
    def fdb(self, vni: int | None = None) -> list[dict]:
        """Learned entries younger than the ageing time, sorted by (vni, mac).
        Read in batches and unpacked with struct, with one address
        conversion per distinct remote: 100k entries in well under a second."""
        self.require_loaded()
        if vni is not None:
            self._vni(vni)
        ageing_ns = self.cfg().ageing_s * 10**9
        now = time.monotonic_ns()
        names: dict[int, str | None] = {}
        remotes: dict[bytes, str] = {}
        rows = []
        add = rows.append
        for kb, vb, _ in self.map("br_fdb").dump_batches():
            for (mac, port), (remote, v_vni, flags, rx, tx, seen) in zip(
                    abi.BR_FDB_KEY.iter_unpack(kb), abi.BR_FDB_VAL.iter_unpack(vb)):
                age = now - seen  # seen may be a coarse stamp a tick ahead
                static = bool(flags & abi.BR_FDB_F_STATIC)
                route = bool(flags & abi.BR_FDB_F_ROUTE)
                if (age > ageing_ns and not flags & FDB_PROVISIONED) or \
                        (vni is not None and v_vni != vni):
                    continue
                name = names.get(port, False)
                if name is False:
                    name = names[port] = self.net.name(port)
                ip = remotes.get(remote)
                if ip is None:
                    ip = remotes[remote] = str(ip_unpack(abi.BpfnetIP.from_buffer_copy(remote)))
                add({"mac": mac.hex(":"), "vni": v_vni, "port": name, "remote": ip,
                     "rx_pkts": rx, "tx_pkts": tx, "age_s": _age_s(age), "static": static,
                     "route": route})
        rows.sort(key=lambda r: (r["vni"], r["mac"]))
        return rows

    def fdb_flush(self, vni: int | None = None, static: bool = False) -> int:
        """Forgets learned entries (of one VNI); static and route ones too
        with @static (`vni del`), as the kernel's flush keeps static entries."""
        self.require_loaded()
        if vni is not None:
            self._vni(vni)
        fdb = self.map("br_fdb")
        keys = bytearray()
        learned = 0
        for kb, vb, _ in fdb.dump_batches():
            for i, (_, v_vni, flags, *_rest) in enumerate(abi.BR_FDB_VAL.iter_unpack(vb)):
                is_static = flags & FDB_PROVISIONED
                if (vni is None or v_vni == vni) and (static or not is_static):
                    keys += kb[i * abi.BR_FDB_KEY.size:(i + 1) * abi.BR_FDB_KEY.size]
                    learned += not is_static
        n = fdb.delete_raw(keys) if keys else 0
        self._count_removed(min(n, learned))
        return n

    def _count_removed(self, n: int) -> None:
        """Learned entries the control plane removed (for `evictions`)."""
        if n:
            cfg = self.cfg()
            cfg.fdb_removed += n
            self.write_cfg(cfg)

    def _static_count(self) -> int:
        """Entries the control plane wrote (static and route: not learned)."""
        return sum(1 for _, vb, _ in self.map("br_fdb").dump_batches()
                   for _, _, flags, *_r in abi.BR_FDB_VAL.iter_unpack(vb)
                   if flags & FDB_PROVISIONED)

    def _port_of(self, vni: int) -> int:
        v = self._vni(vni)
        if not v.port:
            raise NotFound(f"VNI {vni} is not configured")
        return v.port

    def fdb_add(self, mac, vni: int, remote, ips=()) -> dict:
        """A static entry {mac, vni} -> remote (replacing a learned or static
        one, as `bridge fdb replace`), and bindings of @ips to mac."""
        self.require_loaded()
        port = self._port_of(vni)
        family = ip_unpack(self.cfg().group).version
        if remote.version != family:
            raise ConfigError(f"--remote {remote}: not of the underlay's address family "
                              f"(IPv{family})")
        self._check_ips(ips)
        fdb = self.map("br_fdb")
        key = BrFdbKey(mac=mac_pack(mac), port=port)
        old = fdb.get(key)
        val = BrFdbVal(remote=ip_pack(remote), vni=vni, flags=abi.BR_FDB_F_STATIC,
                       seen_ns=time.monotonic_ns())
        if old is not None:
            val.rx_pkts, val.tx_pkts = old.rx_pkts, old.tx_pkts
        fdb[key] = val
        if old is not None and not old.flags & FDB_PROVISIONED:
            self._count_removed(1)
        for ip in ips:
            self.neigh_add(ip, vni, mac)
        return {"mac": str(mac).lower(), "vni": vni, "remote": str(remote),
                "ip": [str(i) for i in ips], "replaced": old is not None}

    def fdb_del(self, mac, vni: int) -> dict:
        """Removes the entry of {mac, vni}, static, route or learned, and the
        static and route bindings to mac in vni."""
        self.require_loaded()
        port = self._port_of(vni)
        key = BrFdbKey(mac=mac_pack(mac), port=port)
        fdb = self.map("br_fdb")
        old = fdb.get(key)
        if old is None:
            raise NotFound(f"no FDB entry for {str(mac).lower()} in VNI {vni}")
        fdb.discard(key)
        if not old.flags & FDB_PROVISIONED:
            self._count_removed(1)
        neigh = self.map("br_neigh")
        packed = bytes(mac_pack(mac))
        gone = [k for k, v in neigh.items() if k.vni == vni and bytes(v.mac) == packed
                and v.flags & NEIGH_NO_AGEING]
        for k in gone:
            neigh.discard(k)
        return {"mac": str(mac).lower(), "vni": vni, "static": bool(old.flags & abi.BR_FDB_F_STATIC),
                "ip": sorted(str(ip_unpack(k.ip)) for k in gone)}

    # --- neighbour bindings (ARP and ND suppression) -----------------------------
    @staticmethod
    def _check_ips(ips) -> None:
        for ip in ips:
            if ip.is_multicast() or ip.is_loopback() or ip == IPAddress(0, ip.version):
                raise ConfigError(f"--ip {ip}: not a unicast tenant address")

    def neigh_add(self, ip, vni: int, mac) -> dict:
        """A static binding {vni, ip} -> mac: ARP requests and neighbour
        solicitations for ip from the VNI's tenants are answered with mac."""
        self.require_loaded()
        self._port_of(vni)
        self._check_ips([ip])
        key = BrNeighKey(vni=vni, ip=ip_pack(ip))
        neigh = self.map("br_neigh")
        old = neigh.get(key)
        neigh[key] = BrNeighVal(mac=mac_pack(mac), flags=abi.BR_NEIGH_F_STATIC,
                                replies=old.replies if old is not None else 0,
                                seen_ns=time.monotonic_ns())
        return {"ip": str(ip), "vni": vni, "mac": str(mac).lower()}

    def neigh_del(self, ip, vni: int) -> None:
        self.require_loaded()
        self._port_of(vni)
        key = BrNeighKey(vni=vni, ip=ip_pack(ip))
        if self.map("br_neigh").get(key) is None:
            raise NotFound(f"no binding for {ip} in VNI {vni}")
        self.map("br_neigh").discard(key)

    def neigh_show(self, vni: int | None = None) -> list[dict]:
        """Bindings younger than the ageing time (static and route ones
        always), sorted by (vni, ip)."""
        self.require_loaded()
        if vni is not None:
            self._vni(vni)
        ageing_ns = self.cfg().ageing_s * 10**9
        now = time.monotonic_ns()
        rows = []
        for k, v in self.map("br_neigh").items():
            static = bool(v.flags & abi.BR_NEIGH_F_STATIC)
            age = now - v.seen_ns
            if (vni is not None and k.vni != vni) or \
                    (age > ageing_ns and not v.flags & NEIGH_NO_AGEING):
                continue
            rows.append({"ip": str(ip_unpack(k.ip)), "vni": k.vni,
                         "mac": bytes(v.mac).hex(":"), "static": static,
                         "route": bool(v.flags & abi.BR_NEIGH_F_ROUTE),
                         "local": bool(v.flags & abi.BR_NEIGH_F_LOCAL),
                         "replies": v.replies, "age_s": _age_s(age)})
        rows.sort(key=lambda r: (r["vni"], IPAddress(r["ip"]).version, IPAddress(r["ip"])))
        return rows

    # --- local MACs and MAC/IP routes (the agent's side: cluster routes) --------
    def local_macs(self) -> list[dict]:
        """The tenant MACs of this host seen within the ageing time (sources
        of frames from the tenants' bridge through a VNI's port toward the
        tunnel, br_local) and the IPs each claimed in ARP and ND within it
        (local bindings in br_neigh): [{"vni", "mac", "ips"}], sorted by
        (vni, mac); MACs lowercase, IPs IPv4 first, by address."""
        self.require_loaded()
        if not self._has("br_local"):
            return []
        ageing_ns = self.cfg().ageing_s * 10**9
        now = time.monotonic_ns()
        macs: dict[tuple[int, bytes], list] = {}
        for kb, vb, _ in self.map("br_local").dump_batches():
            for (vni, mac), (seen, _first) in zip(abi.BR_LOCAL_KEY.iter_unpack(kb),
                                                  abi.BR_LOCAL_VAL.iter_unpack(vb)):
                if now - seen <= ageing_ns:
                    macs[(vni, mac)] = []
        for (vni, ip), (mac, flags, _, seen) in self._neigh_rows():
            if flags & abi.BR_NEIGH_F_LOCAL and now - seen <= ageing_ns:
                ips = macs.get((vni, mac))
                if ips is not None:
                    ips.append(ip_unpack(abi.BpfnetIP.from_buffer_copy(ip)))
        return [{"vni": vni, "mac": mac.hex(":"),
                 "ips": [str(i) for i in sorted(ips, key=lambda i: (i.version, i))]}
                for (vni, mac), ips in sorted(macs.items())]

    def _neigh_rows(self):
        """br_neigh as ((vni, packed ip), (mac, flags, replies, seen_ns)),
        read in batches."""
        for kb, vb, _ in self.map("br_neigh").dump_batches():
            yield from zip(abi.BR_NEIGH_KEY.iter_unpack(kb), abi.BR_NEIGH_VAL.iter_unpack(vb))

    def _parse_routes(self, routes) -> dict[bytes, tuple]:
        """{packed mac: (packed remote, [packed ip, ...])}; the last of a MAC
        listed twice wins. ConfigError for anything malformed, before any
        change."""
        family = ip_unpack(self.cfg().group).version
        out = {}
        for r in routes:
            try:
                mac = EUI(r["mac"], dialect=mac_unix_expanded)
                remote = IPAddress(r["remote"])
                ips = [IPAddress(i) for i in r.get("ips") or ()]
            except (AttributeError, KeyError, TypeError, ValueError, AddrFormatError) as e:
                raise ConfigError(f"route {r!r}: {e}") from None
            if remote.version != family:
                raise ConfigError(f"route {mac}: remote {remote} is not of the underlay's "
                                  f"address family (IPv{family})")
            if mac.packed[0] & 1:
                raise ConfigError(f"route {mac}: not a unicast MAC")
            self._check_ips(ips)
            out[mac.packed] = (bytes(ip_pack(remote)), [bytes(ip_pack(i)) for i in ips])
        return out

    def routes_set(self, vni: int, routes) -> dict:
        """Makes VNI ``vni``'s route entries exactly ``routes`` ([{"mac",
        "remote", "ips", "host"}]): br_fdb entries flagged route (never aged)
        added, moved (another remote) or removed, and their bindings {vni,
        ip} -> mac flagged route. A static entry wins (the route is skipped,
        its bindings too); a static binding, or a fresh local one (a tenant
        of this host claims the IP), wins over a route binding. Nothing is
        written for what is already so. Returns {"added", "removed",
        "moved", "skipped"} (FDB entries)."""
        self.require_loaded()
        port = self._port_of(vni)
        want = self._parse_routes(routes)
        now = time.monotonic_ns()
        ageing_ns = self.cfg().ageing_s * 10**9
        fdb = self.map("br_fdb")
        have = {}
        for kb, vb, _ in fdb.dump_batches():
            vals = abi.BR_FDB_VAL.iter_unpack(vb)
            for (mac, p), val in zip(abi.BR_FDB_KEY.iter_unpack(kb), vals):
                if p == port:
                    have[mac] = val  # remote, vni, flags, rx, tx, seen
        out = {"added": 0, "removed": 0, "moved": 0, "skipped": 0}
        learned_replaced = 0
        bindings: dict[bytes, bytes] = {}
        for mac, (remote, ips) in want.items():
            old = have.get(mac)
            if old is not None and old[2] & abi.BR_FDB_F_STATIC:
                out["skipped"] += 1
                continue
            for ip in ips:
                bindings[ip] = mac
            if old is not None and old[2] & abi.BR_FDB_F_ROUTE and old[:2] == (remote, vni):
                continue
            val = BrFdbVal(remote=abi.BpfnetIP.from_buffer_copy(remote), vni=vni,
                           flags=abi.BR_FDB_F_ROUTE, seen_ns=now)
            if old is not None:
                val.rx_pkts, val.tx_pkts = old[3], old[4]
            fdb[BrFdbKey(mac=abi.Mac.from_buffer_copy(mac), port=port)] = val
            if old is not None and old[2] & abi.BR_FDB_F_ROUTE:
                out["moved"] += 1
            else:
                out["added"] += 1
                learned_replaced += old is not None
        for mac, old in have.items():
            if old[2] & abi.BR_FDB_F_ROUTE and mac not in want:
                fdb.discard(BrFdbKey(mac=abi.Mac.from_buffer_copy(mac), port=port))
                out["removed"] += 1
        self._count_removed(learned_replaced)
        neigh = self.map("br_neigh")
        olds = {ip: v for (v_vni, ip), v in self._neigh_rows() if v_vni == vni}
        for ip, mac in bindings.items():
            old_mac, flags, replies, seen = olds.get(ip, (None, 0, 0, 0))
            if flags & abi.BR_NEIGH_F_STATIC or (
                    flags & abi.BR_NEIGH_F_LOCAL and now - seen <= ageing_ns):
                continue
            if flags & abi.BR_NEIGH_F_ROUTE and old_mac == mac:
                continue
            neigh[BrNeighKey(vni=vni, ip=abi.BpfnetIP.from_buffer_copy(ip))] = BrNeighVal(
                mac=abi.Mac.from_buffer_copy(mac), flags=abi.BR_NEIGH_F_ROUTE,
                replies=replies, seen_ns=now)
        for ip, (_, flags, _, _) in olds.items():
            if flags & abi.BR_NEIGH_F_ROUTE and ip not in bindings:
                neigh.discard(BrNeighKey(vni=vni, ip=abi.BpfnetIP.from_buffer_copy(ip)))
        return out

    def evictions(self, name: str, entries: int) -> int | None:
        """Entries the LRU br_fdb evicted: every new entry is counted as
        learn; it leaves by ageing, by the control plane, or by eviction."""
        if name != "br_fdb":
            return None
        st = self.stats()
        learned = entries - self._static_count()
        return max(0, st["learn"] - st["aged"] - self.cfg().fdb_removed - learned)

    # --- status ----------------------------------------------------------------
    def status(self) -> dict:
        self.require_loaded()
        net = self.net
        cfg = self.cfg()
        vx = cfg.vxlan_ifindex
        attach = [self.attach_row(vx, "ingress")]
        attach += [self.attach_row(v.port, "egress", vni=k.value)
                   for k, v in self.map("br_vni").items()]
        return {"function": self.name, "device": net.name(vx),
                "group": str(ip_unpack(cfg.group)),
                "local": self.local_in_use(cfg, ip_unpack(cfg.group).version),
                "ageing_s": cfg.ageing_s, "attach": attach,
                "maps": self.map_fill(), "counters": self.stats(), "encap": self.encap_status()}


FUNCTION = Bridge
