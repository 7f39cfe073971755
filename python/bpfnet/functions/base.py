"""What every network function shares: pin dirs, locking, loading, undo.

    fn = Bridge(PinDir("/sys/fs/bpf/bpfnet", "host"))
    with fn.locked():
        fn.load(underlay="eth0")

A function's maps and programs are pinned in ``<root>/<ns>/<function>/``.
Loading opens the object with that directory as libbpf's pin root, so maps
already pinned there are reused (their contents survive an upgrade) and new
ones are pinned there. Programs are pinned beside them under their own names.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os

from .. import libbpf
from ..errors import ConfigError, KernelError, NotFound
from ..maps import Map, PerCpuArray

BPF_FS_MAGIC = 0xCAFE4A11
DEFAULT_PIN_ROOT = "/sys/fs/bpf/bpfnet"
_REPO_OBJ_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "build", "bpf")
_PKG_OBJ_DIR = os.path.join(os.path.dirname(__file__), "..", "bpf")


def obj_dir() -> str:
    """Where the precompiled objects are: $BPFNET_OBJ_DIR, the checkout's
    build/bpf, or the installed package's bpf/."""
    env = os.environ.get("BPFNET_OBJ_DIR")
    if env:
        return env
    for d in (_REPO_OBJ_DIR, _PKG_OBJ_DIR):
        if os.path.isdir(d):
            return os.path.normpath(d)
    return os.path.normpath(_REPO_OBJ_DIR)


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_long * 15)]


_libc = ctypes.CDLL(None, use_errno=True)


def fs_type(path: str) -> int | None:
    buf = _Statfs()
    if _libc.statfs(path.encode(), ctypes.byref(buf)) != 0:
        return None
    return buf.f_type & 0xFFFFFFFF


def netns_exec_name() -> str | None:
    """The namespace name if this process runs under `ip netns exec`, which
    remounts /sys (a sysfs whose source is the namespace name) and so hides
    the host's /sys/fs/bpf."""
    try:
        names = set(os.listdir("/var/run/netns"))
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields, rfields = left.split(), right.split()
                if len(fields) > 4 and fields[4] == "/sys" and rfields[:1] == ["sysfs"] \
                        and len(rfields) > 1 and rfields[1] in names:
                    return rfields[1]
    except OSError:
        pass
    return None


def ensure_bpffs(root: str) -> None:
    """Makes sure ``root`` lies on bpffs, mounting /sys/fs/bpf if absent."""
    probe = root
    while not os.path.exists(probe):
        probe = os.path.dirname(probe) or "/"
    if fs_type(probe) == BPF_FS_MAGIC:
        return
    if root.startswith("/sys/fs/bpf") and fs_type("/sys/fs/bpf") != BPF_FS_MAGIC:
        hidden = netns_exec_name()
        if hidden:
            raise ConfigError(f"bpffs is hidden under `ip netns exec {hidden}` (it remounts /sys): "
                              f"pins would vanish; use bpfnetctl --netns {hidden} instead")
        os.makedirs("/sys/fs/bpf", exist_ok=True)
        if _libc.mount(b"bpf", b"/sys/fs/bpf", b"bpf", 0, None) != 0:
            err = ctypes.get_errno()
            raise KernelError(f"mount bpffs on /sys/fs/bpf: {os.strerror(err)}")
        return
    raise ConfigError(f"pin root {root} is not on a bpf filesystem")


TCX = {"ingress": libbpf.BPF_TCX_INGRESS, "egress": libbpf.BPF_TCX_EGRESS}
QDISC_MAP = "bpfnet_qdisc"  # pinned: ifindex -> 1 for clsact qdiscs bpfnet created


def attach_mode() -> str:
    """"tcx" where the kernel has tcx links (probed, never by version),
    "tc" (clsact + cls_bpf) otherwise. BPFNET_ATTACH=tc|tcx forces one."""
    forced = os.environ.get("BPFNET_ATTACH")
    if forced in ("tc", "tcx"):
        return forced
    return "tcx" if libbpf.tcx_supported() else "tc"


class PinDir:
    """``<root>/<ns>``: the pins of every function of one namespace."""

    def __init__(self, root: str, ns: str = "host"):
        self.root = os.path.abspath(root)
        self.ns = ns
        self.path = os.path.join(self.root, ns)

    def function_dir(self, fn: str) -> str:
        return os.path.join(self.path, fn)

    @contextlib.contextmanager
    def locked(self, create: bool = True):
        """Serializes commands on this namespace's instances (flock on its
        pin dir). A killed holder releases the lock with its last fd."""
        if create:
            ensure_bpffs(self.root)
            os.makedirs(self.path, mode=0o700, exist_ok=True)
            os.chmod(self.root, 0o700)
            os.chmod(self.path, 0o700)
        elif not os.path.isdir(self.path):
            yield
            return
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def loaded(self) -> list[str]:
        if not os.path.isdir(self.path):
            return []
        return sorted(d for d in os.listdir(self.path)
                      if os.path.isdir(os.path.join(self.path, d)))

    def remove_if_empty(self) -> None:
        for d in (self.path, self.root):
            try:
                os.rmdir(d)
            except OSError:
                return


def _unlink_quiet(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class Undo:
    """A stack of compensating actions: a failing command runs them in
    reverse, so it leaves the system as it was."""

    def __init__(self):
        self._actions = []

    def push(self, fn, *args, **kw):
        self._actions.append((fn, args, kw))

    def run(self):
        while self._actions:
            fn, args, kw = self._actions.pop()
            with contextlib.suppress(Exception):
                fn(*args, **kw)

    def clear(self):
        self._actions.clear()

    def __enter__(self):
        return self

    def __exit__(self, typ, exc, tb):
        if typ is not None:
            self.run()
        return False


class Function:
    """Base of Bridge, Mesh, Gateway, Monitor.

    Subclasses set ``name``, ``programs`` and ``maps`` (map name -> (key
    class, value class) or ("percpu", value class))."""

    name = ""
    programs: tuple = ()
    maps: dict = {}

    def __init__(self, pins: PinDir, net=None):
        self.pins = pins
        self.dir = pins.function_dir(self.name)
        self._net = net
        self._open_maps: dict = {}

    # --- state ---------------------------------------------------------------
    @property
    def obj_path(self) -> str:
        return os.path.join(obj_dir(), f"{self.name}.bpf.o")

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

    def map(self, name: str):
        """The pinned map ``name``, opened once per command."""
        m = self._open_maps.get(name)
        if m is None:
            spec = self.maps[name]
            path = os.path.join(self.dir, name)
            if spec[0] == "percpu":
                m = PerCpuArray.pinned(path, spec[1])
            else:
                m = Map.pinned(path, spec[0], spec[1])
            self._open_maps[name] = m
        return m

    def close_maps(self):
        for m in self._open_maps.values():
            m.close()
        self._open_maps.clear()

    def close(self):
        self.close_maps()
        if self._net is not None:
            self._net.close()
            self._net = None

    def stats(self) -> dict[str, int]:
        """The function's per-CPU counters (a struct of __u64), summed, by name."""
        return self.map(self.stats_map).sum_fields(0)

    stats_map = ""

    # --- loading -------------------------------------------------------------
    # Pinned maps whose definition differs from the object's (a new bpfnet
    # with another max_entries, flags or layout) are migrated on load: the old
    # pin is set aside as <name>_old, the object creates the new map, entries
    # are copied (through a converter when the layout changed), the old pin
    # goes. A layout change with no converter is refused, nothing changed.
    # migrations: {(map, old key size, old value size): fn(key, value) ->
    # (key, value) on bytes}
    migrations: dict = {}

    def _migration_plan(self, obj: libbpf.BpfObject) -> list:
        plan = []
        for name in obj.map_names():
            pin = os.path.join(self.dir, name)
            if name not in self.maps or not os.path.exists(pin):
                continue
            fd = libbpf.obj_get(pin)
            try:
                info = libbpf.map_info(fd)
            finally:
                os.close(fd)
            have = (info.type, info.key_size, info.value_size, info.max_entries, info.map_flags)
            want = obj.map_def(name)
            if have == want:
                continue
            if have[:3] == want[:3]:
                conv = None  # same layout: copied as is
            else:
                conv = self.migrations.get((name, info.key_size, info.value_size))
                if conv is None or have[0] != want[0]:
                    raise KernelError(
                        f"pinned map {name} (type {have[0]}, key {have[1]} B, value {have[2]} B) "
                        f"does not match {os.path.basename(self.obj_path)} (type {want[0]}, key "
                        f"{want[1]} B, value {want[2]} B) and has no migration: "
                        f"`bpfnetctl unload {self.name}` starts afresh")
            plan.append((name, conv, have, want))
        return plan

    def _migrate(self, plan, undo: Undo) -> None:
        for name, conv, have, want in plan:
            pin = os.path.join(self.dir, name)
            old = os.path.join(self.dir, f"{name}_old")
            os.replace(pin, old)
            undo.push(os.replace, old, pin)

    def _copy_migrated(self, plan) -> None:
        ncpu = libbpf.num_possible_cpus()
        for name, conv, have, want in plan:
            percpu = have[0] in (5, 6, 10)
            vsz = lambda n: ((n + 7) // 8 * 8) * ncpu if percpu else n  # noqa: E731
            old_path = os.path.join(self.dir, f"{name}_old")
            src = Map.pinned(old_path, ctypes.c_uint8 * have[1], ctypes.c_uint8 * vsz(have[2]))
            dst = Map.pinned(os.path.join(self.dir, name), ctypes.c_uint8 * want[1],
                             ctypes.c_uint8 * vsz(want[2]))
            try:
                for k, v in src.items():
                    kb, vb = bytes(k), bytes(v)
                    if conv is not None:
                        kb, vb = conv(kb, vb)
                    try:
                        dst[dst.key_type.from_buffer_copy(kb)] = dst.value_type.from_buffer_copy(vb)
                    except libbpf.BpfError as e:
                        if e.errno not in (errno.E2BIG, errno.ENOSPC):
                            raise
            finally:
                src.close()
                dst.close()
            os.unlink(old_path)

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
            plan = self._migration_plan(obj)
            self._migrate(plan, undo)
            before = set(os.listdir(self.dir))
            obj.load()
            for f in set(os.listdir(self.dir)) - before:
                undo.push(_unlink_quiet, os.path.join(self.dir, f))
            self._copy_migrated(plan)
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
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            libbpf.obj_pin(obj.prog_fd(prog), tmp)
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)

    def remove_pins(self) -> None:
        self.close_maps()
        if os.path.isdir(self.dir):
            for f in os.listdir(self.dir):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.dir, f))
            with contextlib.suppress(OSError):
                os.rmdir(self.dir)
        self.pins.remove_if_empty()

    def prog_pin_fd(self, prog: str) -> int:
        return libbpf.obj_get(os.path.join(self.dir, prog))

    # --- attach points -----------------------------------------------------
    # tcx: a bpf_link per hook, pinned as link_<hook>_<ifindex> beside the maps;
    # an upgrade updates the link in place (atomic), unload unpins it.
    # tc: clsact + a cls_bpf filter at bpfnet's prio/handle, replaced in place.
    def _link_pin(self, index: int, direction: str) -> str:
        return os.path.join(self.dir, f"link_{direction}_{index}")

    def attach(self, index: int, direction: str, prog_fd: int, prog_name: str,
               undo: Undo | None = None) -> str:
        """Attaches (or atomically replaces) this function's program on a hook;
        returns the mode used. ``undo`` gets the way back."""
        pin = self._link_pin(index, direction)
        if os.path.exists(pin):
            fd = libbpf.obj_get(pin)
            try:
                libbpf.link_update(fd, prog_fd)
            finally:
                os.close(fd)
            return "tcx"
        if self.net.ours_attached(index, direction) is None and attach_mode() == "tcx":
            fd = libbpf.link_create(prog_fd, index, TCX[direction])
            try:
                libbpf.obj_pin(fd, pin)
                os.chmod(pin, 0o600)
            finally:
                os.close(fd)
            if undo:
                undo.push(self.detach, index, direction)
            return "tcx"
        if self.net.clsact(index):
            self._qdisc_owned(index, True)
        self.net.attach(index, direction, prog_fd, prog_name)
        if undo:
            undo.push(self.detach, index, direction)
        return "tc"

    def detach(self, index: int, direction: str) -> None:
        """Removes this function's program from a hook, and the clsact qdisc
        if bpfnet created it and no filter is left on it."""
        pin = self._link_pin(index, direction)
        if os.path.exists(pin):
            os.unlink(pin)
        self.net.detach(index, direction)
        if self._qdisc_owned(index) and not (self.net.filters(index, "ingress")
                                             or self.net.filters(index, "egress")):
            self.net.del_clsact(index)
            self._qdisc_owned(index, False)

    def attached(self, index: int, direction: str) -> dict:
        """{"program": name or None, "mode": "tcx" | "tc" | None} for a hook."""
        pin = self._link_pin(index, direction)
        if os.path.exists(pin):
            fd = libbpf.obj_get(pin)
            try:
                info = libbpf.link_info(fd)
            finally:
                os.close(fd)
            if info.target[0] & 0xFFFFFFFF != index:  # defunct: the device went away
                return {"program": None, "mode": "tcx"}
            pfd = libbpf.prog_get_fd_by_id(info.prog_id)
            try:
                return {"program": libbpf.prog_info(pfd).name.decode(), "mode": "tcx"}
            finally:
                os.close(pfd)
        name = self.net.ours_attached(index, direction)
        return {"program": name, "mode": "tc" if name else None}

    def _qdisc_owned(self, index: int, set_to: bool | None = None) -> bool:
        path = os.path.join(self.dir, QDISC_MAP)
        if not os.path.exists(path):
            if not set_to:
                return False
            fd = libbpf.map_create(libbpf.BPF_MAP_TYPE_HASH, QDISC_MAP, 4, 4, 4096)
            try:
                libbpf.obj_pin(fd, path)
                os.chmod(path, 0o600)
            finally:
                os.close(fd)
        m = Map.pinned(path, ctypes.c_uint32, ctypes.c_uint32)
        try:
            key = ctypes.c_uint32(index)
            if set_to is None:
                return key in m
            if set_to:
                m[key] = ctypes.c_uint32(1)
            else:
                m.discard(key)
            return set_to
        finally:
            m.close()

    def evictions(self, name: str, entries: int) -> int | None:
        """How many entries an LRU map evicted, where the function can tell."""
        return None

    def map_fill(self) -> dict[str, dict]:
        """{map: {"entries", "max_entries", "evictions" (LRU maps)}}."""
        out = {}
        for name, spec in self.maps.items():
            m = self.map(name)
            if m.info.type in (2, 6):  # arrays (plain, per-CPU) are always full
                n = m.max_entries
            elif m.info.type in (1, 9):  # hash, LRU hash: batch walk
                n = len(m.dump())
            else:
                n = len(m.keys_list())
            out[name] = {"entries": n, "max_entries": m.max_entries}
            if m.info.type in (9, 10):  # LRU_HASH, LRU_PERCPU_HASH
                out[name]["evictions"] = self.evictions(name, n)
        return out
