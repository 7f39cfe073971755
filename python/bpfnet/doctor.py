"""`bpfnetctl doctor`: finds what keeps traffic from crossing, says the fix.

    result = run(ctx)   # Output: a table, or --json rows
    # [{"check": "bpffs", "status": "ok"|"warn"|"fail", "detail": ..., "fix": ...}, ...]

Checks: root, kernel BTF, bpffs (missing, or hidden by `ip netns exec`), the
attach mode the kernel allows, built objects, stale or half-made pins, for
each loaded function its attach points and filters that run before it, and
for the bridge the tenant MTU, the route floods take (the underlay, by
bpfnet's flood route), the group memberships and rp_filter.
"""
from __future__ import annotations

import os

from . import libbpf
from .errors import KernelError
from .functions import available
from .functions.base import BPF_FS_MAGIC, TCX, attach_mode, fs_type, netns_exec_name, obj_dir

VXLAN_OVERHEAD = {4: 50, 6: 70}


class Report:
    def __init__(self):
        self.rows: list[dict] = []

    def add(self, check: str, status: str, detail: str, fix: str = ""):
        self.rows.append({"check": check, "status": status, "detail": detail, "fix": fix})

    def ok(self, check, detail):
        self.add(check, "ok", detail)

    def warn(self, check, detail, fix):
        self.add(check, "warn", detail, fix)

    def fail(self, check, detail, fix):
        self.add(check, "fail", detail, fix)


def _sysctl(key: str) -> str | None:
    try:
        with open("/proc/sys/" + key.replace(".", "/")) as f:
            return f.read().strip()
    except OSError:
        return None


def check_host(rep: Report, ctx) -> bool:
    """Machine-wide checks; False if pins cannot be looked at."""
    if os.geteuid() == 0:
        rep.ok("root", "running as root")
    else:
        rep.fail("root", "not root", "run bpfnetctl as root (CAP_BPF, CAP_NET_ADMIN)")
    if os.path.exists("/sys/kernel/btf/vmlinux"):
        rep.ok("kernel BTF", "/sys/kernel/btf/vmlinux present (CO-RE relocations work)")
    else:
        rep.fail("kernel BTF", "no /sys/kernel/btf/vmlinux",
                 "boot a kernel built with CONFIG_DEBUG_INFO_BTF=y")
    bpffs_ok = fs_type("/sys/fs/bpf") == BPF_FS_MAGIC
    if bpffs_ok:
        rep.ok("bpffs", "mounted at /sys/fs/bpf")
    elif netns_exec_name():
        name = netns_exec_name()
        rep.fail("bpffs", f"/sys/fs/bpf is hidden: `ip netns exec {name}` remounted /sys, so pins "
                 "made here vanish with the command",
                 f"run bpfnetctl --netns {name} ... instead of ip netns exec {name} bpfnetctl ...")
    else:
        rep.warn("bpffs", "not mounted at /sys/fs/bpf", "none needed: load mounts it "
                 "(or: mount -t bpf bpf /sys/fs/bpf)")
    mode = attach_mode()
    if mode == "tcx":
        rep.ok("attach", "tcx links (kernel has tcx)")
    else:
        rep.ok("attach", "clsact + cls_bpf (no tcx in this kernel: fine)")
    missing = [f for f in available() if not os.path.exists(os.path.join(obj_dir(), f"{f}.bpf.o"))]
    if missing:
        rep.fail("objects", f"not built: {', '.join(missing)} in {obj_dir()}", "run make")
    else:
        rep.ok("objects", f"built in {obj_dir()}")
    return bpffs_ok


def check_pins(rep: Report, ctx) -> None:
    root = ctx.pins.root
    if not os.path.isdir(root):
        rep.ok("pins", f"no pins under {root}")
        return
    stale = []
    for ns in sorted(os.listdir(root)):
        d = os.path.join(root, ns)
        if ns != "host" and os.path.isdir(d) and not os.path.exists(f"/var/run/netns/{ns}"):
            stale.append(d)
    if stale:
        rep.fail("stale pins", f"pins of namespaces that no longer exist: {', '.join(stale)}",
                 "rm -r " + " ".join(stale))
    for f in available():
        fn = ctx.fn(f)
        if fn.is_partial():
            rep.fail(f"{f} pins", f"a load of {f} did not finish (killed?): {fn.dir}",
                     f"bpfnetctl{_ns(ctx)} unload {f}")
    if not stale:
        rep.ok("pins", f"no stale pins under {root}")


def _ns(ctx) -> str:
    return f" --netns {ctx.ns}" if ctx.ns != "host" else ""


def check_function(rep: Report, ctx, name: str) -> None:
    fn = ctx.fn(name)
    try:
        st = fn.status()
    except Exception as e:  # noqa: BLE001 -- a broken instance is itself a finding
        rep.fail(name, f"cannot read its state: {e}", f"bpfnetctl{_ns(ctx)} unload {name} && load it again")
        return
    net = fn.net
    for a in st.get("attach", []):
        where = f"{a.get('device')} {a.get('hook')}"
        if not a.get("program"):
            rep.fail(f"{name} attach", f"nothing attached on {where}",
                     f"bpfnetctl{_ns(ctx)} load {name} (a second load re-attaches)")
            continue
        idx = net.lookup(a["device"]) if a.get("device") else None
        if idx is None:
            continue
        if a.get("mode") == "tc":
            before = [f for f in net.filters(idx, a["hook"]) if not f["ours"] and f["prio"] < 0xBF00]
            if before:
                rep.warn(f"{name} tc order", f"{len(before)} filter(s) on {where} run before "
                         f"bpfnet's (prio {', '.join(str(f['prio']) for f in before)}) and may take "
                         "the frames", "check them with tc filter show; give them a higher prio")
        elif a.get("mode") == "tcx":
            n = libbpf.prog_query_count(idx, TCX[a["hook"]])
            if n > 1:
                rep.warn(f"{name} tcx order", f"{n - 1} other tcx program(s) on {where}",
                         "bpftool net show: make sure none of them redirects or drops bpfnet's frames")
    rep.ok(name, f"loaded, {len(st.get('attach', []))} attach point(s) in place")
    drops = {k: v for k, v in st.get("counters", {}).items() if k.startswith("drop_") and v}
    if drops:
        rep.warn(f"{name} drops", ", ".join(f"{k}={v}" for k, v in drops.items()),
                 "see README: drop reasons")
    if name == "bridge":
        _check_bridge(rep, ctx, fn, st)


def _check_bridge(rep: Report, ctx, fn, st) -> None:
    from netaddr import IPAddress
    net = fn.net
    vx = net.lookup(st["device"]) if st.get("device") else None
    if vx is None:
        rep.fail("bridge device", "the VXLAN device is gone", f"bpfnetctl{_ns(ctx)} unload bridge, then load")
        return
    group = IPAddress(st["group"])
    info = net.vxlan_info(vx)
    under = info.get("IFLA_VXLAN_LINK")
    vx_mtu = net.mtu(vx)
    if under:
        u_mtu = net.mtu(under)
        if vx_mtu + VXLAN_OVERHEAD[group.version] > u_mtu:
            rep.fail("bridge MTU", f"{st['device']} MTU {vx_mtu} + {VXLAN_OVERHEAD[group.version]} "
                     f"bytes of VXLAN exceeds the underlay's {u_mtu}: large frames are dropped",
                     f"ip link set {st['device']} mtu {u_mtu - VXLAN_OVERHEAD[group.version]}")
    rows = fn.vni_show()
    for row in rows:
        br = net.lookup(row["bridge"]) if row["bridge"] else None
        if br is None:
            continue
        for p in net.ports(br):
            if net.mtu(p) > vx_mtu:
                rep.warn("bridge MTU", f"VNI {row['vni']}: tenant port {net.name(p)} MTU {net.mtu(p)} "
                         f"> {vx_mtu} that fits the tunnel: large tenant frames are dropped",
                         f"set the tenant MTU to {vx_mtu} (or raise the underlay MTU)")
    _check_floods(rep, ctx, net, st["device"], under, rows)
    if under:
        uname = net.name(under)
        strict = [k for k in ("all", uname) if _sysctl(f"net.ipv4.conf.{k}.rp_filter") == "1"]
        if strict:
            rep.warn("rp_filter", f"strict rp_filter on {', '.join(strict)}: VXLAN from a VTEP "
                     f"routed via another interface is dropped before decapsulation",
                     f"sysctl -w net.ipv4.conf.{strict[-1]}.rp_filter=2")
        else:
            rep.ok("rp_filter", f"not strict on {uname}")


def _check_floods(rep: Report, ctx, net, device: str, under: int | None, rows: list[dict]) -> None:
    """Per group the VNIs use: the route the kernel takes to it is the
    underlay (bpfnet's flood route, what a second load puts back), and the
    underlay is a member (the device's VNI filter joined it)."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    uname = net.name(under) if under else None
    for g, members in groups.items():
        vnis = "VNI " + ", ".join(str(r["vni"]) for r in members)
        dev = net.route_dev(g)
        if under is None:
            rep.warn("multicast route", f"{device} has no underlay device (dev), so floods to {g} "
                     f"({vnis}) follow the routing table: "
                     f"{'by ' + net.name(dev) if dev else 'no route'}",
                     "give the bridge a VXLAN device with an underlay (the one load bridge creates)")
        elif dev != under:
            where = f"leave by {net.name(dev)}, not the underlay {uname}" if dev else \
                "cannot leave (no route to it)"
            rep.fail("multicast route", f"floods to {g} ({vnis}) {where}: bpfnet's route to the "
                     "group is gone (the underlay went down?) or another takes precedence",
                     f"bpfnetctl{_ns(ctx)} load bridge (a second load puts the flood routes back)")
        else:
            rep.ok("multicast route", f"floods to {g} ({vnis}) leave by {uname}")
        if under is not None and not members[0]["joined"]:
            fix = f"bpfnetctl{_ns(ctx)} vni del/add the VNI" if net.has_vnifilter(net.index(device)) \
                else f"{device} has no VNI filter and joins only its own group: give the bridge " \
                "the VXLAN device load bridge creates"
            rep.fail("multicast group", f"{uname} is not a member of {g} ({vnis}): floods from other "
                     "hosts do not arrive", fix)


def run(ctx):
    from .cli import Output, table
    rep = Report()
    if check_host(rep, ctx):
        check_pins(rep, ctx)
        for f in available():
            fn = ctx.fn(f)
            if fn.is_loaded():
                check_function(rep, ctx, f)
    bad = [r for r in rep.rows if r["status"] == "fail"]
    text = table(rep.rows, ["status", "check", "detail", "fix"])
    out = Output(rep.rows, text)
    if bad:
        from .cli import emit
        emit(out, getattr(ctx.args, "json", False))
        raise KernelError(f"{len(bad)} problem(s) found: {'; '.join(r['check'] for r in bad)}")
    return out
