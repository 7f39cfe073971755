"""The seed's distributed bridge: three hosts on one L2 fabric, two VNIs each,
one tenant per host and VNI, the same tenant subnet in both VNIs.

     tenant h0v10 192.168.0.1    tenant h1v10 192.168.0.2    tenant h2v10 192.168.0.3
     tenant h0v20 192.168.0.1    tenant h1v20 192.168.0.2    tenant h2v20 192.168.0.3
           |  br10 / br20              |                           |
     +-----------+               +-----------+               +-----------+
     | h0 vxlan0 |               | h1 vxlan0 |               | h2 vxlan0 |
     | 10.99.0.1 |               | 10.99.0.2 |               | 10.99.0.3 |
     +-----eth0--+               +-----eth0--+               +-----eth0--+
           +--------------- fabric (sw0, L2, group 239.1.1.1) ---------+
"""
from __future__ import annotations

import itertools
import json

from . import answered, finish
from ..sim import Sim, tenant_ip, tenant_mac, underlay_ip  # noqa: F401 (the address plan)

VNIS = (10, 20)
GROUP = "239.1.1.1"
TENANT_MTU = 1450  # 1500 on the fabric, less 50 bytes of VXLAN over IPv4


def build(sim: Sim, n_hosts: int = 3, vnis=VNIS, say=lambda *_: None, allow: bool = False):
    """Builds the topology and provisions bpfnet on each host. Returns
    {"hosts": [ns...], "tenants": {(i, vni): ns}}."""
    sim.fabric()
    hosts, tenants = [], {}
    for i in range(n_hosts):
        h = sim.host(f"h{i}", f"{underlay_ip(i)}/24")
        sim.quiet(h, everything=False)  # tenant bridges and ports stay silent
        hosts.append(h)
        say(f"$ bpfnetctl --netns {h} load bridge --local {underlay_ip(i)} --group {GROUP}")
        sim.bpfnetctl("load", "bridge", "--local", underlay_ip(i), "--group", GROUP, netns_=h)
        for vni in vnis:
            extra = []
            if allow:
                extra = ["--allow", ",".join(underlay_ip(j) for j in range(n_hosts) if j != i)]
            say(f"$ bpfnetctl --netns {h} vni add {vni} --bridge br{vni} {' '.join(extra)}".rstrip())
            sim.bpfnetctl("vni", "add", str(vni), "--bridge", f"br{vni}", *extra, netns_=h)
            tenants[(i, vni)] = sim.tenant(h, f"h{i}v{vni}", f"{tenant_ip(i)}/24", f"br{vni}",
                                           mac=tenant_mac(i, vni), mtu=TENANT_MTU)
    return {"hosts": hosts, "tenants": tenants}


def check_all_pairs(sim: Sim, topo, vnis=VNIS, count: int = 3):
    """Pings every ordered pair of hosts in each VNI; returns rows."""
    rows = []
    n = len(topo["hosts"])
    for vni in vnis:
        for a, b in itertools.permutations(range(n), 2):
            src = topo["tenants"][(a, vni)]
            sim.ping_until(src, tenant_ip(b), tries=5)
            got = sim.ping(src, tenant_ip(b), count=count)
            rows.append({"vni": vni, "from": f"h{a}", "to": f"h{b}",
                         "dst": tenant_ip(b), "sent": count, "received": got})
    return rows


def run(keep: bool, say, prefix: str | None = None) -> int:
    from ..cli import table
    sim = Sim(prefix=prefix)
    try:
        say(f"# bridge demo: 3 hosts, VNIs {', '.join(map(str, VNIS))}, run {sim.prefix}")
        topo = build(sim, say=say)
        say("")
        say("# ping every pair of hosts in each VNI (same tenant subnet in both VNIs)")
        rows = check_all_pairs(sim, topo)
        say(table(rows))
        ok = all(r["received"] == r["sent"] for r in rows)
        h0 = topo["hosts"][0]
        say("")
        say(f"$ bpfnetctl --netns {h0} fdb show")
        _, out, _ = sim.bpfnetctl("fdb", "show", netns_=h0)
        say(out.rstrip())
        _, out, _ = sim.bpfnetctl("status", "--json", netns_=h0)
        c = json.loads(out)["functions"]["bridge"]["counters"]
        say("")
        say(f"# h0 counters: rx={c['rx']} tx={c['tx']} flood={c['flood']} learn={c['learn']}")
        return finish(sim, say, ok, answered(rows), keep)
    finally:
        sim.cleanup()
