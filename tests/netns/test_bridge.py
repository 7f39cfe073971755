"""The distributed bridge end to end: three hosts, two VNIs, one tenant
subnet in both VNIs.

     h0v10 .1  h0v20 .1      h1v10 .2  h1v20 .2      h2v10 .3  h2v20 .3
        br10  br20              br10  br20              br10  br20
       bnp10 bnp20             bnp10 bnp20             bnp10 bnp20
        vxlan0 (external)       vxlan0                  vxlan0
        eth0 10.99.0.1          eth0 10.99.0.2          eth0 10.99.0.3
           +--------------- fabric: sw0 (L2, 239.1.1.1) ------+

Tenants are 192.168.0.<host+1>/24 in both VNIs, MACs 02:00:00:<vni>:00:<host+1>.
"""
import json
import os
import subprocess

import pytest

from conftest import (BPFNETCTL, LONE_IP, LONE_MAC, bad_input_failures, built, ctl,
                      lone_tenant, need_tool, pings_lost, run_cli, snapshot, users_devices)

from bpfnet.demos import bridge as demo


@pytest.fixture(scope="module")
def topo():
    yield from built("tb", demo.build)


def test_every_pair_of_hosts_talks_in_each_vni(topo):
    assert pings_lost(topo, count=3) == (12, [])


def test_vnis_stay_isolated_with_the_same_subnet(topo):
    sim = topo["sim"]
    lone_tenant(topo)  # only in VNI 20, on h1; h0's VNI 20 tenant reaches it
    assert sim.ping(topo["tenants"][(0, 10)], LONE_IP, count=3, deadline=4) == 0
    # a VNI 10 tenant's MAC never shows up in VNI 20 and vice versa
    code, out, _ = ctl(topo, "fdb", "show", "--json", "--vni", "10")
    assert code == 0
    macs10 = {r["mac"] for r in json.loads(out)}
    assert LONE_MAC not in macs10
    assert all(r["vni"] == 10 and r["port"] == "bnp10" for r in json.loads(out))


def test_learning_shows_in_fdb_show_json(topo):
    sim = topo["sim"]
    assert sim.ping_until(topo["tenants"][(0, 10)], demo.tenant_ip(1))
    assert sim.ping_until(topo["tenants"][(0, 10)], demo.tenant_ip(2))
    code, out, _ = ctl(topo, "fdb", "show", "--json", "--vni", "10")
    assert code == 0
    rows = {r["mac"]: r for r in json.loads(out)}
    r = rows[demo.tenant_mac(1, 10)]
    assert set(r) == {"mac", "vni", "port", "remote", "rx_pkts", "tx_pkts", "age_s", "static",
                      "route"}
    assert r["static"] is False and r["route"] is False
    assert (r["vni"], r["port"], r["remote"]) == (10, "bnp10", "10.99.0.2")
    assert r["rx_pkts"] > 0 and r["tx_pkts"] > 0
    assert 0 <= r["age_s"] < 300
    assert rows[demo.tenant_mac(2, 10)]["remote"] == "10.99.0.3"


def test_pinned_maps_dump_with_named_fields(topo):
    need_tool("bpftool")
    sim = topo["sim"]
    assert sim.ping_until(topo["tenants"][(0, 10)], demo.tenant_ip(2))
    d = os.path.join(sim.pin_root, topo["hosts"][0], "bridge")
    out = subprocess.run(["bpftool", "-j", "map", "dump", "pinned", os.path.join(d, "br_fdb")],
                         check=True, capture_output=True, text=True).stdout
    entries = json.loads(out)
    assert entries, "no FDB entries"
    e = entries[0]["formatted"]  # bpftool -j puts the BTF-named view here
    assert set(e["key"]) == {"mac", "pad", "port"}
    assert {"remote", "vni", "rx_pkts", "tx_pkts", "seen_ns"} <= set(e["value"])
    macs = {":".join(f"{b:02x}" for b in x["formatted"]["key"]["mac"]) for x in entries}
    assert demo.tenant_mac(2, 10) in macs
    stats = json.loads(subprocess.run(["bpftool", "-j", "map", "dump", "pinned",
                                       os.path.join(d, "br_stats")],
                                      check=True, capture_output=True, text=True).stdout)
    assert {"rx", "tx", "flood", "drop_unknown_vni"} <= set(stats[0]["formatted"]["values"][0]["value"])
    plain = subprocess.run(["bpftool", "map", "dump", "pinned", os.path.join(d, "br_fdb")],
                           check=True, capture_output=True, text=True).stdout
    assert '"remote":' in plain and '"mac":' in plain
    for name in ("br_cfg", "br_vni", "br_port", "br_allow", "bridge_ingress", "bridge_egress"):
        assert os.path.exists(os.path.join(d, name))
        st = os.stat(os.path.join(d, name))
        assert (st.st_mode & 0o777, st.st_uid) == (0o600, 0)
    assert os.stat(d).st_mode & 0o777 == 0o700


def test_mac_move_is_followed_at_once(topo):
    sim = topo["sim"]
    mac, ip = "02:00:00:0a:00:77", "192.168.0.77"
    sim.tenant(topo["hosts"][1], "mv1", f"{ip}/24", "br10", mac=mac)
    src = topo["tenants"][(0, 10)]
    assert sim.ping_until(src, ip)
    code, out, _ = ctl(topo, "fdb", "show", "--json", "--vni", "10")
    assert {r["mac"]: r["remote"] for r in json.loads(out)}[mac] == "10.99.0.2"
    # the tenant moves to h2: its old namespace goes, a new one with the same MAC
    from pyroute2 import netns
    netns.remove(f"{sim.prefix}-mv1")
    sim.namespaces.remove(f"{sim.prefix}-mv1")
    moved = sim.tenant(topo["hosts"][2], "mv2", f"{ip}/24", "br10", mac=mac)
    sim.ping(moved, demo.tenant_ip(0), count=1, deadline=2)  # it speaks first, as a VM would
    assert sim.ping(src, ip, count=3) == 3
    code, out, _ = ctl(topo, "fdb", "show", "--json", "--vni", "10")
    assert {r["mac"]: r["remote"] for r in json.loads(out)}[mac] == "10.99.0.3"
    code, out, _ = ctl(topo, "status", "--json")
    assert json.loads(out)["functions"]["bridge"]["counters"]["move"] >= 1


def test_second_load_upgrades_and_keeps_map_state(topo):
    sim = topo["sim"]
    assert sim.ping_until(topo["tenants"][(0, 10)], demo.tenant_ip(1))
    _, before, _ = ctl(topo, "fdb", "show", "--json")
    _, st_before, _ = ctl(topo, "status", "--json")
    code, out, _ = ctl(topo, "load", "bridge")
    assert code == 0 and "upgraded" in out
    _, after, _ = ctl(topo, "fdb", "show", "--json")
    _, st_after, _ = ctl(topo, "status", "--json")
    key = lambda rows: {(r["mac"], r["vni"]): r["rx_pkts"] for r in json.loads(rows)}  # noqa: E731
    b, a = key(before), key(after)
    assert set(b) <= set(a)
    assert all(a[k] >= b[k] for k in b)
    cb = json.loads(st_before)["functions"]["bridge"]["counters"]
    ca = json.loads(st_after)["functions"]["bridge"]["counters"]
    assert ca["rx"] >= cb["rx"] > 0
    assert sim.ping(topo["tenants"][(0, 10)], demo.tenant_ip(2), count=3) == 3


def test_vni_show_and_status(topo):
    code, out, _ = ctl(topo, "vni", "show", "--json")
    rows = json.loads(out)
    assert [(r["vni"], r["bridge"], r["port"], r["group"]) for r in rows] == \
        [(10, "br10", "bnp10", "239.1.1.1"), (20, "br20", "bnp20", "239.1.1.1")]
    code, out, _ = ctl(topo, "status", "--json")
    st = json.loads(out)["functions"]["bridge"]
    hooks = {(a["device"], a["hook"]): a["program"] for a in st["attach"]}
    assert hooks == {("vxlan0", "ingress"): "bridge_ingress", ("bnp10", "egress"): "bridge_egress",
                     ("bnp20", "egress"): "bridge_egress"}
    assert st["maps"]["br_fdb"]["max_entries"] == 65536
    assert st["maps"]["br_vni"]["entries"] == 2


def test_fdb_flush(topo):
    sim = topo["sim"]
    assert sim.ping_until(topo["tenants"][(0, 20)], demo.tenant_ip(1))
    code, out, _ = ctl(topo, "fdb", "flush", "--vni", "20")
    assert code == 0
    _, out, _ = ctl(topo, "fdb", "show", "--json")
    assert {r["vni"] for r in json.loads(out)} <= {10}
    assert sim.ping(topo["tenants"][(0, 20)], demo.tenant_ip(1), count=2) == 2  # relearned


# --- unload and bad input, on a one-host setup ---------------------------------

# ``host``: one host on a fabric (conftest)
cli = run_cli


def test_unload_leaves_no_pin_filter_or_device(host):
    sim, h = host
    before = snapshot(sim, h)
    assert cli(sim, h, "load", "bridge")[0] == 0
    assert cli(sim, h, "vni", "add", "10", "--bridge", "br10")[0] == 0
    assert cli(sim, h, "vni", "add", "20", "--bridge", "br20", "--allow", "10.99.0.2")[0] == 0
    mid = snapshot(sim, h)
    assert mid != before
    code, out, err = cli(sim, h, "unload", "bridge")
    assert (code, err) == (0, "")
    assert snapshot(sim, h) == before
    assert not os.path.exists(os.path.join(sim.pin_root, h))


def test_vni_del_removes_its_port_bridge_and_entries(host):
    sim, h = host
    before = snapshot(sim, h)
    assert cli(sim, h, "load", "bridge")[0] == 0
    assert cli(sim, h, "vni", "add", "10", "--bridge", "br10")[0] == 0
    with_10 = snapshot(sim, h)
    assert cli(sim, h, "vni", "add", "20", "--bridge", "br20", "--allow", "10.99.0.2")[0] == 0
    code, out, err = cli(sim, h, "vni", "del", "20")
    assert (code, out, err) == (0, "vni 20: deleted\n", "")
    assert snapshot(sim, h) == with_10  # port, bridge, link and nothing else gone
    d = os.path.join(sim.pin_root, h, "bridge")
    dump = subprocess.run(["bpftool", "-j", "map", "dump", "pinned", os.path.join(d, "br_allow")],
                          check=True, capture_output=True, text=True).stdout
    assert json.loads(dump) == []  # its allow list went with it
    code, out, _ = cli(sim, h, "vni", "show", "--json")
    assert [r["vni"] for r in json.loads(out)] == [10]
    assert cli(sim, h, "vni", "add", "20", "--bridge", "br20")[0] == 0  # and it can come back
    assert cli(sim, h, "unload", "bridge")[0] == 0
    assert snapshot(sim, h) == before


def test_unload_keeps_a_users_bridge_and_vxlan(host):
    sim, h = host
    users_devices(sim, h)
    before = snapshot(sim, h)
    assert cli(sim, h, "load", "bridge", "--device", "vx9")[0] == 0
    assert cli(sim, h, "vni", "add", "10", "--bridge", "mybr")[0] == 0
    assert cli(sim, h, "unload", "bridge")[0] == 0
    after = snapshot(sim, h)
    assert after.links == before.links  # the user's devices stay, ours are gone
    assert after.pins == [] and after.tcx == before.tcx


BAD = [
    # (argv, message fragment) -- every one exits 2 with one line and changes nothing
    (["vni", "add", "0", "--bridge", "br0"], "invalid VNI '0'"),
    (["vni", "add", "16777216", "--bridge", "br0"], "invalid VNI '16777216'"),
    (["vni", "add", "ten", "--bridge", "br0"], "invalid VNI 'ten'"),
    (["vni", "add", "10"], "--bridge"),
    (["vni", "add", "10", "--bridge", "a-very-long-bridge-name"], "invalid interface name"),
    (["vni", "add", "10", "--bridge", "br/0"], "invalid interface name"),
    (["vni", "add", "10", "--bridge", "br10", "--allow", "10.0.0.300"], "invalid IP address '10.0.0.300'"),
    (["vni", "add", "10", "--bridge", "br10", "--allow", "239.1.1.1"], "invalid unicast IP"),
    (["vni", "add", "10", "--bridge", "br10", "--allow", "fd00::1"], "address family"),
    (["vni", "add", "10", "--bridge", "eth0"], "is not a bridge"),
    (["vni", "add", "5", "--bridge", "br5"], "VNI 5 already exists"),
    (["vni", "del", "99"], "VNI 99 is not configured"),
    (["fdb", "show", "--vni", "99"], "VNI 99 is not configured"),
    (["fdb", "flush", "--vni", "99"], "VNI 99 is not configured"),
    (["load", "bridge", "--group", "10.0.0.1"], "not a multicast address"),
    (["load", "bridge", "--group", "239.1.1.2"],
     "--group: bridge is loaded with group 239.1.1.1; `bpfnetctl unload bridge` is needed to change it"),
    (["load", "bridge", "--port", "0"], "invalid port '0'"),
    (["load", "bridge", "--port", "70000"], "invalid port '70000'"),
    (["load", "bridge", "--device", "vx 0"], "invalid interface name"),
    (["load", "bridge", "--local", "1.2.3"], "invalid IP address"),
    (["load", "bridge", "--ageing", "-5"], "invalid seconds"),
    (["load", "nosuch"], "invalid choice"),
    (["unload", "mesh"], "mesh is not loaded"),
    (["frobnicate"], "invalid choice"),
]


def test_bad_input_exits_2_with_one_line_and_changes_nothing(host):
    sim, h = host
    assert cli(sim, h, "load", "bridge")[0] == 0
    assert cli(sim, h, "vni", "add", "5", "--bridge", "br5")[0] == 0
    assert bad_input_failures(sim, h, BAD, cli) == []


def test_bad_input_before_load(host):
    sim, h = host
    before = snapshot(sim, h)
    for argv, frag in [
        (["load", "bridge", "--underlay", "nosuch0"], "device 'nosuch0' does not exist"),
        (["load", "bridge", "--local", "10.99.0.9"], "is not an address of eth0"),
        (["load", "bridge", "--local", "fd00::1"], "different families"),
        (["vni", "add", "10", "--bridge", "br10"], "bridge is not loaded"),
        (["fdb", "show"], "bridge is not loaded"),
    ]:
        code, out, err = cli(sim, h, *argv)
        assert code == 2, (argv, err)
        assert err.count("\n") == 1 and frag in err, (argv, err)
        assert snapshot(sim, h) == before, argv
    for root in ("/tmp", "/proc/bpfnet"):  # not bpffs: refused before anything
        r = subprocess.run([BPFNETCTL, "--pin-root", root, "--netns", h, "load", "bridge"],
                           capture_output=True, text=True)
        assert r.returncode == 2, r.stderr
        assert r.stderr == f"bpfnetctl: error: load bridge: pin root {root} is not on a bpf filesystem\n"
        assert snapshot(sim, h) == before
    r = subprocess.run([BPFNETCTL, "--pin-root", sim.pin_root, "--netns", "bpfnet-no-such-ns",
                        "status"], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr == "bpfnetctl: error: status: network namespace 'bpfnet-no-such-ns' does not exist\n"


@pytest.mark.parametrize("function", ["bridge", "mesh"])
def test_no_default_route_asks_for_underlay(sim, function):
    ns = sim.ns("lonely")
    code, _, err = cli(sim, ns, "load", function)
    assert code == 2
    assert "no default route" in err and "--underlay" in err
    assert not os.path.exists(os.path.join(sim.pin_root, ns))


def test_verbose_shows_traceback(host):
    sim, h = host
    code, _, err = cli(sim, h, "-v", "vni", "del", "7")
    assert code == 2
    assert "Traceback" in err and err.rstrip().endswith("bpfnetctl: error: vni del: bridge is not loaded in namespace " + h)


def test_counters_are_exact(topo):
    """5 pings between two tenants whose MACs are learned: exactly 5 frames
    each way through each host's programs, all unicast (no flood)."""
    sim = topo["sim"]
    src, dst = topo["tenants"][(0, 10)], demo.tenant_ip(1)
    assert sim.ping_until(src, dst)

    def counters(host):
        _, out, _ = ctl(topo, "status", "--json", host=host)
        return json.loads(out)["functions"]["bridge"]["counters"]

    def fdb_row(host, mac):
        _, out, _ = ctl(topo, "fdb", "show", "--json", "--vni", "10", host=host)
        return {r["mac"]: r for r in json.loads(out)}[mac]
    c0, c1 = counters(0), counters(1)
    r0 = fdb_row(0, demo.tenant_mac(1, 10))
    assert sim.ping(src, dst, count=5) == 5
    d0 = {k: v - c0[k] for k, v in counters(0).items() if v != c0[k]}
    d1 = {k: v - c1[k] for k, v in counters(1).items() if v != c1[k]}
    assert d0 == {"tx": 5, "rx": 5}
    assert d1 == {"tx": 5, "rx": 5}
    r1 = fdb_row(0, demo.tenant_mac(1, 10))
    assert (r1["rx_pkts"] - r0["rx_pkts"], r1["tx_pkts"] - r0["tx_pkts"]) == (5, 5)
