"""Inline SVG plots for the campaign report, written by hand (no plotting library, no JS).

Each function returns one `<svg>` string. Every piece of text passes through `esc()`; marks carry
classes (`pt`, `node`, `curve`, ...) and `data-*` attributes so a browser test can count them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

# viridis at 5 stops: perceptually ordered, readable for colour-blind readers
VIRIDIS = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"]
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
MISSING = "#c8ccd2"     # a node without a fitness
FONT = "font-family='system-ui, -apple-system, Segoe UI, Roboto, sans-serif'"


def esc(text: object) -> str:
    return escape(str(text), quote=True)


def short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def color_for(t: float | None) -> str:
    """Viridis colour of t in [0, 1]; grey when unknown."""
    if t is None or math.isnan(t):
        return MISSING
    t = min(1.0, max(0.0, t)) * (len(VIRIDIS) - 1)
    i = min(int(t), len(VIRIDIS) - 2)
    a, b = VIRIDIS[i], VIRIDIS[i + 1]
    f = t - i
    rgb = [round(int(a[k:k + 2], 16) * (1 - f) + int(b[k:k + 2], 16) * f) for k in (1, 3, 5)]
    return "#" + "".join(f"{c:02x}" for c in rgb)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, t = [], first
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 10))
        t += step
    return ticks


def tick_label(v: float) -> str:
    if abs(v) >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:.4g}"


@dataclass
class Frame:
    """A plot area with linear x/y scales inside margins."""
    width: int
    height: int
    x0: float
    x1: float
    y0: float
    y1: float
    left: int = 56
    right: int = 16
    top: int = 14
    bottom: int = 40

    def x(self, v: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return self.left + (v - self.x0) / span * (self.width - self.left - self.right)

    def y(self, v: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return self.height - self.bottom - (v - self.y0) / span * (self.height - self.top - self.bottom)

    def axes(self, xlabel: str, ylabel: str, xticks: list[float], yticks: list[float]) -> str:
        px0, px1 = self.left, self.width - self.right
        py0, py1 = self.top, self.height - self.bottom
        parts = [f"<rect x='{px0}' y='{py0}' width='{px1 - px0}' height='{py1 - py0}' fill='#fafbfc' "
                 f"stroke='#d0d4da'/>"]
        for v in yticks:
            y = self.y(v)
            parts.append(f"<line x1='{px0}' x2='{px1}' y1='{y:.1f}' y2='{y:.1f}' stroke='#e6e9ee'/>")
            parts.append(f"<text x='{px0 - 6}' y='{y + 4:.1f}' text-anchor='end' class='tick'>"
                         f"{esc(tick_label(v))}</text>")
        for v in xticks:
            x = self.x(v)
            parts.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{py0}' y2='{py1}' stroke='#eef0f3'/>")
            parts.append(f"<text x='{x:.1f}' y='{py1 + 16}' text-anchor='middle' class='tick'>"
                         f"{esc(tick_label(v))}</text>")
        parts.append(f"<text x='{(px0 + px1) / 2:.1f}' y='{self.height - 6}' text-anchor='middle' "
                     f"class='axis-label'>{esc(xlabel)}</text>")
        parts.append(f"<text transform='translate(14 {(py0 + py1) / 2:.1f}) rotate(-90)' text-anchor='middle' "
                     f"class='axis-label'>{esc(ylabel)}</text>")
        return "".join(parts)


def svg_open(svg_id: str, width: int, height: int, label: str) -> str:
    return (f"<svg id='{esc(svg_id)}' class='plot' xmlns='http://www.w3.org/2000/svg' width='{width}' "
            f"height='{height}' viewBox='0 0 {width} {height}' role='img' aria-label='{esc(label)}' {FONT}>")


# ---------------------------------------------------------------- fitness over experiments
@dataclass
class FitnessPoint:
    experiment_id: str
    name: str
    fitness: float
    baseline: bool = False


def fitness_svg(points: list[FitnessPoint], width: int = 1040, height: int = 340) -> str:
    """One mark per scored experiment in scoring order; the best candidate so far as a step line;
    baselines as diamonds with a dashed reference line."""
    if not points:
        return svg_open("fitness-plot", width, 60, "no scored experiment") + \
            "<text x='10' y='30' class='empty'>no scored experiment yet</text></svg>"
    fits = [p.fitness for p in points]
    lo, hi = min(fits), max(fits)
    pad = max(0.02, (hi - lo) * 0.08)
    fr = Frame(width, height, 0.5, len(points) + 0.5, lo - pad, hi + pad)
    xt = nice_ticks(1, len(points), min(10, len(points)))
    xt = [t for t in xt if float(t).is_integer() and 1 <= t <= len(points)]
    parts = [svg_open("fitness-plot", width, height, "fitness over experiments"),
             fr.axes("experiment (in order of results)", "fitness", xt, nice_ticks(lo - pad, hi + pad, 5))]
    for p in points:
        if p.baseline:
            y = fr.y(p.fitness)
            parts.append(f"<line class='baseline-ref' x1='{fr.left}' x2='{width - fr.right}' y1='{y:.1f}' "
                         f"y2='{y:.1f}' stroke='#555' stroke-dasharray='5 4'/>")
    # best-so-far over candidates only: a baseline is not a discovery
    best, steps = None, []
    for i, p in enumerate(points, 1):
        if not p.baseline and (best is None or p.fitness > best):
            best = p.fitness
        if best is not None:
            steps.append((i, best))
    if steps:
        d = f"M{fr.x(steps[0][0]):.1f},{fr.y(steps[0][1]):.1f}"
        for (_, prev), (i, b) in zip(steps, steps[1:]):
            d += f" H{fr.x(i):.1f} V{fr.y(b):.1f}"
        d += f" H{fr.x(len(points) + 0.5):.1f}"
        parts.append(f"<path class='best-line' d='{d}' fill='none' stroke='#e45756' stroke-width='2'/>")
    for i, p in enumerate(points, 1):
        x, y = fr.x(i), fr.y(p.fitness)
        tip = f"<title>{esc(p.name)} ({esc(p.experiment_id)}): fitness {p.fitness:.4f}</title>"
        if p.baseline:
            parts.append(f"<path class='pt baseline' data-exp='{esc(p.experiment_id)}' "
                         f"d='M{x:.1f},{y - 7:.1f} L{x + 7:.1f},{y:.1f} L{x:.1f},{y + 7:.1f} L{x - 7:.1f},{y:.1f} Z' "
                         f"fill='#333'>{tip}</path>")
        else:
            parts.append(f"<circle class='pt' data-exp='{esc(p.experiment_id)}' cx='{x:.1f}' cy='{y:.1f}' r='5' "
                         f"fill='{color_for((p.fitness - lo) / ((hi - lo) or 1))}' stroke='#222' "
                         f"stroke-width='0.8'>{tip}</circle>")
    parts.append("</svg>")
    return "".join(parts)


# ---------------------------------------------------------------- lineage tree
@dataclass
class TreeNode:
    experiment_id: str
    name: str
    parent_id: str | None
    kind: str = "candidate"      # candidate | baseline | imported | external
    status: str = ""
    fitness: float | None = None
    children: list["TreeNode"] = field(default_factory=list)


def _shape(kind: str, x: float, y: float, fill: str, stroke: str, extra: str) -> str:
    if kind == "baseline":
        return (f"<rect x='{x - 8:.1f}' y='{y - 8:.1f}' width='16' height='16' rx='2' fill='{fill}' "
                f"stroke='{stroke}' stroke-width='2' {extra}/>")
    if kind in ("imported", "external"):
        pts = " ".join(f"{x + 9 * math.cos(a):.1f},{y + 9 * math.sin(a):.1f}"
                       for a in (math.pi / 3 * k + math.pi / 6 for k in range(6)))
        dash = "stroke-dasharray='3 2'" if kind == "external" else ""
        return f"<polygon points='{pts}' fill='{fill}' stroke='{stroke}' stroke-width='2' {dash} {extra}/>"
    return f"<circle cx='{x:.1f}' cy='{y:.1f}' r='7' fill='{fill}' stroke='{stroke}' stroke-width='1.5' {extra}/>"


def lineage_svg(nodes: list[TreeNode], col_width: int = 190, row_height: int = 26) -> str:
    """Parents left, children right; one row per leaf, a parent centred on its children.
    Fill = fitness (viridis, grey when unscored); square = baseline, hexagon = imported root,
    dashed hexagon = a parent outside this campaign's log; red ring = failed/abandoned."""
    by_id = {n.experiment_id: n for n in nodes}
    for n in nodes:
        n.children = []
    roots = []
    for n in nodes:
        if n.parent_id and n.parent_id in by_id and n.parent_id != n.experiment_id:
            by_id[n.parent_id].children.append(n)
        else:
            roots.append(n)
    if not nodes:
        return svg_open("lineage-plot", 400, 60, "no experiment") + \
            "<text x='10' y='30' class='empty'>no experiment yet</text></svg>"
    fits = [n.fitness for n in nodes if n.fitness is not None]
    lo, hi = (min(fits), max(fits)) if fits else (0.0, 1.0)
    pos: dict[str, tuple[float, float]] = {}
    seen: set[str] = set()
    row = 0

    def place(n: TreeNode, depth: int) -> float:
        nonlocal row
        seen.add(n.experiment_id)
        kids = [c for c in n.children if c.experiment_id not in seen]  # cycles cannot loop forever
        ys = [place(c, depth + 1) for c in kids]
        if ys:
            y = (min(ys) + max(ys)) / 2
        else:
            y = row
            row += 1
        pos[n.experiment_id] = (depth, y)
        return y

    for r in roots:
        place(r, 0)
    for n in nodes:  # nodes only reachable through a cycle
        if n.experiment_id not in seen:
            place(n, 0)
    depth_max = max(d for d, _ in pos.values())
    left, top, legend_w = 24, 20, 0
    width = left + (depth_max + 1) * col_width + 40
    height = top + row * row_height + 16

    def xy(eid: str) -> tuple[float, float]:
        d, r = pos[eid]
        return left + 10 + d * col_width, top + r * row_height

    parts = [svg_open("lineage-plot", width + legend_w, height, "lineage tree coloured by fitness")]
    for n in nodes:
        if n.parent_id in by_id and n.parent_id != n.experiment_id:
            (x0, y0), (x1, y1) = xy(n.parent_id), xy(n.experiment_id)
            mx = (x0 + x1) / 2
            parts.append(f"<path class='edge' d='M{x0 + 9:.1f},{y0:.1f} C{mx:.1f},{y0:.1f} {mx:.1f},{y1:.1f} "
                         f"{x1 - 9:.1f},{y1:.1f}' fill='none' stroke='#9aa3ad' stroke-width='1.3'/>")
    for n in nodes:
        x, y = xy(n.experiment_id)
        t = None if n.fitness is None else (n.fitness - lo) / ((hi - lo) or 1)
        bad = n.status in ("abandoned", "failed")
        stroke = "#d62728" if bad else "#333"
        cls = "node" if n.kind != "external" else "node-external"
        tip = (f"<title>{esc(n.name)} ({esc(n.experiment_id)}) — {esc(n.kind)}, {esc(n.status or 'n/a')}"
               f", fitness {esc(fmt(n.fitness, 4))}</title>")
        parts.append(f"<g class='{cls} {esc(n.kind)}' data-exp='{esc(n.experiment_id)}'>{tip}")
        parts.append(_shape(n.kind, x, y, color_for(t), stroke, ""))
        label = short(n.name, 24)
        parts.append(f"<text x='{x + 13:.1f}' y='{y + 4:.1f}' class='node-label'>{esc(label)}</text>")
        if n.fitness is not None:
            parts.append(f"<text x='{x + 13:.1f}' y='{y + 15:.1f}' class='node-fit'>{n.fitness:.3f}</text>")
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def colorbar_svg(lo: float | None, hi: float | None, width: int = 220) -> str:
    """The fitness colour scale of the lineage tree, for the legend."""
    stops = "".join(f"<stop offset='{i / (len(VIRIDIS) - 1):.2f}' stop-color='{c}'/>" for i, c in enumerate(VIRIDIS))
    lo_s, hi_s = ("–", "–") if lo is None else (f"{lo:.3f}", f"{hi:.3f}")
    return (f"<svg class='colorbar' xmlns='http://www.w3.org/2000/svg' width='{width}' height='30' {FONT}>"
            f"<defs><linearGradient id='fitness-gradient'>{stops}</linearGradient></defs>"
            f"<rect x='0' y='2' width='{width}' height='12' fill='url(#fitness-gradient)' stroke='#888'/>"
            f"<text x='0' y='27' class='tick'>{esc(lo_s)}</text>"
            f"<text x='{width}' y='27' text-anchor='end' class='tick'>{esc(hi_s)}</text></svg>")


# ---------------------------------------------------------------- loss curves
@dataclass
class Curve:
    experiment_id: str
    name: str
    points: list[tuple[int, float]]
    baseline: bool = False


def loss_svg(curves: list[Curve], width: int = 1040, height: int = 360) -> str:
    """Training loss per step; baselines black and dashed. The y range ignores the first 5% of
    steps (the warm-up drop would flatten every difference that matters); higher points are clipped."""
    curves = [c for c in curves if c.points]
    if not curves:
        return svg_open("loss-plot", width, 60, "no loss curve") + \
            "<text x='10' y='30' class='empty'>no loss curve yet</text></svg>"
    legend_w = 230
    x_hi = max(s for c in curves for s, _ in c.points)
    x_lo = min(s for c in curves for s, _ in c.points)
    tail = [v for c in curves for s, v in c.points if s >= x_lo + 0.05 * (x_hi - x_lo) and math.isfinite(v)]
    tail = tail or [v for c in curves for _, v in c.points if math.isfinite(v)] or [0.0, 1.0]
    lo, hi = min(tail), max(tail)
    pad = (hi - lo) * 0.05 or 0.05
    fr = Frame(width - legend_w, height, x_lo, x_hi, lo - pad, hi + pad)
    parts = [svg_open("loss-plot", width, height, "loss curves"),
             f"<defs><clipPath id='loss-clip'><rect x='{fr.left}' y='{fr.top}' width='{fr.width - fr.left - fr.right}' "
             f"height='{fr.height - fr.top - fr.bottom}'/></clipPath></defs>",
             fr.axes("step", "training loss", nice_ticks(x_lo, x_hi, 6), nice_ticks(lo - pad, hi + pad, 5)),
             "<g clip-path='url(#loss-clip)'>"]
    colors = {}
    k = 0
    for c in curves:
        if c.baseline:
            colors[c.experiment_id] = "#222"
        else:
            colors[c.experiment_id] = PALETTE[k % len(PALETTE)]
            k += 1
    for c in curves:
        pts = [(s, v) for s, v in c.points if math.isfinite(v)]
        d = " ".join(f"{'M' if i == 0 else 'L'}{fr.x(s):.1f},{fr.y(v):.1f}" for i, (s, v) in enumerate(pts))
        dash = "stroke-dasharray='6 4'" if c.baseline else ""
        parts.append(f"<path class='curve{' baseline' if c.baseline else ''}' data-exp='{esc(c.experiment_id)}' "
                     f"d='{d}' fill='none' stroke='{colors[c.experiment_id]}' stroke-width='{2.2 if c.baseline else 1.8}' "
                     f"{dash}><title>{esc(c.name)} ({esc(c.experiment_id)})</title></path>")
    parts.append("</g>")
    lx, ly = width - legend_w + 12, fr.top + 6
    for i, c in enumerate(curves):
        y = ly + i * 20
        dash = "stroke-dasharray='6 4'" if c.baseline else ""
        last = c.points[-1][1]
        parts.append(f"<g class='legend-item'><line x1='{lx}' x2='{lx + 26}' y1='{y + 5}' y2='{y + 5}' "
                     f"stroke='{colors[c.experiment_id]}' stroke-width='2.2' {dash}/>"
                     f"<text x='{lx + 32}' y='{y + 9}' class='legend-text'>{esc(short(c.name, 18))}"
                     f"{' (baseline)' if c.baseline else ''} · {last:.3f}</text>"
                     f"<title>{esc(c.name)} ({esc(c.experiment_id)})</title></g>")
    parts.append("</svg>")
    return "".join(parts)
