"""DHCP across the mesh: a real dnsmasq on host 0, behind the VNI's bridge,
hands out leases to real DHCP clients (ISC dhclient) on the other hosts; the
DISCOVER/REQUEST broadcasts and the OFFER/ACK replies all cross the tunnels.
The clients then reach each other on their leased addresses.

     srv 192.168.0.1 (dnsmasq)    c1 (dhclient)               c2 (dhclient)
       br10: bmp0->h1 bmp1->h2     br10: bmp0->h0 bmp1->h2     br10: bmp0->h0 bmp1->h1
     +-----------+               +-----------+               +-----------+
     | h0 vxlan0 |               | h1 vxlan0 |               | h2 vxlan0 |
     | 10.99.0.1 |               | 10.99.0.2 |               | 10.99.0.3 |
     +-----eth0--+               +-----eth0--+               +-----eth0--+
           +------------------ fabric (sw0, L2) -----------------------+

Leases come from 192.168.0.100-149; DNS is off (--port=0). Every process is
bounded in time, runs in the simulation's namespaces, and keeps its lease,
pid and log files in one temporary directory.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from netaddr import IPAddress, IPNetwork

from . import answered, finish, mesh
from ..sim import Sim, wait_for

VNI = 10
SERVER_IP = "192.168.0.1"
RANGE = ("192.168.0.100", "192.168.0.149")
LEASE_TIME = "1h"


def client_mac(n: int) -> str:
    """Client c<n>'s MAC (the server's is ...:dc:00)."""
    return f"02:00:00:0a:dc:{n:02x}"


def workdir(sim: Sim) -> str:
    """The run's temporary directory, removed at cleanup (--keep: when stopped)."""
    d = getattr(sim, "_dhcp_dir", None)
    if d is None:
        d = tempfile.mkdtemp(prefix=f"bpfnet-{sim.prefix}-dhcp-")
        sim._dhcp_dir = d
        sim.on_cleanup(shutil.rmtree, d, True)
    return d


def start_server(sim: Sim, ns: str, ifname: str = "eth0", timeout: float = 10) -> dict:
    """Runs dnsmasq (DHCP only) in ``ns`` on ``ifname``; returns once it
    serves. {"proc", "log", "leases"}."""
    d = workdir(sim)
    log, leases = os.path.join(d, "dnsmasq.log"), os.path.join(d, "dnsmasq.leases")
    with open(log, "w") as out:
        proc = sim.spawn(ns, [
            "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
            f"--interface={ifname}", "--bind-interfaces", "--except-interface=lo",
            f"--dhcp-range={RANGE[0]},{RANGE[1]},255.255.255.0,{LEASE_TIME}",
            "--dhcp-authoritative", "--no-ping", "--no-resolv", "--no-hosts",
            f"--dhcp-leasefile={leases}", f"--pid-file={os.path.join(d, 'dnsmasq.pid')}",
            "--user=root", "--group=root", "--log-dhcp", "--log-facility=-"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def serving():
        if proc.poll() is not None:
            return True
        with open(log) as f:
            return "sockets bound exclusively" in f.read()
    wait_for(serving, timeout=timeout)
    if proc.poll() is not None:
        with open(log) as f:
            raise RuntimeError(f"dnsmasq exited {proc.returncode}: {f.read().strip()}")
    return {"proc": proc, "log": log, "leases": leases}


def lease(sim: Sim, ns: str, name: str, ifname: str = "eth0", timeout: int = 10,
          configure: bool = True) -> dict | None:
    """Runs ISC dhclient once in ``ns`` until it is bound (at most
    ``timeout`` seconds). Its script only records the lease; the address is
    then set here, through netlink, when ``configure``. Returns {"ip",
    "prefixlen", "server", "log"}, or None when no lease came."""
    d = workdir(sim)
    out = os.path.join(d, f"{name}.lease")
    script = os.path.join(d, f"{name}.sh")
    conf = os.path.join(d, f"{name}.conf")
    log = os.path.join(d, f"{name}.log")
    with open(script, "w") as f:
        f.write("#!/bin/sh\n"
                "# dhclient-script stand-in: record the lease, configure nothing\n"
                'case "$reason" in BOUND|RENEW|REBIND|REBOOT)\n'
                '\techo "$new_ip_address $new_subnet_mask $new_dhcp_server_identifier"'
                f' > "{out}.tmp" && mv "{out}.tmp" "{out}";;\n'
                "esac\nexit 0\n")
    os.chmod(script, 0o755)
    with open(conf, "w") as f:
        f.write(f"timeout {timeout};\nretry 1;\ninitial-interval 1;\n"
                "request subnet-mask, broadcast-address;\n")
    with open(log, "w") as logf:
        proc = sim.spawn(ns, ["dhclient", "-1", "-d", "-v", "-cf", conf,
                              "-lf", os.path.join(d, f"{name}.leases"),
                              "-pf", os.path.join(d, f"{name}.pid"), "-sf", script, ifname],
                         stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.exists(out) or proc.poll() is not None, timeout=timeout + 5)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    if not os.path.exists(out):
        return None
    with open(out) as f:
        ip, mask, server = f.read().split()
    plen = IPNetwork(f"{ip}/{mask}").prefixlen
    if configure:
        sim.addr(ns, ifname, f"{ip}/{plen}")
    return {"ip": ip, "prefixlen": plen, "server": server, "log": log}


def build(sim: Sim, n_hosts: int = 3, say=lambda *_: None) -> dict:
    """The mesh in VNI 10, dnsmasq's tenant on h0 and one address-less client
    tenant per other host. {"hosts", "server", "clients": [ns...], "dhcp"}."""
    topo = mesh.build(sim, n_hosts=n_hosts, vnis=(VNI,), tenants=False, say=say)
    hosts = topo["hosts"]
    topo["server"] = mesh.tenant(sim, hosts[0], "srv", f"{SERVER_IP}/24", f"br{VNI}",
                                 mac="02:00:00:0a:dc:00")
    topo["clients"] = [mesh.tenant(sim, hosts[i], f"c{i}", None, f"br{VNI}", mac=client_mac(i))
                       for i in range(1, n_hosts)]
    return topo


def in_range(ip: str) -> bool:
    return IPAddress(RANGE[0]) <= IPAddress(ip) <= IPAddress(RANGE[1])


def run(keep: bool, say, prefix: str | None = None) -> int:
    from ..cli import table
    sim = Sim(prefix=prefix)
    try:
        say(f"# dhcp demo: dnsmasq on h0 behind br{VNI}, dhclient on h1 and h2, "
            f"leases through the mesh (VNI {VNI}), run {sim.prefix}")
        topo = build(sim, say=say)
        hosts = topo["hosts"]
        srv = start_server(sim, topo["server"])
        say(f"# dnsmasq serving {RANGE[0]}-{RANGE[1]} on {SERVER_IP} (tenant of h0)")
        say("")
        rows, leases = [], []
        for n, ns in enumerate(topo["clients"], start=1):
            got = lease(sim, ns, f"c{n}")
            leases.append(got)
            rows.append({"client": f"c{n}", "host": f"h{n}", "mac": client_mac(n),
                         "leased": f"{got['ip']}/{got['prefixlen']}" if got else None,
                         "server": got["server"] if got else None})
        say("# leases obtained through the tunnels")
        say(table(rows))
        ok = all(got and in_range(got["ip"]) for got in leases)
        for n, got in enumerate(leases, start=1):
            if got:
                say(f"# c{n}'s dhclient:")
                with open(got["log"]) as f:
                    for ln in f:
                        if ln.startswith(("DHCP", "bound")):
                            say("  " + ln.strip())
        say("")
        say("# dnsmasq's side of the exchange")
        with open(srv["log"]) as f:
            for ln in f:
                if any(w in ln for w in ("DHCPDISCOVER", "DHCPOFFER", "DHCPREQUEST", "DHCPACK")):
                    say("  " + ln.split(": ", 1)[-1].strip())
        say("")
        pings = []
        if ok:
            pairs = [(0, 1), (1, 0)]
            for a, b in pairs:
                src, dst = topo["clients"][a], leases[b]["ip"]
                sim.ping_until(src, dst, tries=5)
                pings.append({"from": f"c{a + 1}", "to": f"c{b + 1}", "dst": dst, "sent": 3,
                              "received": sim.ping(src, dst, count=3)})
            for a in range(len(leases)):
                pings.append({"from": f"c{a + 1}", "to": "srv", "dst": SERVER_IP, "sent": 3,
                              "received": sim.ping(topo["clients"][a], SERVER_IP, count=3)})
            say("# the clients reach each other (and the server) on their leased addresses")
            say(table(pings))
            ok = all(p["received"] == p["sent"] for p in pings)
        say("")
        say(f"$ bpfnetctl --netns {hosts[0]} peer show")
        _, out, _ = sim.bpfnetctl("peer", "show", netns_=hosts[0])
        say(out.rstrip())
        say("")
        with open(srv["leases"]) as f:
            say("# dnsmasq lease file:")
            for ln in f:
                say("  " + ln.strip())
        return finish(sim, say, ok, f"{sum(1 for g in leases if g)}/{len(leases)} leases, "
                      + answered(pings), keep, extra=f", files {workdir(sim)}")
    finally:
        sim.cleanup()
