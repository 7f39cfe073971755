"""ARP and IPv6 neighbour discovery frames, built and read for the
suppression tests (prog, fuzz, netns).

    arp_request("02:..:0a", "192.168.0.1", "192.168.0.2")   # broadcast who-has
    ns("02:..:0a", "fd10::1", "fd10::2")                    # to the solicited-node group
    parse_na(frame)                                          # dict, checksum verified
"""
from __future__ import annotations

import struct

from netaddr import EUI, IPAddress

from packets import BCAST, csum

ETH_P_ARP, ETH_P_IPV6 = 0x0806, 0x86DD
ZERO_MAC = "00:00:00:00:00:00"


def _mac(m) -> bytes:
    return EUI(m).packed


def _ip(a) -> bytes:
    return IPAddress(a).packed


def _addr(b: bytes) -> IPAddress:
    return IPAddress(int.from_bytes(b, "big"), 4 if len(b) == 4 else 6)


def arp(op: int, sha, spa, tha, tpa, dst=BCAST, src=None, pad_to: int = 0) -> bytes:
    f = (_mac(dst) + _mac(src or sha) + struct.pack("!H", ETH_P_ARP)
         + struct.pack("!HHBBH", 1, 0x0800, 6, 4, op)
         + _mac(sha) + _ip(spa) + _mac(tha) + _ip(tpa))
    return f + b"\0" * max(0, pad_to - len(f))


def arp_request(sha, spa, tpa, **kw) -> bytes:
    return arp(1, sha, spa, ZERO_MAC, tpa, **kw)


def arp_reply(sha, spa, tha, tpa, **kw) -> bytes:
    return arp(2, sha, spa, tha, tpa, dst=tha, **kw)


def parse_arp(frame: bytes) -> dict:
    dst, src, proto = frame[:6], frame[6:12], struct.unpack("!H", frame[12:14])[0]
    htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", frame[14:22])
    sha, spa, tha, tpa = frame[22:28], frame[28:32], frame[32:38], frame[38:42]
    mac = lambda b: b.hex(":")  # noqa: E731
    return {"dst": mac(dst), "src": mac(src), "proto": proto, "htype": htype, "ptype": ptype,
            "hlen": hlen, "plen": plen, "op": op, "sha": mac(sha), "spa": str(_addr(spa)),
            "tha": mac(tha), "tpa": str(_addr(tpa))}


def solicited_node(target) -> IPAddress:
    t = int(IPAddress(target))
    return IPAddress((0xFF02_0000_0000_0000_0000_0001_FF00_0000) | (t & 0xFFFFFF), 6)


def _icmp6(src, dst, body: bytes) -> bytes:
    pseudo = _ip(src) + _ip(dst) + struct.pack("!IxxxB", len(body), 58)
    c = csum(pseudo + body)
    return body[:2] + struct.pack("!H", c) + body[4:]


def ipv6_icmp(src_mac, dst_mac, src, dst, body: bytes, hlim: int = 255) -> bytes:
    body = _icmp6(src, dst, body)
    return (_mac(dst_mac) + _mac(src_mac) + struct.pack("!H", ETH_P_IPV6)
            + struct.pack("!IHBB", 6 << 28, len(body), 58, hlim) + _ip(src) + _ip(dst) + body)


def ns(src_mac, src, target, sll: bool = True, dst=None, hlim: int = 255, extra: bytes = b"") -> bytes:
    """A neighbour solicitation from (src_mac, src) for target, to its
    solicited-node group (or dst); sll adds the source link-layer option."""
    dst = dst or solicited_node(target)
    g = int(IPAddress(dst))
    dst_mac = EUI(0x3333_0000_0000 | (g & 0xFFFFFFFF)) if IPAddress(dst).is_multicast() else None
    body = struct.pack("!BBHI", 135, 0, 0, 0) + _ip(target)
    if sll:
        body += struct.pack("!BB", 1, 1) + _mac(src_mac)
    body += extra
    return ipv6_icmp(src_mac, dst_mac or BCAST, src, dst, body, hlim)


def na(src_mac, target, dst_mac, dst, tll: bool = True, flags: int = 0x60000000) -> bytes:
    body = struct.pack("!BBHI", 136, 0, 0, flags) + _ip(target)
    if tll:
        body += struct.pack("!BB", 2, 1) + _mac(src_mac)
    return ipv6_icmp(src_mac, dst_mac, target, dst, body)


def parse_na(frame: bytes) -> dict:
    """The NA's fields; checksum_ok says whether the ICMPv6 checksum is right."""
    mac = lambda b: b.hex(":")  # noqa: E731
    vtf, plen, nh, hlim = struct.unpack("!IHBB", frame[14:22])
    src, dst = _addr(frame[22:38]), _addr(frame[38:54])
    body = frame[54:54 + plen]
    pseudo = src.packed + dst.packed + struct.pack("!IxxxB", plen, nh)
    typ, code, _, flags = struct.unpack("!BBHI", body[:8])
    opts = body[24:]
    return {"dst": mac(frame[:6]), "src": mac(frame[6:12]),
            "proto": struct.unpack("!H", frame[12:14])[0], "version": vtf >> 28,
            "plen": plen, "nh": nh, "hlim": hlim, "ip_src": str(src), "ip_dst": str(dst),
            "type": typ, "code": code, "flags": flags, "target": str(_addr(body[8:24])),
            "opts": opts.hex(), "checksum_ok": csum(pseudo + body) == 0, "len": len(frame)}
