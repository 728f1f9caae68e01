"""The attempts loop of on_parent_sampled, offline and with a scripted OpenAI-compatible planner."""
import pytest

from schemas import events as ev
from services.common.llm import LLMClient
from services.researcher import handlers
from lab.checks import SanityChecker
from services.researcher.codegen import render
from services.researcher.context import ContextBuilder
from services.researcher.genome import ZOO_DESIGNS
from services.researcher.novelty import NoveltyChecker
from services.researcher.planner import LLMPlanner, OfflineProposer
from tests.researcher import bad_programs as bad
from tests.researcher.fakes import FakeEmbedder, FakeVectorStore
from tests.support.scripted_llm import scripted_llm  # noqa: F401

DELTANET = render(ZOO_DESIGNS["deltanet"], "deltanet")
GLA_CHILD = render({**ZOO_DESIGNS["gla"], "fir": (3, 15)}, "gla-fir")


def parent_sampled(experiment_id="exp-1", mode="explore", proposer="offline", max_attempts=10, **kw):
    parent = ev.ProgramSnapshot(experiment_id="base-1", name="deltanet", code=DELTANET, motivation="baseline",
                                final_loss=2.1, benchmark=0.4, analysis="recall saturates at 0.7")
    refs = [ev.ProgramSnapshot(experiment_id="ref-1", name="gla", code=render(ZOO_DESIGNS["gla"], "gla"),
                               design=ZOO_DESIGNS["gla"])]
    return ev.ParentSampled(event_id=f"ps-{experiment_id}", campaign_id="camp", experiment_id=experiment_id, mode=mode, parent=parent,
                            references=refs, seed=7, proposer=proposer, max_attempts=max_attempts,
                            profile="cpu-micro", **kw)


def deps(**kw):
    d = {"proposer": {"offline": OfflineProposer()}, "checker": SanityChecker(repeats=1),
         "novelty": NoveltyChecker(FakeEmbedder(), FakeVectorStore())}
    d.update(kw)
    return d


@pytest.mark.slow  # three sandbox runs
async def test_offline_proposal_then_identical_draw_is_rejected_as_duplicate_and_retried():
    d = deps()
    first = await handlers.on_parent_sampled(parent_sampled("exp-1"), **d)
    assert [e.type for e in first] == ["ProposalCreated"]
    created = first[0]
    assert created.origin == "offline" and created.parent_id == "base-1" and created.reference_ids == ["ref-1"]
    assert created.design and created.code_hash and created.checks["passed"]
    assert set(created.checks["timings_s"]) >= {"shape", "causality", "complexity"}
    assert created.causation_id == parent_sampled("exp-1").event_id

    second = await handlers.on_parent_sampled(parent_sampled("exp-2"), **d)  # same parent, seed and draw
    assert [e.type for e in second] == ["ProposalRejected", "ProposalCreated"]
    rejected, accepted = second
    assert rejected.reason == "duplicate" and rejected.attempt == 1 and rejected.name == created.name
    assert rejected.similar[0].experiment_id == "exp-1" and "exp-1" in rejected.feedback
    assert accepted.attempt == 2 and accepted.name != created.name and accepted.code_hash != created.code_hash

    again = await handlers.on_parent_sampled(parent_sampled("exp-1"), **d)  # redelivery: same facts, same ids
    assert [e.event_id for e in again] == [e.event_id for e in first]


async def test_baseline_passes_the_parent_through_unchanged():
    out = await handlers.on_parent_sampled(parent_sampled("exp-b", mode="baseline"), **deps())
    assert [e.type for e in out] == ["ProposalCreated"]
    assert out[0].role == "baseline" and out[0].origin == "zoo" and out[0].name == "deltanet"
    assert out[0].code == DELTANET and out[0].checks["passed"]


async def test_a_promoted_program_is_verified_unchanged_at_the_sampled_profile():
    """Two-stage promotion: mode "verify" passes the promoted program through at the verification profile, with
    role "verify", no lineage parent (another profile's measurement) and no novelty check (the same program)."""
    class NoNovelty:
        async def check(self, **_):
            raise AssertionError("a verification run is the same program on purpose")

        async def remember(self, **_):
            raise AssertionError("nothing to remember")

    sampled = parent_sampled("camp-verify-exp-1", mode="verify", stage="verify")
    sampled = sampled.model_copy(update={"profile": "cpu-tiny"})
    out = await handlers.on_parent_sampled(sampled, **deps(novelty=NoNovelty()))
    assert [e.type for e in out] == ["ProposalCreated"]
    p = out[0]
    assert (p.role, p.origin, p.name, p.code, p.profile, p.parent_id) == ("verify", "promoted", "deltanet", DELTANET,
                                                                           "cpu-tiny", None)
    assert "verification at cpu-tiny of deltanet (base-1)" in p.motivation and p.checks["passed"]
    broken = sampled.model_copy(update={"parent": sampled.parent.model_copy(update={"code": "import os\n"})})
    out = await handlers.on_parent_sampled(broken, **deps(novelty=NoNovelty()))
    assert [e.type for e in out] == ["ProposalRejected", "ExperimentAbandoned"]
    assert out[1].reason == "verify_failed_checks" and "at cpu-tiny" in out[0].feedback


class ScriptedProposer:
    def __init__(self, codes):
        self.codes, self.feedback_seen = list(codes), []

    async def propose(self, event, attempt, feedback):
        from services.researcher.planner import Proposal
        self.feedback_seen.append(list(feedback))
        return Proposal(f"p{attempt}", f"motivation {attempt}", self.codes[(attempt - 1) % len(self.codes)], "offline")


async def test_attempts_exhausted_with_history_and_feedback_carried_forward():
    proposer = ScriptedProposer([bad.IMPORTS_OS, bad.SYNTAX_ERROR])
    out = await handlers.on_parent_sampled(parent_sampled(max_attempts=3), **deps(proposer=proposer))
    assert [e.type for e in out] == ["ProposalRejected"] * 3 + ["ExperimentAbandoned"]
    assert [e.reason for e in out[:3]] == ["forbidden_import", "syntax", "forbidden_import"]
    assert len({e.event_id for e in out}) == 4  # discriminator = attempt
    assert out[-1].reason == "attempts_exhausted" and [h["attempt"] for h in out[-1].history] == [1, 2, 3]
    assert proposer.feedback_seen[0] == [] and "import of `os`" in proposer.feedback_seen[2][0]


async def test_sandbox_rejection_reaches_the_next_attempt():
    proposer = ScriptedProposer([bad.FUTURE_LEAK, GLA_CHILD])
    out = await handlers.on_parent_sampled(parent_sampled(), **deps(proposer=proposer))
    assert [e.type for e in out] == ["ProposalRejected", "ProposalCreated"]
    assert out[0].reason == "causality" and out[0].evidence["evidence"]["max_abs_diff"] > 0
    assert "future" in proposer.feedback_seen[1][0]


async def test_llm_planner_duplicate_feedback_reaches_the_next_prompt(scripted_llm, tmp_path):
    settings = scripted_llm.settings(tmp_path)
    llm = LLMClient(settings, backoff_s=0.01)
    novelty = NoveltyChecker(FakeEmbedder(), FakeVectorStore())
    await novelty.remember(campaign_id="camp", experiment_id="exp-0", name="gla-fir-old",
                           motivation="gla with fir paths", code=GLA_CHILD)
    planner = LLMPlanner(llm, ContextBuilder(tmp_path / "summaries.sqlite"))
    scripted_llm.reply_status(429)                                               # rate limited, retried
    scripted_llm.reply_json({"name": "gla-fir", "motivation": "add FIR paths to GLA", "code": GLA_CHILD})
    scripted_llm.reply_text("I think the best design is ... (no JSON)")          # malformed, retried with error
    second = render({**ZOO_DESIGNS["gated_deltanet"], "beta": "sigmoid2"}, "gdn-neg")
    scripted_llm.reply_json({"name": "gdn-neg", "motivation": "negative eigenvalues for state tracking",
                             "code": f"```python\n{second}```"})
    out = await handlers.on_parent_sampled(parent_sampled(proposer="llm"),
                                           **deps(proposer={"llm": planner}, novelty=novelty))
    assert [e.type for e in out] == ["ProposalRejected", "ProposalCreated"]
    assert out[0].reason == "duplicate" and out[0].usage.calls == 1 and out[0].similar[0].experiment_id == "exp-0"
    assert out[1].origin == "llm" and out[1].name == "gdn-neg" and out[1].code == second and out[1].attempt == 2
    assert out[1].usage.calls == 2  # the malformed answer and the valid one
    assert scripted_llm.request_count == 4
    first_prompt, next_prompt = scripted_llm.prompt(1), scripted_llm.prompt(2)
    assert "REJECTED" not in first_prompt and "recall saturates at 0.7" in first_prompt  # the brief has the analysis
    assert "REJECTED" in next_prompt and "DUPLICATE" in next_prompt and "exp-0" in next_prompt
    assert "gla-fir-old" in next_prompt
    assert "Your answer was invalid" in scripted_llm.prompt(3) and "DUPLICATE" in scripted_llm.prompt(3)


async def test_llm_invalid_output_is_a_rejection_and_unconfigured_llm_abandons(scripted_llm, tmp_path):
    planner = LLMPlanner(LLMClient(scripted_llm.settings(tmp_path), backoff_s=0.01, invalid_retries=0),
                         ContextBuilder(None))
    scripted_llm.reply_text("not json")
    scripted_llm.reply_text("still not json")
    out = await handlers.on_parent_sampled(parent_sampled(proposer="llm", max_attempts=2),
                                           **deps(proposer={"llm": planner}))
    assert [e.reason for e in out[:2]] == ["llm_invalid", "llm_invalid"] and out[2].reason == "attempts_exhausted"
    out = await handlers.on_parent_sampled(parent_sampled(proposer="llm"), **deps())  # no llm proposer configured
    assert [e.type for e in out] == ["ProposalRejected", "ExperimentAbandoned"]
    assert out[0].reason == "llm_unavailable" and out[1].reason == "llm_unavailable"


def test_context_summaries_are_computed_once(tmp_path):
    event = parent_sampled()
    ctx = ContextBuilder(tmp_path / "s.sqlite")
    brief = ctx.brief(event)
    ctx.brief(event)
    assert ctx.computed == 2  # parent + 1 reference, once each
    fresh = ContextBuilder(tmp_path / "s.sqlite")  # another process: served from SQLite
    assert fresh.brief(event) == brief and fresh.computed == 0
    assert "delta-rule style writes" in brief and "final_loss=2.1" in brief


async def test_llm_planner_attempts_carry_a_nonce_that_a_redelivery_reproduces(scripted_llm, tmp_path):
    """The same context asked twice (two attempts, two draws) gives two requests with their own seeds; a
    redelivered draw is answered from the cache with the same seed (issue 16, point 4)."""
    from services.researcher.planner import planner_nonce

    planner = LLMPlanner(LLMClient(scripted_llm.settings(tmp_path), backoff_s=0.01), ContextBuilder(None))
    for name in ("idea-a", "idea-b", "idea-c"):
        scripted_llm.reply_json({"name": name, "motivation": "m", "code": GLA_CHILD})
    first, second = parent_sampled("exp-1"), parent_sampled("exp-2")   # identical parents and references
    p1 = await planner.propose(first, 1, [])
    p1_redelivered = await planner.propose(first, 1, [])
    p2 = await planner.propose(first, 2, [])                          # same feedback, a new attempt
    p3 = await planner.propose(second, 1, [])                         # another draw of the same context
    assert [p.name for p in (p1, p1_redelivered, p2, p3)] == ["idea-a", "idea-a", "idea-b", "idea-c"]
    assert scripted_llm.request_count == 3
    seeds = [r["seed"] for r in scripted_llm.requests]
    assert seeds == [planner_nonce(first, 1), planner_nonce(first, 2), planner_nonce(second, 1)]
    assert len(set(seeds)) == 3
    assert p1_redelivered.usage.requests[0].seed == p1.usage.requests[0].seed and p1_redelivered.usage.cached_calls
