"""The desired-state file (CLI.md, "Desired state"): TOML read with tomllib,
checked whole, into plain values.

    d = load("/etc/bpfnet/bpfnet.toml")      # or parse(text, "cfg.toml")
    d.functions["mesh"].options               # {"local": IPAddress(...), "port": 4790}
    d.functions["mesh"].children[30].peers    # (IPAddress("10.0.0.2"), ...) or "cluster"
    print(dump(d))                            # back to TOML (``config show``)

Every problem is a ConfigError naming the file and the key (or the line,
for TOML syntax): ``cfg.toml: bridge.vnis[1].vni: 0 is outside 1..16777215``.
Nothing here touches the kernel (root-free, unit-tested).

Load options are the functions' own declaration (``Function.options``:
name, parse, in_place); the children (VNIs, peers, clients) are this
module's.
"""
from __future__ import annotations

import json
import re
import socket
import tomllib
from dataclasses import dataclass, field

from netaddr import IPAddress

from . import validate as v
from .errors import ConfigError
from .functions import FUNCTIONS

CLUSTER = "cluster"  # peers = "cluster" / allow = "cluster": from etcd membership
CHILDREN = {"bridge": "vnis", "mesh": "vnis", "gateway": "clients"}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
URL_RE = re.compile(r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")


@dataclass(frozen=True)
class StaticMac:
    """A static FDB entry of a bridge VNI (``fdb = [ { mac, remote, ip } ]``)."""
    mac: str                           # normalized, lower case
    remote: IPAddress
    ips: tuple = ()                    # tenant addresses answered for (ARP/ND)


@dataclass(frozen=True)
class BridgeVni:
    vni: int
    bridge: str
    group: IPAddress | None = None     # None: the load's group
    allow: tuple | str | None = None   # None: any sender; a tuple: only these; "cluster"
    where: str = ""                    # the key, for messages
    fdb: tuple | None = None           # None: static entries left alone; a tuple of
                                       # StaticMac sorted by mac: exactly these


@dataclass(frozen=True)
class MeshVni:
    vni: int
    bridge: str
    peers: tuple | str = ()            # a tuple of IPAddress, or "cluster"
    where: str = ""


@dataclass(frozen=True)
class Client:
    mac: str                           # normalized, lower case
    worker: str
    where: str = ""


@dataclass
class FnSpec:
    name: str
    options: dict = field(default_factory=dict)   # option name -> parsed value
    children: dict = field(default_factory=dict)  # vni or mac -> BridgeVni/MeshVni/Client


@dataclass
class Cluster:
    etcd: list
    name: str = "default"
    ttl: int = 10
    routes: bool = True                # MAC/IP routes over etcd (the agent, with a bridge)


@dataclass
class Desired:
    file: str
    host: str
    cluster: Cluster | None
    functions: dict  # function name -> FnSpec, in FUNCTIONS order

    def uses_cluster(self) -> bool:
        return any(c.peers == CLUSTER if isinstance(c, MeshVni) else
                   getattr(c, "allow", None) == CLUSTER
                   for f in self.functions.values() for c in f.children.values())


class _Err(Exception):
    def __init__(self, where: str, msg: str):
        super().__init__(f"{where}: {msg}" if where else msg)


# --- load options: the functions' declaration ---------------------------------------

def options_of(fn: str) -> dict:
    """{name: Option} for ``fn``'s load options (Function.options)."""
    from .functions import get
    return {o.name: o for o in get(fn).options}


def _check_type(where: str, value, kinds, what: str):
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise _Err(where, f"expected {what}, not {_toml_type(value)}")
    return value


def _toml_type(value) -> str:
    return {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)


def _parse_option(fn: str, opt, key: str, value):
    where = f"{fn}.{key}"
    _check_type(where, value, (str, int), "a string or an integer")
    try:
        return opt.parse(value if isinstance(value, str) else str(value))
    except ConfigError as e:
        raise _Err(where, str(e)) from None


# --- children ---------------------------------------------------------------------

def _int_in(where: str, value, lo: int, hi: int) -> int:
    _check_type(where, value, int, "an integer")
    if not lo <= value <= hi:
        raise _Err(where, f"{value} is outside {lo}..{hi}")
    return value


def _str(where: str, value, parse=None):
    _check_type(where, value, str, "a string")
    if parse is None:
        return value
    try:
        return parse(value)
    except ConfigError as e:
        raise _Err(where, str(e)) from None


def _table(where: str, value, keys: tuple, required: tuple = ()) -> dict:
    _check_type(where, value, dict, "a table")
    for k in value:
        if k not in keys:
            raise _Err(f"{where}.{k}" if where else k, f"unknown key (known: {', '.join(keys)})")
    for k in required:
        if k not in value:
            raise _Err(where, f"missing key {k!r}")
    return value


def _ip_list(where: str, value) -> tuple:
    if value == CLUSTER:
        return CLUSTER
    _check_type(where, value, list, f'an array of addresses or "{CLUSTER}"')
    out = []
    for i, item in enumerate(value):
        ip = _str(f"{where}[{i}]", item, v.unicast_ip)
        if ip in out:
            raise _Err(f"{where}[{i}]", f"{ip} is listed twice")
        out.append(ip)
    return tuple(out)


def _vnis(items, where: str, keys: tuple, make) -> dict:
    """A bridge's or a mesh's ``vnis``: each VNI and each bridge once;
    ``make(vni, bridge, table, key)`` reads the rest of an item."""
    out, bridges = {}, {}
    _check_type(where, items, list, "an array of tables")
    for i, t in enumerate(items):
        w = f"{where}[{i}]"
        _table(w, t, ("vni", "bridge") + keys, ("vni", "bridge"))
        vni = _int_in(f"{w}.vni", t["vni"], 1, v.VNI_MAX)
        br = _str(f"{w}.bridge", t["bridge"], v.ifname)
        item = make(vni, br, t, w)
        if vni in out:
            raise _Err(f"{w}.vni", f"VNI {vni} is listed twice")
        if br in bridges:
            raise _Err(f"{w}.bridge", f"bridge {br} already carries VNI {bridges[br]}: one bridge per VNI")
        bridges[br] = vni
        out[vni] = item
    return out


def _static_macs(where: str, items) -> tuple:
    """A bridge VNI's ``fdb``: each MAC once, ``ip`` an address or a list."""
    _check_type(where, items, list, "an array of tables")
    out = {}
    for i, t in enumerate(items):
        w = f"{where}[{i}]"
        _table(w, t, ("mac", "remote", "ip"), ("mac", "remote"))
        mac = str(_str(f"{w}.mac", t["mac"], v.mac)).lower()
        if mac in out:
            raise _Err(f"{w}.mac", f"{mac} is listed twice")
        remote = _str(f"{w}.remote", t["remote"], v.unicast_ip)
        ips = t.get("ip", [])
        ips = _ip_list(f"{w}.ip", [ips] if isinstance(ips, str) else ips)
        if ips == CLUSTER:
            raise _Err(f"{w}.ip", "an address or an array of addresses")
        out[mac] = StaticMac(mac, remote, tuple(sorted(ips, key=lambda a: (a.version, a))))
    return tuple(out[m] for m in sorted(out))


def _bridge_vnis(items, where: str) -> dict:
    def make(vni, br, t, w):
        group = _str(f"{w}.group", t["group"], v.mcast_group) if "group" in t else None
        allow = _ip_list(f"{w}.allow", t["allow"]) if "allow" in t else None
        fdb = _static_macs(f"{w}.fdb", t["fdb"]) if "fdb" in t else None
        return BridgeVni(vni, br, group, allow, w, fdb)
    return _vnis(items, where, ("group", "allow", "fdb"), make)


def _mesh_vnis(items, where: str) -> dict:
    def make(vni, br, t, w):
        return MeshVni(vni, br, _ip_list(f"{w}.peers", t.get("peers", [])), w)
    return _vnis(items, where, ("peers",), make)


def _clients(items, where: str) -> dict:
    out, workers = {}, {}
    _check_type(where, items, list, "an array of tables")
    for i, t in enumerate(items):
        w = f"{where}[{i}]"
        _table(w, t, ("mac", "worker"), ("mac", "worker"))
        mac = str(_str(f"{w}.mac", t["mac"], v.mac)).lower()
        worker = _str(f"{w}.worker", t["worker"], v.ifname)
        if mac in out:
            raise _Err(f"{w}.mac", f"client {mac} is listed twice")
        if worker in workers:
            raise _Err(f"{w}.worker", f"worker {worker} already serves client {workers[worker]}")
        workers[worker] = mac
        out[mac] = Client(mac, worker, w)
    return out


_CHILD_PARSERS = {"bridge": _bridge_vnis, "mesh": _mesh_vnis, "gateway": _clients}


def _function(fn: str, table) -> FnSpec:
    opts = options_of(fn)
    child = CHILDREN.get(fn)
    _table(fn, table, tuple(opts) + ((child,) if child else ()))
    spec = FnSpec(fn)
    for key, value in table.items():
        if key == child:
            spec.children = _CHILD_PARSERS[fn](value, f"{fn}.{key}")
        else:
            spec.options[key] = _parse_option(fn, opts[key], key, value)
    if fn == "mesh":
        local = spec.options.get("local")
        for c in spec.children.values():
            if local is not None and c.peers != CLUSTER:
                for i, p in enumerate(c.peers):
                    if p.version != local.version:
                        raise _Err(f"{c.where}.peers[{i}]",
                                   f"{p} is not of mesh.local {local}'s address family")
                    if p == local:
                        raise _Err(f"{c.where}.peers[{i}]", f"{p} is mesh.local, this host")
    return spec


def _cluster(table) -> Cluster:
    _table("cluster", table, ("etcd", "name", "ttl", "routes"), ("etcd",))
    eps = table["etcd"]
    if isinstance(eps, str):
        eps = [eps]
    _check_type("cluster.etcd", eps, list, "an array of URLs")
    if not eps:
        raise _Err("cluster.etcd", "no endpoint")
    for i, e in enumerate(eps):
        _str(f"cluster.etcd[{i}]", e)
        m = URL_RE.match(e)
        if not m or not 1 <= int(m.group(2)) <= 65535:
            raise _Err(f"cluster.etcd[{i}]", f"{e!r} is not http://HOST:PORT")
    name = _str("cluster.name", table.get("name", "default"))
    if not NAME_RE.match(name):
        raise _Err("cluster.name", f"{name!r}: letters, digits, '.', '_' and '-' only")
    ttl = _int_in("cluster.ttl", table.get("ttl", 10), 2, 3600)
    routes = table.get("routes", True)
    if not isinstance(routes, bool):
        raise _Err("cluster.routes", f"expected true or false, not {_toml_type(routes)}")
    return Cluster(list(eps), name, ttl, routes)


def parse(text: str, file: str = "<config>") -> Desired:
    """Parses and checks the whole file; ConfigError ``FILE: KEY: problem``."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = re.match(r"^(.*) \(at line (\d+), column (\d+)\)$", msg)
        if m:
            msg = f"line {m.group(2)}, column {m.group(3)}: {m.group(1)}"
        elif msg.endswith("(at end of document)"):
            msg = f"end of file: {msg[:-len(' (at end of document)')]}"
        raise ConfigError(f"{file}: {msg}") from None
    try:
        _table("", doc, ("host", "cluster") + FUNCTIONS)
        host = socket.gethostname()
        if "host" in doc:
            _table("host", doc["host"], ("name",))
            host = _str("host.name", doc["host"].get("name", host))
            if not NAME_RE.match(host):
                raise _Err("host.name", f"{host!r}: letters, digits, '.', '_' and '-' only")
        cluster = _cluster(doc["cluster"]) if "cluster" in doc else None
        fns = {fn: _function(fn, doc[fn]) for fn in FUNCTIONS if fn in doc}
    except _Err as e:
        raise ConfigError(f"{file}: {e}") from None
    if "bridge" in fns and "mesh" in fns:
        for k in ("device", "port"):
            mine = [fns[f].options.get(k, options_of(f)[k].default) for f in ("bridge", "mesh")]
            if mine[0] is not None and str(mine[0]) == str(mine[1]):
                raise ConfigError(f"{file}: mesh.{k}: {mine[1]} is the bridge's too: a mesh and "
                                  "a bridge need a VXLAN device and a port each")
    d = Desired(file, host, cluster, fns)
    if d.uses_cluster() and cluster is None:
        where = next(f"{c.where}.{'peers' if isinstance(c, MeshVni) else 'allow'}"
                     for f in fns.values() for c in f.children.values()
                     if getattr(c, "peers", getattr(c, "allow", None)) == CLUSTER)
        raise ConfigError(f'{file}: {where}: "{CLUSTER}" needs a [cluster] section')
    if cluster is not None and vtep_of(d) is None:
        raise ConfigError(f"{file}: cluster: give mesh.local or bridge.local "
                          "(the VTEP address this host publishes)")
    return d


def load(path: str) -> Desired:
    """Reads and parses ``path`` (``-``: standard input); messages name the
    file by its base name (``<stdin>`` for ``-``)."""
    import os
    import sys
    try:
        if path == "-":
            raw, name = sys.stdin.buffer.read(), "<stdin>"
        else:
            with open(path, "rb") as f:
                raw, name = f.read(), os.path.basename(path)
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror}") from None
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    return parse(text, name)


def vtep_of(d: Desired):
    """The address this host publishes to the cluster: mesh.local, else bridge.local."""
    for fn in ("mesh", "bridge"):
        spec = d.functions.get(fn)
        if spec is not None and spec.options.get("local") is not None:
            return spec.options["local"]
    return None


def record_of(d: Desired, port: int | None = None) -> dict:
    """This host's membership record (CLI.md's etcd layout)."""
    from .functions.overlay import DEFAULT_PORT
    fn = "mesh" if "mesh" in d.functions else "bridge"
    spec = d.functions.get(fn)
    p = port or (spec.options.get("port") if spec else None) or DEFAULT_PORT
    return {"vtep": str(vtep_of(d)), "port": int(p),
            "bridge_vnis": sorted(d.functions["bridge"].children) if "bridge" in d.functions else [],
            "mesh_vnis": sorted(d.functions["mesh"].children) if "mesh" in d.functions else []}


# --- back to TOML (config show) -------------------------------------------------------

def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in value.items()) + " }"
    return json.dumps(str(value))  # a TOML basic string is a JSON string


def cluster_data(host: str, cluster: Cluster) -> dict:
    """The [host] and [cluster] tables, every key given (defaults too)."""
    return {"host": {"name": host},
            "cluster": {"etcd": list(cluster.etcd), "name": cluster.name, "ttl": cluster.ttl,
                        "routes": cluster.routes}}


def to_data(functions: dict, host: str | None = None, cluster: Cluster | None = None) -> dict:
    """{function: {option: value, "vnis"/"clients": [...]}} (and, given a
    cluster, "host" and "cluster" first): what ``config show --json`` prints
    and what :func:`dump` writes as TOML."""
    out = cluster_data(host, cluster) if cluster is not None else {}
    for fn, spec in functions.items():
        t = {k: (x if isinstance(x, int) else str(x)) for k, x in spec.options.items()
             if x is not None}
        key = CHILDREN.get(fn)
        rows = []
        for c in sorted(spec.children.values(), key=lambda c: getattr(c, "vni", None) or c.mac):
            if isinstance(c, BridgeVni):
                r = {"vni": c.vni, "bridge": c.bridge}
                if c.group is not None:
                    r["group"] = str(c.group)
                if c.allow is not None:
                    r["allow"] = c.allow if c.allow == CLUSTER else [str(a) for a in c.allow]
                if c.fdb:
                    r["fdb"] = [{"mac": m.mac, "remote": str(m.remote), **(
                        {"ip": [str(a) for a in m.ips]} if m.ips else {})} for m in c.fdb]
            elif isinstance(c, MeshVni):
                r = {"vni": c.vni, "bridge": c.bridge,
                     "peers": c.peers if c.peers == CLUSTER else [str(p) for p in c.peers]}
            else:
                r = {"mac": c.mac, "worker": c.worker}
            rows.append(r)
        if key and rows:
            t[key] = rows
        out[fn] = t
    return out


def dump(functions: dict, header: str = "", host: str | None = None,
         cluster: Cluster | None = None) -> str:
    """TOML for ``functions`` ({name: FnSpec}) in the file's format, after
    [host] and [cluster] if ``cluster`` is given."""
    lines = [f"# {h}" for h in header.splitlines()]
    for fn, t in to_data(functions, host, cluster).items():
        if lines:
            lines.append("")
        lines.append(f"[{fn}]")
        for k, x in t.items():
            if k == CHILDREN.get(fn):
                lines.append(f"{k} = [")
                lines += [f"  {_toml_value(r)}," for r in x]
                lines.append("]")
            else:
                lines.append(f"{k} = {_toml_value(x)}")
    return "\n".join(lines) + "\n"
