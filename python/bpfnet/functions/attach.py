"""Attach points: a function's programs on tc hooks, tcx links where the
kernel has them, clsact + cls_bpf elsewhere, and which clsact qdiscs bpfnet
created (so that it removes only those).

tcx: a bpf_link per hook, pinned as ``link_<hook>_<ifindex>`` beside the
maps; an upgrade updates the link in place (atomic), unload unpins it.
tc: clsact + a cls_bpf filter at bpfnet's prio/handle, replaced in place.

    class Function(Hooks): ...       # needs self.dir (pins) and self.net
    fn.attach(ifindex, "ingress", prog_fd, "bridge_ingress", undo)
    fn.attached(ifindex, "ingress")  # {"program", "mode", "prog_id", "tag"}
"""
from __future__ import annotations

import ctypes
import os

from .. import libbpf
from ..abi import BPFNET_TC_PRIO
from ..maps import Map
from .undo import Undo

TCX = {"ingress": libbpf.BPF_TCX_INGRESS, "egress": libbpf.BPF_TCX_EGRESS}
QDISC_MAP = "bpfnet_qdisc"  # pinned: ifindex -> 1 for clsact qdiscs bpfnet created


def attach_mode() -> str:
    """"tcx" where the kernel has tcx links (probed, never by version),
    "tc" (clsact + cls_bpf) otherwise. BPFNET_ATTACH=tc|tcx forces one."""
    forced = os.environ.get("BPFNET_ATTACH")
    if forced in ("tc", "tcx"):
        return forced
    return "tcx" if libbpf.tcx_supported() else "tc"


def prog_ident(fd: int) -> dict:
    """{"program", "prog_id", "tag"} of the program ``fd`` refers to; closes ``fd``."""
    try:
        info = libbpf.prog_info(fd)
    finally:
        os.close(fd)
    return {"program": info.name.decode(), "mode": None, "prog_id": info.id,
            "tag": bytes(info.tag).hex()}


class Hooks:
    """The attach side of a Function (a mixin: it uses ``self.dir`` and
    ``self.net``)."""

    # program name -> tc prio, for programs that share a hook with another
    # bpfnet function's (tc mode; tcx orders by position): the overlays'
    # decapsulation on an underlay goes after the monitor
    tc_prios: dict = {}
    # programs attached before every other on their hook (tcx: BPF_F_BEFORE;
    # tc: their prio is the lowest): the monitor, which must count frames a
    # decapsulation after it takes away
    first_progs: tuple = ()

    def _link_pin(self, index: int, direction: str) -> str:
        return os.path.join(self.dir, f"link_{direction}_{index}")

    def attach(self, index: int, direction: str, prog_fd: int, prog_name: str,
               undo: Undo | None = None) -> str:
        """Attaches (or atomically replaces) this function's program on a hook;
        returns the mode used. ``undo`` gets the way back."""
        prio = self.tc_prios.get(prog_name, BPFNET_TC_PRIO)
        pin = self._link_pin(index, direction)
        if os.path.exists(pin):
            fd = libbpf.obj_get(pin)
            try:
                libbpf.link_update(fd, prog_fd)
            finally:
                os.close(fd)
            return "tcx"
        if self.net.ours_attached(index, direction, prio) is None and attach_mode() == "tcx":
            fd = libbpf.link_create(prog_fd, index, TCX[direction],
                                    libbpf.BPF_F_BEFORE if prog_name in self.first_progs else 0)
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
        self.net.attach(index, direction, prog_fd, prog_name, prio)
        if undo:
            undo.push(self.detach, index, direction, prio)
        return "tc"

    def detach(self, index: int, direction: str, prio: int = BPFNET_TC_PRIO) -> None:
        """Removes this function's program from a hook, and the clsact qdisc
        if bpfnet created it and no filter is left on it."""
        pin = self._link_pin(index, direction)
        if os.path.exists(pin):
            os.unlink(pin)
        self.net.detach(index, direction, prio)
        if self._qdisc_owned(index) and not (self.net.filters(index, "ingress")
                                             or self.net.filters(index, "egress")):
            self.net.del_clsact(index)
            self._qdisc_owned(index, False)

    def attached(self, index: int, direction: str, prio: int = BPFNET_TC_PRIO) -> dict:
        """{"program": name or None, "mode": "tcx" | "tc" | None, "prog_id",
        "tag"} for a hook. tcx: the link's program. tc: the filter's name, and
        the id and tag of the program of that name pinned beside the maps
        (the one bpfnet attached there)."""
        pin = self._link_pin(index, direction)
        if os.path.exists(pin):
            fd = libbpf.obj_get(pin)
            try:
                info = libbpf.link_info(fd)
            finally:
                os.close(fd)
            if info.target[0] & 0xFFFFFFFF != index:  # defunct: the device went away
                return {"program": None, "mode": "tcx", "prog_id": None, "tag": None}
            return {**prog_ident(libbpf.prog_get_fd_by_id(info.prog_id)), "mode": "tcx"}
        name = self.net.ours_attached(index, direction, prio)
        path = os.path.join(self.dir, name or "")
        if name in self.programs and os.path.exists(path):
            return {**prog_ident(libbpf.obj_get(path)), "program": name, "mode": "tc"}
        return {"program": name, "mode": "tc" if name else None, "prog_id": None, "tag": None}

    def attach_row(self, index: int, hook: str, prio: int = BPFNET_TC_PRIO, **extra) -> dict:
        """A ``status`` attach entry: {"device", "hook", "program", "mode",
        "prog_id", "tag", **extra}."""
        return {"device": self.net.name(index), "hook": hook, **self.attached(index, hook, prio),
                **extra}

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
