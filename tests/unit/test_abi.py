"""abi.py's address packing: the one place addresses become struct bytes
(network order, IPv4 stored IPv4-mapped) and come back. Pure: no root."""
import ctypes

import pytest
from netaddr import EUI, IPAddress, mac_unix_expanded

from bpfnet import abi


@pytest.mark.parametrize("text,raw", [
    ("10.0.0.2", bytes(10) + b"\xff\xff" + bytes([10, 0, 0, 2])),
    ("239.1.1.1", bytes(10) + b"\xff\xff" + bytes([239, 1, 1, 1])),
    ("0.0.0.0", bytes(10) + b"\xff\xff" + bytes(4)),
    ("fd00:99::2", bytes.fromhex("fd000099000000000000000000000002")),
    ("ff02::1", bytes.fromhex("ff020000000000000000000000000001")),
    ("::", bytes(16)),
], ids=lambda v: v if isinstance(v, str) else None)
def test_ip_pack_and_back(text, raw):
    packed = abi.ip_pack(text)
    assert isinstance(packed, abi.BpfnetIP) and ctypes.sizeof(packed) == 16
    assert bytes(packed.addr) == raw
    back = abi.ip_unpack(packed)
    assert back == IPAddress(text) and back.version == IPAddress(text).version
    assert str(back) == text


def test_ip_pack_takes_netaddr_values():
    assert bytes(abi.ip_pack(IPAddress("10.0.0.2"))) == bytes(abi.ip_pack("10.0.0.2"))


def test_ipv4_mapped_ipv6_reads_back_as_ipv4():
    """An IPv4-mapped IPv6 address is stored the same way as its IPv4 address."""
    assert bytes(abi.ip_pack("::ffff:10.0.0.2")) == bytes(abi.ip_pack("10.0.0.2"))
    assert abi.ip_unpack(abi.ip_pack("::ffff:10.0.0.2")).version == 4


def test_ip_is_zero():
    assert abi.ip_is_zero(abi.BpfnetIP())
    assert abi.ip_is_zero(abi.ip_pack("::"))
    assert not abi.ip_is_zero(abi.ip_pack("0.0.0.0"))   # ::ffff:0.0.0.0 is not all zeros
    assert not abi.ip_is_zero(abi.ip_pack("10.0.0.1"))


@pytest.mark.parametrize("text", ["02:00:00:00:00:01", "02-00-00-0A-0B-0C", "ff:ff:ff:ff:ff:ff"])
def test_mac_pack_and_back(text):
    packed = abi.mac_pack(text)
    assert bytes(packed) == EUI(text).packed and len(bytes(packed)) == 6
    back = abi.mac_unpack(packed)
    assert back == EUI(text)
    assert str(back) == str(EUI(text, dialect=mac_unix_expanded))   # aa:bb:cc:dd:ee:ff


def test_mac_unpack_reads_raw_bytes_too():
    assert str(abi.mac_unpack(bytes.fromhex("020000000a01"))) == "02:00:00:00:0a:01"


def test_structs_carry_packed_addresses():
    k = abi.BrFdbKey(mac=abi.mac_pack("02:00:00:00:00:07"), port=9)
    assert bytes(k) == bytes.fromhex("020000000007") + bytes(2) + (9).to_bytes(4, "little")
    v = abi.MeshPeerKey(vni=10, remote=abi.ip_pack("10.99.0.2"))
    assert str(abi.ip_unpack(v.remote)) == "10.99.0.2" and v.vni == 10


def test_inject_cfg_mirror():
    """The test-side struct inject_cfg (its BTF is checked in test_layout)."""
    c = abi.InjectCfg(remote=abi.ip_pack("fd00::2"), vni=10, ipv6=1)
    assert ctypes.sizeof(c) == 24
    assert abi.TEST_MIRRORS["inject_cfg"] is abi.InjectCfg
    assert str(abi.ip_unpack(c.remote)) == "fd00::2"


def test_flags_are_distinct_bits():
    """br_fdb's and br_neigh's flags, br_cfg's: one bit each (include/bridge.h)."""
    for flags in ((abi.BR_FDB_F_STATIC, abi.BR_FDB_F_ROUTE),
                  (abi.BR_NEIGH_F_STATIC, abi.BR_NEIGH_F_ROUTE, abi.BR_NEIGH_F_LOCAL),
                  (abi.BR_CFG_F_VXLAN_CREATED, abi.BR_CFG_F_NO_SUPPRESS)):
        assert all(f and not f & (f - 1) for f in flags)
        union = 0
        for f in flags:
            union |= f
        assert union == sum(flags)  # no two share a bit
