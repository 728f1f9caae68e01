"""The one LLM client every role uses (planner, novelty, debugger, analyst, judge).

    client = LLMClient(settings)
    answer, usage = client.complete_json("planner", messages, PlannerAnswer)   # a validated pydantic model

Any OpenAI-compatible chat-completions endpoint works (OpenAI, Azure, vLLM, Ollama): the model per role
comes from `settings.model_for(role)`, the endpoint from settings.llm_base_url / llm_api_key.
- Transport errors, timeouts, 429 and 5xx are retried with exponential backoff (settings.llm_max_retries).
- The answer is asked for as JSON (response_format json_schema where the server accepts it, and the
  schema in the prompt always); the content is parsed robustly (```json fences, prose around the object,
  tool-call arguments) and validated with pydantic. An invalid answer is retried with the validation
  error appended to the conversation, then raised as `LLMInvalidOutput` (callers record it as an event).
- Tokens and cost (a small price table, 0 for unknown models) are returned as `schemas.events.Usage`.
- Responses are cached in SQLite under settings.data_dir, keyed by a hash of (model, messages, schema, seed):
  a repeated or replayed prompt makes no request and costs nothing (Usage.cached_calls). `seed` is the
  caller's sampling seed (the planner passes a nonce per attempt, sent as the request's `seed`), so a
  redelivered attempt reproduces its answer from the cache while a new attempt asks anew.
- Every question is recorded: the messages and the answer in the prompt store (PromptStore, one JSON file
  per cache key under data_dir/llm/prompts/), and on the returned Usage as an `LLMRequest` (role, model,
  seed, digest), so events say what each role was asked and `archlab show` / the report can print it.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from schemas.events import LLMRequest, Usage
from services.common.sqlite_state import StateDB

T = TypeVar("T", bound=BaseModel)

# USD per 1M tokens (input, output); unknown models cost 0 (e.g. a local vLLM/Ollama model)
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "gpt-4.1": (2.0, 8.0), "gpt-4.1-mini": (0.4, 1.6), "gpt-4.1-nano": (0.1, 0.4),
    "gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6), "o3": (2.0, 8.0), "o4-mini": (1.1, 4.4),
    "gpt-5": (1.25, 10.0), "gpt-5-mini": (0.25, 2.0), "gpt-5-nano": (0.05, 0.4),
}


class LLMError(RuntimeError):
    pass


class LLMUnavailable(LLMError):
    """No LLM is configured (offline mode), or the endpoint stayed unreachable after every retry."""


class LLMInvalidOutput(LLMError):
    """The model's answers did not validate against the schema, even after feedback."""

    def __init__(self, message: str, *, role: str, model: str, raw: str, errors: list[str], usage: Usage):
        super().__init__(message)
        self.role, self.model, self.raw, self.errors, self.usage = role, model, raw, errors, usage


def cost_usd(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    key = model if model in PRICES_PER_MTOK else next(
        (m for m in sorted(PRICES_PER_MTOK, key=len, reverse=True) if model.startswith(m)), None)
    if key is None:
        return 0.0
    pin, pout = PRICES_PER_MTOK[key]
    return round((prompt_tokens * pin + completion_tokens * pout) / 1e6, 8)


def merge_usage(*usages: Usage | None) -> Usage | None:
    """The sum of several usages (None when all are None); the model is the last non-empty one."""
    present = [u for u in usages if u is not None]
    if not present:
        return None
    return Usage(model=next((u.model for u in reversed(present) if u.model), ""),
                 calls=sum(u.calls for u in present), prompt_tokens=sum(u.prompt_tokens for u in present),
                 completion_tokens=sum(u.completion_tokens for u in present),
                 cost_usd=round(sum(u.cost_usd for u in present), 8),
                 cached_calls=sum(u.cached_calls for u in present),
                 requests=[r for u in present for r in u.requests])


_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)


def parse_json_content(text: str) -> Any:
    """The JSON object in a model's answer: bare, in a ```json fence, or surrounded by prose."""
    text = (text or "").strip()
    candidates = [text] + [m.strip() for m in _FENCE.findall(text)]
    if "{" in text:
        candidates.append(text[text.index("{"): text.rindex("}") + 1])
    for c in candidates:
        try:
            return json.loads(c)
        except ValueError:
            continue
    raise ValueError(f"no JSON object found in the answer: {text[:200]!r}")


class ResponseCache:
    """SQLite cache of validated answers; safe across threads and processes (WAL, one locked connection)."""

    SCHEMA = ("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT, content TEXT, "
              "prompt_tokens INTEGER, completion_tokens INTEGER, created REAL)")

    def __init__(self, path: Path):
        self.path = Path(path)
        self._db = StateDB(self.path, self.SCHEMA)

    def get(self, key: str) -> str | None:
        row = self._db.one("SELECT content FROM responses WHERE key = ?", (key,))
        return row[0] if row else None

    def put(self, key: str, model: str, content: str, prompt_tokens: int, completion_tokens: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)",
                         (key, model, content, prompt_tokens, completion_tokens, time.time()))


def request_key(model: str, messages: list[dict], schema: type[BaseModel], seed: int | None = None) -> str:
    body = {"model": model, "messages": messages, "schema": schema.model_json_schema()}
    if seed is not None:  # without a seed the key is what it always was (old caches stay valid)
        body["seed"] = seed
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


class PromptStore:
    """What each role was asked and what it answered: data_dir/llm/prompts/<digest>.json (digest = the cache
    key), written once per question (a cache hit finds its file already there)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        return self.root / f"{digest}.json"

    def put(self, digest: str, record: dict) -> None:
        path = self.path(digest)
        if path.exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(record, indent=1, default=str))
        tmp.replace(path)

    def get(self, digest: str) -> dict | None:
        try:
            return json.loads(self.path(digest).read_text())
        except (OSError, ValueError):
            return None


def prompt_store(data_dir) -> PromptStore:
    return PromptStore(Path(data_dir) / "llm" / "prompts")


def api_key(settings) -> str | None:
    """The LLM key: the content of settings.llm_api_key_file (whitespace stripped) when set, else llm_api_key."""
    path = getattr(settings, "llm_api_key_file", None)
    if not path:
        return getattr(settings, "llm_api_key", None)
    try:
        key = Path(path).read_text().strip()
    except OSError as e:
        raise LLMUnavailable(f"cannot read the LLM key file {path} (ARCHLAB_LLM_API_KEY_FILE): {e}") from e
    if not key:
        raise LLMUnavailable(f"the LLM key file {path} (ARCHLAB_LLM_API_KEY_FILE) is empty")
    return key


class LLMClient:
    def __init__(self, settings, *, backoff_s: float = 1.0, invalid_retries: int = 2, cache: bool = True):
        self.settings = settings
        self.backoff_s, self.invalid_retries = backoff_s, invalid_retries
        self.max_retries = int(getattr(settings, "llm_max_retries", 4))
        self.cache = ResponseCache(Path(settings.data_dir) / "llm_cache.sqlite") if cache else None
        self.prompts = prompt_store(settings.data_dir)
        self._no_json_schema: set[str] = set()  # models whose server refused response_format json_schema
        self._no_seed: set[str] = set()         # models whose server refused a `seed`
        self._client = None
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        return bool(self.settings.llm_configured)

    def _openai(self):
        if not self.configured:
            raise LLMUnavailable("no LLM configured: set ARCHLAB_LLM_BASE_URL and/or ARCHLAB_LLM_API_KEY(_FILE)")
        with self._lock:
            if self._client is None:
                import openai
                self._client = openai.OpenAI(base_url=self.settings.llm_base_url,
                                             api_key=api_key(self.settings) or "not-needed",
                                             timeout=self.settings.llm_timeout_s, max_retries=0)
        return self._client

    def complete_json(self, role: str, messages: list[dict], schema: type[T], *, seed: int | None = None,
                      model: str | None = None) -> tuple[T, Usage]:
        """Ask the `role`'s model (or `model`) for an answer validating against `schema`: (answer, usage).
        `seed`: the sampling seed, sent with the request and part of the cache key."""
        model = model or self.settings.model_for(role)
        key = request_key(model, messages, schema, seed)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                try:
                    answer = schema.model_validate_json(hit)
                except ValidationError:
                    pass  # the schema changed since: ask again
                else:
                    self._record(key, role, model, seed, messages, answer, [])
                    req = LLMRequest(role=role, model=model, digest=key, seed=seed, cached=True)
                    return answer, Usage(model=model, calls=1, cached_calls=1, requests=[req])
        client = self._openai()
        convo = list(messages) + [{"role": "system", "content": (
            "Answer with exactly one JSON object (no prose, no code fence) that validates against this JSON "
            f"schema:\n{json.dumps(schema.model_json_schema())}")}]
        calls = prompt_tokens = completion_tokens = 0
        errors: list[str] = []
        raw = ""
        for _ in range(self.invalid_retries + 1):
            response = self._create(client, model, convo, schema, seed)
            calls += 1
            if response.usage is not None:
                prompt_tokens += response.usage.prompt_tokens or 0
                completion_tokens += response.usage.completion_tokens or 0
            raw = _message_text(response)
            try:
                answer = schema.model_validate(parse_json_content(raw))
            except (ValueError, ValidationError) as e:
                errors.append(str(e))
                convo += [{"role": "assistant", "content": raw or ""},
                          {"role": "user", "content": f"Your answer was invalid: {e}\nAnswer again with only one "
                                                      "JSON object that validates against the schema."}]
                continue
            usage = self._usage(key, role, model, seed, calls, prompt_tokens, completion_tokens)
            self._record(key, role, model, seed, messages, answer, errors)
            if self.cache is not None:
                self.cache.put(key, model, answer.model_dump_json(), prompt_tokens, completion_tokens)
            return answer, usage
        usage = self._usage(key, role, model, seed, calls, prompt_tokens, completion_tokens)
        self._record(key, role, model, seed, messages, None, errors, raw=raw)
        raise LLMInvalidOutput(f"{role}: {calls} answers failed validation against {schema.__name__}: {errors[-1]}",
                               role=role, model=model, raw=raw, errors=errors, usage=usage)

    async def acomplete_json(self, role: str, messages: list[dict], schema: type[T], *, seed: int | None = None,
                             model: str | None = None) -> tuple[T, Usage]:
        """complete_json in a worker thread, for async handlers."""
        return await asyncio.to_thread(self.complete_json, role, messages, schema, seed=seed, model=model)

    @staticmethod
    def _usage(key: str, role: str, model: str, seed: int | None, calls: int, prompt_tokens: int,
               completion_tokens: int) -> Usage:
        cost = cost_usd(model, prompt_tokens, completion_tokens)
        req = LLMRequest(role=role, model=model, digest=key, seed=seed, calls=calls, prompt_tokens=prompt_tokens,
                         completion_tokens=completion_tokens, cost_usd=cost)
        return Usage(model=model, calls=calls, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                     cost_usd=cost, requests=[req])

    def _record(self, key: str, role: str, model: str, seed: int | None, messages: list[dict],
                answer: BaseModel | None, errors: list[str], raw: str = "") -> None:
        try:
            self.prompts.put(key, {"role": role, "model": model, "seed": seed, "messages": messages,
                                   "answer": answer.model_dump() if answer is not None else None,
                                   "invalid_answers": errors, "raw_last_answer": raw if answer is None else ""})
        except OSError:  # the prompt store is an audit aid: a full disk must not fail the call
            pass

    def _create(self, client, model: str, messages: list[dict], schema: type[BaseModel], seed: int | None = None):
        import openai
        kwargs: dict[str, Any] = {"model": model, "messages": messages}
        if seed is not None and model not in self._no_seed:
            kwargs["seed"] = seed
        if model not in self._no_json_schema:
            kwargs["response_format"] = {"type": "json_schema", "json_schema": {
                "name": schema.__name__, "schema": schema.model_json_schema(), "strict": False}}
        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            try:
                return client.chat.completions.create(**kwargs)
            except openai.BadRequestError as e:
                if "response_format" in kwargs and any(w in str(e).lower() for w in ("response_format", "json_schema")):
                    self._no_json_schema.add(model)  # this server does not do structured output: prompt only
                    kwargs.pop("response_format")
                    continue
                if "seed" in kwargs and "seed" in str(e).lower():
                    self._no_seed.add(model)  # a server that refuses a sampling seed: the nonce stays in the key
                    kwargs.pop("seed")
                    continue
                raise
            except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError,
                    openai.APITimeoutError, openai.APIResponseValidationError) as e:
                last = e
            except openai.APIStatusError as e:
                if e.status_code < 500 and e.status_code != 429:
                    raise
                last = e
            except ValueError as e:  # a body that is not JSON at all
                last = e
            if attempt < self.max_retries:
                time.sleep(self.backoff_s * 2 ** attempt)
        if isinstance(last, (openai.APIConnectionError, openai.APITimeoutError)):
            raise LLMUnavailable(f"LLM endpoint unreachable after {self.max_retries + 1} tries: {last}") from last
        raise LLMError(f"LLM request failed after {self.max_retries + 1} tries: {last}") from last


def _message_text(response) -> str:
    choice = response.choices[0].message
    if choice.content:
        return choice.content
    for call in getattr(choice, "tool_calls", None) or []:  # a model that answered through a tool call
        if getattr(call, "function", None) is not None:
            return call.function.arguments or ""
    return ""
