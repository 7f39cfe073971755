"""All of bpfnet's netlink, through pyroute2: links, addresses, routes, tc
attach, a VXLAN device's VNI filter.

    with Net() as net:
        idx = net.index("vxlan0")
        created = net.clsact(idx)
        net.attach(idx, "ingress", prog_fd, "bridge_ingress")

Acts in the calling thread's network namespace (``--netns`` switches it once
at start, see :func:`enter_netns`). Filters are added, replaced and removed
only at bpfnet's own priority and handle (include/bpfnet.h), so a foreign
filter on the same hook is never touched; routes only with bpfnet's own
protocol number (``BPFNET_RTPROT``), so a route someone else made is never
touched either.
"""
from __future__ import annotations

import errno
import os
import socket
import struct

from netaddr import IPAddress
from pyroute2 import IPRoute, netns
from pyroute2.netlink import NLA_F_NESTED, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, nla, nlmsg
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.ifinfmsg.plugins.vxlan import vxlan as _pyroute2_vxlan

from .abi import BPFNET_TC_HANDLE, BPFNET_TC_PRIO, BPFNET_TC_PRIOS
from .errors import ConfigError, NotFound

NETNS_DIR = "/var/run/netns"
PARENT = {"ingress": "ffff:fff2", "egress": "ffff:fff3"}
IFNAMSIZ = 16
TCA_BPF_ID = 11
RT_TABLE_MAIN, RT_TABLE_LOCAL = 254, 255
RT_SCOPE_LINK, RT_SCOPE_NOWHERE = 253, 255
RTN_UNICAST = 1
# rtm_protocol of the routes bpfnet adds (flood routes, see Net.flood_routes):
# after BPFNET_TC_HANDLE; unused in iproute2's rt_protos
BPFNET_RTPROT = 0xBF
RTM_NEWTUNNEL, RTM_DELTUNNEL, RTM_GETTUNNEL = 120, 121, 122
FAMILY = {4: socket.AF_INET, 6: socket.AF_INET6}
HOST_PREFIX = {4: 32, 6: 128}


class _vxlan_data(_pyroute2_vxlan):
    """pyroute2 0.9.7 knows the VXLAN attributes up to IFLA_VXLAN_DF (29);
    the kernel's next one is IFLA_VXLAN_VNIFILTER (30, Linux 5.18): a device
    whose VNIs are listed, each with its own multicast group."""
    nla_map = _pyroute2_vxlan.nla_map + (("IFLA_VXLAN_VNIFILTER", "uint8"),)


ifinfmsg.ifinfo.register_link_kind(module={"vxlan": _vxlan_data})


class tunnelmsg(nlmsg):
    """RTM_{NEW,DEL,GET}TUNNEL (linux/if_link.h): struct tunnel_msg and
    VXLAN_VNIFILTER_ENTRY attributes, one per VNI (or VNI range) of a
    vnifilter device's filter, with the group it joins (what `bridge vni
    add dev DEV vni N group G` sends). Family AF_BRIDGE."""
    fields = (("family", "B"), ("flags", "B"), ("reserved2", "H"), ("ifindex", "I"))
    nla_map = (("VXLAN_VNIFILTER_UNSPEC", "none"),
               ("VXLAN_VNIFILTER_ENTRY", "entry"))

    class entry(nla):
        nla_flags = NLA_F_NESTED  # the kernel's nla_parse_nested() insists
        nla_map = (("VXLAN_VNIFILTER_ENTRY_UNSPEC", "none"),
                   ("VXLAN_VNIFILTER_ENTRY_START", "uint32"),
                   ("VXLAN_VNIFILTER_ENTRY_END", "uint32"),
                   ("VXLAN_VNIFILTER_ENTRY_GROUP", "ip4addr"),
                   ("VXLAN_VNIFILTER_ENTRY_GROUP6", "ip6addr"))


def enter_netns(name: str) -> None:
    """Moves this process into /var/run/netns/NAME, network namespace only,
    so the bpffs of the caller's mount namespace stays visible."""
    path = os.path.join(NETNS_DIR, name)
    if "/" in name or not os.path.exists(path):
        raise NotFound(f"network namespace {name!r} does not exist")
    netns.setns(name, flags=0)


def check_ifname(name: str) -> str:
    """Validates an interface name as the kernel does (dev_valid_name)."""
    if not name or len(name) >= IFNAMSIZ or name in (".", "..") or any(
            c in name for c in "/: \t\n") or not name.isprintable():
        raise ConfigError(f"invalid interface name {name!r}")
    return name


class Net:
    def __init__(self):
        self.ipr = IPRoute()
        self.ipr.marshal.msg_map[RTM_NEWTUNNEL] = tunnelmsg
        # pyroute2 0.9.7's IPRoute leaves this out, and nlm_request() reads it
        self.ipr.status.setdefault("nlm_generator", False)

    def close(self):
        self.ipr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- links ---------------------------------------------------------------
    def lookup(self, name: str) -> int | None:
        found = self.ipr.link_lookup(ifname=name)
        return found[0] if found else None

    def index(self, name: str) -> int:
        idx = self.lookup(name)
        if idx is None:
            raise NotFound(f"device {name!r} does not exist")
        return idx

    def name(self, index: int) -> str | None:
        try:
            return self.ipr.get_links(index)[0].get_attr("IFLA_IFNAME")
        except NetlinkError:
            return None

    def link(self, index: int):
        return self.ipr.get_links(index)[0]

    def kind(self, index: int) -> str | None:
        info = self.link(index).get_attr("IFLA_LINKINFO")
        return info.get_attr("IFLA_INFO_KIND") if info else None

    def vxlan_info(self, index: int) -> dict:
        info = self.link(index).get_attr("IFLA_LINKINFO")
        data = info.get_attr("IFLA_INFO_DATA") if info else None
        return dict(data["attrs"]) if data else {}

    def master(self, index: int) -> int | None:
        return self.link(index).get_attr("IFLA_MASTER")

    def mtu(self, index: int) -> int:
        return self.link(index).get_attr("IFLA_MTU")

    def is_ether(self, index: int) -> bool:
        """True for an Ethernet device (ARPHRD_ETHER: NIC, veth, bond, VLAN,
        tap...), whose frames carry MACs and VLAN tags; false for lo, tun..."""
        return self.link(index)["ifi_type"] == 1

    def add_veth(self, name: str, peer: str) -> int:
        self.ipr.link("add", ifname=name, kind="veth", peer=peer)
        return self.index(name)

    def add_bridge(self, name: str) -> int:
        self.ipr.link("add", ifname=name, kind="bridge")
        idx = self.index(name)
        self.up(idx)
        return idx

    def add_vxlan(self, name: str, underlay: int, port: int, local=None,
                  group=None, mtu: int | None = None, vnifilter: bool | None = None) -> int:
        """An external (collect_md) VXLAN device on ``underlay``, joining
        ``group`` when up. With ``vnifilter`` (default: when a ``group`` is
        given, so the bridge's device and not the mesh's) it carries a VNI
        filter instead: it receives only the VNIs listed there
        (:meth:`vni_filter_set`) and joins each one's group on the underlay,
        and no other (``group`` is then the caller's to give each VNI: the
        device's own would be joined with no VNI using it)."""
        kw = dict(ifname=name, kind="vxlan", vxlan_collect_metadata=1,
                  vxlan_port=port, vxlan_link=underlay, vxlan_learning=0)
        if vnifilter if vnifilter is not None else group is not None:
            kw["vxlan_vnifilter"] = 1
            group = None
        if group is not None:
            kw["vxlan_group" if group.version == 4 else "vxlan_group6"] = str(group)
        if local is not None:
            kw["vxlan_local" if local.version == 4 else "vxlan_local6"] = str(local)
        if mtu:
            kw["mtu"] = mtu
        self.ipr.link("add", **kw)
        return self.index(name)

    def set_master(self, index: int, master: int | None) -> None:
        self.ipr.link("set", index=index, master=master or 0)

    def up(self, index: int) -> None:
        self.ipr.link("set", index=index, state="up")

    def set_mtu(self, index: int, mtu: int) -> None:
        self.ipr.link("set", index=index, mtu=mtu)

    def delete(self, index: int) -> bool:
        try:
            self.ipr.link("del", index=index)
            return True
        except NetlinkError as e:
            if e.code in (errno.ENODEV, errno.ENOENT):
                return False
            raise

    def ports(self, bridge: int) -> list[int]:
        return [ln["index"] for ln in self.ipr.get_links() if ln.get_attr("IFLA_MASTER") == bridge]

    # --- addresses and routes ------------------------------------------------
    def addresses(self, index: int, family: int | None = None) -> list[str]:
        kw = {"index": index}
        if family:
            kw["family"] = family
        return [a.get_attr("IFA_ADDRESS") for a in self.ipr.get_addr(**kw)]

    def default_route_devs(self) -> list[int]:
        """The devices of the default route, IPv4's, else IPv6's: the one
        of the lowest metric, with every nexthop of an ECMP route
        (RTA_MULTIPATH). Empty with no default route (unreachable and
        blackhole defaults have no device)."""
        for fam in (socket.AF_INET, socket.AF_INET6):
            best = None
            for r in self.ipr.get_routes(family=fam, table=RT_TABLE_MAIN):
                if r["dst_len"] != 0 or r["type"] != RTN_UNICAST:
                    continue
                devs = [r.get_attr("RTA_OIF")] if r.get_attr("RTA_OIF") else \
                    [nh["oif"] for nh in r.get_attr("RTA_MULTIPATH") or () if nh["oif"]]
                metric = r.get_attr("RTA_PRIORITY") or 0
                if devs and (best is None or metric < best[0]):
                    best = (metric, list(dict.fromkeys(devs)))
            if best:
                return best[1]
        return []

    def address_dev(self, ip) -> int | None:
        """The device that holds address ``ip`` in this namespace."""
        for a in self.ipr.get_addr(family=FAMILY[IPAddress(ip).version]):
            if IPAddress(a.get_attr("IFA_ADDRESS")) == ip:
                return a["index"]
        return None

    def route_dev(self, dst: str) -> int | None:
        """The device the kernel sends to ``dst`` by (None: unreachable)."""
        try:
            r = self.ipr.route("get", dst=str(dst))
        except NetlinkError:
            return None
        return r[0].get_attr("RTA_OIF") if r else None

    # --- flood routes: a bridge's groups leave by its underlay ------------------
    # An external (collect_md) VXLAN device routes each frame's outer packet
    # with no output device (vxlan_xmit_one: ifindex 0 for metadata), so a
    # flood to the group follows the routing table: nowhere without a route
    # to 224/4, the management NIC with a default route there, and for IPv6
    # whichever device's ff00::/8 came first in table local. The kernel's own
    # `ip link add vx type vxlan group G dev eth0` passes eth0 instead. One
    # route per group in table local (looked up first, rule 0), on the
    # underlay, does the same for bpfnet's floods whatever else the routing
    # table says. It also sends the host's other traffic to G (if any) that
    # way: G is the overlay's group, it belongs on the underlay.
    def flood_routes(self) -> dict[IPAddress, int]:
        """bpfnet's routes (BPFNET_RTPROT, table local): group -> device."""
        out = {}
        for fam in FAMILY.values():
            for r in self.ipr.get_routes(family=fam, table=RT_TABLE_LOCAL):
                if r["proto"] == BPFNET_RTPROT and r.get_attr("RTA_TABLE", r["table"]) == RT_TABLE_LOCAL:
                    out[IPAddress(r.get_attr("RTA_DST"))] = r.get_attr("RTA_OIF")
        return out

    def add_flood_route(self, group: IPAddress, dev: int, replace: bool = False) -> None:
        """Floods to ``group`` leave by ``dev``, whatever the routing table
        says. ``replace``: bpfnet's route to the group is there already
        (a route to it someone else put in table local is refused: EEXIST)."""
        kw = {"scope": RT_SCOPE_LINK} if group.version == 4 else {}
        self.ipr.route("replace" if replace else "add", family=FAMILY[group.version],
                       dst=str(group), dst_len=HOST_PREFIX[group.version], oif=dev,
                       table=RT_TABLE_LOCAL, proto=BPFNET_RTPROT, type="unicast", **kw)

    def del_flood_route(self, group: IPAddress) -> None:
        try:  # scope nowhere: any scope (pyroute2 sends universe otherwise)
            self.ipr.route("del", family=FAMILY[group.version], dst=str(group),
                           dst_len=HOST_PREFIX[group.version], table=RT_TABLE_LOCAL,
                           proto=BPFNET_RTPROT, scope=RT_SCOPE_NOWHERE)
        except NetlinkError as e:
            if e.code not in (errno.ESRCH, errno.ENOENT):
                raise

    # --- a device's VNI filter and multicast memberships ------------------------
    def has_vnifilter(self, vx: int) -> bool:
        return bool(self.vxlan_info(vx).get("IFLA_VXLAN_VNIFILTER"))

    def _tunnel(self, msg_type: int, vx: int, entries=(), flags=NLM_F_REQUEST | NLM_F_ACK):
        m = tunnelmsg()
        m["family"] = socket.AF_BRIDGE
        m["ifindex"] = vx
        m["attrs"] = [("VXLAN_VNIFILTER_ENTRY", {"attrs": e}) for e in entries]
        return self.ipr.nlm_request(m, msg_type=msg_type, msg_flags=flags)

    def vni_filter(self, vx: int) -> dict[int, IPAddress | None]:
        """The VNIs of ``vx``'s VNI filter: vni -> its group (None: the
        device's)."""
        out = {}
        for m in self._tunnel(RTM_GETTUNNEL, vx, flags=NLM_F_REQUEST | NLM_F_DUMP):
            if m["ifindex"] != vx:
                continue
            for name, e in m["attrs"]:
                if name != "VXLAN_VNIFILTER_ENTRY":
                    continue
                a = dict(e["attrs"])
                start = a["VXLAN_VNIFILTER_ENTRY_START"]
                g = a.get("VXLAN_VNIFILTER_ENTRY_GROUP") or a.get("VXLAN_VNIFILTER_ENTRY_GROUP6")
                for vni in range(start, a.get("VXLAN_VNIFILTER_ENTRY_END", start) + 1):
                    out[vni] = IPAddress(g) if g else None
        return out

    def vni_filter_set(self, vx: int, vni: int, group: IPAddress | None = None) -> None:
        """Lists ``vni`` in ``vx``'s VNI filter (or changes its group): the
        device receives it and joins ``group`` on its underlay (leaving it
        with the group's last VNI)."""
        e = [("VXLAN_VNIFILTER_ENTRY_START", vni)]
        if group is not None:
            e.append(("VXLAN_VNIFILTER_ENTRY_GROUP" if group.version == 4
                      else "VXLAN_VNIFILTER_ENTRY_GROUP6", str(group)))
        self._tunnel(RTM_NEWTUNNEL, vx, [e])

    def vni_filter_del(self, vx: int, vni: int) -> None:
        """Takes ``vni`` out of ``vx``'s VNI filter (gone already: fine).
        The kernel leaves the VNI's group then even if another VNI of the
        device still uses it (vxlan_group_used() only looks at the other
        devices; seen on 6.18): one such VNI is listed again, which joins
        the group again. That VNI misses the frames of those microseconds."""
        listed = self.vni_filter(vx)
        if vni not in listed:
            return
        self._tunnel(RTM_DELTUNNEL, vx, [[("VXLAN_VNIFILTER_ENTRY_START", vni)]])
        group = listed[vni]
        link = self.vxlan_info(vx).get("IFLA_VXLAN_LINK")
        if group is None or not link or group in self.joined_groups(link):
            return
        for other, g in sorted(listed.items()):
            if other != vni and g == group:
                self._tunnel(RTM_DELTUNNEL, vx, [[("VXLAN_VNIFILTER_ENTRY_START", other)]])
                self.vni_filter_set(vx, other, group)
                return

    def joined_groups(self, index: int) -> set[IPAddress]:
        """The multicast groups device ``index`` is a member of (IGMP and
        MLD), from /proc/net/igmp and igmp6 of this thread's namespace."""
        out = set()
        try:
            with open("/proc/thread-self/net/igmp") as f:
                dev = None
                for line in f.read().splitlines()[1:]:
                    if not line.startswith("\t"):
                        dev = int(line.split()[0])
                    elif dev == index:  # group: __be32 printed as a host-order %08X
                        out.add(IPAddress(socket.inet_ntoa(struct.pack("=I", int(line.split()[0], 16)))))
            with open("/proc/thread-self/net/igmp6") as f:
                for line in f:
                    idx, _, grp, *_ = line.split()
                    if int(idx) == index:
                        out.add(IPAddress(socket.inet_ntop(socket.AF_INET6, bytes.fromhex(grp))))
        except FileNotFoundError:  # a kernel without IPv6: no igmp6
            pass
        return out

    def local_addresses(self) -> list[str]:
        """Every address of every device in this namespace (mesh: a peer
        must not be one of ours)."""
        return [a.get_attr("IFA_ADDRESS") for a in self.ipr.get_addr()]

    # --- tc ------------------------------------------------------------------
    def clsact(self, index: int) -> bool:
        """Ensures a clsact qdisc; True if this call created it."""
        try:
            self.ipr.tc("add", "clsact", index)
            return True
        except NetlinkError as e:
            if e.code == errno.EEXIST:
                return False
            raise

    def del_clsact(self, index: int) -> None:
        try:
            self.ipr.tc("del", "clsact", index)
        except NetlinkError as e:
            if e.code not in (errno.ENOENT, errno.EINVAL, errno.ENODEV):
                raise

    def attach(self, index: int, direction: str, prog_fd: int, name: str,
               prio: int = BPFNET_TC_PRIO) -> None:
        """Adds or atomically replaces bpfnet's direct-action filter (at
        ``prio``: one of bpfnet's, BPFNET_TC_PRIO unless told)."""
        self.ipr.tc("replace-filter", "bpf", index, BPFNET_TC_HANDLE, fd=prog_fd,
                    name=name, parent=PARENT[direction], classid=1,
                    direct_action=True, prio=prio)

    def detach(self, index: int, direction: str, prio: int = BPFNET_TC_PRIO) -> bool:
        try:
            self.ipr.tc("del-filter", "bpf", index, BPFNET_TC_HANDLE,
                        parent=PARENT[direction], prio=prio)
            return True
        except NetlinkError as e:
            if e.code in (errno.ENOENT, errno.EINVAL, errno.ENODEV):
                return False
            raise

    def filters(self, index: int, direction: str) -> list[dict]:
        """Every tc filter on a clsact hook: prio, handle, kind, name, prog_id."""
        out = []
        try:
            msgs = self.ipr.get_filters(index, parent=PARENT[direction])
        except NetlinkError:
            return out
        for f in msgs:
            if not f["handle"]:
                continue  # the chain header message
            opts = f.get_attr("TCA_OPTIONS") or {}
            attrs = dict(opts.get("attrs", [])) if isinstance(opts, dict) else {}
            out.append({"prio": f["info"] >> 16, "handle": f["handle"],
                        "kind": f.get_attr("TCA_KIND"),
                        "name": attrs.get("TCA_BPF_NAME"),
                        "ours": (f["info"] >> 16) in BPFNET_TC_PRIOS
                        and f["handle"] == BPFNET_TC_HANDLE})
        return out

    def ours_attached(self, index: int, direction: str,
                      prio: int = BPFNET_TC_PRIO) -> str | None:
        for f in self.filters(index, direction):
            if f["ours"] and f["prio"] == prio:
                return f["name"]
        return None
