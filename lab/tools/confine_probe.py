"""A confined child that tries what generated code must not do, and reports what it could do.

    python -m lab.tools.confine_probe PROBE.json     (run under bwrap by `archlab doctor`)

PROBE.json names a secret file, an environment variable the parent holds, directories outside the
scratch and a loopback port the parent listens on. The child prints one JSON line: for each attempt,
whether it succeeded in the child's view. A write may succeed in the child's own throw-away root, so the
parent judges writes by what appears on the host: only the scratch file may (the positive control).
"""
from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path


def _try(fn) -> tuple[bool, str]:
    try:
        return True, str(fn())[:200]
    except Exception as e:  # noqa: BLE001 - every failure is the answer we want
        return False, f"{type(e).__name__}: {e}"[:200]


def _write(path: Path) -> str:
    path.write_text("probe")   # left in place: the parent looks for it on the host's side, then removes it
    return f"wrote {path}"


def _connect(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        return f"connected to 127.0.0.1:{port}"


def main(spec: dict) -> dict:
    scratch = Path(os.getcwd())
    out = {
        "read_secret": _try(lambda: Path(spec["secret_file"]).read_text()),
        "parent_env": (spec["env_marker"] in os.environ, os.environ.get(spec["env_marker"], "absent")),
        "write_scratch": _try(lambda: _write(scratch / spec["file_name"])),
        "network": _try(lambda: _connect(int(spec["port"]))),
    }
    for i, d in enumerate(spec["outside_dirs"]):
        out[f"write_outside_{i}"] = _try(lambda d=d: _write(Path(d) / spec["file_name"]))
    return out


if __name__ == "__main__":
    print(json.dumps(main(json.loads(Path(sys.argv[1]).read_text()))), flush=True)
