"""The physical-to-virtual gateway end to end: three clients on three VLANs
of one trunk, three workers with the same IP.

  c1 10.0.0.11          c2 10.0.0.12          c3 10.0.0.13
  VLAN 10 (802.1Q)      VLAN 20 (802.1Q)      VLAN 30 (802.1ad)
  MAC 02:..:10:01       MAC 02:..:10:02       MAC 02:..:10:03
        \\                    |                    /
   sw:  sw0 (VLAN-unaware Linux bridge, the switch: carries the tags)
                             | trunk
   gw:  trunk0 [gw_phys2virt]      w1        w2        w3   [gw_virt2phys]
                                    |         |         |
                          wk1 10.0.0.1  wk2 10.0.0.1  wk3 10.0.0.1
                          MAC 02:..:20:01  ..:20:02     ..:20:03

Client VLANs are real 802.1Q/802.1ad subinterfaces where the kernel has
8021q (the VM run on Debian's 6.1), otherwise the test-side BPF tagger
(tests/progs/vlan_tagger.bpf.c) on the client's veth: it pushes the tag on
egress and on ingress pops it or drops other VLANs, so a reply that comes
back on the wrong VLAN never reaches the client. IPv6 is off everywhere, so
the only traffic is what the tests send and the counters are exact.
"""
import json
import os
import subprocess

import pytest

from conftest import built, need_root, snapshot

from bpfnet.demos import gateway as demo

ICMP_FRAME = 14 + 20 + 8 + 56   # ping's default echo, untagged Ethernet


def try_8021q():
    """Real 802.1Q devices where possible: load the module if it exists."""
    subprocess.run(["modprobe", "8021q"], capture_output=True, timeout=30, check=False)


@pytest.fixture(scope="module")
def topo():
    need_root()
    try_8021q()
    yield from built("tg", demo.build)


def ctl(topo, *argv):
    return topo["sim"].bpfnetctl(*argv, netns_=topo["gw"], check=False)


def show(topo) -> dict:
    code, out, err = ctl(topo, "client", "show", "--json")
    assert code == 0, err
    return {r["mac"]: r for r in json.loads(out)}


def counters(topo) -> dict:
    _, out, _ = ctl(topo, "status", "--json")
    return json.loads(out)["functions"]["gateway"]["counters"]


def neigh(sim, ns, ip):
    with sim.ipr(ns) as ipr:
        for n in ipr.get_neighbours(dst=ip):
            return n.get_attr("NDA_LLADDR")
    return None


def neigh_ips(sim, ns):
    with sim.ipr(ns) as ipr:
        return sorted(n.get_attr("NDA_DST") for n in ipr.get_neighbours(family=2))


def test_each_client_reaches_only_its_own_worker(topo):
    print(f"client VLANs: {topo['mode']}")   # 8021q subinterfaces or the BPF tagger
    sim = topo["sim"]
    for c, w in zip(topo["clients"], topo["workers"]):
        assert sim.ping_until(c["ns"], demo.WORKER_IP, tries=5), c["ns"]
        assert sim.ping(c["ns"], demo.WORKER_IP, count=3) == 3
        # the same IP everywhere: ARP says which worker answered
        assert neigh(sim, c["ns"], demo.WORKER_IP) == w["mac"]
    for c, w in zip(topo["clients"], topo["workers"]):
        # each worker heard from its own client and from nobody else
        assert neigh_ips(sim, w["ns"]) == [c["ip"]]
    rows = show(topo)
    for c in topo["clients"]:
        r = rows[c["mac"]]
        assert set(r) == {"mac", "worker", "vlan", "proto", "pcp", "rx_pkts", "rx_bytes",
                          "tx_pkts", "tx_bytes", "age_s"}
        assert (r["vlan"], r["pcp"]) == (c["vlan"], 0)
        assert r["proto"] == ("802.1ad" if c["proto"] == demo.ETH_P_8021AD else "802.1Q")
        assert r["rx_pkts"] >= 4 and r["tx_pkts"] >= 4


def pin_all(topo):
    """Permanent ARP entries both ways for every client and its worker."""
    sim = topo["sim"]
    for c, w in zip(topo["clients"], topo["workers"]):
        sim.pin_neigh(c["ns"], "eth0", demo.WORKER_IP, w["mac"])
        sim.pin_neigh(w["ns"], "eth0", c["ip"], c["mac"])


def test_counters_are_exact_and_replies_come_on_the_clients_vlan(topo):
    sim = topo["sim"]
    for c in topo["clients"]:
        assert sim.ping_until(c["ns"], demo.WORKER_IP, tries=5)
    pin_all(topo)
    before, n0 = show(topo), counters(topo)
    tags0 = [c["tagger"].counts() if c["tagger"] else None for c in topo["clients"]]
    n = 5
    for c in topo["clients"]:
        # a reply on another VLAN or TPID never reaches the client
        assert sim.ping(c["ns"], demo.WORKER_IP, count=n, interval=0.05) == n
    after, n1 = show(topo), counters(topo)
    for c in topo["clients"]:
        b, a = before[c["mac"]], after[c["mac"]]
        assert a["rx_pkts"] - b["rx_pkts"] == n
        assert a["tx_pkts"] - b["tx_pkts"] == n
        assert a["rx_bytes"] - b["rx_bytes"] == n * ICMP_FRAME
        assert a["tx_bytes"] - b["tx_bytes"] == n * ICMP_FRAME
    assert (n1["rx"] - n0["rx"], n1["tx"] - n0["tx"]) == (3 * n, 3 * n)
    assert n1["learn"] == n0["learn"] == 3
    assert n1["move"] == n0["move"]
    assert {k: v for k, v in n1.items() if k.startswith("drop_") and v} == {}
    if topo["mode"] == "bpf":
        for c, t0 in zip(topo["clients"], tags0):
            t1 = c["tagger"].counts()
            assert (t1["pushed"] - t0["pushed"], t1["popped"] - t0["popped"]) == (n, n)


def move(topo, i, vlan):
    """Client i moves to another VLAN (same MAC, same IP)."""
    c = topo["clients"][i]
    sim = topo["sim"]
    if c["tagger"]:
        c["tagger"].set(vlan, c["proto"])
    else:
        with sim.ipr(c["ns"]) as ipr:
            ipr.link("del", index=ipr.link_lookup(ifname="eth0")[0])
        demo.add_vlan_dev(sim, c["ns"], vlan, c["proto"], c["mac"], c["ip"])
        sim.pin_neigh(c["ns"], "eth0", demo.WORKER_IP, topo["workers"][i]["mac"])
    c["vlan"] = vlan


def test_a_client_that_moves_vlan_is_followed_at_once(topo):
    sim = topo["sim"]
    c = topo["clients"][0]
    moves = counters(topo)["move"]
    try:
        move(topo, 0, 40)
        # the first frame on VLAN 40 relearns, so every reply comes on VLAN 40
        assert sim.ping(c["ns"], demo.WORKER_IP, count=3, interval=0.05) == 3
        r = show(topo)[c["mac"]]
        assert r["vlan"] == 40
        assert counters(topo)["move"] == moves + 1
    finally:
        move(topo, 0, 10)
    assert sim.ping_until(c["ns"], demo.WORKER_IP, tries=5)
    assert show(topo)[c["mac"]]["vlan"] == 10


def test_client_del_stops_steering_and_detaches(topo):
    sim = topo["sim"]
    c, w = topo["clients"][2], topo["workers"][2]
    pin_all(topo)   # no ARP: the counts below are exactly the pings
    assert ctl(topo, "client", "del", c["mac"])[0] == 0
    try:
        st = json.loads(ctl(topo, "status", "--json")[1])["functions"]["gateway"]
        assert st["clients"] == 2
        assert w["port"] not in {a["device"] for a in st["attach"]}
        n0 = counters(topo)
        # its frames now pass to the gateway's stack, which has no 10.0.0.1
        assert sim.ping(c["ns"], demo.WORKER_IP, count=2, interval=0.05, deadline=2) == 0
        n1 = counters(topo)
        assert n1["pass_unknown"] - n0["pass_unknown"] >= 2
        assert n1["rx"] == n0["rx"]
        assert c["mac"] not in show(topo)
        assert ctl(topo, "client", "del", c["mac"])[0] == 2
    finally:
        assert ctl(topo, "client", "add", c["mac"], "--worker", w["port"])[0] == 0
    assert sim.ping(c["ns"], demo.WORKER_IP, count=2, interval=0.05) == 2
    r = show(topo)[c["mac"]]
    assert (r["vlan"], r["rx_pkts"], r["tx_pkts"]) == (c["vlan"], 2, 2)   # counters start afresh


def test_a_client_add_killed_half_way_is_cleared(topo):
    """A `client add` killed after writing its intent leaves a pending entry:
    the trunk does not steer that MAC, `client show` does not list it, and
    the next `client add` clears it (or `client del`, or unload)."""
    from bpfnet import abi
    from bpfnet.abi import GwClientKey, GwClientVal, mac_pack
    from bpfnet.maps import Map
    sim = topo["sim"]
    c, w = topo["clients"][2], topo["workers"][2]
    pin_all(topo)
    assert ctl(topo, "client", "del", c["mac"])[0] == 0
    try:
        path = os.path.join(sim.pin_root, topo["gw"], "gateway", "gw_clients")
        with Map.pinned(path, GwClientKey, GwClientVal) as m:
            m[GwClientKey(mac=mac_pack(c["mac"]))] = GwClientVal(
                worker=sim.idx(topo["gw"], w["port"]), flags=abi.GW_CLIENT_F_PENDING)
        n0 = counters(topo)
        assert sim.ping(c["ns"], demo.WORKER_IP, count=2, interval=0.05, deadline=2) == 0
        assert counters(topo)["pass_unknown"] - n0["pass_unknown"] >= 2
        assert c["mac"] not in show(topo)
        st = json.loads(ctl(topo, "status", "--json")[1])["functions"]["gateway"]
        assert (st["clients"], st["pending"]) == (2, 1)
    finally:
        code, _, err = ctl(topo, "client", "add", c["mac"], "--worker", w["port"])
        assert code == 0, err
    st = json.loads(ctl(topo, "status", "--json")[1])["functions"]["gateway"]
    assert (st["clients"], st["pending"]) == (3, 0)
    assert sim.ping(c["ns"], demo.WORKER_IP, count=2, interval=0.05) == 2


@pytest.mark.parametrize("argv,msg", [
    (("client", "add", "02:00:00:00:10:01", "--worker", "w1"), "already exists"),
    (("client", "add", "02:00:00:00:10:09", "--worker", "w1"), "already serves client"),
    (("client", "add", "02:00:00:00:10:09", "--worker", "nosuch0"), "does not exist"),
    (("client", "add", "02:00:00:00:10:09", "--worker", "trunk0"), "is the trunk"),
    (("client", "add", "02:00:00:00:10:09", "--worker", "lo"), "not an Ethernet device"),
    (("client", "add", "ff:ff:ff:ff:ff:ff", "--worker", "w1"), "not unicast"),
    (("client", "add", "02:00:00:00:10"), "invalid MAC"),
    (("client", "add", "02:00:00:00:10:09"), "--worker"),
    (("client", "del", "02:00:00:00:10:09"), "is not configured"),
    (("load", "gateway", "--trunk", "w1"),
     "--trunk: gateway is loaded with trunk trunk0; `bpfnetctl unload gateway` is needed to change it"),
])
def test_bad_input_exits_2_and_changes_nothing(topo, argv, msg):
    before = show(topo)
    code, _, err = ctl(topo, *argv)
    assert code == 2
    assert err.startswith("bpfnetctl: error:") and msg in err, err
    assert err.count("\n") == 1
    after = show(topo)
    assert set(after) == set(before)
    assert [(r["worker"], r["vlan"]) for r in after.values()] == \
        [(r["worker"], r["vlan"]) for r in before.values()]


def test_second_load_upgrades_in_place_keeping_clients(topo):
    sim = topo["sim"]
    before = show(topo)
    code, out, _ = ctl(topo, "load", "gateway")
    assert code == 0 and "upgraded" in out
    code, out, _ = ctl(topo, "load", "gateway", "--trunk", "trunk0")
    assert code == 0 and "upgraded" in out
    after = show(topo)
    assert {m: (r["worker"], r["vlan"]) for m, r in after.items()} == \
        {m: (r["worker"], r["vlan"]) for m, r in before.items()}
    assert all(after[m]["rx_pkts"] >= before[m]["rx_pkts"] for m in before)
    for c in topo["clients"]:
        assert sim.ping(c["ns"], demo.WORKER_IP, count=2, interval=0.05) == 2
    st = json.loads(ctl(topo, "status", "--json")[1])["functions"]["gateway"]
    hooks = {(a["device"], a["hook"]): a["program"] for a in st["attach"]}
    assert hooks == {("trunk0", "ingress"): "gw_phys2virt", ("w1", "ingress"): "gw_virt2phys",
                     ("w2", "ingress"): "gw_virt2phys", ("w3", "ingress"): "gw_virt2phys"}
    assert st["trunk"] == "trunk0" and st["clients"] == 3
    assert st["maps"]["gw_clients"] == {"entries": 3, "max_entries": 4096}


# --- load and unload, on a one-client setup -----------------------------------

def gwctl(sim, ns, *argv):
    """bpfnetctl in-process: the same main(), exit codes and one-line errors
    as the process (tests/netns/test_bridge.py runs that), without the ~20 s
    a Python start with pyroute2 costs in the VM."""
    return sim.bpfnetctl(*argv, netns_=ns, check=False)


@pytest.fixture
def one(sim):
    try_8021q()
    return demo.build(sim, clients=demo.CLIENTS[:1], provision=False)


@pytest.mark.parametrize("attach,user_clsact", [("auto", False), ("tc", False), ("tc", True)],
                         ids=["auto", "tc", "tc-user-clsact"])
def test_unload_leaves_the_users_devices_as_they_were(sim, one, monkeypatch, attach, user_clsact):
    """The trunk and the worker port are the user's: unload takes bpfnet's
    programs and pins away, and a clsact qdisc only if bpfnet added it."""
    if attach == "tc":
        monkeypatch.setenv("BPFNET_ATTACH", "tc")
    else:
        monkeypatch.delenv("BPFNET_ATTACH", raising=False)
    gw = one["gw"]
    if user_clsact:
        with sim.ipr(gw) as ipr:
            for name in ("trunk0", "w1"):
                ipr.tc("add", "clsact", ipr.link_lookup(ifname=name)[0])
    before = snapshot(sim, gw)
    demo.provision_gateway(sim, one)
    c = one["clients"][0]
    assert sim.ping_until(c["ns"], demo.WORKER_IP, tries=5)
    if attach == "tc":
        with sim.ipr(gw) as ipr:
            assert {q.get_attr("TCA_KIND") for q in ipr.get_qdiscs()} >= {"clsact"}
    code, out, err = gwctl(sim, gw, "unload", "gateway")
    assert (code, out.strip()) == (0, "gateway: unloaded"), err
    assert snapshot(sim, gw) == before
    assert not os.path.exists(os.path.join(sim.pin_root, gw, "gateway"))
    # nothing steers any more: the client's tagged frames reach no worker
    assert sim.ping(c["ns"], demo.WORKER_IP, count=1, deadline=1) == 0
    code, _, err = gwctl(sim, gw, "client", "show")
    assert code == 2 and "not loaded" in err


def test_a_load_killed_half_way_is_cleared(sim, one, monkeypatch):
    """Programs are pinned last: without them the gateway is "partial" (a
    first load killed half-way). unload clears it, filters included (tc
    mode: they outlive the pins), and load starts afresh."""
    monkeypatch.setenv("BPFNET_ATTACH", "tc")
    gw = one["gw"]
    before = snapshot(sim, gw)
    d = os.path.join(sim.pin_root, gw, "gateway")

    def kill_half_way():
        demo.provision_gateway(sim, one)
        for prog in ("gw_phys2virt", "gw_virt2phys"):
            os.unlink(os.path.join(d, prog))
        code, _, err = gwctl(sim, gw, "client", "show")
        assert code == 2 and "not loaded" in err

    kill_half_way()
    assert gwctl(sim, gw, "unload", "gateway")[0] == 0
    assert snapshot(sim, gw) == before
    kill_half_way()
    code, out, err = gwctl(sim, gw, "load", "gateway", "--trunk", "trunk0")
    assert (code, out.strip()) == (0, "gateway: loaded on trunk trunk0"), err
    assert json.loads(gwctl(sim, gw, "client", "show", "--json")[1]) == []
    assert gwctl(sim, gw, "unload", "gateway")[0] == 0
    assert snapshot(sim, gw) == before


def test_failed_load_leaves_nothing(sim, one):
    gw = one["gw"]
    before = snapshot(sim, gw)
    for argv in (("load", "gateway"), ("load", "gateway", "--trunk", "nosuch0"),
                 ("load", "gateway", "--trunk", "lo"),
                 ("client", "add", one["clients"][0]["mac"], "--worker", "w1")):
        code, _, err = gwctl(sim, gw, *argv)
        assert code == 2, (argv, err)
        assert snapshot(sim, gw) == before

