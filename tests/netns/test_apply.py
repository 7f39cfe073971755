"""apply -f FILE and config show end to end: two hosts built by hand, every
function from one file, traffic across; a second apply changes nothing;
--dry-run changes nothing; bad files exit 2 with one exact line and change
nothing; a failing action is undone; config show round-trips; learned
state and functions the file does not name are left alone.

     t10 192.168.10.1 (br10)  t30 192.168.30.1 (br30)     t10 .2 (br10)  t30 .2 (br30)
     h0: bridge vxlan0 :4789 (VNIs 10, 20)                h1: the same
         mesh   vxlan1 :4790 (VNI 30, peer h1)                mesh peer h0
         gateway trunk gwt0, client -> gww0; monitor eth0
         eth0 10.99.0.1                                      eth0 10.99.0.2
           +------------------------ fabric (sw0) ----------------+
"""
import json
import subprocess

import pytest

from conftest import BPFNETCTL, built, run_cli, snapshot
import pair
from pair import ctl, pings

H0 = """\
[host]
name = "h0"
[bridge]
local = "10.99.0.1"
group = "239.1.1.1"
vnis = [ { vni = 10, bridge = "br10" },
         { vni = 20, bridge = "br20", allow = ["10.99.0.2"] } ]
[mesh]
local = "10.99.0.1"
port = 4790
device = "vxlan1"
vnis = [ { vni = 30, bridge = "br30", peers = ["10.99.0.2"] } ]
[gateway]
trunk = "gwt0"
clients = [ { mac = "02:00:00:00:10:01", worker = "gww0" } ]
[monitor]
dev = "eth0"
"""

H1 = """\
[host]
name = "h1"
[bridge]
local = "10.99.0.2"
vnis = [ { vni = 10, bridge = "br10" } ]
[mesh]
local = "10.99.0.2"
port = 4790
device = "vxlan1"
vnis = [ { vni = 30, bridge = "br30", peers = ["10.99.0.1"] } ]
"""

H0_PLAN = [
    "+ bridge load local=10.99.0.1 group=239.1.1.1",
    "+ bridge vni 10 bridge=br10",
    "+ bridge vni 20 bridge=br20 allow=10.99.0.2",
    "+ mesh load local=10.99.0.1 port=4790 device=vxlan1",
    "+ mesh peer 10.99.0.2 vni 30 bridge=br30",
    "+ gateway load trunk=gwt0",
    "+ gateway client 02:00:00:00:10:01 worker=gww0",
    "+ monitor load dev=eth0",
    "apply: h0.toml: 8 change(s) applied",
]


@pytest.fixture(scope="module")
def topo(tmp_path_factory):
    def build(sim):
        t = pair.build(sim, {"h0.toml": H0, "h1.toml": H1}, tmp_path_factory.mktemp("apply"))
        h0 = t["hosts"][0]
        sim.veth(h0, "gwt0", h0, "gwt1")   # the gateway's trunk, as a user makes it
        sim.veth(h0, "gww0", h0, "gww1")   # a worker's port
        return t
    yield from built("ta", build)


def write(topo, name, text):
    p = topo["dir"] / name
    p.write_text(text)
    return str(p)


def apply_ok(topo, host, path, *extra):
    code, out, err = ctl(topo, host, "apply", "-f", path, *extra)
    assert (code, err) == (0, ""), err
    return out.splitlines()


def test_apply_converges_a_host_and_a_second_apply_changes_nothing(topo):
    sim = topo["sim"]
    # as a user runs it: a process
    code, out, err = run_cli(sim, topo["hosts"][0], "apply", "-f", topo["files"][0])
    assert (code, err) == (0, "")
    assert out.splitlines() == H0_PLAN
    apply_ok(topo, 1, topo["files"][1])
    assert pings(topo) == {10: 3, 30: 3}
    for host in (0, 1):
        before = snapshot(sim, topo["hosts"][host])
        assert apply_ok(topo, host, topo["files"][host]) == [
            f"apply: h{host}.toml: nothing to change"]
        assert snapshot(sim, topo["hosts"][host]) == before
    code, out, _ = ctl(topo, 0, "vni", "show", "--json")
    assert [(r["vni"], r["bridge"], r["allow"]) for r in json.loads(out)] == [
        (10, "br10", []), (20, "br20", ["10.99.0.2"])]
    code, out, _ = ctl(topo, 0, "client", "show", "--json")
    assert [(r["mac"], r["worker"]) for r in json.loads(out)] == [("02:00:00:00:10:01", "gww0")]


def test_dry_run_prints_the_plan_and_changes_nothing_then_apply_does_it(topo):
    sim = topo["sim"]
    apply_ok(topo, 0, topo["files"][0])
    changed = H0.replace('group = "239.1.1.1"\n', 'group = "239.1.1.1"\nageing = 60\n') \
        .replace('allow = ["10.99.0.2"] }', 'allow = ["10.99.0.2", "10.99.0.3"] },\n'
                 '         { vni = 21, bridge = "br21" }') \
        .replace('{ vni = 10, bridge = "br10" },\n         ', '') \
        .replace('peers = ["10.99.0.2"]', 'peers = ["10.99.0.3"]')
    path = write(topo, "h0-changed.toml", changed)
    want = ["~ bridge ageing 300 -> 60",
            "- bridge vni 10",
            "~ bridge vni 20 allow 10.99.0.2 -> 10.99.0.2,10.99.0.3",
            "+ bridge vni 21 bridge=br21",
            "- mesh peer 10.99.0.2 vni 30",
            "+ mesh peer 10.99.0.3 vni 30 bridge=br30"]
    before = snapshot(sim, topo["hosts"][0])
    assert apply_ok(topo, 0, path, "--dry-run") == want + [
        "apply: h0-changed.toml: 6 change(s) planned; --dry-run: nothing changed"]
    assert snapshot(sim, topo["hosts"][0]) == before
    code, out, _ = ctl(topo, 0, "apply", "-f", path, "--dry-run", "--json")
    data = json.loads(out)
    assert (data["dry_run"], data["changes"]) == (True, 6)
    assert [a["text"] for a in data["actions"]] == want
    assert apply_ok(topo, 0, path) == want + ["apply: h0-changed.toml: 6 change(s) applied"]
    assert apply_ok(topo, 0, path) == ["apply: h0-changed.toml: nothing to change"]
    code, out, _ = ctl(topo, 0, "status", "--json")
    assert json.loads(out)["functions"]["bridge"]["ageing_s"] == 60
    code, out, _ = ctl(topo, 0, "vni", "show", "--json")
    assert [(r["vni"], r["allow"]) for r in json.loads(out)] == [
        (20, ["10.99.0.2", "10.99.0.3"]), (21, [])]
    # and back
    assert apply_ok(topo, 0, topo["files"][0]) == [
        "~ bridge ageing 60 -> 300",
        "- bridge vni 21",
        "+ bridge vni 10 bridge=br10",
        "~ bridge vni 20 allow 10.99.0.2,10.99.0.3 -> 10.99.0.2",
        "- mesh peer 10.99.0.3 vni 30",
        "+ mesh peer 10.99.0.2 vni 30 bridge=br30",
        "apply: h0.toml: 6 change(s) applied"]
    assert pings(topo) == {10: 3, 30: 3}


BAD = [
    ("syntax.toml", H0.replace('[mesh]', '[mesh'),
     "bpfnetctl: error: apply: syntax.toml: line 8, column 6: Expected ']' at the end of a table declaration"),
    ("key.toml", H0.replace('port = 4790', 'prot = 4790'),
     "bpfnetctl: error: apply: key.toml: mesh.prot: unknown key (known: "),
    ("vni.toml", H0.replace('{ vni = 20, bridge', '{ vni = 0, bridge'),
     "bpfnetctl: error: apply: vni.toml: bridge.vnis[1].vni: 0 is outside 1..16777215"),
    ("ip.toml", H0.replace('peers = ["10.99.0.2"]', 'peers = ["10.99.0.300"]'),
     "bpfnetctl: error: apply: ip.toml: mesh.vnis[0].peers[0]: invalid IP address '10.99.0.300'"),
    ("mac.toml", H0.replace('02:00:00:00:10:01', '02:00:00:00:10'),
     "bpfnetctl: error: apply: mac.toml: gateway.clients[0].mac: invalid MAC address '02:00:00:00:10'"),
    ("unload.toml", H0.replace('local = "10.99.0.1"\nport', 'local = "10.99.0.9"\nport'),
     "bpfnetctl: error: apply: unload.toml: mesh.local: mesh is loaded with local 10.99.0.1; "
     "`bpfnetctl unload mesh` is needed to change it"),
    ("device.toml", H0.replace('worker = "gww0"', 'worker = "gww9"'),
     "bpfnetctl: error: apply: device.toml: gateway.clients[0].worker: device 'gww9' does not exist"),
    ("notbridge.toml", H0.replace('bridge = "br30"', 'bridge = "eth0"'),
     "bpfnetctl: error: apply: notbridge.toml: mesh.vnis[0].bridge: device 'eth0' exists and is not a bridge"),
    ("self.toml", H0.replace('peers = ["10.99.0.2"]', 'peers = ["10.99.0.2", "127.0.0.1"]'),
     "bpfnetctl: error: apply: self.toml: mesh.vnis[0].peers: 127.0.0.1 is an address of this host"),
    ("cluster.toml", H0.replace('peers = ["10.99.0.2"]', 'peers = "cluster"'),
     "bpfnetctl: error: apply: cluster.toml: mesh.vnis[0].peers: \"cluster\" needs a [cluster] section"),
]


def test_a_bad_file_exits_2_with_one_line_and_changes_nothing(topo):
    sim = topo["sim"]
    apply_ok(topo, 0, topo["files"][0])
    before = snapshot(sim, topo["hosts"][0])
    failures = []
    for name, text, line in BAD:
        code, out, err = ctl(topo, 0, "apply", "-f", write(topo, name, text))
        lines = err.splitlines()
        ok = code == 2 and out == "" and len(lines) == 1
        if line is not None:
            ok = ok and (lines[0].startswith(line) if line.endswith("(known: ") else lines[0] == line)
        if not ok:
            failures.append((name, code, err))
        assert snapshot(sim, topo["hosts"][0]) == before, name
    assert failures == []
    code, out, err = ctl(topo, 0, "apply", "-f", str(topo["dir"] / "none.toml"))
    assert (code, err.strip()) == (2, f"bpfnetctl: error: apply: {topo['dir']}/none.toml: "
                                      "No such file or directory")


def test_an_action_that_fails_is_undone_with_what_went_before(topo):
    """The kernel-side refusal comes from the function (an allow address of
    the other family than the bridge's group): the ageing change before it
    is undone, and the line says so."""
    sim = topo["sim"]
    apply_ok(topo, 0, topo["files"][0])
    before = snapshot(sim, topo["hosts"][0])
    text = H0.replace('local = "10.99.0.1"\ngroup = "239.1.1.1"\n', 'ageing = 77\n') \
        .replace('allow = ["10.99.0.2"] }', 'allow = ["10.99.0.2"] },\n'
                 '         { vni = 22, bridge = "br22", allow = ["fd00::2"] }')
    code, out, err = ctl(topo, 0, "apply", "-f", write(topo, "family.toml", text))
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "bpfnetctl: error: apply: family.toml: `+ bridge vni 22 bridge=br22 allow=fd00::2` failed: "
        "--allow fd00::2: not of the underlay's address family; the 1 change(s) before it were undone"]
    assert snapshot(sim, topo["hosts"][0]) == before
    code, out, _ = ctl(topo, 0, "status", "--json")
    assert json.loads(out)["functions"]["bridge"]["ageing_s"] == 300


def test_config_show_round_trips_through_apply(topo):
    apply_ok(topo, 0, topo["files"][0])
    code, out, err = ctl(topo, 0, "config", "show")
    assert (code, err) == (0, "")
    shown = out
    assert shown.startswith(f"# bpfnetctl config show: namespace {topo['hosts'][0]}\n")
    for frag in ('[bridge]\n', 'group = "239.1.1.1"\n', '{ vni = 10, bridge = "br10" },\n',
                 '{ vni = 20, bridge = "br20", allow = ["10.99.0.2"] },\n', '[mesh]\n',
                 'device = "vxlan1"\n', 'port = 4790\n',
                 '{ vni = 30, bridge = "br30", peers = ["10.99.0.2"] },\n',
                 '[gateway]\ntrunk = "gwt0"\n',
                 '{ mac = "02:00:00:00:10:01", worker = "gww0" },\n', '[monitor]\ndev = "eth0"\n'):
        assert frag in shown
    path = write(topo, "shown.toml", shown)
    before = snapshot(topo["sim"], topo["hosts"][0])
    assert apply_ok(topo, 0, path) == ["apply: shown.toml: nothing to change"]
    assert snapshot(topo["sim"], topo["hosts"][0]) == before
    # as an operator pipes it: bpfnetctl config show | bpfnetctl apply -f -
    sim = topo["sim"]
    r = subprocess.run([BPFNETCTL, "--pin-root", sim.pin_root, "--netns", topo["hosts"][0],
                        "apply", "-f", "-"], input=shown, capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (0, "apply: <stdin>: nothing to change\n", "")
    code, out, _ = ctl(topo, 0, "config", "show", "--json")
    data = json.loads(out)
    assert data["mesh"]["vnis"] == [{"vni": 30, "bridge": "br30", "peers": ["10.99.0.2"]}]
    assert data["gateway"] == {"trunk": "gwt0",
                               "clients": [{"mac": "02:00:00:00:10:01", "worker": "gww0"}]}


def test_learned_state_and_unnamed_functions_are_left_alone(topo):
    apply_ok(topo, 0, topo["files"][0])
    apply_ok(topo, 1, topo["files"][1])
    assert pings(topo) == {10: 3, 30: 3}
    _, out, _ = ctl(topo, 0, "fdb", "show", "--json")
    fdb = {(r["mac"], r["vni"], r["remote"]) for r in json.loads(out)}
    assert ("02:00:00:0a:00:02", 10, "10.99.0.2") in fdb
    _, out, _ = ctl(topo, 0, "status", "--json")
    counters = {f: s["counters"] for f, s in json.loads(out)["functions"].items()}
    # only the mesh named, with a change: the bridge, gateway and monitor stay as they are
    path = write(topo, "mesh-only.toml", H0.split("[mesh]")[0].split("[bridge]")[0]
                 + "[mesh]" + H0.split("[mesh]")[1].split("[gateway]")[0].replace(
                     'peers = ["10.99.0.2"]', 'peers = ["10.99.0.2", "10.99.0.3"]'))
    assert apply_ok(topo, 0, path) == ["+ mesh peer 10.99.0.3 vni 30 bridge=br30",
                                       "apply: mesh-only.toml: 1 change(s) applied"]
    _, out, _ = ctl(topo, 0, "fdb", "show", "--json")
    assert {(r["mac"], r["vni"], r["remote"]) for r in json.loads(out)} == fdb
    _, out, _ = ctl(topo, 0, "status", "--json")
    after = {f: s["counters"] for f, s in json.loads(out)["functions"].items()}
    assert set(after) == {"bridge", "mesh", "gateway", "monitor"}
    for f in ("bridge", "gateway"):
        assert after[f] == counters[f]  # nothing crossed them since
    for f in ("mesh", "monitor"):
        assert all(after[f][k] >= counters[f][k] for k in counters[f])  # not reset
    apply_ok(topo, 0, topo["files"][0])
