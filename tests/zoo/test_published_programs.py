"""The 106 published ASI-Arch programs train on CPU through the fla stand-in.

Reads ../shared/reference/asi-arch/106.json (third-party reference data, never copied into the repo;
env ARCHLAB_SHARED_DIR overrides the location) and skips when it is absent. Every program is exec'd with
the shim first on sys.path (TORCHDYNAMO_DISABLE=1 from tests/conftest.py turns their @torch.compile
off), its DeltaNet is built at hidden_size=32 inside a tiny 2-layer LM, and 2 AdamW steps must give a
finite loss. 39 of the programs cast intermediate results to bfloat16 and then mix them with float32
tensors, which only works under bf16 autocast (how they were trained on GPUs); those get one retry
under CPU bf16 autocast, and the test records how many needed it.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("ARCHLAB_SHARED_DIR", REPO.parent / "shared"))
PROGRAMS_JSON = SHARED / "reference" / "asi-arch" / "106.json"
EXPECTED_FP32 = 67  # measured: the others need bf16 autocast (see the module docstring)


class TinyLM(nn.Module):
    """embedding -> (RMSNorm -> layer, residual) x layers -> RMSNorm -> head."""

    def __init__(self, layer_cls, vocab: int, d: int, layers: int, heads: int):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.norms = nn.ModuleList(nn.RMSNorm(d) for _ in range(layers))
        self.mixers = nn.ModuleList(layer_cls(hidden_size=d, num_heads=heads, layer_idx=i) for i in range(layers))
        self.norm, self.head = nn.RMSNorm(d), nn.Linear(d, vocab)

    def forward(self, idx):
        h, aux_total = self.emb(idx), 0.0
        for norm, mixer in zip(self.norms, self.mixers):
            out, aux, _ = mixer(norm(h))
            h = h + out
            if aux is not None:
                aux_total = aux_total + aux.float().sum()
        return self.head(self.norm(h)), aux_total


def _train_steps(layer_cls, autocast: bool, steps: int = 2, vocab: int = 64) -> float:
    torch.manual_seed(0)
    model = None
    for heads in (2, 4):
        try:
            model = TinyLM(layer_cls, vocab, d=32, layers=2, heads=heads)
            break
        except Exception:  # noqa: BLE001 - try the next head count
            if heads == 4:
                raise
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x = torch.randint(vocab, (2, 48), generator=gen)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits, aux = model(x[:, :-1])
        loss = F.cross_entropy(logits.float().flatten(0, 1), x[:, 1:].flatten()) + aux
        opt.zero_grad()
        loss.backward()
        opt.step()
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss {loss.item()}")
    return loss.item()


def _is_dtype_mix(err: Exception) -> bool:
    text = str(err)
    return isinstance(err, RuntimeError) and ("BFloat16" in text or "scalar type" in text or "dtype" in text)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::SyntaxWarning")  # the programs' own
def test_all_published_programs_train_on_cpu_with_the_shim(exec_program, record_property):
    if not PROGRAMS_JSON.is_file():
        pytest.skip(f"reference programs not found at {PROGRAMS_JSON} (set ARCHLAB_SHARED_DIR)")
    programs = json.loads(PROGRAMS_JSON.read_text())
    assert len(programs) == 106
    t0 = time.time()
    modes, failures = {}, {}
    for i, entry in enumerate(programs):
        name = entry["name"]
        try:
            layer_cls = exec_program(entry["program"], f"{i}_{name}").DeltaNet
            try:
                _train_steps(layer_cls, autocast=False)
                modes[name] = "fp32"
            except Exception as err:  # noqa: BLE001
                if not _is_dtype_mix(err):
                    raise
                _train_steps(layer_cls, autocast=True)
                modes[name] = "bf16-autocast"
        except Exception as err:  # noqa: BLE001 - every failure is reported below
            failures[name] = f"{type(err).__name__}: {str(err)[:200]}"
    n_fp32 = sum(m == "fp32" for m in modes.values())
    summary = (f"published programs: {len(modes)}/{len(programs)} train "
               f"({n_fp32} in fp32, {len(modes) - n_fp32} need bf16 autocast) in {time.time() - t0:.1f}s")
    print(summary)
    record_property("published_programs_passed", len(modes))
    record_property("published_programs_fp32", n_fp32)
    assert not failures, summary + "\n" + "\n".join(f"  {k}: {v}" for k, v in failures.items())
    assert len(modes) == 106 and n_fp32 >= EXPECTED_FP32, summary


# ---------------- the runner's autocast policy (Profile.autocast = "auto", lab/training/train.py) ----------------
# The same programs through the engineer's runner (CausalLM, cpu-micro, the monitor's leak checks) on CPU: "auto"
# trains in fp32 unless the first step fails in fp32 with a dtype error and runs under bf16 autocast. Measured on
# cpu-micro (1 head; 2 heads where a program needs them), 5 steps: 39 programs train under bf16 autocast (every one
# that fails in fp32 with a dtype error), 66 in fp32, 1 (delta_net_spectral_fusion) is stopped by the leak check.
MIXED_SAMPLE = ("delta_net_aft", "delta_net_len_hgate_mixanneal", "delta_net_syngf", "delta_net_hefth",
                "delta_net_hhgass")  # the last four count their forwards (`self._step += 1`): the bf16 leak tolerance
EXPECTED_BF16 = 39
RUNNER_STEPS = {"steps": 5, "log_every": 5, "checkpoint_every": 5, "batch_size": 8}


def _published() -> dict[str, str]:
    if not PROGRAMS_JSON.is_file():
        pytest.skip(f"reference programs not found at {PROGRAMS_JSON} (set ARCHLAB_SHARED_DIR); they are "
                    "third-party data and never copied into the repo")
    return {e["name"]: e["program"] for e in json.loads(PROGRAMS_JSON.read_text())}


def _run(code: str, tmp_path, **overrides):
    from lab.training.runner import TrainJob, run_job
    return run_job(TrainJob(code=code, profile="cpu-micro", seed=0, workdir=str(tmp_path), evaluate=False,
                            profile_overrides={**RUNNER_STEPS, **overrides}))


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::SyntaxWarning")
@pytest.mark.parametrize("name", MIXED_SAMPLE)
def test_a_mixed_dtype_published_program_trains_under_the_runner_policy(name, tmp_path):
    from lab.training.train import AUTOCAST_METRIC, is_dtype_error
    code = _published()[name]
    with pytest.raises(RuntimeError) as err:  # what it did before the policy: a dtype error at the first step
        _run(code, tmp_path / "fp32", autocast="fp32")
    assert is_dtype_error(err.value), err.value
    res = _run(code, tmp_path / "auto")
    assert res.autocast == "bf16" and res.metrics[AUTOCAST_METRIC] == 1.0
    assert res.steps == 5 and math.isfinite(res.final_loss), res.loss_curve


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::SyntaxWarning")
def test_every_mixed_dtype_published_program_trains_under_the_runner_policy(tmp_path, record_property):
    from lab.training.train import is_dtype_error
    modes, failures = {}, {}
    for i, (name, code) in enumerate(_published().items()):
        for heads in (1, 2):  # cpu-micro has 1 head; three programs need 2
            try:
                res = _run(code, tmp_path / f"{i}-{heads}", num_heads=heads)
            except Exception as err:  # noqa: BLE001 - reported below
                failures[name] = err
                continue
            modes[name] = res.autocast
            failures.pop(name, None)
            assert math.isfinite(res.final_loss), (name, res.loss_curve)
            break
    n_bf16 = sum(m == "bf16" for m in modes.values())
    record_property("published_programs_runner_bf16", n_bf16)
    record_property("published_programs_runner_fp32", len(modes) - n_bf16)
    dtype_failures = {n: str(e)[:200] for n, e in failures.items() if is_dtype_error(e)}
    assert not dtype_failures, dtype_failures
    assert n_bf16 >= EXPECTED_BF16, (n_bf16, {n: f"{type(e).__name__}: {str(e)[:200]}" for n, e in failures.items()})
