"""POST /tunelab/score (score.py) on the tiny model on the CPU: refused without the
deployment's key, and per-row NLLs that equal training's loss on the same rows."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request

import pytest

from conftest import TINY

KEY = "0123456789abcdef0123456789abcdef"
CHAT = [
    {"messages": [{"role": "user", "content": "What is the capital of France?"},
                  {"role": "assistant", "content": "Paris is the capital of France."}]},
    {"messages": [{"role": "system", "content": "answer briefly"}, {"role": "user", "content": "The quick brown fox"},
                  {"role": "assistant", "content": "jumps over the lazy dog."}]},
]


@pytest.fixture(scope="module")
def srv(models_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunelab_worker.serve import Generator, Server

    tok = AutoTokenizer.from_pretrained(str(models_dir / TINY))
    model = AutoModelForCausalLM.from_pretrained(str(models_dir / TINY), use_safetensors=True)
    model.eval()
    s = Server(Generator(model, tok, 24), "tl-1-2", KEY, "127.0.0.1", 0).start()
    yield s
    s.stop()


def _post(srv, body, key=KEY):
    req = urllib.request.Request(f"http://127.0.0.1:{srv.port}/tunelab/score", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **({"Authorization": "Bearer " + key} if key else {})})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _training_loss(srv, rows, fmt, max_len):
    """The mean token loss training computes on these rows (train.sft_loss's way)."""
    import torch

    from tunelab_worker import data as D

    total, count = 0.0, 0
    for ex in D.sft_examples(srv.gen.tok, rows, fmt, max_len):
        with torch.no_grad():
            out = srv.gen.model(input_ids=torch.tensor([ex.input_ids]), labels=torch.tensor([ex.labels]))
        n = sum(1 for x in ex.labels[1:] if x != -100)
        total, count = total + float(out.loss) * n, count + n
    return total, count


def test_score_is_refused_without_the_key(srv):
    for key in ("", "wrong-key-wrong-key-wrong"):
        st, body = _post(srv, {"format": "chat", "rows": CHAT, "max_seq_len": 64}, key=key)
        assert st == 401 and body["error"]["code"] == "invalid_api_key"


def test_chat_rows_score_as_training_does_with_answers(srv):
    st, body = _post(srv, {"format": "chat", "rows": CHAT, "max_seq_len": 64, "answers": True})
    assert st == 200, body
    rows = body["rows"]
    assert len(rows) == 2
    for r in rows:
        assert math.isfinite(r["nll"]) and r["nll"] > 0 and r["tokens"] > 0
        assert isinstance(r["answer"], str) and isinstance(r["exact"], bool) and isinstance(r["contains"], bool)
        assert r["exact"] <= r["contains"]
    want, n = _training_loss(srv, CHAT, "chat", 64)
    assert sum(r["tokens"] for r in rows) == n
    assert sum(r["nll"] for r in rows) == pytest.approx(want, rel=1e-4)


def test_completion_and_preference_rows_and_the_length_cut(srv):
    comp = [{"prompt": "The quick brown", "completion": " fox jumps over the lazy dog."}]
    st, body = _post(srv, {"format": "completion", "rows": comp, "max_seq_len": 8})
    assert st == 200, body
    want, n = _training_loss(srv, comp, "completion", 8)
    assert body["rows"][0]["tokens"] == n and body["rows"][0]["nll"] == pytest.approx(want, rel=1e-4)
    assert "answer" not in body["rows"][0]
    pref = [{"prompt": "The quick brown", "chosen": " fox jumps over the lazy dog.", "rejected": " cat."}]
    st, body = _post(srv, {"format": "preference", "rows": pref, "max_seq_len": 8})
    assert st == 200 and body["rows"][0]["nll"] == pytest.approx(want, rel=1e-4), body


@pytest.mark.parametrize("req, says", [
    ({"format": "csv", "rows": CHAT, "max_seq_len": 64}, "format must be"),
    ({"format": "chat", "rows": [], "max_seq_len": 64}, "rows must be an array of 1 to 16"),
    ({"format": "chat", "rows": CHAT, "max_seq_len": 1}, "max_seq_len must be"),
    ({"format": "chat", "rows": [{"messages": "hi"}], "max_seq_len": 64}, "rows[0].messages"),
    ({"format": "completion", "rows": [{"prompt": "a"}], "max_seq_len": 64}, "rows[0] must have string fields prompt and completion"),
    ({"format": "completion", "rows": [{"prompt": "a", "completion": "b"}], "max_seq_len": 64, "answers": True}, "chat rows only"),
])
def test_bad_requests_say_what_to_fix(srv, req, says):
    st, body = _post(srv, req)
    assert st == 400 and says in body["error"]["message"], body
