"""The lifecycle every network function shares: load (a first load, or a
second one that upgrades in place), recover a load that died half-way,
unload.

    fn = Bridge(PinDir("/sys/fs/bpf/bpfnet", "host"))
    with fn.pins.locked():
        fn.load(underlay="eth0")  # {"upgraded": False, "changed": {}, ...}
        fn.load(ageing=60)        # {"upgraded": True, "changed": {"ageing": [300, 60]}, ...}

A function's maps and programs are pinned in ``<root>/<ns>/<function>/``.
Loading opens the object with that directory as libbpf's pin root, so maps
already pinned there are reused (their contents survive an upgrade, or are
migrated: :mod:`.migrate`) and new ones are pinned there. Programs are pinned
beside them, last: the commit point of a load.

Each function declares what differs: ``options`` (:mod:`.options`: its load
options and which may change in place), ``maps``, ``programs``, and four
steps: ``prepare`` (every check of a first load, before anything changes),
``setup`` (devices, cfg, attach), ``hooks`` (where its programs run, for an
upgrade) and ``teardown`` (what unload and recovery remove).

The other concerns live in their own modules: :mod:`.objects` (where the
objects are), :mod:`.bpffs`, :mod:`.pins` (PinDir, the lock), :mod:`.undo`,
:mod:`.migrate`, :mod:`.attach` (tc/tcx), :mod:`.mapset` (maps by name, fill).
"""
from __future__ import annotations

import contextlib
import ctypes
import os

from .. import libbpf
from ..errors import NotFound
from . import migrate
from .attach import Hooks
from .mapset import MapSet
from .objects import obj_path
from .options import Option, missing, refusal
from .pins import PinDir, unlink_quiet
from .undo import Undo

# names other modules and tests import from here
from .attach import QDISC_MAP, TCX, attach_mode  # noqa: F401
from .bpffs import BPF_FS_MAGIC, check_bpffs, ensure_bpffs, fs_type, netns_exec_name  # noqa: F401
from .objects import obj_dir  # noqa: F401
from .pins import DEFAULT_PIN_ROOT  # noqa: F401

C_U32 = ctypes.c_uint32


class Function(Hooks, MapSet):
    """Base of Bridge, Mesh, Gateway, Monitor."""

    name = ""
    programs: tuple = ()
    options: tuple[Option, ...] = ()
    cfg_map = ""          # the one-entry ARRAY of runtime settings
    cfg_type = None
    # {(map, old key size, old value size): fn(key, value) -> (key, value)}
    migrations: dict = {}

    def __init__(self, pins: PinDir, net=None):
        self.pins = pins
        self.dir = pins.function_dir(self.name)
        self._net = net
        self._open_maps: dict = {}

    # --- state ---------------------------------------------------------------
    @property
    def obj_path(self) -> str:
        return obj_path(self.name)

    def is_loaded(self) -> bool:
        """Maps and programs pinned. Programs are pinned last, so a load that
        was killed half-way is not "loaded" but :meth:`is_partial`."""
        return os.path.isdir(self.dir) and all(
            os.path.exists(os.path.join(self.dir, m)) for m in (*self.maps, *self.programs))

    def is_partial(self) -> bool:
        """Pins of a first load that did not finish (killed or crashed)."""
        return os.path.isdir(self.dir) and not self.is_loaded()

    def require_loaded(self) -> None:
        if not self.is_loaded():
            raise NotFound(f"{self.name} is not loaded in namespace {self.pins.ns}")

    @property
    def net(self):
        if self._net is None:
            from ..netlink import Net
            self._net = Net()
        return self._net

    def close(self):
        self.close_maps()
        if self._net is not None:
            self._net.close()
            self._net = None

    def cfg(self):
        return self.map(self.cfg_map)[C_U32(0)]

    def write_cfg(self, cfg) -> None:
        self.map(self.cfg_map)[C_U32(0)] = cfg

    # --- options -------------------------------------------------------------
    def option(self, name: str) -> Option:
        for o in self.options:
            if o.name == name:
                return o
        raise TypeError(f"{self.name} has no option {name!r}")

    def option_values(self) -> dict:
        """The values a loaded function runs with, by option name (parsed
        form: IPAddress, int, str; None for one that is not set). The base
        reads every option with a ``cfg_field``; functions add the others."""
        cfg = self.cfg() if self.cfg_map else None
        out = {}
        for o in self.options:
            if o.cfg_field and cfg is not None:
                raw = getattr(cfg, o.cfg_field)
                if isinstance(raw, ctypes.Structure):  # a bpfnet_ip
                    from ..abi import ip_is_zero, ip_unpack
                    val = None if ip_is_zero(raw) else ip_unpack(raw)
                else:
                    val = o.decode(raw) if raw else None
                out[o.name] = val if val is not None else o.default
        return out

    def loaded_options(self) -> dict:
        """The effective options of the loaded function, JSON-able, by
        option name (what ``config show`` prints; a load with them changes
        nothing). Options that are not set (``local`` without --local) are
        left out."""
        self.require_loaded()
        vals = self.option_values()
        return {o.name: o.show(vals[o.name]) for o in self.options if vals.get(o.name) is not None}

    def apply_option(self, opt: Option, value, undo: Undo) -> None:
        """Changes an in-place option on the loaded function: the base
        writes its ``cfg_field``; functions handle the others."""
        if not opt.cfg_field:
            raise NotImplementedError(f"{self.name}: in-place {opt.flag} has no cfg field")
        cfg = self.cfg()
        old = type(cfg).from_buffer_copy(cfg)
        enc = opt.encode(value)
        if not isinstance(enc, int):
            from ..abi import ip_pack
            enc = ip_pack(enc)
        setattr(cfg, opt.cfg_field, enc)
        self.write_cfg(cfg)
        undo.push(self.write_cfg, old)

    # --- what each function declares -----------------------------------------
    def prepare(self, values: dict, given: dict):
        """Every check of a first load, before anything changes; returns
        what ``setup`` needs (``values``: every option, defaults filled;
        ``given``: those the user gave)."""
        return values

    def setup(self, obj: libbpf.BpfObject, plan, undo: Undo) -> dict:
        """A first load's devices, cfg and attach points (intent first, each
        step pushed on ``undo``); returns the load's result."""
        raise NotImplementedError

    def check_reload(self, given: dict, have: dict) -> None:
        """On a loaded function, the checks a first load makes of the given
        values (an unknown device is exit 2 either way)."""

    def hooks(self) -> list[tuple[int, str, str]]:
        """(ifindex, "ingress" | "egress", program) of every attach point of
        the loaded function."""
        return []

    def result(self) -> dict:
        """A second load's result besides upgraded and changed."""
        return {}

    def repair(self) -> None:
        """A second load puts back what the function keeps outside its maps
        and the kernel may have dropped (the bridge's flood routes go with
        a link that goes down)."""

    def teardown(self, given: dict | None = None) -> None:
        """Removes the function's entries, attach points and devices;
        tolerant of a load or command that died half-way (``given``: the
        options of the load that finds it so)."""

    # --- the lifecycle -------------------------------------------------------
    def load(self, **given) -> dict:
        """Loads, or upgrades a loaded function in place. ``given``: options
        by name, None = not given. Returns {"upgraded", "changed": {name:
        [old, new]}, ...}. An option that may not change in place and
        differs from the loaded value is refused (ConfigError), nothing changed."""
        for k in given:
            self.option(k)
        given = {k: v for k, v in given.items() if v is not None}
        if self.is_loaded():
            return self._reload(given)
        if self.is_partial():
            self.recover(given)
        values = {o.name: given.get(o.name, o.default) for o in self.options}
        for o in self.options:
            if o.required and values[o.name] is None:
                raise missing(o)
        plan = self.prepare(values, given)
        with Undo() as undo:
            obj = self.open_object(undo)
            try:
                r = self.setup(obj, plan, undo)
                self.pin_programs(obj)
            finally:
                obj.close()
        return {"upgraded": False, "changed": {}, **r}

    def _reload(self, given: dict) -> dict:
        """A second load: the given options checked as on a first load,
        compared with the loaded ones, changed in place or refused; new
        programs on every hook, every map kept."""
        have = self.option_values()
        self.check_reload(given, have)
        changed = {}
        for o in self.options:
            if o.name not in given or given[o.name] == have.get(o.name):
                continue
            if not o.in_place:
                raise refusal(self.name, o, have.get(o.name))
            changed[o.name] = [o.show(have.get(o.name)), o.show(given[o.name])]
        with Undo() as undo:
            obj = self.open_object(undo)
            try:
                for name in changed:
                    self.apply_option(self.option(name), given[name], undo)
                for index, hook, prog in self.hooks():
                    self.attach(index, hook, obj.prog_fd(prog), prog)
                self.pin_programs(obj)
            finally:
                obj.close()
        self.repair()
        return {"upgraded": True, "changed": changed, **self.result()}

    def recover(self, given: dict | None = None) -> None:
        """Clears what a first load that died half-way left: its entries,
        attach points and devices (as far as its intent says), and pins."""
        with contextlib.suppress(Exception):  # half-made state: clear what can be
            self.teardown(given or {})
        self.remove_pins()

    def unload(self) -> None:
        if self.is_partial():
            self.recover()
            return
        self.require_loaded()
        self.teardown()
        self.remove_pins()

    # --- loading mechanics ---------------------------------------------------
    def open_object(self, undo: Undo) -> libbpf.BpfObject:
        """Opens and loads the object, reusing (or migrating) the pinned maps
        or creating them. On failure of the whole command, maps this call
        pinned are removed and migrated ones put back."""
        if not os.path.exists(self.obj_path):
            raise NotFound(f"object {self.obj_path} not found: run make")
        fresh = not os.path.isdir(self.dir)
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        os.chmod(self.dir, 0o700)
        if fresh:
            undo.push(self.remove_pins)
        obj = libbpf.BpfObject.open(self.obj_path, pin_root=self.dir)
        try:
            steps = migrate.plan(self.dir, self.maps, self.migrations, obj, self.name)
            migrate.set_aside(self.dir, steps, undo)
            before = set(os.listdir(self.dir))
            obj.load()
            for f in set(os.listdir(self.dir)) - before:
                undo.push(unlink_quiet, os.path.join(self.dir, f))
            migrate.copy(self.dir, steps)
        except BaseException:
            obj.close()
            raise
        for m in self.maps:
            p = os.path.join(self.dir, m)
            if os.path.exists(p):
                os.chmod(p, 0o600)
        return obj

    def pin_programs(self, obj: libbpf.BpfObject) -> None:
        """Pins each program beside the maps, replacing an older pin atomically."""
        for prog in self.programs:
            path = os.path.join(self.dir, prog)
            tmp = os.path.join(self.dir, f"{prog}_new")  # bpffs names take no dots
            unlink_quiet(tmp)
            libbpf.obj_pin(obj.prog_fd(prog), tmp)
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)

    def remove_pins(self) -> None:
        self.close_maps()
        if os.path.isdir(self.dir):
            for f in os.listdir(self.dir):
                unlink_quiet(os.path.join(self.dir, f))
            with contextlib.suppress(OSError):
                os.rmdir(self.dir)
        self.pins.remove_if_empty()

    def prog_pin_fd(self, prog: str) -> int:
        return libbpf.obj_get(os.path.join(self.dir, prog))

