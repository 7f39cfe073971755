"""bpfnet.packets, the builders every prog test and the bench feed the
programs: lengths, checksums and fields where a parser will look. Pure."""
import struct

from packets import (BCAST, ETH_P_8021AD, MAC_A, MAC_B, csum, eth, icmp_echo, ipv4, ipv6, pad,
                     pkt_v4, pkt_vxlan, udp, vlan, vxlan)


def test_eth_ipv4_udp_lengths_and_checksum():
    f = bytes(eth(MAC_B, MAC_A) / ipv4("10.0.0.1", "10.0.0.2") / udp(1000, 2000) / b"hi")
    assert f[:12] == bytes.fromhex("02000000000b02000000000a")
    assert f[12:14] == b"\x08\x00"
    ip = f[14:34]
    assert ip[0] == 0x45 and struct.unpack("!H", ip[2:4])[0] == 20 + 8 + 2
    assert ip[9] == 17 and ip[12:16] == bytes([10, 0, 0, 1]) and ip[16:20] == bytes([10, 0, 0, 2])
    assert csum(ip) == 0                               # the header checksum holds
    assert struct.unpack("!HHH", f[34:40]) == (1000, 2000, 8 + 2)
    assert f[42:] == b"hi"


def test_vlan_tags_chain_with_their_tpid():
    f = bytes(eth(BCAST, MAC_A) / vlan(10, pcp=5, tpid=ETH_P_8021AD) / vlan(20) / ipv6() / b"")
    assert f[12:14] == b"\x88\xa8"
    assert struct.unpack("!HH", f[14:18]) == (5 << 13 | 10, 0x8100)
    assert struct.unpack("!HH", f[18:22]) == (20, 0x86DD)
    assert f[22] >> 4 == 6 and len(f) == 22 + 40


def test_eth_type_can_be_forced():
    f = bytes(eth(MAC_B, MAC_A, type_=0x0806) / bytes(28))
    assert f[12:14] == b"\x08\x06" and len(f) == 42


def test_icmp_echo_checksum():
    f = bytes(ipv4() / icmp_echo(ident=7, seq=3, data=b"abc"))
    assert f[9] == 1
    assert csum(f[20:]) == 0 and f[20] == 8


def test_vxlan_header():
    f = bytes(udp(49152, 4789) / vxlan(0xABCDEF) / b"x")
    assert f[8:16] == bytes([0x08, 0, 0, 0, 0xAB, 0xCD, 0xEF, 0]) and f[16:] == b"x"


def test_pad_and_pkt_v4_sizes():
    assert len(pad(b"x" * 20)) == 60 and len(pad(b"x" * 70)) == 70
    assert len(pkt_v4()) == 64 and len(pkt_v4(size=1400)) == 1400
    assert pkt_v4(src_mac=MAC_B)[6:12] == bytes.fromhex("02000000000b")


def test_pkt_vxlan_wraps_the_inner_frame():
    inner = pkt_v4()
    f = pkt_vxlan("10.99.0.1", "10.99.0.2", vni=10, inner_frame=inner)
    assert len(f) == 14 + 20 + 8 + 8 + len(inner) and f.endswith(inner)
    assert struct.unpack("!H", f[36:38])[0] == 4789
    g = pkt_vxlan("fd00::1", "fd00::2", outer_vlan=3, inner_vlan=4, isrc="fd10::1", idst="fd10::2")
    assert g[12:14] == b"\x81\x00" and g[16:18] == b"\x86\xdd"
    inner_eth = 18 + 40 + 8 + 8
    assert g[inner_eth + 12:inner_eth + 14] == b"\x81\x00"
