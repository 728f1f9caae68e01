"""The UI's pages: read-model queries rendered as HTML (no Kafka, no HTTP here; server.py serves them).

Every text that comes from an experiment (names, code, motivations, LLM answers, ids) goes through
`esc()`; charts get their data as JSON in an escaped attribute (charts.py). A page is its `<main>`
content plus the frame; the live script re-fetches the content alone (`fragment`) when the read
model changes.
"""
from __future__ import annotations

import difflib
from collections import Counter
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from services.ui.charts import TreeNode, bars_spec, chart_div, curves_spec, fitness_spec, lineage_spec, scatter_spec
from services.ui.embedding import VectorSource, layout
from services.ui.readmodel import ReadModel

Row = dict[str, Any]
PAGE_ROWS = 200        # leaderboard rows shown before "show all"
SORTABLE = ("fitness", "final_loss", "benchmark", "params", "name", "status", "created_at", "family")
TEXT_SECTIONS = ("design_evaluation", "results_analysis", "expectation_vs_reality", "theoretical_explanation",
                 "synthesis", "experience", "note")


def esc(text: object) -> str:
    return escape("" if text is None else str(text), quote=True)


def num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def link(eid: str, label: str | None = None) -> str:
    return f"<a href='/experiment/{esc(quote(eid, safe=''))}'>{esc(label or eid)}</a>"


def table(headers: list[str], rows: list[list[str]], table_id: str = "") -> str:
    """A table whose cells are already HTML (callers escape what they put in)."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    tid = f" id='{esc(table_id)}'" if table_id else ""
    return f"<table{tid}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def hour_of(ts: str | None) -> str | None:
    try:
        return datetime.fromisoformat(ts).strftime("%Y-%m-%d %H:00") if ts else None
    except ValueError:
        return None


def families(rows: list[Row]) -> dict[str, str]:
    """Each experiment's family: the name of its oldest known ancestor (a zoo baseline or an imported root)."""
    by_id = {r["experiment_id"]: r for r in rows}
    found: dict[str, str] = {}
    for r in rows:
        path, cur = [], r["experiment_id"]
        while cur not in found and cur not in path:   # walk up to a known family, a root, or a cycle
            path.append(cur)
            parent = by_id[cur].get("parent_id")
            if parent not in by_id:
                break
            cur = parent
        if cur in found:
            family = found[cur]
        else:
            root = by_id[path[-1]]
            family = root.get("zoo") or root.get("name") or root["experiment_id"]
        for eid in path:
            found[eid] = family
    return found


class Pages:
    """One method per page; each returns (title, main HTML)."""

    def __init__(self, model: ReadModel, vectors: VectorSource | None = None):
        self.model = model
        self.vectors = vectors   # the novelty memory's records (services/ui/main.py); None: no map

    # ---------------------------------------------------------------- shared pieces
    def _campaign_ids(self) -> list[str]:
        """Started campaigns, and groups of experiments without one (the imported ASI-Arch programs)."""
        return sorted({c["campaign_id"] for c in self.model.campaigns()}
                      | {r["campaign_id"] for r in self.model.rows() if r["campaign_id"]})

    def _pick(self, campaign: str | None) -> str | None:
        """The campaign asked for, else the latest started one."""
        if campaign:
            return campaign
        docs = sorted(self.model.campaigns(), key=lambda c: c.get("started_at") or "")
        return docs[-1]["campaign_id"] if docs else None

    def _campaign_nav(self, path: str, current: str | None, extra: dict[str, str] | None = None) -> str:
        links = []
        for cid in self._campaign_ids():
            q = urlencode({"campaign": cid, **(extra or {})})
            cls = " class='current'" if cid == current else ""
            links.append(f"<a{cls} href='{esc(path)}?{esc(q)}'>{esc(cid)}</a>")
        return "<p class='campaigns'>campaign: " + " · ".join(links) + "</p>" if links else ""

    # ---------------------------------------------------------------- campaign overview
    def campaign(self, campaign: str | None = None) -> tuple[str, str]:
        cid = self._pick(campaign)
        if cid is None:
            return "archlab", "<h1>archlab</h1><p class='empty'>No campaign in the archive yet: start one with " \
                              "<code>archlab run</code>; this page follows the archive live.</p>"
        doc = next((c for c in self.model.campaigns() if c["campaign_id"] == cid), {})
        params = doc.get("params") or {}
        config = params.get("config") or {}
        rows = self.model.rows(cid)
        candidates = [r for r in rows if r["role"] == "candidate"]
        states = Counter(r["status"] for r in rows)
        budget = params.get("budget")
        ended = sum(1 for r in candidates if r["status"] in ("done", "abandoned", "rejected-only", "score_error"))
        compute_s = sum((r["train_s"] or 0) + (r["eval_s"] or 0) for r in rows)
        devices = Counter(r["device"] for r in rows if r["device"])
        limits = config.get("budget") or {}
        llm_usd = self.model.llm_cost(cid) + sum(r["insights_cost"] or 0 for r in rows)
        cards = [("candidates ended", f"{ended} / {esc(budget if budget is not None else '?')}"),
                 ("experiments", str(len(rows))),
                 ("best fitness", num(max((r["fitness"] for r in candidates if r["fitness"] is not None), default=None))),
                 ("compute (train + eval)", f"{compute_s:.0f} s" + (
                     f" of {limits['max_device_hours'] * 3600:.0f} s" if limits.get("max_device_hours") else "")
                  + (" on " + ", ".join(esc(d) for d in devices) if devices else "")),
                 ("LLM cost", f"${llm_usd:.4f}" + (f" of ${limits['max_llm_cost_usd']:.2f}"
                                                   if limits.get("max_llm_cost_usd") else "")),
                 ("state", "completed: " + esc((doc.get("completed") or {}).get("reason")) if doc.get("completed")
                  else "running")]
        html = [f"<h1>Campaign {esc(params.get('name') or cid)}</h1>", self._campaign_nav("/campaign", cid),
                f"<p class='note'>id <code>{esc(cid)}</code>, started {esc(doc.get('started_at'))}, policy "
                f"<code>{esc(params.get('policy'))}</code>, profile <code>{esc(params.get('profile'))}</code>, "
                f"concurrency {esc(params.get('concurrency'))}, scheme <code>{esc(doc.get('scheme'))}</code></p>",
                "<div class='cards'>" + "".join(f"<div class='card'><div class='k'>{k}</div><div class='v'>{v}</div>"
                                                f"</div>" for k, v in cards) + "</div>",
                "<h2>Experiments by state</h2>",
                table(["state", "experiments"], [[esc(s), str(n)] for s, n in states.most_common()], "states")]
        per_hour = Counter(h for h in (hour_of(r["created_at"]) for r in candidates) if h)
        hours = sorted(per_hour)
        html += ["<h2>Candidates per hour</h2>",
                 chart_div("per-hour-plot", bars_spec(hours, [{"name": "candidates", "values": [per_hour[h] for h in hours]}],
                                                      "candidates"), 240)]
        fails = self.model.failures(cid)
        html += ["<h2>Failures and rejections by reason</h2>",
                 table(["kind", "reason", "count"], [[esc(k), esc(r), str(n)] for k, r, n in fails], "failures")
                 if fails else "<p class='empty'>none</p>"]
        abandoned = Counter(r["abandon_reason"] for r in rows if r["abandon_reason"])
        if abandoned:
            html.append(table(["abandoned because", "count"], [[esc(k), str(n)] for k, n in abandoned.items()]))
        names = {r["experiment_id"]: r["name"] for r in rows}
        pool = self.model.pool(cid, doc.get("scheme") or "paper", 10)
        html += ["<h2>Elite pool (top 10)</h2>",
                 table(["rank", "experiment", "fitness"], [[str(i), link(e, names.get(e) or e), num(f, 4)]
                                                           for i, (e, f) in enumerate(pool, 1)], "pool")
                 if pool else "<p class='empty'>empty</p>"]
        sampled = [r for r in rows if r["mode"] == "explore"][-20:]
        html += ["<h2>The parent policy's latest choices</h2>",
                 table(["experiment", "parent", "policy", "draw"],
                       [[link(r["experiment_id"], r["name"]), link(r["parent_id"], names.get(r["parent_id"]))
                         if r["parent_id"] else "–", esc(r["policy"]),
                         esc(", ".join(f"{k}={v}" for k, v in r["draw"].items()))] for r in reversed(sampled)],
                       "choices") if sampled else "<p class='empty'>none yet</p>"]
        return f"campaign {cid}", "".join(html)

    # ---------------------------------------------------------------- leaderboard
    def leaderboard(self, campaign: str | None = None, sort: str = "fitness", desc: bool = True,
                    family: str = "", status: str = "", significant: str = "", confirmed: str = "",
                    limit: int = PAGE_ROWS) -> tuple[str, str]:
        """Sorted and filtered on the server; the first `limit` rows (0: all), so 2,000 experiments stay fast.
        `confirmed`: "yes" = its replication on held-out seeds was confirmed (ReplicationAssessed), or, in a two-stage
        campaign, its verification run beat the verification baseline beyond noise; "no" = the other verdict."""
        cid = self._pick(campaign)
        rows = self.model.rows(cid)
        fam = families(rows)
        # explored id -> its two-stage verification run (replication runs verify too, in the exploration stage)
        verified = {r["verifies"]: r for r in rows if r["verifies"] and r["stage"] == "verify"}
        for r in rows:
            r["family"] = fam.get(r["experiment_id"], "")
            v = verified.get(r["experiment_id"])
            if r["replication"]:
                r["confirmed"] = r["replication"] == "confirmed"
            else:
                r["confirmed"] = None if v is None else bool(v["significant"])
        shown = [r for r in rows if (not family or r["family"] == family) and (not status or r["status"] == status)
                 and (not significant or bool(r["significant"]) == (significant == "yes"))
                 and (not confirmed or r["confirmed"] is (confirmed == "yes"))]
        key = sort if sort in SORTABLE else "fitness"
        present = [r for r in shown if r[key] is not None]
        present.sort(key=lambda r: r[key], reverse=desc)
        shown = present + [r for r in shown if r[key] is None]   # unknown values last, whatever the order
        state = {"campaign": cid or "", "family": family, "status": status, "significant": significant,
                 "confirmed": confirmed}
        total = len(shown)
        if limit > 0:
            shown = shown[:limit]

        def header(col: str, label: str) -> str:
            flip = not desc if col == key else True
            q = urlencode({**state, "sort": col, "desc": "1" if flip else "0"})
            arrow = (" ▼" if desc else " ▲") if col == key else ""
            return f"<a href='/leaderboard?{esc(q)}'>{esc(label)}{arrow}</a>"

        def select(name: str, values: list[str], current: str) -> str:
            opts = "".join(f"<option value='{esc(v)}'{' selected' if v == current else ''}>{esc(v or 'any')}</option>"
                           for v in ["", *values])
            return f"<label>{name} <select name='{name}'>{opts}</select></label>"

        form = (f"<form class='filters' method='get' action='/leaderboard'>"
                f"<input type='hidden' name='campaign' value='{esc(cid or '')}'>"
                f"<input type='hidden' name='sort' value='{esc(key)}'><input type='hidden' name='desc' "
                f"value='{'1' if desc else '0'}'>"
                + select("family", sorted({r["family"] for r in rows}), family)
                + select("status", sorted({r["status"] for r in rows if r["status"]}), status)
                + select("significant", ["yes", "no"], significant) + select("confirmed", ["yes", "no"], confirmed)
                + "<button>filter</button></form>")
        best = next((r["experiment_id"] for r in sorted(rows, key=lambda r: -(r["fitness"] or -1e9))
                     if r["fitness"] is not None), None)

        def compare(r: Row) -> str:
            if best is None or r["experiment_id"] == best:
                return ""
            return f"<a href='/compare?{esc(urlencode({'ids': best + ',' + r['experiment_id']}))}'>vs best</a>"

        body = [[link(r["experiment_id"], r["name"]), esc(r["family"]), f"<span class='pill'>{esc(r['status'])}</span>",
                 num(r["fitness"], 4), num(r["final_loss"]), num(r["benchmark"]),
                 f"{r['params']:,}" if r["params"] else "–", {True: "yes", False: "no"}.get(
                     None if r["significant"] is None else bool(r["significant"]), "–"),
                 {True: "yes", False: "no"}.get(r["confirmed"], "–"), esc(r["role"]), compare(r)]
                for r in shown]
        more = ""
        if len(shown) < total:
            every = urlencode({**state, "sort": key, "desc": "1" if desc else "0", "limit": "0"})
            more = f"; the first {len(shown)} shown, <a href='/leaderboard?{esc(every)}'>show all</a>"
        headers = [header("name", "experiment"), header("family", "family"), header("status", "status"),
                   header("fitness", "fitness"), header("final_loss", "loss"), header("benchmark", "benchmark"),
                   header("params", "parameters"), "significant", "confirmed", "role", "compare"]
        return "leaderboard", (f"<h1>Leaderboard</h1>{self._campaign_nav('/leaderboard', cid)}{form}"
                               f"<p class='note'>{total} of {len(rows)} experiments{more}</p>"
                               + table(headers, body, "leaderboard"))

    # ---------------------------------------------------------------- genealogy and fitness
    def genealogy(self, campaign: str | None = None) -> tuple[str, str]:
        cid = self._pick(campaign)
        rows = self.model.rows(cid)
        nodes = [TreeNode(r["experiment_id"], r["name"] or r["experiment_id"], r["parent_id"], r["fitness"],
                          r["status"] or "", "imported" if r["imported"] else ("baseline" if r["role"] == "baseline"
                                                                             else "candidate")) for r in rows]
        known = {r["experiment_id"] for r in rows}
        for pid in dict.fromkeys(r["parent_id"] for r in rows if r["parent_id"] and r["parent_id"] not in known):
            nodes.append(TreeNode(pid, pid, None, None, "outside this campaign", "external"))
        spec = lineage_spec(nodes, href="/experiment/{id}")
        height = max(400, min(900, 14 * (1 + max((p["value"][1] for p in spec["points"]), default=0))))
        return "genealogy", (f"<h1>Genealogy</h1>{self._campaign_nav('/genealogy', cid)}"
                             f"<p class='note'>{len(rows)} experiments, parents left; colour = fitness (viridis, grey: "
                             "none). Scroll to zoom, drag to pan, click a node to open it.</p>"
                             + chart_div("lineage-plot", spec, int(height)))

    def embedding(self, campaign: str | None = None) -> tuple[str, str]:
        cid = self._pick(campaign)
        head = f"<h1>Embedding map of proposals</h1>{self._campaign_nav('/embedding', cid)}"
        if self.vectors is None:
            return "embedding map", head + "<p class='empty'>No novelty memory configured for this UI.</p>"
        try:
            records = [r for r in self.vectors() if r.get("campaign_id") == cid]
        except Exception as e:  # noqa: BLE001 - Milvus away or restarting: say so, the other pages still work
            return "embedding map", head + f"<p class='empty'>The novelty memory is unavailable: {esc(e)}</p>"
        rows = {r["experiment_id"]: r for r in self.model.rows(cid)}
        groups = layout(records, rows, self.model.duplicates(cid) if cid else [])
        n_dup = len(groups.get("rejected duplicate", []))
        return "embedding map", (head + f"<p class='note'>{len(records)} accepted proposals of the novelty memory "
                                 "(their motivations' embeddings), on the first two principal components; "
                                 f"{n_dup} proposals rejected as duplicates, each beside the experiment it "
                                 "repeated (farther when less similar). Click a point to open it.</p>"
                                 + chart_div("embedding-plot", scatter_spec(groups, href="/experiment/{id}",
                                                                            x_label="PC 1", y_label="PC 2"), 520))

    def fitness(self, campaign: str | None = None) -> tuple[str, str]:
        cid = self._pick(campaign)
        rows = [r for r in self.model.rows(cid) if r["fitness"] is not None]
        rows.sort(key=lambda r: (r["results_at"] or r["updated_at"] or "", r["experiment_id"]))
        points = [{"experiment_id": r["experiment_id"], "name": r["name"], "fitness": r["fitness"],
                   "baseline": r["role"] == "baseline"} for r in rows]
        top = sorted((r for r in rows if r["role"] == "candidate"), key=lambda r: -r["fitness"])[:8]
        base = [r for r in rows if r["role"] == "baseline"]
        tasks = sorted({t for r in top + base for t in (r.get("metrics") or {})})
        bars = bars_spec(tasks, [{"name": r["name"] or r["experiment_id"],
                                  "values": [(r.get("metrics") or {}).get(t) for t in tasks]} for r in base + top])
        return "fitness", (f"<h1>Fitness over time</h1>{self._campaign_nav('/fitness', cid)}"
                           f"<p class='note'>{len(points)} scored experiments in the order their results came in; "
                           "the line is the best candidate so far.</p>"
                           + chart_div("fitness-plot", fitness_spec(points, href="/experiment/{id}"))
                           + "<h2>Benchmark tasks: baselines and the top 8 candidates</h2>"
                           + chart_div("tasks-plot", bars, 360))

    # ---------------------------------------------------------------- one experiment
    def experiment(self, experiment_id: str) -> tuple[str, str] | None:
        doc = self.model.experiment(experiment_id)
        if doc is None:
            return None
        parent = self.model.experiment(doc["parent_id"]) if doc.get("parent_id") else None
        name = doc.get("name") or experiment_id
        score, results, insights = doc.get("score") or {}, doc.get("results") or {}, doc.get("insights") or {}
        facts = [("status", f"<span class='pill'>{esc(doc.get('status'))}</span>"), ("id", f"<code>{esc(experiment_id)}</code>"),
                 ("campaign", f"<a href='/campaign?campaign={esc(quote(doc.get('campaign_id') or '', safe=''))}'>"
                              f"{esc(doc.get('campaign_id'))}</a>"),
                 ("role", esc(doc.get("role"))),
                 ("parent", link(doc["parent_id"], (parent or {}).get("name")) if doc.get("parent_id") else "–"),
                 ("fitness", num(doc.get("fitness"), 4)), ("final loss", num(results.get("final_loss"), 4)),
                 ("benchmark", num(results.get("benchmark"), 4)), ("parameters", esc(results.get("params"))),
                 ("significant", esc(score.get("significant")))]
        replication = doc.get("replication")   # its re-training on held-out seeds (issue 24)
        if replication:
            facts.append(("replication", f"{esc(replication.get('verdict'))}, fitness "
                                         f"{num(replication.get('replicated_fitness'), 4)} over seeds "
                                         f"{esc(replication.get('seeds'))}"))
        html = [f"<h1>{esc(name)}</h1>", "<table class='facts'>" + "".join(
            f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts) + "</table>",
            "<h2>Motivation</h2>", f"<pre class='text' id='motivation'>{esc(doc.get('motivation'))}</pre>"]
        html += ["<h2>Code</h2>", code_diff(parent.get("code") if parent else None, doc.get("code") or "",
                                            (parent or {}).get("name") or "parent", name)]
        curves = [{"name": name, "experiment_id": experiment_id, "points": results.get("loss_curve") or []}]
        if parent and (parent.get("results") or {}).get("loss_curve"):
            curves.append({"name": f"parent: {parent.get('name')}", "experiment_id": parent["experiment_id"],
                           "points": parent["results"]["loss_curve"], "baseline": True})
        html += ["<h2>Training curves</h2>", chart_div("curves-plot", curves_spec(curves))]
        html += ["<h2>Benchmark tasks</h2>", metrics_table(results.get("metrics") or {},
                                                           (parent or {}).get("results", {}).get("metrics") or {})]
        html.append("<h2>Judge</h2>" + judge_html(self.model.scores(experiment_id)))
        html.append("<h2>Analyst</h2>" + analyst_html(insights, self.model.cognition_titles(
            list(insights.get("cognition_ids") or []))))
        html += ["<h2>Events in order</h2>", events_table(doc, self.model.attempts(experiment_id),
                                                          self.model.scores(experiment_id))]
        return name, "".join(html)

    # ---------------------------------------------------------------- compare
    def compare(self, ids: list[str]) -> tuple[str, str]:
        docs = [d for d in (self.model.experiment(i) for i in ids[:6]) if d is not None]
        if len(docs) < 2:
            return "compare", ("<h1>Compare</h1><p class='empty'>Give two or more experiment ids: "
                               "<code>/compare?ids=A,B</code>, or follow a <i>vs best</i> link on the leaderboard.</p>")
        rows = [("fitness", lambda d: num(d.get("fitness"), 4)),
                ("final loss", lambda d: num((d.get("results") or {}).get("final_loss"), 4)),
                ("benchmark", lambda d: num((d.get("results") or {}).get("benchmark"), 4)),
                ("parameters", lambda d: esc((d.get("results") or {}).get("params"))),
                ("status", lambda d: esc(d.get("status")))]
        head = [""] + [link(d["experiment_id"], d.get("name")) for d in docs]
        body = [[k] + [f(d) for d in docs] for k, f in rows]
        curves = curves_spec([{"name": d.get("name") or d["experiment_id"], "experiment_id": d["experiment_id"],
                               "points": (d.get("results") or {}).get("loss_curve") or []} for d in docs])
        tasks = sorted({t for d in docs for t in ((d.get("results") or {}).get("metrics") or {})})
        bars = bars_spec(tasks, [{"name": d.get("name") or d["experiment_id"],
                                  "values": [((d.get("results") or {}).get("metrics") or {}).get(t) for t in tasks]}
                                 for d in docs])
        diffs = "".join(f"<h3>{esc(docs[0].get('name'))} → {esc(d.get('name'))}</h3>"
                        + code_diff(docs[0].get("code") or "", d.get("code") or "", docs[0].get("name") or "a",
                                    d.get("name") or "b") for d in docs[1:])
        return "compare", ("<h1>Compare</h1>" + table(head, body, "compare") + "<h2>Training curves</h2>"
                           + chart_div("curves-plot", curves) + "<h2>Benchmark tasks</h2>"
                           + chart_div("tasks-plot", bars) + "<h2>Code</h2>" + diffs)


# ---------------------------------------------------------------- pieces of the experiment page
def code_diff(before: str | None, after: str, before_name: str, after_name: str) -> str:
    """The program as a unified diff against `before` (its parent), or whole when there is none."""
    if before is None or before == after:
        note = "identical to its parent" if before is not None else "no parent in the archive"
        lines = "".join(f"<span class='ctx'>{esc(line)}</span>\n" for line in after.splitlines())
        return f"<p class='note'>{note}</p><pre class='code' id='code'>{lines}</pre>"
    out = []
    for line in difflib.unified_diff(before.splitlines(), after.splitlines(), before_name, after_name, lineterm="", n=3):
        cls = "hunk" if line.startswith("@@") else {"+": "add", "-": "del"}.get(line[:1], "ctx")
        out.append(f"<span class='{cls}'>{esc(line)}</span>\n")
    return f"<pre class='code diff' id='code'>{''.join(out)}</pre>"


def metrics_table(metrics: dict[str, float], parent: dict[str, float]) -> str:
    if not metrics:
        return "<p class='empty'>no results yet</p>"
    rows = [[esc(t), num(v, 4), num(parent.get(t), 4),
             num(v - parent[t], 4) if t in parent and v is not None and parent[t] is not None else "–"]
            for t, v in sorted(metrics.items())]
    return table(["task", "score", "parent", "Δ"], rows, "tasks")


def judge_html(scores: list[dict[str, Any]]) -> str:
    if not scores:
        return "<p class='empty'>not scored yet</p>"
    parts = [table(["scheme", "fitness", "loss", "benchmark", "qualitative", "significant", "note"],
                   [[esc(s.get("scheme")), num(s.get("fitness"), 4), num(s.get("loss_score")),
                     num(s.get("benchmark_score")), num(s.get("qualitative")), esc(s.get("significant")),
                     esc(s.get("note") or s.get("error"))] for s in scores], "scores")]
    for s in scores:
        detail = s.get("qualitative_detail") or {}
        for k, v in detail.items():
            parts.append(f"<h4>{esc(k)}</h4><pre class='text'>{esc(v)}</pre>")
    return "".join(parts)


def analyst_html(insights: dict[str, Any], cognition_titles: dict[str, str]) -> str:
    if not insights:
        return "<p class='empty'>no analysis yet</p>"
    parts = [f"<h4>{esc(k.replace('_', ' '))}</h4><pre class='text'>{esc(insights[k])}</pre>"
             for k in TEXT_SECTIONS if insights.get(k)]
    ids, summaries = insights.get("cognition_ids") or [], insights.get("cognition_summaries") or []
    if ids:
        items = "".join(f"<li><b>{esc(cognition_titles.get(c) or c)}</b> {esc(summaries[i] if i < len(summaries) else '')}"
                        f"</li>" for i, c in enumerate(ids))
        parts.append(f"<h4>cognitions retrieved</h4><ul id='cognitions'>{items}</ul>")
    return "".join(parts)


# the parts of an experiment's document that record one event each: (document key, event type)
DOC_EVENTS = (("sampling", "ParentSampled"), ("promotion", "ExperimentPromoted"), ("training", "TrainingStarted"),
              ("progress", "TrainingProgress (latest)"), ("results", "ResultsReady"), ("insights", "InsightsStored"),
              ("abandoned", "ExperimentAbandoned"), ("imported", "ExperimentImported"),
              ("replication", "ReplicationAssessed"))


def events_table(doc: dict[str, Any], attempts: list[dict[str, Any]], scores: list[dict[str, Any]]) -> str:
    """The audit trail as the read model keeps it: each attempt and score, and the facts of the document."""
    times = doc.get("times") or {}
    found: list[tuple[str, str, str]] = []
    kinds = {"proposal": "ProposalCreated", "rejected": "ProposalRejected", "failure": "TrainingFailed"}
    for a in attempts:
        what = a.get("feedback") or a.get("error") or a.get("name") or ""
        found.append((a.get("occurred_at") or "", kinds.get(a.get("kind"), a.get("kind") or ""), what))
    for s in scores:
        found.append((s.get("occurred_at") or "", "ScoreAssigned", f"{s.get('scheme')}: fitness {num(s.get('fitness'), 4)}"))
    fact_times = {"sampling": times.get("sampled"), "promotion": times.get("promoted"), "imported": times.get("imported")}
    for key, etype in DOC_EVENTS:
        part = doc.get(key)
        if part:
            at = part.get("at") if isinstance(part, dict) else None
            found.append((at or fact_times.get(key) or "", etype, ""))
    found.sort(key=lambda e: e[0])
    return table(["when", "event", "what"], [[esc(t), esc(k), f"<span class='what'>{esc(w[:300])}</span>"]
                                           for t, k, w in found], "events")

