"""A second load applies or refuses every option, and commands that used to
lie: a pin root off bpffs, `local None`, no version, no program ids.

One host built by hand, as a user has it: two NICs on two links to a peer,
connected routes only (no default route, so every load names its underlay).

        h0 eth0 10.99.0.1/24 ---- p0 eth0 10.99.0.2/24
        h0 eth1 10.98.0.1/24 ---- p0 eth1 10.98.0.2/24

For each function: the same options again change nothing (but the programs,
whose ids change and whose tags do not); an in-place option is applied and
shows; every other option is refused with one exact line and nothing changes
(the namespace's snapshot); an unknown device is exit 2 with the first
load's line.
"""
import json
import os
import subprocess

import pytest

from conftest import BPFNETCTL, snapshot

import bpfnet
from bpfnet.functions import get
from bpfnet.functions.pins import PinDir


@pytest.fixture
def h0(sim):
    h, p = sim.ns("h0"), sim.ns("p0")
    for dev, net in (("eth0", "10.99.0"), ("eth1", "10.98.0")):
        sim.veth(h, dev, p, dev)
        sim.addr(h, dev, f"{net}.1/24")
        sim.addr(p, dev, f"{net}.2/24")
    return sim, h


def ctl(sim, ns, *argv):
    return sim.bpfnetctl(*argv, netns_=ns, check=False)


def status(sim, ns, fn):
    code, out, err = ctl(sim, ns, "status", "--json")
    assert code == 0, err
    return json.loads(out)["functions"][fn]


def prog_ids(st) -> dict:
    return {(a["device"], a["hook"]): (a["prog_id"], a["tag"]) for a in st["attach"]}


def refused(fn, opt, have) -> str:
    return (f"bpfnetctl: error: load {fn}: --{opt}: {fn} is loaded with {have}; "
            f"`bpfnetctl unload {fn}` is needed to change it\n")


def check_refusals(sim, ns, fn, cases):
    """Each (argv, exact stderr) exits 2, prints nothing, changes nothing."""
    before = snapshot(sim, ns)
    for argv, line in cases:
        code, out, err = ctl(sim, ns, "load", fn, *argv)
        assert (code, out, err) == (2, "", line), argv
        assert snapshot(sim, ns) == before, argv


def check_upgrade_takes(sim, ns, fn, argv, text, before):
    """A second load prints ``text``; every attach point runs a new program
    (another id) built from the same object (the same tag)."""
    code, out, err = ctl(sim, ns, "load", fn, *argv)
    assert (code, out, err) == (0, text + "\n", "")
    st = status(sim, ns, fn)
    after = prog_ids(st)
    assert set(after) == set(before)
    for hook, (pid, tag) in after.items():
        assert isinstance(pid, int) and len(tag) == 16, hook
        assert pid != before[hook][0] and tag == before[hook][1], hook
    return st


def loaded_options(sim, ns, fn) -> dict:
    f = get(fn)(PinDir(sim.pin_root, ns))
    try:
        from pyroute2 import netns
        netns.pushns(ns)
        try:
            return f.loaded_options()
        finally:
            netns.popns()
    finally:
        f.close()


def test_bridge(h0):
    sim, h = h0
    nosuch = "bpfnetctl: error: load bridge: device 'nosuchdev0' does not exist\n"
    assert ctl(sim, h, "load", "bridge", "--underlay", "nosuchdev0") == (2, "", nosuch)
    assert ctl(sim, h, "load", "bridge", "--underlay", "eth0") == \
        (0, "bridge: loaded on vxlan0\n", "")
    assert ctl(sim, h, "vni", "add", "10", "--bridge", "br10")[0] == 0
    st = status(sim, h, "bridge")
    assert st["local"] == "10.99.0.1"  # the address in use: the underlay's
    _, text, _ = ctl(sim, h, "status")
    assert "local 10.99.0.1" in text and "None" not in text
    ids = prog_ids(st)
    assert set(ids) == {("vxlan0", "ingress"), ("bnp10", "egress")}
    assert loaded_options(sim, h, "bridge") == {"underlay": "eth0", "group": "239.1.1.1",
                                                "port": 4789, "device": "vxlan0", "ageing": 300,
                                                "encap": "native", "suppress": "on"}

    # the same values: nothing changed, new programs
    same = ["--underlay", "eth0", "--group", "239.1.1.1", "--port", "4789", "--device", "vxlan0",
            "--ageing", "300"]
    st = check_upgrade_takes(sim, h, "bridge", same, "bridge: upgraded on vxlan0; nothing changed",
                             ids)
    # in place: the ageing time
    check_upgrade_takes(sim, h, "bridge", ["--ageing", "60"],
                        "bridge: upgraded on vxlan0; ageing 300 -> 60", prog_ids(st))
    assert status(sim, h, "bridge")["ageing_s"] == 60
    assert loaded_options(sim, h, "bridge")["ageing"] == 60
    # in place: the path (native encapsulation in the programs, or the device)
    st = check_upgrade_takes(sim, h, "bridge", ["--encap", "device"],
                             "bridge: upgraded on vxlan0; encap native -> device", prog_ids(st))
    assert (status(sim, h, "bridge")["encap"]["mode"], loaded_options(sim, h, "bridge")["encap"]) \
        == ("device", "device")
    st = check_upgrade_takes(sim, h, "bridge", ["--encap", "native"],
                             "bridge: upgraded on vxlan0; encap device -> native", prog_ids(st))
    assert status(sim, h, "bridge")["encap"]["mode"] == "native"
    # in place: ARP/ND suppression
    st = check_upgrade_takes(sim, h, "bridge", ["--suppress", "off"],
                             "bridge: upgraded on vxlan0; suppress on -> off", prog_ids(st))
    assert loaded_options(sim, h, "bridge")["suppress"] == "off"
    st = check_upgrade_takes(sim, h, "bridge", ["--suppress", "on"],
                             "bridge: upgraded on vxlan0; suppress off -> on", prog_ids(st))
    assert loaded_options(sim, h, "bridge")["suppress"] == "on"

    # refused, each naming its option; bad values as on a first load
    check_refusals(sim, h, "bridge", [
        (["--underlay", "eth1"], refused("bridge", "underlay", "underlay eth0")),
        (["--local", "10.99.0.1"], refused("bridge", "local", "no --local")),
        (["--group", "239.1.1.2"], refused("bridge", "group", "group 239.1.1.1")),
        (["--port", "4790"], refused("bridge", "port", "port 4789")),
        (["--device", "vx1"], refused("bridge", "device", "device vxlan0")),
        (["--ageing", "30", "--port", "4790"], refused("bridge", "port", "port 4789")),
        (["--underlay", "nosuchdev0"], nosuch),
        (["--local", "10.98.0.1"],
         "bpfnetctl: error: load bridge: --local 10.98.0.1 is not an address of eth0\n"),
        (["--local", "fd00::1"], "bpfnetctl: error: load bridge: --local fd00::1 and --group "
                                 "239.1.1.1 are of different families\n"),
    ])
    assert status(sim, h, "bridge")["ageing_s"] == 60  # the refused --ageing 30 changed nothing
    assert ctl(sim, h, "unload", "bridge")[0] == 0


def test_bridge_with_local_shows_it(h0):
    sim, h = h0
    assert ctl(sim, h, "load", "bridge", "--local", "10.98.0.1")[0] == 0  # underlay eth1: --local's
    assert status(sim, h, "bridge")["local"] == "10.98.0.1"
    assert loaded_options(sim, h, "bridge")["local"] == "10.98.0.1"
    assert ctl(sim, h, "load", "bridge", "--local", "10.98.0.1")[1] == \
        "bridge: upgraded on vxlan0; nothing changed\n"
    check_refusals(sim, h, "bridge", [
        (["--local", "10.99.0.1"],
         "bpfnetctl: error: load bridge: --local 10.99.0.1 is not an address of eth1\n"),
        (["--underlay", "eth0", "--local", "10.99.0.1"],
         refused("bridge", "underlay", "underlay eth1")),
    ])


def test_mesh(h0):
    sim, h = h0
    assert ctl(sim, h, "load", "mesh", "--underlay", "eth0", "--port", "4790") == \
        (0, "mesh: loaded on vxlan0\n", "")
    assert ctl(sim, h, "peer", "add", "10.99.0.2", "--vni", "10", "--bridge", "br10")[0] == 0
    st = status(sim, h, "mesh")
    assert (st["local"], st["udp_port"]) == ("10.99.0.1", 4790)
    assert loaded_options(sim, h, "mesh") == {"underlay": "eth0", "port": 4790, "device": "vxlan0",
                                              "encap": "native"}
    same = ["--underlay", "eth0", "--port", "4790", "--device", "vxlan0"]
    check_upgrade_takes(sim, h, "mesh", same, "mesh: upgraded on vxlan0; nothing changed",
                        prog_ids(st))
    check_refusals(sim, h, "mesh", [
        (["--underlay", "eth1"], refused("mesh", "underlay", "underlay eth0")),
        (["--local", "10.99.0.1"], refused("mesh", "local", "no --local")),
        (["--port", "4789"], refused("mesh", "port", "port 4790")),
        (["--device", "vx1"], refused("mesh", "device", "device vxlan0")),
        (["--underlay", "nosuchdev0"],
         "bpfnetctl: error: load mesh: device 'nosuchdev0' does not exist\n"),
    ])
    assert ctl(sim, h, "unload", "mesh")[0] == 0


def first_load(sim, ns, fn, required, text, options):
    """A first load without ``--required`` is refused; with it (on eth0) it
    prints ``text`` and runs with ``options``. Returns its status."""
    assert ctl(sim, ns, "load", fn) == \
        (2, "", f"bpfnetctl: error: load {fn}: no --{required}: give --{required} DEV "
                "(required on a first load)\n")
    assert ctl(sim, ns, "load", fn, f"--{required}", "eth0") == (0, text + "\n", "")
    assert loaded_options(sim, ns, fn) == options
    return status(sim, ns, fn)


def test_gateway(h0):
    sim, h = h0
    st = first_load(sim, h, "gateway", "trunk", "gateway: loaded on trunk eth0", {"trunk": "eth0"})
    check_upgrade_takes(sim, h, "gateway", ["--trunk", "eth0"],
                        "gateway: upgraded on trunk eth0; nothing changed", prog_ids(st))
    check_refusals(sim, h, "gateway", [
        (["--trunk", "eth1"], refused("gateway", "trunk", "trunk eth0")),
        (["--trunk", "nosuchdev0"],
         "bpfnetctl: error: load gateway: device 'nosuchdev0' does not exist\n"),
    ])
    assert ctl(sim, h, "unload", "gateway")[0] == 0


def test_monitor(h0):
    sim, h = h0
    st = first_load(sim, h, "monitor", "dev", "monitor: loaded on eth0 (VXLAN port 4789)",
                    {"dev": "eth0", "port": 4789})
    st = check_upgrade_takes(sim, h, "monitor", ["--port", "8472"],
                             "monitor: upgraded on eth0 (VXLAN port 8472); port 4789 -> 8472",
                             prog_ids(st))
    assert st["port"] == 8472
    # the data path counts the new port: one VXLAN frame to 8472 from the peer
    frame = "0800000000000a00" + "ff" * 6 + "020000000001" + "0806" + "00" * 28  # VNI 10, ARP
    sim.run(f"{sim.prefix}-p0", ["python3", "-c",
                           "import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
                           f"s.sendto(bytes.fromhex('{frame}'),('10.99.0.1',8472))"], check=True)
    assert [r["vni"] for r in json.loads(ctl(sim, h, "stats", "--json")[1])] == [10]
    check_refusals(sim, h, "monitor", [
        (["--dev", "eth1"], refused("monitor", "dev", "dev eth0")),
        (["--dev", "nosuchdev0"],
         "bpfnetctl: error: load monitor: device 'nosuchdev0' does not exist\n"),
        (["--port", "0"],
         "bpfnetctl: error: argument --port: invalid port '0': must be 1..65535\n"),
    ])
    assert ctl(sim, h, "load", "monitor", "--port", "8472")[1] == \
        "monitor: upgraded on eth0 (VXLAN port 8472); nothing changed\n"
    assert ctl(sim, h, "unload", "monitor")[0] == 0


# --- commands that lied ------------------------------------------------------------

@pytest.mark.parametrize("argv", [["status"], ["status", "--json"], ["vni", "show"],
                                  ["fdb", "show"], ["peer", "show"], ["client", "show"],
                                  ["stats"], ["unload", "bridge"], ["load", "bridge"]])
def test_a_pin_root_off_bpffs_is_exit_2_for_every_command(root, tmp_path, argv):
    op = " ".join(argv[:2]) if argv[0] in ("vni", "fdb", "peer", "client", "load") else argv[0]
    for pin_root in ("/proc/nope", str(tmp_path / "x")):
        r = subprocess.run([BPFNETCTL, "--pin-root", pin_root, *argv], capture_output=True,
                           text=True)
        assert (r.returncode, r.stdout, r.stderr) == \
            (2, "", f"bpfnetctl: error: {op}: pin root {pin_root} is not on a bpf filesystem\n")
        assert not os.path.exists(pin_root)


def test_version():
    r = subprocess.run([BPFNETCTL, "--version"], capture_output=True, text=True)
    assert (r.returncode, r.stdout, r.stderr) == (0, f"bpfnetctl {bpfnet.__version__}\n", "")
