"""Load options: one declaration per function of what ``load`` takes and
which of it may change on a loaded function.

    class Bridge(Overlay):
        options = (UNDERLAY, LOCAL, GROUP, PORT, DEVICE,
                   Option("ageing", text(validate.seconds), in_place=True, default=300,
                          cfg_field="ageing_s", metavar="SECONDS", help="FDB ageing time"))

The same declaration makes the CLI's ``load FUNCTION`` arguments
(``commands/``), the config file's keys (``apply -f``), and drives the second
load in :meth:`Function.load`: an option given with the value the function
is loaded with changes nothing; another value is applied in place if
``in_place``, else refused (exit 2) with :func:`refusal`'s line.

``cfg_field`` names the field of the function's one-entry cfg struct that
holds the value: the base reads it back (zero reads as ``default``) and, for
an in-place option, writes it. Options held elsewhere (a device's name, the
VXLAN device's port) are read by the function's ``option_values()``.

Adding an option is one line in the function's ``options``; the CLI's
``--encap``, the config key, ``loaded_options()`` and the second-load rule
follow from it, and ``setup`` finds the value in ``values["encap"]``:

    Option("encap", choice("native", "device"), in_place=False, default="native",
           cfg_field="encap", metavar="native|device", help="how frames are encapsulated")

(a choice is stored in its cfg field by index; a value kept elsewhere, such
as a flag bit, is read in ``option_values()`` and, in place, written in
``apply_option()``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from netaddr import IPAddress

from .. import validate
from ..errors import ConfigError


def text(fn: Callable[[str], Any]) -> Callable[[Any], Any]:
    """A validate.* parser (text in) that also takes a config file's int."""
    def parse(value):
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ConfigError(f"invalid value {value!r}: want a string or a number")
        return fn(str(value))
    parse.__name__ = fn.__name__
    return parse


def choice(*names: str) -> Callable[[Any], str]:
    """A parser for one of ``names`` (``--encap native|device``)."""
    def parse(value):
        if value not in names:
            raise ConfigError(f"invalid choice {value!r}: one of {', '.join(names)}")
        return value
    parse.__name__ = "choice"
    parse.choices = names
    return parse


def on_off(value) -> str:
    """``on`` or ``off`` (``--suppress off``); a config file may say
    ``suppress = "off"`` or ``suppress = false``."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value not in ("on", "off"):
        raise ConfigError(f"invalid choice {value!r}: one of on, off")
    return value


on_off.choices = ("on", "off")


@dataclass(frozen=True)
class Option:
    name: str                   # CLI long option (--NAME) and config key
    parse: Callable[[Any], Any]  # text or config value -> value; raises ConfigError
    in_place: bool              # may change on a loaded function
    help: str = ""
    metavar: str | None = None
    default: Any = None         # what a first load takes when not given (None: nothing)
    required: bool = False      # a first load needs it
    cfg_field: str = ""         # field of the cfg struct holding it (see the module doc)

    @property
    def flag(self) -> str:
        return f"--{self.name}"

    @property
    def choices(self) -> tuple:
        return getattr(self.parse, "choices", ())

    def show(self, value):
        """The JSON form of a value: ints stay ints, None stays None,
        anything else (an IPAddress, a choice) is its text."""
        if value is None or isinstance(value, int) and not isinstance(value, bool):
            return value
        return str(value)

    def encode(self, value) -> int | IPAddress:
        """A value as its cfg field holds it: a choice by its index."""
        return self.choices.index(value) if self.choices else value

    def decode(self, raw):
        if self.choices:
            return self.choices[raw] if raw < len(self.choices) else raw
        return raw


def refusal(fn: str, opt: Option, loaded) -> ConfigError:
    """The line for an option that may not change on a loaded function."""
    have = f"{opt.name} {opt.show(loaded)}" if loaded is not None else f"no {opt.flag}"
    return ConfigError(f"{opt.flag}: {fn} is loaded with {have}; "
                       f"`bpfnetctl unload {fn}` is needed to change it")


def missing(opt: Option) -> ConfigError:
    return ConfigError(f"no {opt.flag}: give {opt.flag} {opt.metavar or opt.name.upper()} "
                       f"(required on a first load)")


def parse_all(options: tuple[Option, ...], values: dict, where: str = "") -> dict:
    """Config-file values (by option name) through each option's parser;
    unknown names are refused. Returns {name: value}."""
    by_name = {o.name: o for o in options}
    out = {}
    for k, v in values.items():
        opt = by_name.get(k)
        if opt is None:
            raise ConfigError(f"{where}unknown option {k!r}: one of {', '.join(by_name)}")
        try:
            out[k] = None if v is None else opt.parse(v)
        except ConfigError as e:
            raise ConfigError(f"{where}{k}: {e}") from None
    return out


def describe_changes(changed: dict) -> str:
    """``ageing 300 -> 60, port 4789 -> 4790`` or ``nothing changed``."""
    if not changed:
        return "nothing changed"
    return ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items())


# --- shared by the bridge and the mesh ------------------------------------------
UNDERLAY = Option("underlay", text(validate.ifname), in_place=False, metavar="DEV",
                  help="underlay device (default: the device holding --local, "
                       "else the default route's)")
LOCAL = Option("local", text(validate.unicast_ip), in_place=False, metavar="IP", cfg_field="local",
               help="local VTEP address (default: the underlay's, routing picks)")
PORT = Option("port", text(validate.udp_port), in_place=False, metavar="PORT", default=4789,
              help="VXLAN UDP port (default 4789)")
DEVICE = Option("device", text(validate.ifname), in_place=False, metavar="NAME",
                default="vxlan0", help="VXLAN device (default vxlan0)")
ENCAP = Option("encap", choice("native", "device"), in_place=True, metavar="native|device",
               default="native", help="native: the programs encapsulate (default, where the "
                                      "kernel allows it); device: through the VXLAN device")
# the bridge's (held in br_cfg.flags: Bridge.option_values / apply_option)
SUPPRESS = Option("suppress", on_off, in_place=True, metavar="on|off", default="on",
                  help="on: ARP requests and neighbour solicitations for a bound IP are "
                       "answered on the port (default); off: they flood")
