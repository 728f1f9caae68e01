"""How fast the web UI answers with 2,000 experiments in the archive, and what it costs while idle.

    python bench/ui.py [--experiments 2000] [--code-size 20000] [--seconds 30] [--browser]

Builds a read model in a temporary data dir with the archive's own projection: the 106 published
ASI-Arch programs (when ../shared/reference is there) and synthetic candidates (services/archive/
synthetic.py, programs of --code-size characters, a real program is about 20 KB) up to
--experiments, all in one campaign. Then starts the UI as the stack does (`python -m
services.ui.main`) and measures:
- page time: each page fetched 5 times over HTTP, median and worst (target: leaderboard and
  genealogy under 1 s); with --browser, headless Chromium's navigation-to-load time as well (the
  charts are drawn before the load event);
- idle CPU of the UI process from /proc (utime+stime) over --seconds with no page open, then with
  one page open on the live stream (target: under 0.5 % of a core);
- reference, same run: reading every experiment document whole (json.loads), what a page built on the
  full documents would pay before rendering anything; the ratio shows what the narrow queries buy.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab import proc_cpu  # noqa: E402

REFERENCE = Path(os.environ.get("ARCHLAB_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared")) / "reference"
PAGES = ("leaderboard", "genealogy", "fitness", "campaign", "experiment/{exp}", "compare?ids={exp},{exp2}")


def build_archive(data_dir: Path, experiments: int, code_size: int) -> tuple[str, int]:
    """Project the events into <data_dir>/archive.sqlite; returns (campaign id, experiments stored)."""
    from services.archive.importer import imported_events, load_records
    from services.archive.projection import apply
    from services.archive.storage.sqlite import SQLiteStore
    from services.archive.synthetic import synthetic_log
    from services.ui.readmodel import DB_FILE

    published = REFERENCE / "asi-arch" / "106.json"
    records = load_records(published) if published.exists() else []
    synthetic = synthetic_log(experiments=max(1, experiments - len(records) - 3), code_size=code_size)
    campaign = synthetic[0].campaign_id
    events = [*synthetic, *imported_events(records, campaign_id=campaign)]
    with SQLiteStore(data_dir / DB_FILE, bulk=True) as store:
        with store.transaction():
            for event in events:
                apply(store, event)
        n = len(store.experiments(campaign))
    return campaign, n


def fetch(url: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as r:
        size = len(r.read())
    return time.perf_counter() - t0, size


def reference_full_read(data_dir: Path) -> float:
    import sqlite3
    from services.ui.readmodel import DB_FILE
    t0 = time.perf_counter()
    db = sqlite3.connect(f"file:{data_dir / DB_FILE}?mode=ro", uri=True)
    docs = [json.loads(d) for (d,) in db.execute("SELECT doc FROM experiments")]
    db.close()
    assert docs
    return time.perf_counter() - t0


def browser_times(base: str, pages: list[str]) -> dict[str, float]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                f"--user-data-dir={tempfile.mkdtemp(prefix='ui-bench-')}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    out = {}
    try:
        for page in pages:
            times = []
            for _ in range(3):
                driver.get(base + page)
                times.append(driver.execute_script(
                    "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime") / 1000)
            out[page] = statistics.median(times)
    finally:
        driver.quit()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiments", type=int, default=2000)
    ap.add_argument("--code-size", type=int, default=20000)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--browser", action="store_true", help="also time pages in headless Chromium")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="archlab-ui-bench-") as tmp:
        data_dir = Path(tmp)
        t0 = time.perf_counter()
        campaign, n = build_archive(data_dir, args.experiments, args.code_size)
        db_mb = (data_dir / "archive.sqlite").stat().st_size / 1e6
        print(f"archive: {n} experiments in campaign {campaign}, {db_mb:.0f} MB, built in {time.perf_counter() - t0:.0f} s")

        env = dict(os.environ, ARCHLAB_DATA_DIR=str(data_dir), ARCHLAB_UI_PORT="0", PYTHONUNBUFFERED="1")
        proc = subprocess.Popen([sys.executable, "-m", "services.ui.main"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, cwd=Path(__file__).resolve().parents[1])
        try:
            ui_file = data_dir / "ui.json"
            deadline = time.monotonic() + 60
            while not ui_file.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            base = json.loads(ui_file.read_text())["url"]
            from services.ui.readmodel import ReadModel
            rows = ReadModel(data_dir).rows(campaign)
            scored = sorted((r for r in rows if r["fitness"] is not None), key=lambda r: -r["fitness"])
            exp, exp2 = scored[0]["experiment_id"], scored[1]["experiment_id"]
            pages = [p.format(exp=exp, exp2=exp2) for p in PAGES]

            print("\npage (HTTP, 5 fetches)            median    worst      size")
            for page in pages:
                results = [fetch(base + page) for _ in range(5)]
                times = [t for t, _ in results]
                print(f"  {page[:30]:30} {statistics.median(times) * 1000:7.0f} ms {max(times) * 1000:6.0f} ms "
                      f"{results[0][1] / 1e3:7.0f} kB")
            if args.browser:
                print("\npage (headless Chromium, navigation to load, charts drawn; median of 3)")
                for page, t in browser_times(base, pages[:4]).items():
                    print(f"  {page[:30]:30} {t * 1000:7.0f} ms")

            idle = proc_cpu.measure({"ui": proc.pid}, args.seconds)
            print(f"\nidle CPU, no page open ({args.seconds:.0f} s): {idle.total:.3f} % of a core")
            stop = threading.Event()

            def listen() -> None:   # one open page: its live stream stays connected
                with urllib.request.urlopen(base + "events", timeout=args.seconds + 30) as r:
                    while not stop.is_set() and r.readline():
                        pass

            threading.Thread(target=listen, daemon=True).start()
            time.sleep(1)
            streaming = proc_cpu.measure({"ui": proc.pid}, args.seconds)
            stop.set()
            print(f"idle CPU, one page open on the live stream ({args.seconds:.0f} s): {streaming.total:.3f} % of a core")

            reference = statistics.median(reference_full_read(data_dir) for _ in range(3))
            board = statistics.median(fetch(base + "leaderboard")[0] for _ in range(3))
            print(f"\nreference: reading all {n} documents whole takes {reference * 1000:.0f} ms; the whole leaderboard "
                  f"page {board * 1000:.0f} ms (ratio {reference / board:.1f}x)")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
