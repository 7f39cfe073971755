"""Two hosts for the apply and agent tests: h0 (10.99.0.1) and h1
(10.99.0.2) on one fabric, each with a tenant in bridge br10 and one in
br30 (192.168.<vni>.<host + 1>), bridges the user made. The tests add
bpfnet from a file.

    topo = build(sim, files={"h0.toml": H0, "h1.toml": H1}, directory=d)
    pings(topo)          # {10: 3, 30: 3}: h0's tenants to h1's, both VNIs
"""
from __future__ import annotations

VNIS = (10, 30)


def build(sim, files: dict, directory) -> dict:
    sim.fabric()
    hosts = []
    for i in range(2):
        h = sim.host(f"h{i}", f"10.99.0.{i + 1}/24")
        sim.quiet(h, everything=False)
        hosts.append(h)
        for vni in VNIS:
            sim.tenant(h, f"h{i}t{vni}", f"192.168.{vni}.{i + 1}/24", f"br{vni}",
                       mac=f"02:00:00:{vni:02x}:00:{i + 1:02x}", mtu=1450)
    paths = []
    for name, text in files.items():
        (directory / name).write_text(text)
        paths.append(str(directory / name))
    return {"hosts": hosts, "files": paths, "dir": directory}


def ctl(topo, i, *argv):
    """bpfnetctl in-process on host ``i``: (code, stdout, stderr)."""
    return topo["sim"].bpfnetctl(*argv, netns_=topo["hosts"][i], check=False)


def tenant(topo, i, vni) -> str:
    return f"{topo['sim'].prefix}-h{i}t{vni}"


def pings(topo, tries: int = 10) -> dict:
    """Replies to 3 pings from h0's tenant to h1's, per VNI (after one
    answered, for ARP and learning)."""
    sim = topo["sim"]
    got = {}
    for vni in VNIS:
        sim.ping_until(tenant(topo, 0, vni), f"192.168.{vni}.2", tries=tries)
        got[vni] = sim.ping(tenant(topo, 0, vni), f"192.168.{vni}.2", count=3)
    return got
