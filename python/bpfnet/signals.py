"""Stopping long-running commands: SIGTERM, SIGHUP and SIGINT alike.

A long-running command (``demo --keep``, ``ui``, ``stats --watch``, the
agent) runs inside ``stopping()``, in the main thread. The first of these
signals stops it the same way whichever it is (``kill``, ``timeout``,
``systemctl stop``, a closed terminal, Ctrl-C), and the command's cleanups
always run to their end:

    from bpfnet import signals

    with signals.stopping() as stop:
        sim = Sim()
        try:
            build(sim)                  # a signal here raises Stopped ...
            sig = stop.wait()           # ... here it returns: SIGTERM, say
        finally:
            sim.cleanup()               # further signals are held off

- Outside ``wait()``/``sleep()`` and ``deferred()``, the first signal raises
  ``Stopped`` (a ``KeyboardInterrupt``, so a bare ``except Exception`` does
  not swallow it) where the main thread is; ``finally`` blocks and ``with``
  exits run the cleanups.
- ``stop.wait(timeout)`` blocks until a signal and returns its number
  (``None`` at the timeout); this is how a server or a kept simulation
  waits to be stopped, and where a stop is the expected end (exit 0).
- ``stop.sleep(seconds)`` (for loops that take a ``sleep=``): sleeps, and
  raises ``Stopped`` if a signal came.
- ``with stop.deferred():`` a section that must not be cut (a namespace
  created and recorded, a file written and renamed): a signal that comes
  inside raises ``Stopped`` at its end.
- After the first signal, further ones are ignored until ``stopping()``
  exits, so a second Ctrl-C does not cut the cleanup short. The previous
  handlers come back at the exit.
- ``stopping(reload=True)``: SIGHUP does not stop; it makes ``wait()``
  return ``signal.SIGHUP`` (the agent re-reads its file), and
  ``stop.stopped`` stays false.

``active()`` is the innermost ``stopping()`` of this process (or None);
``wait()`` at module level waits on it, or on a temporary one.
"""
from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time

from .errors import BpfnetError

SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)

_stack: list["Stopper"] = []


class Stopped(KeyboardInterrupt):
    """A long-running command was told to stop by signal ``signum``."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    def __str__(self):
        return f"stopped by {self.name}"


def signame(signum: int) -> str:
    return signal.Signals(signum).name


class Interrupted(BpfnetError):
    """A command cut short by a signal before it was done: the CLI prints
    ``bpfnetctl: error: CMD: stopped by SIGTERM ...`` and exits 128 + signum,
    as a shell reports a process killed by it."""

    def __init__(self, signum: int, detail: str = ""):
        super().__init__(f"stopped by {signame(signum)}" + (f"; {detail}" if detail else ""))
        self.signum = signum
        self.exit_code = 128 + signum


class Stopper:
    """What ``stopping()`` yields. See the module's docstring."""

    def __init__(self, reload: bool = False):
        self.reload = reload
        self.signum: int | None = None   # the signal that stopped us
        self.reloads = 0                 # SIGHUPs not yet returned by wait()
        self._waiting = 0
        self._defer = 0
        self._held = False
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._saved: dict[int, object] = {}
        self._saved_fd = -1

    @property
    def stopped(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str | None:
        return signame(self.signum) if self.signum is not None else None

    # --- the handler (main thread, between two bytecodes) -------------------
    def _handle(self, signum, frame):
        if self.signum is not None:
            return                      # already stopping: the cleanup goes on
        if self.reload and signum == signal.SIGHUP:
            self.reloads += 1
            self._poke()
            return
        self.signum = signum
        self._poke()
        if self._defer and not self._waiting:
            self._held = True           # raised at the end of deferred()
        elif not self._waiting:
            raise Stopped(signum)

    def _poke(self):
        with contextlib.suppress(OSError):
            os.write(self._w, b"\0")

    def _drain(self):
        with contextlib.suppress(OSError):
            while os.read(self._r, 64):
                pass

    # --- waiting -------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> int | None:
        """Blocks until a signal (returns its number: the stop's, or
        SIGHUP for a reload) or ``timeout`` seconds (None). Main thread."""
        self._waiting += 1
        try:
            end = None if timeout is None else time.monotonic() + timeout
            while True:
                if self.signum is not None:
                    self._held = False      # this stop is handled: returned
                    return self.signum
                if self.reloads:
                    self.reloads -= 1
                    return signal.SIGHUP
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return None
                # the kernel may deliver the signal to another thread: the
                # wakeup fd (set_wakeup_fd) wakes this select whichever it is;
                # the handler then runs here, in the main thread, before the
                # next check. 1 s at most, in case.
                step = 1.0 if left is None else min(left, 1.0)
                if select.select([self._r], [], [], step)[0]:
                    self._drain()
        finally:
            self._waiting -= 1

    def sleep(self, seconds: float) -> None:
        """Sleeps ``seconds``; raises Stopped if a stop came meanwhile (or before)."""
        self.wait(seconds)
        self.check()

    def check(self) -> None:
        """Raises Stopped if a stop came."""
        if self.signum is not None:
            raise Stopped(self.signum)

    @contextlib.contextmanager
    def deferred(self):
        """A section a signal does not cut: a stop inside raises at its end.
        In another thread (which signals never interrupt) it does nothing."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        self._defer += 1
        try:
            yield self
        finally:
            self._defer -= 1
        if self._held and not self._defer and not self._waiting:
            self._held = False
            self.check()

    # --- install / restore ---------------------------------------------------
    def _install(self):
        for s in SIGNALS:
            self._saved[s] = signal.signal(s, self._handle)
        self._saved_fd = signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)

    def _restore(self):
        signal.set_wakeup_fd(self._saved_fd)
        for s, h in self._saved.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        self._saved.clear()
        for fd in (self._r, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)


@contextlib.contextmanager
def stopping(reload: bool = False):
    """Turns SIGTERM, SIGHUP and SIGINT into one way to stop (see above).
    Must be entered in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("signals.stopping() must run in the main thread")
    st = Stopper(reload=reload)
    st._install()
    _stack.append(st)
    try:
        yield st
    finally:
        _stack.remove(st)
        st._restore()


def active() -> Stopper | None:
    """The innermost ``stopping()`` in force, if any."""
    return _stack[-1] if _stack else None


def wait(timeout: float | None = None) -> int | None:
    """Waits on the active ``stopping()``; without one, on a temporary one."""
    st = active()
    if st is not None:
        return st.wait(timeout)
    with stopping() as st:
        return st.wait(timeout)


@contextlib.contextmanager
def deferred():
    """``active().deferred()``, or nothing when no ``stopping()`` is in force
    (tests, in-process callers)."""
    st = active()
    if st is None:
        yield None
    else:
        with st.deferred():
            yield st
