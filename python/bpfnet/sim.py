"""Multi-host simulations in network namespaces, for demos, tests and benches.

    with Sim() as sim:                    # a per-run name prefix
        fab = sim.fabric()                # an L2 switch namespace
        h0 = sim.host("h0", "10.99.0.1/24")   # eth0 plugged into the fabric
        t = sim.tenant(h0, "t10", "192.168.0.1/24", bridge="br10")
        sim.ping(t, "192.168.0.2", count=3)
    # every namespace, process and pin root is gone here, on failure too

Everything lives in namespaces the Sim created; nothing is added to the
namespace it was started from. Traffic helpers are bounded in count and time.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
import uuid

import pyroute2.config
from pyroute2 import IPRoute, netns

from . import signals

PIN_BASE = "/sys/fs/bpf"
NETNS_DIR = "/var/run/netns"

# pyroute2's netns.create forks a child that unshares and bind-mounts the
# namespace, and waits 2 s for its answer (config.default_communicate_timeout)
# with no retry: on a loaded 2-core machine (a CI run beside a bench of 20
# agents) a fork of this process took longer, the child was killed and the
# demo exited "no response from the child". A busy host is slow, not broken.
pyroute2.config.default_communicate_timeout = 30


# --- the address plan every demo, test and bench uses --------------------------
def underlay_ip(i: int, family: int = 4) -> str:
    """Host ``h<i>``'s underlay address: 10.99.0.<i+1>, or fd00:99::<i+1>."""
    return f"10.99.0.{i + 1}" if family == 4 else f"fd00:99::{i + 1}"


def underlay_cidr(i: int, family: int = 4) -> str:
    return f"{underlay_ip(i, family)}/{24 if family == 4 else 64}"


def tenant_ip(i: int) -> str:
    """Host ``h<i>``'s tenant, the same subnet in every VNI: 192.168.0.<i+1>."""
    return f"192.168.0.{i + 1}"


def tenant_mac(i: int, vni: int) -> str:
    """Host ``h<i>``'s tenant in ``vni``: 02:00:00:<vni & 0xff>:00:<i+1>."""
    return f"02:00:00:{vni & 0xff:02x}:00:{i + 1:02x}"


def _setns_preexec(name: str):
    def fn():
        netns.setns(name, flags=0)
    return fn


class Sim:
    def __init__(self, prefix: str | None = None, keep: bool = False):
        self.id = uuid.uuid4().hex[:6]
        self.prefix = prefix or f"bn{self.id}"
        self.keep = keep
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.pin_root = os.path.join(PIN_BASE, f"bpfnet-{self.prefix}")
        self._cleanups = []

    # --- lifetime ------------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self.keep:
            self.cleanup()

    def on_cleanup(self, fn, *args):
        self._cleanups.append((fn, args))

    def cleanup(self):
        """Removes everything: cleanups, processes, namespaces, pins. Inside
        ``signals.stopping()`` a signal does not cut it short; it also finds
        what a signal kept from being recorded (a namespace of this prefix,
        a process left in one of them)."""
        with signals.deferred():
            self._cleanup()

    def _cleanup(self):
        for fn, args in reversed(self._cleanups):
            with contextlib.suppress(Exception):
                fn(*args)
        self._cleanups.clear()
        self.stop_procs()
        names = set(self.namespaces)
        with contextlib.suppress(OSError):
            names |= {n for n in os.listdir(NETNS_DIR) if n.startswith(self.prefix + "-")}
        _kill_procs_in(names)
        for ns in [n for n in reversed(self.namespaces) if n in names] + sorted(
                names - set(self.namespaces)):
            with contextlib.suppress(Exception):
                netns.remove(ns)
        self.namespaces.clear()
        if os.path.isdir(self.pin_root):
            shutil.rmtree(self.pin_root, ignore_errors=True)

    def stop_procs(self):
        """Stops the processes ``spawn`` started (SIGTERM to each group, then SIGKILL)."""
        procs, self.procs = self.procs, []
        for p in procs:
            with contextlib.suppress(Exception):
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            with contextlib.suppress(Exception):
                try:
                    p.wait(3)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(3)

    def hold(self, say=print, extra: str = "") -> int:
        """``demo --keep``: keeps the simulation up until SIGINT, SIGTERM or
        SIGHUP; returns the signal (the caller's cleanup then removes it)."""
        with signals.deferred():  # a signal right after this line is a stop here too
            say(f"# kept: namespaces {self.prefix}-*, pins {self.pin_root}{extra}; "
                "Ctrl-C, SIGTERM or SIGHUP removes them")
            sig = signals.wait()
        say(f"# {signals.signame(sig)}: removing the simulation")
        return sig

    # --- namespaces and links --------------------------------------------------
    def ns(self, short: str) -> str:
        """Creates namespace ``<prefix>-<short>`` with lo up; returns its name."""
        name = f"{self.prefix}-{short}"
        with signals.deferred():  # created and recorded, or neither
            netns.create(name)
            self.namespaces.append(name)
        with self.ipr(name) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        return name

    @contextlib.contextmanager
    def ipr(self, ns: str):
        """An IPRoute bound to ``ns`` (the process's namespace is restored)."""
        netns.pushns(ns)
        try:
            ipr = IPRoute()
        finally:
            netns.popns()
        try:
            yield ipr
        finally:
            ipr.close()

    def idx(self, ns: str, ifname: str) -> int:
        with self.ipr(ns) as ipr:
            return ipr.link_lookup(ifname=ifname)[0]

    def veth(self, ns_a: str, name_a: str, ns_b: str, name_b: str, mtu: int | None = None,
             mac_a: str | None = None, mac_b: str | None = None) -> None:
        """A veth pair from ``ns_a``/``name_a`` to ``ns_b``/``name_b``, both up."""
        tmp = f"v{uuid.uuid4().hex[:10]}"
        with self.ipr(ns_a) as ipr:
            ipr.link("add", ifname=name_a, kind="veth", peer=tmp)
            peer = ipr.link_lookup(ifname=tmp)[0]
            fd = os.open(f"/var/run/netns/{ns_b}", os.O_RDONLY)
            try:
                ipr.link("set", index=peer, net_ns_fd=fd)
            finally:
                os.close(fd)
            a = ipr.link_lookup(ifname=name_a)[0]
            kw = {"mtu": mtu} if mtu else {}
            if mac_a:
                kw["address"] = mac_a
            ipr.link("set", index=a, state="up", **kw)
        with self.ipr(ns_b) as ipr:
            b = ipr.link_lookup(ifname=tmp)[0]
            kw = {"mtu": mtu} if mtu else {}
            if mac_b:
                kw["address"] = mac_b
            ipr.link("set", index=b, ifname=name_b, **kw)
            ipr.link("set", index=b, state="up")

    def addr(self, ns: str, ifname: str, cidr: str) -> None:
        ip, plen = cidr.split("/")
        with self.ipr(ns) as ipr:
            kw = {"nodad": True} if ":" in ip else {}
            ipr.addr("add", index=ipr.link_lookup(ifname=ifname)[0], address=ip,
                     prefixlen=int(plen), **kw)

    def mac(self, ns: str, ifname: str) -> str:
        """The link's MAC address."""
        with self.ipr(ns) as ipr:
            return ipr.get_links(ipr.link_lookup(ifname=ifname)[0])[0].get_attr("IFLA_ADDRESS")

    def pin_neigh(self, ns: str, ifname: str, ip: str, mac: str) -> None:
        """A permanent neighbour entry: no ARP/ND of the kernel's own for it."""
        with self.ipr(ns) as ipr:
            ipr.neigh("replace", dst=ip, lladdr=mac, state=0x80,  # NUD_PERMANENT
                      ifindex=ipr.link_lookup(ifname=ifname)[0])

    def route(self, ns: str, dst: str, ifname: str, gateway: str | None = None) -> None:
        with self.ipr(ns) as ipr:
            kw = {"gateway": gateway} if gateway else {}
            ipr.route("add", dst=dst, oif=ipr.link_lookup(ifname=ifname)[0], **kw)

    def bridge(self, ns: str, name: str) -> int:
        with self.ipr(ns) as ipr:
            ipr.link("add", ifname=name, kind="bridge")
            idx = ipr.link_lookup(ifname=name)[0]
            ipr.link("set", index=idx, state="up")
            return idx

    def enslave(self, ns: str, ifname: str, bridge: str) -> None:
        with self.ipr(ns) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname=ifname)[0],
                     master=ipr.link_lookup(ifname=bridge)[0])

    def quiet(self, ns: str, everything: bool = True) -> None:
        """No IPv6 on devices made from now on in ``ns`` (on all of them if
        ``everything``) and no IGMP reports for link-local groups (a Linux
        bridge joins 224.0.0.106): no router solicitations, DAD, MLD or IGMP
        chatter, so only what a demo or test sends crosses and counters can
        be exact."""
        self.sysctl(ns, "net.ipv6.conf.default.disable_ipv6", "1")
        self.sysctl(ns, "net.ipv4.igmp_link_local_mcast_reports", "0")
        if everything:
            self.sysctl(ns, "net.ipv6.conf.all.disable_ipv6", "1")

    def sysctl(self, ns: str, key: str, value: str) -> None:
        """Writes /proc/sys/KEY inside ``ns``."""
        netns.pushns(ns)
        try:
            with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(value)
        finally:
            netns.popns()

    # --- topologies ------------------------------------------------------------
    def fabric(self, name: str = "fabric") -> str:
        """An L2 switch (a Linux bridge in its own namespace) for the underlay."""
        ns = self.ns(name)
        self.bridge(ns, "sw0")
        # let multicast flood (no querier: snooping would drop the group)
        with self.ipr(ns) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="sw0")[0], kind="bridge",
                     br_mcast_snooping=0)
        self._fabric = ns
        return ns

    def host(self, short: str, underlay: str, fabric: str | None = None,
             extra: tuple = (), mtu: int | None = None) -> str:
        """A host namespace whose ``eth0`` (address ``underlay``, plus
        ``extra`` addresses) plugs into the fabric switch; its default route
        is eth0 so VXLAN multicast has a way out."""
        fabric = fabric or self._fabric
        ns = self.ns(short)
        port = f"p{short}"[:15]
        self.veth(ns, "eth0", fabric, port, mtu=mtu)
        self.enslave(fabric, port, "sw0")
        self.addr(ns, "eth0", underlay)
        for a in extra:
            self.addr(ns, "eth0", a)
        self.route(ns, "0.0.0.0/0" if ":" not in underlay else "::/0", "eth0")
        return ns

    def tenant(self, host: str, short: str, cidr: str | None, bridge: str, mac: str | None = None,
               mtu: int | None = None) -> str:
        """A quiet tenant namespace whose eth0 (``cidr``, or none) plugs into
        ``bridge`` of ``host``. Its ARP never re-probes an entry in use, so
        frames cross only when the demo or a test sends them."""
        ns = self.ns(short)
        self.quiet(ns)
        hif = f"t{short}"[-15:]
        self.veth(host, hif, ns, "eth0", mac_b=mac, mtu=mtu)
        self.sysctl(ns, "net.ipv4.neigh.eth0.delay_first_probe_time", "3600")
        with self.ipr(host) as ipr:
            if not ipr.link_lookup(ifname=bridge):
                ipr.link("add", ifname=bridge, kind="bridge")
                ipr.link("set", index=ipr.link_lookup(ifname=bridge)[0], state="up")
        self.enslave(host, hif, bridge)
        if cidr:
            self.addr(ns, "eth0", cidr)
        return ns

    # --- processes and traffic ---------------------------------------------------
    def run(self, ns: str, argv: list[str], timeout: float = 30, check: bool = False,
            **kw) -> subprocess.CompletedProcess:
        """Runs ``argv`` in network namespace ``ns`` (mount namespace kept)."""
        return subprocess.run(argv, preexec_fn=_setns_preexec(ns), capture_output=True,
                              text=True, timeout=timeout, check=check, **kw)

    def spawn(self, ns: str, argv: list[str], **kw) -> subprocess.Popen:
        """Starts a long-running process in ``ns``; cleanup stops it."""
        def pre():
            os.setsid()
            netns.setns(ns, flags=0)
        with signals.deferred():
            p = subprocess.Popen(argv, preexec_fn=pre, **kw)
            self.procs.append(p)
        return p

    def ping(self, ns: str, dst: str, count: int = 3, interval: float = 0.2,
             deadline: float = 10, size: int | None = None) -> int:
        """Pings ``dst`` from ``ns`` (bounded); returns replies received."""
        argv = ["ping", "-n", "-q", "-c", str(count), "-i", str(interval),
                "-w", str(int(deadline)), "-W", "1"]
        if size is not None:
            argv += ["-s", str(size)]
        r = self.run(ns, argv + [dst], timeout=deadline + 5)
        m = re.search(r"(\d+) (?:packets )?received", r.stdout)
        return int(m.group(1)) if m else 0

    def ping_until(self, ns: str, dst: str, tries: int = 10) -> bool:
        """One ping per try until one answers (for ARP and learning to settle)."""
        for _ in range(tries):
            if self.ping(ns, dst, count=1, deadline=1) == 1:
                return True
        return False

    def bpfnetctl(self, *argv: str, netns_: str | None = None, check: bool = True):
        """Runs bpfnetctl in-process with this run's pin root; returns
        (exit code, stdout, stderr)."""
        import io
        from contextlib import redirect_stderr, redirect_stdout

        from .cli import main
        full = ["--pin-root", self.pin_root]
        if netns_:
            full += ["--netns", netns_]
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(full + list(argv))
        if check and code != 0:
            raise RuntimeError(f"bpfnetctl {' '.join(argv)}: exit {code}: {err.getvalue().strip()}")
        return code, out.getvalue(), err.getvalue()


def _kill_procs_in(names) -> None:
    """SIGKILLs every process (but this one) whose network namespace is one
    of ``names`` (what ``ip netns pids`` finds), so none outlives them."""
    inodes = set()
    for n in names:
        with contextlib.suppress(OSError):
            st = os.stat(os.path.join(NETNS_DIR, n))
            inodes.add((st.st_dev, st.st_ino))
    if not inodes:
        return
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        with contextlib.suppress(OSError):
            st = os.stat(f"/proc/{pid}/ns/net")
            if (st.st_dev, st.st_ino) in inodes:
                os.kill(int(pid), signal.SIGKILL)


def wait_for(pred, timeout: float = 5, step: float = 0.05):
    """Polls ``pred`` until true or ``timeout``; returns its last value."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


