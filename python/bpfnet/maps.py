"""BPF maps as Python mappings over a file descriptor.

    fdb = Map.pinned("/sys/fs/bpf/bpfnet/host/bridge/br_fdb", BrFdbKey, BrFdbVal)
    for key, val in fdb.items(): ...
    stats = PerCpuArray.pinned(".../br_stats", ctypes.c_uint64)
    stats.sum(3)

Keys and values are ctypes instances of the classes in :mod:`bpfnet.abi`.
A missing key is KeyError; any other failure is :class:`bpfnet.libbpf.BpfError`.
"""
from __future__ import annotations

import ctypes
import os
from collections.abc import MutableMapping

from . import libbpf

BATCH = 4096


class Map(MutableMapping):
    def __init__(self, fd: int, key_type, value_type, name: str = "", owned: bool = True):
        self.fd = fd
        self.key_type = key_type
        self.value_type = value_type
        self.name = name
        self._owned = owned
        info = libbpf.map_info(fd)
        self.info = info
        if info.key_size != ctypes.sizeof(key_type):
            raise ValueError(f"{name}: key size {info.key_size} != {ctypes.sizeof(key_type)}")
        self._check_value_size(info.value_size)

    def _check_value_size(self, size: int):
        if size != ctypes.sizeof(self.value_type):
            raise ValueError(f"{self.name}: value size {size} != {ctypes.sizeof(self.value_type)}")

    @classmethod
    def pinned(cls, path: str, key_type, value_type):
        return cls(libbpf.obj_get(path), key_type, value_type, os.path.basename(path))

    @property
    def max_entries(self) -> int:
        return self.info.max_entries

    def close(self):
        if self._owned and self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _value(self):
        return self.value_type()

    def __getitem__(self, key):
        value = self._value()
        if not libbpf.lookup(self.fd, key, value):
            raise KeyError(key)
        return value

    def __setitem__(self, key, value):
        libbpf.update(self.fd, key, value)

    def insert(self, key, value):
        """Adds ``key``; BpfError(EEXIST) if it is there already."""
        libbpf.update(self.fd, key, value, libbpf.BPF_NOEXIST)

    def __delitem__(self, key):
        if not libbpf.delete(self.fd, key):
            raise KeyError(key)

    def discard(self, key) -> bool:
        return libbpf.delete(self.fd, key)

    def keys_list(self) -> list:
        """All keys, walked with get_next_key. An entry deleted under our feet
        restarts the walk from the start rather than failing."""
        keys, prev = [], None
        seen = set()
        while True:
            nxt = self.key_type()
            if not libbpf.next_key(self.fd, prev, nxt):
                return keys
            raw = bytes(nxt)
            if raw in seen:  # the walk restarted after a concurrent delete
                prev = nxt
                continue
            seen.add(raw)
            keys.append(nxt)
            prev = nxt

    def __iter__(self):
        return iter(self.keys_list())

    def __len__(self):
        return len(self.keys_list())

    def items(self):
        out = []
        for k in self.keys_list():
            v = self._value()
            if libbpf.lookup(self.fd, k, v):
                out.append((k, v))
        return out

    def clear(self):
        for k in self.keys_list():
            libbpf.delete(self.fd, k)

    # batch operations (hash maps): one syscall per BATCH elements
    def dump_batches(self):
        """Every element with bpf_map_lookup_batch, as (keys, values, n) per
        batch: two memoryviews of ``n`` packed keys and values, valid until
        the next batch. For bulk readers (struct.iter_unpack), with no Python
        object per element."""
        ksz, vsz = ctypes.sizeof(self.key_type), ctypes.sizeof(self.value_type)
        keys = (self.key_type * BATCH)()
        values = (self.value_type * BATCH)()
        in_b, out_b = None, self.key_type()
        while True:
            n, done = libbpf.lookup_batch(self.fd, in_b, out_b, keys, values, BATCH)
            yield (memoryview(keys).cast("B")[:n * ksz], memoryview(values).cast("B")[:n * vsz], n)
            if done:
                return
            in_b, out_b = out_b, self.key_type()

    def dump(self) -> list:
        """All (key, value) pairs, as ctypes objects."""
        ksz, vsz = ctypes.sizeof(self.key_type), ctypes.sizeof(self.value_type)
        out = []
        for kb, vb, n in self.dump_batches():
            kb, vb = bytes(kb), bytes(vb)
            out += [(self.key_type.from_buffer_copy(kb, i * ksz),
                     self.value_type.from_buffer_copy(vb, i * vsz)) for i in range(n)]
        return out

    def update_raw(self, keys, values) -> int:
        """Writes packed keys and values (bytes-like, one after another) with
        bpf_map_update_batch, BATCH at a time, without copying them."""
        ksz, vsz = ctypes.sizeof(self.key_type), ctypes.sizeof(self.value_type)
        kbuf, vbuf = bytearray(keys), bytearray(values)
        n = len(kbuf) // ksz
        if len(kbuf) != n * ksz or len(vbuf) != n * vsz:
            raise ValueError(f"{self.name}: {len(kbuf)} key bytes and {len(vbuf)} value bytes "
                             f"are not {ksz}- and {vsz}-byte elements of one count")
        done = 0
        for i in range(0, n, BATCH):
            c = min(BATCH, n - i)
            ka = (self.key_type * c).from_buffer(kbuf, i * ksz)
            va = (self.value_type * c).from_buffer(vbuf, i * vsz)
            done += libbpf.update_batch(self.fd, ka, va, c)
            del ka, va  # release the exports before the buffers go
        return done

    def update_many(self, pairs) -> int:
        """Writes (key, value) pairs of ctypes objects with bpf_map_update_batch."""
        pairs = list(pairs)
        return self.update_raw(b"".join(bytes(k) for k, _ in pairs),
                               b"".join(bytes(v) for _, v in pairs))

    def delete_raw(self, keys) -> int:
        """Deletes packed keys (bytes-like) with bpf_map_delete_batch."""
        ksz = ctypes.sizeof(self.key_type)
        kbuf = bytearray(keys)
        n = len(kbuf) // ksz
        done = 0
        for i in range(0, n, BATCH):
            c = min(BATCH, n - i)
            ka = (self.key_type * c).from_buffer(kbuf, i * ksz)
            done += libbpf.delete_batch(self.fd, ka, c)
            del ka
        return done

    def delete_many(self, keys) -> int:
        return self.delete_raw(b"".join(bytes(k) for k in keys))


class PerCpuArray(Map):
    """A per-CPU array: each value is one element per possible CPU."""

    def __init__(self, fd: int, value_type, name: str = "", owned: bool = True):
        self.ncpu = libbpf.num_possible_cpus()
        self.elem_type = value_type
        super().__init__(fd, ctypes.c_uint32, value_type, name, owned)
        # the kernel lays per-CPU values out 8-byte aligned
        self._stride = (ctypes.sizeof(value_type) + 7) // 8 * 8

    def _check_value_size(self, size: int):
        if size != ctypes.sizeof(self.elem_type):
            raise ValueError(f"{self.name}: value size {size}")

    @classmethod
    def pinned(cls, path: str, value_type):
        return cls(libbpf.obj_get(path), value_type, os.path.basename(path))

    def _value(self):
        return (ctypes.c_uint8 * (self._stride * self.ncpu))()

    def per_cpu(self, index: int) -> list:
        raw = bytes(self[ctypes.c_uint32(index)])
        return [self.elem_type.from_buffer_copy(raw, i * self._stride) for i in range(self.ncpu)]

    def sum(self, index: int) -> int:
        return sum(v.value for v in self.per_cpu(index))

    def sums(self) -> list[int]:
        return [self.sum(i) for i in range(self.max_entries)]

    def sum_fields(self, index: int = 0) -> dict[str, int]:
        """For a struct of counters: each field summed over CPUs."""
        out = {}
        for v in self.per_cpu(index):
            for name, _ in self.elem_type._fields_:
                out[name] = out.get(name, 0) + getattr(v, name)
        return out

    def zero(self, index: int):
        self[ctypes.c_uint32(index)] = self._value()
