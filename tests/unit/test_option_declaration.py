"""The load-option declaration (functions/options.py) and what the base makes
of it: the CLI's load arguments, config values, the loaded values read back
from a cfg struct, and the second load's rule (same value: nothing; another:
in place or refused with one exact line). Pure: no root, no kernel."""
import ctypes

import pytest
from netaddr import IPAddress

from bpfnet import abi
from bpfnet.cli import Cli, UsageError
from bpfnet.errors import ConfigError
from bpfnet.functions import FUNCTIONS, get
from bpfnet.functions.base import Function
from bpfnet.functions.options import (Option, choice, describe_changes, missing, parse_all,
                                      refusal, text)
from bpfnet.functions.pins import PinDir
from bpfnet import validate

# what may change on a loaded function (README "Upgrades: what a second load may change")
IN_PLACE = {
    "bridge": {"underlay": False, "local": False, "group": False, "port": False,
               "device": False, "ageing": True, "encap": True, "suppress": True},
    "mesh": {"underlay": False, "local": False, "port": False, "device": False, "encap": True},
    "gateway": {"trunk": False},
    "monitor": {"dev": False, "port": True},
}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_function_declares_its_options(name):
    cls = get(name)
    assert {o.name: o.in_place for o in cls.options} == IN_PLACE[name]
    assert all(o.help and callable(o.parse) for o in cls.options)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_load_arguments_are_the_declaration(name):
    """`load NAME --help` lists exactly the declared options, each parsed by
    the declaration's parser."""
    cli = Cli()
    sub = cli.load_sub.choices[name]
    flags = {s for a in sub._actions for s in a.option_strings} - {"-h", "--help"}
    assert flags == {o.flag for o in get(name).options}


def test_cli_parses_with_the_declared_parser():
    args = Cli().parser.parse_args(["load", "bridge", "--ageing", "60", "--local", "10.0.0.1"])
    assert (args.opt_ageing, args.opt_local, args.opt_group) == (60, IPAddress("10.0.0.1"), None)
    with pytest.raises(UsageError) as e:
        Cli().parser.parse_args(["load", "bridge", "--ageing", "0"])
    assert str(e.value) == "argument --ageing: invalid seconds '0': must be 1..1000000"


def test_config_values_go_through_the_same_parsers():
    opts = get("bridge").options
    assert parse_all(opts, {"port": 4790, "group": "239.1.1.7", "ageing": "60"}) == \
        {"port": 4790, "group": IPAddress("239.1.1.7"), "ageing": 60}
    assert parse_all(opts, {"suppress": "off"}) == parse_all(opts, {"suppress": False}) == \
        {"suppress": "off"}
    assert parse_all(opts, {"suppress": True}) == {"suppress": "on"}
    for values, msg in [
        ({"port": 0}, "port: invalid port '0': must be 1..65535"),
        ({"port": True}, "port: invalid value True: want a string or a number"),
        ({"group": "10.0.0.1"}, "group: invalid group '10.0.0.1': not a multicast address"),
        ({"ageing": [1]}, "ageing: invalid value [1]: want a string or a number"),
        ({"trunk": "eth1"}, "unknown option 'trunk': one of underlay, local, group, port, "
                            "device, ageing, encap, suppress"),
        ({"suppress": "no"}, "suppress: invalid choice 'no': one of on, off"),
    ]:
        with pytest.raises(ConfigError) as e:
            parse_all(opts, values)
        assert str(e.value) == msg, values


def test_refusal_and_missing_lines():
    fn = get("mesh")(PinDir("/sys/fs/bpf/x", "h"))
    port = fn.option("port")
    assert str(refusal("mesh", port, 4789)) == \
        "--port: mesh is loaded with port 4789; `bpfnetctl unload mesh` is needed to change it"
    assert str(refusal("bridge", fn.option("local"), None)) == \
        "--local: bridge is loaded with no --local; `bpfnetctl unload bridge` is needed to change it"
    trunk = get("gateway").options[0]
    assert str(missing(trunk)) == "no --trunk: give --trunk DEV (required on a first load)"
    with pytest.raises(TypeError):
        fn.option("group")


def test_describe_changes():
    assert describe_changes({}) == "nothing changed"
    assert describe_changes({"ageing": [300, 60], "port": [4789, 4790]}) == \
        "ageing 300 -> 60, port 4789 -> 4790"


def test_choice_option_is_offered_as_choices():
    enc = Option("encap", choice("native", "device"), in_place=False, default="native",
                 cfg_field="encap")
    assert enc.choices == ("native", "device")
    assert enc.parse("device") == "device"
    with pytest.raises(ConfigError):
        enc.parse("gre")
    assert (enc.encode("device"), enc.decode(1)) == (1, "device")


# --- the base's second load on a fake function (no maps, no kernel) ---------------

class FakeCfg(ctypes.Structure):
    _fields_ = [("ageing_s", ctypes.c_uint32), ("encap", ctypes.c_uint32),
                ("group", abi.BpfnetIP), ("local", abi.BpfnetIP)]


class FakeObj:
    def prog_fd(self, name):
        return -1

    def close(self):
        pass


class Fake(Function):
    """A function with an in-place option, a refused one, an IP one and a
    choice, its cfg in memory: what a one-line option addition gets."""
    name = "fake"
    cfg_map = "fake_cfg"
    options = (Option("ageing", text(validate.seconds), in_place=True, default=300,
                      cfg_field="ageing_s", help="h"),
               Option("group", text(validate.mcast_group), in_place=False, cfg_field="group",
                      help="h"),
               Option("local", text(validate.unicast_ip), in_place=False, cfg_field="local",
                      help="h"),
               Option("encap", choice("native", "device"), in_place=True, default="native",
                      cfg_field="encap", help="h"))

    def __init__(self):
        super().__init__(PinDir("/sys/fs/bpf/x", "h"))
        self._cfg = FakeCfg(ageing_s=300, group=abi.ip_pack("239.1.1.1"))
        self.attached_to = []

    def is_loaded(self):
        return True

    def cfg(self):
        return FakeCfg.from_buffer_copy(self._cfg)

    def write_cfg(self, cfg):
        self._cfg = FakeCfg.from_buffer_copy(cfg)

    def open_object(self, undo):
        return FakeObj()

    def hooks(self):
        return [(7, "ingress", "fake_ingress")]

    def attach(self, index, hook, fd, prog, undo=None):
        self.attached_to.append((index, hook, prog))

    def pin_programs(self, obj):
        pass


def test_loaded_values_are_read_from_the_cfg_fields():
    fn = Fake()
    assert fn.option_values() == {"ageing": 300, "group": IPAddress("239.1.1.1"),
                                  "local": None, "encap": "native"}
    assert fn.loaded_options() == {"ageing": 300, "group": "239.1.1.1", "encap": "native"}


def test_second_load_same_values_change_nothing_but_upgrade():
    fn = Fake()
    r = fn.load(ageing=300, group=IPAddress("239.1.1.1"), local=None)
    assert r == {"upgraded": True, "changed": {}}
    assert fn.attached_to == [(7, "ingress", "fake_ingress")]


def test_second_load_applies_in_place_options():
    fn = Fake()
    r = fn.load(ageing=60, encap="device")
    assert r["changed"] == {"ageing": [300, 60], "encap": ["native", "device"]}
    assert (fn._cfg.ageing_s, fn._cfg.encap) == (60, 1)
    assert fn.loaded_options()["encap"] == "device"


def test_second_load_refuses_before_changing_anything():
    fn = Fake()
    with pytest.raises(ConfigError) as e:
        fn.load(ageing=60, group=IPAddress("239.1.1.2"))
    assert str(e.value) == ("--group: fake is loaded with group 239.1.1.1; "
                            "`bpfnetctl unload fake` is needed to change it")
    assert fn._cfg.ageing_s == 300 and fn.attached_to == []
    with pytest.raises(ConfigError) as e:
        fn.load(local=IPAddress("10.0.0.1"))
    assert str(e.value).startswith("--local: fake is loaded with no --local;")


def test_unknown_option_is_a_programming_error():
    with pytest.raises(TypeError):
        Fake().load(colour="blue")
