"""A function's pinned maps: opened by name once per command, counters
summed, fill per map.

    class Bridge(...):
        maps = {"br_fdb": (BrFdbKey, BrFdbVal), "br_stats": ("percpu", BrStats)}
    fn.map("br_fdb")     # a Map, opened on first use, closed by close_maps()
    fn.map_fill()        # {"br_fdb": {"entries", "max_entries", "evictions"}}
"""
from __future__ import annotations

import os

from .. import libbpf
from ..maps import Map, PerCpuArray


class MapSet:
    """The maps side of a Function (a mixin: ``self.dir``, ``self.maps``,
    ``self.stats_map``, ``self._open_maps``)."""

    maps: dict = {}      # map name -> (key class, value class) or ("percpu", value class)
    stats_map = ""       # the per-CPU counters map

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

    def stats(self) -> dict[str, int]:
        """The function's per-CPU counters (a struct of __u64), summed, by name."""
        return self.map(self.stats_map).sum_fields(0)

    def evictions(self, name: str, entries: int) -> int | None:
        """How many entries an LRU map evicted, where the function can tell."""
        return None

    def map_fill(self) -> dict[str, dict]:
        """{map: {"entries", "max_entries", "evictions" (LRU maps)}}."""
        out = {}
        for name in self.maps:
            m = self.map(name)
            if m.info.type in libbpf.ARRAY_MAP_TYPES:  # always full
                n = m.max_entries
            elif m.info.type in libbpf.HASH_MAP_TYPES:  # batch walk
                n = len(m.dump())
            else:
                n = len(m.keys_list())
            out[name] = {"entries": n, "max_entries": m.max_entries}
            if m.info.type in libbpf.LRU_MAP_TYPES:
                out[name]["evictions"] = self.evictions(name, n)
        return out
