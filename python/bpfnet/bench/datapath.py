"""Data path: two hosts in namespaces, one tenant on each, tenant to tenant.

      tenant t0 192.168.0.1/24                      tenant t1 192.168.0.2/24
            | veth                                        | veth
      +-----+------ h0 -----------+          +-----------+ h1 ------+-----+
      | br10 + the variant's way  |          | br10 + the variant's way     |
      | out: VXLAN (bpfnet or     |          | in and out                   |
      | kernel) or eth0 itself    |          |                              |
      +---------- eth0 10.99.0.1 -+          +- eth0 10.99.0.2 -------------+
                    +------------- fabric (sw0, L2, MTU 1550) -------+

Bridged frames skip iptables (bridge-nf-call-* = 0 in every namespace).
Every variant gets its own namespaces (its own fabric), built once and kept
up for the whole run, so rounds can interleave variants cheaply. The
underlay MTU is 1550 so that every tenant runs at MTU 1500 whatever the
encapsulation. Variants:

  bridge        bpfnet bridge (load bridge; vni add 10 --bridge br10)
  mesh          bpfnet mesh (load mesh; peer add <other> --vni 10 --bridge br10)
  bridge+mon    bpfnet bridge with the monitor on each host's eth0
  kernel-mcast  kernel VXLAN (id 10, group 239.1.1.1, learning) in br10
  kernel-ucast  kernel VXLAN without group, all-zeros FDB entry per remote
  no-encap      no VXLAN: eth0 itself joins br10 (the limit)

Measurements per round and variant:
  tcp   iperf3, one stream, t0 -> t1, ``seconds`` plus one omitted second,
        both ends pinned to one CPU: receiver's bit/s, and bits per CPU
        second of client + server + that CPU's ksoftirqd
  udp   18-byte UDP payloads (64-byte frames with FCS) from one socket with
        sendmmsg for ``seconds``: frames delivered per second, counted as
        rx_packets on t1's interface, and per CPU second of the sender
On veth every hop of a frame runs in the sending context, so the path is
CPU-bound on one core: on a shared machine the per-CPU-second figures are
what a dedicated core would do, and they hold steady while wall-clock
throughput swings with the neighbours' load.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import time

from pyroute2 import netns

from ..functions.base import obj_dir
from ..sim import Sim, tenant_ip, tenant_mac, underlay_ip
from .blast import Blaster

GROUP = "239.1.1.1"
VNI = 10
UNDERLAY_MTU = 1550
TENANT_MTU = 1500
UDP_PORT = 5001
UDP_PAYLOAD = 18        # + 8 UDP + 20 IP + 14 Ethernet + 4 FCS = 64 bytes


def no_br_netfilter(sim: Sim, ns: str) -> None:
    """Bridged IPv4/IPv6/ARP frames skip iptables in ``ns``. Where
    br_netfilter is loaded (built in on some kernels, loaded by container
    runtimes) every bridge hop otherwise runs the IP hooks: a cost common to
    every variant that only blurs the comparison."""
    for fam in ("iptables", "ip6tables", "arptables"):
        key = f"net.bridge.bridge-nf-call-{fam}"
        if os.path.exists("/proc/sys/" + key.replace(".", "/")):
            sim.sysctl(ns, key, "0")


def tcp_cpu() -> int:
    """The CPU the TCP measurement pins its two ends to: the last one."""
    return max(os.sched_getaffinity(0))


def ksoftirqd_cpu_s(cpu: int) -> float:
    """CPU seconds ksoftirqd/<cpu> has run (utime + stime), 0 if not found."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                st = f.read()
        except OSError:
            continue
        comm = st[st.index("(") + 1:st.rindex(")")]
        if comm == f"ksoftirqd/{cpu}":
            fields = st[st.rindex(")") + 2:].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def iperf3_end(key: str, stdout: str) -> dict:
    """iperf3 -J's end summary; RuntimeError naming variant ``key`` when
    iperf3 reports an error."""
    j = json.loads(stdout)
    if "error" in j:
        raise RuntimeError(f"{key}: iperf3: {j['error']}")
    return j["end"]


def iperf3_cpu(end: dict) -> float:
    """The CPU client and server used, by iperf3's own accounting: fractions
    of one CPU, summed."""
    util = end.get("cpu_utilization_percent", {})
    return (util.get("host_total", 0) + util.get("remote_total", 0)) / 100


class NotAvailable(Exception):
    """The variant's function has not landed (module or object missing)."""


def need_function(name: str) -> None:
    if importlib.util.find_spec(f"bpfnet.functions.{name}") is None:
        raise NotAvailable(f"bpfnet.functions.{name} not available")
    obj = os.path.join(obj_dir(), f"{name}.bpf.o")
    if not os.path.exists(obj):
        raise NotAvailable(f"{obj} not built")


class Variant:
    """One data path, built in its own namespaces. Subclasses add the way
    from each host's br10 to the other host (``host_setup``)."""

    key = ""
    label = ""
    code = ""             # namespace prefix part, unique per variant
    encap = True          # False: eth0 joins br10 directly

    def __init__(self, run_id: str):
        self.sim = Sim(prefix=f"bb{run_id}{self.code}")
        self.hosts: list[str] = []
        self.tenants: list[str] = []
        self._sink = None
        self._tx = None
        self._server = None

    # --- build -----------------------------------------------------------------
    def check(self) -> None:
        """Raises NotAvailable when the variant cannot be built here."""

    def setup(self) -> None:
        sim = self.sim
        sim.fabric()
        for i in range(2):
            h = sim.host(f"h{i}", f"{underlay_ip(i)}/24", mtu=UNDERLAY_MTU)
            self.hosts.append(h)
            sim.bridge(h, "br10")
        for ns in [sim._fabric] + self.hosts:
            no_br_netfilter(sim, ns)
        for i, h in enumerate(self.hosts):
            self.host_setup(i, h)
        for i, h in enumerate(self.hosts):
            t = sim.tenant(h, f"t{i}", f"{tenant_ip(i)}/24", "br10", mac=tenant_mac(i, VNI))
            self.tenants.append(t)
        for i in range(2):
            if not sim.ping_until(self.tenants[i], tenant_ip(1 - i), tries=10):
                raise RuntimeError(f"{self.key}: tenant {i} cannot reach tenant {1 - i}")
        self._start_traffic_ends()

    def host_setup(self, i: int, h: str) -> None:
        raise NotImplementedError

    def teardown(self) -> None:
        for s in (self._sink, self._tx):
            if s is not None:
                with contextlib.suppress(OSError):
                    s.close()
        self.sim.cleanup()

    # --- traffic ends ------------------------------------------------------------
    def _socket_in(self, ns: str, kind: int) -> socket.socket:
        netns.pushns(ns)
        try:
            return socket.socket(socket.AF_INET, kind)
        finally:
            netns.popns()

    def _start_traffic_ends(self) -> None:
        t0, t1 = self.tenants
        self._server = self.sim.spawn(t1, ["iperf3", "-s", "-B", tenant_ip(1)],
                                      stdout=open(os.devnull, "w"), stderr=open(os.devnull, "w"))
        # a UDP sink that never reads: every frame goes the whole way up to
        # the socket; the socket's buffer overflow drops the rest, alike for all
        self._sink = self._socket_in(t1, socket.SOCK_DGRAM)
        self._sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
        self._sink.bind((tenant_ip(1), UDP_PORT))
        self._tx = self._socket_in(t0, socket.SOCK_DGRAM)
        self._tx.connect((tenant_ip(1), UDP_PORT))
        for _ in range(50):  # iperf3 server up
            r = self.sim.run(t0, ["iperf3", "-c", tenant_ip(1), "-t", "1", "-J"], timeout=20)
            if r.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.key}: iperf3 server did not come up")

    def rx_packets(self) -> int:
        with self.sim.ipr(self.tenants[1]) as ipr:
            link = ipr.get_links(ipr.link_lookup(ifname="eth0")[0])[0]
            return link.get_attr("IFLA_STATS64")["rx_packets"]

    def tcp(self, seconds: float) -> dict:
        """One iperf3 stream t0 -> t1, client and server pinned to TCP_CPU:
        Gbit/s received, and Gbit per CPU second. The CPU is the client's and
        the server's (iperf3's own accounting: on veth the whole path runs in
        their contexts, softirq included) plus what that CPU's ksoftirqd ran
        meanwhile (the softirq work the kernel deferred, which neither
        process is charged for). Pinned, every hop of the transfer runs on
        one CPU whatever the scheduler would do: unpinned, client and server
        land on one core or two from run to run, and cross-CPU wakeups and
        cache traffic moved the figures by more than the differences between
        variants."""
        cpu = tcp_cpu()
        ksoft = ksoftirqd_cpu_s(cpu)
        t = time.monotonic()
        r = self.sim.run(self.tenants[0], ["iperf3", "-c", tenant_ip(1), "-t", str(seconds),
                                           "-O", "1", "-J", "-A", f"{cpu},{cpu}"],
                         timeout=seconds + 30)
        wall = time.monotonic() - t
        ksoft = ksoftirqd_cpu_s(cpu) - ksoft
        end = iperf3_end(self.key, r.stdout)
        gbps = end["sum_received"]["bits_per_second"] / 1e9
        used = iperf3_cpu(end)
        if wall > 0:
            used += ksoft / wall
        return {"gbps": gbps, "gbit_per_cpu_s": gbps / used if used > 0 else None}

    def udp(self, seconds: float) -> dict:
        """64-byte frames per second delivered into t1 (and sent), and frames
        delivered per CPU second of the sending thread: every hop runs in its
        context (syscall, then softirq on local_bh_enable), so this is the
        inverse of the path's CPU cost per frame, whatever else the machine
        runs meanwhile."""
        tx = Blaster(self._tx, UDP_PAYLOAD)
        tx.run(0.2)  # warm: neighbour entries, caches
        time.sleep(0.05)
        before = self.rx_packets()
        t, c = time.monotonic(), time.thread_time()
        sent = tx.run(seconds)
        dt, dc = time.monotonic() - t, time.thread_time() - c
        time.sleep(0.05)
        got = self.rx_packets() - before
        return {"pps": got / dt, "sent_pps": sent / dt,
                "pps_per_cpu_s": got / dc if dc > 0 else None}


# --- bpfnet ------------------------------------------------------------------

class BpfnetBridge(Variant):
    key, label = "bridge", "bpfnet bridge (native encap)"
    code = "br"
    encap = ()  # extra load options: the default path, or --encap device

    def check(self):
        need_function("bridge")

    def host_setup(self, i, h):
        self.sim.bpfnetctl("load", "bridge", "--underlay", "eth0", "--local", underlay_ip(i),
                           "--group", GROUP, *self.encap, netns_=h)
        self.sim.bpfnetctl("vni", "add", str(VNI), "--bridge", "br10", netns_=h)


class BpfnetBridgeDevice(BpfnetBridge):
    key, label = "bridge-dev", "bpfnet bridge (--encap device)"
    code = "bd"
    encap = ("--encap", "device")


class BpfnetBridgeFib(BpfnetBridge):
    """Forwarding on the underlay: the native path's outer MACs come from
    bpf_fib_lookup instead of bpf_redirect_neigh routing each frame."""
    key, label = "bridge-fib", "bpfnet bridge (native, forwarding on: fib_lookup)"
    code = "bf"

    def host_setup(self, i, h):
        self.sim.sysctl(h, "net.ipv4.conf.eth0.forwarding", "1")
        super().host_setup(i, h)


class BpfnetBridgeMonitor(BpfnetBridge):
    key, label = "bridge-mon", "bpfnet bridge + monitor"
    code = "bm"

    def check(self):
        need_function("bridge")
        need_function("monitor")

    def host_setup(self, i, h):
        super().host_setup(i, h)
        self.sim.bpfnetctl("load", "monitor", "--dev", "eth0", netns_=h)


def headroom_member(sim: Sim, h: str, i: int) -> None:
    """Measurement only, not a design: a VXLAN device that stays down,
    enslaved to br10, which raises the bridge's needed_headroom to a VXLAN
    device's and so, through the bridge's ports (veth passes it to its
    peer), the tenant's: its frames then have room for the outer headers
    and are not reallocated when they are encapsulated. Down, it binds no
    socket and carries nothing."""
    with sim.ipr(h) as ipr:
        eth0 = ipr.link_lookup(ifname="eth0")[0]
        ipr.link("add", ifname="hr10", kind="vxlan", vxlan_id=4094, vxlan_link=eth0,
                 vxlan_local=underlay_ip(i), vxlan_port=4799)
        ipr.link("set", index=ipr.link_lookup(ifname="hr10")[0],
                 master=ipr.link_lookup(ifname="br10")[0])


class WithHeadroom:
    """A variant plus headroom_member on each host."""

    def host_setup(self, i, h):
        super().host_setup(i, h)
        headroom_member(self.sim, h, i)


class BpfnetBridgeHeadroom(WithHeadroom, BpfnetBridge):
    key, label = "bridge-hr", "bpfnet bridge (native) + tenant headroom"
    code = "bh"


class BpfnetBridgeDeviceHeadroom(WithHeadroom, BpfnetBridgeDevice):
    key, label = "bridge-dev-hr", "bpfnet bridge (--encap device) + tenant headroom"
    code = "dh"


class BpfnetMesh(Variant):
    key, label = "mesh", "bpfnet mesh (native encap)"
    code = "me"
    encap = ()

    def check(self):
        need_function("mesh")

    def host_setup(self, i, h):
        self.sim.bpfnetctl("load", "mesh", "--underlay", "eth0", "--local", underlay_ip(i),
                           *self.encap, netns_=h)
        self.sim.bpfnetctl("peer", "add", underlay_ip(1 - i), "--vni", str(VNI),
                           "--bridge", "br10", netns_=h)


class BpfnetMeshDevice(BpfnetMesh):
    key, label = "mesh-dev", "bpfnet mesh (--encap device)"
    code = "md"
    encap = ("--encap", "device")


# --- the kernel's own ----------------------------------------------------------

class KernelMcast(Variant):
    key, label = "kernel-mcast", "kernel VXLAN + bridge (multicast)"
    code = "km"
    group: str | None = GROUP

    def host_setup(self, i, h):
        with self.sim.ipr(h) as ipr:
            eth0 = ipr.link_lookup(ifname="eth0")[0]
            kw = dict(ifname="vx10", kind="vxlan", vxlan_id=VNI, vxlan_link=eth0,
                      vxlan_local=underlay_ip(i), vxlan_port=4789, vxlan_learning=1,
                      mtu=TENANT_MTU)
            if self.group:
                kw["vxlan_group"] = self.group
            ipr.link("add", **kw)
            vx = ipr.link_lookup(ifname="vx10")[0]
            ipr.link("set", index=vx, master=ipr.link_lookup(ifname="br10")[0])
            ipr.link("set", index=vx, state="up")
            self.flood_list(ipr, vx, i)

    def flood_list(self, ipr, vx: int, i: int) -> None:
        pass


class KernelUcast(KernelMcast):
    key, label = "kernel-ucast", "kernel VXLAN + bridge (unicast flood list)"
    code = "ku"
    group = None

    def flood_list(self, ipr, vx, i):
        # bridge fdb append 00:00:00:00:00:00 dev vx10 dst <other>
        ipr.fdb("append", ifindex=vx, lladdr="00:00:00:00:00:00", dst=underlay_ip(1 - i))


class NoEncap(Variant):
    key, label = "no-encap", "no encapsulation (limit)"
    code = "ne"

    def host_setup(self, i, h):
        self.sim.enslave(h, "eth0", "br10")


VARIANTS = [BpfnetBridge, BpfnetBridgeDevice, BpfnetBridgeFib, BpfnetBridgeHeadroom,
            BpfnetBridgeDeviceHeadroom, BpfnetMesh, BpfnetMeshDevice,
            BpfnetBridgeMonitor, KernelMcast, KernelUcast, NoEncap]
REFERENCE = "kernel-mcast"


def run(run_id: str, rounds: int, seconds: float, log, only=None) -> dict:
    """Builds every variant, then ``rounds`` rounds of TCP A B C ..., UDP
    A B C ...; returns {variant key: {label, status, tcp_gbps, udp_pps, ...}}."""
    from .report import summary
    variants, out = [], {}
    for cls in VARIANTS:
        if only and cls.key not in only:
            continue
        v = cls(run_id)
        row = {"label": v.label, "status": "ok", "tcp": [], "tcp_cpu": [], "udp": [],
               "udp_sent": [], "udp_cpu": []}
        out[v.key] = row
        try:
            v.check()
        except NotAvailable as e:
            row["status"] = f"not available: {e}"
            log(f"  {v.key}: {row['status']}")
            continue
        try:
            t = time.monotonic()
            v.setup()
            log(f"  {v.key}: built in {time.monotonic() - t:.1f} s")
            variants.append(v)
        except Exception as e:  # a broken variant is reported, not fatal
            row["status"] = f"setup failed: {type(e).__name__}: {e}"
            log(f"  {v.key}: {row['status']}")
            v.teardown()
    try:
        for r in range(rounds):
            for test in ("tcp", "udp"):
                for v in variants:
                    row = out[v.key]
                    try:
                        if test == "tcp":
                            t = v.tcp(seconds)
                            row["tcp"].append(t["gbps"])
                            row["tcp_cpu"].append(t["gbit_per_cpu_s"])
                        else:
                            u = v.udp(seconds)
                            row["udp"].append(u["pps"])
                            row["udp_sent"].append(u["sent_pps"])
                            row["udp_cpu"].append(u["pps_per_cpu_s"])
                    except Exception as e:
                        row.setdefault("errors", []).append(f"round {r} {test}: {e}")
                        log(f"  {v.key} {test}: {e}")
            log(f"  round {r + 1}/{rounds}: " + ", ".join(
                f"{v.key} {out[v.key]['tcp'][-1] if out[v.key]['tcp'] else 0:.2f} Gbit/s "
                f"{(out[v.key]['udp'][-1] if out[v.key]['udp'] else 0) / 1e3:.0f} kpps"
                for v in variants))
    finally:
        for v in variants:
            v.teardown()
    for row in out.values():
        row["tcp_gbps"] = summary(row.pop("tcp"))
        row["tcp_gbit_per_cpu_s"] = summary(row.pop("tcp_cpu"))
        row["udp_pps"] = summary(row.pop("udp"))
        row["udp_sent_pps"] = summary(row.pop("udp_sent"))
        row["udp_pps_per_cpu_s"] = summary(row.pop("udp_cpu"))
    return out
