"""The debugger: revisions through the (scripted) LLM, budgets, kinds not debugged, offline mode."""
import pytest

from schemas import events as ev
from services.common.settings import Settings
from services.debugger import handlers
from services.debugger.repair import Debugger, DebuggerMemory
from tests.engineer.programs import source
from tests.support.scripted_llm import scripted_llm  # noqa: F401  (fixture)

BROKEN = source("deltanet").replace("return self.o(o.transpose(1, 2).reshape(B, T, D)), None, None",
                                   "return self.o(o.view(-1, 7)), None, None")
assert BROKEN != source("deltanet")


def proposal(revision=0, code=None):
    return ev.ProposalCreated(campaign_id="c1", experiment_id="exp-1", name="delta-x", code=code or BROKEN,
                              motivation="a better gate", revision=revision, profile="cpu-micro", seed=3,
                              parent_id="parent-1", design={"gate": "scalar"})


def failed(kind="runtime_error", revision=0, code=None):
    return ev.TrainingFailed(campaign_id="c1", experiment_id="exp-1", revision=revision, engineer_id="eng-a",
                             kind=kind, error="RuntimeError: shape '[-1, 7]' is invalid for input of size 64",
                             traceback='Traceback (most recent call last):\n  File "<program x>", line 60\n'
                                       "RuntimeError: shape '[-1, 7]' is invalid",
                             code=code or BROKEN)


def make(tmp_path, settings, **kw):
    memory = DebuggerMemory(tmp_path / "debugger.sqlite")
    return Debugger(settings, memory, proposal_wait_s=0.5, **kw)


async def test_a_runtime_error_is_fixed_as_revision_1(tmp_path, scripted_llm):
    scripted_llm.reply_json({"diagnosis": "view with a wrong shape", "changes": "removed the view",
                             "code": source("deltanet")})
    dbg = make(tmp_path, scripted_llm.settings(tmp_path))
    await handlers.on_proposal_created(proposal(), debugger=dbg)
    failure = failed()
    (out,) = await handlers.on_training_failed(failure, debugger=dbg)
    assert isinstance(out, ev.ProposalCreated)
    assert out.revision == 1 and out.origin == "debugger" and out.code == source("deltanet")
    assert (out.name, out.motivation, out.profile, out.seed, out.parent_id) == ("delta-x", "a better gate",
                                                                              "cpu-micro", 3, "parent-1")
    assert out.checks["debugger"]["diagnosis"] == "view with a wrong shape" and out.usage.calls == 1
    assert out.code_hash and out.causation_id == failure.event_id
    prompt = scripted_llm.prompt(-1)
    assert "shape '[-1, 7]' is invalid" in prompt and "Traceback" in prompt and "o.view(-1, 7)" in prompt
    # a redelivered failure yields the same revision event id (deduplicated downstream)
    again = await handlers.on_training_failed(failure, debugger=dbg)
    assert again[0].event_id == out.event_id and again[0].code == out.code
    assert scripted_llm.request_count == 1  # the same prompt is answered from the LLM cache


async def test_an_unchanged_or_unparsable_answer_is_refused_then_abandoned(tmp_path, scripted_llm):
    scripted_llm.reply_json({"diagnosis": "d", "changes": "none", "code": BROKEN})
    scripted_llm.reply_json({"diagnosis": "d", "changes": "c", "code": "class DeltaNet(:\n"})
    dbg = make(tmp_path, scripted_llm.settings(tmp_path))
    await handlers.on_proposal_created(proposal(), debugger=dbg)
    (out,) = await handlers.on_training_failed(failed(), debugger=dbg)
    assert isinstance(out, ev.ExperimentAbandoned) and "refused" in out.reason
    assert "identical" in scripted_llm.prompt(-1)  # the second request was told why the first was refused


async def test_the_revision_budget_comes_from_the_campaign(tmp_path, scripted_llm):
    dbg = make(tmp_path, scripted_llm.settings(tmp_path))
    sampled = ev.ParentSampled(campaign_id="c1", experiment_id="exp-1", max_revisions=2,
                               parent=ev.ProgramSnapshot(experiment_id="p", name="p", code="x"))
    await handlers.on_parent_sampled(sampled, debugger=dbg)
    (out,) = await handlers.on_training_failed(failed(revision=2), debugger=dbg)
    assert isinstance(out, ev.ExperimentAbandoned) and "revisions exhausted" in out.reason
    assert out.revisions == 2 and out.history[0]["kind"] == "runtime_error"
    assert scripted_llm.request_count == 0
    # unknown campaign budget: settings.debugger_max_revisions (3)
    dbg2 = make(tmp_path / "other", scripted_llm.settings(tmp_path))
    assert dbg2.max_revisions("exp-unknown") == 3


@pytest.mark.parametrize("kind", ["forbidden", "suspected_leak"])
async def test_hostile_or_leaking_programs_are_not_debugged(tmp_path, scripted_llm, kind):
    dbg = make(tmp_path, scripted_llm.settings(tmp_path))
    (out,) = await handlers.on_training_failed(failed(kind=kind), debugger=dbg)
    assert isinstance(out, ev.ExperimentAbandoned) and kind in out.reason and "not debugged" in out.reason
    assert scripted_llm.request_count == 0


async def test_offline_a_failure_without_a_rule_is_terminal_at_once(tmp_path):
    dbg = make(tmp_path, Settings(data_dir=tmp_path))
    await handlers.on_proposal_created(proposal(), debugger=dbg)
    (out,) = await handlers.on_training_failed(failed(), debugger=dbg)  # an invalid view shape: no generic fix
    assert isinstance(out, ev.ExperimentAbandoned)
    assert out.reason == "no debugger: offline mode (no rule for this failure)"


async def test_offline_a_recognised_failure_gets_a_rule_based_revision(tmp_path):
    code = source("deltanet").replace("return self.o(o.transpose(1, 2).reshape(B, T, D)), None, None",
                                      "return self.o(o.transpose(1, 2).view(B, T, D)), None, None")
    assert code != source("deltanet")
    dbg = make(tmp_path, Settings(data_dir=tmp_path))
    await handlers.on_proposal_created(proposal(code=code), debugger=dbg)
    failure = ev.TrainingFailed(campaign_id="c1", experiment_id="exp-1", revision=0, engineer_id="eng-a",
                                kind="runtime_error", code=code,
                                error="RuntimeError: view size is not compatible with input tensor's size and stride "
                                      "(at least one dimension spans across two contiguous subspaces). Use "
                                      ".reshape(...) instead.")
    (out,) = await handlers.on_training_failed(failure, debugger=dbg)
    assert isinstance(out, ev.ProposalCreated) and out.revision == 1 and out.origin == "debugger"
    assert ".view(" not in out.code and "o.transpose(1, 2).reshape(B, T, D)" in out.code and out.usage is None
    assert out.checks["debugger"]["rule"] == "view_to_reshape" and out.checks["debugger"]["offline"]


async def test_an_infrastructure_failure_is_retried_with_the_same_code_even_offline(tmp_path):
    dbg = make(tmp_path, Settings(data_dir=tmp_path))
    await handlers.on_proposal_created(proposal(), debugger=dbg)
    (out,) = await handlers.on_training_failed(failed(kind="infrastructure"), debugger=dbg)
    assert isinstance(out, ev.ProposalCreated) and out.revision == 1 and out.code == BROKEN


async def test_an_unreachable_llm_abandons_with_the_reason(tmp_path, scripted_llm):
    for _ in range(3):
        scripted_llm.reply_status(500)
    dbg = make(tmp_path, scripted_llm.settings(tmp_path, llm_max_retries=2))
    dbg.llm.backoff_s = 0.01
    await handlers.on_proposal_created(proposal(), debugger=dbg)
    (out,) = await handlers.on_training_failed(failed(), debugger=dbg)
    assert isinstance(out, ev.ExperimentAbandoned) and out.reason.startswith("debugger failed")


async def test_a_failure_whose_proposal_is_unknown_raises_for_the_bus_to_retry(tmp_path, scripted_llm):
    dbg = make(tmp_path, scripted_llm.settings(tmp_path))
    with pytest.raises(LookupError):
        await handlers.on_training_failed(failed(), debugger=dbg)
