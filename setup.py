"""The package build: pyproject.toml says what the package is; this adds the
BPF objects, compiled while the wheel is built, so that a wheel (or
``pip install .``) from a clean checkout carries them.

build_py compiles bpf/<function>.bpf.c into bpfnet/bpf/<function>.bpf.o
and the gateway demo's VLAN tagger (tests/progs/vlan_tagger.bpf.c, which
plays client VLANs where the kernel has no 8021q) into
bpfnet/bpf/demo/vlan_tagger.bpf.o, with the Makefile's flags
(.ci/bpf-cflags: one list for both). ``CLANG=/path/to/clang`` picks the
compiler, as for make. An editable install (``make``'s .venv) compiles
nothing: the checkout runs from build/.
"""
from __future__ import annotations

import glob
import os
import shlex
import shutil
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.egg_info import egg_info

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO_OBJECTS = ("vlan_tagger",)   # test-side programs a demo needs installed
CLANG_HINT = ("install clang and libbpf-dev (Debian: apt-get install clang llvm libbpf-dev), "
              "or set CLANG=/path/to/clang")


def bpf_sources() -> list[tuple[str, str]]:
    """(source, object path inside the package) for every object the wheel carries."""
    out = [(os.path.relpath(src, HERE),
            os.path.join("bpfnet", "bpf", os.path.basename(src)[:-2] + ".o"))
           for src in sorted(glob.glob(os.path.join(HERE, "bpf", "*.bpf.c")))]
    out += [(os.path.join("tests", "progs", f"{n}.bpf.c"),
             os.path.join("bpfnet", "bpf", "demo", f"{n}.bpf.o")) for n in DEMO_OBJECTS]
    return out


def _fail(msg: str):
    sys.stderr.write(f"error: bpfnet: {msg}\n")
    raise SystemExit(1)


def compile_objects(build_lib: str) -> list[str]:
    clang = os.environ.get("CLANG", "clang")
    if shutil.which(clang) is None:
        _fail(f"{clang} not found: the wheel's BPF objects are compiled while it is built; "
              + CLANG_HINT)
    flags = shlex.split(subprocess.run(["sh", os.path.join(".ci", "bpf-cflags"), clang],
                                       cwd=HERE, check=True, capture_output=True,
                                       text=True).stdout)
    outputs = []
    for src, rel in bpf_sources():
        dst = os.path.join(build_lib, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        print(f"compiling {src} -> {rel}")
        r = subprocess.run([clang, *flags, "-c", src, "-o", dst], cwd=HERE,
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.stderr.write(r.stderr)
            _fail(f"compiling {src} failed (exit {r.returncode}); {CLANG_HINT}")
        outputs.append(dst)
    return outputs


class BuildPy(build_py):
    """build_py, then the BPF objects into the build tree."""

    def run(self):
        super().run()
        if not getattr(self, "editable_mode", False):
            self._bpf_outputs = compile_objects(self.build_lib)

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode) + list(getattr(self, "_bpf_outputs", []))


class EggInfo(egg_info):
    """The file list (what an sdist carries) has what the wheel's build
    compiles: the sources, their headers and the flag list."""

    def find_sources(self):
        super().find_sources()
        for pattern in ("bpf/*.bpf.c", "bpf/lib/*.h", "include/*.h", ".ci/bpf-cflags"):
            self.filelist.extend(sorted(glob.glob(pattern)))
        self.filelist.extend(src for src, _ in bpf_sources())
        self.filelist.remove_duplicates()


setup(cmdclass={"build_py": BuildPy, "egg_info": EggInfo})
