"""CPU time of processes from /proc (utime + stime): the sandbox's usage of a program's process tree
(lab/sandbox.py TreeUsage), the benches' per-service figures, tests.

`top` shows an instant; the lab's figures are averages over a window: sample the CPU seconds of
a set of processes (and their descendants) twice and divide by the wall time between.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds used so far) of a live process, else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def descendants(roots: dict[str, int]) -> dict[int, str]:
    """Every live process below `roots` (name -> pid), labelled by its root's name (pid -> name)."""
    parents = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None:
                parents[int(entry.name)] = st[0]
    label = {pid: name for name, pid in roots.items() if pid in parents}
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if pid not in label and ppid in label:
                label[pid] = label[ppid]
                changed = True
    return label


def cpu_seconds(pids: dict[int, str]) -> dict[int, float]:
    out = {}
    for pid in pids:
        st = _stat(pid)
        if st is not None:
            out[pid] = st[1]
    return out


@dataclass
class CpuWindow:
    wall_s: float
    by_name: dict[str, float]       # name -> % of one core over the window (processes + descendants)

    @property
    def total(self) -> float:
        return sum(self.by_name.values())

    def lines(self) -> list[str]:
        rows = sorted(self.by_name.items(), key=lambda kv: -kv[1])
        return [f"  {name:22} {pct:6.2f} % of a core" for name, pct in rows]


def measure(roots: dict[str, int], seconds: float) -> CpuWindow:
    """Average CPU use of `roots` (name -> pid) and their descendants over `seconds`."""
    labels = descendants(roots)
    before = cpu_seconds(labels)
    t0 = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    labels.update(descendants(roots))     # children born in the window count from zero
    after = cpu_seconds(labels)
    by_name: dict[str, float] = {name: 0.0 for name in roots}
    for pid, name in labels.items():
        if pid in after:
            by_name[name] += 100.0 * (after[pid] - before.get(pid, 0.0)) / wall
    return CpuWindow(wall, by_name)
