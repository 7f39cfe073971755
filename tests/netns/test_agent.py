"""The agent in file mode, end to end, as processes a user (or systemd)
starts: apply at start, SIGHUP re-reads (a bad file is refused and the old
one kept), what someone deletes comes back, SIGTERM leaves the data path,
/metrics passes promtool, the unit file installs, and a "reboot" (agents
stopped, pins emptied, bpfnet's devices deleted, agents started) brings the
same traffic back.

     t10 192.168.10.1 (br10)  t30 192.168.30.1 (br30)     t10 .2   t30 .2
     h0: bridge vxlan0 (VNI 10)  mesh vxlan1 :4790 (VNI 30)   h1: the same
         eth0 10.99.0.1                                       eth0 10.99.0.2
           +-------------------- fabric (sw0) -------------------+
"""
import json
import os
import signal
import socket
import subprocess
import threading
import urllib.request

import pytest

from conftest import BPFNETCTL, built, need_tool, run_cli, snapshot
import pair
from pair import ctl, pings, tenant

from bpfnet.sim import wait_for

FILE = """\
[host]
name = "h{i}"
[bridge]
local = "10.99.0.{n}"
vnis = [ {{ vni = 10, bridge = "br10" }} ]
[mesh]
local = "10.99.0.{n}"
port = 4790
device = "vxlan1"
vnis = [ {{ vni = 30, bridge = "br30", peers = ["10.99.0.{o}"] }} ]
"""

START = [
    "agent: + bridge load local=10.99.0.{n}",
    "agent: + bridge vni 10 bridge=br10",
    "agent: + mesh load local=10.99.0.{n} port=4790 device=vxlan1",
    "agent: + mesh peer 10.99.0.{o} vni 30 bridge=br30",
]


def text(i):
    return FILE.format(i=i, n=i + 1, o=2 - i)


@pytest.fixture(scope="module")
def topo(tmp_path_factory):
    yield from built("tg", lambda sim: pair.build(
        sim, {f"h{i}.toml": text(i) for i in range(2)}, tmp_path_factory.mktemp("agent")))


class Agent:
    """``bpfnetctl --netns H agent -f FILE`` as a process; its stderr lines
    collected as they come."""

    def __init__(self, topo, i, *extra):
        sim = topo["sim"]
        self.p = subprocess.Popen(
            [BPFNETCTL, "--pin-root", sim.pin_root, "--netns", topo["hosts"][i], "agent",
             "-f", topo["files"][i], "--interval", "1", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        sim.procs.append(self.p)  # the Sim stops it whatever happens
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        for line in self.p.stderr:
            self.lines.append(line.rstrip("\n"))

    def saw(self, line: str, since: int = 0, timeout: float = 120) -> bool:
        return bool(wait_for(lambda: line in self.lines[since:], timeout=timeout, step=0.1))

    def stop(self, sig=signal.SIGTERM) -> int:
        self.p.send_signal(sig)
        code = self.p.wait(120)
        self._t.join(5)
        return code


def unload_all(topo):
    for i in range(2):
        for fn in ("mesh", "bridge"):
            ctl(topo, i, "unload", fn)


def settled(agent, topo, i):
    """The agent's log says the file is applied: nothing to do in a pass."""
    return agent.saw(f"agent: + mesh peer 10.99.0.{2 - i} vni 30 bridge=br30")


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_agent_applies_at_start_recreates_what_is_deleted_and_sigterm_leaves_the_data_path(topo):
    sim = topo["sim"]
    unload_all(topo)
    agents = [Agent(topo, i) for i in range(2)]
    for i, a in enumerate(agents):
        assert settled(a, topo, i), a.lines
        assert a.lines[1:] == [x.format(n=i + 1, o=2 - i) for x in START]
        assert a.lines[0] == (f"agent: start: {topo['files'][i]} in namespace {topo['hosts'][i]}, "
                              "reconcile every 1 s")
    assert pings(topo) == {10: 3, 30: 3}
    # someone deletes the VNI's port and the mesh peer's port on h0: both come back
    h0 = topo["hosts"][0]
    for dev in ("bnp10", "bmp0"):
        subprocess.run(["ip", "-n", h0, "link", "del", dev], check=True)
    a = agents[0]
    assert a.saw("agent: ~ bridge vni 10 re-create: port bnp10 is gone"), a.lines
    assert a.saw("agent: ~ mesh peer 10.99.0.2 vni 30 re-create: port bmp0 is gone"), a.lines
    assert pings(topo) == {10: 3, 30: 3}
    # and the VXLAN device of the mesh: the mesh is loaded again, its peer with it
    n = len(a.lines)
    subprocess.run(["ip", "-n", h0, "link", "del", "vxlan1"], check=True)
    assert a.saw("agent: ~ mesh re-load: its VXLAN device is gone", n), a.lines
    assert a.saw("agent: + mesh peer 10.99.0.2 vni 30 bridge=br30", n), a.lines
    assert pings(topo) == {10: 3, 30: 3}
    # SIGTERM: exit 0, nothing in the data path changes, traffic still crosses
    before = [snapshot(sim, h) for h in topo["hosts"]]
    for i, a in enumerate(agents):
        assert a.stop() == 0
        assert a.lines[-1] == "agent: stop: SIGTERM; the data path stays as it is"
    assert [snapshot(sim, h) for h in topo["hosts"]] == before
    assert pings(topo) == {10: 3, 30: 3}


def test_sighup_rereads_the_file_and_a_bad_one_is_refused(topo):
    unload_all(topo)
    a = Agent(topo, 0)
    try:
        assert settled(a, topo, 0), a.lines
        # one agent per namespace
        code, out, err = run_cli(topo["sim"], topo["hosts"][0], "agent", "-f", topo["files"][0])
        assert (code, out, err.splitlines()) == (1, "", [
            f"bpfnetctl: error: agent: another agent keeps namespace {topo['hosts'][0]} "
            f"({topo['sim'].pin_root}/{topo['hosts'][0]})"])
        path = topo["files"][0]
        good = text(0).replace('{ vni = 10, bridge = "br10" }',
                               '{ vni = 10, bridge = "br10" }, { vni = 11, bridge = "br11" }')
        with open(path, "w") as f:
            f.write(good.replace("vni = 11,", "vni = 0,"))
        n = len(a.lines)
        a.p.send_signal(signal.SIGHUP)
        assert a.saw("agent: error: reload: h0.toml: bridge.vnis[1].vni: 0 is outside 1..16777215; "
                     "keeping the previous file"), a.lines
        with open(path, "w") as f:
            f.write(good)
        a.p.send_signal(signal.SIGHUP)
        assert a.saw("agent: + bridge vni 11 bridge=br11"), a.lines
        assert a.lines[n:] == [
            "agent: error: reload: h0.toml: bridge.vnis[1].vni: 0 is outside 1..16777215; "
            "keeping the previous file",
            f"agent: reload: {path}",
            "agent: + bridge vni 11 bridge=br11"]
        _, out, _ = ctl(topo, 0, "vni", "show")
        assert "br11" in out
        assert a.stop() == 0
    finally:
        with open(topo["files"][0], "w") as f:
            f.write(text(0))


def test_a_bad_file_at_start_is_exit_2_and_changes_nothing(topo):
    unload_all(topo)
    sim = topo["sim"]
    path = str(topo["dir"] / "bad.toml")
    with open(path, "w") as f:
        f.write(text(0).replace('device = "vxlan1"', 'device = "vxlan/1"'))
    before = snapshot(sim, topo["hosts"][0])
    code, out, err = run_cli(sim, topo["hosts"][0], "agent", "-f", path)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "bpfnetctl: error: agent: bad.toml: mesh.device: invalid interface name 'vxlan/1'"]
    assert snapshot(sim, topo["hosts"][0]) == before


def test_metrics_pass_promtool_and_show_functions_maps_and_health(topo):
    need_tool("promtool")
    unload_all(topo)
    port = free_port()
    agents = [Agent(topo, 0, "--metrics", f"127.0.0.1:{port}"), Agent(topo, 1)]
    try:
        for i, a in enumerate(agents):
            assert settled(a, topo, i), a.lines
        assert f"agent: metrics: http://127.0.0.1:{port}/metrics" in agents[0].lines
        assert pings(topo) == {10: 3, 30: 3}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            assert r.status == 200
            body = r.read().decode()
        lint = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                              text=True, timeout=30)
        assert (lint.returncode, lint.stdout, lint.stderr) == (0, "", ""), lint.stderr
        samples = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        for name, value in {
                'bpfnet_function_loaded{function="bridge"}': 1,
                'bpfnet_function_loaded{function="mesh"}': 1,
                'bpfnet_function_loaded{function="gateway"}': 0,
                'bpfnet_map_capacity{function="mesh",map="mesh_peers"}': 4096,
                'bpfnet_map_entries{function="mesh",map="mesh_peers"}': 1,
                'bpfnet_map_entries{function="bridge",map="br_vni"}': 1,
                'bpfnet_agent_failing_actions': 0,
                'bpfnet_agent_cluster_enabled': 0,
                'bpfnet_agent_changes_total': 4}.items():
            assert samples.get(name) == value, name
        for name in ('bpfnet_function_drops_total{function="mesh",reason="split_horizon"}',
                     'bpfnet_function_events_total{event="learn",function="bridge"}',
                     'bpfnet_map_evictions_total{function="bridge",map="br_fdb"}',
                     'bpfnet_mesh_peer_tx_packets_total{remote="10.99.0.2",vni="30"}',
                     'bpfnet_bridge_vni_fdb_entries{vni="10"}',
                     'bpfnet_agent_reconciles_total', 'bpfnet_agent_last_reconcile_timestamp_seconds'):
            assert name in samples, name
        assert samples['bpfnet_mesh_peer_tx_packets_total{remote="10.99.0.2",vni="30"}'] >= 3
        assert samples['bpfnet_function_events_total{event="rx",function="bridge"}'] >= 3
        assert any(k.startswith("bpfnet_build_info{") for k in samples)
        # the monitor's tunnel series appear once it is loaded
        assert ctl(topo, 0, "load", "monitor", "--dev", "eth0")[0] == 0
        assert pings(topo) == {10: 3, 30: 3}  # VNI 10 on the monitor's port 4789
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            body = r.read().decode()
        assert 'bpfnet_tunnel_tx_packets_total{outer_dip="10.99.0.2",outer_sip="10.99.0.1",vni="10"}' \
            in body
        lint = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                              text=True, timeout=30)
        assert (lint.returncode, lint.stderr) == (0, "")
    finally:
        for a in agents:
            a.stop()
        ctl(topo, 0, "unload", "monitor")


def test_install_unit_writes_the_unit_with_this_bpfnetctl(topo, tmp_path):
    code, out, err = run_cli(topo["sim"], None, "agent", "--install-unit", "--dest", str(tmp_path))
    assert (code, err) == (0, "")
    unit = tmp_path / "bpfnet-agent.service"
    assert out.strip() == (f"wrote {unit}; then: systemctl daemon-reload && "
                           "systemctl enable --now bpfnet-agent")
    lines = unit.read_text().splitlines()
    assert f"ExecStart={BPFNETCTL} agent -f /etc/bpfnet/bpfnet.toml --metrics 127.0.0.1:9431" in lines
    for want in ("After=network-online.target", "Wants=network-online.target", "Restart=on-failure",
                 "ExecReload=/bin/kill -HUP $MAINPID", "WantedBy=multi-user.target"):
        assert want in lines
    assert oct(os.stat(unit).st_mode & 0o777) == "0o644"
    need_tool("systemd-analyze")  # systemd's own check of the unit, ExecStart's binary included
    check = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                           timeout=60)
    assert (check.returncode, check.stderr) == (0, "")
    code, _, err = run_cli(topo["sim"], None, "agent", "--install-unit", "--dest", str(tmp_path / "no"))
    assert (code, err.strip()) == (2, f"bpfnetctl: error: agent: --dest {tmp_path}/no: no such directory")


def test_reboot_agents_bring_the_same_traffic_back(topo):
    """A reboot as far as bpfnet can tell: the agents stop, the pins go
    (bpffs is empty after a boot) and so do the devices bpfnet made (ports,
    bridges, VXLAN devices); the tenants' own veths come back into their
    bridges as their owner (a container runtime, say) would do."""
    sim = topo["sim"]
    unload_all(topo)
    agents = [Agent(topo, i) for i in range(2)]
    for i, a in enumerate(agents):
        assert settled(a, topo, i), a.lines
    assert pings(topo) == {10: 3, 30: 3}
    for a in agents:
        assert a.stop() == 0
    import shutil
    for h in topo["hosts"]:
        shutil.rmtree(os.path.join(sim.pin_root, h))
        with sim.ipr(h) as ipr:
            for ln in ipr.get_links():
                name = ln.get_attr("IFLA_IFNAME")
                if name.startswith(("bnp", "bmp", "vxlan", "br")):  # bnq/bmq go with their peer
                    ipr.link("del", index=ln["index"])
    assert [sim.ping(tenant(topo, 0, vni), f"192.168.{vni}.2", count=1, deadline=1)
            for vni in (10, 30)] == [0, 0]  # the data path is gone
    agents = [Agent(topo, i) for i in range(2)]
    for i, a in enumerate(agents):
        assert settled(a, topo, i), a.lines
        assert a.lines[1:] == [x.format(n=i + 1, o=2 - i) for x in START]
        for vni in (10, 30):
            sim.enslave(topo["hosts"][i], f"th{i}t{vni}", f"br{vni}")
    assert pings(topo) == {10: 3, 30: 3}
    for a in agents:
        assert a.stop() == 0


CLUSTERED = """\
[host]
name = "h{i}"
[cluster]
etcd = ["{url}"]
name = "agent-test"
ttl = 5
[bridge]
local = "10.99.0.{n}"
vnis = [ {{ vni = 20, bridge = "br20", allow = "cluster" }} ]
[mesh]
local = "10.99.0.{n}"
port = 4790
device = "vxlan1"
vnis = [ {{ vni = 40, bridge = "br40", peers = "cluster" }} ]
"""


def link_tx(sim, ns, dev) -> int:
    with sim.ipr(ns) as ipr:
        return ipr.get_links(ipr.link_lookup(ifname=dev)[0])[0].get_attr("IFLA_STATS64")["tx_packets"]


def test_cluster_peers_and_allow_lists_follow_etcd(topo):
    """Two agents with [cluster] and a real etcd on the fabric: each makes the
    other its mesh peer and the only VTEP allowed into the bridge VNI; a VTEP
    that is no member is dropped (counted); when one agent stops (its lease
    revoked), the other removes it from both."""
    from etcd import Etcd
    need_tool("etcd")
    sim = topo["sim"]
    unload_all(topo)
    e = Etcd(sim, short="etcd")
    e.start()
    files = []
    for i in range(2):
        p = topo["dir"] / f"c{i}.toml"
        p.write_text(CLUSTERED.format(i=i, n=i + 1, url=e.url))
        files.append(str(p))
    port = free_port()
    saved, topo["files"] = topo["files"], files
    try:
        agents = [Agent(topo, 0, "--metrics", f"127.0.0.1:{port}"), Agent(topo, 1)]
        for i, a in enumerate(agents):
            assert a.saw(f"agent: + mesh peer 10.99.0.{2 - i} vni 40 bridge=br40"), a.lines
            assert a.saw(f"agent: ~ bridge vni 20 allow none -> 10.99.0.{2 - i}"), a.lines
        for i in range(2):
            _, out, _ = ctl(topo, i, "vni", "show", "--json")
            assert [(r["vni"], r["allow"]) for r in json.loads(out)] == [(20, [f"10.99.0.{2 - i}"])]
            _, out, _ = ctl(topo, i, "peer", "show", "--json")
            assert [(r["vni"], r["remote"]) for r in json.loads(out)] == [(40, f"10.99.0.{2 - i}")]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            body = r.read().decode()
        for line in ("bpfnet_agent_cluster_enabled 1.0", "bpfnet_agent_etcd_connected 1.0",
                     "bpfnet_agent_cluster_hosts 2.0", "bpfnet_agent_failing_actions 0.0"):
            assert line in body.splitlines(), line
        # a VTEP on the fabric that is no member: its frames into VNI 20 are dropped
        x3 = sim.host("x3", "10.99.0.4/24")
        sim.quiet(x3)
        for argv in (["link", "add", "vx20", "type", "vxlan", "id", "20", "remote", "10.99.0.1",
                      "local", "10.99.0.4", "dev", "eth0", "dstport", "4789"],
                     ["addr", "add", "192.168.20.9/24", "dev", "vx20"], ["link", "set", "vx20", "up"]):
            subprocess.run(["ip", "-n", x3, *argv], check=True)
        def denied():
            _, out, _ = ctl(topo, 0, "status", "--json")
            return json.loads(out)["functions"]["bridge"]["counters"]["drop_vtep_denied"]
        before = denied()
        assert sim.ping(x3, "192.168.20.1", count=2, deadline=2) == 0
        # ARP may still retry after ping gives up: every frame vx20 sent is counted
        assert wait_for(lambda: link_tx(sim, x3, "vx20") == denied() - before > 0, timeout=10)
        # h1 leaves: h0 forgets it
        n = len(agents[0].lines)
        assert agents[1].stop() == 0
        assert agents[0].saw("agent: ~ bridge vni 20 allow 10.99.0.2 -> none", n), agents[0].lines
        assert agents[0].saw("agent: - mesh peer 10.99.0.2 vni 40", n), agents[0].lines
        _, out, _ = ctl(topo, 0, "peer", "show", "--json")
        assert json.loads(out) == []
        assert agents[0].stop() == 0
    finally:
        topo["files"] = saved
        unload_all(topo)
