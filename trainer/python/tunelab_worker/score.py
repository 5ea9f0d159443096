"""POST /tunelab/score on the inference server (docs/worker-api.md, "Scoring a batch"): rows
in the worker's data format scored with the loaded model as training scores them (the same
chat template, the loss only on what the model should say, cut to max_seq_len), each
row's summed token NLL in nats and its token count; for chat rows, with answers asked, the
greedy answer and whether it equals or contains the reference (spaces trimmed)."""

from __future__ import annotations

import threading

from . import data as D

MAX_ROWS = 16
EXTRA_ANSWER_TOKENS = 16  # the greedy answer may run this far past the reference's length


class ScoreRequestError(ValueError):
    """The request cannot be scored; the message says what to fix."""


def _row(fmt: str, i: int, row) -> dict:
    if not isinstance(row, dict):
        raise ScoreRequestError(f"rows[{i}] must be a JSON object.")
    if fmt == "chat":
        msgs = row.get("messages")
        if not isinstance(msgs, list) or not msgs or not all(
                isinstance(m, dict) and isinstance(m.get("content"), str) for m in msgs):
            raise ScoreRequestError(f"rows[{i}].messages must be a non-empty array of messages with string content.")
        return row
    need = ("prompt", "completion") if fmt == "completion" else ("prompt", "chosen")
    if not all(isinstance(row.get(k), str) for k in need):
        raise ScoreRequestError(f"rows[{i}] must have string fields {' and '.join(need)}.")
    # A preference row is scored on its chosen answer, as the leaderboard's held-out rows are.
    return {"prompt": row["prompt"], "completion": row["completion" if fmt == "completion" else "chosen"]}


def parse(body) -> tuple[str, list[dict], int, bool]:
    """The request's format, rows, max_seq_len and whether answers are asked."""
    if not isinstance(body, dict):
        raise ScoreRequestError("The body must be a JSON object.")
    fmt = body.get("format")
    if fmt not in ("chat", "completion", "preference"):
        raise ScoreRequestError("format must be chat, completion or preference.")
    rows = body.get("rows")
    if not isinstance(rows, list) or not 1 <= len(rows) <= MAX_ROWS:
        raise ScoreRequestError(f"rows must be an array of 1 to {MAX_ROWS} rows.")
    max_len = body.get("max_seq_len")
    if not isinstance(max_len, int) or isinstance(max_len, bool) or not 2 <= max_len <= 1 << 20:
        raise ScoreRequestError("max_seq_len must be a whole number of at least 2.")
    answers = body.get("answers") is True
    if answers and fmt != "chat":
        raise ScoreRequestError("answers are scored for chat rows only.")
    return fmt, [_row(fmt, i, r) for i, r in enumerate(rows)], max_len, answers


def _greedy(gen, prompt: str, max_tokens: int) -> str:
    opts = {"max_tokens": max(1, min(max_tokens, gen.max_tokens)), "temperature": 0.0, "top_p": 1.0, "stop": [],
            "seed": None}
    it = gen.stream(prompt, opts, threading.Event())
    parts = []
    try:
        while True:
            parts.append(next(it))
    except StopIteration:
        pass
    return "".join(parts)


def score_rows(gen, fmt: str, rows: list[dict], max_len: int, answers: bool) -> list[dict]:
    """One result per row: nll (nats, summed over the scored tokens) and tokens; with
    answers, answer, exact and contains."""
    tok = gen.tok
    f = "chat" if fmt == "chat" else "completion"
    out = []
    for row in rows:
        p, full = D._prompt_and_full(tok, row, f)
        full = full[:max_len]
        labels = [-100] * min(len(p), len(full)) + full[len(p):]
        nll, n = gen.token_nll(full, labels)
        item = {"nll": nll, "tokens": n}
        if answers:
            msgs = row["messages"]
            last = max((i for i, m in enumerate(msgs) if m.get("role") == "assistant"), default=len(msgs) - 1)
            ref = msgs[last]["content"].strip()
            ans = ""  # a row with nothing before its answer has no prompt to answer
            if last > 0:
                prompt = tok.apply_chat_template(msgs[:last], tokenize=False, add_generation_prompt=True)
                ans = _greedy(gen, prompt, len(D._ids(tok, ref)) + EXTRA_ANSWER_TOKENS).strip()
            item.update(answer=ans, exact=ans == ref, contains=ref in ans)
        out.append(item)
    return out
