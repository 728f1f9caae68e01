"""The shared LLM client against a real scripted OpenAI-compatible HTTP server."""
import pytest
from pydantic import BaseModel

from services.common.llm import LLMClient, LLMInvalidOutput, LLMUnavailable, parse_json_content
from services.common.settings import Settings
from tests.support.scripted_llm import scripted_llm  # noqa: F401


class Answer(BaseModel):
    name: str
    score: int


MSG = [{"role": "user", "content": "rate this"}]


def client(scripted, tmp_path, **kw):
    return LLMClient(scripted.settings(tmp_path, **kw), backoff_s=0.01)


def test_json_answer_usage_and_model_per_role(scripted_llm, tmp_path):
    scripted_llm.reply_json({"name": "a", "score": 3}, prompt_tokens=1000, completion_tokens=500)
    c = client(scripted_llm, tmp_path, llm_model="gpt-4.1-mini", llm_model_judge="gpt-4.1")
    answer, usage = c.complete_json("judge", MSG, Answer)
    assert answer == Answer(name="a", score=3)
    body = scripted_llm.requests[0]
    assert body["model"] == "gpt-4.1"
    assert body["response_format"]["type"] == "json_schema"
    assert usage.calls == 1 and usage.prompt_tokens == 1000 and usage.completion_tokens == 500
    assert usage.cost_usd == pytest.approx((1000 * 2.0 + 500 * 8.0) / 1e6)


def test_retries_429_and_500_with_backoff(scripted_llm, tmp_path):
    scripted_llm.reply_status(429)
    scripted_llm.reply_status(500)
    scripted_llm.reply_json({"name": "b", "score": 1}, fenced=True)
    answer, usage = client(scripted_llm, tmp_path).complete_json("planner", MSG, Answer)
    assert answer.name == "b" and scripted_llm.request_count == 3
    assert usage.calls == 1  # one answered call; transport retries are not answers


def test_invalid_json_is_retried_with_the_validation_error(scripted_llm, tmp_path):
    scripted_llm.reply_text("Sure! here it is: {name: oops}")
    scripted_llm.reply_json({"name": "c", "score": "not a number"})
    scripted_llm.reply_json({"name": "c", "score": 7})
    answer, usage = client(scripted_llm, tmp_path).complete_json("planner", MSG, Answer)
    assert answer.score == 7 and usage.calls == 3
    second, third = scripted_llm.prompt(1), scripted_llm.prompt(2)
    assert "Your answer was invalid" in second and "no JSON object" in second
    assert "score" in third and "valid integer" in third  # pydantic's message reached the model


def test_invalid_output_raised_after_retries(scripted_llm, tmp_path):
    for _ in range(3):
        scripted_llm.reply_text("no json here")
    with pytest.raises(LLMInvalidOutput) as err:
        client(scripted_llm, tmp_path).complete_json("planner", MSG, Answer)
    assert err.value.usage.calls == 3 and "no json here" in err.value.raw


def test_malformed_http_body_is_retried(scripted_llm, tmp_path):
    scripted_llm.reply_malformed()
    scripted_llm.reply_json({"name": "d", "score": 2})
    answer, _ = client(scripted_llm, tmp_path).complete_json("planner", MSG, Answer)
    assert answer.name == "d" and scripted_llm.request_count == 2


def test_tool_call_answer_is_accepted(scripted_llm, tmp_path):
    scripted_llm.reply_tool_call("answer", {"name": "e", "score": 5})
    answer, _ = client(scripted_llm, tmp_path).complete_json("planner", MSG, Answer)
    assert answer == Answer(name="e", score=5)


def test_repeated_request_is_cached_without_http(scripted_llm, tmp_path):
    scripted_llm.reply_json({"name": "f", "score": 4})
    c = client(scripted_llm, tmp_path)
    first, u1 = c.complete_json("planner", MSG, Answer)
    again, u2 = LLMClient(scripted_llm.settings(tmp_path)).complete_json("planner", MSG, Answer)  # new process-like client
    assert again == first and scripted_llm.request_count == 1
    assert u2.cached_calls == 1 and u2.cost_usd == 0 and u1.cached_calls == 0


def test_server_without_json_schema_support_falls_back(scripted_llm, tmp_path):
    scripted_llm.reply_status(400, "response_format json_schema is not supported")
    scripted_llm.reply_json({"name": "g", "score": 0})
    answer, _ = client(scripted_llm, tmp_path).complete_json("planner", MSG, Answer)
    assert answer.name == "g" and "response_format" not in scripted_llm.requests[1]


def test_unconfigured_client_is_unavailable(tmp_path):
    with pytest.raises(LLMUnavailable):
        LLMClient(Settings(data_dir=tmp_path)).complete_json("planner", MSG, Answer)


def test_parse_json_content_variants():
    assert parse_json_content('```json\n{"a": 1}\n```') == {"a": 1}
    assert parse_json_content('Here: {"a": {"b": 2}} done') == {"a": {"b": 2}}


def test_seed_is_sent_keys_the_cache_and_is_recorded(scripted_llm, tmp_path):
    scripted_llm.reply_json({"name": "s1", "score": 1})
    scripted_llm.reply_json({"name": "s2", "score": 2})
    c = client(scripted_llm, tmp_path)
    a1, u1 = c.complete_json("planner", MSG, Answer, seed=11)
    again, u_again = c.complete_json("planner", MSG, Answer, seed=11)   # a redelivery: the cache reproduces it
    a2, u2 = c.complete_json("planner", MSG, Answer, seed=12)           # a new attempt: asked anew
    assert (a1.name, again.name, a2.name) == ("s1", "s1", "s2")
    assert scripted_llm.request_count == 2
    assert [r["seed"] for r in scripted_llm.requests] == [11, 12]
    assert [u.requests[0].seed for u in (u1, u_again, u2)] == [11, 11, 12]
    assert u_again.requests[0].cached and not u1.requests[0].cached
    assert u1.requests[0].digest == u_again.requests[0].digest != u2.requests[0].digest


def test_server_refusing_a_seed_keeps_it_in_the_key(scripted_llm, tmp_path):
    scripted_llm.reply_status(400, "unknown parameter: seed")
    scripted_llm.reply_json({"name": "n", "score": 0})
    answer, usage = client(scripted_llm, tmp_path).complete_json("planner", MSG, Answer, seed=5)
    assert answer.name == "n" and "seed" not in scripted_llm.requests[1] and usage.requests[0].seed == 5


def test_prompt_store_keeps_what_was_asked_and_answered(scripted_llm, tmp_path):
    from services.common.llm import merge_usage, prompt_store

    scripted_llm.reply_text("not json")
    scripted_llm.reply_json({"name": "p", "score": 9}, prompt_tokens=10, completion_tokens=5)
    scripted_llm.reply_json({"name": "q", "score": 1}, prompt_tokens=20, completion_tokens=5)
    c = client(scripted_llm, tmp_path, llm_model="gpt-4.1-mini")
    _, u1 = c.complete_json("judge", MSG, Answer)
    _, u2 = c.complete_json("analyst", [{"role": "user", "content": "analyse"}], Answer)
    record = prompt_store(tmp_path).get(u1.requests[0].digest)
    assert record["role"] == "judge" and record["messages"] == MSG and record["answer"] == {"name": "p", "score": 9}
    assert len(record["invalid_answers"]) == 1 and u1.requests[0].calls == 2
    merged = merge_usage(u1, u2)
    assert [r.role for r in merged.requests] == ["judge", "analyst"]
    assert merged.calls == 3 and sum(r.calls for r in merged.requests) == merged.calls
    assert sum(r.cost_usd for r in merged.requests) == pytest.approx(merged.cost_usd)
