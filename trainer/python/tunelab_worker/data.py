"""Dataset rows (chat, completion, preference JSONL) turned into token ids. Chat goes
through the tokenizer's chat template; the loss covers only what the model should say."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

# Used only when the tokenizer has no chat template of its own; said so in the run's log.
FALLBACK_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@dataclass
class SFTExample:
    input_ids: list[int]
    labels: list[int]  # -100 where no loss is taken


@dataclass
class PrefExample:
    prompt_len: int
    chosen: list[int]
    rejected: list[int]


def read_rows(path: str) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except ValueError as e:
                    raise ValueError(f"dataset line {i} is not JSON: {e}") from None
    return rows


def split(rows: list, percent: float, seed: int) -> tuple[list, list]:
    """Holds out percent of the rows for eval (at least one when percent > 0 and there are
    two rows or more), the same rows for the same seed."""
    if percent <= 0 or len(rows) < 2:
        return rows, []
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n = min(len(rows) - 1, max(1, round(len(rows) * percent / 100)))
    held = set(order[:n])
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


def ensure_chat_template(tok) -> bool:
    """Gives the tokenizer the fallback template when it has none; True when it did."""
    if getattr(tok, "chat_template", None):
        return False
    tok.chat_template = FALLBACK_CHAT_TEMPLATE
    return True


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def _prompt_and_full(tok, row: dict, fmt: str) -> tuple[list[int], list[int]]:
    if fmt == "chat":
        msgs = row["messages"]
        last = max((i for i, m in enumerate(msgs) if m.get("role") == "assistant"), default=len(msgs) - 1)
        prompt = tok.apply_chat_template(msgs[:last], tokenize=False, add_generation_prompt=True) if last > 0 else ""
        full = tok.apply_chat_template(msgs[: last + 1], tokenize=False)
        p, f = _ids(tok, prompt), _ids(tok, full)
        if f[: len(p)] != p:  # a template whose prompt is not a prefix: learn the whole text
            p = []
        return p, f
    p = _ids(tok, row["prompt"])
    return p, p + _ids(tok, row["completion"]) + ([tok.eos_token_id] if tok.eos_token_id is not None else [])


def sft_examples(tok, rows: list[dict], fmt: str, max_len: int) -> list[SFTExample]:
    out = []
    for row in rows:
        p, f = _prompt_and_full(tok, row, fmt)
        f = f[:max_len]
        labels = [-100] * min(len(p), len(f)) + f[len(p):]
        if any(x != -100 for x in labels[1:]):
            out.append(SFTExample(f, labels))
    return out


def pref_examples(tok, rows: list[dict], max_len: int) -> list[PrefExample]:
    eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
    out = []
    for row in rows:
        p = _ids(tok, row["prompt"])
        # Keep at least a few answer tokens: cut the prompt's start when it is too long.
        p = p[-max(1, max_len // 2):] if len(p) > max_len // 2 else p
        c = (p + _ids(tok, row["chosen"]) + eos)[:max_len]
        r = (p + _ids(tok, row["rejected"]) + eos)[:max_len]
        if len(c) > len(p) and len(r) > len(p):
            out.append(PrefExample(len(p), c, r))
    return out


def count_tokens(examples) -> int:
    n = 0
    for e in examples:
        n += len(e.input_ids) if isinstance(e, SFTExample) else len(e.chosen) + len(e.rejected)
    return n
