"""Shared fixtures. Tests that need root, bpffs or a tool skip with a reason,
except under CI=true, where such a skip is a failure (a green run must not
hide tests that did not run)."""
from __future__ import annotations

import os
import shutil
import sys
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

OBJ_DIR = os.environ.get("BPFNET_OBJ_DIR", os.path.join(ROOT, "build", "bpf"))
IN_CI = os.environ.get("CI") == "true"


def need(cond: bool, reason: str):
    """Skips the test unless ``cond``; under CI=true, fails instead."""
    if cond:
        return
    if IN_CI:
        pytest.fail(f"CI=true and the test cannot run: {reason}")
    pytest.skip(reason)


def need_root():
    need(os.geteuid() == 0, "needs root (CAP_BPF, CAP_NET_ADMIN)")


def need_tool(name: str):
    need(shutil.which(name) is not None, f"needs {name}")


def obj_path(fn: str) -> str:
    p = os.path.join(OBJ_DIR, f"{fn}.bpf.o")
    need(os.path.exists(p), f"{p} not built: run make")
    return p


@pytest.fixture
def root():
    need_root()


@pytest.fixture
def sim():
    """A Sim with a per-run prefix and pin root, always cleaned up."""
    need_root()
    from bpfnet.sim import Sim
    s = Sim(prefix=f"bt{uuid.uuid4().hex[:6]}")
    try:
        yield s
    finally:
        s.cleanup()


@pytest.fixture
def pin_root():
    """A unique pin root on bpffs, removed afterwards."""
    need_root()
    from bpfnet.functions.base import ensure_bpffs
    path = f"/sys/fs/bpf/bpfnet-test-{uuid.uuid4().hex[:8]}"
    ensure_bpffs(path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def loaded_obj(pin_root):
    """loaded_obj("bridge") -> a loaded BpfObject whose maps are pinned in a
    throwaway dir (for BPF_PROG_TEST_RUN)."""
    from bpfnet import libbpf
    objs = []

    def load(fn: str):
        d = os.path.join(pin_root, fn)
        os.makedirs(d, exist_ok=True)
        o = libbpf.BpfObject.open(obj_path(fn), pin_root=d)
        o.load()
        objs.append(o)
        return o
    try:
        yield load
    finally:
        for o in objs:
            o.close()
