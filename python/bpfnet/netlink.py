"""All of bpfnet's netlink, through pyroute2: links, addresses, tc attach.

    with Net() as net:
        idx = net.index("vxlan0")
        created = net.clsact(idx)
        net.attach(idx, "ingress", prog_fd, "bridge_ingress")

Acts in the calling thread's network namespace (``--netns`` switches it once
at start, see :func:`enter_netns`). Filters are added, replaced and removed
only at bpfnet's own priority and handle (include/bpfnet.h), so a foreign
filter on the same hook is never touched.
"""
from __future__ import annotations

import errno
import os
import socket

from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

from .abi import BPFNET_TC_HANDLE, BPFNET_TC_PRIO
from .errors import ConfigError, NotFound

NETNS_DIR = "/var/run/netns"
PARENT = {"ingress": "ffff:fff2", "egress": "ffff:fff3"}
IFNAMSIZ = 16
TCA_BPF_ID = 11


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
                  group=None, mtu: int | None = None) -> int:
        """An external (collect_md) VXLAN device; joins ``group`` when up."""
        kw = dict(ifname=name, kind="vxlan", vxlan_collect_metadata=1,
                  vxlan_port=port, vxlan_link=underlay, vxlan_learning=0)
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

    def default_route_dev(self) -> int | None:
        for fam in (socket.AF_INET, socket.AF_INET6):
            for r in self.ipr.get_routes(family=fam, table=254):
                if r["dst_len"] == 0 and r.get_attr("RTA_OIF"):
                    return r.get_attr("RTA_OIF")
        return None

    def route_dev(self, dst: str) -> int | None:
        try:
            r = self.ipr.route("get", dst=dst)
        except NetlinkError:
            return None
        return r[0].get_attr("RTA_OIF") if r else None

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

    def attach(self, index: int, direction: str, prog_fd: int, name: str) -> None:
        """Adds or atomically replaces bpfnet's direct-action filter."""
        self.ipr.tc("replace-filter", "bpf", index, BPFNET_TC_HANDLE, fd=prog_fd,
                    name=name, parent=PARENT[direction], classid=1,
                    direct_action=True, prio=BPFNET_TC_PRIO)

    def detach(self, index: int, direction: str) -> bool:
        try:
            self.ipr.tc("del-filter", "bpf", index, BPFNET_TC_HANDLE,
                        parent=PARENT[direction], prio=BPFNET_TC_PRIO)
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
                        "ours": (f["info"] >> 16) == BPFNET_TC_PRIO
                        and f["handle"] == BPFNET_TC_HANDLE})
        return out

    def ours_attached(self, index: int, direction: str) -> str | None:
        for f in self.filters(index, direction):
            if f["ours"]:
                return f["name"]
        return None
