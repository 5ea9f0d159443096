"""Rows to tokens: the chat template, the loss mask, max_seq_len, the held-out split."""

from __future__ import annotations

from tiny_model import build_tokenizer
from tunelab_worker import data as D

CHAT = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"},
                     {"role": "assistant", "content": "Paris."}]}


def test_chat_rows_use_the_template_and_learn_only_the_answer():
    tok = build_tokenizer()
    [ex] = D.sft_examples(tok, [CHAT], "chat", 512)
    assert tok.decode(ex.input_ids) == tok.apply_chat_template(CHAT["messages"], tokenize=False)
    learned = [t for t, l in zip(ex.input_ids, ex.labels) if l != -100]
    assert tok.decode(learned) == "Paris.</s>"


def test_completion_rows_learn_the_completion_and_end_with_eos():
    tok = build_tokenizer()
    [ex] = D.sft_examples(tok, [{"prompt": "2+2=", "completion": "4"}], "completion", 512)
    learned = [t for t, l in zip(ex.input_ids, ex.labels) if l != -100]
    assert tok.decode(learned) == "4</s>"


def test_max_seq_len_cuts_every_sequence():
    tok = build_tokenizer()
    long = {"prompt": "a " * 10, "completion": "b " * 500}
    [ex] = D.sft_examples(tok, [long], "completion", 64)
    assert len(ex.input_ids) == len(ex.labels) == 64
    [p] = D.pref_examples(tok, [{"prompt": "q " * 300, "chosen": "yes " * 300, "rejected": "no"}], 64)
    assert len(p.chosen) <= 64 and len(p.rejected) <= 64 and p.prompt_len <= 32


def test_a_tokenizer_without_a_template_gets_the_plain_one():
    tok = build_tokenizer()
    tok.chat_template = None
    assert D.ensure_chat_template(tok)
    assert "<|assistant|>" in tok.apply_chat_template(CHAT["messages"][:2], tokenize=False, add_generation_prompt=True)


def test_the_validation_split_holds_out_the_same_rows_for_the_same_seed():
    rows = list(range(100))
    tr, ev = D.split(rows, 10, seed=3)
    assert len(ev) == 10 and sorted(tr + ev) == rows
    assert D.split(rows, 10, seed=3) == (tr, ev) and D.split(rows, 10, seed=4) != (tr, ev)
    assert D.split(rows, 0, seed=3) == (rows, [])
