"""Local learning and MAC/IP route entries end to end, on two hosts built by
hand (tests/floodtopo.py), without etcd: what the agent does is played by
calling the bridge's API as it does (``Bridge.local_macs`` on the tenant's
host, ``Bridge.routes_set`` on the other), and the user's view is the
installed command (``fdb show``, ``neigh show``, ``status``, ``load``).

- a tenant that pings is listed by ``local_macs()`` on its host, with its IP
  (and nothing else);
- ``routes_set`` installs route entries (``fdb show``: flag ``route``), is
  idempotent, and unicast to the routed MAC crosses without a flood; ARP for
  the routed IP is answered on the host (nothing reaches the remote host),
  and with ``load bridge --suppress off`` it floods (``arp_flood``) instead;
- route entries survive a ``load`` upgrade; a static entry wins over a route;
  an empty set removes them; bad input changes nothing;
- an ARP request for a tenant of the same host is kept off the tunnel."""
import pytest

from conftest import built
import floodtopo as ft
from neighframes import arp_request

from bpfnet.errors import ConfigError
from bpfnet.functions.bridge import Bridge
from bpfnet.functions.pins import PinDir

T0, T1 = ft.tenant_mac(0), ft.tenant_mac(1)


@pytest.fixture(scope="module")
def topo():
    yield from built("trl", lambda sim: ft.build(sim, 2))


def bridge(sim, h) -> Bridge:
    """The bridge of host ``h`` as the agent holds it (maps only: no netlink)."""
    return Bridge(PinDir(sim.pin_root, h))


def local_macs(sim, h) -> list:
    b = bridge(sim, h)
    try:
        with b.pins.locked():
            return b.local_macs()
    finally:
        b.close()


def routes_set(sim, h, routes, vni=10) -> dict:
    b = bridge(sim, h)
    try:
        with b.pins.locked():
            return b.routes_set(vni, routes)
    finally:
        b.close()


def route_t1(**kw):
    return {"mac": T1, "remote": ft.underlay(1), "ips": [ft.tenant_ip(1)], "host": "h1", **kw}


def rows(sim, h, what="fdb"):
    return ft.ctl_json(sim, h, what, "show", "--vni", "10")


def timeless(sim, h, what):
    return [{k: v for k, v in r.items() if k != "age_s"} for r in rows(sim, h, what)]


def send_arp(sim, t, n, target):
    """``n`` broadcast ARP requests from tenant t0 for ``target``, as arping
    would; the replies that come back."""
    raw = ft.RawEth(t)
    try:
        for _ in range(n):
            raw.send(arp_request(T0, ft.tenant_ip(0), target))
        return raw.arp_replies(n, wait=1.0)
    finally:
        raw.close()


def test_routes_set_installs_route_entries_idempotently(topo):
    sim, (h0, h1) = topo["sim"], topo["hosts"]
    assert local_macs(sim, h0) == [] and local_macs(sim, h1) == []  # nobody spoke yet
    assert routes_set(sim, h0, [route_t1()]) == {"added": 1, "removed": 0, "moved": 0,
                                                 "skipped": 0}
    assert routes_set(sim, h0, [route_t1()]) == {"added": 0, "removed": 0, "moved": 0,
                                                 "skipped": 0}
    [r] = rows(sim, h0)
    assert (r["mac"], r["remote"], r["route"], r["static"]) == (T1, ft.underlay(1), True, False)
    [n] = rows(sim, h0, "neigh")
    assert (n["ip"], n["mac"], n["route"], n["static"], n["local"]) == \
        (ft.tenant_ip(1), T1, True, False, False)
    _, out, _ = sim.bpfnetctl("fdb", "show", netns_=h0)
    head, line = out.splitlines()
    assert head.split() == ["MAC", "VNI", "PORT", "REMOTE", "RX_PKTS", "TX_PKTS", "AGE_S", "FLAGS"]
    assert line.split()[:4] + line.split()[-1:] == [T1, "10", "bnp10", ft.underlay(1), "route"]
    _, out, _ = sim.bpfnetctl("neigh", "show", netns_=h0)
    assert out.splitlines()[1].split()[:4] == [ft.tenant_ip(1), "10", T1, "route"]


def test_unicast_to_a_routed_mac_never_floods(topo):
    """t0's ARP is answered on h0 (the route's binding) and its echo request
    goes straight to h1: h0 floods nothing. h1 has no route for t0, so t1's
    one ARP request floods there (t0 answers it through the tunnel)."""
    sim, (h0, h1), (t0, t1) = topo["sim"], topo["hosts"], topo["tenants"]
    b0, b1 = ft.counters(sim, h0), ft.counters(sim, h1)
    assert sim.ping(t0, ft.tenant_ip(1), count=1) == 1
    d0, d1 = ft.delta(ft.counters(sim, h0), b0), ft.delta(ft.counters(sim, h1), b1)
    # h0: ARP answered; tx: the echo request, t0's ARP reply; rx: t1's ARP
    # request and echo reply; t0 seen and its IP claimed
    assert d0 == {"arp_reply": 1, "tx": 2, "rx": 2, "local_learn": 1, "local_neigh": 1}
    assert (d1.get("arp_flood"), d1.get("flood"), d1.get("local_learn")) == (1, 1, 1)
    assert local_macs(sim, h0) == [{"vni": 10, "mac": T0, "ips": [ft.tenant_ip(0)]}]
    assert local_macs(sim, h1) == [{"vni": 10, "mac": T1, "ips": [ft.tenant_ip(1)]}]
    [r] = rows(sim, h0)
    assert (r["mac"], r["route"], r["tx_pkts"], r["rx_pkts"]) == (T1, True, 2, 2)


def test_suppression_answers_routed_ips_and_the_switch_turns_it_off(topo):
    sim, (h0, h1), (t0, t1) = topo["sim"], topo["hosts"], topo["tenants"]
    b0, b1, rx1 = ft.counters(sim, h0), ft.counters(sim, h1), ft.rx_packets(sim, t1)
    replies = send_arp(sim, t0, 5, ft.tenant_ip(1))
    assert [(r["sha"], r["spa"], r["tpa"]) for r in replies] == [(T1, ft.tenant_ip(1),
                                                                 ft.tenant_ip(0))] * 5
    assert ft.delta(ft.counters(sim, h0), b0) == {"arp_reply": 5}
    assert ft.delta(ft.counters(sim, h1), b1) == {}      # nothing arrived at h1
    assert ft.rx_packets(sim, t1) == rx1                 # nor at its tenant

    _, out, _ = sim.bpfnetctl("load", "bridge", "--suppress", "off", netns_=h0)
    assert "suppress on -> off" in out
    b0, rx1 = ft.counters(sim, h0), ft.rx_packets(sim, t1)
    replies = send_arp(sim, t0, 5, ft.tenant_ip(1))
    assert [r["sha"] for r in replies] == [T1] * 5       # t1 itself answers now
    d0 = ft.delta(ft.counters(sim, h0), b0)
    assert (d0.get("arp_flood"), d0.get("flood"), d0.get("arp_reply")) == (5, 5, None)
    assert ft.rx_packets(sim, t1) == rx1 + 5
    opts = ft.ctl_json(sim, h0, "config", "show")
    assert opts["bridge"]["suppress"] == "off"
    sim.bpfnetctl("load", "bridge", "--suppress", "on", netns_=h0)
    b0 = ft.counters(sim, h0)
    send_arp(sim, t0, 1, ft.tenant_ip(1))
    assert ft.delta(ft.counters(sim, h0), b0) == {"arp_reply": 1}


def test_route_entries_survive_a_load_upgrade(topo):
    sim, (h0, h1) = topo["sim"], topo["hosts"]
    before = [(r["mac"], r["remote"], r["route"]) for r in rows(sim, h0)]
    assert before == [(T1, ft.underlay(1), True)]
    _, out, _ = sim.bpfnetctl("load", "bridge", netns_=h0)
    assert [(r["mac"], r["remote"], r["route"]) for r in rows(sim, h0)] == before
    assert [(n["ip"], n["route"]) for n in rows(sim, h0, "neigh") if not n["local"]] == \
        [(ft.tenant_ip(1), True)]
    assert routes_set(sim, h0, [route_t1()]) == {"added": 0, "removed": 0, "moved": 0,
                                                 "skipped": 0}


def test_a_static_entry_wins_over_a_route(topo):
    sim, h0 = topo["sim"], topo["hosts"][0]
    sim.bpfnetctl("fdb", "add", T1, "--vni", "10", "--remote", ft.underlay(1), netns_=h0)
    other = route_t1(remote="10.99.0.7", ips=["192.168.0.77"])
    assert routes_set(sim, h0, [other]) == {"added": 0, "removed": 0, "moved": 0, "skipped": 1}
    [r] = rows(sim, h0)
    assert (r["remote"], r["static"], r["route"]) == (ft.underlay(1), True, False)
    assert "192.168.0.77" not in [n["ip"] for n in rows(sim, h0, "neigh")]
    assert routes_set(sim, h0, []) == {"added": 0, "removed": 0, "moved": 0, "skipped": 0}
    assert [r["static"] for r in rows(sim, h0)] == [True]
    sim.bpfnetctl("fdb", "del", T1, "--vni", "10", netns_=h0)


def test_routes_move_and_go(topo):
    sim, h0 = topo["sim"], topo["hosts"][0]
    assert routes_set(sim, h0, [route_t1()])["added"] == 1
    moved = route_t1(remote="10.99.0.7")
    assert routes_set(sim, h0, [moved]) == {"added": 0, "removed": 0, "moved": 1, "skipped": 0}
    assert [(r["remote"], r["route"]) for r in rows(sim, h0)] == [("10.99.0.7", True)]
    assert routes_set(sim, h0, []) == {"added": 0, "removed": 1, "moved": 0, "skipped": 0}
    assert rows(sim, h0) == []
    assert [n for n in rows(sim, h0, "neigh") if n["route"]] == []


def test_a_local_claim_wins_over_a_route_binding(topo):
    """t0 (a tenant of h0) claims 192.168.0.1: a route that says another
    MAC has it installs its FDB entry but not that binding."""
    sim, h0 = topo["sim"], topo["hosts"][0]
    other = {"mac": "02:00:00:0a:00:44", "remote": ft.underlay(1), "ips": [ft.tenant_ip(0)],
             "host": "h1"}
    assert routes_set(sim, h0, [other])["added"] == 1
    [n] = [n for n in rows(sim, h0, "neigh") if n["ip"] == ft.tenant_ip(0)]
    assert (n["mac"], n["local"], n["route"]) == (T0, True, False)
    assert routes_set(sim, h0, []) == {"added": 0, "removed": 1, "moved": 0, "skipped": 0}
    assert [n["local"] for n in rows(sim, h0, "neigh") if n["ip"] == ft.tenant_ip(0)] == [True]


@pytest.mark.parametrize("bad,msg", [
    ({"mac": "02:zz", "remote": "10.99.0.2"}, "route "),
    ({"mac": T1, "remote": "fd00::2"}, "not of the underlay's address family"),
    ({"mac": "01:00:5e:00:00:01", "remote": "10.99.0.2"}, "not a unicast MAC"),
    ({"mac": T1, "remote": "10.99.0.2", "ips": ["224.0.0.1"]}, "not a unicast tenant address"),
])
def test_bad_routes_change_nothing(topo, bad, msg):
    sim, h0 = topo["sim"], topo["hosts"][0]
    routes_set(sim, h0, [route_t1()])
    before = timeless(sim, h0, "fdb"), timeless(sim, h0, "neigh")
    with pytest.raises(ConfigError, match=msg):
        routes_set(sim, h0, [{"mac": "02:00:00:0a:00:44", "remote": "10.99.0.4"}, bad])
    assert (timeless(sim, h0, "fdb"), timeless(sim, h0, "neigh")) == before


def test_vni_del_removes_route_entries(topo):
    sim, h0 = topo["sim"], topo["hosts"][0]
    routes_set(sim, h0, [route_t1()])
    sim.bpfnetctl("vni", "del", "10", netns_=h0)
    sim.bpfnetctl("vni", "add", "10", "--bridge", "br10", netns_=h0)
    assert rows(sim, h0) == [] and rows(sim, h0, "neigh") == []
    assert local_macs(sim, h0) == []


def test_arp_for_a_tenant_of_the_same_host_stays_off_the_tunnel(topo):
    """A second tenant on h0 asks for t0, a tenant of h0 (known: its frames
    crossed the port, its IP is a local binding): h0's bridge delivers the
    request to t0, and the port keeps it off the tunnel (``arp_local``), as
    the kernel's neigh_suppress does; nothing reaches h1."""
    sim, (h0, h1), (t0, t1) = topo["sim"], topo["hosts"], topo["tenants"]
    ft.flush_neighbours(sim, t0)  # so that t0 claims its IP in an ARP request
    assert sim.ping(t0, ft.tenant_ip(1), count=1) == 1
    t0b = sim.tenant(h0, "t0b", "192.168.0.11/24", "br10", mac="02:00:00:0a:00:11", mtu=1400)
    b0, b1, rx1 = ft.counters(sim, h0), ft.counters(sim, h1), ft.rx_packets(sim, t1)
    assert sim.ping(t0b, ft.tenant_ip(0), count=3) == 3
    # t0b's request: seen (its MAC and IP are h0's tenants now), not tunnelled
    assert ft.delta(ft.counters(sim, h0), b0) == {"arp_local": 1, "local_learn": 1,
                                                  "local_neigh": 1}
    assert ft.delta(ft.counters(sim, h1), b1) == {}
    assert ft.rx_packets(sim, t1) == rx1
    assert {"vni": 10, "mac": "02:00:00:0a:00:11", "ips": ["192.168.0.11"]} in local_macs(sim, h0)


@pytest.fixture(scope="module")
def topo6():
    yield from built("trl6", lambda sim: ft.build(sim, 2, ipv6=True))


def test_local_macs_list_ipv6_claims(topo6):
    """ping6: t0's NS (source link-layer option) claims fd10::1 on h0, t1's
    NA (target link-layer option) fd10::2 on h1."""
    sim, (h0, h1), (t0, t1) = topo6["sim"], topo6["hosts"], topo6["tenants"]
    assert sim.ping(t0, ft.tenant_ip6(1), count=1) == 1
    assert local_macs(sim, h0) == [{"vni": 10, "mac": T0, "ips": [ft.tenant_ip6(0)]}]
    assert local_macs(sim, h1) == [{"vni": 10, "mac": T1, "ips": [ft.tenant_ip6(1)]}]
    assert sim.ping(t0, ft.tenant_ip(1), count=1) == 1  # and ARP adds the IPv4 address
    assert local_macs(sim, h0) == [{"vni": 10, "mac": T0,
                                    "ips": [ft.tenant_ip(0), ft.tenant_ip6(0)]}]
