"""The seed's physical-to-virtual gateway: three clients on three VLANs of one
trunk, each steered by its MAC to its own worker; the three workers share one
IP address, and each runs an HTTP server naming itself.

  c1 10.0.0.11          c2 10.0.0.12          c3 10.0.0.13
  VLAN 10 (802.1Q)      VLAN 20 (802.1Q)      VLAN 30 (802.1ad)
        \\                    |                    /
   sw:  sw0, a VLAN-unaware Linux bridge: the switch, carrying the tags
                             | trunk
   gw:  trunk0 [gw_phys2virt]      w1        w2        w3   [gw_virt2phys]
                                    |         |         |
                          wk1 10.0.0.1  wk2 10.0.0.1  wk3 10.0.0.1

Each client's VLAN is a real 802.1Q/802.1ad subinterface ``eth0`` over its
link ``link0`` where the kernel has them (8021q). Where it has not, ``eth0``
is the link itself and a test-side BPF tagger (build/tests/vlan_tagger.bpf.o,
from tests/progs/) plays the subinterface: it pushes the client's tag on
egress, and on ingress pops it or drops frames of other VLANs.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import sys
import tempfile

from pyroute2 import netns
from pyroute2.netlink.exceptions import NetlinkError

from . import finish
from .. import abi
from ..errors import NotFound
from ..sim import Sim

WORKER_IP = "10.0.0.1"
PREFIX_LEN = 24
ETH_P_8021Q, ETH_P_8021AD = abi.ETH_P_8021Q, abi.ETH_P_8021AD
# (VLAN, TPID) of each client
CLIENTS = ((10, ETH_P_8021Q), (20, ETH_P_8021Q), (30, ETH_P_8021AD))
HTTP_PORT = 80


def client_ip(i: int) -> str:
    return f"10.0.0.{11 + i}"


def client_mac(i: int) -> str:
    return f"02:00:00:00:10:{i + 1:02x}"


def worker_mac(i: int) -> str:
    return f"02:00:00:00:20:{i + 1:02x}"


def tagger_path() -> str:
    """The tagger's object: an installed package's bpf/demo/ (setup.py
    builds it into the wheel), else the checkout's build/tests/ (make)."""
    from ..functions.base import obj_dir
    for p in (os.path.join(obj_dir(), "demo", "vlan_tagger.bpf.o"),
              os.path.join(obj_dir(), "..", "tests", "vlan_tagger.bpf.o")):
        if os.path.exists(p):
            return os.path.normpath(p)
    return os.path.normpath(os.path.join(obj_dir(), "..", "tests", "vlan_tagger.bpf.o"))


class TagCfg(ctypes.Structure):
    """struct tag_cfg of tests/progs/vlan_tagger.bpf.c."""
    _fields_ = [("tci", ctypes.c_uint16), ("proto", ctypes.c_uint16.__ctype_be__),
                ("pad", ctypes.c_uint32)]


class TagCounts(ctypes.Structure):
    """struct tag_counts of tests/progs/vlan_tagger.bpf.c."""
    _fields_ = [(n, ctypes.c_uint64) for n in ("pushed", "popped", "other_vlan", "untagged")]


class Tagger:
    """The test-side tagger on one client's eth0 (kept open for its maps)."""

    def __init__(self, sim: Sim, ns: str, ifname: str, vlan: int, proto: int):
        from ..libbpf import BpfObject
        from ..maps import Map
        from ..netlink import Net
        path = tagger_path()
        if not os.path.exists(path):
            raise NotFound(f"{path} not built (make): needed where the kernel has no 8021q")
        self.obj = BpfObject.open(path)
        sim.on_cleanup(self.obj.close)
        self.obj.load()
        self.cfg = Map(self.obj.map_fd("tag_cfg"), ctypes.c_uint32, TagCfg, "tag_cfg", owned=False)
        self.counts_map = Map(self.obj.map_fd("tag_counts"), ctypes.c_uint32, TagCounts,
                              "tag_counts", owned=False)
        self.set(vlan, proto)
        netns.pushns(ns)
        try:
            net = Net()
        finally:
            netns.popns()
        try:
            idx = net.index(ifname)
            net.clsact(idx)
            net.attach(idx, "egress", self.obj.prog_fd("tag_egress"), "tag_egress")
            net.attach(idx, "ingress", self.obj.prog_fd("tag_ingress"), "tag_ingress")
        finally:
            net.close()

    def set(self, vlan: int, proto: int) -> None:
        self.cfg[ctypes.c_uint32(0)] = TagCfg(tci=vlan, proto=proto)

    def counts(self) -> dict:
        c = self.counts_map[ctypes.c_uint32(0)]
        return {n: getattr(c, n) for n, _ in TagCounts._fields_}


def vlan_supported(sim: Sim, ns: str) -> bool:
    """True if the kernel makes VLAN devices here (asking for one loads
    8021q if it exists): tried on a throwaway veth in ``ns``."""
    with sim.ipr(ns) as ipr:
        ipr.link("add", ifname="vprobe0", kind="veth", peer="vprobe1")
        try:
            ipr.link("add", ifname="vprobe0.1", kind="vlan",
                     link=ipr.link_lookup(ifname="vprobe0")[0], vlan_id=1)
            return True
        except NetlinkError:
            return False
        finally:
            ipr.link("del", index=ipr.link_lookup(ifname="vprobe0")[0])


def _ns(sim: Sim, short: str) -> str:
    ns = sim.ns(short)
    sim.quiet(ns)
    return ns


def add_vlan_dev(sim: Sim, ns: str, vlan: int, proto: int, mac: str, ip: str | None) -> None:
    """``eth0``: a real VLAN subinterface of ``link0`` in ``ns``, up."""
    with sim.ipr(ns) as ipr:
        link = ipr.link_lookup(ifname="link0")[0]
        ipr.link("add", ifname="eth0", kind="vlan", link=link, vlan_id=vlan,
                 vlan_protocol=proto, address=mac)
        idx = ipr.link_lookup(ifname="eth0")[0]
        ipr.link("set", index=idx, state="up")
        if ip:
            ipr.addr("add", index=idx, address=ip, prefixlen=PREFIX_LEN)


def build(sim: Sim, say=lambda *_: None, mode: str = "auto", clients=CLIENTS,
          provision: bool = True) -> dict:
    """Builds the topology and, if ``provision``, loads the gateway and adds
    the clients. ``mode``: "8021q" (real subinterfaces), "bpf" (test-side
    tagger) or "auto" (8021q where the kernel has it). Returns {"mode",
    "gw", "sw", "clients": [...], "workers": [...]}, each client {"ns",
    "mac", "ip", "vlan", "proto", "tagger"}, each worker {"ns", "port",
    "mac"}."""
    gw, sw = _ns(sim, "gw"), _ns(sim, "sw")
    if mode == "auto":
        mode = "8021q" if vlan_supported(sim, sw) else "bpf"
    sim.bridge(sw, "sw0")
    sim.veth(gw, "trunk0", sw, "trunk")
    sim.enslave(sw, "trunk", "sw0")
    topo = {"mode": mode, "gw": gw, "sw": sw, "clients": [], "workers": []}
    for i, (vlan, proto) in enumerate(clients):
        ns = _ns(sim, f"c{i + 1}")
        mac = client_mac(i)
        c = {"ns": ns, "mac": mac, "ip": client_ip(i), "vlan": vlan, "proto": proto,
             "tagger": None}
        link = "link0" if mode == "8021q" else "eth0"
        sim.veth(sw, f"pc{i + 1}", ns, link, mac_b=mac)
        sim.enslave(sw, f"pc{i + 1}", "sw0")
        if mode == "8021q":
            add_vlan_dev(sim, ns, vlan, proto, mac, c["ip"])
        else:
            sim.addr(ns, "eth0", f"{c['ip']}/{PREFIX_LEN}")
            c["tagger"] = Tagger(sim, ns, "eth0", vlan, proto)
        topo["clients"].append(c)
        wns = _ns(sim, f"wk{i + 1}")
        sim.veth(gw, f"w{i + 1}", wns, "eth0", mac_b=worker_mac(i))
        sim.addr(wns, "eth0", f"{WORKER_IP}/{PREFIX_LEN}")
        topo["workers"].append({"ns": wns, "port": f"w{i + 1}", "mac": worker_mac(i)})
    if provision:
        provision_gateway(sim, topo, say)
    return topo


def provision_gateway(sim: Sim, topo: dict, say=lambda *_: None) -> None:
    """load gateway on trunk0, then one client add per client and worker."""
    gw = topo["gw"]
    say(f"$ bpfnetctl --netns {gw} load gateway --trunk trunk0")
    sim.bpfnetctl("load", "gateway", "--trunk", "trunk0", netns_=gw)
    for c, w in zip(topo["clients"], topo["workers"]):
        say(f"$ bpfnetctl --netns {gw} client add {c['mac']} --worker {w['port']}")
        sim.bpfnetctl("client", "add", c["mac"], "--worker", w["port"], netns_=gw)


# --- HTTP --------------------------------------------------------------------

FETCH = """
import sys, time, urllib.request
end = time.monotonic() + float(sys.argv[2])
while True:
    try:
        print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode().strip())
        break
    except OSError as e:
        if time.monotonic() > end:
            print("FAILED:", e)
            sys.exit(1)
        time.sleep(0.2)
"""


def serve(sim: Sim, topo: dict) -> None:
    """Starts ``python3 -m http.server`` in each worker, serving a page
    that names the worker (stopped by the Sim's cleanup)."""
    for i, w in enumerate(topo["workers"]):
        root = tempfile.mkdtemp(prefix="bpfnet-gw-")
        sim.on_cleanup(shutil.rmtree, root, True)
        with open(os.path.join(root, "index.html"), "w") as f:
            f.write(f"hello from worker wk{i + 1} ({w['mac']})\n")
        sim.spawn(w["ns"], [sys.executable, "-m", "http.server", str(HTTP_PORT),
                            "--bind", WORKER_IP, "--directory", root],
                  stdout=open(os.devnull, "w"), stderr=open(os.devnull, "w"))


def fetch(sim: Sim, ns: str, wait: float = 15) -> str:
    """The worker IP's page as seen from ``ns`` (bounded: ``wait`` seconds
    of retries while the server starts)."""
    url = f"http://{WORKER_IP}:{HTTP_PORT}/"
    r = sim.run(ns, [sys.executable, "-c", FETCH, url, str(wait)], timeout=wait + 10)
    return (r.stdout.strip() or r.stderr.strip()).splitlines()[-1] if (r.stdout or r.stderr) else ""


def run(keep: bool, say, prefix: str | None = None) -> int:
    import json

    from ..cli import table
    sim = Sim(prefix=prefix)
    try:
        say(f"# gateway demo: 3 clients on VLANs {', '.join(str(v) for v, _ in CLIENTS)} "
            f"of one trunk, 3 workers at {WORKER_IP}, run {sim.prefix}")
        topo = build(sim, say=say)
        gw = topo["gw"]
        say("# client VLANs: " + ("802.1Q/802.1ad subinterfaces" if topo["mode"] == "8021q"
                                  else "test-side BPF tagger (this kernel has no 8021q)"))
        serve(sim, topo)
        say("")
        say(f"# each client fetches http://{WORKER_IP}/ over its own VLAN")
        rows = []
        for i, c in enumerate(topo["clients"]):
            page = fetch(sim, c["ns"])
            rows.append({"client": f"c{i + 1}", "mac": c["mac"], "vlan": c["vlan"],
                         "proto": "802.1ad" if c["proto"] == ETH_P_8021AD else "802.1Q",
                         "page": page, "ok": page.startswith(f"hello from worker wk{i + 1} ")})
        say(table(rows))
        say("")
        say(f"$ bpfnetctl --netns {gw} client show")
        _, out, _ = sim.bpfnetctl("client", "show", netns_=gw)
        say(out.rstrip())
        _, out, _ = sim.bpfnetctl("client", "show", "--json", netns_=gw)
        shown = {r["mac"]: r for r in json.loads(out)}
        learned = all(shown[c["mac"]]["vlan"] == c["vlan"] and shown[c["mac"]]["tx_pkts"] > 0
                      for c in topo["clients"])
        _, out, _ = sim.bpfnetctl("status", "--json", netns_=gw)
        n = json.loads(out)["functions"]["gateway"]["counters"]
        say("")
        say(f"# gateway counters: rx={n['rx']} tx={n['tx']} learn={n['learn']} "
            f"move={n['move']} pass_untagged={n['pass_untagged']} "
            f"pass_unknown={n['pass_unknown']}")
        ok = all(r["ok"] for r in rows) and learned
        return finish(sim, say, ok, f"{sum(r['ok'] for r in rows)}/{len(rows)} clients reached "
                      "their own worker, replies on their own VLAN", keep)
    finally:
        with contextlib.suppress(Exception):
            sim.cleanup()
