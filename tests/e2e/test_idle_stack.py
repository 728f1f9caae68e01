"""An idle embedded stack costs ~nothing: its processes together stay far below a core.

Before the long-poll gateway every idle service spun against the embedded broker at 18-19 % of a
core each (the whole stack: about two cores). The bound here has generous slack over the measured
figure (bench/idle.py: about 3 % of one core in total) so that a shared CI machine does not flake.
"""
import json
import subprocess
import sys
import time

import pytest

from lab import proc_cpu
from tests.support.cli_env import clean_env

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def archlab(*args, env, timeout=240):
    return subprocess.run([sys.executable, "-m", "services.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_idle_stack_does_not_burn_cpu(tmp_path):
    env = clean_env("ARCHLAB_")
    env["ARCHLAB_DATA_DIR"] = str(tmp_path / "lab")
    up = archlab("up", env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        processes = json.loads((tmp_path / "lab" / "stack.json").read_text())["processes"]
        assert "kafka-gateway" in processes
        time.sleep(5)
        window = proc_cpu.measure(processes, 20)
        report = "\n".join(window.lines())
        assert window.total < 15.0, f"idle stack used {window.total:.1f} % of a core:\n{report}"
        assert max(window.by_name.values()) < 6.0, report
    finally:
        down = archlab("down", env=env)
        assert down.returncode == 0, down.stdout + down.stderr
