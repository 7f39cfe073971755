"""Argument types: parse at the edge into netaddr values and checked ints.

    parser.add_argument("vni", type=vni)
    parser.add_argument("--group", type=mcast_group)

Each raises ConfigError with a one-line message naming the bad value.
"""
from __future__ import annotations

from netaddr import EUI, AddrFormatError, IPAddress, mac_unix_expanded

from .errors import ConfigError
from .netlink import check_ifname

VNI_MAX = (1 << 24) - 1


def _int(text: str, what: str) -> int:
    try:
        return int(text, 0)
    except (TypeError, ValueError):
        raise ConfigError(f"invalid {what} {text!r}: not a number") from None


def vni(text: str) -> int:
    v = _int(text, "VNI")
    if not 1 <= v <= VNI_MAX:
        raise ConfigError(f"invalid VNI {text!r}: must be 1..{VNI_MAX}")
    return v


def udp_port(text: str) -> int:
    v = _int(text, "port")
    if not 1 <= v <= 65535:
        raise ConfigError(f"invalid port {text!r}: must be 1..65535")
    return v


def seconds(text: str) -> int:
    v = _int(text, "seconds")
    if not 1 <= v <= 1_000_000:
        raise ConfigError(f"invalid seconds {text!r}: must be 1..1000000")
    return v


def ip(text: str) -> IPAddress:
    try:
        if "/" in text:
            raise AddrFormatError
        return IPAddress(text, flags=0)
    except (AddrFormatError, ValueError, TypeError):
        raise ConfigError(f"invalid IP address {text!r}") from None


def unicast_ip(text: str) -> IPAddress:
    a = ip(text)
    if a.is_multicast() or a == IPAddress(0, a.version) or (a.version == 4 and a.words == (255,) * 4):
        raise ConfigError(f"invalid unicast IP address {text!r}")
    return a


def ip_list(text: str) -> list[IPAddress]:
    items = [t.strip() for t in text.split(",")]
    if not all(items):
        raise ConfigError(f"invalid address list {text!r}")
    return [unicast_ip(t) for t in items]


def mcast_group(text: str) -> IPAddress:
    a = ip(text)
    if not a.is_multicast():
        raise ConfigError(f"invalid group {text!r}: not a multicast address")
    return a


def mac(text: str) -> EUI:
    try:
        if not isinstance(text, str) or len(text) > 17:
            raise ValueError
        m = EUI(text, dialect=mac_unix_expanded)
        if m.version != 48:
            raise ValueError
    except (AddrFormatError, ValueError, TypeError):
        raise ConfigError(f"invalid MAC address {text!r}") from None
    if int(m) >> 40 & 1:
        raise ConfigError(f"invalid MAC address {text!r}: not unicast")
    if int(m) == 0:
        raise ConfigError(f"invalid MAC address {text!r}: all zeros")
    return m


def ifname(text: str) -> str:
    return check_ifname(text)


def listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"invalid listen address {text!r}: want HOST:PORT")
    host = host.strip("[]")
    ip(host)
    return host, udp_port(port)


def count(text: str) -> int:
    """A number of rounds (``stats --watch --count N``): 1..1000000."""
    v = _int(text, "count")
    if not 1 <= v <= 1_000_000:
        raise ConfigError(f"invalid count {text!r}: must be 1..1000000")
    return v
