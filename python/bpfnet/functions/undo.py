"""Undo: the compensating actions of a command that may fail half-way.

    with Undo() as undo:
        vx = net.add_vxlan(...)
        undo.push(net.delete, vx)     # run (in reverse) only if the block raises
"""
from __future__ import annotations

import contextlib


class Undo:
    """A stack of compensating actions: a failing command runs them in
    reverse, so it leaves the system as it was."""

    def __init__(self):
        self._actions = []

    def push(self, fn, *args, **kw):
        self._actions.append((fn, args, kw))

    def run(self):
        while self._actions:
            fn, args, kw = self._actions.pop()
            with contextlib.suppress(Exception):
                fn(*args, **kw)

    def clear(self):
        self._actions.clear()

    def __enter__(self):
        return self

    def __exit__(self, typ, exc, tb):
        if typ is not None:
            self.run()
        return False
