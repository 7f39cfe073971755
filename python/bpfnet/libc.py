"""Thin ctypes binding to the C library, for the few calls Python's os and
socket modules lack: statfs(2), mount(2), sendmmsg(2), vsnprintf(3).

As :mod:`bpfnet.libbpf` is for libbpf, this is the one module that opens
libc with ``ctypes.CDLL``; prototypes are set once, at import.

    fs_magic("/sys/fs/bpf")          # 0xCAFE4A11 on bpffs, None if absent
    mount(b"bpf", b"/sys/fs/bpf", b"bpf")
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

c_int = ctypes.c_int
c_uint = ctypes.c_uint
c_char_p = ctypes.c_char_p
c_void_p = ctypes.c_void_p
c_size_t = ctypes.c_size_t


class statfs_buf(ctypes.Structure):  # struct statfs (x86_64, arm64): f_type first
    _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_long * 15)]


class iovec(ctypes.Structure):  # <sys/uio.h>
    _fields_ = [("iov_base", c_void_p), ("iov_len", c_size_t)]


class msghdr(ctypes.Structure):  # <sys/socket.h>
    _fields_ = [("msg_name", c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.POINTER(iovec)), ("msg_iovlen", c_size_t),
                ("msg_control", c_void_p), ("msg_controllen", c_size_t),
                ("msg_flags", c_int)]


class mmsghdr(ctypes.Structure):  # <sys/socket.h>
    _fields_ = [("msg_hdr", msghdr), ("msg_len", c_uint)]


_PROTOTYPES = [
    ("statfs", c_int, [c_char_p, ctypes.POINTER(statfs_buf)]),
    ("mount", c_int, [c_char_p, c_char_p, c_char_p, ctypes.c_ulong, c_void_p]),
    ("sendmmsg", c_int, [c_int, ctypes.POINTER(mmsghdr), c_uint, c_int]),
    ("vsnprintf", c_int, [c_char_p, c_size_t, c_char_p, c_void_p]),
]

for _name, _res, _args in _PROTOTYPES:
    _fn = getattr(_libc, _name)
    _fn.restype = _res
    _fn.argtypes = _args

vsnprintf = _libc.vsnprintf
sendmmsg = _libc.sendmmsg  # returns -1 with errno set: ctypes.get_errno()


def fs_magic(path: str) -> int | None:
    """The f_type of the filesystem ``path`` lies on, None if it cannot be read."""
    buf = statfs_buf()
    if _libc.statfs(path.encode(), ctypes.byref(buf)) != 0:
        return None
    return buf.f_type & 0xFFFFFFFF


def mount(source: bytes, target: bytes, fstype: bytes, flags: int = 0) -> None:
    """mount(2); OSError with the errno on failure."""
    if _libc.mount(source, target, fstype, flags, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target.decode())
