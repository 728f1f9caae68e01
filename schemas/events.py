"""Every event archlab publishes, as immutable pydantic models sharing one envelope.

Events are facts: they are never edited. Decisions (which parent was sampled, which proposal
was accepted, which score was given) are events too, so a replay needs no LLM and no GPU.

Versioning: each class has a `SCHEMA_VERSION`. A reader accepts events of its own or an older
version (upcast in `schemas.codec`), keeps unknown extra fields (forward compatibility), and
rejects a *newer* major version with `UnsupportedSchemaVersion` (a clear error, and the DLQ).
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


def new_id() -> str:
    return uuid.uuid4().hex


def derived_id(*parts: object) -> str:
    """A deterministic event id for an event derived from others (e.g. a handler's reply).

    A redelivered input then yields replies with the same ids, which every idempotent
    consumer drops: at-least-once delivery never duplicates a fact.
    """
    return uuid.uuid5(uuid.NAMESPACE_URL, "archlab:" + "/".join(map(str, parts))).hex


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class LLMRequest(BaseModel):
    """One question to an LLM role: what was asked is stored under `digest` (the response cache key) in the
    data dir's prompt store (llm/prompts/<digest>.json: messages and answer); `seed` is the sampling seed
    (a planner attempt's nonce), part of the cache key, so a redelivery reproduces it and a new attempt is new."""
    model_config = ConfigDict(frozen=True, extra="allow")
    role: str
    model: str = ""
    digest: str = ""
    seed: int | None = None
    cached: bool = False
    calls: int = 1
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


class Usage(BaseModel):
    """Tokens and cost of LLM calls behind one event; `cached` calls cost nothing. `requests`: each question
    asked (role, model, seed, prompt digest), in order."""
    model_config = ConfigDict(frozen=True, extra="allow")
    model: str = ""
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cached_calls: int = 0
    requests: list[LLMRequest] = Field(default_factory=list)


class ProgramSnapshot(BaseModel):
    """An architecture as the researcher sees it: code, results and what was learned."""
    model_config = ConfigDict(frozen=True, extra="allow")
    experiment_id: str
    name: str
    code: str
    motivation: str = ""
    design: dict[str, Any] | None = None  # the offline proposer's genome, when known
    fitness: float | None = None
    final_loss: float | None = None
    benchmark: float | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    analysis: str = ""     # short reusable experience summary from the analyst
    cognitions: list[str] = Field(default_factory=list)  # retrieved cognition summaries


class Event(BaseModel):
    """The envelope every event shares. `experiment_id` is the Kafka key (per-experiment order)."""
    model_config = ConfigDict(frozen=True, extra="allow")
    SCHEMA_VERSION: ClassVar[int] = 1

    event_id: str = Field(default_factory=new_id)
    type: str
    schema_version: int = 1
    occurred_at: datetime = Field(default_factory=utcnow)
    campaign_id: str
    experiment_id: str
    causation_id: str | None = None  # the event this one reacts to
    producer: str = "unknown"

    @model_validator(mode="before")
    @classmethod
    def _fill_type_and_version(cls, data: Any) -> Any:
        if isinstance(data, dict) and cls is not Event:
            data = dict(data)
            data.setdefault("type", cls.__name__)
            data.setdefault("schema_version", cls.SCHEMA_VERSION)
            if data["type"] != cls.__name__:
                raise ValueError(f"type {data['type']!r} does not match model {cls.__name__}")
        return data

    @property
    def key(self) -> bytes:
        return self.experiment_id.encode()

    def caused(self, cls: type["E"], *, producer: str | None = None, discriminator: object = "",
               **fields: Any) -> "E":
        """A new event reacting to this one: same campaign/experiment, causation set, and a
        deterministic event_id (this event's id + the new type + `discriminator`), so that
        handling a redelivered event twice publishes the same facts twice, deduplicated downstream."""
        fields.setdefault("event_id", derived_id(self.event_id, cls.__name__, discriminator))
        fields.setdefault("campaign_id", self.campaign_id)
        fields.setdefault("experiment_id", self.experiment_id)
        fields.setdefault("causation_id", self.event_id)
        if producer:
            fields["producer"] = producer
        return cls(**fields)


from typing import TypeVar  # noqa: E402

E = TypeVar("E", bound=Event)

# "verify": a promoted candidate re-trained unchanged at the campaign's verification profile (two-stage promotion)
Role = Literal["baseline", "seed", "candidate", "verify"]


# ---------------------------------------------------------------- campaign / archive
class CampaignStarted(Event):
    """A campaign's parameters. `experiment_id` is the campaign id (campaign-level key)."""
    name: str = ""
    profile: str = "cpu-tiny"
    budget: int = 8                    # candidate experiments to run (baselines not counted)
    concurrency: int = 2               # experiments in flight at once
    seed: int = 0
    policy: str = "topk-uniform"
    policy_params: dict[str, Any] = Field(default_factory=dict)
    cold_start: int = 10               # candidates sampled from the baselines only, before the pool opens
    baselines: list[str] = Field(default_factory=lambda: ["deltanet"])  # zoo members measured first
    roots: list[str] = Field(default_factory=list)  # imported experiment ids that enter the pool
    proposer: Literal["offline", "llm"] = "offline"
    max_attempts: int = 10             # proposal attempts per experiment
    max_revisions: int = 3             # debugger revisions per experiment
    # free-form settings: "scheme" (the fitness scheme ranked by), "budget" (spending limits,
    # services/archive/budget.py), "promotion" ({"verify_profile", "top_k", "require_significant", "seed_noise"}:
    # two-stage promotion, services/archive/promotion.py)
    config: dict[str, Any] = Field(default_factory=dict)
    # the profile's seed noise on the baseline, {"loss": .., "benchmark": ..}: the judge's fitness scales and
    # its `significant` (empty: the judge falls back to its setting, then to the profile's measured default)
    seed_noise: dict[str, float] = Field(default_factory=dict)


class CampaignCompleted(Event):
    """The budget is spent and every experiment reached a terminal state."""
    experiments: int = 0
    reason: str = "budget spent"


class ParentSampled(Event):
    """The archive's decision to start experiment `experiment_id` from `parent` (+ references).

    mode "baseline": train `parent.code` unchanged as a measured baseline of the campaign;
    mode "explore": the researcher proposes a child of `parent`;
    mode "verify": train `parent.code` (a promoted candidate, see ExperimentPromoted) unchanged at `profile`,
    the campaign's verification profile.
    `stage`: the stage of a two-stage campaign the experiment belongs to ("verify": the verification
    profile's baseline and the promoted runs; "explore": everything else).
    """
    mode: Literal["baseline", "explore", "verify"] = "explore"
    stage: Literal["explore", "verify"] = "explore"
    parent: ProgramSnapshot
    references: list[ProgramSnapshot] = Field(default_factory=list)
    policy: str = "topk-uniform"
    draw: dict[str, Any] = Field(default_factory=dict)  # ranks drawn, pool size, phase, rng seed
    profile: str = "cpu-tiny"
    seed: int = 0
    proposer: Literal["offline", "llm"] = "offline"
    max_attempts: int = 10
    max_revisions: int = 3
    # size-matched search (issue 24): the largest model a proposal may have, (1 + the campaign's max_params_ratio)
    # x the reference baseline's measured parameters (`baseline_params`); None: only the profile's max_params
    max_params: int | None = None
    baseline_params: int | None = None


class ExperimentPromoted(Event):
    """The archive's decision, once exploration has ended, to re-train an explored candidate at the campaign's
    verification profile (`archlab run --verify-profile P --promote-top K`; services/archive/promotion.py).

    `experiment_id` is the verification experiment (`<campaign>-verify-<source>`), trained later by a
    ParentSampled(mode="verify") of the same id once the verification profile's baseline is measured.
    `why` says in words why it was chosen: its rank among the eligible candidates (those whose score is
    significant over the seed noise, unless the campaign promotes regardless), their number, its fitness.
    """
    source_experiment_id: str
    name: str = ""
    explore_profile: str = ""
    verify_profile: str
    rank: int                          # 1 = the best eligible candidate
    eligible: int                      # how many candidates were eligible
    top_k: int                         # how many the campaign asked for (--promote-top)
    fitness: float | None = None       # the exploration fitness it was ranked by
    significant: bool | None = None    # its exploration score's significance over seed noise
    require_significant: bool = True   # False: promoted by fitness alone (--promote-any)
    why: str = ""
    exploration: str = ""              # why exploration ended (e.g. "budget spent")
    explored: int = 0                  # experiments of the exploration stage, baselines included


class ReplicationAssessed(Event):
    """The archive's verdict on a candidate re-trained on held-out seeds (issue 24; services/archive/replication.py).

    A candidate significant after its first run is trained again, unchanged, at the same profile on
    `config["replicate"]` seeds never used for selection (`replicates`, `seeds`); once they have ended, this records
    the replicated fitness (the mean over the held-out seeds' scores) and the verdict of Welch's test of their
    metrics against the baseline's run and seed noise (lab/judging/significance.py): "confirmed" when a metric is
    significantly better and none significantly worse. `experiment_id` is the candidate.
    """
    replicates: list[str]
    seeds: list[int] = Field(default_factory=list)
    fitness: float | None = None                 # the first run's, which it was selected on
    replicate_fitness: list[float | None] = Field(default_factory=list)
    replicated_fitness: float | None = None      # mean over the held-out seeds that were scored
    verdict: Literal["confirmed", "not replicated"]
    tests: dict[str, Any] = Field(default_factory=dict)   # per metric: improvement, t, df, p, runs, better, worse
    reason: str = ""


class ExperimentImported(Event):
    """An architecture from outside the lab (e.g. the 106 published ASI-Arch programs)."""
    name: str
    code: str
    motivation: str = ""
    source: str = "asi-arch"
    source_index: int | None = None
    parent_id: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    final_loss: float | None = None
    benchmark: float | None = None
    fitness: float | None = None       # the source's own score, kept for reference
    summary: str = ""


class ExperimentAbandoned(Event):
    """The experiment ends without a result: retries or revisions exhausted, or no debugger."""
    reason: str
    attempts: int = 0
    revisions: int = 0
    history: list[dict[str, Any]] = Field(default_factory=list)
    usage: Usage | None = None


# ---------------------------------------------------------------- researcher
class ProposalCreated(Event):
    """A complete candidate layer program that passed the sanity checks and is ready to train."""
    name: str
    code: str
    motivation: str
    role: Role = "candidate"
    attempt: int = 1                   # researcher attempt that produced it (1-based)
    revision: int = 0                  # 0: original; n: the debugger's n-th fix
    parent_id: str | None = None
    reference_ids: list[str] = Field(default_factory=list)
    origin: Literal["offline", "llm", "zoo", "debugger", "user", "imported", "promoted"] = "offline"
    design: dict[str, Any] | None = None
    code_hash: str = ""
    profile: str = "cpu-tiny"
    seed: int = 0
    checks: dict[str, Any] = Field(default_factory=dict)  # sanity-check evidence and timings
    usage: Usage | None = None


RejectReason = Literal[
    "duplicate", "syntax", "forbidden_import", "build", "shape", "causality",
    "complexity", "param_budget", "sandbox", "llm_invalid", "llm_unavailable", "other",
]


class SimilarExperiment(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")
    experiment_id: str
    name: str = ""
    similarity: float
    motivation: str = ""


class ProposalRejected(Event):
    """A proposal attempt that failed novelty or sanity checks; the feedback goes to the next attempt."""
    attempt: int
    reason: RejectReason
    feedback: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    similar: list[SimilarExperiment] = Field(default_factory=list)
    name: str = ""
    motivation: str = ""
    code: str = ""
    code_hash: str = ""
    usage: Usage | None = None


# ---------------------------------------------------------------- engineer
class TrainingStarted(Event):
    """An engineer claimed the proposal (the first claim in the log wins; see engineer docs)."""
    revision: int = 0
    proposal_event_id: str = ""
    engineer_id: str
    lease_s: float = 60.0
    profile: str = "cpu-tiny"
    device: str = "cpu"
    resumed_from_step: int = 0
    takeover_of: str | None = None     # the engineer whose lease expired
    # this engineer's measured speed on the profile (lab/training/calibrate.py) and the wall-time
    # limit it derived from it for this run; None: not calibrated, the profile's constant applies
    calibrated_step_s: float | None = None
    wall_limit_s: float | None = None


class TrainingProgress(Event):
    """Heartbeat and progress of a run; renews the engineer's lease."""
    revision: int = 0
    engineer_id: str
    step: int
    total_steps: int
    loss: float | None = None
    tokens_per_s: float | None = None
    elapsed_s: float = 0.0
    checkpoint_step: int | None = None


FailureKind = Literal[
    "compile_error", "runtime_error", "timeout", "memory", "forbidden", "too_slow",
    "diverged", "suspected_leak", "eval_error", "crashed", "infrastructure",
    "noncausal_at_scoring",  # the trusted scorer saw the scored forward read a later token (issue 25)
]


class TrainingFailed(Event):
    """A run that did not produce results, with the real error."""
    revision: int = 0
    engineer_id: str = ""
    kind: FailureKind
    error: str
    traceback: str = ""
    log_tail: str = ""
    evidence: dict[str, Any] = Field(default_factory=dict)
    wall_s: float = 0.0
    code: str = ""                     # the program that failed (the debugger edits it)


class TrainingStopped(Event):
    """Early stopping (successive halving, issue 23): at a rung (a fraction of the steps) the trusted scorer's
    held-out loss was worse than the baseline's at the same rung by more than `noises` seed noises, so the run
    was stopped there. Not a failure of the program: the experiment ends, nothing is debugged."""
    revision: int = 0
    engineer_id: str = ""
    rung: int = 0                      # 1 for the first rung
    step: int = 0                      # the step the rung's weights were taken at
    total_steps: int = 0
    heldout_loss: float                # the trusted held-out loss at the rung
    baseline_loss: float               # the campaign baseline's held-out loss at the same rung
    seed_noise: float                  # the profile's seed noise of the loss
    noises: float                      # the margin, in seed noises, it was worse by more than
    reason: str = ""
    wall_s: float = 0.0


class ResultsReady(Event):
    """A trained and evaluated program. Curves are lean lists; checkpoints stay on disk."""
    name: str
    role: Role = "candidate"
    revision: int = 0
    engineer_id: str = ""
    profile: str = "cpu-tiny"
    seed: int = 0
    code_hash: str = ""
    loss_curve: list[tuple[int, float]] = Field(default_factory=list)
    final_loss: float | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    benchmark: float | None = None
    params: int = 0
    tokens: int = 0
    steps: int = 0
    train_s: float = 0.0
    eval_s: float = 0.0
    tokens_per_s: float = 0.0
    device: str = "cpu"
    peak_mem_mb: float | None = None
    step_time_s: float | None = None   # a step's cost as the monitor measures it: CPU s on a CPU, wall s on a GPU
    probe_s: float | None = None       # the monitor's probe cost in this run: the machine's load (monitor.py)
    # a reused baseline (engineer/baseline_cache.py): "<campaign>/<experiment>" that trained the weights, which were
    # scored again on this campaign's held-out data; train_s, tokens/s and the curve are that run's
    weights_from: str | None = None


# ---------------------------------------------------------------- judge / analyst / cognition
class ScoreAssigned(Event):
    """Fitness with every component kept. `fitness` is None (and `error` set) when metrics are missing."""
    fitness: float | None
    loss_score: float | None = None
    benchmark_score: float | None = None
    qualitative: float | None = None
    qualitative_judged: bool = False
    qualitative_detail: dict[str, Any] = Field(default_factory=dict)
    weights: dict[str, float] = Field(default_factory=dict)
    baseline_experiment_id: str | None = None
    baseline_loss: float | None = None
    baseline_benchmark: float | None = None
    scheme: str = "paper"              # name of the weighting; rescoring adds events with a new scheme
    rescore_of: str | None = None      # the ScoreAssigned this one re-computes
    significant: bool | None = None    # difference beyond the measured seed noise
    error: str | None = None
    note: str = ""
    usage: Usage | None = None


class InsightsStored(Event):
    """The analyst's analysis (five sections kept apart), retrieved cognitions, and a reusable experience."""
    design_evaluation: str = ""
    results_analysis: str = ""
    expectation_vs_reality: str = ""
    theoretical_explanation: str = ""
    synthesis: str = ""
    offline: bool = True
    ablation: dict[str, Any] = Field(default_factory=dict)  # mechanisms changed vs parent, metric deltas
    cognition_ids: list[str] = Field(default_factory=list)
    cognition_summaries: list[str] = Field(default_factory=list)  # short text of each retrieved cognition
    experience: str = ""
    note: str = ""
    usage: Usage | None = None


class CognitionIngested(Event):
    """One cognition entry of the base. `experiment_id` is the cognition id; `campaign_id` is "global"."""
    cognition_id: str
    paper_key: str
    title: str = ""
    trigger_patterns: str              # what is embedded: phrased like the analyst's problem analyses
    design_insight: str = ""
    background: str = ""
    algorithm: str = ""
    implementation: str = ""
    origin: Literal["seed", "import", "llm"] = "import"
    usage: Usage | None = None


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        CampaignStarted, CampaignCompleted, ParentSampled, ExperimentPromoted, ReplicationAssessed, ExperimentImported,
        ExperimentAbandoned,
        ProposalCreated, ProposalRejected, TrainingStarted, TrainingProgress, TrainingFailed, TrainingStopped,
        ResultsReady, ScoreAssigned, InsightsStored, CognitionIngested,
    )
}


class DeadLetter(BaseModel):
    """What the dead-letter topic holds: an input a service could not handle, with why.

    Not a domain event (no envelope): the original payload may not even be JSON.
    """
    model_config = ConfigDict(frozen=True, extra="allow")
    service: str
    group: str
    topic: str
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    error_kind: str                    # malformed | unknown_type | unsupported_version | invalid | handler_error
    error: str
    traceback: str = ""
    attempts: int = 0
    event_id: str | None = None
    payload_text: str | None = None    # the original bytes, when they are UTF-8
    payload_b64: str | None = None     # the original bytes, otherwise
    occurred_at: datetime = Field(default_factory=utcnow)
