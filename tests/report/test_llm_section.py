"""The report's LLM section and `archlab show`'s LLM table: what each role was asked and answered."""
from schemas import events as ev
from services.cli.llm_audit import llm_section_html, requests_of_record
from services.common.llm import prompt_store
from services.researcher.routing import Arm


def test_llm_section_lists_every_request_with_its_prompt_escaped(tmp_path):
    store = prompt_store(tmp_path)
    store.put("abc123", {"role": "planner", "messages": [{"role": "system", "content": "s"},
                                                          {"role": "user", "content": "<script>x</script> parent"}],
                         "answer": {"name": "n<b>"}})
    reqs = [ev.LLMRequest(role="planner", model="gpt-4.1", digest="abc123", seed=42, prompt_tokens=10,
                          completion_tokens=5, cost_usd=0.001),
            ev.LLMRequest(role="judge", model="m", digest="missing")]
    html = llm_section_html([("exp-1", "layer", reqs)], store.root, {"gpt-4.1": Arm("gpt-4.1", 1, 0.2, 0.7, 0.001, 1)})
    assert html.count("<tr><td>layer") == 2 and ">42<" in html
    assert html.count("<details class='llm-call'>") == 1 and "llm/prompts/abc123.json" in html
    assert "<script>" not in html and "&lt;script&gt;" in html and "n&lt;b&gt;" in html
    assert "id='models-table'" in html and "<td>gpt-4.1</td>" in html
    assert llm_section_html([("exp-1", "layer", [])], store.root) == ""


def test_requests_of_a_show_record_come_from_attempts_score_and_insights():
    req = {"role": "planner", "model": "m", "digest": "d1"}
    rec = {"attempts": [{"kind": "rejected", "attempt": 1, "usage": {"requests": [req]}},
                        {"kind": "failure", "attempt": 1},
                        {"kind": "proposal", "attempt": 2, "revision": 0, "usage": {"requests": [req]}}],
           "scores": [{"usage": {"requests": [{"role": "judge", "digest": "d2"}]}}, {"usage": None}],
           "experiment": {"insights": {"usage": None}}}
    got = requests_of_record(rec)
    assert [(r["on"], r["role"]) for r in got] == [("ProposalRejected a1 r0", "planner"),
                                                    ("ProposalCreated a2 r0", "planner"), ("ScoreAssigned", "judge")]
