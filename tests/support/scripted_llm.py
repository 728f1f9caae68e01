"""A real HTTP server that answers like the OpenAI chat-completions API, from a script.

Use it in any test that needs an LLM (import the fixture in your conftest.py or test module):

    from tests.support.scripted_llm import scripted_llm  # noqa: F401  (the pytest fixture)

    def test_x(scripted_llm, tmp_path):
        scripted_llm.reply_status(429)                        # first request: rate limited
        scripted_llm.reply_json({"name": "x", "score": 3})    # then a JSON answer
        scripted_llm.reply_text("not json at all")            # then a malformed answer
        settings = scripted_llm.settings(tmp_path)            # Settings pointing at this server
        ...
        body = scripted_llm.requests[-1]                      # every request body, parsed, in order
        assert "feedback" in scripted_llm.prompt(-1)          # all message contents of a request, joined

Script items are consumed one per request (POST .../chat/completions). When the script is empty,
`scripted_llm.responder(body) -> item` answers if set, else the server returns HTTP 500 "script exhausted".
Items: reply_json(obj, fenced=False), reply_text(str), reply_tool_call(name, args), reply_status(code),
reply_malformed() (a 200 whose body is not JSON). The server binds 127.0.0.1 on a free port and is
stopped at the end of the test.
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import pytest


class ScriptedLLM:
    def __init__(self):
        self.script: deque[dict] = deque()
        self.requests: list[dict] = []
        self.paths: list[str] = []
        self.responder: Callable[[dict], dict] | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- the script
    def reply_json(self, obj: Any, *, fenced: bool = False, prompt_tokens: int = 100, completion_tokens: int = 50):
        text = json.dumps(obj)
        self.script.append({"content": f"```json\n{text}\n```" if fenced else text,
                            "usage": (prompt_tokens, completion_tokens)})

    def reply_text(self, text: str, *, prompt_tokens: int = 100, completion_tokens: int = 50):
        self.script.append({"content": text, "usage": (prompt_tokens, completion_tokens)})

    def reply_tool_call(self, name: str, arguments: Any):
        self.script.append({"tool_call": (name, json.dumps(arguments)), "usage": (100, 50)})

    def reply_status(self, status: int, message: str = "scripted error"):
        self.script.append({"status": status, "message": message})

    def reply_malformed(self):
        self.script.append({"raw": b"this is not an OpenAI response {"})

    # --- what the tests read
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def settings(self, data_dir, **overrides):
        from services.common.settings import Settings
        return Settings(data_dir=data_dir, llm_base_url=self.base_url, llm_api_key="test-key",
                        llm_max_retries=overrides.pop("llm_max_retries", 3), llm_timeout_s=10, **overrides)

    def prompt(self, index: int = -1) -> str:
        """Every message content of request `index`, joined: what the model was told."""
        return "\n".join(str(m.get("content", "")) for m in self.requests[index].get("messages", []))

    @property
    def request_count(self) -> int:
        return len(self.requests)

    # --- the server
    def start(self) -> "ScriptedLLM":
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                with owner._lock:
                    owner.requests.append(body)
                    owner.paths.append(self.path)
                    item = owner.script.popleft() if owner.script else (
                        owner.responder(body) if owner.responder else {"status": 500, "message": "script exhausted"})
                owner._answer(self, body, item)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, body: dict, item: dict):
        if "raw" in item:
            payload, status = item["raw"], 200
        elif "status" in item:
            status = item["status"]
            payload = json.dumps({"error": {"message": item.get("message", ""), "type": "scripted",
                                            "code": status}}).encode()
        else:
            message: dict[str, Any] = {"role": "assistant", "content": item.get("content")}
            if "tool_call" in item:
                name, args = item["tool_call"]
                message = {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": name, "arguments": args}}]}
            pt, ct = item.get("usage", (0, 0))
            payload = json.dumps({
                "id": f"chatcmpl-{time.time_ns()}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", "scripted"),
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
            }).encode()
            status = 200
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        if status == 429:
            handler.send_header("Retry-After", "0")
        handler.end_headers()
        handler.wfile.write(payload)


@pytest.fixture
def scripted_llm():
    """A started ScriptedLLM (see the module docstring); stopped after the test."""
    server = ScriptedLLM().start()
    try:
        yield server
    finally:
        server.stop()
