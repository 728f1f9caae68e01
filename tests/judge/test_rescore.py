"""Re-scoring stored results under a new weighting or baseline: new events, a new ranking, old ones kept."""
import pytest

from schemas import events as ev
from services.judge.handlers import on_results_ready
from lab.judging.rescore import ranking, rescore
from services.judge.state import JudgeState


def result(exp, loss, bench, role="candidate"):
    # explore-20m has no measured seed noise: the paper's 10 % scales, which these numbers are chosen for
    return ev.ResultsReady(campaign_id="c1", experiment_id=exp, name=exp, role=role, final_loss=loss,
                           benchmark=bench, producer="test", profile="explore-20m")


@pytest.fixture
async def history():
    state = JudgeState()
    results = [result("base", 2.0, 0.50, role="baseline"),
               result("low-loss", 1.8, 0.495),      # better loss, slightly worse benchmark
               result("high-bench", 2.0, 0.51),     # same loss, better benchmark
               result("broken", float("nan"), 0.5)]
    scores = []
    for r in results:
        scores += await on_results_ready(r, state=state)
    return results, scores


async def test_rescore_emits_new_events_and_changes_the_ranking(history):
    results, old = history
    old_ids = {s.event_id for s in old}
    assert [e for e, _ in ranking(old)][:2] == ["low-loss", "high-bench"]

    new = rescore(results, old, weights={"loss": 0.0, "benchmark": 1.0, "qualitative": 0.0}, scheme="bench-only")
    assert len(new) == 4 and not ({s.event_id for s in new} & old_ids)
    by_exp = {s.experiment_id: s for s in new}
    old_by_exp = {s.experiment_id: s for s in old}
    for exp, s in by_exp.items():
        assert s.scheme == "bench-only" and s.rescore_of == old_by_exp[exp].event_id
    assert [e for e, _ in ranking(new)] == ["high-bench", "base", "low-loss"]
    # paper: low-loss (σ(6)+σ(-0.6))/2 = 0.676 > high-bench (σ(0)+σ(1.2))/2 = 0.634
    assert old_by_exp["low-loss"].fitness == pytest.approx((0.9975274 + 0.3543437) / 2, abs=1e-6)
    # benchmark only: high-bench 0.51 vs 0.5 -> 0.01/0.05 = 0.2 -> σ(1.2)
    assert by_exp["high-bench"].fitness == pytest.approx(0.7685248, abs=1e-6)
    assert by_exp["low-loss"].fitness == pytest.approx(0.3543437, abs=1e-6)
    assert by_exp["broken"].fitness is None and by_exp["broken"].error
    # deterministic: the same rescore gives the same ids; another weighting gives other ids
    assert [s.event_id for s in rescore(results, old, {"loss": 0, "benchmark": 1, "qualitative": 0},
                                        scheme="bench-only")] == [s.event_id for s in new]
    other = rescore(results, old, {"loss": 1, "benchmark": 0, "qualitative": 0}, scheme="loss-only")
    assert not ({s.event_id for s in other} & {s.event_id for s in new})
    assert ranking(other)[0][0] == "low-loss"


async def test_rescore_against_another_baseline(history):
    results, old = history
    new = rescore(results, old, baseline_id="high-bench", scheme="vs-high-bench")
    by_exp = {s.experiment_id: s for s in new}
    assert by_exp["high-bench"].fitness == pytest.approx(0.5)
    assert by_exp["base"].fitness < 0.5 and by_exp["base"].baseline_experiment_id == "high-bench"
    with pytest.raises(ValueError, match="not among the results"):
        rescore(results, old, baseline_id="nope")


async def test_rescore_reuses_the_llm_qualitative_without_calling_it():
    base = result("base", 2.0, 0.5, role="baseline")
    cand = result("cand", 1.9, 0.52)
    judged = cand.caused(ev.ScoreAssigned, fitness=0.8, loss_score=0.95, benchmark_score=0.92, qualitative=0.2,
                         qualitative_judged=True, baseline_experiment_id="base")
    [_, s] = rescore([base, cand], [judged], weights={"loss": 0, "benchmark": 0, "qualitative": 1}, scheme="q")
    assert s.fitness == pytest.approx(0.2) and s.qualitative_detail["reused_from"] == judged.event_id
