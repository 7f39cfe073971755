"""Thin ctypes binding to the system libbpf (libbpf.so.1, 1.1.x and later).

With :mod:`bpfnet.libc`, the only module that calls ``ctypes.CDLL``. It knows
nothing of bridges, VNIs or VLANs: it takes and returns ctypes objects, bytes
and file descriptors.

    with BpfObject.open("build/bpf/bridge.bpf.o", pin_root="/sys/fs/bpf/x") as obj:
        obj.load()
        fd = obj.prog_fd("bridge_ingress")
        lookup(obj.map_fd("br_cfg"), key, value)

Errors follow libbpf 1.0 mode: an int result is a negative errno, a pointer
result is NULL with errno set. Both become :class:`BpfError`, which carries the
errno, the operation, the object or map name, libbpf's own text and the last
lines libbpf logged (the verifier log included).
"""
from __future__ import annotations

import collections
import ctypes
import errno as _errno
import logging
import os

from . import libc

log = logging.getLogger("bpfnet.libbpf")

_lib = ctypes.CDLL("libbpf.so.1", use_errno=True)

c_void_p = ctypes.c_void_p
c_int = ctypes.c_int
c_uint = ctypes.c_uint
c_char_p = ctypes.c_char_p
c_size_t = ctypes.c_size_t
c_u32 = ctypes.c_uint32
c_u64 = ctypes.c_uint64
c_bool = ctypes.c_bool


# --- opts structs: copied field by field from libbpf 1.1 headers -------------

class bpf_object_open_opts(ctypes.Structure):  # libbpf.h
    _fields_ = [
        ("sz", c_size_t),
        ("object_name", c_char_p),
        ("relaxed_maps", c_bool),
        ("pin_root_path", c_char_p),
        ("_attach_prog_fd", c_u32),  # __u32 :32, removed field
        ("kconfig", c_char_p),
        ("btf_custom_path", c_char_p),
        ("kernel_log_buf", c_char_p),
        ("kernel_log_size", c_size_t),
        ("kernel_log_level", c_u32),
    ]


class bpf_test_run_opts(ctypes.Structure):  # bpf.h
    _fields_ = [
        ("sz", c_size_t),
        ("data_in", c_void_p),
        ("data_out", c_void_p),
        ("data_size_in", c_u32),
        ("data_size_out", c_u32),
        ("ctx_in", c_void_p),
        ("ctx_out", c_void_p),
        ("ctx_size_in", c_u32),
        ("ctx_size_out", c_u32),
        ("retval", c_u32),
        ("repeat", c_int),
        ("duration", c_u32),
        ("flags", c_u32),
        ("cpu", c_u32),
        ("batch_size", c_u32),
    ]


class bpf_map_batch_opts(ctypes.Structure):  # bpf.h
    _fields_ = [("sz", c_size_t), ("elem_flags", c_u64), ("flags", c_u64)]


class bpf_link_update_opts(ctypes.Structure):  # bpf.h
    _fields_ = [("sz", c_size_t), ("flags", c_u32), ("old_prog_fd", c_u32)]


class bpf_map_info(ctypes.Structure):  # uapi bpf.h, leading fields
    _fields_ = [
        ("type", c_u32), ("id", c_u32), ("key_size", c_u32),
        ("value_size", c_u32), ("max_entries", c_u32), ("map_flags", c_u32),
        ("name", ctypes.c_char * 16), ("ifindex", c_u32),
        ("btf_vmlinux_value_type_id", c_u32), ("netns_dev", c_u64),
        ("netns_ino", c_u64), ("btf_id", c_u32), ("btf_key_type_id", c_u32),
        ("btf_value_type_id", c_u32),
    ]


class bpf_prog_info(ctypes.Structure):  # uapi bpf.h, leading fields
    _fields_ = [
        ("type", c_u32), ("id", c_u32), ("tag", ctypes.c_uint8 * 8),
        ("jited_prog_len", c_u32), ("xlated_prog_len", c_u32),
        ("jited_prog_insns", c_u64), ("xlated_prog_insns", c_u64),
        ("load_time", c_u64), ("created_by_uid", c_u32),
        ("nr_map_ids", c_u32), ("map_ids", c_u64),
        ("name", ctypes.c_char * 16),
    ]


class bpf_link_info(ctypes.Structure):  # uapi bpf.h, leading fields
    _fields_ = [("type", c_u32), ("id", c_u32), ("prog_id", c_u32),
                ("_pad", c_u32), ("target", c_u64 * 4)]


# --- prototypes: mirrors libbpf 1.1 libbpf.h and bpf.h -----------------------

_PROTOTYPES = [
    # libbpf.h
    ("bpf_object__open_file", c_void_p, [c_char_p, ctypes.POINTER(bpf_object_open_opts)]),
    ("bpf_object__load", c_int, [c_void_p]),
    ("bpf_object__close", None, [c_void_p]),
    ("bpf_object__find_program_by_name", c_void_p, [c_void_p, c_char_p]),
    ("bpf_object__find_map_by_name", c_void_p, [c_void_p, c_char_p]),
    ("bpf_object__next_map", c_void_p, [c_void_p, c_void_p]),
    ("bpf_object__next_program", c_void_p, [c_void_p, c_void_p]),
    ("bpf_program__fd", c_int, [c_void_p]),
    ("bpf_program__name", c_char_p, [c_void_p]),
    ("bpf_program__pin", c_int, [c_void_p, c_char_p]),
    ("bpf_map__fd", c_int, [c_void_p]),
    ("bpf_map__name", c_char_p, [c_void_p]),
    ("bpf_map__pin_path", c_char_p, [c_void_p]),
    ("bpf_map__is_pinned", c_bool, [c_void_p]),
    ("bpf_map__unpin", c_int, [c_void_p, c_char_p]),
    ("bpf_map__type", c_int, [c_void_p]),
    ("bpf_map__key_size", c_u32, [c_void_p]),
    ("bpf_map__value_size", c_u32, [c_void_p]),
    ("bpf_map__max_entries", c_u32, [c_void_p]),
    ("bpf_map__map_flags", c_u32, [c_void_p]),
    ("bpf_map__set_max_entries", c_int, [c_void_p, c_u32]),
    ("libbpf_num_possible_cpus", c_int, []),
    ("libbpf_strerror", c_int, [c_int, c_char_p, c_size_t]),
    ("libbpf_set_print", c_void_p, [c_void_p]),
    # bpf.h
    ("bpf_obj_get", c_int, [c_char_p]),
    ("bpf_obj_pin", c_int, [c_int, c_char_p]),
    ("bpf_obj_get_info_by_fd", c_int, [c_int, c_void_p, ctypes.POINTER(c_u32)]),
    ("bpf_map_lookup_elem", c_int, [c_int, c_void_p, c_void_p]),
    ("bpf_map_update_elem", c_int, [c_int, c_void_p, c_void_p, c_u64]),
    ("bpf_map_delete_elem", c_int, [c_int, c_void_p]),
    ("bpf_map_get_next_key", c_int, [c_int, c_void_p, c_void_p]),
    ("bpf_map_lookup_batch", c_int, [c_int, c_void_p, c_void_p, c_void_p, c_void_p,
                                     ctypes.POINTER(c_u32), ctypes.POINTER(bpf_map_batch_opts)]),
    ("bpf_map_update_batch", c_int, [c_int, c_void_p, c_void_p, ctypes.POINTER(c_u32),
                                     ctypes.POINTER(bpf_map_batch_opts)]),
    ("bpf_map_delete_batch", c_int, [c_int, c_void_p, ctypes.POINTER(c_u32),
                                     ctypes.POINTER(bpf_map_batch_opts)]),
    ("bpf_prog_test_run_opts", c_int, [c_int, ctypes.POINTER(bpf_test_run_opts)]),
    ("bpf_prog_get_fd_by_id", c_int, [c_u32]),
    ("bpf_link_create", c_int, [c_int, c_int, c_int, c_void_p]),
    ("bpf_prog_query", c_int, [c_int, c_int, c_u32, ctypes.POINTER(c_u32),
                               ctypes.POINTER(c_u32), ctypes.POINTER(c_u32)]),
    ("bpf_map_create", c_int, [c_int, c_char_p, c_u32, c_u32, c_u32, c_void_p]),
    ("bpf_link_update", c_int, [c_int, c_int, ctypes.POINTER(bpf_link_update_opts)]),
]

for _name, _res, _args in _PROTOTYPES:
    _fn = getattr(_lib, _name)
    _fn.restype = _res
    _fn.argtypes = _args

# --- errors and the log ------------------------------------------------------

LIBBPF_WARN, LIBBPF_INFO, LIBBPF_DEBUG = 0, 1, 2
_LEVELS = {LIBBPF_WARN: logging.WARNING, LIBBPF_INFO: logging.INFO,
           LIBBPF_DEBUG: logging.DEBUG}
_log_tail: collections.deque[str] = collections.deque(maxlen=64)

_PRINT_FN = ctypes.CFUNCTYPE(c_int, c_int, c_char_p, c_void_p)


def _print_cb(level, fmt, args):
    buf = ctypes.create_string_buffer(4096)
    libc.vsnprintf(buf, len(buf), fmt, args)
    text = buf.value.decode(errors="replace").rstrip("\n")
    for line in text.splitlines():
        if level != LIBBPF_DEBUG:
            _log_tail.append(line)
        log.log(_LEVELS.get(level, logging.DEBUG), "%s", line)
    return 0


# held at module level so it is never garbage-collected
_print_cb_ref = _PRINT_FN(_print_cb)
_lib.libbpf_set_print(ctypes.cast(_print_cb_ref, c_void_p))


def strerror(err: int) -> str:
    buf = ctypes.create_string_buffer(256)
    _lib.libbpf_strerror(err, buf, len(buf))
    return buf.value.decode(errors="replace")


class BpfError(OSError):
    """A libbpf or bpf(2) failure: ``.errno``, ``.op``, ``.name``, ``.log``."""

    def __init__(self, err: int, op: str, name: str = "", log_lines=()):
        self.op = op
        self.name = name
        self.log = list(log_lines)
        text = strerror(err)
        where = f"{op} {name}".strip()
        super().__init__(err, f"{where}: {text}")

    def __str__(self):
        return self.strerror


def _check(ret: int, op: str, name: str = "") -> int:
    """Turns a libbpf int result (negative errno) into BpfError."""
    if ret < 0:
        # libbpf 1.x returns -errno; plain syscall wrappers also set errno
        err = -ret if ret != -1 else (ctypes.get_errno() or _errno.EPERM)
        raise BpfError(err, op, name, list(_log_tail))
    return ret


def _check_ptr(ptr, op: str, name: str = ""):
    if not ptr:
        raise BpfError(ctypes.get_errno() or _errno.EINVAL, op, name, list(_log_tail))
    return ptr


def log_tail() -> list[str]:
    return list(_log_tail)


def num_possible_cpus() -> int:
    return _check(_lib.libbpf_num_possible_cpus(), "num_possible_cpus")


# --- objects -----------------------------------------------------------------

class BpfObject:
    """An opened (and, after :meth:`load`, loaded) BPF ELF object.

    With ``pin_root``, libbpf reuses maps already pinned there by name (their
    contents survive a reload) and pins new ones there on load."""

    def __init__(self, ptr, path: str):
        self._ptr = ptr
        self.path = path

    @classmethod
    def open(cls, path: str, pin_root: str | None = None) -> "BpfObject":
        opts = bpf_object_open_opts()
        opts.sz = ctypes.sizeof(opts)
        if pin_root:
            opts.pin_root_path = pin_root.encode()
        _log_tail.clear()
        ctypes.set_errno(0)
        ptr = _lib.bpf_object__open_file(path.encode(), ctypes.byref(opts))
        return cls(_check_ptr(ptr, "open", path), path)

    def load(self) -> None:
        _log_tail.clear()
        _check(_lib.bpf_object__load(self._ptr), "load", os.path.basename(self.path))

    def close(self) -> None:
        if self._ptr:
            _lib.bpf_object__close(self._ptr)
            self._ptr = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _prog(self, name: str):
        return _check_ptr(_lib.bpf_object__find_program_by_name(self._ptr, name.encode()),
                          "find program", name)

    def _map(self, name: str):
        return _check_ptr(_lib.bpf_object__find_map_by_name(self._ptr, name.encode()),
                          "find map", name)

    def prog_fd(self, name: str) -> int:
        return _check(_lib.bpf_program__fd(self._prog(name)), "program fd", name)

    def map_fd(self, name: str) -> int:
        return _check(_lib.bpf_map__fd(self._map(name)), "map fd", name)

    def set_max_entries(self, name: str, n: int) -> None:
        """Resizes map ``name`` before :meth:`load` (a pinned map of another
        size is then not reused: libbpf refuses it as incompatible)."""
        _check(_lib.bpf_map__set_max_entries(self._map(name), n), "set max_entries", name)

    def map_pin_path(self, name: str) -> str | None:
        p = _lib.bpf_map__pin_path(self._map(name))
        return p.decode() if p else None

    def map_def(self, name: str) -> tuple[int, int, int, int, int]:
        """(type, key_size, value_size, max_entries, map_flags) as declared."""
        m = self._map(name)
        return (_lib.bpf_map__type(m), _lib.bpf_map__key_size(m), _lib.bpf_map__value_size(m),
                _lib.bpf_map__max_entries(m), _lib.bpf_map__map_flags(m))

    def program_names(self) -> list[str]:
        names, pos = [], None
        while True:
            pos = _lib.bpf_object__next_program(self._ptr, pos)
            if not pos:
                return names
            names.append(_lib.bpf_program__name(pos).decode())

    def map_names(self) -> list[str]:
        names, pos = [], None
        while True:
            pos = _lib.bpf_object__next_map(self._ptr, pos)
            if not pos:
                return names
            names.append(_lib.bpf_map__name(pos).decode())


# --- fds, pins and info ------------------------------------------------------

def obj_get(path: str) -> int:
    ctypes.set_errno(0)
    return _check(_lib.bpf_obj_get(path.encode()), "open pin", path)


def obj_pin(fd: int, path: str) -> None:
    _check(_lib.bpf_obj_pin(fd, path.encode()), "pin", path)


def _info(fd: int, cls):
    info = cls()
    size = c_u32(ctypes.sizeof(info))
    _check(_lib.bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)), "info")
    return info


def map_info(fd: int) -> bpf_map_info:
    return _info(fd, bpf_map_info)


def prog_info(fd: int) -> bpf_prog_info:
    return _info(fd, bpf_prog_info)


def link_info(fd: int) -> bpf_link_info:
    return _info(fd, bpf_link_info)


def prog_get_fd_by_id(prog_id: int) -> int:
    return _check(_lib.bpf_prog_get_fd_by_id(prog_id), "program by id", str(prog_id))


class bpf_link_create_opts(ctypes.Structure):
    """struct bpf_link_create_opts of libbpf 1.1 (bpf.h): sz, flags, and a
    union of per-type opts (largest: kprobe_multi, 32 bytes) left zero.
    libbpf copies ``flags`` into the syscall's link_create.flags for any
    attach type, which is how tcx's BPF_F_BEFORE reaches the kernel (with no
    relative program: before every other)."""
    _fields_ = [("sz", ctypes.c_size_t), ("flags", c_u32), ("_pad", c_u32),
                ("_union", ctypes.c_uint8 * 32)]


BPF_F_BEFORE = 1 << 3  # tcx (bpf_mprog): attach before the relative program


def link_create(prog_fd: int, target: int, attach_type: int, flags: int = 0) -> int:
    """bpf_link_create; ``flags`` (BPF_F_BEFORE) with no anchor program."""
    opts = None
    if flags:
        opts = bpf_link_create_opts(sz=ctypes.sizeof(bpf_link_create_opts), flags=flags)
        opts = ctypes.byref(opts)
    return _check(_lib.bpf_link_create(prog_fd, target, attach_type, opts), "link create")


def link_update(link_fd: int, prog_fd: int) -> None:
    _check(_lib.bpf_link_update(link_fd, prog_fd, None), "link update")


# enum bpf_map_type (uapi bpf.h), the types bpfnet's objects use
BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_LRU_HASH = 9
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
PERCPU_MAP_TYPES = (BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_LRU_PERCPU_HASH)
ARRAY_MAP_TYPES = (BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY)
HASH_MAP_TYPES = (BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LRU_HASH)
LRU_MAP_TYPES = (BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH)
BPF_TCX_INGRESS, BPF_TCX_EGRESS = 46, 47  # kernel 6.6+


def prog_query_count(target: int, attach_type: int) -> int:
    """How many programs are attached at ``target`` (an ifindex for tcx);
    BpfError(EINVAL) where the kernel does not know the attach type."""
    flags, count = c_u32(0), c_u32(0)
    _check(_lib.bpf_prog_query(target, attach_type, 0, ctypes.byref(flags), None,
                               ctypes.byref(count)), "prog query")
    return count.value


def tcx_supported() -> bool:
    """Probes the kernel (not its version) for tcx: a tcx query on lo."""
    try:
        prog_query_count(1, BPF_TCX_INGRESS)
        return True
    except BpfError:
        return False


def map_create(map_type: int, name: str, key_size: int, value_size: int, max_entries: int) -> int:
    return _check(_lib.bpf_map_create(map_type, name.encode(), key_size, value_size,
                                      max_entries, None), "map create", name)


# --- map element operations --------------------------------------------------

BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2


def lookup(fd: int, key, value) -> bool:
    """Fills ``value``; False if the key is absent."""
    if _lib.bpf_map_lookup_elem(fd, ctypes.byref(key), ctypes.byref(value)) < 0:
        err = ctypes.get_errno()
        if err == _errno.ENOENT:
            return False
        raise BpfError(err, "lookup")
    return True


def update(fd: int, key, value, flags: int = BPF_ANY) -> None:
    if _lib.bpf_map_update_elem(fd, ctypes.byref(key), ctypes.byref(value), flags) < 0:
        raise BpfError(ctypes.get_errno(), "update")


def delete(fd: int, key) -> bool:
    """False if the key was absent."""
    if _lib.bpf_map_delete_elem(fd, ctypes.byref(key)) < 0:
        err = ctypes.get_errno()
        if err == _errno.ENOENT:
            return False
        raise BpfError(err, "delete")
    return True


def next_key(fd: int, key, next_) -> bool:
    """Fills ``next_`` with the key after ``key`` (None: the first); False at the end."""
    ref = ctypes.byref(key) if key is not None else None
    if _lib.bpf_map_get_next_key(fd, ref, ctypes.byref(next_)) < 0:
        err = ctypes.get_errno()
        if err == _errno.ENOENT:
            return False
        raise BpfError(err, "get_next_key")
    return True


def _batch_opts(elem_flags: int = 0):
    o = bpf_map_batch_opts()
    o.sz = ctypes.sizeof(o)
    o.elem_flags = elem_flags
    return o


def lookup_batch(fd: int, in_batch, out_batch, keys, values, count: int) -> tuple[int, bool]:
    """One bpf_map_lookup_batch call. Returns (elements read, done)."""
    n = c_u32(count)
    ret = _lib.bpf_map_lookup_batch(fd, ctypes.byref(in_batch) if in_batch is not None else None,
                                    ctypes.byref(out_batch), keys, values, ctypes.byref(n),
                                    ctypes.byref(_batch_opts()))
    if ret < 0:
        err = ctypes.get_errno()
        if err == _errno.ENOENT:
            return n.value, True
        raise BpfError(err, "lookup_batch")
    return n.value, False


def update_batch(fd: int, keys, values, count: int, elem_flags: int = BPF_ANY) -> int:
    n = c_u32(count)
    if _lib.bpf_map_update_batch(fd, keys, values, ctypes.byref(n),
                                 ctypes.byref(_batch_opts(elem_flags))) < 0:
        raise BpfError(ctypes.get_errno(), "update_batch")
    return n.value


def delete_batch(fd: int, keys, count: int) -> int:
    n = c_u32(count)
    if _lib.bpf_map_delete_batch(fd, keys, ctypes.byref(n), ctypes.byref(_batch_opts())) < 0:
        err = ctypes.get_errno()
        if err != _errno.ENOENT:
            raise BpfError(err, "delete_batch")
    return n.value


# --- BPF_PROG_TEST_RUN -------------------------------------------------------

class TestRun(collections.namedtuple("TestRun", "retval data ctx duration")):
    """Result of one test run: verdict, output packet, output ctx, ns/run."""


def prog_test_run(prog_fd: int, data: bytes, ctx=None, repeat: int = 1,
                  out_size: int | None = None) -> TestRun:
    opts = bpf_test_run_opts()
    opts.sz = ctypes.sizeof(opts)
    din = ctypes.create_string_buffer(bytes(data), len(data))
    dout = ctypes.create_string_buffer(out_size or len(data) + 256)
    opts.data_in = ctypes.cast(din, c_void_p)
    opts.data_size_in = len(data)
    opts.data_out = ctypes.cast(dout, c_void_p)
    opts.data_size_out = len(dout)
    ctx_out = None
    if ctx is not None:
        ctx_out = type(ctx)()
        opts.ctx_in = ctypes.cast(ctypes.byref(ctx), c_void_p)
        opts.ctx_size_in = ctypes.sizeof(ctx)
        opts.ctx_out = ctypes.cast(ctypes.byref(ctx_out), c_void_p)
        opts.ctx_size_out = ctypes.sizeof(ctx_out)
    opts.repeat = repeat
    ret = _lib.bpf_prog_test_run_opts(prog_fd, ctypes.byref(opts))
    if ret < 0:
        raise BpfError(ctypes.get_errno() or -ret, "test_run")
    return TestRun(opts.retval, dout.raw[:opts.data_size_out], ctx_out, opts.duration)
