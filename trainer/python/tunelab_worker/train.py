"""The training loop: SFT (LoRA, QLoRA, full) and DPO on a transformers causal LM, in plain
PyTorch so the worker can stop at any step, snapshot the weights it has, and report
exactly the metrics the worker API names."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from . import data as D

LORA_METHODS = ("lora", "qlora")
DPO_BETA = 0.1  # the built-in trainer's default strength of the preference
MAX_GRAD_NORM = 1.0


@dataclass
class Hooks:
    metrics: Callable[[int, dict[str, float]], None]
    log: Callable[[str], None]
    progress: Callable[[int, int], None]
    snapshot: Callable[[int, bool], None]  # step, final
    should_stop: Callable[[], bool]


@dataclass
class Outcome:
    step: int
    total: int
    stopped: bool  # ended early because should_stop said so
    losses: list[float] = field(default_factory=list)


def set_seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _pad(seqs: list[list[int]], value: int) -> torch.Tensor:
    n = max(len(s) for s in seqs)
    return torch.tensor([s + [value] * (n - len(s)) for s in seqs], dtype=torch.long)


def _mask(seqs: list[list[int]]) -> torch.Tensor:
    n = max(len(s) for s in seqs)
    return torch.tensor([[1] * len(s) + [0] * (n - len(s)) for s in seqs], dtype=torch.long)


def sft_loss(model, batch: list[D.SFTExample], pad_id: int, dev) -> tuple[torch.Tensor, int]:
    ids = _pad([e.input_ids for e in batch], pad_id).to(dev)
    labels = _pad([e.labels for e in batch], -100).to(dev)
    mask = _mask([e.input_ids for e in batch]).to(dev)
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    return out.loss, int(mask.sum())


def _seq_logps(model, seqs: list[list[int]], prompt_lens: list[int], pad_id: int, dev) -> torch.Tensor:
    """Sum of log-probabilities of each sequence's answer tokens (after its prompt)."""
    ids = _pad(seqs, pad_id).to(dev)
    mask = _mask(seqs).to(dev)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    targets = ids[:, 1:]
    logp = torch.gather(F.log_softmax(logits, -1), 2, targets.unsqueeze(-1)).squeeze(-1)
    keep = torch.zeros_like(logp)
    for i, (s, p) in enumerate(zip(seqs, prompt_lens)):
        keep[i, max(p - 1, 0): len(s) - 1] = 1
    return (logp * keep).sum(-1)


def dpo_logps(model, batch: list[D.PrefExample], pad_id: int, dev) -> tuple[torch.Tensor, torch.Tensor]:
    seqs = [e.chosen for e in batch] + [e.rejected for e in batch]
    lens = [e.prompt_len for e in batch] * 2
    lp = _seq_logps(model, seqs, lens, pad_id, dev)
    return lp[: len(batch)], lp[len(batch):]


def dpo_loss(pc, pr, rc, rr, beta=DPO_BETA):
    """Direct Preference Optimization (Rafailov et al. 2023): -log sigmoid(beta * margin)."""
    chosen_reward = beta * (pc - rc)
    rejected_reward = beta * (pr - rr)
    margin = chosen_reward - rejected_reward
    return -F.logsigmoid(margin).mean(), (margin > 0).float().mean(), margin.mean()


def _batches(n: int, size: int, rng: random.Random) -> list[list[int]]:
    order = list(range(n))
    rng.shuffle(order)
    return [order[i: i + size] for i in range(0, n, size)]


def _gpu_metrics() -> dict[str, float]:
    if not torch.cuda.is_available():
        return {}
    out = {"gpu_memory": float(torch.cuda.max_memory_allocated())}
    try:
        out["gpu_util"] = float(torch.cuda.utilization())  # needs the NVIDIA management library
    except Exception:
        pass
    return out


def train(model, tok, method: str, cfg: dict, train_ex: list, eval_ex: list, hooks: Hooks) -> Outcome:
    """Trains for cfg["epochs"] over train_ex, batch_size at a time."""
    dev = device()
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    is_dpo = method == "dpo"
    bs = max(1, int(cfg["batch_size"]))
    steps_per_epoch = math.ceil(len(train_ex) / bs)
    total = steps_per_epoch * int(cfg["epochs"])
    hooks.progress(0, total)

    ref_train = ref_eval = None
    if is_dpo:
        # The reference is the model as it starts; its log-probabilities never change, so they
        # are computed once here instead of keeping a second copy of the weights.
        ref_train, ref_eval = _ref_logps(model, train_ex, bs, pad_id, dev), _ref_logps(model, eval_ex, bs, pad_id, dev)

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg["learning_rate"], weight_decay=0.0)
    warmup = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    eval_every = max(1, total // 10)
    snap_every = int(cfg.get("snapshot_every") or 0)
    rng = random.Random(int(cfg["seed"]))
    out = Outcome(step=0, total=total, stopped=False)
    model.train()
    for _epoch in range(int(cfg["epochs"])):
        for idx in _batches(len(train_ex), bs, rng):
            if hooks.should_stop():
                out.stopped = True
                return out
            t0 = time.perf_counter()
            batch = [train_ex[i] for i in idx]
            m: dict[str, float] = {}
            if is_dpo:
                pc, pr = dpo_logps(model, batch, pad_id, dev)
                loss, acc, margin = dpo_loss(pc, pr, ref_train[0][idx].to(dev), ref_train[1][idx].to(dev))
                m["reward_accuracy"], m["reward_margin"] = float(acc), float(margin)
                tokens = sum(len(e.chosen) + len(e.rejected) for e in batch)
            else:
                loss, tokens = sft_loss(model, batch, pad_id, dev)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gn = torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
            lr = sched.get_last_lr()[0]
            opt.step()
            sched.step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            out.step += 1
            lv = float(loss.detach())
            out.losses.append(lv)
            m.update(loss=lv, learning_rate=lr, grad_norm=float(gn),
                     tokens_per_sec=tokens / max(time.perf_counter() - t0, 1e-9))
            m.update(_gpu_metrics())
            if eval_ex and (out.step % eval_every == 0 or out.step == total):
                m.update(evaluate(model, eval_ex, bs, pad_id, dev, is_dpo, ref_eval))
                model.train()
            hooks.metrics(out.step, m)
            hooks.progress(out.step, total)
            if out.step % max(1, total // 10) == 0 or out.step == 1:
                hooks.log(f"step {out.step}/{total} loss {lv:.4f}")
            if snap_every and out.step % snap_every == 0 and out.step < total:
                hooks.snapshot(out.step, False)
    return out


@torch.no_grad()
def _ref_logps(model, ex: list, bs: int, pad_id: int, dev):
    if not ex:
        return None
    model.eval()
    cs, rs = [], []
    for i in range(0, len(ex), bs):
        c, r = dpo_logps(model, ex[i: i + bs], pad_id, dev)
        cs.append(c.cpu())
        rs.append(r.cpu())
    model.train()
    return torch.cat(cs), torch.cat(rs)


@torch.no_grad()
def evaluate(model, ex: list, bs: int, pad_id: int, dev, is_dpo: bool, ref=None) -> dict[str, float]:
    model.eval()
    if is_dpo:
        losses, accs, margins = [], [], []
        for i in range(0, len(ex), bs):
            b = ex[i: i + bs]
            pc, pr = dpo_logps(model, b, pad_id, dev)
            loss, acc, margin = dpo_loss(pc, pr, ref[0][i: i + bs].to(dev), ref[1][i: i + bs].to(dev))
            losses.append(float(loss) * len(b))
            accs.append(float(acc) * len(b))
            margins.append(float(margin) * len(b))
        n = len(ex)
        return {"eval_loss": sum(losses) / n, "eval_reward_accuracy": sum(accs) / n, "eval_reward_margin": sum(margins) / n}
    total, count = 0.0, 0
    for i in range(0, len(ex), bs):
        b = ex[i: i + bs]
        loss, _ = sft_loss(model, b, pad_id, dev)
        n = sum(sum(1 for x in e.labels[1:] if x != -100) for e in b)
        total += float(loss) * n
        count += n
    return {"eval_loss": total / max(count, 1)}
