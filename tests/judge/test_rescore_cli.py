"""`archlab rescore` against a real broker: reads results and scores from the log, publishes new scores."""
import asyncio

import pytest
import typer
from typer.testing import CliRunner

from schemas import codec
from schemas import events as ev
from schemas.topics import topic_for
from services.cli.judge import parse_weights
from services.cli.main import app
from services.common.bus import ensure_topics, make_broker, publish_events
from services.common.log_reader import read_log
from services.common.settings import Settings
from services.judge.handlers import on_results_ready
from services.judge.state import JudgeState

pytestmark = pytest.mark.integration


def test_parse_weights():
    assert parse_weights("loss=1, benchmark=2,qualitative=0") == {"loss": 1.0, "benchmark": 2.0, "qualitative": 0.0}
    for bad in ("speed=1", "loss", "loss=0,benchmark=0"):
        with pytest.raises(typer.BadParameter):
            parse_weights(bad)


async def _scores(bootstrap):
    return [codec.decode(r.value) async for r in read_log(bootstrap, [topic_for(ev.ScoreAssigned)])]


def test_rescore_command_publishes_a_new_scheme(kafka_broker, tmp_path, monkeypatch):
    settings = Settings(kafka_bootstrap=kafka_broker, data_dir=tmp_path, partitions=4)
    results = [ev.ResultsReady(campaign_id="c", experiment_id=e, name=e, role=role, final_loss=loss, benchmark=b,
                              profile="explore-20m")  # no measured seed noise: the paper's scales
               for e, role, loss, b in [("base", "baseline", 2.0, 0.5), ("low-loss", "candidate", 1.8, 0.495),
                                        ("high-bench", "candidate", 2.0, 0.51)]]

    async def setup():
        state, scores = JudgeState(), []
        for r in results:
            scores += await on_results_ready(r, state=state)
        await ensure_topics(kafka_broker, 4)
        broker = make_broker(settings)
        await broker.start()
        try:
            await publish_events(broker, results + scores)
        finally:
            await broker.stop()
    asyncio.run(setup())

    monkeypatch.setenv("ARCHLAB_KAFKA_BOOTSTRAP", kafka_broker)
    res = CliRunner().invoke(app, ["rescore", "--scheme", "bench-only", "--weights", "benchmark=1",
                                   "--data-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "published 3 ScoreAssigned" in res.output
    scores = asyncio.run(_scores(kafka_broker))
    new = [s for s in scores if s.scheme == "bench-only"]
    old = [s for s in scores if s.scheme == "paper"]
    assert len(old) == 3 and len(new) == 3 and all(s.rescore_of in {o.event_id for o in old} for s in new)
    best_old = max(old, key=lambda s: s.fitness).experiment_id
    best_new = max(new, key=lambda s: s.fitness).experiment_id
    assert (best_old, best_new) == ("low-loss", "high-bench")
