"""Evaluation through the lm-eval harness: a custom LM around the trained CausalLM, and
tasks generated locally as JSONL (so the embedded default runs offline).

Local tasks (written to a scratch dir at run time; lm-eval's `data_files` needs absolute paths):
- mqar_recall  loglikelihood, acc: given an MQAR sequence up to a query key, is the value the
               model's greedy next token? (the training metric of Zoology, through lm-eval)
- mqar_mc      multiple_choice, acc: the right value among 4 values of the same sequence
- bytes_bpb    loglikelihood_rolling, bits_per_byte on held-out text (lab/training/heldout.py: a corpus staged
               under the data dir, out of the sandbox's view; the stdlib's held-out files inside a child)
- stdlib_mc    multiple_choice, acc: which of 4 continuations is the real held-out text (same corpus; the name
               is historical)
- battery      not an lm-eval task: every task of the profile's `battery_tasks` scored directly
               (token accuracy at the labelled positions of fixed fresh sequences, battery.py)
Any other task name (arc_easy, hellaswag, ...) is passed to lm-eval as-is (it needs the hub
or a warm cache).

benchmark = the mean of every task's `acc` (bits_per_byte and perplexities are not
accuracies and stay out of it; they are in `metrics`).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from lab.training.data import IGNORE, mqar
from lab.training.profiles import Profile

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # local tasks never need the hub;
os.environ.setdefault("HF_HUB_OFFLINE", "1")       # a GPU box sets these to 0 for standard tasks

from lm_eval.api.model import LM  # noqa: E402
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window  # noqa: E402

LOCAL_TASKS = ("mqar_recall", "mqar_mc", "bytes_bpb", "stdlib_mc")
BATTERY = "battery"  # eval task: the profile's battery_tasks, each "<task>/acc" (lab/training/battery.py)
EVAL_SEED = 12345  # public: outside a campaign; a campaign's runs use its secret seed (lab/training/heldout.py)
SYMBOL_BASE = 0x4E00  # synthetic token i <-> chr(SYMBOL_BASE + i): printable, never whitespace


# ---------------- tokenizers: text <-> token ids ----------------

class ByteTokenizer:
    """Byte-level text: utf-8 bytes are the token ids."""
    prefix_id = 10  # a newline stands in for BOS

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        return bytes(ids).decode("utf-8", "replace")


class SymbolTokenizer:
    """Synthetic tasks: token i is the single character chr(SYMBOL_BASE + i), so lm-eval's
    string handling (delimiters, strip) can never merge or drop a token."""
    prefix_id = 0

    def encode(self, text: str) -> list[int]:
        return [ord(c) - SYMBOL_BASE for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(SYMBOL_BASE + i) for i in ids)


class HFTokenizer:
    def __init__(self, name: str):
        from transformers import AutoTokenizer
        self.tok = AutoTokenizer.from_pretrained(name)
        self.prefix_id = self.tok.eos_token_id or 0

    def encode(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids)


def tokenizer_for(profile: Profile):
    if profile.task == "mqar":
        return SymbolTokenizer()
    if profile.task == "hf" and profile.hf_tokenizer != "bytes":   # "bytes": the staged stdlib corpus (datastage)
        return HFTokenizer(profile.hf_tokenizer)
    return ByteTokenizer()


# ---------------- the lm-eval model ----------------

class ArchlabLM(LM):
    """lm-eval adapter for a CausalLM: input ids [B, T] -> (logits [B, T, V], aux)."""

    def __init__(self, model: torch.nn.Module, tokenizer, max_len: int, batch_size: int = 32, device: str = "cpu"):
        super().__init__()
        self.model, self.tok, self.max_len, self.bs, self.dev = model.eval(), tokenizer, max_len, batch_size, device

    @torch.no_grad()
    def _score(self, pairs: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """(context ids, continuation ids) -> (sum log p(continuation), continuation is greedy)."""
        out = []
        for i in range(0, len(pairs), self.bs):
            chunk = pairs[i:i + self.bs]
            seqs = [(ctx + cont)[-(self.max_len + 1):] for ctx, cont in chunk]
            width = max(len(s) for s in seqs) - 1
            x = torch.zeros(len(seqs), width, dtype=torch.long)
            for j, s in enumerate(seqs):  # right padding: a causal model's earlier positions do not see it
                x[j, :len(s) - 1] = torch.tensor(s[:-1])
            logp = F.log_softmax(self.model(x.to(self.dev))[0].float(), -1).cpu()
            for j, ((_, cont), s) in enumerate(zip(chunk, seqs)):
                n = len(cont)
                lp = logp[j, len(s) - 1 - n:len(s) - 1]
                target = torch.tensor(s[-n:])
                out.append((lp.gather(-1, target[:, None]).sum().item(), bool((lp.argmax(-1) == target).all())))
        return out

    def loglikelihood(self, requests):
        return self._score([(self.tok.encode(r.args[0]) or [self.tok.prefix_id], self.tok.encode(r.args[1]))
                            for r in requests])

    def loglikelihood_rolling(self, requests):
        results = []
        for r in requests:
            windows = [make_disjoint_window(w) for w in get_rolling_token_windows(
                self.tok.encode(r.args[0]), self.tok.prefix_id, self.max_len, 1)]
            results.append(sum(lp for lp, _ in self._score(windows)))
        return results

    @torch.no_grad()
    def generate_until(self, requests):
        """Greedy decoding, no cache (minimal: the local tasks do not generate)."""
        outs = []
        for r in requests:
            context, kwargs = r.args[0], r.args[1]
            until = kwargs.get("until") or []
            ids, new = self.tok.encode(context) or [self.tok.prefix_id], []
            for _ in range(kwargs.get("max_gen_toks", 64)):
                x = torch.tensor([(ids + new)[-self.max_len:]], device=self.dev)
                new.append(int(self.model(x)[0][0, -1].argmax()))
                if any(u in self.tok.decode(new) for u in until):
                    break
            text = self.tok.decode(new)
            for u in until:
                text = text.split(u)[0]
            outs.append(text)
        return outs


# ---------------- local task data ----------------

def _mqar_docs(profile: Profile, n: int, seed: int = EVAL_SEED) -> tuple[list[dict], list[dict]]:
    """One query per sequence: context up to and including the query key, the value as target."""
    gen = torch.Generator().manual_seed(seed)
    inputs, labels = mqar(n, profile.seq_len, profile.mqar_num_kv, profile.vocab_size, gen)
    sym = SymbolTokenizer()
    recall, mc = [], []
    for seq, lab in zip(inputs.tolist(), labels.tolist()):
        queries = [t for t, v in enumerate(lab) if v != IGNORE]
        pos = queries[int(torch.randint(len(queries), (1,), generator=gen))]
        context, value = sym.decode(seq[:pos + 1]), lab[pos]
        recall.append({"context": context, "target": sym.decode([value])})
        others = [v for v in seq[1:2 * profile.mqar_num_kv:2] if v != value]  # values of this sequence
        pick = torch.randperm(len(others), generator=gen)[:3].tolist()
        choices = [value] + [others[i] for i in pick]
        order = torch.randperm(4, generator=gen).tolist()
        mc.append({"context": context, "choices": [sym.decode([choices[i]]) for i in order],
                   "answer": order.index(0)})
    return recall, mc


def _ascii_windows(docs, length: int, n: int, gen: torch.Generator) -> list[str]:
    """n ASCII-only windows of `length` bytes from the held-out documents (ASCII: chars == bytes)."""
    docs = [d for d in docs if len(d) > length + 1]
    out, tries = [], 0
    while len(out) < n and tries < 100 * n:
        tries += 1
        d = docs[int(torch.randint(len(docs), (1,), generator=gen))]
        s = int(torch.randint(len(d) - length, (1,), generator=gen))
        w = d[s:s + length]
        if w.isascii():
            out.append(w.decode("ascii"))
    return out


def _text_docs(n: int, seed: int = EVAL_SEED) -> tuple[list[dict], list[dict]]:
    from lab.training.heldout import heldout_docs
    gen = torch.Generator().manual_seed(seed)
    held = heldout_docs()
    bpb = [{"text": t} for t in _ascii_windows(held, 1024, n, gen)]
    mc = []
    for w in _ascii_windows(held, 128 + 32, n, gen):
        distractors = [d[-32:] for d in _ascii_windows(held, 32, 3, gen)]
        choices = [w[128:]] + distractors
        order = torch.randperm(4, generator=gen).tolist()
        mc.append({"context": w[:128], "choices": [choices[i] for i in order], "answer": order.index(0)})
    return bpb, mc


TEMPLATES = Path(__file__).resolve().parent / "lmeval_tasks"  # one YAML per local task


def write_local_tasks(profile: Profile, task_dir: Path, seed: int = EVAL_SEED) -> list[str]:
    """Write JSONL + YAML for the profile's local tasks (documents drawn from `seed`); returns their names."""
    wanted = [t for t in profile.eval_tasks if t in LOCAL_TASKS]
    task_dir.mkdir(parents=True, exist_ok=True)
    docs: dict[str, list[dict]] = {}
    if {"mqar_recall", "mqar_mc"} & set(wanted):
        docs["mqar_recall"], docs["mqar_mc"] = _mqar_docs(profile, profile.eval_examples, seed)
    if {"bytes_bpb", "stdlib_mc"} & set(wanted):
        docs["bytes_bpb"], docs["stdlib_mc"] = _text_docs(profile.eval_examples, seed)
    for name in wanted:
        data = (task_dir / f"{name}.jsonl").resolve()
        data.write_text("".join(json.dumps(d) + "\n" for d in docs[name]))
        template = (TEMPLATES / f"{name}.yaml").read_text()
        (task_dir / f"{name}.yaml").write_text(template.replace("{data_file}", json.dumps(str(data))))
    return wanted


# ---------------- the evaluation ----------------

@dataclass
class EvalResult:
    metrics: dict[str, float]  # "task/metric" -> value
    benchmark: float  # mean accuracy over tasks that report `acc`
    eval_s: float


def evaluate(model: torch.nn.Module, profile: Profile, scratch_dir: str | Path, device: str = "cpu",
             eval_seed: int | None = None) -> EvalResult:
    """Every eval task of `profile` on `model`. `eval_seed`: the campaign's secret seed (lab/training/heldout.py);
    None: the public seeds (runs outside a campaign, and a sandbox child's own evaluation)."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from lab.training.heldout import derive

    t0 = time.perf_counter()
    metrics = {}
    if BATTERY in profile.eval_tasks:  # scored directly: greedy predictions at every labelled position
        from lab.training.battery import evaluate_battery
        metrics.update(evaluate_battery(model, profile.battery_tasks, profile.seq_len, profile.eval_examples,
                                        profile.eval_batch_size, device,
                                        None if eval_seed is None else derive(eval_seed, "battery")))
    local = write_local_tasks(profile, Path(scratch_dir) / "lmeval_tasks",
                              EVAL_SEED if eval_seed is None else derive(eval_seed, "lm-eval"))
    standard = [t for t in profile.eval_tasks if t not in LOCAL_TASKS and t != BATTERY]
    if not local and not standard:
        accs = list(metrics.values())
        return EvalResult(metrics=metrics, benchmark=sum(accs) / len(accs) if accs else float("nan"),
                          eval_s=time.perf_counter() - t0)
    manager = TaskManager(include_path=str(Path(scratch_dir) / "lmeval_tasks"), include_defaults=bool(standard))
    was_training = model.training
    lm = ArchlabLM(model, tokenizer_for(profile), max_len=profile.seq_len, batch_size=profile.eval_batch_size,
                   device=device)
    try:
        out = simple_evaluate(model=lm, tasks=local + standard, task_manager=manager, num_fewshot=0,
                              bootstrap_iters=0, log_samples=False, limit=profile.eval_limit if standard else None,
                              verbosity="ERROR")
    finally:
        model.train(was_training)
    for task, values in out["results"].items():
        for key, value in values.items():
            metric, _, filt = key.partition(",")
            if filt and isinstance(value, (int, float)) and "stderr" not in metric:
                metrics[f"{task}/{metric}"] = float(value)
    accs = [v for k, v in metrics.items() if k.endswith("/acc")]
    benchmark = sum(accs) / len(accs) if accs else float("nan")
    return EvalResult(metrics=metrics, benchmark=benchmark, eval_s=time.perf_counter() - t0)
