"""Pin directories: ``<root>/<ns>/<function>/``, and the lock that
serializes commands on one namespace.

    pins = PinDir("/sys/fs/bpf/bpfnet", "host")
    with pins.locked():
        ...                       # pins.function_dir("bridge") holds its pins
"""
from __future__ import annotations

import contextlib
import fcntl
import os

from .bpffs import check_bpffs, ensure_bpffs

DEFAULT_PIN_ROOT = "/sys/fs/bpf/bpfnet"


def unlink_quiet(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class PinDir:
    """``<root>/<ns>``: the pins of every function of one namespace."""

    def __init__(self, root: str, ns: str = "host"):
        self.root = os.path.abspath(root)
        self.ns = ns
        self.path = os.path.join(self.root, ns)

    def function_dir(self, fn: str) -> str:
        return os.path.join(self.path, fn)

    @contextlib.contextmanager
    def locked(self, create: bool = True):
        """Serializes commands on this namespace's instances (flock on its
        pin dir). A killed holder releases the lock with its last fd.
        Without ``create`` (read-only commands) nothing is made, but a root
        off bpffs is refused all the same."""
        if create:
            ensure_bpffs(self.root)
            os.makedirs(self.path, mode=0o700, exist_ok=True)
            os.chmod(self.root, 0o700)
            os.chmod(self.path, 0o700)
        else:
            check_bpffs(self.root)
            if not os.path.isdir(self.path):
                yield
                return
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def loaded(self) -> list[str]:
        if not os.path.isdir(self.path):
            return []
        return sorted(d for d in os.listdir(self.path)
                      if os.path.isdir(os.path.join(self.path, d)))

    def remove_if_empty(self) -> None:
        for d in (self.path, self.root):
            try:
                os.rmdir(d)
            except OSError:
                return
