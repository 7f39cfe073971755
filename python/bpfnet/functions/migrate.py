"""Map migration on load: a pinned map whose definition differs from the
object's (a new bpfnet with another max_entries, flags or layout).

The old pin is set aside as ``<name>_old``, the object creates the new map,
entries are copied (through a converter when the layout changed), the old
pin goes. A layout change with no converter is refused, nothing changed.

    steps = plan(fn_dir, maps, migrations, obj, "bridge")   # before obj.load()
    set_aside(fn_dir, steps, undo)
    obj.load()
    copy(fn_dir, steps)

``migrations``: {(map, old key size, old value size): fn(key, value) ->
(key, value) on bytes}.
"""
from __future__ import annotations

import ctypes
import errno
import os
from typing import NamedTuple

from .. import libbpf
from ..errors import KernelError
from ..maps import Map
from .undo import Undo


class Step(NamedTuple):
    name: str
    conv: object          # None: same layout, copied as is
    have: tuple           # (type, key size, value size, max_entries, flags) pinned
    want: tuple           # the same, of the object


def plan(fn_dir: str, maps, migrations: dict, obj: libbpf.BpfObject, fn: str) -> list[Step]:
    """The maps of ``obj`` whose pin in ``fn_dir`` differs; KernelError
    (naming the map and both layouts) for one that cannot be migrated."""
    steps = []
    for name in obj.map_names():
        pin = os.path.join(fn_dir, name)
        if name not in maps or not os.path.exists(pin):
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
            conv = None
        else:
            conv = migrations.get((name, info.key_size, info.value_size))
            if conv is None or have[0] != want[0]:
                raise KernelError(
                    f"pinned map {name} (type {have[0]}, key {have[1]} B, value {have[2]} B) "
                    f"does not match {fn}.bpf.o (type {want[0]}, key "
                    f"{want[1]} B, value {want[2]} B) and has no migration: "
                    f"`bpfnetctl unload {fn}` starts afresh")
        steps.append(Step(name, conv, have, want))
    return steps


def set_aside(fn_dir: str, steps: list[Step], undo: Undo) -> None:
    """Renames each old pin to ``<name>_old`` (undone on failure), so the
    object's load creates the new map."""
    for s in steps:
        pin = os.path.join(fn_dir, s.name)
        old = os.path.join(fn_dir, f"{s.name}_old")
        os.replace(pin, old)
        undo.push(os.replace, old, pin)


def copy(fn_dir: str, steps: list[Step]) -> None:
    """Copies every entry of each ``<name>_old`` into the new map (entries a
    smaller map cannot hold are dropped), then removes the old pin."""
    ncpu = libbpf.num_possible_cpus()
    for s in steps:
        percpu = s.have[0] in libbpf.PERCPU_MAP_TYPES
        vsz = lambda n: ((n + 7) // 8 * 8) * ncpu if percpu else n  # noqa: E731
        old_path = os.path.join(fn_dir, f"{s.name}_old")
        src = Map.pinned(old_path, ctypes.c_uint8 * s.have[1], ctypes.c_uint8 * vsz(s.have[2]))
        dst = Map.pinned(os.path.join(fn_dir, s.name), ctypes.c_uint8 * s.want[1],
                         ctypes.c_uint8 * vsz(s.want[2]))
        try:
            for k, v in src.items():
                kb, vb = bytes(k), bytes(v)
                if s.conv is not None:
                    kb, vb = s.conv(kb, vb)
                try:
                    dst[dst.key_type.from_buffer_copy(kb)] = dst.value_type.from_buffer_copy(vb)
                except libbpf.BpfError as e:
                    if e.errno not in (errno.E2BIG, errno.ENOSPC):
                        raise
        finally:
            src.close()
            dst.close()
        os.unlink(old_path)
