"""Shared fixtures. Tests that need root, bpffs or a tool skip with a reason,
except under CI=true, where such a skip is a failure (a green run must not
hide tests that did not run)."""
from __future__ import annotations

import os
import shutil
import sys
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

OBJ_DIR = os.environ.get("BPFNET_OBJ_DIR", os.path.join(ROOT, "build", "bpf"))
IN_CI = os.environ.get("CI") == "true"


def need(cond: bool, reason: str):
    """Skips the test unless ``cond``; under CI=true, fails instead."""
    if cond:
        return
    if IN_CI:
        pytest.fail(f"CI=true and the test cannot run: {reason}")
    pytest.skip(reason)


def need_root():
    need(os.geteuid() == 0, "needs root (CAP_BPF, CAP_NET_ADMIN)")


def need_tool(name: str):
    need(shutil.which(name) is not None, f"needs {name}")


def obj_path(fn: str) -> str:
    p = os.path.join(OBJ_DIR, f"{fn}.bpf.o")
    need(os.path.exists(p), f"{p} not built: run make")
    return p


@pytest.fixture
def root():
    need_root()


@pytest.fixture
def sim():
    """A Sim with a per-run prefix and pin root, always cleaned up."""
    need_root()
    from bpfnet.sim import Sim
    s = Sim(prefix=f"bt{uuid.uuid4().hex[:6]}")
    try:
        yield s
    finally:
        s.cleanup()


@pytest.fixture
def pin_root():
    """A unique pin root on bpffs, removed afterwards."""
    need_root()
    from bpfnet.functions.base import ensure_bpffs
    path = f"/sys/fs/bpf/bpfnet-test-{uuid.uuid4().hex[:8]}"
    ensure_bpffs(path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def loaded_obj(pin_root):
    """loaded_obj("bridge") -> a loaded BpfObject whose maps are pinned in a
    throwaway dir (for BPF_PROG_TEST_RUN)."""
    from bpfnet import libbpf
    objs = []

    def load(fn: str):
        d = os.path.join(pin_root, fn)
        os.makedirs(d, exist_ok=True)
        o = libbpf.BpfObject.open(obj_path(fn), pin_root=d)
        o.load()
        objs.append(o)
        return o
    try:
        yield load
    finally:
        for o in objs:
            o.close()


# --- helpers for the end-to-end tests ----------------------------------------

BPFNETCTL = os.path.join(ROOT, "bpfnetctl")


def run_cli(sim, ns, *argv, timeout: float = 60):
    """bpfnetctl as a user runs it: a process. Returns (code, stdout, stderr)."""
    import subprocess
    r = subprocess.run([BPFNETCTL, "--pin-root", sim.pin_root] + (["--netns", ns] if ns else [])
                       + list(argv), capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def snapshot(sim, ns):
    """Everything a command could change in ``ns``: devices (name, kind,
    master), qdiscs, tc filters, tcx programs per hook, and every pin under
    the run's pin root. Compare two to prove a command changed nothing."""
    import collections

    from bpfnet import libbpf
    Snap = collections.namedtuple("Snapshot", "links qdiscs filters tcx pins")
    tcx = libbpf.tcx_supported()
    with sim.ipr(ns) as ipr:
        raw = list(ipr.get_links())
        links = sorted((ln.get_attr("IFLA_IFNAME"), str(ln.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")),
                        ln.get_attr("IFLA_MASTER")) for ln in raw)
        qd = sorted((q["index"], q.get_attr("TCA_KIND")) for q in ipr.get_qdiscs())
        filters, progs = [], []
        for ln in raw:
            idx = ln["index"]
            for parent in (0xFFFFFFF2, 0xFFFFFFF3):
                try:
                    filters += [(idx, parent, f["info"] >> 16, f["handle"], f.get_attr("TCA_KIND"))
                                for f in ipr.get_filters(idx, parent=parent) if f["handle"]]
                except Exception:  # noqa: BLE001 -- no clsact on this device
                    pass
    if tcx:
        from pyroute2 import netns as _netns
        _netns.pushns(ns)
        try:
            for ln in raw:
                for t in (libbpf.BPF_TCX_INGRESS, libbpf.BPF_TCX_EGRESS):
                    n = libbpf.prog_query_count(ln["index"], t)
                    if n:
                        progs.append((ln.get_attr("IFLA_IFNAME"), t, n))
        finally:
            _netns.popns()
    pins = sorted(os.path.join(d, f) for d, _, fs in os.walk(sim.pin_root) for f in fs) \
        if os.path.isdir(sim.pin_root) else []
    return Snap(links, qd, sorted(filters), sorted(progs), pins)


def bad_input_failures(sim, ns, cases, run) -> list:
    """Runs each (argv, message fragment) through ``run(sim, ns, *argv)``;
    returns those that did not exit 2 with one ``bpfnetctl: error:`` line
    holding the fragment and nothing on stdout. Asserts that none changed
    anything (the namespace's snapshot)."""
    before = snapshot(sim, ns)
    failures = []
    for argv, frag in cases:
        code, out, err = run(sim, ns, *argv)
        lines = err.strip().splitlines()
        if not (code == 2 and len(lines) == 1 and lines[0].startswith("bpfnetctl: error: ")
                and frag in lines[0] and out == ""):
            failures.append((argv, code, err))
        assert snapshot(sim, ns) == before, argv
    return failures


def built(prefix: str, build):
    """For a module-scoped fixture: a Sim with ``prefix`` (plus the pid),
    ``build(sim)``'s topology dict with "sim" added, always cleaned up.

        @pytest.fixture(scope="module")
        def topo():
            yield from built("tb", demo.build)
    """
    from bpfnet.sim import Sim
    need_root()
    sim = Sim(prefix=f"{prefix}{os.getpid() % 100000}")
    try:
        t = build(sim)
        t["sim"] = sim
        yield t
    finally:
        sim.cleanup()


def serving(srv):
    """For a fixture: ``srv`` (a socketserver) serving in a thread, then
    shut down and closed (bpfnet.ui.server.serving)."""
    from bpfnet.ui.server import serving as _serving
    with _serving(srv):
        yield srv


# --- the bridge's and the mesh's topologies (tests/netns/test_bridge.py,
# test_mesh.py): the demos' three hosts, or one host on a fabric ------------------

@pytest.fixture
def host(sim):
    """One host on a fabric: h0, eth0 10.99.0.1/24, nothing loaded. (sim, ns)."""
    sim.fabric()
    h = sim.host("h0", "10.99.0.1/24")
    return sim, h


def ctl(topo, *argv, host=0):
    """bpfnetctl in-process on ``topo``'s host ``host``: (code, stdout, stderr)."""
    return topo["sim"].bpfnetctl(*argv, netns_=topo["hosts"][host], check=False)


def pings_lost(topo, count: int) -> tuple[int, list]:
    """Pings every ordered pair of hosts in each VNI ``count`` times (the
    demos' check_all_pairs); returns (pairs tried, rows that lost any)."""
    from bpfnet.demos.bridge import check_all_pairs
    rows = check_all_pairs(topo["sim"], topo, count=count)
    return len(rows), [r for r in rows if r["received"] != count]


LONE_IP, LONE_MAC = "192.168.0.99", "02:00:00:14:00:99"


def lone_tenant(topo) -> str:
    """A tenant only in VNI 20, on h1, in the subnet both VNIs use
    (192.168.0.99): h0's VNI 20 tenant reaches it. Returns its namespace."""
    sim = topo["sim"]
    ns = sim.tenant(topo["hosts"][1], "h1v20b", f"{LONE_IP}/24", "br20", mac=LONE_MAC)
    assert sim.ping_until(topo["tenants"][(0, 20)], LONE_IP, tries=5)
    return ns


def users_devices(sim, ns) -> None:
    """The user's own devices on ``ns``: a Linux bridge ``mybr`` and an
    external (collect_md) VXLAN device ``vx9`` on port 4789."""
    sim.bridge(ns, "mybr")
    with sim.ipr(ns) as ipr:
        ipr.link("add", ifname="vx9", kind="vxlan", vxlan_collect_metadata=1, vxlan_port=4789,
                 vxlan_learning=0)
