"""The three services wired on a real Kafka-protocol broker (noida-db) and milvus-lite:
cognition publishes and indexes its seed, the judge scores, the analyst joins and retrieves."""
import asyncio

import pytest

from schemas import codec
from schemas import events as ev
from schemas.topics import topic_for
from services.analyst.main import build as build_analyst
from services.cognition.main import build as build_cognition
from services.cognition.seed import load_seed
from services.common.bus import publish_events
from services.common.log_reader import read_log
from services.common.settings import Settings
from services.judge.main import build as build_judge

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DELTANET = {"memory": "delta", "feature_map": "silu", "qk_norm": "l2", "beta": "sigmoid", "short_conv": True}


async def collect(bootstrap, cls):
    out = []
    async for rec in read_log(bootstrap, [topic_for(cls)]):
        out.append(codec.decode(rec.value))
    return out


async def test_results_to_score_to_insights_with_cognitions(kafka_broker, tmp_path):
    def settings(name):
        return Settings(kafka_bootstrap=kafka_broker, data_dir=tmp_path / name, partitions=4, handler_retries=1,
                        milvus_uri=str(tmp_path / "milvus.db"), llm_base_url=None, llm_api_key=None)

    services = [build_cognition(settings("cognition")), build_judge(settings("judge")),
                build_analyst(settings("analyst"))]
    for svc in services:
        await svc.start()
    try:
        c = "camp-w"
        events = [
            ev.ProposalCreated(campaign_id=c, experiment_id="b", name="deltanet", code="x=1", motivation="zoo",
                               role="baseline", design=DELTANET),
            ev.ProposalCreated(campaign_id=c, experiment_id="k", name="no-conv", code="x=2", parent_id="b",
                               motivation="drop the conv", design={**DELTANET, "short_conv": False}),
            ev.ResultsReady(campaign_id=c, experiment_id="b", name="deltanet", role="baseline", final_loss=2.0,
                            benchmark=0.5, metrics={"mqar_recall/acc": 0.9}),
        ]
        await publish_events(services[1].broker, events)
        await asyncio.sleep(1.0)  # the archive runs baselines before candidates
        await publish_events(services[1].broker, [
            ev.ResultsReady(campaign_id=c, experiment_id="k", name="no-conv", final_loss=2.4, benchmark=0.35,
                            metrics={"mqar_recall/acc": 0.3})])
        deadline = asyncio.get_running_loop().time() + 90
        insights = []
        while asyncio.get_running_loop().time() < deadline:
            insights = [e for e in await collect(kafka_broker, ev.InsightsStored) if e.experiment_id == "k"]
            if insights:
                break
            await asyncio.sleep(0.5)
        assert insights, "no InsightsStored for the candidate"
        scores = {e.experiment_id: e for e in await collect(kafka_broker, ev.ScoreAssigned)}
        assert scores["b"].fitness == pytest.approx(0.5)
        # scales are 10 x the profile's seed noise (cpu-tiny, the results' default profile):
        # loss 2.4 vs 2.0 -> σ(6·clip(-0.4 / (10·noise_loss))); bench 0.35 vs 0.5 -> σ(6·clip(-0.15 / (10·noise_bench)))
        from lab.judging.fitness import clip, resolve_noise, sigmoid
        noise = resolve_noise("cpu-tiny")
        expected = (sigmoid(6 * clip(-0.4 / (10 * noise.loss)))
                    + sigmoid(6 * clip(-0.15 / (10 * noise.benchmark)))) / 2
        assert 0 < expected < 0.02   # far worse than the baseline on both metrics
        assert scores["k"].fitness == pytest.approx(expected, abs=1e-6)
        ins = insights[0]
        assert ins.offline and ins.ablation["changed"] == {"short_conv": {"parent": True, "child": False}}
        assert ins.cognition_ids and all(i.startswith("seed:") for i in ins.cognition_ids)
        seeded = await collect(kafka_broker, ev.CognitionIngested)
        assert len({e.cognition_id for e in seeded}) == len(load_seed())
    finally:
        for svc in reversed(services):
            await svc.stop()
