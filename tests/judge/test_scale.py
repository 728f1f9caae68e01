"""One fitness scale per campaign (services/judge/scale.py): a result the LLM judge could not score is an
explicit error, then scored late once the judge's LLM answers again; never a 2-of-3 mean among 3-of-3."""
from schemas import events as ev
from services.common.llm import LLMUnavailable
from services.judge.handlers import on_results_ready
from services.judge.state import JudgeState
from tests.judge.test_fitness import result as c1_result


def result(exp, loss, bench, role="candidate", campaign_id="c1"):
    return c1_result(exp, loss, bench, role=role).model_copy(update={"campaign_id": campaign_id})


class SwitchableLLM:
    def __init__(self):
        self.down, self.asked = False, []

    def complete_json(self, role, messages, schema):
        self.asked.append(messages[-1]["content"].split("\n")[0])
        if self.down:
            raise LLMUnavailable("endpoint down")
        return schema(performance=7, innovation=5, complexity=5, rationale="ok"), ev.Usage(model="fake", calls=1)


async def test_a_missing_judgement_is_an_error_then_scored_late_once_and_idempotently():
    state, llm = JudgeState(), SwitchableLLM()
    [base] = await on_results_ready(result("base", 2.0, 0.5, role="baseline"), state=state, llm=llm)
    llm.down = True
    cand1 = result("cand1", 1.9, 0.52)
    [error] = await on_results_ready(cand1, state=state, llm=llm)
    assert error.fitness is None and error.error.startswith("qualitative_missing") and error.loss_score > 0.5
    llm.down = False
    cand2 = result("cand2", 1.95, 0.5)
    out = await on_results_ready(cand2, state=state, llm=llm)
    assert [s.experiment_id for s in out] == ["cand2", "cand1"]
    late = out[1]
    assert late.fitness is not None and late.qualitative_judged and late.rescore_of == error.event_id
    assert late.scheme == error.scheme and len(late.weights) == 3 == len(base.weights)
    assert late.loss_score == error.loss_score and "scored late" in late.note
    asked = len(llm.asked)
    again = await on_results_ready(cand2, state=state, llm=llm)            # a redelivery: the same facts
    assert [s.event_id for s in again] == [s.event_id for s in out]
    assert len(llm.asked) == asked + 1                                     # cand2 (cached in real life), not cand1
    cand3 = await on_results_ready(result("cand3", 1.9, 0.5), state=state, llm=llm)
    assert [s.experiment_id for s in cand3] == ["cand3"]                  # nothing pending any more


async def test_pending_results_wait_while_the_llm_stays_down_and_stay_in_their_campaign():
    state, llm = JudgeState(), SwitchableLLM()
    for campaign in ("c1", "c2"):
        await on_results_ready(result("base-" + campaign, 2.0, 0.5, role="baseline", campaign_id=campaign),
                               state=state, llm=llm)
    llm.down = True
    await on_results_ready(result("a", 1.9, 0.52, campaign_id="c1"), state=state, llm=llm)
    [still] = await on_results_ready(result("b", 1.9, 0.52, campaign_id="c1"), state=state, llm=llm)
    assert still.fitness is None
    llm.down = False
    out = await on_results_ready(result("x", 1.9, 0.52, campaign_id="c2"), state=state, llm=llm)
    assert [s.experiment_id for s in out] == ["x"]                         # c1's pending results are not c2's
    out = await on_results_ready(result("y", 1.9, 0.52, campaign_id="c1"), state=state, llm=llm)
    assert [s.experiment_id for s in out] == ["y", "a", "b"] and all(s.fitness is not None for s in out)


async def test_a_rescore_keeps_one_scale_where_the_campaign_was_judged():
    from lab.judging.rescore import rescore

    state, llm = JudgeState(), SwitchableLLM()
    base_r, judged_r, missing_r = result("base", 2.0, 0.5, role="baseline"), result("j", 1.9, 0.52), \
        result("m", 1.9, 0.52)
    scores = [*await on_results_ready(base_r, state=state, llm=llm), *await on_results_ready(judged_r, state=state,
                                                                                             llm=llm)]
    llm.down = True
    scores += await on_results_ready(missing_r, state=state, llm=llm)
    new = {s.experiment_id: s for s in rescore([base_r, judged_r, missing_r], scores, scheme="again")}
    assert new["j"].fitness is not None and new["m"].fitness is None and new["m"].error.startswith("qualitative_missing")
    quantitative = {s.experiment_id: s for s in rescore([base_r, judged_r, missing_r], scores, scheme="quant",
                                                        weights={"loss": 1, "benchmark": 1, "qualitative": 0})}
    assert quantitative["m"].fitness == quantitative["j"].fitness  # without the qualitative, one scale again
