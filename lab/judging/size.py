"""Size-matched search (issue 24): a candidate may be at most `max_params_ratio` larger than the campaign's baseline.

Without a ceiling relative to the baseline, the search finds bigger models: a profile's own `max_params` allows
8.5x DeltaNet on cpu-tiny, and the first winners were +28 % in parameters. ASI-Arch keeps every candidate close to
its baseline's size, so that a gain is a gain of design, not of capacity. The ratio is a campaign setting,
`CampaignStarted.config["max_params_ratio"]` (`archlab run --max-params-ratio R`, default 0.10); the archive writes
the resulting ceiling on each ParentSampled (`max_params`, with the baseline's measured `baseline_params`), the
researcher's checks refuse a program above it, and its proposers aim below it.
"""
from __future__ import annotations

import math
from typing import Any

DEFAULT_MAX_PARAMS_RATIO = 0.10


def max_params_ratio(config: dict[str, Any] | None) -> float | None:
    """The campaign's ratio; None (no ceiling but the profile's) for a campaign without the setting: one started
    before issue 24 keeps deciding as it did. `archlab run` always writes it (default DEFAULT_MAX_PARAMS_RATIO)."""
    raw = (config or {}).get("max_params_ratio")
    return None if raw is None else float(raw)


def param_ceiling(baseline_params: int | None, ratio: float | None) -> int | None:
    """The largest parameter count allowed: (1 + ratio) x the baseline's, rounded down; None without either."""
    if not baseline_params or ratio is None:
        return None
    return math.floor(baseline_params * (1.0 + ratio))


def relative(value: float | None, baseline: float | None) -> float | None:
    """value / baseline (1.0: the baseline's size), None when either is unknown."""
    if value is None or not baseline:
        return None
    return value / baseline


def text(count: float | None, ratio: float | None) -> str:
    """A size beside the baseline's, as the leaderboard, `show` and the report print it: "129,254 (1.10x)"."""
    if not count:
        return "—"
    return f"{count:,.0f}" + ("" if ratio is None else f" ({ratio:.2f}x)")
