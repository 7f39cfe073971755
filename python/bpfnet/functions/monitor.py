"""The tunnel monitor: VXLAN analytics on an underlay device.

    mon = Monitor(PinDir(root, "host"))
    mon.load(dev="eth0", port=4789)
    mon.flows()          # the seed's stats2json, one dict per conversation
    mon.status()         # attach points, flows, inserts, evictions, counters

``monitor_ingress`` and ``monitor_egress`` sit on the device's tc ingress and
egress and count every VXLAN frame they see in ``mon_flows`` (an LRU hash:
new flows are always counted, the least recently used make room). The
control plane only configures and reads: it never writes a flow.
"""
from __future__ import annotations

import ctypes
import json
import os
import tempfile
import time

from .. import abi
from ..abi import MonCfg, MonFlowKey, MonFlowVal, MonStats, ip_is_zero, ip_unpack
from ..errors import ConfigError, NotFound
from .. import validate
from .base import Function, Undo
from .options import Option, text

C_U32 = ctypes.c_uint32
ARPHRD_ETHER = 1
DEFAULT_PORT = abi.MON_DEFAULT_PORT
# the seed's stats2json keys, in its order (CLI.md: exactly these, more may follow)
FLOW_KEYS = ("vni", "outer_sip", "outer_dip", "inner_sip", "inner_dip",
             "tx_pkts", "tx_bytes", "rx_pkts", "rx_bytes")
COUNTERS = ("tx_pkts", "tx_bytes", "rx_pkts", "rx_bytes")
IDENT = FLOW_KEYS[:5]


def _inner(ip, other) -> str:
    """An inner address; all zeros reads 0.0.0.0 as in the seed (a non-IP
    inner frame), or :: beside an IPv6 peer (IPv6 DAD's unspecified source)."""
    if ip_is_zero(ip):
        return "::" if not ip_is_zero(other) and ip_unpack(other).version == 6 else "0.0.0.0"
    return str(ip_unpack(ip))


def flow_json(k: MonFlowKey, v: MonFlowVal) -> dict:
    """The seed's stats2json for one mon_flows entry."""
    return {
        "vni": int(k.vni),
        "outer_sip": str(ip_unpack(k.outer_sip)),
        "outer_dip": str(ip_unpack(k.outer_dip)),
        "inner_sip": _inner(k.inner_sip, k.inner_dip),
        "inner_dip": _inner(k.inner_dip, k.inner_sip),
        "tx_pkts": v.tx_pkts, "tx_bytes": v.tx_bytes,
        "rx_pkts": v.rx_pkts, "rx_bytes": v.rx_bytes,
    }


def _sort_key(k: MonFlowKey):
    return (k.vni, bytes(k.outer_sip.addr), bytes(k.outer_dip.addr),
            bytes(k.inner_sip.addr), bytes(k.inner_dip.addr))


def flow_id(row: dict) -> tuple:
    """What names a conversation in a flow row: vni and the four addresses."""
    return tuple(row[k] for k in IDENT)


def delta(prev: list[dict], cur: list[dict]) -> list[dict]:
    """Rows of ``cur`` whose packets moved since ``prev``, with the counters
    of that interval (the seed's delta_stats). An entry that restarted from
    zero (evicted, then seen again) counts from zero."""
    before = {flow_id(r): r for r in prev}
    out = []
    for r in cur:
        p = before.get(flow_id(r))
        if p is not None and all(r[c] >= p[c] for c in COUNTERS):
            d = {**r, **{c: r[c] - p[c] for c in COUNTERS}}
        else:
            d = dict(r)
        if d["tx_pkts"] or d["rx_pkts"]:
            out.append(d)
    return out


def write_json_atomic(path: str, data) -> None:
    """Writes ``data`` as JSON to ``path`` through a temporary file in the
    same directory and a rename: a reader sees the old file or the new one,
    never a part."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".new", dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class Monitor(Function):
    name = "monitor"
    first_progs = ("monitor_ingress",)  # before a bridge's or mesh's decapsulation
    programs = ("monitor_ingress", "monitor_egress")
    options = (Option("dev", text(validate.ifname), in_place=False, required=True, metavar="DEV",
                      help="the underlay device carrying the VXLAN traffic (required on first load)"),
               Option("port", text(validate.udp_port), in_place=True, metavar="PORT",
                      default=DEFAULT_PORT, cfg_field="port",
                      help=f"VXLAN UDP port (default {DEFAULT_PORT})"))
    cfg_map, cfg_type = "mon_cfg", MonCfg
    maps = {
        "mon_cfg": (C_U32, MonCfg),
        "mon_flows": (MonFlowKey, MonFlowVal),
        "mon_stats": ("percpu", MonStats),
    }
    stats_map = "mon_stats"

    # --- load / unload ---------------------------------------------------------
    def _check_dev(self, dev: str) -> int:
        net = self.net
        idx = net.index(dev)
        link = net.link(idx)
        if net.kind(idx) == "vxlan":
            under = link.get_attr("IFLA_LINK")
            hint = f" (its underlay is {net.name(under)})" if under and net.name(under) else ""
            raise ConfigError(f"device {dev!r} is a VXLAN device: the monitor would see its "
                              f"decapsulated frames only; load it on the underlay{hint}")
        if link["ifi_type"] != ARPHRD_ETHER:
            raise ConfigError(f"device {dev!r} is not an Ethernet device")
        return idx

    def prepare(self, values: dict, given: dict) -> dict:
        return {**values, "ifindex": self._check_dev(values["dev"])}

    def setup(self, obj, plan: dict, undo: Undo) -> dict:
        idx = plan["ifindex"]
        self.write_cfg(MonCfg(ifindex=idx, port=plan["port"]))
        mode = self.attach(idx, "ingress", obj.prog_fd("monitor_ingress"), "monitor_ingress", undo)
        self.attach(idx, "egress", obj.prog_fd("monitor_egress"), "monitor_egress", undo)
        return {"device": plan["dev"], "ifindex": idx, "port": plan["port"], "mode": mode}

    def option_values(self) -> dict:
        return {**super().option_values(), "dev": self.net.name(self.cfg().ifindex)}

    def check_reload(self, given: dict, have: dict) -> None:
        """``--port`` may change in place, the device may not; a device that
        is gone leaves only unload."""
        if "dev" in given:
            self.net.index(given["dev"])
        if have["dev"] is None:
            raise NotFound(f"the monitored device (ifindex {self.cfg().ifindex}) is gone: "
                           f"unload monitor")

    def hooks(self) -> list[tuple[int, str, str]]:
        idx = self.cfg().ifindex
        return [(idx, "ingress", "monitor_ingress"), (idx, "egress", "monitor_egress")]

    def result(self) -> dict:
        cfg = self.cfg()
        return {"device": self.net.name(cfg.ifindex), "ifindex": cfg.ifindex,
                "port": cfg.port or DEFAULT_PORT,
                "mode": self.attached(cfg.ifindex, "ingress")["mode"]}

    def teardown(self, given: dict | None = None) -> None:
        """Detaches both programs from the user's device (its clsact qdisc
        goes only if bpfnet added it and nothing else is on it). A device
        that is gone leaves only the pins to remove."""
        try:
            idx = self.cfg().ifindex
        except (KeyError, OSError):
            if given is None:
                raise
            return
        if idx and self.net.name(idx) is not None:
            for hook in ("ingress", "egress"):
                self.detach(idx, hook)

    # --- read-outs -------------------------------------------------------------
    def _flow_entries(self) -> list:
        entries = self.map("mon_flows").dump()
        entries.sort(key=lambda kv: _sort_key(kv[0]))
        return entries

    def flows(self) -> list[dict]:
        """Every counted conversation, the seed's JSON objects, sorted by
        VNI, outer pair and inner pair."""
        self.require_loaded()
        return [flow_json(k, v) for k, v in self._flow_entries()]

    def flow_summary(self) -> dict:
        """Live entries, inserts and evictions of mon_flows.

        The data path counts each entry it inserts (mon_stats.new_flow); only
        the LRU removes entries (nothing else deletes from mon_flows), so
        evicted = inserts - live. Read in that order, a flow inserted between
        the two reads makes the figure low by one for that moment, never high."""
        inserts = self.stats()["new_flow"]
        live = len(self.map("mon_flows").dump())
        return {"flows": live, "max_flows": self.map("mon_flows").max_entries,
                "inserts": inserts, "evicted": max(0, inserts - live)}

    def evictions(self, name: str, entries: int) -> int | None:
        """For map_fill: mon_flows' evictions, inserts minus live entries."""
        if name != "mon_flows":
            return None
        return max(0, self.stats()["new_flow"] - entries)

    def status(self) -> dict:
        self.require_loaded()
        cfg = self.cfg()
        idx = cfg.ifindex
        dev = self.net.name(idx)
        attach = [self.attach_row(idx, hook) for hook in ("ingress", "egress")] if dev else []
        summary = self.flow_summary()
        return {"function": self.name, "device": dev, "ifindex": idx,
                "port": cfg.port or DEFAULT_PORT, **summary,
                "attach": attach, "maps": self.map_fill(), "counters": self.stats()}

    # --- stats --watch ---------------------------------------------------------
    def watch(self, out_dir: str, interval: float, count: int | None = None,
              sleep=time.sleep) -> int:
        """The seed's loop: every ``interval`` seconds, ``out_dir``/tunnel.json
        gets the totals and ``out_dir``/tunnel-delta.json the entries that
        moved in the last interval (the first one: since the monitor
        started), each replaced atomically. Stops after ``count`` rounds
        (None: never). Returns the rounds written."""
        self.require_loaded()
        if not os.path.isdir(out_dir):
            raise NotFound(f"output directory {out_dir!r} does not exist")
        prev: list[dict] = []
        n = 0
        while True:
            if not self.is_loaded():
                raise NotFound(f"monitor was unloaded from namespace {self.pins.ns}")
            rows = self.flows()
            write_json_atomic(os.path.join(out_dir, "tunnel.json"), rows)
            write_json_atomic(os.path.join(out_dir, "tunnel-delta.json"), delta(prev, rows))
            prev = rows
            n += 1
            self.close()  # maps are reopened each round: an unload is noticed
            if count is not None and n >= count:
                return n
            sleep(interval)


FUNCTION = Monitor
