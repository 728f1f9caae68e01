"""The fitness formula, with hand-computed values, and the judge's handler end to end (no Kafka)."""
import math

import pytest

from schemas import events as ev
from services.common.llm import LLMUnavailable
from lab.judging import fitness as F
from services.judge.handlers import on_campaign_started, on_proposal_created, on_results_ready
from services.judge.qualitative import QualitativeJudgement
from services.judge.state import JudgeState
from tests.support.scripted_llm import scripted_llm  # noqa: F401  (fixture)

CAMPAIGN = "c1"


def result(exp, loss, bench, role="candidate", name=None, **kw):
    return ev.ResultsReady(campaign_id=CAMPAIGN, experiment_id=exp, name=name or exp, role=role,
                           final_loss=loss, benchmark=bench, producer="test", **kw)


def test_components_hand_computed():
    # loss 1.9 vs 2.0: Δ=0.1, 0.1/(0.1*2.0)=0.5 -> σ(3) = 0.9525741
    assert F.loss_score(1.9, 2.0) == pytest.approx(0.9525741, abs=1e-6)
    # benchmark 0.52 vs 0.5: Δ=0.02, 0.02/0.05=0.4 -> σ(2.4) = 0.9168273
    assert F.benchmark_score(0.52, 0.5) == pytest.approx(0.9168273, abs=1e-6)
    # worse loss gives < 0.5: loss 2.05 -> -0.25 -> σ(-1.5) = 0.1824255
    assert F.loss_score(2.05, 2.0) == pytest.approx(0.1824255, abs=1e-6)
    # the baseline scores 0.5 on each
    assert F.loss_score(2.0, 2.0) == 0.5 and F.benchmark_score(0.5, 0.5) == 0.5
    # clipping at ±1: far better / far worse saturate at σ(±6)
    assert F.loss_score(0.1, 2.0) == pytest.approx(1 / (1 + math.exp(-6)))
    assert F.benchmark_score(0.1, 0.5) == pytest.approx(1 / (1 + math.exp(6)))
    # qualitative: 0.5*8 + 0.3*6 + 0.2*5 = 6.8 on 1..10 -> (6.8-1)/9
    assert F.qualitative_score({"performance": 8, "innovation": 6, "complexity": 5}) == pytest.approx(5.8 / 9)


def test_paper_formula_divides_by_three_and_offline_by_two():
    comps = {"loss": 0.9525741, "benchmark": 0.9168273, "qualitative": 5.8 / 9}
    fit, used = F.combine(comps)
    assert fit == pytest.approx((0.9525741 + 0.9168273 + 5.8 / 9) / 3)
    assert used == {"loss": 1.0, "benchmark": 1.0, "qualitative": 1.0}
    fit, used = F.combine({**comps, "qualitative": None})
    assert fit == pytest.approx((0.9525741 + 0.9168273) / 2) and "qualitative" not in used


@pytest.mark.parametrize("loss,bench,msg", [
    (float("nan"), 0.5, "final_loss is nan"), (None, 0.5, "final_loss is missing"),
    (1.9, None, "benchmark is missing"), (1.9, float("inf"), "benchmark is inf")])
def test_invalid_metrics_raise(loss, bench, msg):
    with pytest.raises(F.FitnessError, match=msg):
        F.loss_score(loss, 2.0), F.benchmark_score(bench, 0.5)


def test_significance_against_seed_noise():
    assert F.significant(0.1, 0.0, None) is None
    assert F.significant(0.01, 0.001, F.SeedNoise(loss=0.02, benchmark=0.01)) is False
    assert F.significant(0.03, 0.001, F.SeedNoise(loss=0.02, benchmark=0.01)) is True
    assert F.significant(-0.001, -0.05, F.SeedNoise(loss=0.02, benchmark=0.01)) is True


async def test_handler_scores_against_the_campaigns_measured_baseline():
    state = JudgeState()
    [base_score] = await on_results_ready(result("base", 2.0, 0.5, role="baseline"), state=state)
    assert base_score.fitness == pytest.approx(0.5) and base_score.baseline_experiment_id == "base"

    cand = result("cand", 1.9, 0.52)
    [score] = await on_results_ready(cand, state=state, seed_noise={"cpu-tiny": {"loss": 0.05}})
    assert isinstance(score, ev.ScoreAssigned) and score.error is None
    # the loss scale is 10 seed noises (0.5): x = 0.1 / 0.5; the benchmark has no noise: the paper's 10 %
    assert score.loss_score == pytest.approx(F.sigmoid(6 * 0.2), abs=1e-6)
    assert score.benchmark_score == pytest.approx(0.9168273, abs=1e-6)
    assert score.fitness == pytest.approx((F.sigmoid(1.2) + 0.9168273) / 2, abs=1e-6)
    assert score.qualitative is None and score.qualitative_judged is False
    assert "not judged" in score.note
    assert (score.baseline_experiment_id, score.baseline_loss, score.baseline_benchmark) == ("base", 2.0, 0.5)
    assert score.significant is True  # |Δloss| 0.1 > 0.05
    assert score.causation_id == cand.event_id and score.experiment_id == "cand" and score.producer == "judge"
    # a redelivered input yields the same reply id (deduplicated downstream)
    [again] = await on_results_ready(cand, state=state)
    assert again.event_id == score.event_id


async def test_nan_or_missing_metrics_give_an_error_never_a_score():
    state = JudgeState()
    await on_results_ready(result("base", 2.0, 0.5, role="baseline"), state=state)
    [nan] = await on_results_ready(result("nan", float("nan"), 0.6), state=state)
    assert nan.fitness is None and "final_loss is nan" in nan.error
    [missing] = await on_results_ready(result("nobench", 1.5, None), state=state)
    assert missing.fitness is None and "benchmark is missing" in missing.error


async def test_no_baseline_yet_is_an_error_and_a_broken_baseline_is_not_used():
    state = JudgeState()
    [s] = await on_results_ready(result("cand", 1.9, 0.52), state=state)
    assert s.fitness is None and "no measured baseline" in s.error
    [b] = await on_results_ready(result("badbase", float("nan"), 0.5, role="baseline"), state=state)
    assert b.fitness is None
    [s] = await on_results_ready(result("cand2", 1.9, 0.52), state=state)
    assert s.fitness is None and "no measured baseline" in s.error
    # another profile's baseline does not count
    await on_results_ready(result("b-other", 2.0, 0.5, role="baseline", profile="explore-20m"), state=state)
    [s] = await on_results_ready(result("cand3", 1.9, 0.52), state=state)
    assert s.fitness is None


async def test_campaigns_preferred_baseline_wins(tmp_path):
    state = JudgeState(tmp_path / "judge.sqlite")
    await on_campaign_started(ev.CampaignStarted(campaign_id=CAMPAIGN, experiment_id=CAMPAIGN,
                                                 baselines=["deltanet", "linear"]), state=state)
    await on_results_ready(result("b-lin", 3.0, 0.4, role="baseline", name="linear"), state=state)
    await on_results_ready(result("b-delta", 2.0, 0.5, role="baseline", name="deltanet"), state=state)
    [s] = await on_results_ready(result("cand", 1.9, 0.52), state=state)
    assert s.baseline_experiment_id == "b-delta"


class FakeLLM:
    def __init__(self, fail=False):
        self.calls, self.fail = [], fail

    def complete_json(self, role, messages, schema):
        self.calls.append((role, messages))
        if self.fail:
            raise LLMUnavailable("endpoint down")
        return schema(performance=8, innovation=6, complexity=5, rationale="solid"), ev.Usage(model="fake", calls=1)


async def test_llm_qualitative_enters_the_mean_of_three():
    state, llm = JudgeState(), FakeLLM()
    await on_proposal_created(ev.ProposalCreated(campaign_id=CAMPAIGN, experiment_id="cand", name="cand",
                                                 code="class DeltaNet: pass  # MARKER", motivation="why"), state=state)
    paper = {"profile": "explore-20m"}  # no measured seed noise: the paper's 10 % scales
    await on_results_ready(result("base", 2.0, 0.5, role="baseline", **paper), state=state)
    [s] = await on_results_ready(result("cand", 1.9, 0.52, **paper), state=state, llm=llm)
    assert s.qualitative_judged and s.qualitative == pytest.approx(5.8 / 9)
    assert s.fitness == pytest.approx((0.9525741 + 0.9168273 + 5.8 / 9) / 3, abs=1e-6)
    assert s.qualitative_detail["performance"] == 8 and s.usage.model == "fake"
    role, messages = llm.calls[-1]
    assert role == "judge" and "MARKER" in messages[-1]["content"]
    assert QualitativeJudgement.model_json_schema()["required"] == ["performance", "innovation", "complexity"]


async def test_llm_failure_is_an_explicit_error_never_a_two_of_three_mean(monkeypatch):
    """One fitness scale per campaign (services/judge/scale.py): a result the LLM judge could not score is not
    ranked with a 2-component mean among 3-component fitnesses; its quantitative components are kept."""
    state = JudgeState()
    await on_results_ready(result("base", 2.0, 0.5, role="baseline"), state=state)
    [judged] = await on_results_ready(result("other", 1.9, 0.52), state=state, llm=FakeLLM())
    [s] = await on_results_ready(result("cand", 1.9, 0.52), state=state, llm=FakeLLM(fail=True))
    assert judged.fitness is not None and len(judged.weights) == 3
    assert s.fitness is None and s.error.startswith("qualitative_missing") and "LLM judge failed" in s.note
    assert s.loss_score == judged.loss_score and s.benchmark_score == judged.benchmark_score
    assert not s.qualitative_judged and s.significant is None
    [offline] = await on_results_ready(result("offline", 1.9, 0.52), state=state)  # a judge without an LLM
    assert offline.fitness is not None and set(offline.weights) == {"loss", "benchmark"}


async def test_llm_judge_over_http_with_the_scripted_server(scripted_llm, tmp_path):  # noqa: F811
    from services.common.llm import LLMClient

    scripted_llm.reply_text("not json")                                   # invalid first answer: asked again
    scripted_llm.reply_json({"performance": 10, "innovation": 1, "complexity": 1, "rationale": "r"})
    llm = LLMClient(scripted_llm.settings(tmp_path), cache=False)
    state = JudgeState()
    await on_results_ready(result("base", 2.0, 0.5, role="baseline"), state=state)
    [s] = await on_results_ready(result("cand", 2.0, 0.5), state=state, llm=llm)
    # 0.5*10 + 0.3*1 + 0.2*1 = 5.5 -> (5.5-1)/9 = 0.5; loss and benchmark at the baseline: 0.5 each
    assert s.qualitative == pytest.approx(0.5) and s.fitness == pytest.approx(0.5)
    assert s.qualitative_judged and s.usage.calls == 2 and scripted_llm.request_count == 2
    assert "Candidate metrics" in scripted_llm.prompt(0)


def test_noise_scales_make_the_score_smooth_and_noise_small():
    noise = 0.02
    at_noise = F.benchmark_score(0.52, 0.5, noise)   # one seed noise better
    three = F.benchmark_score(0.56, 0.5, noise)      # three seed noises better
    assert F.benchmark_score(0.5, 0.5, noise) == pytest.approx(0.5)
    assert 0.6 < at_noise < 0.7 < 0.8 < three < 0.9
    assert F.benchmark_score(0.48, 0.5, noise) == pytest.approx(1 - at_noise)
    # the paper's 10 % scale jumps: one seed noise (4 % of the baseline) already scores 0.81
    assert F.benchmark_score(0.52, 0.5) > 0.8
    assert F.loss_score(1.0, 1.1, 0.01) > 0.99 and F.loss_score(1.1, 1.0, 0.01) < 0.01  # 10 noises saturate


def test_resolve_noise_prefers_the_campaign_then_the_setting_then_the_profile():
    from lab.training.profiles import get_profile
    assert F.resolve_noise("cpu-tiny", {"loss": 0.3, "benchmark": 0.04}, {"cpu-tiny": {"loss": 9.0}}) == \
        F.SeedNoise(loss=0.3, benchmark=0.04)
    assert F.resolve_noise("cpu-tiny", {}, {"cpu-tiny": {"loss": 9.0}}) == F.SeedNoise(loss=9.0)
    assert F.resolve_noise("cpu-tiny", {}, {"explore-20m": {"loss": 9.0}}) == \
        F.SeedNoise.from_dict(get_profile("cpu-tiny").seed_noise)
    assert F.resolve_noise("cpu-tiny") is not None  # significance is on by default on the default profile
    assert F.resolve_noise("no-such-profile") is None


async def test_campaign_stored_noise_scales_the_fitness():
    state = JudgeState()
    await on_campaign_started(ev.CampaignStarted(campaign_id=CAMPAIGN, experiment_id=CAMPAIGN,
                                                 seed_noise={"loss": 0.01, "benchmark": 0.01}), state=state)
    await on_results_ready(result("base", 2.0, 0.5, role="baseline"), state=state)
    [small] = await on_results_ready(result("small", 2.0, 0.505), state=state, seed_noise={"cpu-tiny": {"benchmark": 1}})
    assert small.benchmark_score == pytest.approx(F.sigmoid(6 * 0.005 / 0.1)) and small.significant is False
    [big] = await on_results_ready(result("big", 1.95, 0.55), state=state)
    assert big.benchmark_score == pytest.approx(F.sigmoid(3.0)) and big.significant is True


def test_a_new_campaign_stores_the_setting_or_the_profiles_noise():
    assert F.campaign_seed_noise("cpu-tiny", {"cpu-tiny": {"loss": 0.5, "benchmark": 0.02}}) == \
        {"loss": 0.5, "benchmark": 0.02}
    from lab.training.profiles import get_profile
    assert F.campaign_seed_noise("cpu-tiny", {}) == get_profile("cpu-tiny").seed_noise
    assert F.campaign_seed_noise("no-such-profile") == {}


async def test_a_verification_result_is_scored_against_its_own_profiles_baseline_and_noise():
    """Two-stage promotion: a campaign explores at one profile and verifies at another; each result is scored
    against the baseline measured at its own profile, with that profile's seed noise (CampaignStarted.seed_noise
    for the exploration profile, config["promotion"]["seed_noise"] for the verification profile)."""
    state = JudgeState()
    await on_campaign_started(ev.CampaignStarted(
        campaign_id=CAMPAIGN, experiment_id=CAMPAIGN, profile="cpu-micro", seed_noise={"loss": 0.01, "benchmark": 0.01},
        config={"promotion": {"verify_profile": "cpu-tiny", "top_k": 1,
                              "seed_noise": {"loss": 0.1, "benchmark": 0.1}}}), state=state)
    await on_results_ready(result("base-micro", 2.0, 0.5, role="baseline", profile="cpu-micro"), state=state)
    await on_results_ready(result("base-tiny", 4.0, 0.3, role="baseline", profile="cpu-tiny"), state=state)
    [explored] = await on_results_ready(result("x", 1.98, 0.5, profile="cpu-micro"), state=state)
    assert explored.baseline_experiment_id == "base-micro" and explored.significant is True   # 0.02 > noise 0.01
    assert explored.loss_score == pytest.approx(F.sigmoid(6 * 0.02 / 0.1))
    [verified] = await on_results_ready(result("v", 3.98, 0.3, role="verify", profile="cpu-tiny"), state=state)
    assert verified.baseline_experiment_id == "base-tiny" and verified.significant is False  # 0.02 < noise 0.1
    assert verified.loss_score == pytest.approx(F.sigmoid(6 * 0.02 / 1.0))
