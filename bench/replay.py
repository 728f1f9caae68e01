"""Rebuild speed of the archive's read model: replay N generated events into a fresh SQLite file.

    python bench/replay.py [--events 100000] [--shuffle-seed 1] [--code-size 1500]

Builds the DB in publication order, then replays the same log in a shuffled cross-topic
order (per-experiment-per-topic order kept) into a fresh file, prints events/s of both and checks
that the two digests are equal. Target: >= 10,000 events/s on SQLite.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from services.archive.projection import digest
from services.archive.replay import interleave, replay_events
from services.archive.storage.sqlite import SQLiteStore
from services.archive.synthetic import synthetic_log


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000, help="approximate number of events")
    ap.add_argument("--shuffle-seed", type=int, default=1)
    ap.add_argument("--code-size", type=int, default=1500, help="bytes of program text per proposal")
    ap.add_argument("--batch", type=int, default=100_000, help="events per commit")
    args = ap.parse_args()

    t = time.perf_counter()
    # about 13 events per candidate experiment in the synthetic log
    events = synthetic_log(experiments=max(10, args.events // 13), campaigns=4, seed=0, code_size=args.code_size)
    gen_s = time.perf_counter() - t
    shuffled = interleave(events, args.shuffle_seed)
    print(f"generated {len(events):,} events in {gen_s:.1f}s")

    with tempfile.TemporaryDirectory() as tmp:
        # wall time is what counts; CPU time is printed too because the dev box's cores are shared
        live = SQLiteStore(Path(tmp) / "published-order.sqlite", bulk=True)
        cpu = time.process_time()
        s1 = replay_events(events, live, batch=args.batch)
        cpu1 = time.process_time() - cpu
        print(f"build in publication order: {s1.events:,} events in {s1.seconds:.2f}s = "
              f"{s1.events_per_s:,.0f} events/s (cpu {cpu1:.2f}s = {s1.events / cpu1:,.0f} events/cpu-s)")
        replayed = SQLiteStore(Path(tmp) / "replay.sqlite", bulk=True)
        cpu = time.process_time()
        s2 = replay_events(shuffled, replayed, batch=args.batch)
        cpu2 = time.process_time() - cpu
        print(f"replay in shuffled order (seed {args.shuffle_seed}): {s2.events:,} events in {s2.seconds:.2f}s = "
              f"{s2.events_per_s:,.0f} events/s (cpu {cpu2:.2f}s = {s2.events / cpu2:,.0f} events/cpu-s)")
        t = time.perf_counter()
        d1, d2 = digest(live), digest(replayed)
        print(f"digest publication order {d1}\ndigest shuffled order    {d2}  "
              f"({time.perf_counter() - t:.1f}s for both)")
        print("digests EQUAL" if d1 == d2 else "digests DIFFER")
        live.close()
        replayed.close()
        if d1 != d2:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
