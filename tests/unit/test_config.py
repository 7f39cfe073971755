"""The desired-state file and the plan, root-free: parsing, every kind of bad
file with its exact one-line message, the plan between a file and a state,
and config show's TOML read back to the same thing."""
import pytest
from netaddr import IPAddress

from bpfnet import config
from bpfnet.apply import Current, current_spec, plan
from bpfnet.config import BridgeVni, Client, MeshVni
from bpfnet.errors import ConfigError

FULL = """\
[host]
name = "h0"
[cluster]
etcd = ["http://10.0.0.250:2379"]
name = "default"
ttl = 10
[bridge]
underlay = "eth0"
local = "10.0.0.1"
vnis = [ { vni = 10, bridge = "br10" },
         { vni = 20, bridge = "br20", group = "239.1.1.20", allow = "cluster" } ]
[mesh]
local = "10.0.0.1"
port = 4790
device = "vxlan1"
vnis = [ { vni = 30, bridge = "br30", peers = ["10.0.0.2", "10.0.0.3"] },
         { vni = 40, bridge = "br40", peers = "cluster" } ]
[gateway]
trunk = "eth1"
clients = [ { mac = "02:00:00:00:10:01", worker = "veth-w1" } ]
[monitor]
dev = "eth0"
"""


def ips(*xs):
    return tuple(IPAddress(x) for x in xs)


def test_the_contract_example_parses():
    d = config.parse(FULL, "cfg.toml")
    assert d.host == "h0"
    assert (d.cluster.etcd, d.cluster.name, d.cluster.ttl) == (["http://10.0.0.250:2379"], "default", 10)
    assert list(d.functions) == ["bridge", "mesh", "gateway", "monitor"]
    br = d.functions["bridge"]
    assert br.options == {"underlay": "eth0", "local": IPAddress("10.0.0.1")}
    assert br.children[10] == BridgeVni(10, "br10", None, None, "bridge.vnis[0]")
    assert br.children[20].allow == "cluster" and br.children[20].group == IPAddress("239.1.1.20")
    mesh = d.functions["mesh"]
    assert mesh.options == {"local": IPAddress("10.0.0.1"), "port": 4790, "device": "vxlan1"}
    assert mesh.children[30].peers == ips("10.0.0.2", "10.0.0.3")
    assert mesh.children[40].peers == "cluster"
    assert d.functions["gateway"].children == {
        "02:00:00:00:10:01": Client("02:00:00:00:10:01", "veth-w1", "gateway.clients[0]")}
    assert d.functions["monitor"].options == {"dev": "eth0"}
    assert config.record_of(d) == {"vtep": "10.0.0.1", "port": 4790,
                                   "bridge_vnis": [10, 20], "mesh_vnis": [30, 40]}


BAD = [
    ("[bridge]\nvnis = [ { vni = 10, bridge = \"br10\" }, { vni = 0, bridge = \"br0\" } ]\n",
     "cfg.toml: bridge.vnis[1].vni: 0 is outside 1..16777215"),
    ("[bridge]\nvnis = [ { vni = 16777216, bridge = \"b\" } ]\n",
     "cfg.toml: bridge.vnis[0].vni: 16777216 is outside 1..16777215"),
    ("[bridge]\nvnis = [ { vni = \"10\", bridge = \"b\" } ]\n",
     "cfg.toml: bridge.vnis[0].vni: expected an integer, not a string"),
    ("[bridge]\nvnis = [ { vni = 10 } ]\n", "cfg.toml: bridge.vnis[0]: missing key 'bridge'"),
    ("[bridge]\nvnis = [ { vni = 10, bridge = \"br10\", colour = 1 } ]\n",
     "cfg.toml: bridge.vnis[0].colour: unknown key (known: vni, bridge, group, allow, fdb)"),
    ("[bridge]\nvnis = [ { vni = 10, bridge = \"br10\" }, { vni = 10, bridge = \"br11\" } ]\n",
     "cfg.toml: bridge.vnis[1].vni: VNI 10 is listed twice"),
    ("[bridge]\nvnis = [ { vni = 10, bridge = \"br10\" }, { vni = 11, bridge = \"br10\" } ]\n",
     "cfg.toml: bridge.vnis[1].bridge: bridge br10 already carries VNI 10: one bridge per VNI"),
    ("[bridge]\nvnis = [ { vni = 10, bridge = \"br10\", group = \"10.0.0.1\" } ]\n",
     "cfg.toml: bridge.vnis[0].group: invalid group '10.0.0.1': not a multicast address"),
    ("[bridge]\nvnis = [ { vni = 10, bridge = \"br10\", allow = [\"10.0.0.300\"] } ]\n",
     "cfg.toml: bridge.vnis[0].allow[0]: invalid IP address '10.0.0.300'"),
    ("[bridge]\nvnis = [ { vni = 10, bridge = \"a/b\" } ]\n",
     "cfg.toml: bridge.vnis[0].bridge: invalid interface name 'a/b'"),
    ("[bridge]\nlocal = \"10.0.0.256\"\n", "cfg.toml: bridge.local: invalid IP address '10.0.0.256'"),
    ("[bridge]\nlocal = \"239.1.1.1\"\n", "cfg.toml: bridge.local: invalid unicast IP address '239.1.1.1'"),
    ("[bridge]\nport = 70000\n", "cfg.toml: bridge.port: invalid port '70000': must be 1..65535"),
    ("[bridge]\nport = true\n", "cfg.toml: bridge.port: expected a string or an integer, not a boolean"),
    ("[bridge]\nvlan = 3\n", "cfg.toml: bridge.vlan: unknown key (known: "),
    ("[bridge]\nvnis = 3\n", "cfg.toml: bridge.vnis: expected an array of tables, not an integer"),
    ("[mesh]\nvnis = [ { vni = 30, bridge = \"br30\", peers = [\"10.0.0.2\", \"10.0.0.2\"] } ]\n",
     "cfg.toml: mesh.vnis[0].peers[1]: 10.0.0.2 is listed twice"),
    ("[mesh]\nvnis = [ { vni = 30, bridge = \"br30\", peers = \"all\" } ]\n",
     "cfg.toml: mesh.vnis[0].peers: expected an array of addresses or \"cluster\", not a string"),
    ("[mesh]\nlocal = \"10.0.0.1\"\nvnis = [ { vni = 30, bridge = \"b\", peers = [\"fd00::2\"] } ]\n",
     "cfg.toml: mesh.vnis[0].peers[0]: fd00::2 is not of mesh.local 10.0.0.1's address family"),
    ("[mesh]\nlocal = \"10.0.0.1\"\nvnis = [ { vni = 30, bridge = \"b\", peers = [\"10.0.0.1\"] } ]\n",
     "cfg.toml: mesh.vnis[0].peers[0]: 10.0.0.1 is mesh.local, this host"),
    ("[mesh]\nvnis = [ { vni = 30, bridge = \"b\", peers = [\"239.1.1.1\"] } ]\n",
     "cfg.toml: mesh.vnis[0].peers[0]: invalid unicast IP address '239.1.1.1'"),
    ("[mesh]\nvnis = [ { vni = 40, bridge = \"br40\", peers = \"cluster\" } ]\n",
     "cfg.toml: mesh.vnis[0].peers: \"cluster\" needs a [cluster] section"),
    ("[gateway]\nclients = [ { mac = \"02:00:00:00:10:0g\", worker = \"w1\" } ]\n",
     "cfg.toml: gateway.clients[0].mac: invalid MAC address '02:00:00:00:10:0g'"),
    ("[gateway]\nclients = [ { mac = \"01:00:00:00:10:01\", worker = \"w1\" } ]\n",
     "cfg.toml: gateway.clients[0].mac: invalid MAC address '01:00:00:00:10:01': not unicast"),
    ("[gateway]\nclients = [ { mac = \"02:00:00:00:10:01\", worker = \"w1\" },"
     " { mac = \"02:00:00:00:10:02\", worker = \"w1\" } ]\n",
     "cfg.toml: gateway.clients[1].worker: worker w1 already serves client 02:00:00:00:10:01"),
    ("[gateway]\nclients = [ { mac = \"02:00:00:00:10:01\", worker = \"w1\" },"
     " { mac = \"02:00:00:00:10:01\", worker = \"w2\" } ]\n",
     "cfg.toml: gateway.clients[1].mac: client 02:00:00:00:10:01 is listed twice"),
    ("[cluster]\netcd = [\"10.0.0.250:2379\"]\n[mesh]\nlocal = \"10.0.0.1\"\n",
     "cfg.toml: cluster.etcd[0]: '10.0.0.250:2379' is not http://HOST:PORT"),
    ("[cluster]\netcd = [\"http://10.0.0.250:2379\"]\nttl = 1\n[mesh]\nlocal = \"10.0.0.1\"\n",
     "cfg.toml: cluster.ttl: 1 is outside 2..3600"),
    ("[cluster]\netcd = [\"http://10.0.0.250:2379\"]\n[mesh]\nport = 4790\n",
     "cfg.toml: cluster: give mesh.local or bridge.local (the VTEP address this host publishes)"),
    ("[cluster]\netcd = [\"http://10.0.0.250:2379\"]\nroutes = \"no\"\n[bridge]\nlocal = \"10.0.0.1\"\n",
     "cfg.toml: cluster.routes: expected true or false, not a string"),
    ("[cluster]\netcd = [\"http://10.0.0.250:2379\"]\nroutes = 0\n[bridge]\nlocal = \"10.0.0.1\"\n",
     "cfg.toml: cluster.routes: expected true or false, not an integer"),
    ("[cluster]\netcd = [\"http://10.0.0.250:2379\"]\nroute = true\n[bridge]\nlocal = \"10.0.0.1\"\n",
     "cfg.toml: cluster.route: unknown key (known: etcd, name, ttl, routes)"),
    ("[bridge]\n[mesh]\nport = 4790\n",
     "cfg.toml: mesh.device: vxlan0 is the bridge's too: a mesh and a bridge need a VXLAN device "
     "and a port each"),
    ("[bridge]\nport = 4790\n[mesh]\ndevice = \"vxlan1\"\nport = 4790\n",
     "cfg.toml: mesh.port: 4790 is the bridge's too: a mesh and a bridge need a VXLAN device "
     "and a port each"),
    ("[host]\nname = \"h 0\"\n", "cfg.toml: host.name: 'h 0': letters, digits, '.', '_' and '-' only"),
    ("[router]\n", "cfg.toml: router: unknown key (known: host, cluster, bridge, mesh, gateway, monitor)"),
    ("[bridge]\nvnis = [ { vni = 10, bridge = \"br10\" }\n",
     "cfg.toml: end of file: Unclosed array"),
    ("[bridge\n", "cfg.toml: line 1, column 8: Expected ']' at the end of a table declaration"),
    ("[bridge]\nport = 1\nport = 2\n", "cfg.toml: line 3, column 9: Cannot overwrite a value"),
]


@pytest.mark.parametrize("text,line", BAD, ids=[b[1].split(": ", 1)[1][:48] for b in BAD])
def test_a_bad_file_is_one_line_naming_file_key_and_problem(text, line):
    with pytest.raises(ConfigError) as e:
        config.parse(text, "cfg.toml")
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(line) if line.endswith("(known: ") else msg == line
    assert e.value.exit_code == 2


def test_standard_input_is_read_for_dash(monkeypatch):
    import io
    import sys
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"[mesh]\nport = 0\n")))
    with pytest.raises(ConfigError) as e:
        config.load("-")
    assert str(e.value) == "<stdin>: mesh.port: invalid port '0': must be 1..65535"


def test_a_missing_file_names_it(tmp_path):
    with pytest.raises(ConfigError) as e:
        config.load(str(tmp_path / "nope.toml"))
    assert str(e.value) == f"{tmp_path}/nope.toml: No such file or directory"


# --- the plan -----------------------------------------------------------------

def cur_mesh(peers: dict, broken=None, **opts):
    c = Current("mesh", loaded=True, options={"local": "10.0.0.1", "port": 4790, "device": "vxlan1",
                                              **opts})
    c.children = {vni: MeshVni(vni, br, ips(*rs)) for vni, (br, rs) in peers.items()}
    c.broken_children = broken or {}
    return c


MESH = """\
[host]
name = "h0"
[mesh]
local = "10.0.0.1"
vnis = [ { vni = 30, bridge = "br30", peers = ["10.0.0.2", "10.0.0.3"] } ]
"""


def lines(actions):
    return [str(a) for a in actions]


def test_plan_from_nothing_loads_then_adds():
    d = config.parse(MESH, "m.toml")
    assert lines(plan(d, {"mesh": Current("mesh")})) == [
        "+ mesh load local=10.0.0.1",
        "+ mesh peer 10.0.0.2 vni 30 bridge=br30",
        "+ mesh peer 10.0.0.3 vni 30 bridge=br30"]


def test_plan_of_the_same_state_is_empty():
    d = config.parse(MESH, "m.toml")
    assert plan(d, {"mesh": cur_mesh({30: ("br30", ["10.0.0.2", "10.0.0.3"])})}) == []


def test_plan_adds_and_removes_what_differs_and_repairs_what_is_broken():
    d = config.parse(MESH.replace('"10.0.0.3"', '"10.0.0.4"'), "m.toml")
    cur = cur_mesh({30: ("br30", ["10.0.0.2", "10.0.0.3"]), 50: ("br50", ["10.0.0.9"])},
                   broken={(30, IPAddress("10.0.0.2")): "port bmp0 is gone"})
    assert lines(plan(d, {"mesh": cur})) == [
        "- mesh peer 10.0.0.3 vni 30",
        "- mesh peer 10.0.0.9 vni 50",
        "~ mesh peer 10.0.0.2 vni 30 re-create: port bmp0 is gone",
        "+ mesh peer 10.0.0.4 vni 30 bridge=br30"]


def test_plan_moves_a_vni_to_another_bridge_by_removing_and_adding():
    d = config.parse(MESH.replace("br30", "br31"), "m.toml")
    cur = cur_mesh({30: ("br30", ["10.0.0.2", "10.0.0.3"])})
    assert lines(plan(d, {"mesh": cur})) == [
        "- mesh peer 10.0.0.2 vni 30", "- mesh peer 10.0.0.3 vni 30",
        "+ mesh peer 10.0.0.2 vni 30 bridge=br31", "+ mesh peer 10.0.0.3 vni 30 bridge=br31"]


def test_plan_refuses_a_change_that_needs_an_unload():
    d = config.parse(MESH, "m.toml")
    with pytest.raises(ConfigError) as e:
        plan(d, {"mesh": cur_mesh({}, local="10.0.0.9")})
    assert str(e.value) == ("m.toml: mesh.local: mesh is loaded with local 10.0.0.9; "
                            "`bpfnetctl unload mesh` is needed to change it")


def test_plan_reloads_a_function_whose_device_is_gone():
    d = config.parse(MESH, "m.toml")
    cur = cur_mesh({30: ("br30", ["10.0.0.2"])})
    cur.broken = "its VXLAN device is gone"
    assert lines(plan(d, {"mesh": cur})) == [
        "~ mesh re-load: its VXLAN device is gone",
        "+ mesh peer 10.0.0.2 vni 30 bridge=br30",
        "+ mesh peer 10.0.0.3 vni 30 bridge=br30"]


CLUSTERED = """\
[host]
name = "h0"
[cluster]
etcd = ["http://10.0.0.250:2379"]
[mesh]
local = "10.0.0.1"
port = 4790
device = "vxlan1"
vnis = [ { vni = 40, bridge = "br40", peers = "cluster" } ]
[bridge]
local = "10.0.0.1"
vnis = [ { vni = 20, bridge = "br20", allow = "cluster" } ]
"""

HOSTS = {"h0": {"vtep": "10.0.0.1", "port": 4789, "bridge_vnis": [20], "mesh_vnis": [40]},
         "h1": {"vtep": "10.0.0.2", "port": 4789, "bridge_vnis": [20], "mesh_vnis": [40]},
         "h2": {"vtep": "10.0.0.3", "port": 4789, "bridge_vnis": [], "mesh_vnis": [40]},
         "h3": {"vtep": "10.0.0.4", "port": 4789, "bridge_vnis": [21], "mesh_vnis": [41]}}


def cur_bridge(vnis: dict):
    c = Current("bridge", loaded=True, options={"local": "10.0.0.1", "group": "239.1.1.1"})
    c.children = {vni: BridgeVni(vni, br, IPAddress("239.1.1.1"), allow) for vni, (br, allow) in vnis.items()}
    return c


def test_cluster_peers_are_the_other_live_hosts_carrying_the_vni():
    d = config.parse(CLUSTERED, "c.toml")
    cur = {"mesh": cur_mesh({40: ("br40", ["10.0.0.3", "10.0.0.9"])}),
           "bridge": cur_bridge({20: ("br20", ips("10.0.0.9"))})}
    assert lines(plan(d, cur, hosts=HOSTS)) == [
        "~ bridge vni 20 allow 10.0.0.9 -> 10.0.0.2",
        "- mesh peer 10.0.0.9 vni 40",
        "+ mesh peer 10.0.0.2 vni 40 bridge=br40"]
    # alone (no other host): nobody may send, no peer
    assert lines(plan(d, cur, hosts={"h0": HOSTS["h0"]})) == [
        "~ bridge vni 20 allow 10.0.0.9 -> none",
        "- mesh peer 10.0.0.3 vni 40", "- mesh peer 10.0.0.9 vni 40"]
    # a plain apply (no membership) leaves the cluster's lists as they are
    assert plan(d, cur, hosts=None) == []


def test_a_new_cluster_vni_starts_closed():
    d = config.parse(CLUSTERED, "c.toml")
    cur = {"mesh": cur_mesh({}), "bridge": cur_bridge({})}
    assert lines(plan(d, cur, hosts=None)) == ["+ bridge vni 20 bridge=br20 allow=none"]


def test_first_load_without_a_required_option_is_refused():
    d = config.parse('[gateway]\nclients = [ { mac = "02:00:00:00:10:01", worker = "w1" } ]\n', "g.toml")
    with pytest.raises(ConfigError) as e:
        plan(d, {"gateway": Current("gateway")})
    assert str(e.value) == ("g.toml: gateway: missing key 'trunk' "
                            "(gateway is not loaded here, and a first load needs it)")


def test_config_show_reads_back_to_a_plan_with_nothing_to_do():
    cur = {"mesh": cur_mesh({30: ("br30", ["10.0.0.2", "10.0.0.3"])}),
           "bridge": cur_bridge({10: ("br10", None), 20: ("br20", ips("10.0.0.2", "10.0.0.3")),
                                 21: ("br21", ())})}
    cur["bridge"].children[11] = BridgeVni(11, "br11", IPAddress("239.1.1.11"), None)
    text = config.dump(current_spec(cur), "shown")
    assert 'vnis = [\n  { vni = 10, bridge = "br10" },' in text
    assert '{ vni = 11, bridge = "br11", group = "239.1.1.11" }' in text
    assert '{ vni = 21, bridge = "br21", allow = [] }' in text
    d = config.parse(text, "shown.toml")
    assert plan(d, cur) == []


def test_cluster_routes_default_on_and_round_trip_through_config_show():
    d = config.parse(FULL, "cfg.toml")
    assert d.cluster.routes is True
    off = config.parse(FULL.replace("ttl = 10\n", "ttl = 10\nroutes = false\n"), "cfg.toml")
    assert off.cluster == config.Cluster(["http://10.0.0.250:2379"], "default", 10, False)
    for want in (d, off):
        text = config.dump(want.functions, "shown", want.host, want.cluster)
        assert f"routes = {'true' if want.cluster.routes else 'false'}" in text
        back = config.parse(text, "shown.toml")
        assert (back.host, back.cluster, back.functions) == (want.host, want.cluster, want.functions)
        assert config.to_data({}, want.host, want.cluster) == {
            "host": {"name": "h0"},
            "cluster": {"etcd": ["http://10.0.0.250:2379"], "name": "default", "ttl": 10,
                        "routes": want.cluster.routes}}
