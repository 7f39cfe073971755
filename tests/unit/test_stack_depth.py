"""Every program's combined stack (its frame plus the deepest chain of
BPF-to-BPF calls under it) fits 512 bytes as Debian's 6.1 verifier counts
it: each frame rounded up to 32 bytes. 6.18 rounds JITed frames to 16 only,
so a program 6.1 refuses ("combined stack size of 3 calls is 544. Too
large") loads on the host; this catches it before the VM suite does.

Read from the objects with llvm-objdump: a frame is the deepest r10 offset
its instructions use; a call is an instruction with opcode 0x85 and
src_reg 1 (BPF_PSEUDO_CALL), pc-relative within its section, or through a
relocation against .text (the target then is (imm + 1) * 8 bytes into it).
Root-free."""
import glob
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OBJS = sorted(glob.glob(os.path.join(ROOT, "build", "bpf", "*.bpf.o")))
MAX_STACK = 512
INSN = re.compile(r"^\s*(\d+):\s+((?:[0-9a-f]{2}\s){8})(.*)$")
FUNC = re.compile(r"^([0-9a-f]+) <([A-Za-z_][A-Za-z0-9_]*)>:$")
SYMBOL = re.compile(r"^[0-9a-f]+ [lg]\s+F (\S+)\s+[0-9a-f]+ (\S+)$")
SECTION = re.compile(r"^Disassembly of section (\S+):$")
RELOC = re.compile(r"R_BPF_64_32\s+(\S+)")


def objdump() -> str:
    for name in ("llvm-objdump", "llvm-objdump-14", "llvm-objdump-16"):
        if shutil.which(name):
            return name
    pytest.fail("llvm-objdump not found (Debian: llvm)")


def functions(obj: str) -> dict:
    """{(section, name): {"start", "stack", "calls": [(section, insn index)]}}"""
    out = subprocess.run([objdump(), "-d", "-r", obj], capture_output=True, text=True,
                         check=True).stdout
    syms = subprocess.run([objdump(), "-t", obj], capture_output=True, text=True,
                          check=True).stdout
    names = {m.groups() for m in map(SYMBOL.match, syms.splitlines()) if m}
    funcs, cur, sec, last_call = {}, None, None, None
    for line in out.splitlines():
        if m := SECTION.match(line):
            sec = m.group(1)
            continue
        if (m := FUNC.match(line)) and (sec, m.group(2)) in names:  # not a local label
            cur = funcs.setdefault((sec, m.group(2)), {"start": int(m.group(1), 16) // 8,
                                                       "stack": 0, "calls": []})
            continue
        if m := RELOC.search(line):
            if last_call is not None and m.group(1) == ".text":
                # the call goes into .text: (imm + 1) insns from its start
                cur["calls"][-1] = (".text", last_call + 1)
            last_call = None
            continue
        m = INSN.match(line)
        if not m or cur is None:
            continue
        idx, raw, text = int(m.group(1)), bytes.fromhex("".join(m.group(2).split())), m.group(3)
        for off in re.findall(r"r10 - (\d+)", text):
            cur["stack"] = max(cur["stack"], int(off))
        last_call = None
        if raw[0] == 0x85 and raw[1] >> 4 == 1:  # BPF_PSEUDO_CALL
            imm = int.from_bytes(raw[4:8], "little", signed=True)
            cur["calls"].append((sec, idx + imm + 1))
            last_call = imm
    return funcs


def combined(funcs: dict, key, seen=()) -> int:
    f = funcs[key]
    frame = -(-max(f["stack"], 1) // 32) * 32
    starts = {(s, v["start"]): k for k, v in funcs.items() for s in [k[0]]}
    deepest = 0
    for target in f["calls"]:
        callee = starts.get(target)
        assert callee is not None, f"{key[1]}: a call to {target} that starts no function"
        assert callee not in seen, f"{key[1]}: recursion through {callee[1]}"
        deepest = max(deepest, combined(funcs, callee, seen + (key,)))
    return frame + deepest


@pytest.mark.parametrize("obj", OBJS, ids=[os.path.basename(o) for o in OBJS])
def test_every_program_fits_the_stack_as_6_1_counts_it(obj):
    funcs = functions(obj)
    progs = {k: combined(funcs, k) for k in funcs if k[0] != ".text"}
    assert progs, f"no programs in {obj}"
    too_deep = {k[1]: v for k, v in progs.items() if v > MAX_STACK}
    assert too_deep == {}, f"combined stack over {MAX_STACK} bytes: {too_deep}"


def test_objects_are_built():
    assert {os.path.basename(o) for o in OBJS} >= {"bridge.bpf.o", "mesh.bpf.o",
                                                    "gateway.bpf.o", "monitor.bpf.o"}
