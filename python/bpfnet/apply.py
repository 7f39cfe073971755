"""Converging a namespace to a desired-state file: read what is there, plan
the difference, carry it out.

    cur = read_state(fns, desired.functions)          # the kernel, as config.FnSpec-like
    actions = plan(desired, cur, hosts=None)          # pure: unit-tested
    check(actions, fns, desired)                      # the kernel checks, before any change
    execute(actions, fns)                             # undoes what it did if one fails

One action per line of the plan:

    + bridge load underlay=eth0 group=239.1.1.1
    ~ bridge ageing 300 -> 60
    + bridge vni 10 bridge=br10
    ~ bridge vni 20 allow 10.0.0.2 -> 10.0.0.2,10.0.0.3
    - mesh peer 10.0.0.3 vni 30
    ~ mesh peer 10.0.0.2 vni 30 re-create: port bmp1 is gone

Only what the file names is compared: a function it does not name, a load
option it does not give that cannot change in place (an in-place one goes
back to its default), and learned state (FDB, learned VLANs, counters) are
left alone. ``peers = "cluster"`` / ``allow = "cluster"`` take the live
hosts the agent hands in (``hosts``); without them (a plain ``apply``) those
lists are left as they are.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from netaddr import IPAddress

from . import abi
from .config import CLUSTER, BridgeVni, Client, Desired, FnSpec, MeshVni, StaticMac, options_of
from .errors import BpfnetError, ConfigError, KernelError



@dataclass
class Current:
    """A function as the kernel has it."""
    name: str
    loaded: bool = False
    options: dict = field(default_factory=dict)    # loaded option values (str/int)
    children: dict = field(default_factory=dict)   # as FnSpec.children
    broken: str | None = None                      # why the function must be loaded again
    broken_children: dict = field(default_factory=dict)  # key -> why it must be re-created

    def spec(self) -> FnSpec:
        return FnSpec(self.name, dict(self.options), dict(self.children))


@dataclass
class Action:
    op: str          # "+", "-", "~"
    fn: str
    kind: str        # load, set, reload, vni_add, vni_del, vni_redo, vni_allow, peer_add, ...
    text: str        # after "<op> <fn> "
    args: dict = field(default_factory=dict)
    where: str = ""  # the file's key, for messages

    def __str__(self):
        return f"{self.op} {self.fn} {self.text}"

    def as_json(self) -> dict:
        return {"op": self.op, "function": self.fn, "action": self.kind, "text": str(self)}


# --- reading the kernel --------------------------------------------------------

def _opt_values(fn) -> dict:
    """A loaded function's option values by name (Function.loaded_options)."""
    return {k: x for k, x in fn.loaded_options().items() if x is not None}


def _hook_missing(fn, idx: int, hook: str) -> bool:
    return fn.attached(idx, hook)["program"] is None


def _overlay_broken(fn) -> str | None:
    """Why a bridge or mesh must be loaded again (its VXLAN device or its
    ingress program gone), or None."""
    vx = fn.cfg().vxlan_ifindex
    name = fn.net.name(vx)
    if name is None:
        return "its VXLAN device is gone"
    if _hook_missing(fn, vx, "ingress"):
        return f"{fn.ingress_prog} is not on {name}"
    return None


def _port_broken(fn, port: int, label: str, bridge: int) -> str | None:
    """Why a VNI's or a peer's port must be made again (``label``: its
    name, for when it is gone), or None."""
    net = fn.net
    name = net.name(port) if port else None
    br = net.name(bridge) if bridge else None
    if not port:
        return "it was left half made"
    if name is None:
        return f"port {label} is gone"
    if br is None:
        return "its bridge is gone"
    if net.master(port) != bridge:
        return f"{name} is not in {br}"
    if _hook_missing(fn, port, "egress"):
        return f"{fn.egress_prog} is not on {name}"
    return None


def _read_bridge(fn, cur: Current) -> None:
    cur.broken = _overlay_broken(fn)
    if cur.broken:
        return
    net = fn.net
    allow: dict[int, list] = {}
    for k in fn.map("br_allow"):
        allow.setdefault(k.vni, []).append(abi.ip_unpack(k.remote))
    statics = _read_static_macs(fn)
    for k, val in fn.map("br_vni").items():
        vni = k.value
        restricted = val.flags & abi.BR_VNI_F_ALLOW_LIST
        cur.children[vni] = BridgeVni(vni, net.name(val.bridge) if val.bridge else None,
                                      abi.ip_unpack(val.group),
                                      tuple(sorted(allow.get(vni, []))) if restricted else None,
                                      fdb=statics.get(vni, ()))
        why = _port_broken(fn, val.port, f"bnp{vni}", val.bridge)
        if why:
            cur.broken_children[vni] = why


def _read_static_macs(fn) -> dict:
    """{vni: (StaticMac, ...)}: the static FDB entries, each with the static
    bindings that point at its MAC."""
    ips: dict = {}
    for k, nv in fn.map("br_neigh").items():
        if nv.flags & abi.BR_NEIGH_F_STATIC:
            ips.setdefault((k.vni, bytes(nv.mac).hex(":")), []).append(abi.ip_unpack(k.ip))
    out: dict = {}
    for k, e in fn.map("br_fdb").items():
        if e.flags & abi.BR_FDB_F_STATIC:
            mac = bytes(k.mac).hex(":")
            mine = sorted(ips.get((e.vni, mac), []), key=lambda a: (a.version, a))
            out.setdefault(e.vni, []).append(StaticMac(mac, abi.ip_unpack(e.remote), tuple(mine)))
    return {vni: tuple(sorted(xs, key=lambda m: m.mac)) for vni, xs in out.items()}


def _read_mesh(fn, cur: Current) -> None:
    cur.broken = _overlay_broken(fn)
    if cur.broken:
        return
    net = fn.net
    bridges = {k.value: v.bridge for k, v in fn.map("mesh_vnis").items()}
    peers: dict[int, list] = {}
    for k, val in fn.map("mesh_peers").items():
        remote = abi.ip_unpack(k.remote)
        peers.setdefault(k.vni, []).append(remote)
        why = _port_broken(fn, val.port, f"bmp{val.id}", bridges.get(k.vni, 0))
        if why:
            cur.broken_children[(k.vni, remote)] = why
    for vni, remotes in peers.items():
        br = bridges.get(vni, 0)
        cur.children[vni] = MeshVni(vni, net.name(br) if br else None,
                                    tuple(sorted(remotes, key=lambda a: (a.version, a))))


def _read_gateway(fn, cur: Current) -> None:
    net = fn.net
    trunk = fn.cfg().trunk
    if net.name(trunk) is None:
        cur.broken = "its trunk is gone"
        return
    if _hook_missing(fn, trunk, "ingress"):
        cur.broken = f"gw_phys2virt is not on {net.name(trunk)}"
        return
    for k, val in fn.map("gw_clients").items():
        if val.flags & abi.GW_CLIENT_F_PENDING:
            continue
        mac = str(abi.mac_unpack(k.mac)).lower()
        worker = net.name(val.worker)
        cur.children[mac] = Client(mac, worker)
        if worker is None:
            cur.broken_children[mac] = "its worker port is gone"
        elif _hook_missing(fn, val.worker, "ingress"):
            cur.broken_children[mac] = f"gw_virt2phys is not on {worker}"


def _read_monitor(fn, cur: Current) -> None:
    idx = fn.cfg().ifindex
    if fn.net.name(idx) is None:
        cur.broken = "its device is gone"
    elif _hook_missing(fn, idx, "ingress") or _hook_missing(fn, idx, "egress"):
        cur.broken = f"monitor programs are not on {fn.net.name(idx)}"


_READERS = {"bridge": _read_bridge, "mesh": _read_mesh, "gateway": _read_gateway,
            "monitor": _read_monitor}


def read_one(fn) -> Current:
    cur = Current(fn.name)
    if not fn.is_loaded():
        return cur
    cur.loaded = True
    cur.options = _opt_values(fn)
    _READERS[fn.name](fn, cur)
    return cur


def read_state(fns, names) -> dict:
    """{name: Current} for ``names``; ``fns(name)`` gives the Function."""
    return {n: read_one(fns(n)) for n in names}


# --- the plan (pure) -------------------------------------------------------------

def _ips(xs) -> str:
    return ",".join(map(str, xs)) if xs else "none"


def _vni_text(c: BridgeVni, group) -> str:
    t = f"vni {c.vni} bridge={c.bridge}"
    if c.group is not None and str(c.group) != str(group):
        t += f" group={c.group}"
    if c.allow is not None:
        t += f" allow={_ips(c.allow)}"
    return t


def _others(hosts: dict, me: str, key: str, vni: int) -> tuple:
    out = set()
    for name, rec in hosts.items():
        if name == me or vni not in (rec.get(key) or ()):
            continue
        with contextlib.suppress(Exception):
            out.add(IPAddress(rec["vtep"]))
    return tuple(sorted(out, key=lambda a: (a.version, a)))


def _plan_bridge(d: FnSpec, c: Current, cur: dict, broken: dict, hosts, me, out: list) -> None:
    group = d.options.get("group") or c.options.get("group") or "239.1.1.1"
    for vni, have in sorted(cur.items()):
        if vni not in d.children:
            out.append(Action("-", "bridge", "vni_del", f"vni {vni}", {"vni": vni}))
    for vni, want in sorted(d.children.items()):
        allow = want.allow
        have = cur.get(vni)
        if allow == CLUSTER:
            allow = (have.allow if have else ()) if hosts is None else _others(
                hosts, me, "bridge_vnis", vni)
        want = BridgeVni(vni, want.bridge, want.group if want.group is not None else IPAddress(str(group)),
                         allow, want.where)
        args = {"vni": vni, "bridge": want.bridge, "group": want.group, "allow": allow}
        fdb_want = d.children[vni].fdb
        fresh = True
        if have is None:
            out.append(Action("+", "bridge", "vni_add", _vni_text(want, group), args, want.where))
        elif have.bridge != want.bridge or str(have.group) != str(want.group):
            out.append(Action("-", "bridge", "vni_del", f"vni {vni}", {"vni": vni}, want.where))
            out.append(Action("+", "bridge", "vni_add", _vni_text(want, group), args, want.where))
        elif vni in broken:
            out.append(Action("~", "bridge", "vni_redo", f"vni {vni} re-create: {broken[vni]}",
                              args, want.where))
        else:
            fresh = False
            if _allow_key(have.allow) != _allow_key(allow):
                old = "any" if have.allow is None else _ips(have.allow)
                new = "any" if allow is None else _ips(allow)
                out.append(Action("~", "bridge", "vni_allow", f"vni {vni} allow {old} -> {new}",
                                  {"vni": vni, "allow": allow, "old": have.allow}, want.where))
        if fresh and fdb_want is None and have is not None and have.fdb:
            fdb_want = have.fdb  # re-made: the static entries it had come back
        _plan_fdb(vni, fdb_want, have.fdb if have else (), fresh, want.where, out)


def _fdb_text(vni: int, m: StaticMac) -> str:
    t = f"vni {vni} fdb {m.mac} remote={m.remote}"
    return t + (f" ip={_ips(m.ips)}" if m.ips else "")


def _plan_fdb(vni: int, want, have, fresh: bool, where: str, out: list) -> None:
    """Static entries of one VNI: ``want`` None leaves them alone; ``fresh``:
    the VNI is (re)made, so it has none."""
    if want is None:
        return
    have = {} if fresh else {m.mac: m for m in (have or ())}
    wanted = {m.mac: m for m in want}
    for mac, m in sorted(have.items()):
        if mac not in wanted:
            out.append(Action("-", "bridge", "fdb_del", f"vni {vni} fdb {mac}",
                              {"vni": vni, "mac": mac, "old": m}, where))
    for mac, m in sorted(wanted.items()):
        old = have.get(mac)
        if old is None:
            out.append(Action("+", "bridge", "fdb_add", _fdb_text(vni, m),
                              {"vni": vni, "entry": m}, where))
        elif str(old.remote) != str(m.remote) or \
                [str(a) for a in old.ips] != [str(a) for a in m.ips]:
            out.append(Action("~", "bridge", "fdb_set", f"{_fdb_text(vni, old)} -> "
                              f"{_fdb_text(vni, m).split(' ', 4)[4]}",
                              {"vni": vni, "entry": m, "old": old}, where))


def _allow_key(allow):
    return None if allow is None else tuple(sorted(str(a) for a in allow))


def _mesh_peers(want: MeshVni | None, have: MeshVni | None, hosts, me, local) -> tuple:
    """The peers VNI ``want`` should have: its list, or the cluster's (the
    current ones while no membership is known), never this host."""
    peers = () if want is None else want.peers
    if peers == CLUSTER:
        peers = (have.peers if have else ()) if hosts is None else _others(
            hosts, me, "mesh_vnis", want.vni)
    return tuple(p for p in peers if local is None or str(p) != str(local))


def _plan_mesh(d: FnSpec, c: Current, cur: dict, broken: dict, hosts, me, out: list) -> None:
    local = d.options.get("local") or c.options.get("local")
    adds = []
    for vni, have in sorted(cur.items()):
        want = d.children.get(vni)
        peers = _mesh_peers(want, have, hosts, me, local)
        for r in have.peers:
            if want is None or want.bridge != have.bridge or r not in peers:
                out.append(Action("-", "mesh", "peer_del", f"peer {r} vni {vni}",
                                  {"remote": r, "vni": vni}, want.where if want else ""))
    for vni, want in sorted(d.children.items()):
        have = cur.get(vni)
        same = have is not None and have.bridge == want.bridge
        for r in _mesh_peers(want, have, hosts, me, local):
            args = {"remote": r, "vni": vni, "bridge": want.bridge}
            if not same or r not in have.peers:
                adds.append(Action("+", "mesh", "peer_add", f"peer {r} vni {vni} bridge={want.bridge}",
                                   args, want.where))
            elif (vni, r) in broken:
                out.append(Action("~", "mesh", "peer_redo",
                                  f"peer {r} vni {vni} re-create: {broken[(vni, r)]}", args, want.where))
    out += adds


def _plan_gateway(d: FnSpec, c: Current, cur: dict, broken: dict, hosts, me, out: list) -> None:
    adds = []
    for mac, have in sorted(cur.items()):
        want = d.children.get(mac)
        if want is None or want.worker != have.worker and mac not in broken:
            out.append(Action("-", "gateway", "client_del", f"client {mac}", {"mac": mac},
                              want.where if want else ""))
    for mac, want in sorted(d.children.items()):
        have = cur.get(mac)
        args = {"mac": mac, "worker": want.worker}
        if have is None or have.worker != want.worker and mac not in broken:
            adds.append(Action("+", "gateway", "client_add", f"client {mac} worker={want.worker}",
                               args, want.where))
        elif mac in broken:
            out.append(Action("~", "gateway", "client_redo", f"client {mac} re-create: {broken[mac]}",
                              args, want.where))
    out += adds


_PLANNERS = {"bridge": _plan_bridge, "mesh": _plan_mesh, "gateway": _plan_gateway}


def _opt_text(opts: dict) -> str:
    return " ".join(f"{k}={x}" for k, x in opts.items())


def plan(desired: Desired, current: dict, hosts: dict | None = None) -> list[Action]:
    """The actions that take ``current`` ({name: Current}) to ``desired``;
    ConfigError (naming the file's key) for a change that needs an unload or
    a first load that lacks a required option."""
    out: list[Action] = []
    f = desired.file
    for name, d in desired.functions.items():
        c = current.get(name) or Current(name)
        opts = options_of(name)
        cur_children, broken = c.children, c.broken_children
        if not c.loaded:
            for o in opts.values():
                if o.required and o.name not in d.options:
                    raise ConfigError(f"{f}: {name}: missing key {o.name!r} "
                                      f"({name} is not loaded here, and a first load needs it)")
            out.append(Action("+", name, "load", f"load {_opt_text(d.options)}".rstrip(),
                              {"options": dict(d.options)}, name))
            cur_children, broken = {}, {}
        elif c.broken:
            merged = {k: x for k, x in c.options.items() if k in opts}
            merged.update(d.options)
            out.append(Action("~", name, "reload", f"re-load: {c.broken}", {"options": merged}, name))
            cur_children, broken = {}, {}
        else:
            changed = {}
            given = dict(d.options)
            for o in opts.values():  # in place and not named: back to its default
                if o.in_place and o.name not in given and o.default is not None \
                        and o.name in c.options:
                    given[o.name] = o.default
            for k, want in given.items():
                have = c.options.get(k)
                if have is not None and str(have) == str(want):
                    continue
                if not opts[k].in_place:
                    shown = f"{k} {have}" if have is not None else f"no {k}"
                    raise ConfigError(f"{f}: {name}.{k}: {name} is loaded with {shown}; "
                                      f"`bpfnetctl unload {name}` is needed to change it")
                changed[k] = (have, want)
            for k, (have, want) in changed.items():
                out.append(Action("~", name, "set", f"{k} {have} -> {want}",
                                  {"options": {k: want}, "old": {k: have}}, f"{name}.{k}"))
        planner = _PLANNERS.get(name)
        if planner is not None:
            planner(d, c, cur_children, broken, hosts, desired.host, out)
    return out


def current_spec(current: dict) -> dict:
    """{name: FnSpec} of what is loaded (``config show``): VNI groups equal
    to the load's are left out, as the file would leave them out."""
    out = {}
    for name, c in current.items():
        if not c.loaded:
            continue
        spec = c.spec()
        if name == "bridge":
            g = str(c.options.get("group"))
            spec.children = {k: BridgeVni(x.vni, x.bridge, None if str(x.group) == g else x.group,
                                          x.allow, fdb=x.fdb or None)
                             for k, x in spec.children.items()}
        out[name] = spec
    return out


# --- checks against the kernel, before anything changes --------------------------------

DEVICE_OPTIONS = ("underlay", "trunk", "dev")


def check(actions: list[Action], fns, desired: Desired) -> None:
    """What the kernel would refuse, found before the first change: devices
    the file names that do not exist, bridges that are not bridges, peers
    that are this host. ConfigError ``FILE: KEY: problem``."""
    f = desired.file
    for a in actions:
        net = fns(a.fn).net
        if a.kind in ("load", "reload"):
            for k in DEVICE_OPTIONS:
                dev = a.args["options"].get(k)
                if dev is not None and net.lookup(str(dev)) is None:
                    raise ConfigError(f"{f}: {a.fn}.{k}: device {str(dev)!r} does not exist")
        br = a.args.get("bridge")
        if br is not None:
            idx = net.lookup(br)
            if idx is not None and net.kind(idx) != "bridge":
                raise ConfigError(f"{f}: {a.where}.bridge: device {br!r} exists and is not a bridge")
        if a.kind == "peer_add":
            if any(IPAddress(x) == a.args["remote"] for x in net.local_addresses()):
                raise ConfigError(f"{f}: {a.where}.peers: {a.args['remote']} is an address of this host")
        if a.kind in ("client_add", "client_redo"):
            w = a.args["worker"]
            if net.lookup(w) is None:
                raise ConfigError(f"{f}: {a.where}.worker: device {w!r} does not exist")
            trunk = desired.functions["gateway"].options.get("trunk")
            if trunk is not None and str(trunk) == w:
                raise ConfigError(f"{f}: {a.where}.worker: {w} is the trunk")


# --- carrying it out ---------------------------------------------------------------

def _load(fn, options: dict) -> None:
    fn.load(**{k: x for k, x in options.items() if x is not None})


def _reload(fn, options: dict) -> None:
    try:
        fn.unload()
    except Exception:  # noqa: BLE001 -- what is left of a broken function
        fn.remove_pins()
    fn.close()
    _load(fn, _parsed(fn.name, options))


def _parsed(name: str, options: dict) -> dict:
    """Loaded option values (text, ints) back through the options' parsers."""
    opts = options_of(name)
    return {k: (x if not isinstance(x, (str, int)) or isinstance(x, bool)
                else opts[k].parse(x if isinstance(x, str) else str(x)))
            for k, x in options.items() if k in opts}


def _vni_add(fn, a) -> None:
    allow = a["allow"]
    fn.vni_add(a["vni"], a["bridge"], allow=allow or (), group=a["group"])
    if allow is not None and not allow:
        fn.vni_set_allow(a["vni"], [])
    for m in a.get("fdb") or ():  # an undone vni_del: its static entries too
        _fdb_add(fn, a["vni"], m)


def _vni_spec(fn, vni: int) -> dict:
    """What ``vni_add`` would need to make VNI ``vni`` again (for undo),
    its static entries included."""
    cur = read_one(fn).children[vni]
    return {"vni": vni, "bridge": cur.bridge, "group": cur.group, "allow": cur.allow,
            "fdb": cur.fdb}


def _fdb_add(fn, vni: int, m: StaticMac) -> None:
    from netaddr import EUI
    fn.fdb_add(EUI(m.mac), vni, m.remote, ips=m.ips)


def _fdb_del(fn, vni: int, mac: str) -> None:
    from netaddr import EUI
    fn.fdb_del(EUI(mac), vni)


def _do(fn, a: Action):
    """Carries out one action; returns its undo (a callable) or None."""
    x = a.args
    k = a.kind
    if k == "load":
        _load(fn, x["options"])
        return fn.unload
    if k == "set":
        _load(fn, x["options"])
        return lambda: _load(fn, _parsed(fn.name, x["old"]))
    if k == "reload":
        _reload(fn, x["options"])
        return None
    if k == "vni_add":
        _vni_add(fn, x)
        return lambda: fn.vni_del(x["vni"])
    if k == "vni_del":
        old = _vni_spec(fn, x["vni"])
        fn.vni_del(x["vni"])
        return lambda: _vni_add(fn, old)
    if k == "vni_redo":
        with contextlib.suppress(BpfnetError):
            fn.vni_del(x["vni"])
        _vni_add(fn, x)
        return None
    if k == "vni_allow":
        fn.vni_set_allow(x["vni"], x["allow"])
        return lambda: fn.vni_set_allow(x["vni"], x["old"])
    if k == "fdb_add":
        _fdb_add(fn, x["vni"], x["entry"])
        return lambda: _fdb_del(fn, x["vni"], x["entry"].mac)
    if k == "fdb_del":
        _fdb_del(fn, x["vni"], x["mac"])
        return lambda: _fdb_add(fn, x["vni"], x["old"])
    if k == "fdb_set":
        _fdb_del(fn, x["vni"], x["old"].mac)
        _fdb_add(fn, x["vni"], x["entry"])
        return lambda: (_fdb_del(fn, x["vni"], x["entry"].mac), _fdb_add(fn, x["vni"], x["old"]))
    if k == "peer_add":
        fn.peer_add(x["remote"], x["vni"], x["bridge"])
        return lambda: fn.peer_del(x["remote"], x["vni"])
    if k == "peer_del":
        br = read_one(fn).children[x["vni"]].bridge
        fn.peer_del(x["remote"], x["vni"])
        return lambda: fn.peer_add(x["remote"], x["vni"], br)
    if k == "peer_redo":
        with contextlib.suppress(BpfnetError):
            fn.peer_del(x["remote"], x["vni"])
        fn.peer_add(x["remote"], x["vni"], x["bridge"])
        return None
    if k == "client_add":
        from netaddr import EUI
        fn.client_add(EUI(x["mac"]), x["worker"])
        return lambda: fn.client_del(EUI(x["mac"]))
    if k == "client_del":
        from netaddr import EUI
        worker = read_one(fn).children[x["mac"]].worker
        fn.client_del(EUI(x["mac"]))
        return (lambda: fn.client_add(EUI(x["mac"]), worker)) if worker else None
    if k == "client_redo":
        from netaddr import EUI
        with contextlib.suppress(BpfnetError):
            fn.client_del(EUI(x["mac"]))
        fn.client_add(EUI(x["mac"]), x["worker"])
        return None
    raise AssertionError(k)


def run_one(fns, a: Action) -> None:
    """Carries out one action on its own (the agent: one failure does not
    stop the others)."""
    _do(fns(a.fn), a)


def execute(actions: list[Action], fns, file: str, say=lambda line: None) -> None:
    """Carries out ``actions`` in order, saying each; if one fails, what was
    done is undone in reverse and the error says so (or says exactly what
    stays applied, if an undo fails too)."""
    undos = []
    for a in actions:
        try:
            undo = _do(fns(a.fn), a)
        except Exception as exc:  # noqa: BLE001 -- undone, then raised again with context
            left = []
            for done, u in reversed(undos):
                if u is None:
                    left.append(done)
                    continue
                try:
                    u()
                except Exception:  # noqa: BLE001
                    left.append(done)
            from .cli import _describe
            msg, code = _describe(exc)
            if not undos:
                tail = "nothing was changed"
            elif not left:
                tail = f"the {len(undos)} change(s) before it were undone"
            else:
                tail = "still applied: " + "; ".join(str(x) for x in reversed(left))
            err = ConfigError if code == 2 else KernelError
            raise err(f"{file}: `{a}` failed: {msg}; {tail}") from exc
        undos.append((a, undo))
        say(str(a))
