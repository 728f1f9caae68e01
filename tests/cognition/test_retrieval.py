"""The cognition base on a real milvus-lite: ingest by events through the handler, search by shortcoming."""
import pytest

from services.cognition.corpus import parse_corpus_dir
from services.cognition.handlers import on_cognition_ingested
from services.common.cognition_model import to_event
from services.common.cognition_base import CognitionBase
from services.cognition.seed import load_seed
from services.common.vectors import VectorStore

SHORTCOMING = "poor long-range recall on lambada, fails associative recall"


def make_base(tmp_path, embedder, name="cognitions"):
    return CognitionBase(VectorStore(str(tmp_path / "milvus.db"), name, embedder.dim), embedder)


async def test_seed_ingested_by_events_and_retrieved_by_shortcoming(tmp_path, embedder):
    base = make_base(tmp_path, embedder)
    for event in [to_event(e) for e in load_seed()]:
        await on_cognition_ingested(event, base=base)
    assert base.count() == len(load_seed())
    await on_cognition_ingested(to_event(load_seed()[0]), base=base)   # replay: no duplicate
    assert base.count() == len(load_seed())

    hits = base.search(SHORTCOMING, k=3)
    assert hits and all(h.score >= base.min_score for h in hits)
    assert [h.score for h in hits] == sorted([h.score for h in hits], reverse=True)
    assert {h.cognition_id for h in hits} & {"seed:recall-memory-tradeoff", "seed:delta-rule-fast-weights",
                                             "seed:short-convolution", "seed:gated-deltanet"}
    top = hits[0]
    assert top.design_insight and top.paper_key.startswith("arxiv:") and top.summary().startswith("[arxiv:")

    unstable = base.search("training diverges, loss becomes NaN, state norm grows without bound", k=2)
    assert {h.cognition_id for h in unstable} & {"seed:qk-normalisation", "seed:output-norm-gate", "seed:retnet-decay"}
    assert base.search(SHORTCOMING, k=3, min_score=0.99) == []
    assert all(h.origin == "seed" for h in base.search(SHORTCOMING, k=3, filter='origin == "seed"'))


@pytest.mark.slow
async def test_reference_corpus_import_and_recall_query(tmp_path, embedder, corpus_dir):
    entries, errors = parse_corpus_dir(corpus_dir)
    base = make_base(tmp_path, embedder)
    for event in [to_event(e) for e in entries]:
        await on_cognition_ingested(event, base=base)
    assert errors == [] and base.count() == 230

    hits = base.search(SHORTCOMING, k=5, min_score=0.0)
    keys = [h.paper_key for h in hits]
    # recall-oriented linear-attention papers: DeltaNet, GLA, Gated DeltaNet, Zoology, Based, GSA, ReBased ...
    recall_papers = {"arxiv:2406.06484", "arxiv:2312.06635", "arxiv:2412.06464", "arxiv:2312.04927",
                     "arxiv:2402.18668", "arxiv:2409.07146", "arxiv:2402.10644", "arxiv:2102.11174",
                     "arxiv:2410.06577"}
    assert len(set(keys) & recall_papers) >= 2, keys
    unrelated = {"arxiv:2305.14314", "arxiv:2211.17192", "arxiv:2403.03507"}  # QLoRA, speculative decoding, GaLore
    assert not set(h.paper_key for h in base.search(SHORTCOMING, k=10, min_score=0.0)) & unrelated
