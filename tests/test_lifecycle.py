"""lab/lifecycle.py: the one experiment lifecycle, folded from events in any order."""
from __future__ import annotations

import itertools

from lab.lifecycle import STATUSES, Lifecycle, concerns
from schemas import events as ev
from tests.common.samples import sample_event


def _e(cls, **fields):
    return sample_event(cls).model_copy(update=fields)


def fold(events) -> Lifecycle:
    life = Lifecycle()
    for e in events:
        life.apply(e)
    return life


def test_the_usual_path_step_by_step():
    steps = [(_e(ev.ParentSampled), "sampled"), (_e(ev.ProposalRejected), "proposing"),
             (_e(ev.ProposalCreated, revision=0), "training"), (_e(ev.TrainingStarted, revision=0), "training"),
             (_e(ev.TrainingFailed, revision=0), "failed"), (_e(ev.ProposalCreated, revision=1), "training"),
             (_e(ev.ResultsReady, revision=1), "scoring"), (_e(ev.ScoreAssigned, fitness=0.6), "analysing"),
             (_e(ev.InsightsStored), "done")]
    life = Lifecycle()
    for event, status in steps:
        life.apply(event)
        assert life.status == status, (event.type, life.status)
        assert life.status in STATUSES
    assert life.ended


def test_status_is_the_same_for_every_arrival_order():
    events = [_e(ev.ParentSampled), _e(ev.ProposalCreated, revision=0), _e(ev.TrainingFailed, revision=0),
              _e(ev.ProposalCreated, revision=1), _e(ev.ResultsReady, revision=1), _e(ev.ScoreAssigned, fitness=0.4)]
    statuses = {fold(order).status for order in itertools.permutations(events)}
    assert statuses == {"analysing"}


def test_insights_end_an_experiment_only_with_the_result_and_score_they_follow():
    """The archive reads several topics, which are not ordered with each other: an InsightsStored can be read
    before its ResultsReady or ScoreAssigned. The experiment ends once all three are in, in any order."""
    events = [_e(ev.ResultsReady, revision=0), _e(ev.ScoreAssigned, fitness=0.6), _e(ev.InsightsStored)]
    for order in itertools.permutations(events):
        life = Lifecycle()
        for i, e in enumerate(order):
            life.apply(e)
            assert life.ended == (i == 2), [x.type for x in order[:i + 1]]
    assert fold([_e(ev.ResultsReady, revision=0), _e(ev.ScoreAssigned, fitness=None), _e(ev.InsightsStored)]).ended
    assert not fold([_e(ev.InsightsStored), _e(ev.ScoreAssigned, fitness=0.2)]).ended


def test_other_endings():
    assert fold([_e(ev.ParentSampled), _e(ev.ProposalRejected), _e(ev.ExperimentAbandoned)]).status == "rejected-only"
    gave_up = fold([_e(ev.ProposalCreated, revision=0), _e(ev.TrainingFailed, revision=0), _e(ev.ExperimentAbandoned)])
    assert gave_up.status == "abandoned" and gave_up.ended
    error = fold([_e(ev.ResultsReady, revision=0), _e(ev.ScoreAssigned, fitness=None)])
    assert error.status == "score_error" and not error.ended
    late = _e(ev.ScoreAssigned, fitness=0.7, rescore_of="the-error-score")
    assert fold([_e(ev.ResultsReady, revision=0), _e(ev.ScoreAssigned, fitness=None), late]).status == "analysing"
    other_scheme_error = _e(ev.ScoreAssigned, fitness=None, rescore_of="x")   # a rescoring changes no state
    assert fold([_e(ev.ResultsReady, revision=0), other_scheme_error]).status == "scoring"
    assert fold([_e(ev.ExperimentImported)]).status == "done"


def test_which_runs_are_over():
    life = fold([_e(ev.ProposalCreated, revision=0)])
    assert not life.run_over(0)
    life.apply(_e(ev.TrainingFailed, revision=0))
    assert life.run_over(0) and not life.run_over(1)
    life.apply(_e(ev.ProposalCreated, revision=1))
    assert not life.run_over(1)
    life.apply(_e(ev.ProposalCreated, revision=2))   # superseded before it failed
    assert life.run_over(1) and not life.run_over(2)
    life.apply(_e(ev.ResultsReady, revision=2))
    assert life.run_over(2)


def test_campaign_events_and_heartbeats_change_no_lifecycle():
    assert not concerns(sample_event(ev.CampaignStarted)) and not concerns(sample_event(ev.TrainingProgress))
    assert Lifecycle().apply(sample_event(ev.TrainingProgress)) is None


def test_a_stored_document_is_folded_in_place():
    doc = {"experiment_id": "x"}
    Lifecycle.of(doc).apply(_e(ev.ProposalCreated, revision=3))
    assert doc["facts"] == {"proposed": True} and doc["revisions"]["proposed"] == 3
    assert Lifecycle.of(doc).status == "training"
