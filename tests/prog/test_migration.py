"""A pinned map from another bpfnet version: same layout (another size) is
migrated with its entries; a changed layout is migrated by a converter, or
refused with nothing changed."""
import ctypes
import os
import struct

import pytest

from bpfnet import abi, libbpf
from bpfnet.errors import KernelError
from bpfnet.functions.base import PinDir, Undo
from bpfnet.functions.bridge import Bridge
from bpfnet.maps import Map

BPF_MAP_TYPE_LRU_HASH = 9


def old_fdb(pin_dir, value_size, max_entries, entries):
    os.makedirs(pin_dir, exist_ok=True)
    fd = libbpf.map_create(BPF_MAP_TYPE_LRU_HASH, "br_fdb", 12, value_size, max_entries)
    m = Map(fd, ctypes.c_uint8 * 12, ctypes.c_uint8 * value_size, "br_fdb")
    for k, v in entries:
        m[m.key_type.from_buffer_copy(k)] = m.value_type.from_buffer_copy(v)
    libbpf.obj_pin(fd, os.path.join(pin_dir, "br_fdb"))
    m.close()


def key(i):
    return bytes(abi.BrFdbKey(mac=abi.mac_pack(f"02:00:00:00:00:{i:02x}"), port=7))


def val(i):
    return bytes(abi.BrFdbVal(remote=abi.ip_pack(f"10.0.0.{i}"), vni=10, rx_pkts=i, seen_ns=5))


@pytest.fixture
def bridge(pin_root):
    b = Bridge(PinDir(pin_root, "host"))
    yield b
    b.close()


def load(b):
    with Undo() as undo:
        b.open_object(undo).close()


def test_same_layout_other_size_keeps_entries(bridge):
    old_fdb(bridge.dir, 48, 1024, [(key(i), val(i)) for i in range(1, 6)])
    load(bridge)
    fdb = bridge.map("br_fdb")
    assert fdb.max_entries == abi.BR_FDB_MAX
    rows = {bytes(k): v for k, v in fdb.items()}
    assert len(rows) == 5
    assert rows[key(3)].rx_pkts == 3 and str(abi.ip_unpack(rows[key(3)].remote)) == "10.0.0.3"
    assert not os.path.exists(os.path.join(bridge.dir, "br_fdb_old"))


def test_changed_layout_without_converter_is_refused_and_changes_nothing(bridge):
    old_fdb(bridge.dir, 40, 1024, [(key(1), val(1)[:40])])
    before = sorted(os.listdir(bridge.dir))
    with pytest.raises(KernelError, match="pinned map br_fdb .* value 40 B.* value 48 B.* no migration"):
        load(bridge)
    assert sorted(os.listdir(bridge.dir)) == before
    fd = libbpf.obj_get(os.path.join(bridge.dir, "br_fdb"))
    assert libbpf.map_info(fd).value_size == 40
    os.close(fd)


def test_changed_layout_with_converter(bridge, monkeypatch):
    """A v0 br_fdb value without tx_pkts (40 bytes): remote, vni, pad, rx, seen."""
    def v0_to_v1(k, v):
        remote, vni, pad, rx, seen = struct.unpack("=16sIIQQ", v)
        return k, bytes(abi.BrFdbVal(remote=abi.BpfnetIP.from_buffer_copy(remote), vni=vni,
                                     rx_pkts=rx, tx_pkts=0, seen_ns=seen))
    monkeypatch.setattr(Bridge, "migrations", {("br_fdb", 12, 40): v0_to_v1})
    v0 = struct.pack("=16sIIQQ", bytes(abi.ip_pack("10.0.0.9")), 10, 0, 77, 123)
    old_fdb(bridge.dir, 40, 1024, [(key(9), v0)])
    load(bridge)
    v = bridge.map("br_fdb")[abi.BrFdbKey.from_buffer_copy(key(9))]
    assert (str(abi.ip_unpack(v.remote)), v.vni, v.rx_pkts, v.tx_pkts, v.seen_ns) == \
        ("10.0.0.9", 10, 77, 0, 123)
