"""The command line without running a command: every command parsed with good
and bad arguments through the Cli parser (the handler it picks, the values,
the exact usage error), and the table and JSON renderers. Pure: no root."""
import argparse
import json

import pytest
from netaddr import EUI, IPAddress

from bpfnet.cli import Cli, UsageError, table, to_json


@pytest.fixture(scope="module")
def cli():
    return Cli()


def leaves(parser, path=()):
    """Every command a user can type: ("vni", "add"), ("status",), ..."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path
        return
    for name, sp in subs[0].choices.items():
        yield from leaves(sp, path + (name,))


# (argv, handler name, {attribute: parsed value}); global options first
GOOD = [
    (["status"], "_status", {"json": False, "netns": None, "verbose": False}),
    (["--netns", "h0", "-v", "status", "--json"], "_status",
     {"json": True, "netns": "h0", "verbose": True}),
    (["--pin-root", "/sys/fs/bpf/x", "doctor"], "_doctor", {"pin_root": "/sys/fs/bpf/x"}),
    (["doctor", "--json"], "_doctor", {"json": True}),
    (["unload", "bridge"], "_unload", {"function": "bridge"}),
    (["unload", "monitor"], "_unload", {"function": "monitor"}),
    (["load", "bridge"], "_load", {"underlay": None, "local": None, "group": None}),
    (["load", "bridge", "--underlay", "eth0", "--local", "10.99.0.1", "--group", "239.1.1.1",
      "--port", "4790", "--device", "vx0", "--ageing", "60", "--encap", "device",
      "--suppress", "off"], "_load",
     {"underlay": "eth0", "local": IPAddress("10.99.0.1"), "group": IPAddress("239.1.1.1"),
      "port": 4790, "device": "vx0", "ageing": 60, "encap": "device", "suppress": "off"}),
    (["load", "mesh", "--local", "fd00:99::1", "--port", "4789", "--device", "vxm",
      "--encap", "native"], "_load",
     {"local": IPAddress("fd00:99::1"), "port": 4789, "device": "vxm", "encap": "native"}),
    (["load", "mesh", "--underlay", "eth0"], "_load", {"underlay": "eth0", "local": None}),
    (["load", "gateway", "--trunk", "eth1"], "_load", {"trunk": "eth1"}),
    (["load", "monitor", "--dev", "eth0"], "_load", {"dev": "eth0", "port": None}),
    (["load", "monitor", "--dev", "eth0", "--port", "8472"], "_load", {"port": 8472}),
    (["vni", "add", "10", "--bridge", "br10"], "_vni_add",
     {"vni": 10, "bridge": "br10", "allow": None, "group": None}),
    (["vni", "add", "16777215", "--bridge", "br0", "--allow", "10.0.0.2,10.0.0.3",
      "--group", "239.1.1.20"], "_vni_add",
     {"vni": 16777215, "allow": [IPAddress("10.0.0.2"), IPAddress("10.0.0.3")],
      "group": IPAddress("239.1.1.20")}),
    (["vni", "del", "10"], "_vni_del", {"vni": 10}),
    (["vni", "show", "--json"], "_vni_show", {"json": True}),
    (["fdb", "show"], "_fdb_show", {"vni": None, "json": False}),
    (["fdb", "show", "--vni", "20", "--json"], "_fdb_show", {"vni": 20, "json": True}),
    (["fdb", "flush"], "_fdb_flush", {"vni": None}),
    (["fdb", "flush", "--vni", "7"], "_fdb_flush", {"vni": 7}),
    (["fdb", "add", "02:00:00:0a:00:02", "--vni", "10", "--remote", "10.99.0.2"], "_fdb_add",
     {"mac": EUI("02:00:00:0a:00:02"), "vni": 10, "remote": IPAddress("10.99.0.2"), "ip": None}),
    (["fdb", "add", "02:00:00:0a:00:02", "--vni", "10", "--remote", "fd00::2",
      "--ip", "192.168.0.2,fd10::2"], "_fdb_add",
     {"remote": IPAddress("fd00::2"), "ip": [IPAddress("192.168.0.2"), IPAddress("fd10::2")]}),
    (["fdb", "del", "02:00:00:0a:00:02", "--vni", "10"], "_fdb_del",
     {"mac": EUI("02:00:00:0a:00:02"), "vni": 10}),
    (["neigh", "add", "192.168.0.2", "--vni", "10", "--mac", "02:00:00:0a:00:02"], "_neigh_add",
     {"ip": IPAddress("192.168.0.2"), "vni": 10, "mac": EUI("02:00:00:0a:00:02")}),
    (["neigh", "del", "fd10::2", "--vni", "10"], "_neigh_del", {"ip": IPAddress("fd10::2"), "vni": 10}),
    (["neigh", "show"], "_neigh_show", {"vni": None, "json": False}),
    (["neigh", "show", "--vni", "10", "--json"], "_neigh_show", {"vni": 10, "json": True}),
    (["peer", "add", "10.99.0.2", "--vni", "10", "--bridge", "br10"], "_peer_add",
     {"remote": IPAddress("10.99.0.2"), "vni": 10, "bridge": "br10"}),
    (["peer", "del", "fd00:99::3", "--vni", "10"], "_peer_del",
     {"remote": IPAddress("fd00:99::3"), "vni": 10}),
    (["peer", "show"], "_peer_show", {"json": False}),
    (["peer", "show", "--json"], "_peer_show", {"json": True}),
    (["client", "add", "02:00:00:00:10:01", "--worker", "veth-w1"], "_client_add",
     {"mac": EUI("02:00:00:00:10:01"), "worker": "veth-w1"}),
    (["client", "del", "02:00:00:00:10:01"], "_client_del", {"mac": EUI("02:00:00:00:10:01")}),
    (["client", "show", "--json"], "_client_show", {"json": True}),
    (["stats"], "_stats", {"json": False, "watch": None}),
    (["stats", "--json"], "_stats", {"json": True}),
    (["stats", "--watch", "2", "--out", "/tmp/x", "--count", "3"], "_stats",
     {"watch": 2, "out": "/tmp/x", "count": 3}),
    (["ui"], "_ui", {"metrics_inner": False}),
    (["ui", "--listen", "127.0.0.1:9000", "--metrics-inner"], "_ui", {"metrics_inner": True}),
    (["demo", "bridge"], "_demo", {"name": "bridge", "keep": False}),
    (["demo", "monitor", "--keep"], "_demo", {"name": "monitor", "keep": True}),
    (["demo", "monitor", "--prefix", "bnx", "--listen", "127.0.0.1:8081"], "_demo",
     {"prefix": "bnx", "listen": ("127.0.0.1", 8081)}),
    # commands of the agent and the cluster
    (["apply", "-f", "host.toml"], "_apply", {"file": "host.toml", "dry_run": False}),
    (["apply", "-f", "host.toml", "--dry-run", "--json"], "_apply",
     {"dry_run": True, "json": True}),
    (["config", "show"], "_config_show", {"json": False}),
    (["config", "show", "--json"], "_config_show", {"json": True}),
    (["config", "show", "-f", "host.toml"], "_config_show", {"file": "host.toml", "json": False}),
    (["agent", "-f", "host.toml"], "_agent", {"file": "host.toml"}),
    (["agent", "--metrics", "127.0.0.1:9431", "--interval", "10", "--install-unit", "--dest",
      "/tmp/u"], "_agent", {"interval": 10, "install_unit": True, "dest": "/tmp/u"}),
    (["cluster", "show"], "_show", {"json": False}),
    (["cluster", "show", "--json"], "_show", {"json": True}),
    (["cluster", "show", "-f", "h0.toml", "--etcd", "http://10.0.0.250:2379", "--etcd",
      "http://10.0.0.251:2379", "--cluster", "c1"], "_show",
     {"file": "h0.toml", "etcd": ["http://10.0.0.250:2379", "http://10.0.0.251:2379"],
      "cluster": "c1"}),
    (["cluster", "macs"], "_macs", {"json": False, "vni": None, "host": None}),
    (["cluster", "macs", "--json", "--vni", "10", "--host", "h1", "-f", "h0.toml", "--etcd",
      "http://10.0.0.250:2379", "--cluster", "c1"], "_macs",
     {"json": True, "vni": 10, "host": "h1", "file": "h0.toml",
      "etcd": ["http://10.0.0.250:2379"], "cluster": "c1"}),
]

# (argv, the exact usage error); what bpfnetctl prints after "bpfnetctl: error: "
BAD = [
    ([], "the following arguments are required: COMMAND"),
    (["bogus"], None),   # invalid choice: the list of commands (grows with them)
    (["status", "--bogus"], "unrecognized arguments: --bogus"),
    (["doctor", "extra"], "unrecognized arguments: extra"),
    (["unload"], "the following arguments are required: FUNCTION"),
    (["unload", "router"], "argument FUNCTION: invalid choice: 'router' "
                           "(choose from 'bridge', 'mesh', 'gateway', 'monitor')"),
    (["load"], "the following arguments are required: FUNCTION"),
    (["load", "bridge", "--group", "10.0.0.1"],
     "argument --group: invalid group '10.0.0.1': not a multicast address"),
    (["load", "bridge", "--port", "0"], "argument --port: invalid port '0': must be 1..65535"),
    (["load", "bridge", "--local", "239.1.1.1"],
     "argument --local: invalid unicast IP address '239.1.1.1'"),
    (["load", "bridge", "--underlay", "a/b"], "argument --underlay: invalid interface name 'a/b'"),
    (["load", "bridge", "--ageing", "0"],
     "argument --ageing: invalid seconds '0': must be 1..1000000"),
    (["load", "mesh", "--local", "x"], "argument --local: invalid IP address 'x'"),
    (["load", "mesh", "--group", "239.1.1.1"], "unrecognized arguments: --group 239.1.1.1"),
    (["load", "gateway", "--trunk", ""], "argument --trunk: invalid interface name ''"),
    (["load", "monitor", "--dev"], "argument --dev: expected one argument"),
    (["load", "monitor", "--dev", "eth0", "--port", "x"],
     "argument --port: invalid port 'x': not a number"),
    (["vni", "add", "0", "--bridge", "br0"], "argument VNI: invalid VNI '0': must be 1..16777215"),
    (["vni", "add", "10"], "the following arguments are required: --bridge"),
    (["vni", "add", "10", "--bridge", "br10", "--allow", "10.0.0.2,"],
     "argument --allow: invalid address list '10.0.0.2,'"),
    (["vni", "add", "10", "--bridge", "br10", "--group", "10.0.0.1"],
     "argument --group: invalid group '10.0.0.1': not a multicast address"),
    (["vni", "del"], "the following arguments are required: VNI"),
    (["vni", "del", "16777216"], "argument VNI: invalid VNI '16777216': must be 1..16777215"),
    (["vni", "show", "10"], "unrecognized arguments: 10"),
    (["fdb", "show", "--vni", "x"], "argument --vni: invalid VNI 'x': not a number"),
    (["fdb", "flush", "--vni", "0"], "argument --vni: invalid VNI '0': must be 1..16777215"),
    (["fdb", "add", "02:00:00:0a:00:02", "--vni", "10"],
     "the following arguments are required: --remote"),
    (["fdb", "add", "ff:ff:ff:ff:ff:ff", "--vni", "10", "--remote", "10.99.0.2"],
     "argument MAC: invalid MAC address 'ff:ff:ff:ff:ff:ff': not unicast"),
    (["fdb", "add", "02:00:00:0a:00:02", "--vni", "10", "--remote", "10.99.0.2", "--ip", "x"],
     "argument --ip: invalid IP address 'x'"),
    (["fdb", "del", "02:00:00:0a:00:02"], "the following arguments are required: --vni"),
    (["neigh", "add", "192.168.0.2", "--vni", "10"], "the following arguments are required: --mac"),
    (["neigh", "del", "224.0.0.1", "--vni", "10"],
     "argument IP: invalid unicast IP address '224.0.0.1'"),
    (["neigh", "show", "--vni", "x"], "argument --vni: invalid VNI 'x': not a number"),
    (["peer", "add", "239.1.1.1", "--vni", "10", "--bridge", "br10"],
     "argument REMOTE_IP: invalid unicast IP address '239.1.1.1'"),
    (["peer", "add", "10.99.0.2", "--bridge", "br10"],
     "the following arguments are required: --vni"),
    (["peer", "del", "10.99.0.2"], "the following arguments are required: --vni"),
    (["peer", "show", "--vni", "10"], "unrecognized arguments: --vni 10"),
    (["client", "add", "01:00:5e:00:00:01", "--worker", "w1"],
     "argument MAC: invalid MAC address '01:00:5e:00:00:01': not unicast"),
    (["client", "add", "02:00:00:00:10:01"], "the following arguments are required: --worker"),
    (["client", "del", "zz"], "argument MAC: invalid MAC address 'zz'"),
    (["client", "show", "x"], "unrecognized arguments: x"),
    (["stats", "--watch", "0"], "argument --watch: invalid seconds '0': must be 1..1000000"),
    (["stats", "--count", "0"], "argument --count: invalid count '0': must be 1..1000000"),
    (["ui", "--listen", "8080"],
     "argument --listen: invalid listen address '8080': want HOST:PORT"),
    (["demo"], None),    # the list of demos
    (["demo", "router"], None),
    (["demo", "bridge", "--prefix", "a/b"],
     "argument --prefix: invalid prefix 'a/b': 1 to 24 letters, digits or _"),
    (["apply"], "the following arguments are required: -f/--file"),
    (["config", "show", "x"], "unrecognized arguments: x"),
    (["agent", "--interval", "0"], "argument --interval: invalid seconds '0': must be 1..1000000"),
    (["agent", "--metrics", "x"], "argument --metrics: invalid listen address 'x': want HOST:PORT"),
    (["cluster", "show", "x"], "unrecognized arguments: x"),
    (["cluster", "show", "--etcd"], "argument --etcd: expected one argument"),
    (["cluster", "macs", "--vni", "0"], "argument --vni: invalid VNI '0': must be 1..16777215"),
    (["cluster", "macs", "x"], "unrecognized arguments: x"),
]


def present(rows):
    """The rows whose command this tree has (the agent's and the cluster's
    commands land on their own); the coverage test below holds every
    command there is to its rows."""
    names = {p[0] for p in leaves(Cli().parser)}
    return [r for r in rows if not r[0] or r[0][0] not in {"apply", "config", "agent", "cluster"}
            or r[0][0] in names]


def leaf(cli, argv):
    """The sub-parser ``argv`` ends in."""
    p = cli.parser
    for w in argv:
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if subs and w in subs[0].choices:
            p = subs[0].choices[w]
    return p


def value(parser, args, name):
    """The parsed value of option ``--name`` (or positional ``name``), wherever
    the parser stores it."""
    for a in parser._actions:
        if f"--{name.replace('_', '-')}" in a.option_strings or a.dest == name:
            return getattr(args, a.dest)
    return getattr(args, name)   # a global option


def _ids(rows):
    return [" ".join(r[0]) or "(nothing)" for r in rows]


GOOD, BAD = present(GOOD), present(BAD)


@pytest.mark.parametrize("argv,handler,values", GOOD, ids=_ids(GOOD))
def test_good(cli, argv, handler, values):
    args = cli.parser.parse_args(argv)
    assert args.handler.__name__ == handler
    assert {k: value(leaf(cli, argv), args, k) for k in values} == values


@pytest.mark.parametrize("argv,msg", BAD, ids=_ids(BAD))
def test_bad(cli, argv, msg):
    with pytest.raises(UsageError) as e:
        cli.parser.parse_args(argv)
    got = str(e.value)
    assert "\n" not in got
    if msg is None:
        assert "invalid choice" in got or "required" in got
    else:
        assert got == msg


def test_every_command_has_good_and_bad_rows(cli):
    """A command added without rows here fails this test: add them."""
    def covered(rows):
        out = set()
        for r in rows:
            words = tuple(a for a in r[0] if not a.startswith("-"))
            for path in leaves(cli.parser):
                if words[:len(path)] == path:
                    out.add(path)
        return out
    every = set(leaves(cli.parser))
    assert every - covered(GOOD) == set()
    assert every - covered(BAD) == set()


def test_every_option_is_parsed_in_a_good_row(cli):
    """Each option of each command (``--json`` included) appears in a good row."""
    missing = []
    for path in leaves(cli.parser):
        p = leaf(cli, list(path))
        used = {w for r in GOOD if leaf(cli, r[0]) is p for w in r[0]}
        missing += [(path, a.option_strings[-1]) for a in p._actions
                    if a.option_strings and a.dest != "help" and not set(a.option_strings) & used]
    assert missing == []


def test_help_is_not_an_error(cli, capsys):
    with pytest.raises(SystemExit) as e:
        cli.parser.parse_args(["vni", "add", "--help"])
    assert e.value.code == 0
    assert "--bridge" in capsys.readouterr().out


# --- rendering -----------------------------------------------------------------

def test_table_aligns_columns_and_upper_cases_the_header():
    rows = [{"vni": 10, "bridge": "br10", "allow": ["10.0.0.2", "10.0.0.3"]},
            {"vni": 200, "bridge": "b", "allow": []}]
    assert table(rows) == ("VNI  BRIDGE  ALLOW\n"
                           "10   br10    10.0.0.2,10.0.0.3\n"
                           "200  b       -")


def test_table_columns_in_first_seen_order_and_missing_cells():
    rows = [{"a": 1}, {"b": None, "a": 2}, {"c": "x"}]
    assert table(rows) == ("A  B  C\n"
                           "1  -  -\n"
                           "2  -  -\n"
                           "-  -  x")


def test_table_with_chosen_columns():
    rows = [{"mac": "02:00:00:00:00:01", "port": 7, "secret": 1}]
    assert table(rows, ["port", "mac"]) == "PORT  MAC\n7     02:00:00:00:00:01"


def test_table_of_nothing():
    assert table([]) == "(none)"


def test_to_json_indents_short_lists_and_packs_long_ones():
    short = [{"vni": 10}]
    assert to_json(short) == '[\n  {\n    "vni": 10\n  }\n]'
    long = [{"i": i} for i in range(1001)]
    text = to_json(long)
    assert "\n" not in text and json.loads(text) == long
    assert to_json({"a": [1]}) == '{\n  "a": [\n    1\n  ]\n}'
