"""bench/gpu_smoke.py: without CUDA it says "not measured" and succeeds; its checks run on CPU at a tiny size
(--cpu-selftest: the chunked op stands in for fla's kernel), so the GPU run meets code that has run."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "gpu_smoke.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)


def test_without_cuda_it_is_not_measured():
    r = _run()
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "not measured: no CUDA"


@pytest.mark.slow
def test_cpu_selftest_runs_every_check():
    r = _run("--cpu-selftest", "--steps", "20")
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(re.findall(r"^kernel .* ok$", r.stdout, re.M)) == 5          # five members with an fla kernel
    assert len(re.findall(r"^naive .* ok$", r.stdout, re.M)) == 5
    m = re.search(r"loss ([\d.]+) -> ([\d.]+) in 20 steps", r.stdout)
    assert m and float(m.group(2)) < float(m.group(1))
    assert re.search(r"[\d,]+ tokens/s, MFU n/a .*, peak memory [\d,]+ MB", r.stdout)
