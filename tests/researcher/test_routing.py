"""Planner model routing (services/researcher/routing.py): a bandit on fitness gain per dollar."""
import pytest

from schemas import events as ev
from services.common.llm import LLMClient
from services.researcher.context import ContextBuilder
from services.researcher.planner import LLMPlanner
from services.researcher.routing import Arm, PlannerRouter, arms_from_events, ucb_choice
from tests.researcher.test_handlers import GLA_CHILD, parent_sampled
from tests.support.scripted_llm import scripted_llm  # noqa: F401

C = "camp"


def usage(model, cost, role="planner"):
    return ev.Usage(model=model, calls=1, cost_usd=cost,
                    requests=[ev.LLMRequest(role=role, model=model, cost_usd=cost, digest="d")])


def proposal(exp, model, cost, parent="base"):
    return ev.ProposalCreated(campaign_id=C, experiment_id=exp, name=exp, code="x", motivation="m", origin="llm",
                              parent_id=parent,
                              usage=usage(model, cost))


def score(exp, fitness):
    return ev.ScoreAssigned(campaign_id=C, experiment_id=exp, fitness=fitness)


def test_unscored_models_are_tried_first_in_an_order_the_nonce_rotates():
    models = ["a", "b", "c"]
    assert ucb_choice({}, models, 0)[0] == "a" and ucb_choice({}, models, 4)[0] == "b"
    arms = {"a": Arm("a", proposals=1, gain=0.1, cost_usd=0.1, calls=1)}
    assert ucb_choice(arms, models, 0)[0] in ("b", "c")


def test_the_cheaper_gain_wins_and_exploration_returns_to_a_neglected_model():
    models = ["big", "small"]
    even = {"big": Arm("big", proposals=5, gain=0.5, cost_usd=0.5, calls=5),
            "small": Arm("small", proposals=5, gain=0.4, cost_usd=0.05, calls=5)}
    model, why = ucb_choice(even, models, 0)
    assert model == "small" and why["gain_per_usd"]["small"] == pytest.approx(8.0)
    neglected = {"big": Arm("big", proposals=1, gain=0.1, cost_usd=0.1, calls=1),
                 "small": Arm("small", proposals=60, gain=6.0, cost_usd=0.6, calls=60)}
    assert ucb_choice(neglected, models, 0)[0] == "big"  # rate 1 vs 10, but tried once in 61


def test_router_projects_proposals_rejections_and_scores_once():
    router = PlannerRouter(["big", "small"])
    events = [score("base", 0.5), proposal("e1", "big", 0.05), proposal("e2", "small", 0.01),
              ev.ProposalRejected(campaign_id=C, experiment_id="e2", attempt=1, reason="duplicate", feedback="f",
                                  usage=usage("small", 0.01)),
              score("e1", 0.6), score("e2", 0.9)]
    for e in events + events:  # a redelivery changes nothing
        {ev.ProposalCreated: router.observe_proposal, ev.ProposalRejected: router.observe_rejection,
         ev.ScoreAssigned: router.observe_score}[type(e)](e)
    arms = router.arms(C)
    assert (arms["big"].proposals, arms["big"].calls, arms["big"].gain) == (1, 1, pytest.approx(0.1))
    assert (arms["small"].proposals, arms["small"].calls, arms["small"].gain) == (1, 2, pytest.approx(0.4))
    assert arms["small"].best == 0.9 and arms["small"].cost_usd == pytest.approx(0.02)
    assert router.choose(C, 0)[0] == "small"
    same = arms_from_events(events)  # the report's view of the same log
    assert {m: (a.proposals, a.calls, round(a.gain, 6)) for m, a in same.items()} == \
        {m: (a.proposals, a.calls, round(a.gain, 6)) for m, a in arms.items()}


async def test_the_planner_asks_the_routed_model_and_records_the_decision(scripted_llm, tmp_path):
    router = PlannerRouter(["model-a", "model-b"])
    planner = LLMPlanner(LLMClient(scripted_llm.settings(tmp_path), backoff_s=0.01), ContextBuilder(None), router)
    scripted_llm.reply_json({"name": "n1", "motivation": "m", "code": GLA_CHILD})
    event = parent_sampled("exp-r")
    p = await planner.propose(event, 1, [])
    assert scripted_llm.requests[0]["model"] == p.route["model"] == p.usage.requests[0].model
    assert p.route["policy"] == "ucb1" and p.route["model"] in ("model-a", "model-b")
