"""One valid instance of every event type, for contract and bus tests."""
from schemas import events as ev

_FIELDS = {
    "ParentSampled": dict(parent=ev.ProgramSnapshot(experiment_id="p", name="deltanet", code="x = 1")),
    "ExperimentImported": dict(name="imp", code="x = 1"),
    "ExperimentPromoted": dict(source_experiment_id="camp-c0000", verify_profile="cpu-tiny", rank=1, eligible=2,
                               top_k=1, fitness=0.7, significant=True, why="rank 1 of 2"),
    "ExperimentAbandoned": dict(reason="attempts_exhausted"),
    "ProposalCreated": dict(name="n", code="x = 1", motivation="m"),
    "ProposalRejected": dict(attempt=1, reason="duplicate", feedback="f",
                             similar=[ev.SimilarExperiment(experiment_id="o", similarity=0.97)]),
    "TrainingStarted": dict(engineer_id="e1"),
    "TrainingProgress": dict(engineer_id="e1", step=1, total_steps=10, loss=2.0),
    "TrainingFailed": dict(kind="runtime_error", error="boom"),
    "ReplicationAssessed": dict(replicates=["camp-c0000-rep1"], verdict="confirmed"),
    "TrainingStopped": dict(heldout_loss=3.0, baseline_loss=2.0, seed_noise=0.03, noises=4.0),
    "ResultsReady": dict(name="n", loss_curve=[(1, 2.0), (2, 1.5)], final_loss=1.5, metrics={"mqar_acc": 0.5}),
    "ScoreAssigned": dict(fitness=0.6, loss_score=0.5),
    "CognitionIngested": dict(cognition_id="c1", paper_key="k", trigger_patterns="t"),
}


def sample_event(cls, **overrides):
    fields = dict(campaign_id="camp", experiment_id="exp-1", producer="test")
    fields.update(_FIELDS.get(cls.__name__, {}))
    fields.update(overrides)
    return cls(**fields)
