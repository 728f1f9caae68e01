"""What each LLM role was asked and what it answered, for `archlab show EXP` and the report.

Every LLM call is on its event as `usage.requests` (role, model, sampling seed, tokens, cost, and the
prompt digest); the full messages and the answer are in the prompt store, `<data_dir>/llm/prompts/<digest>.json`
(services/common/llm.py). Where the store is not reachable (another host's volume), the digest and the path
are still shown, so the prompt can be found.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from services.ui.handlers import esc
from services.common.llm import PromptStore, prompt_store

EXCERPT = 4000  # characters of a prompt or an answer in the report (head and tail)


def requests_of_record(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """The LLM requests behind one `queries.show` record, in log order, each with the event it is on."""
    out: list[dict[str, Any]] = []
    for a in rec.get("attempts", []):
        where = {"proposal": "ProposalCreated", "rejected": "ProposalRejected"}.get(a.get("kind"))
        if where:
            out += [{"on": f"{where} a{a.get('attempt', '')} r{a.get('revision', 0)}", **r}
                    for r in ((a.get("usage") or {}).get("requests") or [])]
    for s in rec.get("scores", []):
        out += [{"on": "ScoreAssigned", **r} for r in ((s.get("usage") or {}).get("requests") or [])]
    insights = (rec.get("experiment") or {}).get("insights") or {}
    out += [{"on": "InsightsStored", **r} for r in ((insights.get("usage") or {}).get("requests") or [])]
    return out


def asked_and_answered(store: PromptStore, digest: str) -> tuple[str, str] | None:
    """(the last user message, the answer as JSON) from the prompt store, or None when it is not there."""
    record = store.get(digest) if digest else None
    if record is None:
        return None
    users = [m.get("content", "") for m in record.get("messages", []) if m.get("role") == "user"]
    answer = record.get("answer")
    answered = json.dumps(answer, indent=1) if answer is not None else \
        f"(no valid answer) {record.get('raw_last_answer', '')}"
    return (str(users[-1]) if users else ""), answered


def _clip(text: str, n: int = EXCERPT) -> str:
    """The head and the tail (a planner's feedback and its request come last, after the parent's code)."""
    if len(text) <= n:
        return text
    head, tail = n * 3 // 5, n * 2 // 5
    return f"{text[:head]}\n[... {len(text) - head - tail} characters ...]\n{text[-tail:]}"


def print_llm_requests(console, rec: dict[str, Any], data_dir: Path) -> None:
    from rich.markup import escape
    from rich.table import Table

    reqs = requests_of_record(rec)
    if not reqs:
        return
    store = prompt_store(data_dir)
    table = Table(title="LLM calls (what each role was asked and answered)")
    for col in ("event", "role", "model", "seed", "calls", "tokens in/out", "cost $", "prompt"):
        table.add_column(col)
    for r in reqs:
        table.add_row(r["on"], r.get("role", ""), r.get("model", ""), str(r.get("seed") if r.get("seed") is not None
                                                                              else "—"),
                      f"{r.get('calls', 0)}{' (cached)' if r.get('cached') else ''}",
                      f"{r.get('prompt_tokens', 0)}/{r.get('completion_tokens', 0)}", f"{r.get('cost_usd', 0):.5f}",
                      escape(str(store.path(r.get("digest", "")))))
    console.print(table)
    for r in reqs:
        found = asked_and_answered(store, r.get("digest", ""))
        if found is None:
            continue
        asked, answered = found
        console.print(f"[bold]{escape(r.get('role', ''))}[/] ({escape(r['on'])}) was asked:\n{escape(_clip(asked, 1500))}")
        console.print(f"[bold]answered[/]:\n{escape(_clip(answered, 1500))}")


def models_html(arms: dict) -> str:
    """Which planner model produced the best layers: per model, its scored proposals, best fitness, fitness gain
    over the parents, planner cost, and gain per dollar (the routing bandit's reward)."""
    if not arms:
        return ""
    rows = "".join(
        f"<tr><td>{esc(a.model)}</td><td class='num'>{a.calls}</td><td class='num'>{a.proposals}</td>"
        f"<td class='num'>{'' if a.best is None else f'{a.best:.4f}'}</td><td class='num'>{a.gain:.4f}</td>"
        f"<td class='num'>{a.cost_usd:.4f}</td><td class='num'>{a.rate:.2f}</td></tr>"
        for a in sorted(arms.values(), key=lambda a: (-(a.best if a.best is not None else -1), a.model)))
    return ("<h3>Planner models</h3><table id='models-table'><thead><tr><th>model</th><th class='num'>planner calls"
            "</th><th class='num'>scored proposals</th><th class='num'>best fitness</th><th class='num'>fitness gain "
            "over parents</th><th class='num'>planner $</th><th class='num'>gain per $</th></tr></thead><tbody>"
            f"{rows}</tbody></table>")


def llm_section_html(experiments: Iterable[tuple[str, str, list]], prompts: Path | None, arms: dict | None = None) -> str:
    """The report's section: per experiment (id, name, [LLMRequest]), each call with the prompt's digest and
    path and, when the prompt store is readable, what was asked and answered (escaped: LLM text is untrusted)."""
    store = PromptStore(prompts) if prompts is not None else None
    rows, details = [], []
    for exp_id, name, reqs in experiments:
        for r in reqs:
            path = f"llm/prompts/{r.digest}.json"
            rows.append(f"<tr><td>{esc(name)}<br><code>{esc(exp_id)}</code></td><td>{esc(r.role)}</td>"
                        f"<td>{esc(r.model)}</td><td class='num'>{'' if r.seed is None else r.seed}</td>"
                        f"<td class='num'>{r.calls}{' cached' if r.cached else ''}</td>"
                        f"<td class='num'>{r.prompt_tokens:,}</td><td class='num'>{r.completion_tokens:,}</td>"
                        f"<td class='num'>{r.cost_usd:.5f}</td><td><code>{esc(r.digest[:12])}</code></td></tr>")
            found = asked_and_answered(store, r.digest) if store is not None else None
            if found is not None:
                asked, answered = found
                details.append(f"<details class='llm-call'><summary>{esc(name)} · {esc(r.role)} · "
                               f"<code>{esc(path)}</code></summary><h4>asked</h4><pre>{esc(_clip(asked))}</pre>"
                               f"<h4>answered</h4><pre>{esc(_clip(answered))}</pre></details>")
    if not rows:
        return ""
    return ("<section id='llm'><h2>LLM calls</h2><p class='note'>every question an LLM role was asked, from the "
            "events' usage; the full prompt and answer are in the data directory under "
            "<code>llm/prompts/&lt;digest&gt;.json</code>. seed: the planner attempt's nonce.</p>"
            "<table id='llm-table'><thead><tr><th>experiment</th><th>role</th><th>model</th><th class='num'>seed</th>"
            "<th class='num'>calls</th><th class='num'>prompt tokens</th><th class='num'>completion tokens</th>"
            "<th class='num'>cost $</th><th>prompt digest</th></tr></thead><tbody>" + "".join(rows) +
            "</tbody></table>" + models_html(arms or {}) + "".join(details) + "</section>")
