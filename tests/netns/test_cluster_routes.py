"""MAC/IP routes over etcd: ``/bpfnet/<cluster>/macs/<host>/<vni>/<mac>`` ->
``{"ips": [...]}`` under each host's lease.

- Memberships as processes (``python -m bpfnet.cluster member --macs``): the
  exact keys, the last writer wins a MAC published twice, a killed host's
  routes go with its lease, re-published after etcd lost its data.
- Agents (``bpfnetctl --netns hN agent -f hN.toml``) on hosts built by hand
  (one L2 switch, connected routes only, a bridge VNI 10 from the file): a
  tenant's MAC and IP become route entries and bindings on every other host,
  unicast to it floods nothing; the tenant moves to another host (same MAC)
  and everyone follows; its host dies and its routes go with the lease; an IP
  that changes MAC is followed; ``routes = false`` publishes nothing.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request

from conftest import BPFNETCTL, need_tool, run_cli
import floodtopo
from etcd import Member, etcd, start_etcd  # noqa: F401 -- etcd: the fixture
from floodtopo import RawEth, counters, flush_neighbours
from neighframes import arp_request

MAC_A = "02:00:00:0a:00:01"
MAC_B = "02:00:00:0a:00:02"


def vtep(i: int) -> str:
    return f"10.99.0.{i + 1}"


def routes(view: list) -> set:
    return {(r["host"], r["vni"], r["mac"], tuple(r["ips"])) for r in view}


def macs_json(sim, ns, etcd, *extra) -> list:
    code, out, err = run_cli(sim, ns, "cluster", "macs", "--json", "--etcd", etcd.url,
                             "--cluster", "test", *extra)
    assert code == 0, err
    return json.loads(out)


def test_members_publish_last_writer_wins_lease_takes_them(sim, etcd):
    ns = [sim.host(f"h{i}", f"{vtep(i)}/24") for i in range(3)]
    m0 = Member(sim, ns[0], "h0", etcd.url, vtep(0), bridge_vnis=(10,), mesh_vnis=(), ttl=3,
                macs=[(10, MAC_A, ["192.168.0.1"]), (10, MAC_B, [])])
    m2 = Member(sim, ns[2], "h2", etcd.url, vtep(2), bridge_vnis=(10,), mesh_vnis=(), macs=[])
    want = {("h0", 10, MAC_A, ("192.168.0.1",)), ("h0", 10, MAC_B, ())}
    m2.wait(lambda v: routes(v) == want, kind="macs")
    rows = macs_json(sim, ns[2], etcd)
    assert [(r["vni"], r["mac"], r["host"], r["vtep"], r["ips"], r["active"]) for r in rows] == [
        (10, MAC_A, "h0", vtep(0), ["192.168.0.1"], True), (10, MAC_B, "h0", vtep(0), [], True)]
    # MAC_A moves to h1: published there later, it wins before h0 withdraws it
    m1 = Member(sim, ns[1], "h1", etcd.url, vtep(1), bridge_vnis=(10,), mesh_vnis=(),
                macs=[(10, MAC_A, ["192.168.0.1"])])
    m2.wait(lambda v: ("h1", 10, MAC_A, ("192.168.0.1",)) in routes(v), kind="macs")
    rows = macs_json(sim, ns[2], etcd, "--vni", "10")
    assert [(r["mac"], r["host"], r["active"]) for r in rows] == [
        (MAC_A, "h1", True), (MAC_A, "h0", False), (MAC_B, "h0", True)]
    assert rows[0]["revision"] > rows[1]["revision"]
    code, out, _ = run_cli(sim, ns[2], "cluster", "show", "--json", "--etcd", etcd.url,
                           "--cluster", "test")
    assert {r["host"]: r["macs"] for r in json.loads(out)} == {"h0": 2, "h1": 1, "h2": 0}
    assert [(r["mac"], r["host"]) for r in macs_json(sim, ns[2], etcd, "--host", "h1")] == [
        (MAC_A, "h1")]
    assert macs_json(sim, ns[2], etcd, "--vni", "20") == []
    for argv, line in (
            (["--vni", "0"], "bpfnetctl: error: argument --vni: invalid VNI '0': must be 1..16777215"),
            (["--etcd", "https://10.99.0.250:2379"],
             "bpfnetctl: error: cluster macs: etcd endpoint 'https://10.99.0.250:2379': "
             "expected http://HOST:PORT")):
        code, out, err = run_cli(sim, ns[2], "cluster", "macs", *argv)
        assert (code, out, err.splitlines()) == (2, "", [line]), (argv, err)
    code, out, err = run_cli(sim, ns[2], "cluster", "macs", "--etcd", "http://10.99.0.77:2379")
    assert (code, out) == (1, "") and err.startswith(
        "bpfnetctl: error: cluster macs: etcd unreachable (http://10.99.0.77:2379"), err
    # h0 dies: its lease runs out, its routes go with its record
    m0.kill()
    m2.wait(lambda v: routes(v) == {("h1", 10, MAC_A, ("192.168.0.1",))}, timeout=15,
            kind="macs")
    assert [(r["mac"], r["host"]) for r in macs_json(sim, ns[2], etcd)] == [(MAC_A, "h1")]
    m1.stop()
    m2.wait(lambda v: routes(v) == set(), timeout=5, kind="macs")


def test_routes_published_again_after_etcd_lost_its_data(sim, etcd):
    ns = sim.host("h0", f"{vtep(0)}/24")
    m0 = Member(sim, ns, "h0", etcd.url, vtep(0), bridge_vnis=(10,), mesh_vnis=(),
                macs=[(10, MAC_A, ["192.168.0.1"])])
    m0.wait(lambda v: len(v) == 1, kind="macs")
    etcd.stop()
    import shutil
    shutil.rmtree(f"{etcd.dir}/data")
    etcd.start()
    end = time.monotonic() + 20
    rows = []
    while time.monotonic() < end:
        code, out, _ = run_cli(sim, ns, "cluster", "macs", "--json", "--etcd", etcd.url,
                               "--cluster", "test")
        rows = json.loads(out) if code == 0 else []
        if rows:
            break
        time.sleep(0.2)
    assert [(r["mac"], r["host"], r["ips"], r["active"]) for r in rows] == [
        (MAC_A, "h0", ["192.168.0.1"], True)]



def test_cut_off_member_catches_up_on_routes_after_compaction(sim, etcd):
    """h0 loses etcd (its lease outlives the cut); meanwhile h1 leaves (its
    routes with it), h2 publishes, the history is compacted: back, h0 re-lists
    and sees exactly h2's routes; its own are still there, under its lease."""
    ns = [sim.host(f"h{i}", f"{vtep(i)}/24") for i in range(3)]
    m0 = Member(sim, ns[0], "h0", etcd.url, vtep(0), bridge_vnis=(10,), mesh_vnis=(), ttl=30,
                macs=[(10, MAC_A, [])])
    m1 = Member(sim, ns[1], "h1", etcd.url, vtep(1), bridge_vnis=(10,), mesh_vnis=(),
                macs=[(10, MAC_B, ["192.168.0.2"])])
    m0.wait(lambda v: routes(v) == {("h0", 10, MAC_A, ()), ("h1", 10, MAC_B, ("192.168.0.2",))},
            kind="macs")
    with sim.ipr(ns[0]) as ipr:
        eth0 = ipr.link_lookup(ifname="eth0")[0]
        ipr.link("set", index=eth0, state="down")
        m0.wait(lambda h: h["connected"] is False, timeout=5, kind="health")
        m1.stop()
        m2 = Member(sim, ns[2], "h2", etcd.url, vtep(2), bridge_vnis=(10,), mesh_vnis=(),
                    macs=[(10, MAC_B, ["192.168.0.2"])])
        m2.wait(lambda v: ("h2", 10, MAC_B, ("192.168.0.2",)) in routes(v), kind="macs")
        etcd.compact()
        ipr.link("set", index=eth0, state="up")
        ipr.route("add", dst="0.0.0.0/0", oif=eth0)
    m0.wait(lambda v: routes(v) == {("h0", 10, MAC_A, ()), ("h2", 10, MAC_B, ("192.168.0.2",))},
            timeout=15, kind="macs")
    st = m0.state()["health"]
    assert (st["relists"], st["macs"], st["published"], st["mac_puts"]) == (2, 2, 1, 1)
    end = time.monotonic() + 5  # stderr has a reader thread of its own: it may lag stdout
    while not any("compacted" in line for line in m0.stderr) and time.monotonic() < end:
        time.sleep(0.1)
    assert any("compacted" in line for line in m0.stderr), m0.stderr[-5:]


# --- agents ---------------------------------------------------------------------------

TENANT_MAC = [floodtopo.tenant_mac(i) for i in range(3)]
TENANT_IP = [floodtopo.tenant_ip(i) for i in range(3)]


def agent_file(i: int, url: str, routes: bool = True) -> str:
    return (f'[host]\nname = "h{i}"\n\n[cluster]\netcd = ["{url}"]\nname = "test"\nttl = 3\n'
            + ("" if routes else "routes = false\n")
            + f'\n[bridge]\nunderlay = "eth0"\nlocal = "{vtep(i)}"\n'
            f'vnis = [ {{ vni = 10, bridge = "br10" }} ]\n')


class Agents:
    """n hosts by hand on the fabric (floodtopo: eth0 with its /24 only, a
    quiet tenant t<i> in each br10, no bridge loaded), etcd on the same
    fabric, an agent per host (a process, its lines kept)."""

    def __init__(self, sim, n: int, routes: bool = True, extra0=()):
        topo = floodtopo.build(sim, n, load=False)
        self.sim, self.etcd = sim, start_etcd(sim)
        self.dir = tempfile.mkdtemp(prefix="bpfnet-routes-")
        sim.on_cleanup(shutil.rmtree, self.dir, True)
        self.hosts, self.tenants, self.procs, self.lines = topo["hosts"], topo["tenants"], {}, {}
        for i in range(n):
            with open(self.file(i), "w") as f:
                f.write(agent_file(i, self.etcd.url, routes))
        for i in range(n):
            self.start(i, extra0 if i == 0 else ())
        for i in range(n):  # the file applied, etcd synced
            assert self.wait(lambda: "agent: etcd connected" in self.lines[i], True, 30), self.log(i)

    def file(self, i: int) -> str:
        return os.path.join(self.dir, f"h{i}.toml")

    def start(self, i: int, extra=()) -> None:
        p = subprocess.Popen([BPFNETCTL, "--pin-root", self.sim.pin_root, "--netns",
                              self.hosts[i], "agent", "-f", self.file(i), "--interval", "2",
                              *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)
        self.sim.procs.append(p)
        self.procs[i] = p
        lines = self.lines.setdefault(i, [])
        threading.Thread(target=lambda: [lines.append(x.rstrip("\n")) for x in p.stdout],
                         daemon=True).start()

    def kill(self, i: int) -> None:
        p = self.procs.pop(i)
        p.send_signal(signal.SIGKILL)
        p.wait(10)

    def json(self, i: int, *argv):
        code, out, err = run_cli(self.sim, self.hosts[i], *argv, "--json")
        assert code == 0, err
        return json.loads(out)

    def routes(self, i: int) -> set:
        """{(mac, remote)} of host i's route entries (fdb show)."""
        return {(r["mac"], r["remote"]) for r in self.json(i, "fdb", "show", "--vni", "10")
                if r["route"]}

    def bindings(self, i: int) -> set:
        """{(ip, mac)} of host i's route bindings (neigh show)."""
        return {(r["ip"], r["mac"]) for r in self.json(i, "neigh", "show", "--vni", "10")
                if r["route"]}

    def etcd_macs(self) -> set:
        return {(r["host"], r["mac"], tuple(r["ips"])) for r in self.json(
            0, "cluster", "macs", "--etcd", self.etcd.url, "--cluster", "test")}

    def wait(self, what, want, timeout: float = 20):
        """Polls ``what()`` until it equals ``want`` (bounded); returns the last value."""
        end = time.monotonic() + timeout
        while True:
            got = what()
            if got == want or time.monotonic() > end:
                return got
            time.sleep(0.2)

    def log(self, i: int) -> str:
        return "\n".join(self.lines.get(i, [])[-30:])


def garp(sim, ns: str, mac: str, ip: str) -> None:
    """A gratuitous ARP from the tenant (what a VM sends after a move)."""
    s = RawEth(ns)
    try:
        s.send(arp_request(mac, ip, ip))
    finally:
        s.close()


def move_tenant(sim, src: str, dst: str, ifname: str) -> None:
    """The tenant's host-side veth leaves ``src`` for ``dst``'s br10 (as a
    VM manager moves a VM; the tenant keeps its MAC and IP)."""
    with open(f"/var/run/netns/{dst}") as fd, sim.ipr(src) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=ifname)[0], net_ns_fd=fd.fileno())
    with sim.ipr(dst) as ipr:
        idx = ipr.link_lookup(ifname=ifname)[0]
        ipr.link("set", index=idx, master=ipr.link_lookup(ifname="br10")[0])
        ipr.link("set", index=idx, state="up")


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def samples(url: str) -> dict:
    """/metrics, linted by promtool, as {series: value}."""
    body = scrape(url)
    need_tool("promtool")
    lint = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                          text=True, timeout=30)
    assert (lint.returncode, lint.stderr) == (0, ""), lint.stderr
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_agents_routes_install_move_death_and_ip_changing_mac(sim):
    port = free_port()
    a = Agents(sim, 3, extra0=["--metrics", f"127.0.0.1:{port}"])
    mac0, ip0 = TENANT_MAC[0], TENANT_IP[0]
    # (a) t0 sends one frame (an ARP request for an address nobody has)
    sim.ping(a.tenants[0], "192.168.0.254", count=1, deadline=2)
    assert a.wait(a.etcd_macs, {("h0", mac0, (ip0,))}) == {("h0", mac0, (ip0,))}, a.log(0)
    for i in (1, 2):
        assert a.wait(lambda: a.routes(i), {(mac0, vtep(0))}) == {(mac0, vtep(0))}, a.log(i)
        assert a.wait(lambda: a.bindings(i), {(ip0, mac0)}) == {(ip0, mac0)}, a.log(i)
        assert f"agent: + route vni 10 {mac0} -> {vtep(0)} (h0) ip={ip0}" in a.lines[i]
    assert a.routes(0) == set()
    m = samples(f"http://127.0.0.1:{port}/metrics")
    assert {k: m[k] for k in ("bpfnet_agent_routes_enabled", "bpfnet_agent_routes_published",
                              'bpfnet_agent_route_writes_total{op="put"}',
                              'bpfnet_agent_route_writes_total{op="delete"}',
                              "bpfnet_agent_cluster_macs", "bpfnet_agent_routes_installed",
                              "bpfnet_agent_route_errors_total")} == {
        "bpfnet_agent_routes_enabled": 1, "bpfnet_agent_routes_published": 1,
        'bpfnet_agent_route_writes_total{op="put"}': 1,
        'bpfnet_agent_route_writes_total{op="delete"}': 0,
        "bpfnet_agent_cluster_macs": 1, "bpfnet_agent_routes_installed": 0,
        "bpfnet_agent_route_errors_total": 0}
    # unicast to it from h2 floods nothing: learned state forgotten, the route stays
    assert run_cli(sim, a.hosts[2], "fdb", "flush")[0] == 0
    flush_neighbours(sim, a.tenants[2])
    before = counters(sim, a.hosts[2])
    assert sim.ping(a.tenants[2], ip0, count=3, interval=0.2) == 3
    after = counters(sim, a.hosts[2])
    assert (after["flood"] - before["flood"], after["arp_reply"] - before["arp_reply"]) == (0, 1)

    # (b) t0 moves to h1 (same MAC and IP) and announces itself
    move_tenant(sim, a.hosts[0], a.hosts[1], "tt0")
    garp(sim, a.tenants[0], mac0, ip0)
    assert a.wait(a.etcd_macs, {("h1", mac0, (ip0,)), ("h2", TENANT_MAC[2], (TENANT_IP[2],))}) \
        == {("h1", mac0, (ip0,)), ("h2", TENANT_MAC[2], (TENANT_IP[2],))}, a.log(0)
    for i in (0, 2):
        assert a.wait(lambda: (mac0, vtep(1)) in a.routes(i), True), (a.routes(i), a.log(i))
        assert a.wait(lambda: (ip0, mac0) in a.bindings(i), True), a.log(i)
    assert (mac0, vtep(0)) not in a.routes(1) | a.routes(2)
    # h2 saw h1's key before h0's withdrawal (a move), or the other way round
    moved = f"agent: ~ route vni 10 {mac0} -> {vtep(1)} (h1) ip={ip0} (was {vtep(0)} (h0) " \
        f"ip={ip0})"
    gone = f"agent: - route vni 10 {mac0} -> {vtep(0)} (h0) ip={ip0}"
    back = f"agent: + route vni 10 {mac0} -> {vtep(1)} (h1) ip={ip0}"
    assert moved in a.lines[2] or gone in a.lines[2] and back in a.lines[2], a.log(2)
    assert f"agent: - route vni 10 {mac0} -> {vtep(0)} (h0) ip={ip0}" in a.lines[1], a.log(1)
    assert {r["mac"]: r["route"] for r in a.json(2, "fdb", "show")}[mac0] is True

    # (c) h1 dies (its agent killed: nothing revokes the lease, ttl 3 s)
    a.kill(1)
    for i in (0, 2):
        assert a.wait(lambda: mac0 in {m for m, _ in a.routes(i)}, False, timeout=15) is False, \
            a.log(i)
        assert (ip0, mac0) not in a.bindings(i)
    assert ("h1", mac0, (ip0,)) not in a.etcd_macs()

    # (d) t2's IP changes MAC: the binding follows on h0
    new = "02:00:00:0a:00:99"
    with sim.ipr(a.tenants[2]) as ipr:
        idx = ipr.link_lookup(ifname="eth0")[0]
        ipr.link("set", index=idx, state="down")
        ipr.link("set", index=idx, address=new)
        ipr.link("set", index=idx, state="up")
    garp(sim, a.tenants[2], new, TENANT_IP[2])
    mac2, ip2 = TENANT_MAC[2], TENANT_IP[2]
    assert a.wait(a.etcd_macs, {("h2", mac2, ()), ("h2", new, (ip2,))}) == {
        ("h2", mac2, ()), ("h2", new, (ip2,))}, a.log(2)
    assert a.wait(lambda: (a.routes(0), a.bindings(0)),
                  ({(mac2, vtep(2)), (new, vtep(2))}, {(ip2, new)})) == (
        {(mac2, vtep(2)), (new, vtep(2))}, {(ip2, new)}), a.log(0)
    assert f"agent: + route vni 10 {new} -> {vtep(2)} (h2) ip={ip2}" in a.lines[0], a.log(0)

    # (e) h2's file turns routes off (SIGHUP): its keys leave etcd with its old lease (revoked)
    # and h0 drops its routes
    with open(a.file(2), "w") as f:
        f.write(agent_file(2, a.etcd.url, routes=False))
    a.procs[2].send_signal(signal.SIGHUP)
    assert a.wait(a.etcd_macs, set()) == set(), a.log(2)
    assert a.wait(lambda: a.routes(0), set()) == set(), a.log(0)
    assert a.bindings(0) == set()
    assert f"agent: - route vni 10 {new} -> {vtep(2)} (h2) ip={ip2}" in a.lines[0], a.log(0)


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def test_routes_false_publishes_nothing_and_metrics_say_so(sim):
    p = free_port()
    a = Agents(sim, 2, routes=False, extra0=["--metrics", f"127.0.0.1:{p}"])
    assert sim.ping(a.tenants[0], TENANT_IP[1], count=2, interval=0.2) == 2
    rows = a.wait(lambda: {r["host"] for r in a.json(0, "cluster", "show", "--etcd", a.etcd.url,
                                                     "--cluster", "test")}, {"h0", "h1"})
    assert rows == {"h0", "h1"}
    time.sleep(3)  # three publish periods of an agent that would publish
    assert a.etcd_macs() == set()
    assert {r["host"]: r["macs"] for r in a.json(0, "cluster", "show", "--etcd", a.etcd.url,
                                                 "--cluster", "test")} == {"h0": 0, "h1": 0}
    assert a.routes(0) == a.routes(1) == set()
    # config show -f: the file's [host] and [cluster] (routes = false) with what is loaded,
    # and apply of that changes nothing
    code, shown, err = run_cli(sim, a.hosts[0], "config", "show", "-f", a.file(0))
    assert code == 0, err
    assert '[cluster]\netcd = ["http://10.99.0.250:2379"]\nname = "test"\nttl = 3\nroutes = false\n' \
        in shown, shown
    r = subprocess.run([BPFNETCTL, "--pin-root", sim.pin_root, "--netns", a.hosts[0], "apply",
                        "-f", "-"], input=shown, capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (0, "apply: <stdin>: nothing to change\n", "")
    m = samples(f"http://127.0.0.1:{p}/metrics")
    assert (m["bpfnet_agent_routes_enabled"], m["bpfnet_agent_routes_published"],
            m['bpfnet_agent_route_writes_total{op="put"}'], m["bpfnet_agent_cluster_macs"]) == (
        0, 0, 0, 0)
