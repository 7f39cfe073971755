"""Summaries of repeated measurements, and the Markdown/JSON report."""
from __future__ import annotations

import json
import os
import platform
import statistics


def summary(values: list[float]) -> dict:
    """median, min, max and every round's value (None when nothing ran)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0, "values": []}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "n": len(vals), "values": vals}


def ratio(a: dict | None, b: dict | None) -> float | None:
    """median(a) / median(b)."""
    if not a or not b or not a.get("median") or not b.get("median"):
        return None
    return a["median"] / b["median"]


def fmt(v, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.{digits}f}"


def fmt_summary(s: dict | None, scale: float = 1.0, digits: int = 2) -> str:
    """'median (min-max)'."""
    if not s or s.get("median") is None:
        return "-"
    return (f"{fmt(s['median'] * scale, digits)} "
            f"({fmt(s['min'] * scale, digits)}–{fmt(s['max'] * scale, digits)})")


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |",
           "| " + " | ".join("---" for _ in header) + " |"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def machine() -> dict:
    """What the run ran on: CPU, cores, memory, kernel, load."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu": model, "cores": os.cpu_count(), "memory_mib": mem,
            "kernel": platform.release(), "python": platform.python_version(),
            "loadavg": list(os.getloadavg())}


class CpuSampler:
    """Share of the machine's CPU time spent busy between two samples
    (/proc/stat), to say how loaded a shared machine was."""

    def __init__(self):
        self.start = self._read()

    @staticmethod
    def _read():
        with open("/proc/stat") as f:
            vals = [int(x) for x in f.readline().split()[1:]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
        return sum(vals[:8]), idle

    def busy(self) -> float:
        tot, idle = self._read()
        dt, di = tot - self.start[0], idle - self.start[1]
        return 0.0 if dt <= 0 else 1.0 - di / dt


def write(out_dir: str, data: dict, markdown: str) -> tuple[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    jp, mp = os.path.join(out_dir, "bench.json"), os.path.join(out_dir, "bench.md")
    for path, text in ((jp, json.dumps(data, indent=2, sort_keys=False) + "\n"), (mp, markdown)):
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    return mp, jp
