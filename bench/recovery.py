"""How fast the embedded stack recovers: seconds from each restart to the campaign moving again.

    python bench/recovery.py [--profile cpu-micro] [--rounds 1]

Runs a small campaign (2 engineers) on a fresh embedded stack and, while it trains:
1. engineer: kill -9 the engineer that is training, `archlab restart` it; until training progress
   of that run is reported again (the restarted engineer resumes its own run from its checkpoint);
2. broker: `archlab restart kafka`; until every consumer group's lag is 0 and a new event is in the log;
3. archive: kill -9 it, `archlab restart archive`; until its groups' lag is 0 and a new event is in the log.
Each figure is printed against the target (60 s).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schemas import codec  # noqa: E402
from schemas import events as ev  # noqa: E402
from schemas.events import EVENT_TYPES  # noqa: E402
from schemas.topics import topic_for  # noqa: E402
from services.cli.stack import group_lag  # noqa: E402
from services.common.bus import publish_once  # noqa: E402
from services.common.log_reader import read_log  # noqa: E402
from services.common.settings import Settings  # noqa: E402

TARGET_S = 60.0


def archlab(*args: str, env: dict) -> None:
    out = subprocess.run([sys.executable, "-m", "services.cli.main", *args], env=env, capture_output=True,
                         text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"archlab {' '.join(args)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")


def events_of(bootstrap: str, campaign: str) -> list[ev.Event]:
    async def read() -> list[ev.Event]:
        return [e for rec in [r async for r in read_log(bootstrap, [topic_for(t) for t in EVENT_TYPES])]
                if (e := codec.decode(rec.value)).campaign_id == campaign]
    for _ in range(20):
        try:
            return asyncio.run(read())
        except Exception:  # noqa: BLE001 - the broker may be restarting
            time.sleep(0.5)
    return asyncio.run(read())


def lag_zero(bootstrap: str, groups: set[str] | None = None) -> bool:
    try:
        lag = asyncio.run(group_lag(bootstrap))
    except Exception:  # noqa: BLE001
        return False
    return all(v == 0 for g, v in lag.items() if groups is None or g in groups)


def until(predicate, timeout: float = 600, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError("no recovery within the timeout")


def new_event_after(bootstrap: str, campaign: str, t: float, kinds: tuple = ()) -> bool:
    return any(e.occurred_at.timestamp() > t and (not kinds or isinstance(e, kinds))
               for e in events_of(bootstrap, campaign))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="cpu-micro")
    a = ap.parse_args()
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHLAB_")}
        env["ARCHLAB_DATA_DIR"] = str(Path(tmp) / "lab")
        archlab("up", "--engineers", "2", env=env)
        stack_file = Path(tmp) / "lab" / "stack.json"
        try:
            bootstrap = json.loads(stack_file.read_text())["kafka"]
            campaign = f"c-recovery-{time.time_ns() % 10**8}"
            asyncio.run(publish_once(Settings(kafka_bootstrap=bootstrap), ev.CampaignStarted(
                campaign_id=campaign, experiment_id=campaign, producer="bench", profile=a.profile, budget=6,
                concurrency=2, cold_start=1, seed=5)))

            def training():
                ps = [e for e in events_of(bootstrap, campaign) if isinstance(e, ev.TrainingProgress) and e.step > 0]
                return (ps[-1].engineer_id, ps[-1].experiment_id) if ps else None
            victim, exp = until(training, 900, every=2)
            print(f"campaign {campaign} training; {victim} trains {exp}", flush=True)

            # 1. engineer
            t0 = time.time()
            os.kill(json.loads(stack_file.read_text())["processes"][victim], signal.SIGKILL)
            archlab("restart", victim, env=env)
            until(lambda: any(isinstance(e, ev.TrainingProgress) and e.experiment_id == exp
                              and e.occurred_at.timestamp() > t0 and e.step > 0
                              for e in events_of(bootstrap, campaign)) or any(
                isinstance(e, (ev.ResultsReady, ev.TrainingFailed)) and e.experiment_id == exp
                for e in events_of(bootstrap, campaign)))
            figures["engineer (kill -9, restart) -> its run trains again"] = time.time() - t0
            print(f"engineer: {figures[next(reversed(figures))]:.1f} s", flush=True)

            # 2. broker
            t0 = time.time()
            archlab("restart", "kafka", env=env)
            until(lambda: lag_zero(bootstrap) and new_event_after(bootstrap, campaign, t0))
            figures["broker (restart) -> lag 0, new events"] = time.time() - t0
            print(f"broker: {figures[next(reversed(figures))]:.1f} s", flush=True)

            # 3. archive
            t0 = time.time()
            os.kill(json.loads(stack_file.read_text())["processes"]["archive"], signal.SIGKILL)
            archlab("restart", "archive", env=env)
            until(lambda: lag_zero(bootstrap, {"archive"}) and new_event_after(bootstrap, campaign, t0))
            figures["archive (kill -9, restart) -> lag 0, new events"] = time.time() - t0
            print(f"archive: {figures[next(reversed(figures))]:.1f} s", flush=True)
        finally:
            subprocess.run([sys.executable, "-m", "services.cli.main", "down"], env=env, capture_output=True,
                           timeout=300)
    print(f"\n{'restart':55} {'seconds':>8} {'target':>7}")
    for name, s in figures.items():
        print(f"{name:55} {s:8.1f} {'ok' if s < TARGET_S else 'SLOW':>7}")


if __name__ == "__main__":
    main()
