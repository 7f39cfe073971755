"""Small-packet UDP load: a connected socket and sendmmsg(2) in batches.

    tx = Blaster(sock, payload=18)        # 18 B payload: a 64-byte frame with FCS
    sent = tx.run(seconds=3)

One syscall sends BATCH datagrams, so the sender's own per-packet cost is
the kernel's, not Python's. On veth every hop (tenant veth, bridges, VXLAN,
the fabric) runs in the sender's softirq on the sender's CPU: frames per
second delivered is the inverse of the whole path's cost per frame.
"""
from __future__ import annotations

import ctypes
import errno
import time

from .. import libc
from ..libc import iovec, mmsghdr

BATCH = 256


class Blaster:
    def __init__(self, sock, payload: int = 18, batch: int = BATCH):
        self.sock = sock
        self.batch = batch
        self.buf = ctypes.create_string_buffer(b"\xbf" * payload, payload)
        self.iov = iovec(ctypes.cast(self.buf, ctypes.c_void_p), payload)
        self.msgs = (mmsghdr * batch)()
        for m in self.msgs:
            m.msg_hdr.msg_iov = ctypes.pointer(self.iov)
            m.msg_hdr.msg_iovlen = 1

    def run(self, seconds: float) -> int:
        """Sends for ``seconds``; returns datagrams handed to the kernel."""
        fd = self.sock.fileno()
        sent = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            n = libc.sendmmsg(fd, self.msgs, self.batch, 0)
            if n < 0:
                err = ctypes.get_errno()
                if err in (errno.ENOBUFS, errno.EAGAIN, errno.EINTR, errno.ECONNREFUSED):
                    continue
                raise OSError(err, f"sendmmsg: {errno.errorcode.get(err, err)}")
            sent += n
        return sent
