"""Static FDB entries in the desired-state file (``fdb = [ { mac, remote,
ip } ]`` under a bridge VNI), root-free: parsing, bad entries with their
exact one-line message, the plan (add, change, remove; absent key: left
alone; a re-made VNI gets them back) and config show's TOML read back."""
import pytest
from netaddr import IPAddress

from bpfnet import config
from bpfnet.apply import Current, current_spec, plan
from bpfnet.config import BridgeVni, StaticMac
from bpfnet.errors import ConfigError

M1, M2 = "02:00:00:0a:00:02", "02:00:00:0a:00:03"


def bridge_file(fdb: str | None) -> str:
    extra = f", fdb = {fdb}" if fdb is not None else ""
    return f'[bridge]\nlocal = "10.0.0.1"\nvnis = [ {{ vni = 10, bridge = "br10"{extra} }} ]\n'


def cur(fdb=(), allow=None, broken=False):
    c = Current("bridge", loaded=True, options={"local": "10.0.0.1", "group": "239.1.1.1"})
    c.children = {10: BridgeVni(10, "br10", IPAddress("239.1.1.1"), allow, fdb=tuple(fdb))}
    if broken:
        c.broken_children = {10: "bridge_egress is not on bnp10"}
    return {"bridge": c}


def sm(mac, remote, *ips):
    return StaticMac(mac, IPAddress(remote), tuple(IPAddress(i) for i in ips))


def lines(actions):
    return [str(a) for a in actions]


def test_entries_parse_sorted_by_mac_with_ip_a_string_or_a_list():
    d = config.parse(bridge_file(f'[ {{ mac = "{M2.upper()}", remote = "10.0.0.3", ip = "192.168.0.3" }}, '
                                 f'{{ mac = "{M1}", remote = "10.0.0.2", ip = ["fd10::2", "192.168.0.2"] }} ]'),
                     "f.toml")
    assert d.functions["bridge"].children[10].fdb == (
        sm(M1, "10.0.0.2", "192.168.0.2", "fd10::2"), sm(M2, "10.0.0.3", "192.168.0.3"))
    assert config.parse(bridge_file(None), "f.toml").functions["bridge"].children[10].fdb is None
    assert config.parse(bridge_file("[]"), "f.toml").functions["bridge"].children[10].fdb == ()


BAD = [
    ('"x"', "f.toml: bridge.vnis[0].fdb: expected an array of tables, not a string"),
    (f'[ {{ mac = "{M1}" }} ]', "f.toml: bridge.vnis[0].fdb[0]: missing key 'remote'"),
    (f'[ {{ mac = "{M1}", remote = "10.0.0.2", vni = 3 }} ]',
     "f.toml: bridge.vnis[0].fdb[0].vni: unknown key (known: mac, remote, ip)"),
    ('[ { mac = "zz", remote = "10.0.0.2" } ]',
     "f.toml: bridge.vnis[0].fdb[0].mac: invalid MAC address 'zz'"),
    (f'[ {{ mac = "{M1}", remote = "239.1.1.1" }} ]',
     "f.toml: bridge.vnis[0].fdb[0].remote: invalid unicast IP address '239.1.1.1'"),
    (f'[ {{ mac = "{M1}", remote = "10.0.0.2", ip = ["x"] }} ]',
     "f.toml: bridge.vnis[0].fdb[0].ip[0]: invalid IP address 'x'"),
    (f'[ {{ mac = "{M1}", remote = "10.0.0.2" }}, {{ mac = "{M1.upper()}", remote = "10.0.0.3" }} ]',
     f"f.toml: bridge.vnis[0].fdb[1].mac: {M1} is listed twice"),
]


@pytest.mark.parametrize("fdb,line", BAD, ids=[b[1].split(": ", 2)[2][:40] for b in BAD])
def test_a_bad_entry_is_one_line(fdb, line):
    with pytest.raises(ConfigError) as e:
        config.parse(bridge_file(fdb), "f.toml")
    assert str(e.value) == line


def test_plan_adds_changes_and_removes_static_entries():
    d = config.parse(bridge_file(f'[ {{ mac = "{M1}", remote = "10.0.0.2", ip = "192.168.0.2" }} ]'),
                     "f.toml")
    assert lines(plan(d, cur())) == [
        f"+ bridge vni 10 fdb {M1} remote=10.0.0.2 ip=192.168.0.2"]
    assert plan(d, cur([sm(M1, "10.0.0.2", "192.168.0.2")])) == []
    assert lines(plan(d, cur([sm(M1, "10.0.0.4")]))) == [
        f"~ bridge vni 10 fdb {M1} remote=10.0.0.4 -> remote=10.0.0.2 ip=192.168.0.2"]
    assert lines(plan(d, cur([sm(M2, "10.0.0.3"), sm(M1, "10.0.0.2", "192.168.0.2")]))) == [
        f"- bridge vni 10 fdb {M2}"]


def test_no_fdb_key_leaves_static_entries_alone_an_empty_one_removes_them():
    have = cur([sm(M1, "10.0.0.2")])
    assert plan(config.parse(bridge_file(None), "f.toml"), have) == []
    assert lines(plan(config.parse(bridge_file("[]"), "f.toml"), have)) == [
        f"- bridge vni 10 fdb {M1}"]


def test_a_re_made_vni_gets_its_static_entries_back():
    have = cur([sm(M1, "10.0.0.2")], broken=True)
    assert lines(plan(config.parse(bridge_file(None), "f.toml"), have)) == [
        "~ bridge vni 10 re-create: bridge_egress is not on bnp10",
        f"+ bridge vni 10 fdb {M1} remote=10.0.0.2"]


def test_config_show_writes_them_and_reads_back_to_nothing_to_do():
    have = cur([sm(M1, "10.0.0.2", "192.168.0.2", "fd10::2"), sm(M2, "10.0.0.3")])
    text = config.dump(current_spec(have), "shown")
    assert (f'{{ vni = 10, bridge = "br10", fdb = [{{ mac = "{M1}", remote = "10.0.0.2", '
            f'ip = ["192.168.0.2", "fd10::2"] }}, {{ mac = "{M2}", remote = "10.0.0.3" }}] }}') in text
    assert plan(config.parse(text, "shown.toml"), have) == []
