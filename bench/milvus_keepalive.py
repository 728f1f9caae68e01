"""Does a client idle against milvus-lite get GOAWAY "too_many_pings"? pymilvus' defaults against ours, side by side.

    python bench/milvus_keepalive.py [--seconds 420]

Starts one milvus-lite server per arm, opens a VectorStore, inserts a row, waits `--seconds` with no call in
flight, then searches. Prints, per arm, how many GOAWAY lines gRPC wrote and whether the search answered.
The server's gRPC policy refuses pings more often than every 5 minutes, so the wait must exceed 300 s:
measured 2026-12-02, 420 s: pymilvus' defaults (a ping every 10 s, also without calls) 2 GOAWAY, ours 0.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

ARM = """
import sys, time
from pathlib import Path
from services.common import vectors
from services.common.embedded import free_port, milvus_process, stop_pid, wait_port
if sys.argv[1] == "pymilvus-defaults":
    vectors.GRPC_OPTIONS = {}
port = free_port()
child = milvus_process(Path(sys.argv[3]), port)
child.start()
wait_port(port, 60, child.proc, "milvus-lite server")
try:
    store = vectors.VectorStore(f"http://127.0.0.1:{port}", "keepalive", dim=4)
    store.upsert(["a"], [[1.0, 0.0, 0.0, 0.0]])
    time.sleep(float(sys.argv[2]))
    print("SEARCH", [h.id for h in store.search([1.0, 0.0, 0.0, 0.0], k=1)], flush=True)
finally:
    vectors.close_all()
    stop_pid(child.pid)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=420.0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        procs = {arm: subprocess.Popen([sys.executable, "-c", ARM, arm, str(a.seconds), str(Path(tmp) / arm)],
                                       cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for arm in ("pymilvus-defaults", "archlab")}
        results = {arm: p.communicate(timeout=a.seconds + 180)[0] for arm, p in procs.items()}
    for arm, out in results.items():
        goaway = out.count("too_many_pings")
        answered = "SEARCH ['a']" in out
        print(f"{arm:18} idle {a.seconds:.0f} s: GOAWAY too_many_pings x{goaway}, search after the wait "
              f"{'answered' if answered else 'FAILED'}")


if __name__ == "__main__":
    main()
