"""bpffs: is a pin root on it, mounting it where it belongs, and the one way
it goes missing (``ip netns exec`` remounts /sys).

    check_bpffs(root)    # read-only commands: refuse a root off bpffs, change nothing
    ensure_bpffs(root)   # commands that pin: the same, mounting /sys/fs/bpf if absent
"""
from __future__ import annotations

import os

from .. import libc
from ..errors import ConfigError, KernelError

BPF_FS_MAGIC = 0xCAFE4A11
BPFFS = "/sys/fs/bpf"


def fs_type(path: str) -> int | None:
    return libc.fs_magic(path)


def netns_exec_name() -> str | None:
    """The namespace name if this process runs under `ip netns exec`, which
    remounts /sys (a sysfs whose source is the namespace name) and so hides
    the host's /sys/fs/bpf."""
    try:
        names = set(os.listdir("/var/run/netns"))
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields, rfields = left.split(), right.split()
                if len(fields) > 4 and fields[4] == "/sys" and rfields[:1] == ["sysfs"] \
                        and len(rfields) > 1 and rfields[1] in names:
                    return rfields[1]
    except OSError:
        pass
    return None


def _nearest(path: str) -> str:
    while not os.path.exists(path):
        path = os.path.dirname(path) or "/"
    return path


def _under_bpffs_mountpoint(root: str) -> bool:
    return root == BPFFS or root.startswith(BPFFS + "/")


def check_bpffs(root: str) -> bool:
    """Refuses (ConfigError) a pin root that is not on bpffs, changing
    nothing: its nearest existing ancestor must be on bpffs, or the root
    lies under /sys/fs/bpf where bpffs is not mounted yet (then False: a
    load mounts it). True when the root is on bpffs."""
    root = os.path.abspath(root)
    if fs_type(_nearest(root)) == BPF_FS_MAGIC:
        return True
    if _under_bpffs_mountpoint(root) and fs_type(BPFFS) != BPF_FS_MAGIC:
        hidden = netns_exec_name()
        if hidden:
            raise ConfigError(f"bpffs is hidden under `ip netns exec {hidden}` (it remounts /sys): "
                              f"pins would vanish; use bpfnetctl --netns {hidden} instead")
        return False
    raise ConfigError(f"pin root {root} is not on a bpf filesystem")


def ensure_bpffs(root: str) -> None:
    """Makes sure ``root`` lies on bpffs, mounting /sys/fs/bpf if absent."""
    if check_bpffs(root):
        return
    os.makedirs(BPFFS, exist_ok=True)
    try:
        libc.mount(b"bpf", BPFFS.encode(), b"bpf")
    except OSError as e:
        raise KernelError(f"mount bpffs on {BPFFS}: {e.strerror}") from None
