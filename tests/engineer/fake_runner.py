"""A stand-in for lab.training.runner with the same CLI and result format, driven by the code.

The program's code carries directives: `# fake: steps=40 step_s=0.05 fail=RuntimeError`. Checkpoints
are JSON files in checkpoint_dir, so a takeover resumes where the killed engineer stopped.
"""
import json
import os
import sys
import time
import traceback
from pathlib import Path


def directives(code: str) -> dict:
    for line in code.splitlines():
        if line.strip().startswith("# fake:"):
            return dict(kv.split("=", 1) for kv in line.split(":", 1)[1].split())
    return {}


def main(job_path, result_path):
    job = json.loads(Path(job_path).read_text())
    d = directives(job["code"])
    steps, step_s = int(d.get("steps", 20)), float(d.get("step_s", 0.01))
    ckpt = Path(job["checkpoint_dir"]) / "fake.json"
    start = json.loads(ckpt.read_text())["step"] if job.get("resume") and ckpt.exists() else 0
    curve = []
    try:
        if d.get("fail_at_build"):
            raise SyntaxError("invalid syntax in the generated layer")
        for step in range(start + 1, steps + 1):
            time.sleep(step_s)
            if d.get("fail") and step == int(d.get("fail_step", 3)):
                raise RuntimeError("shape mismatch: mat1 and mat2 shapes cannot be multiplied")
            loss = 5.0 / step
            curve.append([step, loss])
            if step % 5 == 0:
                ckpt.parent.mkdir(parents=True, exist_ok=True)
                ckpt.write_text(json.dumps({"step": step}))
            print(json.dumps({"progress": {"step": step, "total_steps": steps, "loss": loss, "tokens_per_s": 1000.0}}),
                  flush=True)
    except Exception as e:
        tb = traceback.format_exc()
        print(tb, file=sys.stderr)
        Path(result_path).write_text(json.dumps({"error": {"type": type(e).__name__, "message": str(e),
                                                           "traceback": tb}}))
        return 1
    result = {"loss_curve": curve, "final_loss": 5.0 / steps, "metrics": {"fake/acc": 0.5}, "benchmark": 0.5,
              "params": 1234, "tokens": steps * 100, "train_s": steps * step_s, "eval_s": 0.01,
              "tokens_per_s": 1000.0, "device": "cpu", "peak_mem_mb": 10.0, "steps": steps,
              "resumed_from_step": start or None, "profile": job["profile"], "seed": job["seed"],
              "pid": os.getpid(), "reference_step_s": job.get("reference_step_s")}
    Path(result_path).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
