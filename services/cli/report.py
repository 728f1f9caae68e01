"""The campaign report: a campaign's event log -> one self-contained HTML file.

`build_report(events, out)` is a pure function of the typed events (no Kafka, no database): the
log is the truth, so a report can be rebuilt at any time, for any past campaign. The page needs
no network: the plots are the lab's shared charts (services/ui/charts.py: the vendored ECharts and
charts.js, inlined), styles are inline, and a Content-Security-Policy forbids loading anything and
runs no script but those two (by hash). Every string that comes from an event
(names, code, errors, feedback) is HTML-escaped: generated programs and LLM output are untrusted.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Optional

from lab.judging import size
from lab.lifecycle import IN_FLIGHT, Lifecycle, concerns
from schemas import events as ev
from services.ui.charts import TreeNode, chart_div, curves_spec, fitness_spec, inline_scripts, lineage_spec
from services.ui.handlers import esc

CAMPAIGN_LEVEL = (ev.CampaignStarted, ev.CampaignCompleted)
TOP_CURVES = 5           # loss curves of the best candidates drawn against the baseline
LATEST_PROBLEMS = 25     # rows in the "latest rejections and failures" table
EXCERPT = 300            # characters of feedback / error shown per row


@dataclass
class Cost:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    requests: list = field(default_factory=list)  # the LLMRequests, in log order

    def add(self, usage: ev.Usage | None) -> None:
        if usage is not None:
            self.requests.extend(usage.requests)
            self.calls += usage.calls
            self.prompt_tokens += usage.prompt_tokens
            self.completion_tokens += usage.completion_tokens
            self.cost_usd += usage.cost_usd


@dataclass
class Experiment:
    """Everything the log says about one experiment, reduced to what the report shows."""
    experiment_id: str
    first_at: datetime
    kind: str = "candidate"                     # candidate | baseline | imported | verify
    stage: str = "explore"                      # explore | verify (two-stage promotion)
    promotion: ev.ExperimentPromoted | None = None
    sampled: ev.ParentSampled | None = None
    imported: ev.ExperimentImported | None = None
    proposals: list[ev.ProposalCreated] = field(default_factory=list)
    rejections: list[ev.ProposalRejected] = field(default_factory=list)
    started: list[ev.TrainingStarted] = field(default_factory=list)
    failures: list[ev.TrainingFailed] = field(default_factory=list)
    results: ev.ResultsReady | None = None      # the latest
    results_at: datetime | None = None
    score: ev.ScoreAssigned | None = None       # the latest of the report's scheme
    other_scores: int = 0                       # rescoring events of other schemes, or superseded
    insights: ev.InsightsStored | None = None
    abandoned: ev.ExperimentAbandoned | None = None
    stopped: ev.TrainingStopped | None = None   # early stopping at a rung (not a failure of the program)
    replication: ev.ReplicationAssessed | None = None   # the verdict on held-out seeds (issue 24)
    cost: Cost = field(default_factory=Cost)
    life: Lifecycle = field(default_factory=Lifecycle)

    @property
    def name(self) -> str:
        for source in (self.results, self.proposals[-1] if self.proposals else None, self.imported):
            if source is not None and source.name:
                return source.name
        if self.sampled is not None and self.sampled.mode in ("baseline", "verify"):
            return self.sampled.parent.name
        if self.promotion is not None and self.promotion.name:
            return self.promotion.name
        for r in reversed(self.rejections):
            if r.name:
                return r.name
        return self.experiment_id[:12]

    @property
    def parent_id(self) -> str | None:
        if self.kind in ("baseline", "verify"):   # a verification run hangs off no parent (another profile)
            return None
        if self.proposals and self.proposals[-1].parent_id:
            return self.proposals[-1].parent_id
        if self.sampled is not None and self.sampled.mode == "explore":
            return self.sampled.parent.experiment_id
        if self.imported is not None:
            return self.imported.parent_id
        return None

    @property
    def fitness(self) -> float | None:
        f = self.score.fitness if self.score is not None else None
        return f if f is not None and math.isfinite(f) else None  # a NaN score is no score

    @property
    def status(self) -> str:
        """The lab's one lifecycle (lab/lifecycle.py), scores of the report's scheme only."""
        return self.life.status

    @property
    def device(self) -> str:
        if self.results is not None:
            return self.results.device
        return self.started[-1].device if self.started else "–"

    @property
    def params(self) -> int | None:
        """Parameters as trained (the engineer's count), else the checks' count of the proposal."""
        if self.results is not None and self.results.params:
            return self.results.params
        return self._checked("params")

    @property
    def flops_per_token(self) -> float | None:
        """Forward FLOPs per token, as the researcher's checks counted them on the whole model."""
        return self._checked("flops_per_token")

    def _checked(self, key: str):
        for p in reversed(self.proposals):
            value = ((p.checks or {}).get("evidence") or {}).get(key)
            if value:
                return value
        return None

    @property
    def compute_s(self) -> float:
        return (self.results.train_s + self.results.eval_s) if self.results else 0.0

    @property
    def failed_s(self) -> float:
        return sum(f.wall_s for f in self.failures)


@dataclass
class Campaign:
    campaign_id: str
    scheme: str
    started: ev.CampaignStarted | None
    completed: ev.CampaignCompleted | None
    experiments: dict[str, Experiment]        # in order of first appearance
    ignored_scores: int                       # ScoreAssigned of other schemes or superseded
    first_at: datetime | None
    last_at: datetime | None
    eval_seed: int | None = None              # the secret evaluation seed, once the campaign has ended (issue 25)

    @property
    def candidates(self) -> list[Experiment]:
        return [x for x in self.experiments.values() if x.kind == "candidate"]

    @property
    def baselines(self) -> list[Experiment]:
        """The exploration stage's baselines (the verification profile's are `verify_baselines`)."""
        return [x for x in self.experiments.values() if x.kind == "baseline" and x.stage == "explore"]

    @property
    def explored(self) -> list[Experiment]:
        """Every experiment of the exploration stage (all of them in a one-stage campaign)."""
        return [x for x in self.experiments.values() if x.stage == "explore"]

    @property
    def promoted(self) -> list[Experiment]:
        """The verification runs of a two-stage campaign, by promotion rank (replication runs re-train a candidate
        unchanged in the exploration stage: they are not promoted)."""
        xs = [x for x in self.experiments.values() if x.kind == "verify" and x.stage == "verify"]
        return sorted(xs, key=lambda x: (x.promotion.rank if x.promotion else 0, x.experiment_id))

    @property
    def verify_baselines(self) -> list[Experiment]:
        return [x for x in self.experiments.values() if x.kind == "baseline" and x.stage == "verify"]

    @property
    def scored(self) -> list[Experiment]:
        """Experiments of the exploration stage with a fitness, in order of their results."""
        xs = [x for x in self.explored if x.fitness is not None]
        # results time, not score time: a late rescore must not move an experiment along the x axis
        return sorted(xs, key=lambda x: x.results_at or x.score.occurred_at)

    @property
    def best(self) -> Experiment | None:
        xs = [x for x in self.candidates if x.fitness is not None]
        return max(xs, key=lambda x: x.fitness) if xs else None

    def baseline_for(self, x: Experiment | None) -> Experiment | None:
        ref = x.score.baseline_experiment_id if x is not None and x.score is not None else None
        if ref in self.experiments:
            return self.experiments[ref]
        measured = [b for b in self.baselines if b.results is not None]
        return measured[0] if measured else (self.baselines[0] if self.baselines else None)

    def counts(self) -> dict[str, int]:
        cands = self.candidates
        return {
            "experiments": len(self.experiments),
            "candidates": len(cands),
            "done": sum(1 for x in cands if x.results is not None),
            "scored": len(self.scored),
            "failed_runs": sum(len(x.failures) for x in self.experiments.values()),
            "failed_experiments": sum(1 for x in cands if x.failures),
            "recovered": sum(1 for x in cands if x.failures and x.results is not None),
            "abandoned": sum(1 for x in self.experiments.values() if x.abandoned is not None),
            "rejections": sum(len(x.rejections) for x in self.experiments.values()),
            "in_flight": sum(1 for x in cands if x.status in IN_FLIGHT),
        }


def _pick_campaign(events: list[ev.Event], campaign_id: str | None) -> str:
    if campaign_id:
        return campaign_id
    starts = [e for e in events if isinstance(e, ev.CampaignStarted)]
    if starts:
        return max(starts, key=lambda e: e.occurred_at).campaign_id
    ids = Counter(e.campaign_id for e in events)
    if not ids:
        raise ValueError("no events: nothing to report")
    return ids.most_common(1)[0][0]


def summarize(events: list[ev.Event], scheme: str = "paper", campaign_id: str | None = None) -> Campaign:
    """Fold the log into per-experiment records. Order: by occurred_at, ties by position in the list.

    Only the campaign's own events count, plus the imported experiments it names as roots (they
    may come from an import campaign) and any imported experiment one of its experiments descends from.
    """
    cid = _pick_campaign(events, campaign_id)
    ordered = [e for _, e in sorted(enumerate(events), key=lambda p: (p[1].occurred_at, p[0]))]
    started = next((e for e in reversed(ordered) if isinstance(e, ev.CampaignStarted) and e.campaign_id == cid), None)
    roots = set(started.roots) if started else set()
    parents = {e.parent_id for e in ordered if isinstance(e, ev.ProposalCreated) and e.campaign_id == cid}
    parents |= {e.parent.experiment_id for e in ordered if isinstance(e, ev.ParentSampled) and e.campaign_id == cid}
    mine = [e for e in ordered if e.campaign_id == cid or
            (isinstance(e, ev.ExperimentImported) and (e.experiment_id in roots or e.experiment_id in parents))]

    xs: dict[str, Experiment] = {}
    completed = None
    ignored = 0
    for e in mine:
        if isinstance(e, ev.CampaignStarted):
            continue
        if isinstance(e, ev.CampaignCompleted):
            completed = e
            continue
        x = xs.get(e.experiment_id)
        if x is None:
            x = xs[e.experiment_id] = Experiment(e.experiment_id, first_at=e.occurred_at)
        if concerns(e) and not (isinstance(e, ev.ScoreAssigned) and e.scheme != scheme):
            x.life.apply(e)
        if isinstance(e, ev.ParentSampled):
            x.sampled = e
            if e.mode in ("baseline", "verify"):
                x.kind = "baseline" if e.mode == "baseline" else "verify"
            if e.stage == "verify":
                x.stage = "verify"
        elif isinstance(e, ev.ExperimentPromoted):
            x.promotion, x.kind, x.stage = e, "verify", "verify"
        elif isinstance(e, ev.ExperimentImported):
            x.imported = e
            if x.kind == "candidate" and not x.proposals:
                x.kind = "imported"
        elif isinstance(e, ev.ProposalCreated):
            x.proposals.append(e)
            x.cost.add(e.usage)
            if e.role in ("baseline", "verify"):
                x.kind = e.role
        elif isinstance(e, ev.ProposalRejected):
            x.rejections.append(e)
            x.cost.add(e.usage)
        elif isinstance(e, ev.TrainingStarted):
            x.started.append(e)
        elif isinstance(e, ev.TrainingFailed):
            x.failures.append(e)
        elif isinstance(e, ev.ResultsReady):
            x.results, x.results_at = e, e.occurred_at
            if e.role in ("baseline", "verify"):
                x.kind = e.role
        elif isinstance(e, ev.ScoreAssigned):
            x.cost.add(e.usage)
            if e.scheme == scheme:
                if x.score is not None:
                    x.other_scores += 1
                    ignored += 1
                x.score = e
            else:
                x.other_scores += 1
                ignored += 1
        elif isinstance(e, ev.InsightsStored):
            x.insights = e
            x.cost.add(e.usage)
        elif isinstance(e, ev.ExperimentAbandoned):
            x.abandoned = e
        elif isinstance(e, ev.TrainingStopped):
            x.stopped = e
        elif isinstance(e, ev.ReplicationAssessed):
            x.replication = e
    return Campaign(cid, scheme, started, completed, xs, ignored,
                    mine[0].occurred_at if mine else None, mine[-1].occurred_at if mine else None)


# ---------------------------------------------------------------- HTML
CSS = """
:root { --fg:#1d2330; --muted:#5d6776; --line:#e3e6eb; --bg:#f5f6f8; --card:#fff; --accent:#3b528b; --bad:#c0392b;
        --good:#1e8449; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
       font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; }
main { max-width:1200px; margin:0 auto; padding:24px 20px 60px; }
header h1 { margin:0 0 4px; font-size:24px; }
header .sub { color:var(--muted); }
section { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:16px 20px;
          margin:18px 0; overflow-x:auto; }
section h2 { margin:0 0 10px; font-size:17px; }
section h3 { margin:12px 0 6px; font-size:14px; }
section p.note { color:var(--muted); margin:4px 0 10px; font-size:13px; }
.cards { display:grid; grid-template-columns:repeat(4,1fr); gap:10px; margin:16px 0; }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:10px 14px; }
.card .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.card .v { font-size:22px; font-weight:600; margin-top:2px; }
.card .d { color:var(--muted); font-size:12px; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
table { border-collapse:collapse; width:100%; font-size:13px; }
th, td { padding:4px 6px; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
th { background:#f0f2f5; font-weight:600; position:sticky; top:0; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
tbody tr:nth-child(even) { background:#fafbfc; }
tbody tr:hover { background:#eef3fb; }
tr.best td { background:#eaf7ee; }
tr.baseline td { background:#f2f2f2; font-style:italic; }
tfoot td { font-weight:600; border-top:2px solid var(--line); }
.params td:first-child { color:var(--muted); width:180px; }
code, pre { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:12px; }
pre.excerpt { margin:0; white-space:pre-wrap; word-break:break-word; max-width:560px; color:#333; }
.pill { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; background:#e8ebf0; }
.pill.done, .pill.analysing { background:#dff3e6; color:#17623a; } .pill.abandoned, .pill.failed, .pill.score_error,
.pill.rejected-only { background:#fbe3e0; color:#8e2a1f; } .pill.baseline { background:#e4e4e4; }
.pill.training, .pill.scoring { background:#e3ecfb; color:#284b8f; }
.yes { color:var(--good); font-weight:600; } .no { color:var(--muted); }
.delta-good { color:var(--good); } .delta-bad { color:var(--bad); }
.legend { display:flex; flex-wrap:wrap; gap:18px; align-items:center; color:var(--muted); font-size:12px;
          margin-top:6px; }
.legend svg { vertical-align:middle; }
.bars { display:grid; grid-template-columns:repeat(auto-fit,minmax(300px,1fr)); gap:20px; }
.bar-row { display:grid; grid-template-columns:150px 1fr 40px; gap:8px; align-items:center; margin:3px 0;
           font-size:13px; }
.bar { height:12px; border-radius:3px; background:#e45756; }
.bar.kind { background:#f28e2b; } .bar.abandon { background:#8c564b; }
.chart { width:100%; }
footer { color:var(--muted); font-size:12px; text-align:center; }
"""


def fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _num(x: float | None, digits: int = 3) -> str:
    return f"<td class='num'>{esc(fmt(x, digits))}</td>"


def _yesno(b: bool | None) -> str:
    if b is None:
        return "<td class='no'>–</td>"
    return "<td class='yes'>yes</td>" if b else "<td class='no'>no</td>"


def _pill(status: str) -> str:
    return f"<span class='pill {esc(status.replace(' ', '-'))}'>{esc(status)}</span>"


def _dt(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S") if t else "–"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h {m:02d}m" if h else (f"{m}m {s:02d}s" if m else f"{s}s")


def _delta(value: float | None, ref: float | None, lower_is_better: bool) -> str:
    if value is None or ref is None:
        return "–"
    d = value - ref
    good = (d < 0) if lower_is_better else (d > 0)
    return f"<span class='{'delta-good' if good else 'delta-bad'}'>{d:+.4f}</span>"


def _budget_cards(c: Campaign, llm_usd: float, card) -> list[str]:
    """Spend against the campaign's limits (--max-llm-cost, --max-device-hours); none without limits. Device time
    counts results' train + eval and failed runs' wall time, as the scheduler does (services/archive/budget.py)."""
    limits = ((c.started.config if c.started else {}) or {}).get("budget") or {}
    out = []
    if limits.get("max_llm_cost_usd"):
        cap = float(limits["max_llm_cost_usd"])
        out.append(card("LLM budget", f"${llm_usd:.2f} / ${cap:.2f}", f"{100 * llm_usd / cap:.0f}% of --max-llm-cost",
                        "bad" if llm_usd > cap else ""))
    if limits.get("max_device_hours"):
        cap = float(limits["max_device_hours"])
        used = sum(x.compute_s + x.failed_s for x in c.experiments.values()) / 3600
        out.append(card("device budget", f"{used:.3f} h / {cap:g} h", f"{100 * used / cap:.0f}% of --max-device-hours",
                        "bad" if used > cap else ""))
    return out


def _summary(c: Campaign) -> str:
    s, n = c.started, c.counts()
    best, base = c.best, c.baseline_for(c.best)
    budget = s.budget if s else None
    cost = Cost()
    for x in c.experiments.values():
        cost.calls += x.cost.calls
        cost.prompt_tokens += x.cost.prompt_tokens
        cost.completion_tokens += x.cost.completion_tokens
        cost.cost_usd += x.cost.cost_usd
    compute = sum(x.compute_s for x in c.experiments.values())
    devices = Counter(x.device for x in c.experiments.values() if x.results is not None)
    state = "completed" if c.completed else "in progress"
    span = (c.last_at - c.first_at).total_seconds() if c.first_at and c.last_at else 0.0

    def card(k: str, v: str, d: str = "", cls: str = "") -> str:
        return (f"<div class='card {cls}'><div class='k'>{esc(k)}</div><div class='v'>{v}</div>"
                f"<div class='d' title='{esc(d)}'>{esc(d)}</div></div>")

    cards = [
        card("candidates done", f"{n['done']}" + (f" / {budget}" if budget is not None else ""),
             f"{n['in_flight']} in flight, {sum(1 for x in c.candidates if x.fitness is not None)} scored"),
        card("failed runs", str(n["failed_runs"]), f"{n['failed_experiments']} experiments, {n['recovered']} recovered"),
        card("abandoned", str(n["abandoned"]), "retries or revisions exhausted"),
        card("rejected proposals", str(n["rejections"]), "novelty and sanity checks"),
        card("best fitness", esc(fmt(best.fitness, 4)) if best else "–", best.name if best else "no scored candidate"),
        card("baseline fitness", esc(fmt(base.fitness, 4)) if base else "–", base.name if base else "no baseline"),
        card("compute", _duration(compute), ", ".join(f"{k}: {v}" for k, v in devices.most_common()) or "–"),
        card("LLM cost", f"${cost.cost_usd:.2f}",
             f"{cost.calls} calls, {cost.prompt_tokens + cost.completion_tokens:,} tokens"),
    ] + _budget_cards(c, cost.cost_usd, card) + _verification_cards(c, card)
    vs = ""
    if best is not None and base is not None and best.results and base.results:
        b, r = best.results, base.results
        vs = (f"<section id='best'><h2>Best candidate vs baseline</h2><table><thead><tr><th></th><th>name</th>"
              f"<th class='num'>fitness</th><th class='num'>final loss</th><th class='num'>benchmark</th>"
              f"<th class='num'>params</th></tr></thead><tbody>"
              f"<tr class='best'><td>best</td><td>{esc(best.name)} <code>{esc(best.experiment_id)}</code></td>"
              f"{_num(best.fitness, 4)}{_num(b.final_loss, 4)}{_num(b.benchmark, 4)}"
              f"<td class='num'>{b.params:,}</td></tr>"
              f"<tr class='baseline'><td>baseline</td><td>{esc(base.name)} <code>{esc(base.experiment_id)}</code></td>"
              f"{_num(base.fitness, 4)}{_num(r.final_loss, 4)}{_num(r.benchmark, 4)}"
              f"<td class='num'>{r.params:,}</td></tr>"
              f"<tr><td>difference</td><td></td><td class='num'>{_delta(best.fitness, base.fitness, False)}</td>"
              f"<td class='num'>{_delta(b.final_loss, r.final_loss, True)}</td>"
              f"<td class='num'>{_delta(b.benchmark, r.benchmark, False)}</td><td></td></tr>"
              f"</tbody></table></section>")
    name = s.name if s and s.name else c.campaign_id
    sub = (f"campaign <code>{esc(c.campaign_id)}</code> · {esc(state)} · {esc(_dt(c.first_at))} → "
           f"{esc(_dt(c.last_at))} UTC ({esc(_duration(span))}) · fitness scheme <code>{esc(c.scheme)}</code>")
    return (f"<header><h1>{esc(name)}</h1><div class='sub'>{sub}</div></header>"
            f"<div class='cards' id='summary'>{''.join(cards)}</div>{vs}")


def _parameters(c: Campaign) -> str:
    s = c.started
    if s is None:
        return "<section id='parameters'><h2>Campaign parameters</h2><p class='note'>no CampaignStarted event " \
               "in the log</p></section>"
    rows = [("profile", s.profile), ("budget", s.budget), ("concurrency", s.concurrency), ("seed", s.seed),
            ("proposer", s.proposer), ("policy", s.policy), ("policy params", json.dumps(s.policy_params)),
            ("cold start", s.cold_start), ("baselines", ", ".join(s.baselines)),
            ("imported roots", len(s.roots)), ("max attempts", s.max_attempts), ("max revisions", s.max_revisions),
            ("config", json.dumps(s.config, sort_keys=True)), ("started by", s.producer)]
    if c.completed is not None:
        rows.append(("completed", f"{c.completed.reason} ({c.completed.experiments} experiments)"))
    if c.eval_seed is not None:
        rows.append(("evaluation seed (secret until the end)", c.eval_seed))
    body = "".join(f"<tr><td>{esc(k)}</td><td><code>{esc(v)}</code></td></tr>" for k, v in rows)
    return f"<section id='parameters'><h2>Campaign parameters</h2><table class='params'>{body}</table></section>"


def _fitness_section(c: Campaign) -> str:
    points = [{"experiment_id": x.experiment_id, "name": x.name, "fitness": x.fitness, "baseline": x.kind == "baseline"}
              for x in c.scored]
    note = (f"{len(points)} scored experiments in the order their results came in (scheme <code>{esc(c.scheme)}</code>, "
            f"the latest score of each experiment; {c.ignored_scores} other or superseded scores not shown). "
            "Dots: candidates; diamonds: baselines (dashed: the baseline's fitness); line: the best candidate so far.")
    plot = chart_div("fitness-plot", fitness_spec(points)) if points else "<p class='note'>no scored experiment yet</p>"
    return f"<section id='fitness'><h2>Fitness over experiments</h2><p class='note'>{note}</p>{plot}</section>"


def _lineage_section(c: Campaign) -> str:
    nodes = [TreeNode(x.experiment_id, x.name, x.parent_id, x.fitness, x.status, x.kind) for x in c.explored]
    known = {x.experiment_id for x in c.explored}
    for pid in dict.fromkeys(n.parent_id for n in nodes if n.parent_id and n.parent_id not in known):
        nodes.append(TreeNode(pid, pid, None, None, "outside this log", "external"))
    rows = 1 + sum(1 for n in nodes if not any(m.parent_id == n.experiment_id for m in nodes))   # leaves
    return (f"<section id='lineage'><h2>Lineage</h2><p class='note'>parent → children, {len(c.explored)} "
            f"experiments{' of the exploration stage' if c.promoted else ''}; colour = fitness (viridis, grey: none); "
            "hover a node for its id and status, scroll to zoom, drag to pan.</p>"
            f"{chart_div('lineage-plot', lineage_spec(nodes), max(260, min(3000, 26 * rows)))}</section>")


def _loss_section(c: Campaign) -> str:
    top = sorted((x for x in c.candidates if x.fitness is not None and x.results and x.results.loss_curve),
                 key=lambda x: -x.fitness)[:TOP_CURVES]
    base = [b for b in c.baselines if b.results and b.results.loss_curve]
    curves = [{"name": x.name, "experiment_id": x.experiment_id, "points": list(x.results.loss_curve), "baseline": True}
              for x in base]
    curves += [{"name": x.name, "experiment_id": x.experiment_id, "points": list(x.results.loss_curve)} for x in top]
    plot = chart_div("loss-plot", curves_spec(curves), 360) if curves else "<p class='note'>no loss curve yet</p>"
    return (f"<section id='loss'><h2>Loss curves: top {len(top)} candidates vs baseline</h2>"
            f"<p class='note'>training loss per step (dashed: baselines).</p>{plot}</section>")


def _replication(x: Experiment) -> str:
    """The verdict on held-out seeds with the replicated fitness; nothing for a candidate never replicated."""
    r = x.replication
    if r is None:
        return ""
    mean = f"{r.replicated_fitness:.4f}" if r.replicated_fitness is not None else "–"
    return f"{r.verdict} ({mean} over seeds {', '.join(map(str, r.seeds))})"


def _size(count: float | None, baseline: float | None) -> str:
    return size.text(count, size.relative(count, baseline))


def _benchmark_section(c: Campaign) -> str:
    xs = [x for x in c.explored if x.results is not None]   # one profile's metrics (verification: its own section)
    xs.sort(key=lambda x: (x.fitness is None, -(x.fitness or 0.0)))
    metric_names = sorted({k for x in xs for k in x.results.metrics})
    best = c.best
    head = ("<tr><th>#</th><th>experiment</th><th>status</th>" + "".join(
        f"<th class='num'>{esc(m)}</th>" for m in metric_names) +
        "<th class='num'>final loss</th><th class='num'>benchmark</th><th class='num'>params (x base)</th>"
        "<th class='num'>FLOPs/token (x base)</th>"
        "<th class='num'>fitness</th><th class='num'>loss score</th><th class='num'>benchmark score</th>"
        "<th class='num'>qualitative</th><th>significant</th><th>replication</th></tr>")
    base = c.baselines[0] if c.baselines else None
    rows = []
    for i, x in enumerate(xs, 1):
        r, s = x.results, x.score
        cls = "best" if best is x else ("baseline" if x.kind == "baseline" else "")
        rows.append(
            f"<tr class='{cls}' data-exp='{esc(x.experiment_id)}'><td class='num'>{i}</td>"
            f"<td>{esc(x.name)}<br><code>{esc(x.experiment_id)}</code></td>"
            f"<td>{_pill('baseline' if x.kind == 'baseline' else x.status)}</td>"
            + "".join(_num(r.metrics.get(m), 4) for m in metric_names)
            + f"{_num(r.final_loss, 4)}{_num(r.benchmark, 4)}"
            + f"<td class='num'>{_size(x.params, base.params if base else None)}</td>"
            + f"<td class='num'>{_size(x.flops_per_token, base.flops_per_token if base else None)}</td>"
            + f"{_num(s.fitness if s else None, 4)}{_num(s.loss_score if s else None)}"
            + f"{_num(s.benchmark_score if s else None)}{_num(s.qualitative if s else None)}"
            + _yesno(s.significant if s else None) + f"<td>{esc(_replication(x))}</td></tr>")
    return (f"<section id='benchmarks'><h2>Benchmarks and fitness</h2><p class='note'>{len(xs)} experiments with "
            f"results, best first. Fitness components as the judge gave them (scheme <code>{esc(c.scheme)}</code>)."
            f"</p><table id='benchmark-table'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table></section>")


# ---------------------------------------------------------------- two-stage promotion
def _promotion_settings(c: Campaign) -> dict | None:
    return ((c.started.config if c.started else {}) or {}).get("promotion") or None


def stage_pairs(c: Campaign) -> list[tuple[float | None, float | None]]:
    """(exploration fitness, verification fitness) of each promoted experiment."""
    out = []
    for v in c.promoted:
        src = c.experiments.get(v.promotion.source_experiment_id) if v.promotion else None
        out.append((src.fitness if src else (v.promotion.fitness if v.promotion else None), v.fitness))
    return out


def stage_tau(c: Campaign) -> float | None:
    from services.archive.promotion import stage_agreement

    tau = stage_agreement(stage_pairs(c))
    return None if tau is None or math.isnan(tau) else tau


def _verification_cards(c: Campaign, card) -> list[str]:
    settings = _promotion_settings(c)
    if not settings and not c.promoted:
        return []
    profile = (settings or {}).get("verify_profile") or (c.promoted[0].promotion.verify_profile if c.promoted else "?")
    verified = sum(1 for x in c.promoted if x.fitness is not None)
    tau = stage_tau(c)
    detail = (f"Kendall tau-b between the stages {tau:+.3f}" if tau is not None
              else "tau-b needs two verified runs" if c.promoted else "nothing promoted")
    return [card(f"verified at {profile}", f"{verified} / {len(c.promoted)}", detail)]


def _verification_section(c: Campaign) -> str:
    """Both stages side by side: each promoted candidate's exploration and verification measurements."""
    settings = _promotion_settings(c)
    if not settings and not c.promoted:
        return ""
    profile = (settings or {}).get("verify_profile") or c.promoted[0].promotion.verify_profile
    explore_profile = c.started.profile if c.started else "?"
    ranked = sorted((x for x in c.candidates if x.fitness is not None), key=lambda x: (-x.fitness, x.experiment_id))
    explore_rank = {x.experiment_id: i for i, x in enumerate(ranked, 1)}
    verified = sorted((x for x in c.promoted if x.fitness is not None), key=lambda x: (-x.fitness, x.experiment_id))
    verify_rank = {x.experiment_id: i for i, x in enumerate(verified, 1)}
    rows = []
    for v in c.promoted:
        p = v.promotion
        src = c.experiments.get(p.source_experiment_id) if p else None
        sr, vr = (src.results if src else None), v.results
        rows.append(
            f"<tr data-exp='{esc(v.experiment_id)}'><td class='num'>{p.rank if p else '–'}</td>"
            f"<td>{esc(src.name if src else (p.name if p else ''))}<br><code>{esc(p.source_experiment_id if p else '')}"
            f"</code></td><td class='num'>{explore_rank.get(p.source_experiment_id, '–') if p else '–'}</td>"
            f"{_num(src.fitness if src else None, 4)}{_yesno(src.score.significant if src and src.score else None)}"
            f"{_num(sr.final_loss if sr else None, 4)}{_num(sr.benchmark if sr else None, 4)}"
            f"<td><code>{esc(v.experiment_id)}</code></td><td>{_pill(v.status)}</td>"
            f"<td class='num'>{verify_rank.get(v.experiment_id, '–')}</td>{_num(v.fitness, 4)}"
            f"{_yesno(v.score.significant if v.score else None)}{_num(vr.final_loss if vr else None, 4)}"
            f"{_num(vr.benchmark if vr else None, 4)}<td>{esc(p.why if p else '')}</td></tr>")
    for b in c.verify_baselines:
        r = b.results
        rows.append(f"<tr class='baseline'><td></td><td>baseline at {esc(profile)}</td><td></td><td></td><td></td>"
                    f"<td></td><td></td><td><code>{esc(b.experiment_id)}</code> {esc(b.name)}</td><td>{_pill(b.status)}"
                    f"</td><td></td>{_num(b.fitness, 4)}<td></td>{_num(r.final_loss if r else None, 4)}"
                    f"{_num(r.benchmark if r else None, 4)}<td></td></tr>")
    tau = stage_tau(c)
    pairs = sum(1 for a, b in stage_pairs(c) if a is not None and b is not None)
    agreement = (f"Kendall tau-b between the two stages' rankings over {pairs} verified: <b id='stage-tau'>"
                 f"{tau:+.3f}</b>." if tau is not None else
                 f"Kendall tau-b between the stages: <b id='stage-tau'>–</b> (needs two verified runs; {pairs} so "
                 "far).")
    rule = ("the top {k} by exploration fitness among the candidates whose score is significant over the seed noise"
            if (settings or {}).get("require_significant", True) else
            "the top {k} by exploration fitness (significance over seed noise not required: --promote-any)"
            ).format(k=(settings or {}).get("top_k", len(c.promoted)))
    ended = f" Campaign: {esc(c.completed.reason)}." if c.completed is not None else ""
    head = ("<tr><th class='num'>promoted</th><th>explored</th><th class='num'>explore rank</th>"
            "<th class='num'>explore fitness</th><th>significant</th><th class='num'>explore loss</th>"
            "<th class='num'>explore benchmark</th><th>verification</th><th>status</th><th class='num'>verify rank</th>"
            "<th class='num'>verify fitness</th><th>significant</th><th class='num'>verify loss</th>"
            "<th class='num'>verify benchmark</th><th>why promoted</th></tr>")
    table = (f"<table id='verification-table'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"
             if c.promoted else "<p class='note' id='nothing-promoted'>nothing was promoted.</p>")
    return (f"<section id='verification'><h2>Two-stage promotion: {esc(explore_profile)} → {esc(profile)}</h2>"
            f"<p class='note'>When exploration ended, {rule} were re-trained unchanged at <code>{esc(profile)}</code>, "
            f"each scored against the baseline trained there. {agreement}{ended}</p>{table}</section>")


def _bars(title: str, counts: Counter, cls: str) -> str:
    if not counts:
        return f"<div><h3>{esc(title)}</h3><p class='note'>none</p></div>"
    top = max(counts.values())
    rows = "".join(f"<div class='bar-row'><span>{esc(k)}</span><div class='bar {cls}' "
                   f"style='width:{100 * v / top:.0f}%'></div><span class='num'>{v}</span></div>"
                   for k, v in counts.most_common())
    return f"<div><h3>{esc(title)}</h3>{rows}</div>"


def _problems_section(c: Campaign) -> str:
    rej = Counter(r.reason for x in c.experiments.values() for r in x.rejections)
    fail = Counter(f.kind for x in c.experiments.values() for f in x.failures)
    aband = Counter(x.abandoned.reason for x in c.experiments.values() if x.abandoned is not None)
    stopped = Counter(f"rung {x.stopped.rung}" for x in c.experiments.values() if x.stopped is not None)
    items: list[tuple[datetime, Experiment, str, str, str]] = []
    for x in c.experiments.values():
        items += [(r.occurred_at, x, "rejected", f"{r.reason} (attempt {r.attempt})", r.feedback) for r in x.rejections]
        items += [(f.occurred_at, x, "failed", f"{f.kind} (revision {f.revision})", f.error) for f in x.failures]
        if x.abandoned is not None:
            a = x.abandoned
            items.append((a.occurred_at, x, "abandoned", a.reason,
                          f"after {a.attempts} attempts, {a.revisions} revisions"))
        if x.stopped is not None:
            t = x.stopped
            items.append((t.occurred_at, x, "stopped", f"early stop at rung {t.rung} (step {t.step}/{t.total_steps})",
                          f"held-out loss {t.heldout_loss:.4f} vs the baseline's {t.baseline_loss:.4f}: worse by more "
                          f"than {t.noises:g} seed noises ({t.seed_noise:g}). {t.reason}"))
    items.sort(key=lambda t: t[0], reverse=True)
    rows = "".join(
        f"<tr><td>{esc(_dt(t))}</td><td>{esc(x.name)}<br><code>{esc(x.experiment_id)}</code></td>"
        f"<td>{_pill(what)}</td><td>{esc(why)}</td><td><pre class='excerpt'>{esc(short(text, EXCERPT))}</pre></td></tr>"
        for t, x, what, why, text in items[:LATEST_PROBLEMS])
    table = ("<table id='problems-table'><thead><tr><th>time (UTC)</th><th>experiment</th><th>event</th>"
             f"<th>reason / kind</th><th>feedback / error</th></tr></thead><tbody>{rows}</tbody></table>"
             if items else "<p class='note'>no rejection, failure or abandon.</p>")
    return (f"<section id='problems'><h2>Rejections and failures</h2><div class='bars'>"
            f"{_bars('proposal rejections by reason', rej, '')}{_bars('training failures by kind', fail, 'kind')}"
            f"{_bars('abandoned by reason', aband, 'abandon')}{_bars('stopped early', stopped, 'abandon')}</div>"
            f"<h3>Latest {min(len(items), LATEST_PROBLEMS)} of {len(items)}</h3>{table}</section>")


def _cost_section(c: Campaign) -> str:
    xs = list(c.experiments.values())
    rows, tot = [], dict(train=0.0, eval=0.0, compute=0.0, failed=0.0, calls=0, tin=0, tout=0, usd=0.0)
    for x in xs:
        r = x.results
        train, evl = (r.train_s, r.eval_s) if r else (0.0, 0.0)
        k = x.cost
        for key, v in (("train", train), ("eval", evl), ("compute", x.compute_s), ("failed", x.failed_s),
                       ("calls", k.calls), ("tin", k.prompt_tokens), ("tout", k.completion_tokens),
                       ("usd", k.cost_usd)):
            tot[key] += v
        rows.append(
            f"<tr><td>{esc(x.name)}<br><code>{esc(x.experiment_id)}</code></td><td>{_pill(x.status)}</td>"
            f"<td>{esc(x.device)}</td>{_num(train, 1)}{_num(evl, 1)}{_num(x.compute_s, 1)}{_num(x.failed_s, 1)}"
            f"<td class='num'>{k.calls}</td><td class='num'>{k.prompt_tokens:,}</td>"
            f"<td class='num'>{k.completion_tokens:,}</td><td class='num'>{k.cost_usd:.4f}</td></tr>")
    foot = (f"<tr><td>total ({len(xs)})</td><td></td><td></td>{_num(tot['train'], 1)}{_num(tot['eval'], 1)}"
            f"{_num(tot['compute'], 1)}{_num(tot['failed'], 1)}<td class='num'>{tot['calls']}</td>"
            f"<td class='num'>{tot['tin']:,}</td><td class='num'>{tot['tout']:,}</td>"
            f"<td class='num'>{tot['usd']:.4f}</td></tr>")
    return ("<section id='cost'><h2>Cost per experiment</h2><p class='note'>compute = train + eval seconds on the "
            "device of the result; failed runs' wall time apart. LLM usage sums ProposalCreated, ProposalRejected, "
            "ScoreAssigned and InsightsStored.</p><table id='cost-table'><thead><tr><th>experiment</th><th>status</th>"
            "<th>device</th><th class='num'>train s</th><th class='num'>eval s</th><th class='num'>compute s</th>"
            "<th class='num'>failed runs s</th><th class='num'>LLM calls</th><th class='num'>prompt tokens</th>"
            "<th class='num'>completion tokens</th><th class='num'>cost $</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody><tfoot>{foot}</tfoot></table></section>")


def _diagnosis_section(diagnosis: list[str]) -> str:
    """What went wrong that was not the programs' fault (services/cli/progress.py: diagnose)."""
    if not diagnosis:
        return ""
    items = "".join(f"<li>{esc(line)}</li>" for line in diagnosis)
    return f"<section id='diagnosis'><h2>Diagnosis</h2><ul>{items}</ul></section>"


def render_html(c: Campaign, title: str | None = None, prompts: Path | None = None,
                diagnosis: list[str] | None = None) -> str:
    from services.cli.llm_audit import llm_section_html
    from services.researcher.routing import arms_from_events

    page_title = title or (c.started.name if c.started and c.started.name else f"campaign {c.campaign_id}")
    arms = arms_from_events(e for x in c.experiments.values()
                            for e in [*x.proposals, *x.rejections, *([x.score] if x.score else [])])
    llm = llm_section_html(((x.experiment_id, x.name, x.cost.requests) for x in c.experiments.values()), prompts,
                           arms)
    body = "".join([_summary(c), _diagnosis_section(diagnosis or []), _fitness_section(c), _lineage_section(c), _loss_section(c),
                    _benchmark_section(c), _verification_section(c), _problems_section(c), _cost_section(c), llm,
                    _parameters(c)])
    # No external resource and no script but the chart library's two, by hash: the CSP makes that a rule the
    # browser enforces, so an injected script would not run even if escaping failed.
    scripts, hashes = inline_scripts()
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; "
            f"img-src data:; script-src {' '.join(hashes)}\">"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<link rel='icon' href='data:,'><title>{esc(page_title)} — archlab report</title>"
            f"<style>{CSS}</style></head><body><main>{body}"
            f"<footer>generated by archlab from {sum(1 for _ in c.experiments)} experiments' events</footer>"
            f"</main>{scripts}</body></html>")


def build_report(events: list[ev.Event], out: Path, title: str | None = None, *, scheme: str = "paper",
                 campaign_id: str | None = None, prompts: Path | None = None, data_dir: Path | None = None) -> Path:
    """Write the campaign's report to `out` (a file, or a directory to hold `report-<campaign>.html`).
    `prompts`: the LLM prompt store (what each role was asked and answered goes into the report); by default
    <data_dir>/llm/prompts when `out` is in <data_dir>/reports (where `archlab run` writes it)."""
    campaign = summarize(events, scheme=scheme, campaign_id=campaign_id)
    out = Path(out)
    if out.is_dir():
        out = out / f"report-{''.join(ch if ch.isalnum() or ch in '-_' else '_' for ch in campaign.campaign_id)}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    if prompts is None and (out.parent.parent / "llm" / "prompts").is_dir():
        prompts = out.parent.parent / "llm" / "prompts"
    data_dir = data_dir or (out.parent.parent if out.parent.name == "reports" else None)
    if campaign.completed is not None and data_dir is not None:  # published only once the campaign has ended
        from lab.training.heldout import published_eval_seed
        campaign.eval_seed = published_eval_seed(data_dir, campaign.campaign_id)
    from services.cli.progress import CampaignView, diagnose
    view = CampaignView(campaign.campaign_id)
    for event in events:
        view.apply(event)
    out.write_text(render_html(campaign, title, prompts, diagnose(view)), encoding="utf-8")
    return out


# ---------------------------------------------------------------- from the log, and `archlab report`
REPORT_EVENT_TYPES = [t for t in ev.EVENT_TYPES if t != "CognitionIngested"]  # cognitions are global, not a campaign's


async def read_campaign_events(bootstrap: str, campaign_id: str | None = None) -> tuple[list[ev.Event], int]:
    """Every campaign event in the log (outside any consumer group), decoded; and how many records
    could not be decoded (they are skipped: the dead-letter topic already holds their story)."""
    from schemas import codec
    from schemas.topics import topic_for
    from services.common.log_reader import read_log

    events, bad = [], 0
    async for record in read_log(bootstrap, [topic_for(t) for t in REPORT_EVENT_TYPES]):
        try:
            event = codec.decode(record.value)
        except codec.EventDecodeError:
            bad += 1
            continue
        if campaign_id is None or event.campaign_id == campaign_id or isinstance(event, ev.ExperimentImported):
            events.append(event)
    return events, bad


def register(app) -> None:
    """`archlab report`: write a campaign's report from the event log."""
    import asyncio

    import typer

    @app.command("report")
    def report(out: Path = typer.Option(Path("report.html"), help="output file, or a directory"),
               campaign: Optional[str] = typer.Option(None, help="campaign id (default: the latest started)"),
               scheme: str = typer.Option("paper", help="fitness scheme to show (the latest score of it)"),
               title: Optional[str] = typer.Option(None, help="page title"),
               data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="state directory")):
        """Write a campaign's self-contained HTML report (fitness, lineage, curves, failures, cost)."""
        from services.common import endpoints
        from services.common.settings import Settings

        settings = Settings() if data_dir is None else Settings(data_dir=data_dir)
        events, bad = asyncio.run(read_campaign_events(endpoints.kafka_bootstrap(settings), campaign))
        if not events:
            typer.echo("no campaign events in the log", err=True)
            raise typer.Exit(1)
        from services.common.llm import prompt_store

        path = build_report(events, out, title, scheme=scheme, campaign_id=campaign,
                            prompts=prompt_store(settings.data_dir).root, data_dir=settings.data_dir)
        typer.echo(f"wrote {path} ({len(events)} events" + (f", {bad} undecodable skipped)" if bad else ")"))
