"""Novelty: exact program repeats, similar motivations, LLM judge, and never its own duplicate."""
from services.researcher.codegen import render
from services.researcher.genome import ZOO_DESIGNS
from services.researcher.novelty import NoveltyChecker
from tests.researcher.fakes import FakeEmbedder, FakeVectorStore

CODE_A = render(ZOO_DESIGNS["deltanet"], "a")
CODE_B = render(ZOO_DESIGNS["gla"], "b")


async def test_same_program_is_a_duplicate_even_with_another_motivation():
    nov = NoveltyChecker(FakeEmbedder(), FakeVectorStore())
    await nov.remember(campaign_id="c", experiment_id="e1", name="first", motivation="add a delta rule", code=CODE_A)
    v = await nov.check(campaign_id="c", experiment_id="e2", name="second", motivation="something else entirely",
                        code=render(ZOO_DESIGNS["deltanet"], "renamed", "new words"))
    assert v.duplicate and v.similar[0].experiment_id == "e1" and v.evidence["exact"]
    assert "e1" in v.feedback and "'first'" in v.feedback and "same program" in v.feedback


async def test_similar_motivation_over_threshold_is_a_duplicate_and_other_campaigns_do_not_count():
    nov = NoveltyChecker(FakeEmbedder(), FakeVectorStore(), threshold=0.9)
    await nov.remember(campaign_id="c", experiment_id="e1", name="gla-x", motivation="replace fixed decay by a "
                       "data dependent gate to improve recall", code=CODE_B)
    await nov.remember(campaign_id="other", experiment_id="e9", name="z", motivation="replace fixed decay by a "
                       "data dependent gate to improve recall", code=CODE_A)
    dup = await nov.check(campaign_id="c", experiment_id="e2", name="n", code=CODE_A,
                          motivation="replace fixed decay by a data dependent gate to improve recall")
    assert dup.duplicate and [s.experiment_id for s in dup.similar] == ["e1"] and dup.similar[0].similarity > 0.99
    new = await nov.check(campaign_id="c", experiment_id="e2", name="n", code=CODE_A,
                          motivation="sparse relu features with a wider short convolution")
    assert not new.duplicate and new.similar  # neighbours are still reported


async def test_a_redelivered_experiment_is_not_its_own_duplicate():
    nov = NoveltyChecker(FakeEmbedder(), FakeVectorStore())
    await nov.remember(campaign_id="c", experiment_id="e1", name="a", motivation="m", code=CODE_A)
    v = await nov.check(campaign_id="c", experiment_id="e1", name="a", motivation="m", code=CODE_A)
    assert not v.duplicate


async def test_llm_judge_decides_with_the_neighbours_in_its_prompt(scripted_llm, tmp_path):
    from services.common.llm import LLMClient
    nov = NoveltyChecker(FakeEmbedder(), FakeVectorStore(), llm=LLMClient(scripted_llm.settings(tmp_path),
                                                                          backoff_s=0.01))
    await nov.remember(campaign_id="c", experiment_id="e1", name="gated-recall", motivation="gate the decay", code=CODE_B)
    scripted_llm.reply_json({"duplicate": True, "repeats_experiment_id": "e1", "explanation": "same gated decay"})
    v = await nov.check(campaign_id="c", experiment_id="e2", name="n", motivation="gate the forgetting", code=CODE_A)
    assert v.duplicate and "same gated decay" in v.feedback and v.usage.calls == 1
    assert "gated-recall" in scripted_llm.prompt(0) and scripted_llm.requests[0]["model"]


from tests.support.scripted_llm import scripted_llm  # noqa: E402,F401
