"""What the embedded stack costs while it waits, and how fast an event still hops.

    python bench/idle.py [--seconds 60] [--hops 200] [--engineers 1]

Starts the default stack (`archlab up`) in a temporary data dir, lets it settle, then:
- CPU: utime+stime of every stack process (and its children) from /proc over `--seconds`,
  per process and in total, as % of one core (target: total <= 5 %);
- hop: publish -> handler latency of one typed event through the lab's `Service`, p50/p99, on
  the same broker while the stack idles (target p99 <= 100 ms);
- reference, same run: the same idle stack's broker measured without its long-poll gateway
  (one aiokafka consumer talking to the broker directly), so the ratio shows what the gateway buys.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab import proc_cpu  # noqa: E402


def archlab(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=600)


async def direct_consumer_cpu(broker_port: int, seconds: float) -> float:
    """% of a core used by one idle aiokafka consumer talking to the broker without the gateway."""
    from aiokafka import AIOKafkaConsumer
    consumer = AIOKafkaConsumer("archlab.parent-sampled", bootstrap_servers=f"127.0.0.1:{broker_port}",
                                group_id=None, fetch_max_wait_ms=500)
    await consumer.start()
    task = asyncio.create_task(consumer.getmany(timeout_ms=int(seconds * 1000) + 5000))
    await asyncio.sleep(1)
    t0, c0 = time.monotonic(), time.process_time()
    await asyncio.sleep(seconds)
    used = 100 * (time.process_time() - c0) / (time.monotonic() - t0)
    task.cancel()
    await consumer.stop()
    return used


async def service_hops(bootstrap: str, hops: int, data_dir: Path) -> list[float]:
    """Publish -> handler latency of single TrainingProgress events through a lab `Service`."""
    from bench.bus import Clock, hops_latency, sample
    from schemas import events as ev
    from services.common.bus import Service
    from services.common.settings import Settings
    svc = Service(f"bench-idle-{time.time_ns()}", Settings(kafka_bootstrap=bootstrap, data_dir=data_dir))
    clock = Clock()

    async def handler(event: ev.TrainingProgress) -> None:
        await clock.hit()
    svc.on(ev.TrainingProgress, handler)
    await svc.start()
    await asyncio.sleep(2)   # group joined, at the end of the topic
    base = time.time_ns() % 10**9
    lat = await hops_latency(lambda i: svc.publish(sample(base + i)), clock, hops)
    await svc.stop()
    return lat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--hops", type=int, default=200)
    ap.add_argument("--engineers", type=int, default=1)
    a = ap.parse_args()
    from bench.bus import pct
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHLAB_")}
        env["ARCHLAB_DATA_DIR"] = str(Path(tmp) / "lab")
        t0 = time.monotonic()
        up = archlab("up", "--engineers", str(a.engineers), env=env)
        if up.returncode != 0:
            sys.exit(f"archlab up failed:\n{up.stdout}\n{up.stderr}")
        print(f"stack up in {time.monotonic() - t0:.1f} s", flush=True)
        try:
            state = json.loads((Path(tmp) / "lab" / "stack.json").read_text())
            time.sleep(10)   # let consumer groups settle
            window = proc_cpu.measure(state["processes"], a.seconds)
            print(f"idle stack, {len(state['processes'])} processes, {window.wall_s:.0f} s window:")
            print("\n".join(window.lines()))
            print(f"  {'TOTAL':22} {window.total:6.2f} % of a core (target <= 5 %)", flush=True)
            bootstrap = state["kafka"]
            lat = asyncio.run(service_hops(bootstrap, a.hops, Path(tmp) / "svc"))
            p50, p99 = pct(lat, .5) * 1e3, pct(lat, .99) * 1e3
            print(f"hop through archlab Service on the idle stack: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
                  f"(target p99 <= 100 ms)")
            broker_port = None
            for arg_line in (Path(f"/proc/{state['processes']['kafka-gateway']}/cmdline").read_bytes().split(b"\0")):
                if arg_line.startswith(b"127.0.0.1:"):
                    broker_port = int(arg_line.split(b":")[1])
            if broker_port:
                direct = asyncio.run(direct_consumer_cpu(broker_port, min(a.seconds, 15)))
                per_gw = window.total / max(1, len(state["processes"]))
                print(f"reference: one idle consumer on the broker without the gateway: {direct:.1f} % of a core "
                      f"(ratio to the mean stack process behind the gateway: {direct / max(per_gw, 0.01):.0f}x)")
        finally:
            down = archlab("down", env=env)
            print("stack down" + ("" if down.returncode == 0 else f" FAILED: {down.stdout}{down.stderr}"))


if __name__ == "__main__":
    main()
