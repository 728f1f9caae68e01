"""Offline self-revision through the real sandboxed training (issue 16, point 6): a program with a dtype mismatch
fails in the runner, the debugger without an LLM revises it by rule, and the revision trains."""
import pytest

from schemas import events as ev
from services.common.settings import Settings
from services.debugger import handlers
from services.engineer import handlers as engineer_events
from services.debugger.repair import Debugger, DebuggerMemory
from lab.training.sandboxed import run_training_sandboxed
from tests.engineer.programs import source

pytestmark = pytest.mark.slow  # two sandboxed trainings
STEPS = 30
DTYPE_BUG = source("deltanet").replace("return self.o(o.transpose(1, 2).reshape(B, T, D)), None, None",
                                       "return self.o(o.transpose(1, 2).reshape(B, T, D).to(torch.bfloat16)), None, None")
assert DTYPE_BUG != source("deltanet")


def train(code, scratch):
    # autocast "fp32": under the default policy ("auto") a CPU run whose step 0 fails with this bf16-into-fp32 mix
    # starts again under bf16 autocast and trains (lab/training/train.py); the debugger's rule is for the runs where
    # bf16 does not help, or the profile says fp32
    return run_training_sandboxed(code, "cpu-micro", 0, scratch=scratch,
                                  profile_overrides={"steps": STEPS, "autocast": "fp32"})


async def test_a_dtype_mismatch_is_revised_by_rule_and_the_revision_trains(tmp_path):
    proposal = ev.ProposalCreated(campaign_id="c1", experiment_id="exp-1", name="delta-bf16", code=DTYPE_BUG,
                                  motivation="cheaper output projection", profile="cpu-micro", seed=0)
    res = train(DTYPE_BUG, tmp_path / "rev0")
    assert not res.ok
    failed = engineer_events.failure_event(proposal, res, engineer_id="eng", causation_id=proposal.event_id, last_step=0,
                                    total_steps=STEPS)
    assert failed.kind == "runtime_error" and "dtype" in failed.error.lower(), (failed.kind, failed.error)
    debugger = Debugger(Settings(data_dir=tmp_path), DebuggerMemory(tmp_path / "debugger.sqlite"), proposal_wait_s=1)
    assert debugger.llm is None  # offline
    await handlers.on_proposal_created(proposal, debugger=debugger)
    (revision,) = await handlers.on_training_failed(failed, debugger=debugger)
    assert isinstance(revision, ev.ProposalCreated) and revision.revision == 1 and revision.origin == "debugger"
    assert revision.checks["debugger"]["rule"] == "dtype_float32" and "bfloat16" not in revision.code
    fixed = train(revision.code, tmp_path / "rev1")
    assert fixed.ok, (fixed.kind, fixed.error, fixed.stderr_tail[-2000:])
    assert fixed.result["steps"] == STEPS and fixed.result["final_loss"] > 0
