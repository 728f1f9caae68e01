"""The researcher service on the real embedded broker, with real embeddings and a milvus-lite store."""
import asyncio

import pytest

from schemas import events as ev
from services.common.bus import Service, publish_events
from services.common.settings import Settings
from services.researcher import main as researcher_main
from services.researcher.codegen import render
from services.researcher.genome import ZOO_DESIGNS

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def wait_for(predicate, timeout=120.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.1)


def parent_sampled(experiment_id: str) -> ev.ParentSampled:
    parent = ev.ProgramSnapshot(experiment_id="base-1", name="deltanet", code=render(ZOO_DESIGNS["deltanet"], "deltanet"))
    return ev.ParentSampled(campaign_id="camp-int", experiment_id=experiment_id, parent=parent, seed=3,
                            profile="cpu-micro", draw={"phase": "cold_start"})


async def test_parent_sampled_in_proposal_created_out_and_identical_draw_retried(kafka_broker, tmp_path):
    settings = Settings(kafka_bootstrap=kafka_broker, data_dir=tmp_path / "researcher", partitions=4)
    researcher = researcher_main.build(settings, milvus_uri=str(tmp_path / "novelty.db"))
    seen: list[ev.Event] = []
    collector = Service("collector", Settings(kafka_bootstrap=kafka_broker, data_dir=tmp_path / "collector",
                                              partitions=4))
    for cls in (ev.ProposalCreated, ev.ProposalRejected, ev.ExperimentAbandoned):
        async def collect(event):
            seen.append(event)
        collector.on(cls, collect)
    await researcher.start()
    await collector.start()
    try:
        await publish_events(collector.broker, [parent_sampled("exp-1")])
        await wait_for(lambda: any(e.type == "ProposalCreated" and e.experiment_id == "exp-1" for e in seen))
        first = next(e for e in seen if e.experiment_id == "exp-1")
        assert first.type == "ProposalCreated" and first.checks["passed"] and first.origin == "offline"

        await publish_events(collector.broker, [parent_sampled("exp-2")])  # same parent, seed and draw
        await wait_for(lambda: {e.type for e in seen if e.experiment_id == "exp-2"} >= {"ProposalRejected",
                                                                                     "ProposalCreated"})
        await asyncio.sleep(1.0)  # nothing else may follow
        # two topics: the collector may read them in either order, the attempt numbers tell the story
        second = sorted((e for e in seen if e.experiment_id == "exp-2"), key=lambda e: e.attempt)
        assert [e.type for e in second] == ["ProposalRejected", "ProposalCreated"]
        assert second[0].reason == "duplicate" and second[0].name == first.name
        assert second[0].similar[0].experiment_id == "exp-1"
        assert second[1].attempt == 2 and second[1].code_hash != first.code_hash
    finally:
        await collector.stop()
        await researcher.stop()
