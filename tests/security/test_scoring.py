"""Attacks on the trusted scorer itself (issue 25), against the real sandbox, the real runner and cpu-micro.

- a program causal wherever it is checked (researcher's checks, the monitor's probes) that peeks at the next
  token only in the forward child that produces the scored logits: fails as noncausal_at_scoring, where the
  scorer without its causality probe would have scored it far above DeltaNet;
- the same peek only in the lm-eval requests: the lm-eval path goes through the same probe;
- evaluation-data regeneration (a causal lookup of the public held-out batches): near-zero loss on the public
  seed, its true loss on a campaign's secret seed;
- the secret files read through torch's own file APIs (torch.from_file, Tensor.tofile): nothing to read, nothing
  written outside scratch;
- the child's filesystem, listed from inside.
"""
from __future__ import annotations

import json
import stat
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from lab import confine
from lab.training import heldout
from lab.training.profiles import get_profile
from lab.training.sandboxed import run_training_sandboxed, training_limits
from lab.training.scoring import HELDOUT_SEED, NONCAUSAL, TOLERANCE, forward_limits, score
from lab.sandbox import Limits, run_python_module
from services.cli.secrets import write_key_file
from services.engineer.handlers import failure_kind
from tests.security import programs
# autouse: real bwrap (else a skip, a failure in CI) and fake LLM keys in the environment
from tests.security.test_hostile import REPO, SECRET, real_sandbox  # noqa: F401


@pytest.fixture(autouse=True)
def data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("ARCHLAB_DATA_DIR", str(tmp_path / "data"))  # the staged held-out corpus goes here


def train(code: str, scratch: Path, steps: int | None = None):
    return run_training_sandboxed(code, "cpu-micro", 0, scratch=scratch,
                                  profile_overrides={"steps": steps} if steps else None)


def rescore(scratch: Path, **kw) -> dict:
    """Score the weights a finished run left in `scratch` again (the same job), with other scorer settings."""
    job = json.loads((scratch / "job.json").read_text())
    profile = get_profile("cpu-micro", **job["profile_overrides"])
    fields, _ = score(job, scratch, limits=forward_limits(training_limits(profile), profile), **kw)
    return fields


# ------------------------------------------------------------------ the scored forward's causality
def test_a_peek_only_when_scored_fails_as_noncausal_at_scoring(tmp_path):
    run = tmp_path / "run"
    res = train(programs.SCORE_TIME_PEEK, run)
    assert not res.ok, (res.kind, res.result)
    kind, error, evidence = failure_kind(res, last_step=200, total_steps=200)
    assert kind == NONCAUSAL, (kind, error)
    assert evidence["relative_diff"] > TOLERANCE["fp32"] and 0 <= evidence["first_position"] <= evidence["cut"]
    assert evidence["call"] == 1  # the very first scored request (a held-out loss batch) was probed and caught
    # what the engineer publishes: a TrainingFailed of that kind, with the evidence, that the debugger leaves alone
    from schemas import events as ev
    from services.debugger.repair import NOT_DEBUGGED
    from services.engineer.handlers import failure_event
    proposal = ev.ProposalCreated(campaign_id="c1", experiment_id="peek", name="peek", code=programs.SCORE_TIME_PEEK,
                                  motivation="m", profile="cpu-micro")
    failed = failure_event(proposal, res, engineer_id="e1", causation_id="x", last_step=200, total_steps=200)
    assert failed.kind == NONCAUSAL and failed.evidence["cut"] == evidence["cut"] and NONCAUSAL in NOT_DEBUGGED
    # the door this closes: the same weights, scored without the probe, beat the honest model by far (DeltaNet's
    # held-out loss on cpu-micro is ~0.8; docs/security.md)
    unprobed = rescore(run, probe=False)
    assert "error" not in unprobed, unprobed
    assert unprobed["final_loss"] < 0.3, unprobed["final_loss"]


def test_a_peek_only_in_lm_eval_requests_is_caught_on_the_lm_eval_path(tmp_path):
    res = train(programs.LMEVAL_ONLY_PEEK, tmp_path / "run", steps=30)
    kind, error, evidence = failure_kind(res, last_step=30, total_steps=30)
    assert kind == NONCAUSAL, (kind, error, res.stderr_tail[-2000:])
    assert evidence["shape"][1] != 64  # an lm-eval request (right-padded contexts), not a held-out loss batch
    assert evidence["call"] > get_profile("cpu-micro").log_every  # after every held-out loss batch passed


# ------------------------------------------------------------------ evaluation data the program cannot read
def test_regenerated_evaluation_data_wins_only_on_a_public_seed(tmp_path):
    """The lookup is causal (prefix matching), so the probe passes it; only a secret seed defeats it."""
    run = tmp_path / "run"
    profile = get_profile("cpu-micro")
    res = train(programs.mqar_lookup(HELDOUT_SEED, profile.log_every), run, steps=20)
    assert res.ok, (res.kind, res.error, res.stderr_tail[-2000:])
    public = res.result["final_loss"]  # run_training_sandboxed: outside a campaign, the public seeds
    assert public < 0.05, public
    assert res.result["metrics"]["scoring/probe_rows"] > 0  # probed, and causal
    secret = rescore(run, eval_seed=heldout.campaign_eval_seed(tmp_path / "data", "campaign-1"))
    assert "error" not in secret, secret
    assert secret["final_loss"] > 20 * public and secret["final_loss"] > 0.5, (public, secret["final_loss"])


def test_the_campaign_seed_is_secret_stable_and_per_campaign(tmp_path):
    data = tmp_path / "data"
    a = heldout.campaign_eval_seed(data, "c-1")
    assert heldout.campaign_eval_seed(data, "c-1") == a != heldout.campaign_eval_seed(data, "c-2")
    path = data / "secrets" / "eval_seed.c-1"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert heldout.published_eval_seed(data, "c-1") == a and heldout.published_eval_seed(data, "nope") is None


def test_heldout_text_is_staged_under_the_data_dir_and_is_not_the_stdlib(tmp_path):
    from lab.training.data import load_byte_corpus

    docs = heldout.heldout_docs(tmp_path / "data")
    manifest = json.loads((tmp_path / "data" / "heldout" / heldout.MANIFEST_NAME).read_text())
    assert manifest["bytes"] >= heldout.MIN_BYTES and len(docs) == len(manifest["documents"])
    stdlib = load_byte_corpus()
    sample = [d[:200] for d in docs[:20]]
    assert not any(s in bytes(stdlib.train.numpy()) for s in sample)
    assert not set(docs) & set(stdlib.heldout_docs)


def test_secret_files_through_torch_file_apis(tmp_path, monkeypatch):
    """torch.from_file / torch.save to a path / ndarray.tofile open files in C++ or C, past Python's audit hook:
    the OS view must hold. The program reads the LLM key file and the campaign's eval-seed file, and writes what
    it got outside its scratch."""
    data = tmp_path / "data"
    key = write_key_file(data, SECRET)
    monkeypatch.setenv("ARCHLAB_LLM_API_KEY_FILE", str(key))
    seed = heldout.campaign_eval_seed(data, "c-1")
    seed_file = data / "secrets" / "eval_seed.c-1"
    outside = tmp_path / "outside"
    outside.mkdir()
    code = programs.deltanet_with("import torch as _t", f"""
got = []
for path in ({str(key)!r}, {str(seed_file)!r}):
    try:
        got.append(_t.from_file(path, shared=False, size=16, dtype=_t.uint8))
    except Exception as e:
        got.append(_t.tensor(list(repr(e).encode()[:200]), dtype=_t.uint8))
stolen = _t.cat(got)
_t.save(stolen, "stolen.pt")  # in scratch: allowed, and it shows what the child could read
try:  # a write in C++ (a shared mapping created with O_CREAT), past the audit hook: only the OS view stops it
    _t.from_file({str(outside / "mapped.bin")!r}, shared=True, size=16, dtype=_t.uint8).copy_(stolen[:16])
except Exception:
    pass
stolen.numpy().tofile({str(outside / "stolen.bin")!r})  # through Python's open: the audit hook's tripwire
""")
    run = tmp_path / "run"
    res = train(code, run, steps=20)
    assert res.kind == "forbidden" and "outside the scratch" in res.error, (res.kind, res.error)
    seen = bytes(torch.load(run / "stolen.pt", weights_only=True).numpy())
    assert b"No such file" in seen or b"rror" in seen, seen[:400]
    assert SECRET.encode() not in seen and str(seed).encode() not in seen
    assert list(outside.iterdir()) == []
    text = json.dumps(asdict(res), default=str)
    assert SECRET not in text and str(seed) not in text


# ------------------------------------------------------------------ the child's filesystem
def test_the_child_sees_only_what_it_needs(tmp_path):
    data = tmp_path / "data"
    heldout.stage_corpus(data)
    res = run_python_module("tests.security.raw_net", ["mounts", str(data), str(REPO / "docs"), str(REPO / ".git"),
                                                       str(REPO / "README.md"), str(REPO / "lab" / "training")],
                            scratch=tmp_path / "s", limits=Limits(wall_s=30, preimport=()))
    assert res.ok, res.error
    view = res.result
    # the repository: only the code a child runs (+ the venv, which lives inside it here)
    assert set(view["repo"]) <= {*confine.child_repo_dirs(), ".venv"}, view["repo"]
    assert "tests" not in confine.CHILD_REPO_DIRS   # the suite adds it for its own child modules
    assert view["readable"] == {str(data): False, str(REPO / "docs"): False, str(REPO / ".git"): False,
                                str(REPO / "README.md"): False, str(REPO / "lab" / "training"): True}
    # an empty tmpfs, but for the paths down to its own scratch and to the binds (a checkout under /tmp)
    own = sorted({p.relative_to("/tmp").parts[0] for p in ((tmp_path / "s").resolve(), REPO.resolve())
                  if Path("/tmp") in p.parents})
    assert sorted(view["tmp"]) == own, view["tmp"]
    assert not {"home", "root", "var", "srv", "opt", "mnt"} & set(view["root"]) - {"root"}, view["root"]
    # site-packages: the child's distributions (torch, lm_eval ...) and what they require, not the services'
    assert {"torch", "numpy", "einops", "lm_eval", "sympy"} <= set(view["site_packages"]), view["site_packages"]
    assert not {"aiokafka", "faststream", "pymilvus", "milvus_lite", "openai", "grpc", "fastapi", "uvicorn",
                "sentence_transformers", "services", "schemas"} & set(view["site_packages"]), view["site_packages"]


def test_the_seed_is_published_in_the_report_only_once_the_campaign_has_ended(tmp_path):
    from schemas import events as ev
    from services.cli.report import build_report
    from tests.report.fake_campaign import CAMPAIGN, fake_campaign

    data = tmp_path / "data"
    seed = heldout.campaign_eval_seed(data, CAMPAIGN)
    events = fake_campaign(candidates=3)
    running = [e for e in events if not isinstance(e, ev.CampaignCompleted)]
    assert str(seed) not in build_report(running, tmp_path / "a.html", data_dir=data).read_text()
    assert str(seed) in build_report(events, tmp_path / "b.html", data_dir=data).read_text()


def test_the_report_shows_a_noncausal_at_scoring_failure(tmp_path):
    from schemas import events as ev
    from services.cli.report import build_report
    from tests.report.fake_campaign import fake_campaign

    events = fake_campaign(candidates=3)
    victim = next(e for e in events if isinstance(e, ev.ProposalCreated))
    events.append(ev.TrainingFailed(campaign_id=victim.campaign_id, experiment_id=victim.experiment_id,
                                    producer="engineer", kind=NONCAUSAL, evidence={"cut": 7},
                                    error="ScoringFailed: the scored forward is not causal: ..."))
    html = build_report(events, tmp_path / "r.html").read_text()
    problems = html[html.index("id='problems'"):]
    assert NONCAUSAL in problems and "the scored forward is not causal" in problems


def test_the_probe_comparison_itself():
    """RemoteModel's check on fake children (no sandbox): a causal model and one that is NaN in both children
    pass; a one-token peek fails at the cut or before it, with the evidence."""
    import socket

    import torch

    from lab.training.scoring import RemoteModel, ScoringFailed

    class Fake(RemoteModel):
        def __init__(self, logits_of):
            super().__init__(socket.socket(), 8, 1.0, probe=socket.socket())
            self.logits_of = logits_of

        def _forward(self, conn, x):
            return self.logits_of(x)

    emb = torch.randn(8, 8)
    x = torch.randint(8, (4, 16))
    for honest in (lambda x: emb[x].cumsum(1), lambda x: torch.full((*x.shape, 8), float("nan"))):
        model = Fake(honest)
        model(x)
        assert model.probed_rows == 1 and model.max_probe_diff == 0.0
    peek = Fake(lambda x: emb[x].cumsum(1) + torch.cat([emb[x[:, 1:]], torch.zeros(len(x), 1, 8)], 1))
    with pytest.raises(ScoringFailed) as failed:
        peek(x)
    e = failed.value
    assert e.kind == NONCAUSAL and e.evidence["first_position"] == e.evidence["cut"], e.evidence
