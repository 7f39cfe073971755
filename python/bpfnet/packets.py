"""Small chained packet builders for BPF_PROG_TEST_RUN, raw-socket tests and
the bench (tests/packets.py re-exports them for the tests).

    frame = eth(dst=BCAST, src=MAC_A) / ipv4(SRC, DST) / udp(1, 2) / b"hi"
    bytes(frame)

Each builder fills lengths and checksums when the whole packet is built.
Addresses are netaddr values or strings netaddr accepts.
"""
from __future__ import annotations

import struct

from netaddr import EUI, IPAddress

BCAST = "ff:ff:ff:ff:ff:ff"
ETH_P_IP, ETH_P_IPV6, ETH_P_ARP = 0x0800, 0x86DD, 0x0806
ETH_P_8021Q, ETH_P_8021AD = 0x8100, 0x88A8


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


class Layer:
    """A header; ``a / b`` stacks ``b`` (a Layer or bytes) on top of ``a``."""
    proto = 0  # the ethertype or IP protocol this layer announces to its parent

    def __init__(self):
        self.payload: Layer | bytes = b""

    def __truediv__(self, other):
        last = self
        while isinstance(last.payload, Layer):
            last = last.payload
        last.payload = other
        return self

    def inner(self) -> bytes:
        return bytes(self.payload) if isinstance(self.payload, Layer) else self.payload

    def build(self, parent=None) -> bytes:
        raise NotImplementedError

    def __bytes__(self):
        return self.build()

    def __len__(self):
        return len(bytes(self))


def _mac(m) -> bytes:
    return EUI(m).packed


class eth(Layer):
    def __init__(self, dst=BCAST, src="02:00:00:00:00:01", type_: int | None = None):
        super().__init__()
        self.dst, self.src, self.type_ = dst, src, type_

    def build(self, parent=None):
        t = self.type_ if self.type_ is not None else getattr(self.payload, "ethertype", 0x88B5)
        return _mac(self.dst) + _mac(self.src) + struct.pack("!H", t) + self.inner()


class vlan(Layer):
    """An 802.1Q (or 802.1ad with ``proto=0x88a8``) tag; the tag's own TPID
    goes in the previous header, so use ``eth(type_=...)`` or chain vlan()."""

    def __init__(self, vid: int, pcp: int = 0, tpid: int = ETH_P_8021Q):
        super().__init__()
        self.vid, self.pcp, self.ethertype = vid, pcp, tpid

    def build(self, parent=None):
        inner_t = getattr(self.payload, "ethertype", 0x88B5)
        return struct.pack("!HH", (self.pcp << 13) | self.vid, inner_t) + self.inner()


class ipv4(Layer):
    ethertype = ETH_P_IP

    def __init__(self, src="10.0.0.1", dst="10.0.0.2", ttl=64, proto: int | None = None, ident=1):
        super().__init__()
        self.src, self.dst, self.ttl, self.proto_, self.ident = src, dst, ttl, proto, ident

    def build(self, parent=None):
        proto = self.proto_ if self.proto_ is not None else getattr(self.payload, "ipproto", 253)
        body = self.payload.build(self) if isinstance(self.payload, Layer) else self.payload
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), self.ident, 0x4000,
                          self.ttl, proto, 0, IPAddress(self.src).packed, IPAddress(self.dst).packed)
        hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
        return hdr + body


class ipv6(Layer):
    ethertype = ETH_P_IPV6

    def __init__(self, src="fd00::1", dst="fd00::2", hlim=64, nh: int | None = None):
        super().__init__()
        self.src, self.dst, self.hlim, self.nh = src, dst, hlim, nh

    def build(self, parent=None):
        nh = self.nh if self.nh is not None else getattr(self.payload, "ipproto", 59)
        body = self.payload.build(self) if isinstance(self.payload, Layer) else self.payload
        return struct.pack("!IHBB16s16s", 6 << 28, len(body), nh, self.hlim,
                           IPAddress(self.src).packed, IPAddress(self.dst).packed) + body


class udp(Layer):
    ipproto = 17

    def __init__(self, sport=12345, dport=4789, checksum: bool = False):
        super().__init__()
        self.sport, self.dport, self.checksum = sport, dport, checksum

    def build(self, parent=None):
        body = self.inner()
        hdr = struct.pack("!HHHH", self.sport, self.dport, 8 + len(body), 0)
        return hdr + body


class vxlan(Layer):
    def __init__(self, vni: int, flags: int = 0x08):
        super().__init__()
        self.vni, self.flags = vni, flags

    def build(self, parent=None):
        return struct.pack("!B3xI", self.flags, self.vni << 8) + self.inner()


class icmp_echo(Layer):
    ipproto = 1

    def __init__(self, ident=1, seq=1, data=b"bpfnet"):
        super().__init__()
        self.ident, self.seq, self.data = ident, seq, data

    def build(self, parent=None):
        hdr = struct.pack("!BBHHH", 8, 0, 0, self.ident, self.seq) + self.data
        return hdr[:2] + struct.pack("!H", csum(hdr)) + hdr[4:]


def pad(frame: bytes, size: int = 60) -> bytes:
    """Pads to the Ethernet minimum (without FCS)."""
    return frame + b"\0" * max(0, size - len(frame))


# canned packets, as the selftests' pkt_v4
MAC_A = "02:00:00:00:00:0a"
MAC_B = "02:00:00:00:00:0b"


def pkt_v4(src_mac=MAC_A, dst_mac=MAC_B, src="192.168.0.1", dst="192.168.0.2", size=64) -> bytes:
    f = bytes(eth(dst_mac, src_mac) / ipv4(src, dst) / udp(1000, 2000) / b"")
    return pad(f, size) if len(f) < size else f


# VXLAN on an underlay: host h0 to host h1, tenant a to tenant b
MAC_H0, MAC_H1 = "02:00:00:00:01:01", "02:00:00:00:01:02"
TMAC_A, TMAC_B = "02:00:00:00:0a:01", "02:00:00:00:0a:02"


def pkt_vxlan(osrc="10.99.0.1", odst="10.99.0.2", vni=10, isrc="192.168.0.1",
              idst="192.168.0.2", port=4789, outer_vlan=None, inner_vlan=None,
              inner=None, payload=b"bpfnet-monitor", inner_frame: bytes | None = None) -> bytes:
    """Outer Ethernet [VLAN] IPv4|IPv6 UDP VXLAN, inner Ethernet [VLAN]
    IPv4|IPv6 ICMP echo. ``inner`` replaces what follows the inner Ethernet
    header; ``inner_frame`` replaces the whole inner frame."""
    if inner_frame is None:
        if inner is None:
            ip_in = ipv4(isrc, idst) if IPAddress(isrc).version == 4 else ipv6(isrc, idst)
            inner = ip_in / icmp_echo(data=payload)
        inner_eth = eth(TMAC_B, TMAC_A)
        if inner_vlan is not None:
            inner_eth = inner_eth / vlan(inner_vlan)
        inner_frame = bytes(inner_eth / inner)
    ip_out = ipv4(osrc, odst) if IPAddress(osrc).version == 4 else ipv6(osrc, odst)
    outer = eth(MAC_H1, MAC_H0)
    if outer_vlan is not None:
        outer = outer / vlan(outer_vlan)
    return bytes(outer / ip_out / udp(49152, port) / vxlan(vni) / inner_frame)


__all__ = ["BCAST", "ETH_P_IP", "ETH_P_IPV6", "ETH_P_ARP", "ETH_P_8021Q", "ETH_P_8021AD",
           "csum", "Layer", "eth", "vlan", "ipv4", "ipv6", "udp", "vxlan", "icmp_echo", "pad",
           "MAC_A", "MAC_B", "pkt_v4", "MAC_H0", "MAC_H1", "TMAC_A", "TMAC_B", "pkt_vxlan"]
