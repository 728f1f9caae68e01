"""A campaign through the LLM path, end to end: `archlab run` on the embedded stack (cpu-micro, real broker,
real sandboxed training) with every role (planner, novelty, debugger, analyst, judge) answered by the scripted
OpenAI-compatible server (tests/support/lab_script.py says what it answers).

The planner replays real architecture programs: the ASI-Arch published programs and their motivations from
../shared/reference/asi-arch/106.json when present, else zoo programs with edits. The test checks, from the
event log, the leaderboard and the report: the near-duplicate is rejected by the novelty judge and its
feedback reaches the next planner prompt; the buggy program fails in training and the debugger's revision 1
trains and is scored; the analyst's malformed answer and the judge's 429 are retried; every experiment is
scored on the same three components; the LLM calls, tokens and cost on the events add up to what the server
served.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from services.archive import queries
from services.archive.storage import SQLiteStore
from services.common.llm import cost_usd
from lab.zoo.registry import zoo_source
from tests.conftest import shared_dir
from tests.support.lab_script import LabScript, role_of
from tests.support.scripted_llm import scripted_llm  # noqa: F401 - fixture
from tests.support.cli_env import clean_env

pytestmark = [pytest.mark.slow, pytest.mark.integration]
ARCHLAB = [sys.executable, "-m", "services.cli.main"]
# pass the sanity checks at cpu-micro (fp32, num_heads=1) and stay well within the monitor's 2.5x of DeltaNet's
# step even on a loaded machine: layer forward+backward on 32x64x32 measured 1.11x, 1.21x, 1.22x DeltaNet's
# (delta_net_pfr, 1.5x, stopped as too_slow once under load; delta_net_spectral_fusion fails the causality check)
ASI_ARCH_PICKS = ("delta_net_adgr", "delta_net_phsg5", "delta_net_acmg")
PLANNER_MODELS, DEFAULT_MODEL = ("gpt-4.1", "gpt-4.1-mini"), "gpt-4.1-mini"


def architecture_programs() -> tuple[str, list[tuple[str, str, str]]]:
    """(source, [(name, motivation, code)]): the ASI-Arch published programs when the reference data is
    present, else zoo programs with edits (renamed, with their own motivation)."""
    path = shared_dir() / "reference" / "asi-arch" / "106.json"
    if path.exists():
        by_name = {r["name"]: r for r in json.loads(path.read_text())}
        picked = [by_name[n] for n in ASI_ARCH_PICKS if n in by_name]
        if len(picked) >= 2:
            return "asi-arch", [(r["name"], r["motivation"], r["program"]) for r in picked]
    edits = [("gated_deltanet", "gated_delta_fused", "Combine the gated decay with the delta rule's error-correcting "
                                                     "writes so that stale associations fade while new ones correct"),
             ("gla", "gla_wide_gate", "A data-dependent forget gate per key dimension lets each channel keep its own "
                                      "memory horizon, which should help recall of older pairs")]
    return "zoo", [(new, why, f"# {new}: {why}\n" + zoo_source(old)) for old, new, why in edits]


def archlab(*args, env, timeout):
    return subprocess.run([*ARCHLAB, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_llm_campaign_end_to_end(tmp_path, scripted_llm):
    source, programs = architecture_programs()
    script = LabScript(programs)
    scripted_llm.responder = script
    env = clean_env(("ARCHLAB_", "OPENAI_"))
    env.update(ARCHLAB_DATA_DIR=str(tmp_path / "lab"), COLUMNS="200", ARCHLAB_LLM_BASE_URL=scripted_llm.base_url,
               ARCHLAB_LLM_API_KEY="test-key", ARCHLAB_LLM_MODEL=DEFAULT_MODEL,
               ARCHLAB_LLM_MODELS_PLANNER=json.dumps(PLANNER_MODELS), ARCHLAB_LLM_TIMEOUT_S="60")
    budget = 2
    t0 = time.monotonic()
    # the scripted programs are up to 15 % above the baseline's size and this test is about the LLM loop: no size
    # ceiling (tests/researcher/test_size.py tests it), no replication runs (tests/archive/test_replication.py)
    run = archlab("run", "--profile", "cpu-micro", "--budget", str(budget), "--concurrency", "1", "--keep-up",
                  "--timeout", "900", "--max-params-ratio", "1.0", "--replicate", "0", env=env, timeout=1200)
    wall = time.monotonic() - t0
    try:
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        campaign = json.loads((tmp_path / "lab" / "campaign.json").read_text())["campaign_id"]
        tap = archlab("tap", "--from-beginning", "--campaign", campaign, env=env, timeout=120)
        assert tap.returncode == 0, tap.stderr
        events = [json.loads(line) for line in tap.stdout.splitlines() if line.strip().startswith("{")]
        by_type = defaultdict(list)
        for e in events:
            by_type[e["type"]].append(e)
        print(f"\nsource {source}; wall {wall:.0f}s; {len(events)} events; LLM requests {dict(script.calls)}")
        for e in by_type["ProposalRejected"] + by_type["TrainingFailed"] + by_type["ExperimentAbandoned"]:
            print(f"  {e['type']} {e['experiment_id']} {e.get('name', '')} {e.get('reason') or e.get('kind')}: "
                  f"{(e.get('feedback') or e.get('error') or '')[:160]}")

        # --- the planner replayed the programs; the near-duplicate was rejected by the novelty judge
        dup_name, orig_name = script.duplicate[0], script.original[0]
        rejected = [e for e in by_type["ProposalRejected"] if e["reason"] == "duplicate"]
        assert [e["name"] for e in rejected] == [dup_name], by_type["ProposalRejected"]
        dup = rejected[0]
        assert f"DUPLICATE: proposal '{dup_name}'" in dup["feedback"] and orig_name in dup["feedback"]
        assert [r["role"] for r in dup["usage"]["requests"]] == ["planner", "novelty"] and dup["usage"]["calls"] == 2
        assert dup["usage"]["requests"][0]["model"] in PLANNER_MODELS and dup["usage"]["requests"][1]["model"] == \
            DEFAULT_MODEL
        # ... and its feedback reached the next attempt of the same experiment
        # (one distinct retry prompt; a handler retried under load may send it again: delivery is at least once)
        retry = [p for p in script.prompts["planner"] if "REJECTED" in p]
        assert len(set(retry)) == 1 and dup["feedback"][:200] in retry[0], retry
        created = {(e["experiment_id"], e["revision"]): e for e in by_type["ProposalCreated"]}
        candidates = [e for e in created.values() if e["role"] == "candidate" and e["revision"] == 0]
        assert sorted(e["name"] for e in candidates) == sorted([orig_name, script.buggy[0]])
        assert all(e["origin"] == "llm" and e["code"] for e in candidates)
        original = next(e for e in candidates if e["name"] == orig_name)
        assert original["code"] == script.original[2] and original["attempt"] == 1
        buggy = next(e for e in candidates if e["name"] == script.buggy[0])
        assert buggy["experiment_id"] == dup["experiment_id"] and buggy["attempt"] == 2

        # --- every planner attempt carried its own nonce: sent as the request's seed and recorded on the event
        planner_reqs = [r for e in events if e.get("usage") for r in e["usage"]["requests"] if r["role"] == "planner"]
        sent = [b["seed"] for b in scripted_llm.requests if role_of(b) == "planner"]
        assert len(planner_reqs) == len(sent) == script.calls["planner"] == 3
        assert sorted(r["seed"] for r in planner_reqs) == sorted(sent) and len(set(sent)) == 3
        # ... and was routed over the planner models by the bandit, the decision on the event
        for p in (e for e in by_type["ProposalCreated"] if e["origin"] == "llm"):
            route, req = p["checks"]["routing"], p["usage"]["requests"][0]
            assert route["policy"] == "ucb1" and route["model"] == req["model"] and req["model"] in PLANNER_MODELS

        # --- the buggy program failed in training; the debugger's revision 1 trained and was scored
        failed = by_type["TrainingFailed"]
        assert [(f["experiment_id"], f["revision"], f["kind"]) for f in failed] == \
               [(buggy["experiment_id"], 0, "runtime_error")], failed
        assert "must match the size" in failed[0]["error"] + failed[0]["traceback"]
        revision = created[(buggy["experiment_id"], 1)]
        assert revision["origin"] == "debugger" and revision["code"] == script.fixed_code
        assert revision["checks"]["debugger"]["failed_kind"] == "runtime_error"
        assert revision["usage"]["calls"] == 1 and "must match the size" in script.prompts["debugger"][0]
        results = {(e["experiment_id"], e["revision"]): e for e in by_type["ResultsReady"]}
        fixed = results[(buggy["experiment_id"], 1)]
        assert fixed["steps"] > 0 and fixed["final_loss"] > 0
        scores = {e["experiment_id"]: e for e in by_type["ScoreAssigned"] if not e.get("rescore_of")}
        assert scores[buggy["experiment_id"]]["fitness"] is not None

        # --- judge and analyst answered for every result; the 429 and the malformed answer were retried
        assert set(scores) == {e["experiment_id"] for e in by_type["ResultsReady"]}
        assert all(s["qualitative_judged"] and s["fitness"] is not None for s in scores.values()), scores
        assert {len(s["weights"]) for s in scores.values()} == {3}            # one fitness scale
        judge_statuses = [s["status"] for s in script.served if s["role"] == "judge"]
        assert judge_statuses[0] == 429 and judge_statuses[1:] == [200] * len(scores)
        insights = by_type["InsightsStored"]
        assert {e["experiment_id"] for e in insights} == set(scores)
        assert all(not e["offline"] for e in insights)
        assert sorted(e["usage"]["calls"] for e in insights) == [1] * (len(insights) - 1) + [2]
        assert sorted(script.calls) == ["analyst", "debugger", "judge", "novelty", "planner"]

        # --- calls, tokens and cost on the events are what the server served
        usages = [e["usage"] for e in events if e.get("usage")]
        served = [s for s in script.served if s["status"] == 200]
        assert sum(u["calls"] for u in usages) == len(served)
        assert sum(u["prompt_tokens"] for u in usages) == sum(s["usage"][0] for s in served)
        assert sum(u["completion_tokens"] for u in usages) == sum(s["usage"][1] for s in served)
        expected_cost = sum(cost_usd(s["model"], *s["usage"]) for s in served)
        assert sum(u["cost_usd"] for u in usages) == pytest.approx(expected_cost, rel=1e-6) and expected_cost > 0
        per_exp = defaultdict(lambda: [0, 0, 0.0])
        for e in events:
            if e.get("usage"):
                per_exp[e["experiment_id"]][0] += e["usage"]["calls"]
                per_exp[e["experiment_id"]][1] += e["usage"]["prompt_tokens"] + e["usage"]["completion_tokens"]
                per_exp[e["experiment_id"]][2] += e["usage"]["cost_usd"]
        for exp, (calls, toks, usd) in sorted(per_exp.items()):
            print(f"  {exp}: {calls} LLM calls, {toks} tokens, ${usd:.5f}")
        analyst_calls = {e["experiment_id"]: e["usage"]["calls"] for e in insights}
        # 2 attempts x (planner, novelty judge), the debugger, the judge, the analyst
        assert per_exp[buggy["experiment_id"]][0] == 2 + 2 + 1 + 1 + analyst_calls[buggy["experiment_id"]]

        # --- the leaderboard ranks the candidates with the baseline
        with SQLiteStore(tmp_path / "lab" / "archive.sqlite", read_only=True) as store:
            board = queries.leaderboard(store, campaign)
        ranked = {r["experiment_id"]: r for r in board}
        assert set(ranked) == set(scores)
        assert all(r["qualitative"] is not None for r in board)
        assert orig_name in run.stdout and "leaderboard" in run.stdout

        # --- the report shows LLM calls, tokens and cost per experiment
        html = (tmp_path / "lab" / "reports" / f"{campaign}.html").read_text()
        table = html[html.index("id='cost-table'"):]
        for exp, (calls, _, usd) in per_exp.items():
            row = re.search(re.escape(exp) + r"</code>.*?</tr>", table, re.S)
            assert row and f"<td class='num'>{calls}</td>" in row.group(0), exp

        # --- the prompts are visible: `archlab show` and the report say what each role was asked and answered
        show = archlab("show", buggy["experiment_id"], env={**env, "COLUMNS": "2000"}, timeout=120)
        assert show.returncode == 0, show.stderr
        for role in ("planner", "novelty", "debugger", "judge", "analyst"):
            assert f"{role}" in show.stdout
        assert "LLM calls" in show.stdout and "was asked" in show.stdout and "the gain table has" in show.stdout
        digests = [r["digest"] for e in events if e.get("usage") for r in e["usage"]["requests"]]
        prompts = tmp_path / "lab" / "llm" / "prompts"
        assert digests and all((prompts / f"{d}.json").exists() for d in digests)
        assert "id='llm-table'" in html and html.count("<details class='llm-call'>") == len(digests)
        assert "Failure kind: runtime_error" in html and f"NEW PROPOSAL: {dup_name}" in html
        models_table = html[html.index("id='models-table'"):]
        models_table = models_table[:models_table.index("</table>")]
        assert all(f"<td>{r['model']}</td>" in models_table for r in planner_reqs)
    finally:
        down = archlab("down", env=env, timeout=180)
        assert down.returncode == 0, down.stdout + down.stderr
