"""Validity of the CPU proxy: train the zoo's members with several seeds, rank them, Kendall tau-b
against the literature's recall order, and the seed noise the judge uses (ARCHLAB_JUDGE_SEED_NOISE).

    python bench/validity.py [--members softmax,deltanet,linear] [--seeds 0,1] [--steps N]
                             [--profile cpu-tiny[,cpu-bytes]] [--jobs 2] [--json-out report.json]

The same command as `archlab zoo bench` (services/cli/zoo.py; the logic is lab/tools/validity.py).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")  # no Inductor compiles on CPU

import typer  # noqa: E402

from services.cli.zoo import bench  # noqa: E402

if __name__ == "__main__":
    typer.run(bench)
