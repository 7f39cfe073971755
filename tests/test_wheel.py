"""A wheel built from a clean checkout carries the BPF objects and works
installed, away from the checkout.

HEAD is exported as a fresh clone has it (`git archive`: no build/, no
.venv), built with pip as a user would (`pip wheel .`: setup.py's build_py
compiles the objects with the Makefile's flags) and installed into a fresh
venv in a temporary directory (dependencies from the configured index). The
installed bpfnetctl, run from there, prints its version and loads, shows and
unloads the bridge in a namespace (pins in the run's own dir on bpffs).
Without clang the build fails with one line that says so. bpfnet.bench,
which needs the checkout's test-side objects, is not in the wheel; the
gateway demo's VLAN tagger is.
"""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import tomllib
import zipfile

import pytest

from conftest import ROOT, need, need_root, need_tool

EM_BPF = 247
PYPROJECT = os.path.join(ROOT, "pyproject.toml")


def clean_env() -> dict:
    """The caller's environment without anything pointing into the checkout."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "BPFNET_OBJ_DIR", "BPFNET_PIN_ROOT")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not p.startswith(ROOT))
    return env


def sh(argv, cwd, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env or clean_env(), capture_output=True, text=True,
                          timeout=timeout)


def export_head(dest: str) -> str:
    """HEAD's tracked files in ``dest`` (what a fresh clone has)."""
    need_tool("git")
    need(os.path.isdir(os.path.join(ROOT, ".git")), "needs the checkout's git repository")
    os.makedirs(dest)
    archive = subprocess.run(["git", "-C", ROOT, "archive", "--format=tar", "HEAD"],
                             capture_output=True, check=True, timeout=60).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True, timeout=60)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """{"src", "wheel", "venv", "bin", "tmp"}: HEAD built into a wheel and
    installed in a fresh venv."""
    need_tool("clang")
    tmp = str(tmp_path_factory.mktemp("wheel"))
    src = export_head(os.path.join(tmp, "src"))
    venv = os.path.join(tmp, "venv")
    r = sh([sys.executable, "-m", "venv", venv], cwd=tmp)
    assert r.returncode == 0, r.stderr
    pip = [os.path.join(venv, "bin", "python"), "-m", "pip", "--disable-pip-version-check"]
    r = sh(pip + ["wheel", "--no-deps", "-w", os.path.join(tmp, "dist"), src], cwd=tmp)
    assert r.returncode == 0, r.stdout + r.stderr
    wheels = glob.glob(os.path.join(tmp, "dist", "bpfnet-*.whl"))
    assert len(wheels) == 1, wheels
    r = sh(pip + ["install", "-q", wheels[0]], cwd=tmp)
    assert r.returncode == 0, r.stdout + r.stderr
    return {"src": src, "wheel": wheels[0], "venv": venv, "tmp": tmp,
            "bin": os.path.join(venv, "bin"), "pip": pip}


def test_wheel_carries_the_objects_and_no_bench(installed):
    functions = sorted(os.path.basename(p)[:-len(".bpf.c")]
                       for p in glob.glob(os.path.join(installed["src"], "bpf", "*.bpf.c")))
    assert {"bridge", "mesh", "gateway", "monitor"} <= set(functions)
    with zipfile.ZipFile(installed["wheel"]) as z:
        names = set(z.namelist())
        objects = sorted(n for n in names if n.endswith(".bpf.o"))
        assert objects == sorted([f"bpfnet/bpf/{f}.bpf.o" for f in functions]
                                 + ["bpfnet/bpf/demo/vlan_tagger.bpf.o"])
        for n in objects:
            head = z.read(n)[:20]
            assert head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == EM_BPF, n
    assert not [n for n in names if n.startswith("bpfnet/bench/")]
    assert "bpfnet/ui/static/index.html" in names and "bpfnet/cli.py" in names


def test_installed_version(installed):
    with open(PYPROJECT, "rb") as f:
        version = tomllib.load(f)["project"]["version"]
    r = sh([os.path.join(installed["bin"], "bpfnetctl"), "--version"], cwd=installed["tmp"])
    assert (r.returncode, r.stdout, r.stderr) == (0, f"bpfnetctl {version}\n", "")


def test_installed_runs_from_the_venv_alone(installed):
    """The package, its objects and the demo's tagger come from the venv,
    not the checkout; the bench is not there, and says so."""
    py = os.path.join(installed["bin"], "python")
    r = sh([py, "-c", "import bpfnet, os\n"
            "from bpfnet.functions.base import obj_dir\n"
            "from bpfnet.demos.gateway import tagger_path\n"
            "print(bpfnet.__file__); print(obj_dir()); print(tagger_path(), "
            "os.path.exists(tagger_path()))"], cwd=installed["tmp"])
    assert r.returncode == 0, r.stderr
    pkg, objs, tagger = r.stdout.splitlines()
    site = os.path.join(installed["venv"], "lib")
    assert pkg.startswith(site) and objs.startswith(site), r.stdout
    assert tagger.startswith(site) and tagger.endswith("bpf/demo/vlan_tagger.bpf.o True"), r.stdout
    r = sh([py, "-m", "bpfnet.bench", "--quick"], cwd=installed["tmp"])
    assert r.returncode == 1 and "No module named bpfnet.bench" in r.stderr, r.stderr


def test_installed_load_status_unload_bridge(installed, sim):
    need_root()
    h = sim.ns("h0")
    sim.veth(h, "eth0", sim.ns("h1"), "eth0")
    sim.addr(h, "eth0", "10.95.0.1/24")
    ctl = [os.path.join(installed["bin"], "bpfnetctl"), "--pin-root", sim.pin_root, "--netns", h]

    def run(*argv):
        r = sh(ctl + list(argv), cwd=installed["tmp"], timeout=60)
        assert r.returncode == 0, (argv, r.stdout, r.stderr)
        return r.stdout
    run("load", "bridge", "--underlay", "eth0")
    st = json.loads(run("status", "--json"))
    br = st["functions"]["bridge"]
    assert br["device"] == "vxlan0"
    assert {a["device"] for a in br["attach"]} == {"vxlan0"}
    pin_dir = os.path.join(sim.pin_root, h, "bridge")
    assert "br_fdb" in os.listdir(pin_dir)
    run("unload", "bridge")
    assert not os.path.exists(pin_dir)
    with sim.ipr(h) as ipr:
        assert ipr.link_lookup(ifname="vxlan0") == []


def test_build_without_clang_fails_in_one_line(installed):
    env = {**clean_env(), "CLANG": "/nonexistent/clang"}
    r = sh(installed["pip"] + ["wheel", "--no-deps", "-w", os.path.join(installed["tmp"], "nc"),
                               installed["src"]], cwd=installed["tmp"], env=env)
    assert r.returncode != 0
    line = ("error: bpfnet: /nonexistent/clang not found: the wheel's BPF objects are compiled "
            "while it is built; install clang and libbpf-dev (Debian: apt-get install clang "
            "llvm libbpf-dev), or set CLANG=/path/to/clang")
    # pip indents the backend's output
    assert line in [ln.strip() for ln in (r.stdout + r.stderr).splitlines()], r.stdout + r.stderr
    assert not glob.glob(os.path.join(installed["tmp"], "nc", "*.whl"))


def test_sdist_builds_a_wheel_with_the_objects(installed):
    """An sdist (what `python -m build` makes first) carries the sources, so
    the wheel built from it has the objects too."""
    import tarfile
    py = os.path.join(installed["bin"], "python")
    out = os.path.join(installed["tmp"], "sdist")
    r = sh([py, "setup.py", "-q", "sdist", "-d", out], cwd=installed["src"])
    assert r.returncode == 0, r.stdout + r.stderr
    (sdist,) = glob.glob(os.path.join(out, "bpfnet-*.tar.gz"))
    with tarfile.open(sdist) as t:
        t.extractall(out)
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    assert {"bpf/bridge.bpf.c", "bpf/lib/common.h", "include/vmlinux.h", ".ci/bpf-cflags",
            "tests/progs/vlan_tagger.bpf.c", "setup.py"} <= names
    (tree,) = [d for d in glob.glob(os.path.join(out, "bpfnet-*")) if os.path.isdir(d)]
    r = sh(installed["pip"] + ["wheel", "--no-deps", "-w", os.path.join(out, "dist"), tree],
           cwd=installed["tmp"])
    assert r.returncode == 0, r.stdout + r.stderr
    (whl,) = glob.glob(os.path.join(out, "dist", "bpfnet-*.whl"))
    with zipfile.ZipFile(whl) as z:
        objects = sorted(n for n in z.namelist() if n.endswith(".bpf.o"))
    with zipfile.ZipFile(installed["wheel"]) as z:
        assert objects == sorted(n for n in z.namelist() if n.endswith(".bpf.o"))


def test_installed_demo_gateway(installed):
    """The demo that needs a test-side object (the VLAN tagger, where the
    kernel has no 8021q) runs installed."""
    need_root()
    import uuid
    from bpfnet.sim import Sim
    prefix = f"wg{uuid.uuid4().hex[:6]}"
    try:
        r = sh([os.path.join(installed["bin"], "bpfnetctl"), "demo", "gateway", "--prefix", prefix],
               cwd=installed["tmp"], timeout=300)
    finally:
        Sim(prefix=prefix).cleanup()
    assert r.returncode == 0 and r.stderr == "", r.stdout + r.stderr
    assert r.stdout.splitlines()[-1].endswith(": PASS"), r.stdout


def test_installed_agent_writes_its_unit(installed):
    """The systemd unit ships in the wheel: `agent --install-unit` of the
    installed bpfnetctl writes it with that bpfnetctl in ExecStart."""
    dest = os.path.join(installed["tmp"], "units")
    os.makedirs(dest, exist_ok=True)
    bpfnetctl = os.path.join(installed["bin"], "bpfnetctl")
    r = sh([bpfnetctl, "agent", "--install-unit", "--dest", dest], cwd=installed["tmp"])
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    with open(os.path.join(dest, "bpfnet-agent.service")) as f:
        lines = f.read().splitlines()
    assert f"ExecStart={bpfnetctl} agent -f /etc/bpfnet/bpfnet.toml --metrics 127.0.0.1:9431" in lines
