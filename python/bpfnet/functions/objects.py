"""Where the precompiled BPF objects are: one place (``BPFNET_OBJ_DIR``).

    os.path.join(obj_dir(), "bridge.bpf.o")
"""
from __future__ import annotations

import os

_REPO_OBJ_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "build", "bpf")
_PKG_OBJ_DIR = os.path.join(os.path.dirname(__file__), "..", "bpf")


def obj_dir() -> str:
    """Where the precompiled objects are: $BPFNET_OBJ_DIR, the checkout's
    build/bpf, or the installed package's bpf/."""
    env = os.environ.get("BPFNET_OBJ_DIR")
    if env:
        return env
    for d in (_REPO_OBJ_DIR, _PKG_OBJ_DIR):
        if os.path.isdir(d):
            return os.path.normpath(d)
    return os.path.normpath(_REPO_OBJ_DIR)


def obj_path(function: str) -> str:
    return os.path.join(obj_dir(), f"{function}.bpf.o")
