"""The embedding map's projection and layout (services/ui/embedding.py) and its page, on plain lists."""
import math
import random

from services.ui.embedding import layout, project
from services.ui.handlers import Pages


def cluster(rng, centre, n, spread=0.05):
    return [[c + rng.gauss(0, spread) for c in centre] for _ in range(n)]


def test_projection_keeps_clusters_apart_and_is_deterministic():
    rng = random.Random(0)
    a, b = cluster(rng, [1, 0, 0, 0, 0], 10), cluster(rng, [0, 0, 0, 1, 1], 10)
    xy = project(a + b)
    assert xy == project(a + b)
    centre = lambda pts: (sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts))
    ca, cb = centre(xy[:10]), centre(xy[10:])
    within = max(math.dist(p, ca) for p in xy[:10])
    assert math.dist(ca, cb) > 5 * within
    assert project([]) == [] and project([[1.0, 2.0]]) == [(0.0, 0.0)]


def test_a_rejected_duplicate_sits_beside_what_it_repeated():
    rng = random.Random(1)
    vecs = cluster(rng, [1, 0, 0], 3) + cluster(rng, [0, 0, 1], 3)
    records = [{"id": f"e{i}", "vector": v, "campaign_id": "c"} for i, v in enumerate(vecs)]
    rows = {"e0": {"role": "baseline", "name": "deltanet"}}
    dups = [{"experiment_id": "x1", "name": "again", "similar": [{"experiment_id": "e4", "similarity": 0.97},
                                                                 {"experiment_id": "e0", "similarity": 0.5}]},
            {"experiment_id": "x2", "name": "lost", "similar": [{"experiment_id": "gone", "similarity": 0.99}]}]
    groups = layout(records, rows, dups)
    assert [p["experiment_id"] for p in groups["baseline"]] == ["e0"]
    assert len(groups["proposal"]) == 5
    (dup,) = groups["rejected duplicate"]   # x2's neighbour is not in the memory: not drawn
    pos = {p["experiment_id"]: (p["x"], p["y"]) for g in groups.values() for p in g}
    nearest = min((e for e in pos if e.startswith("e")), key=lambda e: math.dist(pos[e], pos["x1"]))
    assert nearest == "e4" and "repeats e4, similarity 0.970" in dup["name"]


class _Model:
    def rows(self, cid=None):
        return [{"experiment_id": "e0", "campaign_id": "c", "role": "candidate", "name": "<script>alert(1)</script>"}]

    def duplicates(self, cid):
        return []

    def campaigns(self):
        return [{"campaign_id": "c", "started_at": "2026"}]


def test_the_page_escapes_names_and_says_when_milvus_is_away():
    pages = Pages(_Model(), vectors=lambda: [{"id": "e0", "vector": [1.0, 0.0], "campaign_id": "c"},
                                             {"id": "o", "vector": [0.0, 1.0], "campaign_id": "other"}])
    title, html = pages.embedding("c")
    assert "1 accepted proposals" in html and "<script>alert" not in html
    _, html = Pages(_Model(), vectors=lambda: (_ for _ in ()).throw(ConnectionError("refused"))).embedding("c")
    assert "novelty memory is unavailable: refused" in html
    _, html = Pages(_Model()).embedding("c")
    assert "No novelty memory" in html


def test_the_stack_process_generates_a_token_for_a_non_loopback_bind(tmp_path, monkeypatch):
    """The compose container binds 0.0.0.0: without ARCHLAB_UI_TOKEN it serves with a generated one, never open."""
    from services.ui import main as ui_main

    seen = {}
    monkeypatch.setattr(ui_main, "run", lambda data_dir, host, port, token, **kw: seen.update(host=host, token=token))
    monkeypatch.setattr(ui_main, "port_free", lambda host, port: True)
    for k, v in {"ARCHLAB_DATA_DIR": str(tmp_path), "ARCHLAB_UI_HOST": "0.0.0.0", "ARCHLAB_UI_PORT": "0"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("ARCHLAB_UI_TOKEN", raising=False)
    ui_main.main()
    assert seen["host"] == "0.0.0.0" and len(seen["token"] or "") >= 24
    monkeypatch.setenv("ARCHLAB_UI_TOKEN", "given-token")
    ui_main.main()
    assert seen["token"] == "given-token"
