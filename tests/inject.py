"""The test-side tunnel injector (tests/progs/tunnel_inject.bpf.c):
BPF_PROG_TEST_RUN cannot hand a program tunnel metadata, so this object sets
it (VNI and sender from inject_cfg) and tail-calls the program under test.

    inj = Injector(obj.prog_fd("bridge_ingress"))
    r = inj.run(frame, vni=10, remote="10.0.0.2")
"""
import ctypes
import os

from conftest import OBJ_DIR, need

from bpfnet import abi, libbpf
from bpfnet.abi import InjectCfg
from bpfnet.maps import Map

U32 = ctypes.c_uint32


class Injector:
    def __init__(self, target_prog_fd: int):
        path = os.path.join(OBJ_DIR, "..", "tests", "tunnel_inject.bpf.o")
        need(os.path.exists(path), f"{path} not built: run make")
        self.obj = libbpf.BpfObject.open(path)
        self.obj.load()
        self.cfg = Map(self.obj.map_fd("inject_cfg"), U32, InjectCfg, owned=False)
        libbpf.update(self.obj.map_fd("inject_progs"), U32(0), ctypes.c_int(target_prog_fd))
        self.fd = self.obj.prog_fd("inject_tunnel")

    def set(self, vni: int, remote: str) -> None:
        self.cfg[U32(0)] = InjectCfg(remote=abi.ip_pack(remote), vni=vni, ipv6=int(":" in remote))

    def run(self, frame: bytes, vni: int, remote: str):
        """The frame as received from ``remote`` on ``vni``, through the target."""
        self.set(vni, remote)
        return libbpf.prog_test_run(self.fd, frame, ctx=abi.SkBuff())

    def close(self):
        self.obj.close()
