"""Screenshots of the web UI's main pages for the README (issue 26), taken by headless Chromium.

    archlab up                                   # the stack of a folder that ran a campaign (the embedding map
    python docs/screenshots.py [--data-dir .archlab] [--out docs/img] [--campaign C]    # reads its Milvus)

Serves the UI read-only on the data directory (a free 127.0.0.1 port), opens each page at 1280x860 and saves
`ui-<page>.png`. Needs Debian's chromium and chromium-driver (as the browser tests do) and selenium (dev extra).
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PAGES = (("campaign", "/campaign?campaign={c}"), ("leaderboard", "/leaderboard?campaign={c}"),
         ("genealogy", "/genealogy?campaign={c}"), ("fitness", "/fitness?campaign={c}"),
         ("embedding", "/embedding?campaign={c}"), ("experiment", "/experiment/{best}"))


def main() -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from services.common.settings import load_settings
    from services.ui.main import novelty_records
    from services.ui.readmodel import ReadModel
    from services.ui.server import UIServer

    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, default=Path(".archlab"))
    ap.add_argument("--out", type=Path, default=Path("docs/img"))
    ap.add_argument("--campaign", help="default: the latest started")
    a = ap.parse_args()
    model = ReadModel(a.data_dir)
    if not model.exists():
        sys.exit(f"no read model under {a.data_dir} (run a campaign first)")
    campaigns = sorted(model.campaigns(), key=lambda c: c.get("started_at") or "")
    cid = a.campaign or (campaigns[-1]["campaign_id"] if campaigns else sys.exit("no campaign in the archive"))
    scored = [r for r in model.rows(cid) if r["fitness"] is not None and r["role"] == "candidate"]
    best = max(scored, key=lambda r: r["fitness"])["experiment_id"] if scored else None
    server = UIServer(("127.0.0.1", 0), model, None, novelty_records(load_settings(a.data_dir)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,860",
                "--hide-scrollbars"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    a.out.mkdir(parents=True, exist_ok=True)
    try:
        for name, path in PAGES:
            if "{best}" in path and best is None:
                continue
            driver.get(server.url.rstrip("/") + path.format(c=quote(cid, safe=""), best=quote(best or "", safe="")))
            time.sleep(2.0)   # the charts draw after load
            out = a.out / f"ui-{name}.png"
            driver.save_screenshot(str(out))
            print(f"{out} ({out.stat().st_size // 1024} KiB)")
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
