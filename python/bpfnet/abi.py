"""ctypes mirrors of include/*.h, and the only place addresses become bytes.

    key = BrFdbKey(mac=mac_pack(EUI("02:00:00:00:00:01")), port=7)
    str(ip_unpack(val.remote))  # '10.0.0.2'

Every struct here is checked against the BTF of the built objects
(tests/unit/test_layout.py). Addresses are parsed with netaddr at the edge
and converted only here, with ``.packed`` (network order).
"""
from __future__ import annotations

import ctypes
import struct
from ctypes import c_uint8, c_uint16, c_uint32, c_uint64

from netaddr import EUI, IPAddress, mac_unix_expanded

# include/bpfnet.h
BPFNET_TC_PRIO = 0xBF00
BPFNET_TC_PRIO_DECAP = 0xBF01  # decapsulation on an underlay: after the monitor
BPFNET_TC_PRIOS = (BPFNET_TC_PRIO, BPFNET_TC_PRIO_DECAP)
BPFNET_TC_HANDLE = 0xBF
BPFNET_AGEING_S = 300

Mac = c_uint8 * 6


class BpfnetIP(ctypes.Structure):
    """struct bpfnet_ip: 16 bytes, network order, IPv4 stored IPv4-mapped."""
    _fields_ = [("addr", c_uint8 * 16)]


def ip_pack(ip) -> BpfnetIP:
    ip = IPAddress(ip)
    if ip.version == 4:
        ip = ip.ipv6(ipv4_compatible=False)
    return BpfnetIP.from_buffer_copy(ip.packed)


def ip_unpack(raw: BpfnetIP) -> IPAddress:
    ip = IPAddress(int.from_bytes(bytes(raw.addr), "big"), 6)
    return ip.ipv4() if ip.is_ipv4_mapped() else ip


def ip_is_zero(raw: BpfnetIP) -> bool:
    return not any(raw.addr)


def mac_pack(mac) -> Mac:
    return Mac.from_buffer_copy(EUI(mac).packed)


def mac_unpack(raw) -> EUI:
    return EUI(int.from_bytes(bytes(raw), "big"), dialect=mac_unix_expanded)


# include/bridge.h
BR_FDB_MAX = 65536
BR_VNI_MAX = 4096
BR_ALLOW_MAX = 16384
BR_NEIGH_MAX = 65536
BR_LOCAL_MAX = 65536
BR_CFG_F_VXLAN_CREATED = 1 << 0
BR_CFG_F_NO_SUPPRESS = 1 << 1
BR_VNI_F_ALLOW_LIST = 1 << 0
BR_VNI_F_BRIDGE_CREATED = 1 << 1
BR_VNI_F_FILTER_ADDED = 1 << 2
BR_FDB_F_STATIC = 1 << 0
BR_FDB_F_ROUTE = 1 << 1
BR_NEIGH_F_STATIC = 1 << 0
BR_NEIGH_F_ROUTE = 1 << 1
BR_NEIGH_F_LOCAL = 1 << 2


class BrCfg(ctypes.Structure):
    _fields_ = [("vxlan_ifindex", c_uint32), ("ageing_s", c_uint32),
                ("flags", c_uint32), ("pad", c_uint32),
                ("group", BpfnetIP), ("local", BpfnetIP), ("fdb_removed", c_uint64)]


class BrVniVal(ctypes.Structure):
    _fields_ = [("port", c_uint32), ("bridge", c_uint32), ("flags", c_uint32),
                ("pad", c_uint32), ("group", BpfnetIP)]


class BrPortVal(ctypes.Structure):
    _fields_ = [("vni", c_uint32), ("pad", c_uint32)]


class BrFdbKey(ctypes.Structure):
    _fields_ = [("mac", Mac), ("pad", c_uint8 * 2), ("port", c_uint32)]


class BrFdbVal(ctypes.Structure):
    _fields_ = [("remote", BpfnetIP), ("vni", c_uint32), ("flags", c_uint32),
                ("rx_pkts", c_uint64), ("tx_pkts", c_uint64), ("seen_ns", c_uint64)]


# the same two layouts as struct formats, for bulk reads (struct.iter_unpack)
BR_FDB_KEY = struct.Struct("=6s2xI")        # mac, port
BR_FDB_VAL = struct.Struct("=16sIIQQQ")     # remote, vni, flags, rx_pkts, tx_pkts, seen_ns


class BrAllowKey(ctypes.Structure):
    _fields_ = [("vni", c_uint32), ("pad", c_uint32), ("remote", BpfnetIP)]


class BrNeighKey(ctypes.Structure):
    _fields_ = [("vni", c_uint32), ("pad", c_uint32), ("ip", BpfnetIP)]


class BrNeighVal(ctypes.Structure):
    _fields_ = [("mac", Mac), ("flags", c_uint16), ("pad", c_uint32),
                ("replies", c_uint64), ("seen_ns", c_uint64)]


BR_NEIGH_KEY = struct.Struct("=I4x16s")     # vni, ip
BR_NEIGH_VAL = struct.Struct("=6sH8xQQ")    # mac, flags, (pad), replies, seen_ns


class BrLocalKey(ctypes.Structure):
    _fields_ = [("vni", c_uint32), ("mac", Mac), ("pad", c_uint8 * 2)]


class BrLocalVal(ctypes.Structure):
    _fields_ = [("seen_ns", c_uint64), ("first_ns", c_uint64)]


class BrLocalLast(ctypes.Structure):
    """struct br_local_last: bridge_egress's per-CPU memo of the last source
    it looked up in br_local (not pinned)."""
    _fields_ = [("key", BrLocalKey), ("stamp_ns", c_uint64)]


BR_LOCAL_KEY = struct.Struct("=I6s2x")     # vni, mac
BR_LOCAL_VAL = struct.Struct("=QQ")        # seen_ns, first_ns


class BrStats(ctypes.Structure):
    """struct br_stats: per-CPU counters; drop_* fields are drop reasons."""
    _fields_ = [(n, c_uint64) for n in (
        "rx", "tx", "flood", "learn", "move", "aged", "drop_no_tunnel",
        "drop_unknown_vni", "drop_vtep_denied", "drop_short", "drop_no_config",
        "drop_tunnel_key")]


class BrSuppStats(ctypes.Structure):
    """struct br_supp_stats: per-CPU counters of static entries and ARP/ND
    suppression (a map of their own: br_stats keeps its layout)."""
    _fields_ = [(n, c_uint64) for n in (
        "static_conflict", "arp_reply", "nd_reply", "arp_flood", "nd_flood", "neigh_learn")]


class BrRouteStats(ctypes.Structure):
    """struct br_route_stats: per-CPU counters of local learning and route
    entries (a map of their own, as br_supp_stats)."""
    _fields_ = [(n, c_uint64) for n in (
        "local_learn", "local_neigh", "local_moved", "route_move", "arp_local", "nd_local")]


# struct __sk_buff (UAPI), as BPF_PROG_TEST_RUN takes it for tc programs
class SkBuff(ctypes.Structure):
    _fields_ = [
        ("len", c_uint32), ("pkt_type", c_uint32), ("mark", c_uint32),
        ("queue_mapping", c_uint32), ("protocol", c_uint32),
        ("vlan_present", c_uint32), ("vlan_tci", c_uint32),
        ("vlan_proto", c_uint32), ("priority", c_uint32),
        ("ingress_ifindex", c_uint32), ("ifindex", c_uint32),
        ("tc_index", c_uint32), ("cb", c_uint32 * 5), ("hash", c_uint32),
        ("tc_classid", c_uint32), ("data", c_uint32), ("data_end", c_uint32),
        ("napi_id", c_uint32), ("family", c_uint32), ("remote_ip4", c_uint32),
        ("local_ip4", c_uint32), ("remote_ip6", c_uint32 * 4),
        ("local_ip6", c_uint32 * 4), ("remote_port", c_uint32),
        ("local_port", c_uint32), ("data_meta", c_uint32),
        ("flow_keys", c_uint64), ("tstamp", c_uint64), ("wire_len", c_uint32),
        ("gso_segs", c_uint32), ("sk", c_uint64), ("gso_size", c_uint32),
        ("tstamp_type", c_uint8), ("_pad", c_uint8 * 3), ("hwtstamp", c_uint64),
    ]


# mirrors checked by tests/unit/test_layout.py: C struct name -> class
MIRRORS = {
    "bpfnet_ip": BpfnetIP,
    "br_cfg": BrCfg,
    "br_vni_val": BrVniVal,
    "br_port_val": BrPortVal,
    "br_fdb_key": BrFdbKey,
    "br_fdb_val": BrFdbVal,
    "br_allow_key": BrAllowKey,
    "br_neigh_key": BrNeighKey,
    "br_neigh_val": BrNeighVal,
    "br_stats": BrStats,
    "br_supp_stats": BrSuppStats,
    "br_local_key": BrLocalKey,
    "br_local_val": BrLocalVal,
    "br_local_last": BrLocalLast,
    "br_route_stats": BrRouteStats,
    "__sk_buff": SkBuff,
}

# enum name -> C names in value order, checked the same way
ENUMS: dict = {}


# --- include/mesh.h ----------------------------------------------------------
MESH_PEER_MAX = 4096
MESH_VNI_MAX = 4096
MESH_CFG_F_VXLAN_CREATED = 1 << 0
MESH_VNI_F_BRIDGE_CREATED = 1 << 0
MESH_VNI_F_FILTER_ADDED = 1 << 1


class MeshCfg(ctypes.Structure):
    _fields_ = [("vxlan_ifindex", c_uint32), ("flags", c_uint32),
                ("next_port", c_uint32), ("dstport", c_uint32), ("local", BpfnetIP)]


class MeshPeerKey(ctypes.Structure):
    _fields_ = [("vni", c_uint32), ("pad", c_uint32), ("remote", BpfnetIP)]


class MeshPeerVal(ctypes.Structure):
    _fields_ = [("port", c_uint32), ("id", c_uint32),
                ("rx_pkts", c_uint64), ("rx_bytes", c_uint64)]


class MeshPortVal(ctypes.Structure):
    _fields_ = [("remote", BpfnetIP), ("vni", c_uint32), ("pad", c_uint32),
                ("tx_pkts", c_uint64), ("tx_bytes", c_uint64)]


class MeshVniVal(ctypes.Structure):
    _fields_ = [("bridge", c_uint32), ("flags", c_uint32)]


class MeshStats(ctypes.Structure):
    """struct mesh_stats: per-CPU counters; drop_* fields are drop reasons."""
    _fields_ = [(n, c_uint64) for n in (
        "rx", "tx", "drop_no_tunnel", "drop_unknown_peer", "drop_split_horizon",
        "drop_no_config", "drop_tunnel_key")]


MIRRORS.update({
    "mesh_cfg": MeshCfg,
    "mesh_peer_key": MeshPeerKey,
    "mesh_peer_val": MeshPeerVal,
    "mesh_port_val": MeshPortVal,
    "mesh_vni_val": MeshVniVal,
    "mesh_stats": MeshStats,
})


# include/gateway.h
GW_CLIENT_MAX = 4096
GW_CLIENT_F_PENDING = 1 << 0
ETH_P_8021Q, ETH_P_8021AD = 0x8100, 0x88A8
VLAN_VID_MASK = 0x0FFF


class GwCfg(ctypes.Structure):
    _fields_ = [("trunk", c_uint32), ("pad", c_uint32)]


class GwClientKey(ctypes.Structure):
    _fields_ = [("mac", Mac), ("pad", c_uint8 * 2)]


class GwClientVal(ctypes.Structure):
    _fields_ = [("worker", c_uint32), ("flags", c_uint32)]


class GwVlanVal(ctypes.Structure):
    """struct gw_vlan_val: vlan_tci host order; vlan_proto is __be16, read
    and written here as a plain int (0x8100) by a big-endian field."""
    _fields_ = [("trunk", c_uint32), ("vlan_tci", ctypes.c_uint16),
                ("vlan_proto", ctypes.c_uint16.__ctype_be__),
                ("rx_pkts", c_uint64), ("rx_bytes", c_uint64),
                ("tx_pkts", c_uint64), ("tx_bytes", c_uint64), ("seen_ns", c_uint64)]


class GwStats(ctypes.Structure):
    """struct gw_stats: per-CPU counters; drop_* fields are drop reasons."""
    _fields_ = [(n, c_uint64) for n in (
        "rx", "tx", "learn", "move", "pass_untagged", "pass_unknown",
        "pass_unlearned", "drop_short", "drop_vlan_pop", "drop_vlan_push")]


MIRRORS.update({
    "gw_cfg": GwCfg,
    "gw_client_key": GwClientKey,
    "gw_client_val": GwClientVal,
    "gw_vlan_val": GwVlanVal,
    "gw_stats": GwStats,
})


# include/monitor.h (the tunnel monitor)
MON_FLOWS_MAX = 65536
MON_DEFAULT_PORT = 4789


class MonCfg(ctypes.Structure):
    """struct mon_cfg: port in host order; 0 means MON_DEFAULT_PORT."""
    _fields_ = [("ifindex", c_uint32), ("port", ctypes.c_uint16), ("pad", ctypes.c_uint16)]


class MonFlowKey(ctypes.Structure):
    """struct mon_flow_key: outer_sip <= outer_dip (both directions meet);
    vni host order; inner addresses zero for non-IP inner frames."""
    _fields_ = [("outer_sip", BpfnetIP), ("outer_dip", BpfnetIP), ("vni", c_uint32),
                ("inner_sip", BpfnetIP), ("inner_dip", BpfnetIP)]


class MonFlowVal(ctypes.Structure):
    _fields_ = [("tx_pkts", c_uint64), ("tx_bytes", c_uint64),
                ("rx_pkts", c_uint64), ("rx_bytes", c_uint64)]


class MonStats(ctypes.Structure):
    """struct mon_stats: per-CPU counters; every frame lands in one of vxlan,
    other, fragment, malformed, no_room (new_flow and pulled are extra)."""
    _fields_ = [(n, c_uint64) for n in (
        "vxlan", "new_flow", "other", "fragment", "malformed", "no_room", "pulled")]


MIRRORS.update({
    "mon_cfg": MonCfg,
    "mon_flow_key": MonFlowKey,
    "mon_flow_val": MonFlowVal,
    "mon_stats": MonStats,
})


# include/encap.h (in-program VXLAN encapsulation: bridge and mesh)
ENCAP_F_NATIVE = 1 << 0
ENCAP_F_IPV6 = 1 << 1
ENCAP_HLEN = {4: 50, 6: 70}


class EncapCfg(ctypes.Structure):
    """struct encap_cfg: dstport network order (a big-endian field), the
    source port range host order."""
    _fields_ = [("underlay", c_uint32), ("flags", c_uint32),
                ("dstport", ctypes.c_uint16.__ctype_be__), ("src_mac", Mac),
                ("sport_min", ctypes.c_uint16), ("sport_max", ctypes.c_uint16),
                ("pad", c_uint32), ("local", BpfnetIP)]


class EncapStats(ctypes.Structure):
    """struct encap_stats: per-CPU counters of the path frames took."""
    _fields_ = [(n, c_uint64) for n in (
        "encap", "encap_l2", "tx_device", "tx_fallback", "decap", "rx_fallback_gso",
        "rx_fallback_frag", "rx_fallback_tcp", "rx_fallback", "drop_mtu", "drop_encap")]


MIRRORS.update({
    "encap_cfg": EncapCfg,
    "encap_stats": EncapStats,
})


# tests/progs/tunnel_inject.bpf.c (test side: BPF_PROG_TEST_RUN cannot pass
# tunnel metadata, this object sets it and tail-calls the program under test;
# used by tests/prog and the bench)
class InjectCfg(ctypes.Structure):
    """struct inject_cfg: the sender and VNI a collect_md device would report."""
    _fields_ = [("remote", BpfnetIP), ("vni", c_uint32), ("ipv6", c_uint32)]


# mirrors of the test-side objects (build/tests/*.bpf.o), checked the same way
TEST_MIRRORS = {"inject_cfg": InjectCfg}
