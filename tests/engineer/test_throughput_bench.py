"""bench/campaign.py throughput's before arm (issue 23): the lab it runs is this checkout with the proposer's kernels as
they were before issue 23, and the check of which kernel a proposal carries reads what each codegen renders."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from schemas import events as ev
from services.researcher.codegen import render
from services.researcher.genome import ZOO_DESIGNS, canonical
from tests.support.bench_script import load_bench

REPO = Path(__file__).resolve().parents[2]
RENDER_DELTANET = ("from services.researcher.codegen import render; from services.researcher.genome import ZOO_DESIGNS, "
                   "canonical; print(render(canonical(ZOO_DESIGNS['deltanet']), 'deltanet'))")


@pytest.fixture(scope="module")
def bench():
    return load_bench("campaign")


def _proposal(code: str, role: str = "candidate") -> ev.ProposalCreated:
    return ev.ProposalCreated(campaign_id="c", experiment_id="e", name="n", code=code, motivation="m", role=role)


def test_todays_codegen_renders_the_one_solve_kernel(bench):
    code = render(canonical(ZOO_DESIGNS["deltanet"]), "deltanet")
    assert bench.KERNEL_MARKERS["one solve"] in code and bench.KERNEL_MARKERS["inverse"] not in code


def test_the_before_lab_differs_only_in_the_kernels_and_renders_the_inverse(bench, tmp_path):
    ref = f"{bench.BEFORE_KERNELS}:{bench.KERNEL_FILES[0]}"
    if subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", ref], capture_output=True).returncode:
        pytest.skip(f"this checkout's git history lacks {ref} (a shallow clone): the before arm cannot be built here")
    lab = bench.checkout_with_kernels(tmp_path, bench.BEFORE_KERNELS)
    tracked = subprocess.run(["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True,
                             check=True).stdout.split()
    differ = [f for f in tracked if (REPO / f).is_file() and (REPO / f).read_bytes() != (lab / f).read_bytes()]
    assert sorted(differ) == sorted(bench.KERNEL_FILES)   # the kernels, and nothing else
    conv = (lab / bench.KERNEL_FILES[1]).read_text()
    assert "want_state" not in conv and ".contiguous()" not in conv   # the short convolution of before 90e3577

    # the before arm's services start in `lab`: what they import from there renders the kernel of before issue 23
    old = subprocess.run([sys.executable, "-c", RENDER_DELTANET], cwd=lab, capture_output=True, text=True,
                         check=True).stdout
    new = render(canonical(ZOO_DESIGNS["deltanet"]), "deltanet")
    assert bench.KERNEL_MARKERS["inverse"] in old and bench.KERNEL_MARKERS["one solve"] not in old
    assert bench.kernels_used([_proposal(old), _proposal(new), _proposal(new), _proposal(old, role="baseline")]) \
        == {"inverse": 1, "one solve": 2}


def test_an_unknown_revision_is_a_clear_error(bench, tmp_path):
    files = "services/researcher/codegen.py, lab/fla_shim/fla/modules/convolution.py"
    with pytest.raises(SystemExit, match=f"cannot read {files} at no-such-ref"):
        bench.checkout_with_kernels(tmp_path, "no-such-ref")


def test_every_arm_but_again_runs_the_bench_campaign_id(bench):
    assert {bench.campaign_id_of(arm, "c-bench-1") for arm in ("before", "after", "fresh")} == {"c-bench-1"}
    assert bench.campaign_id_of("again", "c-bench-1") == "c-bench-1-again"   # after's folder holds c-bench-1


def test_candidates_are_listed_in_the_order_sampled(bench):
    from datetime import datetime, timedelta, timezone

    t0 = datetime(2026, 12, 6, tzinfo=timezone.utc)
    parent = ev.ProgramSnapshot(experiment_id="zoo:deltanet", name="deltanet", code="")

    def sampled(exp, minutes, mode="explore"):
        return ev.ParentSampled(campaign_id="c", experiment_id=exp, mode=mode, parent=parent,
                                occurred_at=t0 + timedelta(minutes=minutes))

    events = [sampled("b", 0, mode="baseline"), sampled("e2", 2), sampled("e1", 1), sampled("e3", 3),
              ev.ProposalCreated(campaign_id="c", experiment_id="e1", name="first", code="", motivation=""),
              ev.ProposalCreated(campaign_id="c", experiment_id="e2", name="second", code="", motivation="")]
    assert bench.sampled_names(events) == ["first", "second", "(no proposal)"]
