"""The analyst: joins proposal, results and score; compares with parent, siblings and baseline;
quasi-ablation; offline sections; the five LLM sections as separate fields; cognition retrieval."""
import pytest

from schemas import events as ev
from services.analyst.analysis import OFFLINE, SECTIONS
from services.analyst.compare import code_diff
from services.analyst.handlers import (on_insights_stored, on_proposal_created, on_results_ready,
                                       on_score_assigned)
from services.analyst.state import AnalystState
from services.common.cognition_model import to_event
from services.cognition.handlers import on_cognition_ingested
from services.common.cognition_base import CognitionBase
from services.cognition.seed import load_seed
from services.common.embeddings import Embedder
from services.common.llm import LLMClient
from services.common.vectors import VectorStore
from tests.support.scripted_llm import scripted_llm  # noqa: F401  (fixture)

C = "camp"
DELTANET = {"memory": "delta", "feature_map": "silu", "qk_norm": "l2", "beta": "sigmoid",
            "short_conv": True, "output_norm": "rmsnorm", "output_gate": "none"}


def proposal(exp, design=None, parent=None, code="x = 1", role="candidate", motivation="m"):
    return ev.ProposalCreated(campaign_id=C, experiment_id=exp, name=exp, code=code, motivation=motivation,
                              role=role, parent_id=parent, design=design, producer="test")


def results(exp, loss, bench, mqar, role="candidate"):
    return ev.ResultsReady(campaign_id=C, experiment_id=exp, name=exp, role=role, final_loss=loss,
                           benchmark=bench, metrics={"mqar_recall/acc": mqar, "mqar_mc/acc": bench},
                           producer="test")


def score(res: ev.ResultsReady, fitness, baseline="base", **kw):
    return res.caused(ev.ScoreAssigned, producer="test", fitness=fitness, baseline_experiment_id=baseline, **kw)


async def feed(events, **deps):
    out = []
    for e in events:
        handler = {ev.ProposalCreated: on_proposal_created, ev.ResultsReady: on_results_ready,
                   ev.ScoreAssigned: on_score_assigned}[type(e)]
        out += await handler(e, **deps)
    return out


@pytest.fixture(scope="module")
def seeded_base(tmp_path_factory):
    import asyncio

    embedder = Embedder.from_settings(None)
    base = CognitionBase(VectorStore(str(tmp_path_factory.mktemp("m") / "milvus.db"), "cognitions", embedder.dim),
                         embedder)

    async def ingest():
        for e in load_seed():
            await on_cognition_ingested(to_event(e), base=base)
    asyncio.run(ingest())
    return base


def campaign():
    """A baseline (also the parent) and two children: one drops the short conv, one adds an output gate."""
    base_r = results("base", 2.0, 0.50, 0.90, role="baseline")
    no_conv_r = results("no-conv", 2.3, 0.42, 0.30)
    gate_r = results("gate", 1.95, 0.52, 0.91)
    return [
        proposal("base", DELTANET, role="baseline"), base_r, score(base_r, 0.5),
        proposal("gate", {**DELTANET, "output_gate": "swish"}, parent="base"), gate_r, score(gate_r, 0.7),
        # the analysed child, its events arriving out of order: score, results, then proposal
        score(no_conv_r, 0.05), no_conv_r,
        proposal("no-conv", {**DELTANET, "short_conv": False}, parent="base",
                 motivation="Remove the short convolution to test whether the delta rule alone suffices."),
    ]


async def test_offline_analysis_names_the_changed_mechanism(seeded_base):
    state = AnalystState()
    out = await feed(campaign(), state=state, base=seeded_base)
    assert [e.experiment_id for e in out] == ["base", "gate", "no-conv"]   # one analysis per complete triple
    ins = out[-1]
    assert isinstance(ins, ev.InsightsStored) and ins.offline and ins.producer == "analyst"
    assert ins.experiment_id == "no-conv" and ins.campaign_id == C

    # quasi-ablation: exactly the gene that changed, and the metrics that moved
    assert ins.ablation["source"] == "design"
    assert ins.ablation["changed"] == {"short_conv": {"parent": True, "child": False}}
    moved = ins.ablation["moved"]
    assert moved["mqar_recall/acc"]["delta"] == pytest.approx(-0.6) and moved["mqar_recall/acc"]["better"] is False
    assert moved["final_loss"]["better"] is False
    assert ins.ablation["siblings"]["rank"] == 2 and ins.ablation["siblings"]["best_id"] == "gate"
    assert ins.ablation["baseline_id"] == "base"

    # five sections, offline marked where judgement would be needed; the numbers are there
    for name in SECTIONS:
        assert getattr(ins, name), name
    assert ins.design_evaluation.startswith(OFFLINE) and "short_conv: True -> False" in ins.design_evaluation
    assert OFFLINE in ins.expectation_vs_reality and OFFLINE in ins.theoretical_explanation
    assert "rank 2 of 2" in ins.results_analysis and "mqar_recall/acc 0.9 -> 0.3" in ins.results_analysis
    assert "short_conv" in ins.experience and "hurt" in ins.experience

    # the shortcomings query retrieved recall-related cognitions
    assert "associative recall" in ins.ablation["query"]
    assert set(ins.cognition_ids) & {"seed:short-convolution", "seed:recall-memory-tradeoff",
                                     "seed:delta-rule-fast-weights", "seed:gated-deltanet"}
    assert len(ins.cognition_summaries) == len(ins.cognition_ids)


async def test_redelivery_and_rescores_do_not_duplicate():
    state = AnalystState()
    events = campaign()
    out = await feed(events, state=state)
    assert len(out) == 3 and out[-1].cognition_ids == []          # no cognition base: still an analysis
    again_before_read_back = await feed(events, state=state)       # not yet in the log: analysed again,
    assert {e.event_id for e in again_before_read_back} == {e.event_id for e in out}  # as the same facts
    for insights in out:                                            # published and read back: marked
        await on_insights_stored(insights, state=state)
    assert await feed(events, state=state) == []                    # redelivered: analysed already
    no_conv_r = events[-2]
    rescore = score(no_conv_r, 0.2, scheme="bench-only", rescore_of="x", discriminator="r")
    assert await on_score_assigned(rescore, state=state) == []
    # a fresh state reading the same events gives the same InsightsStored id (deterministic)
    again = await feed(list(reversed(events)), state=AnalystState())
    assert {e.event_id for e in again} == {e.event_id for e in out}


def test_code_diff_names_components_when_there_is_no_genome():
    parent = ("import torch.nn as nn\nclass DeltaNet(nn.Module):\n    def __init__(self, d):\n"
              "        super().__init__()\n        self.q = nn.Linear(d, d)\n        self.conv = nn.Conv1d(d, d, 4)\n"
              "    def forward(self, x):\n        return self.conv(self.q(x))\n")
    child = ("import torch.nn as nn\nclass DeltaNet(nn.Module):\n    def __init__(self, d):\n"
             "        super().__init__()\n        self.q = nn.Linear(d, d)\n        self.gate = nn.Linear(d, d)\n"
             "    def forward(self, x):\n        return self.q(x) * self.gate(x).sigmoid()\n")
    diff = code_diff(parent, child)
    assert diff == {"added": ["DeltaNet.self.gate"], "removed": ["DeltaNet.self.conv"],
                    "modified": ["DeltaNet.__init__", "DeltaNet.forward"]}


async def test_code_based_ablation_in_the_event():
    state = AnalystState()
    p_code = "class DeltaNet:\n    def __init__(self):\n        self.a = 1\n    def forward(self, x):\n        return x\n"
    c_code = "class DeltaNet:\n    def __init__(self):\n        self.a = 1\n    def forward(self, x):\n        return 2 * x\n"
    pr, cr = results("p", 2.0, 0.5, 0.9, role="baseline"), results("c", 2.0, 0.5, 0.9)
    out = await feed([proposal("p", code=p_code, role="baseline"), pr, score(pr, 0.5, baseline="p"),
                      proposal("c", code=c_code, parent="p"), cr, score(cr, 0.5, baseline="p")], state=state)
    ins = out[-1]
    assert ins.ablation["source"] == "code"
    assert ins.ablation["changed"]["modified"] == ["DeltaNet.forward"]
    assert "no clear change" in ins.experience


async def test_llm_analysis_gives_five_separate_sections(scripted_llm, tmp_path, seeded_base):  # noqa: F811
    answer = {"design_evaluation": "DE: removing the conv removes the token shift.",
              "results_analysis": "RA: recall collapsed from 0.9 to 0.3.",
              "expectation_vs_reality": "EVR: expected parity, got a collapse.",
              "theoretical_explanation": "TE: keys cannot encode the previous token.",
              "synthesis": "SY: keep the short convolution.",
              "shortcomings": "cannot learn associative recall without local token mixing",
              "experience": "Short convolutions are required for recall."}
    scripted_llm.responder = lambda body: {"content": __import__("json").dumps(answer), "usage": (300, 120)}
    llm = LLMClient(scripted_llm.settings(tmp_path), cache=False)
    state = AnalystState()
    out = await feed(campaign(), state=state, llm=llm, base=seeded_base)
    ins = out[-1]
    assert not ins.offline
    assert ins.design_evaluation == answer["design_evaluation"] and ins.results_analysis == answer["results_analysis"]
    assert ins.expectation_vs_reality == answer["expectation_vs_reality"]
    assert ins.theoretical_explanation == answer["theoretical_explanation"] and ins.synthesis == answer["synthesis"]
    assert ins.experience == answer["experience"]
    assert ins.usage.calls == 1 and ins.usage.prompt_tokens == 300
    assert ins.ablation["query"] == answer["shortcomings"] and ins.cognition_ids
    assert ins.ablation["changed"] == {"short_conv": {"parent": True, "child": False}}   # facts still computed
    prompt = scripted_llm.prompt(-1)
    assert "short_conv" in prompt and "Remove the short convolution" in prompt


async def test_llm_failure_falls_back_to_offline(scripted_llm, tmp_path):  # noqa: F811
    scripted_llm.responder = lambda body: {"status": 500, "message": "down"}
    llm = LLMClient(scripted_llm.settings(tmp_path, llm_max_retries=0), cache=False, backoff_s=0)
    out = await feed(campaign(), state=AnalystState(), llm=llm)
    ins = out[-1]
    assert ins.offline and ins.design_evaluation.startswith(OFFLINE) and "LLM analyst failed" in ins.ablation["note"]


async def test_a_failed_publish_is_retried_and_gives_exactly_one_insights(tmp_path):
    """Service.handle with a broker whose first publish of InsightsStored fails: the message is not
    committed, its redelivery analyses again, and the log ends with exactly one InsightsStored."""
    import functools

    from schemas import codec
    from schemas.topics import topic_for
    from services.common.bus import Service
    from services.common.settings import Settings

    class FlakyBroker:
        def __init__(self):
            self.log, self.failed = [], False

        async def publish(self, body, *, topic, key=None, headers=None):
            if topic == topic_for(ev.InsightsStored) and not self.failed:
                self.failed = True
                raise ConnectionError("broker away (test)")
            self.log.append((topic, body))

    svc = Service("analyst", Settings(data_dir=tmp_path, handler_retries=0))
    svc._broker = broker = FlakyBroker()
    state = AnalystState()
    for cls, fn in ((ev.ProposalCreated, on_proposal_created), (ev.ResultsReady, on_results_ready),
                    (ev.ScoreAssigned, on_score_assigned)):
        svc.on(cls, functools.partial(fn, state=state))
    svc.on(ev.InsightsStored, functools.partial(on_insights_stored, state=state))

    async def deliver(event):  # at-least-once: an uncommitted message comes back
        for _ in range(3):
            try:
                return await svc.handle("analyst", topic_for(event), codec.encode(event))
            except ConnectionError:
                continue
        raise AssertionError("never handled")

    events = campaign()
    for e in events:
        await deliver(e)
    insights = [codec.decode(body) for topic, body in broker.log if topic == topic_for(ev.InsightsStored)]
    assert broker.failed and len(insights) == 3 and len({i.experiment_id for i in insights}) == 3
    for i in insights:  # the analyst reads its own InsightsStored back: marked, later redeliveries are no-ops
        await deliver(i)
    for e in events:  # redelivered (a new consumer of the group, say): nothing new
        await deliver(e)
    assert len([1 for topic, _ in broker.log if topic == topic_for(ev.InsightsStored)]) == 3
