"""The inference server (serve.py) on the tiny model on the CPU: OpenAI-shaped answers,
streamed and not, stop sequences and limits, and every request without the deployment's
secret refused. transformers generate is what runs here: vLLM is not installed."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from conftest import TINY

KEY = "0123456789abcdef0123456789abcdef"


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


def _post(srv, path, body, key=KEY):
    req = urllib.request.Request(f"http://127.0.0.1:{srv.port}{path}", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **({"Authorization": "Bearer " + key} if key else {})})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def _events(body: str) -> list:
    lines = [ln for ln in body.split("\n\n") if ln]
    assert all(ln.startswith("data: ") for ln in lines), body
    assert lines[-1] == "data: [DONE]", body
    return [json.loads(ln[6:]) for ln in lines[:-1]]


def test_chat_completion_answers_in_openais_shape(srv):
    st, ct, body = _post(srv, "/v1/chat/completions", {"model": "tl-1-2", "messages": [{"role": "user", "content": "Hello"}],
                                                       "max_tokens": 8, "temperature": 0})
    assert st == 200 and ct == "application/json", body
    r = json.loads(body)
    assert r["object"] == "chat.completion" and r["model"] == "tl-1-2" and r["id"].startswith("chatcmpl-")
    ch = r["choices"][0]
    assert ch["message"]["role"] == "assistant" and isinstance(ch["message"]["content"], str)
    assert ch["finish_reason"] in ("stop", "length")
    u = r["usage"]
    assert u["prompt_tokens"] > 0 and 0 < u["completion_tokens"] <= 8 and u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]


def test_streamed_chat_is_the_same_text_as_the_answer_and_ends_with_done(srv):
    body = {"model": "tl-1-2", "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "max_tokens": 12, "temperature": 0}
    _, _, whole = _post(srv, "/v1/chat/completions", body)
    st, ct, streamed = _post(srv, "/v1/chat/completions", {**body, "stream": True, "stream_options": {"include_usage": True}})
    assert st == 200 and ct == "text/event-stream", streamed
    ev = _events(streamed)
    assert ev[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(e["object"] == "chat.completion.chunk" and e["id"] == ev[0]["id"] for e in ev)
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in ev if e["choices"])
    assert text == json.loads(whole)["choices"][0]["message"]["content"]
    assert ev[-2]["choices"][0]["finish_reason"] in ("stop", "length")
    assert ev[-1]["choices"] == [] and ev[-1]["usage"]["completion_tokens"] > 0


def test_completion_streamed_and_not(srv):
    st, _, body = _post(srv, "/v1/completions", {"model": "tl-1-2", "prompt": "The quick brown", "max_tokens": 5, "temperature": 0})
    r = json.loads(body)
    assert st == 200 and r["object"] == "text_completion" and r["usage"]["completion_tokens"] <= 5
    st, _, streamed = _post(srv, "/v1/completions", {"model": "tl-1-2", "prompt": ["The quick brown"], "max_tokens": 5,
                                                     "temperature": 0, "stream": True})
    ev = _events(streamed)
    assert st == 200 and "".join(e["choices"][0]["text"] for e in ev) == r["choices"][0]["text"]
    assert "usage" not in ev[0]


def test_a_stop_sequence_ends_the_answer_before_it(srv):
    body = {"model": "tl-1-2", "prompt": "The quick brown", "max_tokens": 20, "temperature": 0}
    _, _, free = _post(srv, "/v1/completions", body)
    text = json.loads(free)["choices"][0]["text"]
    if len(text) < 3:
        pytest.fail(f"the tiny model said too little to test a stop sequence: {text!r}")
    stop = text[1:3]
    _, _, cut = _post(srv, "/v1/completions", {**body, "stop": stop})
    got = json.loads(cut)["choices"][0]
    assert got["text"] == text[:text.find(stop)] and got["finish_reason"] == "stop"
    _, _, streamed = _post(srv, "/v1/completions", {**body, "stop": [stop], "stream": True})
    assert "".join(e["choices"][0]["text"] for e in _events(streamed)) == got["text"]


@pytest.mark.parametrize("key", [None, "wrong-key-wrong-key-wrong-key-xx", KEY[:-1] + "0"])
def test_requests_without_the_deployments_secret_are_refused(srv, key):
    st, _, body = _post(srv, "/v1/chat/completions", {"model": "tl-1-2", "messages": [{"role": "user", "content": "x"}]}, key=key)
    assert st == 401 and json.loads(body)["error"]["code"] == "invalid_api_key"


def test_bad_parameters_name_what_to_fix(srv):
    for body, param in [({"model": "other", "prompt": "x"}, "model"), ({"model": "tl-1-2", "prompt": "x", "max_tokens": 999}, "max_tokens"),
                        ({"model": "tl-1-2", "prompt": "x", "temperature": 3}, "temperature"), ({"model": "tl-1-2", "prompt": 5}, "prompt"),
                        ({"model": "tl-1-2", "prompt": "x", "n": 2}, "n")]:
        st, _, out = _post(srv, "/v1/completions", body)
        assert st == 400 and json.loads(out)["error"]["param"] == param, (body, out)


def test_stop_shuts_the_server_down(models_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunelab_worker.serve import Generator, Server

    tok = AutoTokenizer.from_pretrained(str(models_dir / TINY))
    model = AutoModelForCausalLM.from_pretrained(str(models_dir / TINY), use_safetensors=True)
    s = Server(Generator(model, tok, 8), "tl-9-9", KEY).start()
    assert s.alive and s.port > 0
    s.stop()
    s.thread.join(5)
    assert not s.alive
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{s.port}/health", timeout=5)
