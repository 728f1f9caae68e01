"""Promotion rule: top K by fitness among the candidates significant over seed noise; stage agreement."""
import math

from schemas import events as ev
from services.archive import promotion
from services.archive.projection import apply
from services.archive.storage.sqlite import SQLiteStore
from tests.archive.events import mk, snap


def _candidate(store, exp, fitness, significant, role="candidate"):
    for e in (mk(ev.ParentSampled, exp, 1, parent=snap("p"), mode="baseline" if role == "baseline" else "explore"),
              mk(ev.ResultsReady, exp, 2, name=exp, role=role, final_loss=1.0, benchmark=0.5),
              mk(ev.ScoreAssigned, exp, 3, fitness=fitness, significant=significant)):
        apply(store, e)


def test_top_k_among_the_significant(tmp_path):
    store = SQLiteStore(tmp_path / "a.sqlite")
    apply(store, mk(ev.CampaignStarted, "camp", 0))
    _candidate(store, "a", 0.9, False)      # best fitness but within seed noise: not promoted
    _candidate(store, "b", 0.7, True)
    _candidate(store, "c", 0.8, True)
    _candidate(store, "d", 0.7, True)       # tie with b: experiment id decides
    _candidate(store, "e", 0.6, None)       # significance unknown: not promoted
    _candidate(store, "base", 0.95, True, role="baseline")
    got = promotion.promotion_candidates(store, "camp", 2)
    assert [(p.experiment_id, p.rank, p.eligible) for p in got] == [("c", 1, 3), ("b", 2, 3)]
    assert "significant over seed noise" in got[0].why and "0.8000" in got[0].why
    assert [p.experiment_id for p in promotion.promotion_candidates(store, "camp", 10)] == ["c", "b", "d"]
    assert promotion.promotion_candidates(store, "camp", 0) == []
    assert promotion.verify_id("camp", "c") == "camp-verify-c"


def test_stage_agreement():
    assert promotion.stage_agreement([(0.9, 0.8), (0.5, 0.4), (0.1, 0.2)]) == 1.0
    assert promotion.stage_agreement([(0.9, 0.1), (0.5, 0.4), (0.1, 0.8)]) == -1.0
    assert promotion.stage_agreement([(0.9, 0.1)]) is None
    assert math.isclose(promotion.stage_agreement([(3, 1), (2, 3), (1, 2)]), -1 / 3)   # 1 concordant, 2 discordant
