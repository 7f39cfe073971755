"""validate.*: every argument type, good values parsed into netaddr values or
ints, bad ones refused with their one-line message. Pure: no root, no kernel."""
import pytest
from netaddr import EUI, IPAddress

from bpfnet import validate
from bpfnet.errors import ConfigError

VNI_MAX = 16777215

# (function, text, the value it parses to)
GOOD = [
    (validate.vni, "1", 1),
    (validate.vni, "10", 10),
    (validate.vni, "0x10", 16),
    (validate.vni, str(VNI_MAX), VNI_MAX),
    (validate.udp_port, "1", 1),
    (validate.udp_port, "4789", 4789),
    (validate.udp_port, "65535", 65535),
    (validate.seconds, "1", 1),
    (validate.seconds, "300", 300),
    (validate.seconds, "1000000", 1_000_000),
    (validate.count, "1", 1),
    (validate.count, "1000000", 1_000_000),
    (validate.ip, "10.0.0.1", IPAddress("10.0.0.1")),
    (validate.ip, "fd00::1", IPAddress("fd00::1")),
    (validate.ip, "239.1.1.1", IPAddress("239.1.1.1")),
    (validate.unicast_ip, "10.99.0.2", IPAddress("10.99.0.2")),
    (validate.unicast_ip, "fd00:99::2", IPAddress("fd00:99::2")),
    (validate.ip_list, "10.0.0.2", [IPAddress("10.0.0.2")]),
    (validate.ip_list, "10.0.0.2, fd00::3", [IPAddress("10.0.0.2"), IPAddress("fd00::3")]),
    (validate.mcast_group, "239.1.1.1", IPAddress("239.1.1.1")),
    (validate.mcast_group, "ff05::1", IPAddress("ff05::1")),
    (validate.mac, "02:00:00:00:00:01", EUI("02:00:00:00:00:01")),
    (validate.mac, "02-00-00-00-00-0A", EUI("02:00:00:00:00:0a")),
    (validate.ifname, "eth0", "eth0"),
    (validate.ifname, "a" * 15, "a" * 15),
    (validate.ifname, "veth-w1.10", "veth-w1.10"),
    (validate.listen, "127.0.0.1:8080", ("127.0.0.1", 8080)),
    (validate.listen, "[::1]:9431", ("::1", 9431)),
]

# (function, text, the exact message)
BAD = [
    (validate.vni, "0", "invalid VNI '0': must be 1..16777215"),
    (validate.vni, "16777216", "invalid VNI '16777216': must be 1..16777215"),
    (validate.vni, "-1", "invalid VNI '-1': must be 1..16777215"),
    (validate.vni, "ten", "invalid VNI 'ten': not a number"),
    (validate.vni, "", "invalid VNI '': not a number"),
    (validate.vni, "1e3", "invalid VNI '1e3': not a number"),
    (validate.udp_port, "0", "invalid port '0': must be 1..65535"),
    (validate.udp_port, "65536", "invalid port '65536': must be 1..65535"),
    (validate.udp_port, "http", "invalid port 'http': not a number"),
    (validate.seconds, "0", "invalid seconds '0': must be 1..1000000"),
    (validate.seconds, "1000001", "invalid seconds '1000001': must be 1..1000000"),
    (validate.seconds, "1.5", "invalid seconds '1.5': not a number"),
    (validate.count, "0", "invalid count '0': must be 1..1000000"),
    (validate.count, "x", "invalid count 'x': not a number"),
    (validate.ip, "10.0.0.256", "invalid IP address '10.0.0.256'"),
    (validate.ip, "10.0.0.0/24", "invalid IP address '10.0.0.0/24'"),
    (validate.ip, "", "invalid IP address ''"),
    (validate.ip, "fe80::1%eth0", "invalid IP address 'fe80::1%eth0'"),
    (validate.ip, "10.1", "invalid IP address '10.1'"),
    (validate.unicast_ip, "239.1.1.1", "invalid unicast IP address '239.1.1.1'"),
    (validate.unicast_ip, "0.0.0.0", "invalid unicast IP address '0.0.0.0'"),
    (validate.unicast_ip, "::", "invalid unicast IP address '::'"),
    (validate.unicast_ip, "255.255.255.255", "invalid unicast IP address '255.255.255.255'"),
    (validate.unicast_ip, "ff02::1", "invalid unicast IP address 'ff02::1'"),
    (validate.ip_list, "10.0.0.2,", "invalid address list '10.0.0.2,'"),
    (validate.ip_list, "", "invalid address list ''"),
    (validate.ip_list, "10.0.0.2,239.1.1.1", "invalid unicast IP address '239.1.1.1'"),
    (validate.ip_list, "10.0.0.2,x", "invalid IP address 'x'"),
    (validate.mcast_group, "10.0.0.1", "invalid group '10.0.0.1': not a multicast address"),
    (validate.mcast_group, "nope", "invalid IP address 'nope'"),
    (validate.mac, "zz", "invalid MAC address 'zz'"),
    (validate.mac, "00:11:22:33:44", "invalid MAC address '00:11:22:33:44'"),
    (validate.mac, "00:11:22:33:44:55:66", "invalid MAC address '00:11:22:33:44:55:66'"),
    (validate.mac, "01:00:5e:00:00:01", "invalid MAC address '01:00:5e:00:00:01': not unicast"),
    (validate.mac, "ff:ff:ff:ff:ff:ff", "invalid MAC address 'ff:ff:ff:ff:ff:ff': not unicast"),
    (validate.mac, "00:00:00:00:00:00", "invalid MAC address '00:00:00:00:00:00': all zeros"),
    (validate.ifname, "", "invalid interface name ''"),
    (validate.ifname, "a" * 16, f"invalid interface name '{'a' * 16}'"),
    (validate.ifname, "br 0", "invalid interface name 'br 0'"),
    (validate.ifname, "../x", "invalid interface name '../x'"),
    (validate.ifname, "a:b", "invalid interface name 'a:b'"),
    (validate.ifname, ".", "invalid interface name '.'"),
    (validate.ifname, "..", "invalid interface name '..'"),
    (validate.listen, "8080", "invalid listen address '8080': want HOST:PORT"),
    (validate.listen, ":8080", "invalid listen address ':8080': want HOST:PORT"),
    (validate.listen, "localhost:8080", "invalid IP address 'localhost'"),
    (validate.listen, "127.0.0.1:0", "invalid port '0': must be 1..65535"),
]


def _id(row):
    return f"{row[0].__name__}-{row[1]!r}"


@pytest.mark.parametrize("fn,text,want", GOOD, ids=[_id(r) for r in GOOD])
def test_good(fn, text, want):
    got = fn(text)
    assert got == want
    assert type(got) is type(want)


@pytest.mark.parametrize("fn,text,msg", BAD, ids=[_id(r) for r in BAD])
def test_bad(fn, text, msg):
    with pytest.raises(ConfigError) as e:
        fn(text)
    assert str(e.value) == msg
    assert "\n" not in str(e.value)
