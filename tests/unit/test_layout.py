"""abi.py mirrors vs the BTF of the built objects: sizes, field offsets, enums.
The functions' objects (build/bpf) carry abi.MIRRORS, the test-side objects
(build/tests) abi.TEST_MIRRORS. Needs the objects and bpftool, not root."""
import ctypes
import glob
import json
import os
import subprocess

import pytest

from conftest import OBJ_DIR, need, need_tool

from bpfnet import abi


TEST_OBJ_DIR = os.path.join(OBJ_DIR, "..", "tests")


def btf_types(obj_dir=OBJ_DIR):
    need_tool("bpftool")
    objs = sorted(glob.glob(os.path.join(obj_dir, "*.bpf.o")))
    need(bool(objs), f"no objects built in {obj_dir}: run make")
    types = {}
    for o in objs:
        out = subprocess.run(["bpftool", "btf", "dump", "file", o, "-j"], check=True,
                             capture_output=True, text=True).stdout
        for t in json.loads(out)["types"]:
            if t.get("name") and t["kind"] in ("STRUCT", "ENUM"):
                types.setdefault(t["name"], []).append((o, t))
    return types


@pytest.fixture(scope="module")
def types():
    return btf_types()


@pytest.fixture(scope="module")
def test_types():
    return btf_types(TEST_OBJ_DIR)


def check_struct(types, name, cls):
    assert name in types, f"struct {name} not in any object's BTF"
    for obj, t in types[name]:
        assert t["size"] == ctypes.sizeof(cls), f"{name} size in {obj}"
        fields = [f[0] for f in cls._fields_]
        for m in t["members"]:
            if not m["name"] or m["name"] == "(anon)":
                continue  # anonymous unions of the kernel's structs
            assert m["name"] in fields, f"{name}.{m['name']} missing in abi ({obj})"
            assert m["bits_offset"] % 8 == 0
            assert getattr(cls, m["name"]).offset == m["bits_offset"] // 8, \
                f"{name}.{m['name']} offset in {obj}"


@pytest.mark.parametrize("name", sorted(abi.MIRRORS))
def test_struct_layout(types, name):
    check_struct(types, name, abi.MIRRORS[name])


@pytest.mark.parametrize("name", sorted(abi.TEST_MIRRORS))
def test_test_side_struct_layout(test_types, name):
    check_struct(test_types, name, abi.TEST_MIRRORS[name])


@pytest.mark.parametrize("name", sorted(abi.ENUMS) or ["(none)"])
def test_enum_values(types, name):
    if name == "(none)":
        return  # no enum is shared yet
    assert name in types, f"enum {name} not in BTF (key the stats map by it)"
    for obj, t in types[name]:
        values = {v["name"]: v["val"] for v in t["values"]}
        want = abi.ENUMS[name]
        assert [values.get(n) for n in want] == list(range(len(want))), obj
        # every counter but the __MAX sentinel is mirrored
        assert set(values) - set(want) <= {n for n in values if n.startswith("__")}, obj


def test_struct_formats_match_the_mirrors():
    assert abi.BR_FDB_KEY.size == ctypes.sizeof(abi.BrFdbKey)
    assert abi.BR_FDB_VAL.size == ctypes.sizeof(abi.BrFdbVal)
    k = abi.BrFdbKey(mac=abi.mac_pack("02:00:00:00:00:07"), port=9)
    v = abi.BrFdbVal(remote=abi.ip_pack("10.0.0.2"), vni=10, rx_pkts=1, tx_pkts=2, seen_ns=3)
    assert abi.BR_FDB_KEY.unpack(bytes(k)) == (bytes.fromhex("020000000007"), 9)
    assert abi.BR_FDB_VAL.unpack(bytes(v)) == (bytes(v.remote), 10, 0, 1, 2, 3)


def test_local_formats_match_the_mirrors():
    assert abi.BR_LOCAL_KEY.size == ctypes.sizeof(abi.BrLocalKey) == 12
    assert abi.BR_LOCAL_VAL.size == ctypes.sizeof(abi.BrLocalVal) == 16
    k = abi.BrLocalKey(vni=10, mac=abi.mac_pack("02:00:00:00:00:07"))
    v = abi.BrLocalVal(seen_ns=5, first_ns=3)
    assert abi.BR_LOCAL_KEY.unpack(bytes(k)) == (10, bytes.fromhex("020000000007"))
    assert abi.BR_LOCAL_VAL.unpack(bytes(v)) == (5, 3)


def test_neigh_formats_match_the_mirrors():
    assert abi.BR_NEIGH_KEY.size == ctypes.sizeof(abi.BrNeighKey)
    assert abi.BR_NEIGH_VAL.size == ctypes.sizeof(abi.BrNeighVal)
    k = abi.BrNeighKey(vni=10, ip=abi.ip_pack("10.0.0.2"))
    v = abi.BrNeighVal(mac=abi.mac_pack("02:00:00:00:00:07"), flags=6, replies=2, seen_ns=3)
    assert abi.BR_NEIGH_KEY.unpack(bytes(k)) == (10, bytes(k.ip))
    assert abi.BR_NEIGH_VAL.unpack(bytes(v)) == (bytes.fromhex("020000000007"), 6, 2, 3)
