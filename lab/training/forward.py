"""The untrusted half of scoring: `python -m lab.training.forward JOB.json`, in a sandbox child only.

A fresh interpreter loads the program and the trained weights (a state_dict saved by the training child,
loaded with `weights_only=True`), connects to the Unix socket the trusted scorer listens on (inside this
child's scratch), and answers forward requests: token ids [B, T] in, logits [B, T, V] out (raw float32
bytes, no pickle either way). It never sees a target, a loss or a metric: those live in the trusted
process (lab/training/scoring.py). The model runs under the autocast mode it was trained under (the job's
`autocast`, "fp32" or "bf16"; lab/training/train.py), so the scored model is the trained one.
"""
from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import torch

from lab.training.frames import recv_frame, send_frame
from lab.training.profiles import get_profile
from lab.program import load_layer_class
from lab.training.runner import build_model
from lab.training.train import AUTOCAST_MODES, AutocastModel, default_device


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[0]).read_text())
    profile = get_profile(job["profile"], **(job.get("profile_overrides") or {}))
    device = default_device()
    model = build_model(load_layer_class(job["code"], job.get("layer_class_name", "DeltaNet")), profile)
    model.load_state_dict(torch.load(job["weights"], map_location="cpu", weights_only=True))
    model.to(device).eval()
    mode = job.get("autocast") or "fp32"
    if mode not in AUTOCAST_MODES:
        raise ValueError(f"autocast must be one of {AUTOCAST_MODES}, not {mode!r}")
    if mode != "fp32":
        model = AutocastModel(model, mode, device).eval()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(job["socket"])
    while True:
        header, payload = recv_frame(conn)
        if header.get("op") != "forward":
            return 0
        x = torch.frombuffer(bytearray(payload), dtype=torch.int64).reshape(header["shape"])
        try:
            with torch.no_grad():
                logits = model(x.to(device))[0].float().cpu().contiguous()
        except Exception as e:  # noqa: BLE001 - reported to the scorer, which fails the run as eval_error
            send_frame(conn, {"ok": False, "error": f"{type(e).__name__}: {e}"[:2000]})
            raise
        send_frame(conn, {"ok": True, "shape": list(logits.shape), "dtype": "float32"}, logits.numpy().tobytes())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
