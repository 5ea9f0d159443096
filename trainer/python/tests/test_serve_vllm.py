"""The vLLM engine's glue, against a stand-in `vllm` module: vLLM is not installed here and
needs CUDA, so this checks what tunelab asks of it (its model folder, no remote code, the
sampling settings) and how its answers are served, not vLLM itself."""

from __future__ import annotations

import json
import sys
import types
import urllib.request

import pytest

from conftest import TINY

KEY = "fedcba9876543210fedcba9876543210"


class FakeLLM:
    made: list[dict] = []
    asked: list = []

    def __init__(self, **kw):
        FakeLLM.made.append(kw)

    def generate(self, prompts, params, use_tqdm=True):
        FakeLLM.asked.append((prompts, params.kw))
        done = types.SimpleNamespace(text="Paris is", token_ids=[5, 6, 7], finish_reason="length")
        return [types.SimpleNamespace(prompt_token_ids=[1, 2], outputs=[done])]


class FakeParams:
    def __init__(self, **kw):
        self.kw = kw


@pytest.fixture
def fake_vllm(monkeypatch):
    mod = types.ModuleType("vllm")
    mod.LLM, mod.SamplingParams = FakeLLM, FakeParams
    monkeypatch.setitem(sys.modules, "vllm", mod)
    FakeLLM.made.clear()
    FakeLLM.asked.clear()
    return mod


def test_vllm_is_used_only_when_installed_with_cuda(fake_vllm, monkeypatch):
    import torch

    from tunelab_worker.deploy import vllm_usable

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert vllm_usable()
    monkeypatch.setenv("TUNELAB_SERVE_ENGINE", "transformers")
    assert not vllm_usable()
    monkeypatch.delenv("TUNELAB_SERVE_ENGINE")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not vllm_usable()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "vllm", None)  # not installed
    assert not vllm_usable()


def test_merged_adapters_are_written_as_safetensors_for_vllm(models_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunelab_worker.deploy import vllm_folder

    tok = AutoTokenizer.from_pretrained(str(models_dir / TINY))
    model = AutoModelForCausalLM.from_pretrained(str(models_dir / TINY), use_safetensors=True)
    assert vllm_folder(models_dir / TINY, {"kind": "full"}, model, tok, tmp_path / "m") == models_dir / TINY
    out = vllm_folder(tmp_path / "snap", {"kind": "lora-adapter"}, model, tok, tmp_path / "m")
    names = {p.name for p in out.iterdir()}
    assert "model.safetensors" in names and "tokenizer.json" in names and "config.json" in names, names
    assert not any(n.endswith((".bin", ".pt", ".pkl", ".py")) for n in names), names


def test_the_vllm_engine_serves_openai_shapes(fake_vllm, models_dir):
    from transformers import AutoTokenizer

    from tunelab_worker.serve import Server, VLLMGenerator

    tok = AutoTokenizer.from_pretrained(str(models_dir / TINY))
    gen = VLLMGenerator("/models/merged", tok, 64)
    assert FakeLLM.made == [{"model": "/models/merged", "tokenizer": "/models/merged", "trust_remote_code": False}]
    s = Server(gen, "tl-2-9", KEY).start()
    try:
        def post(body):
            req = urllib.request.Request(f"http://127.0.0.1:{s.port}/v1/chat/completions", data=json.dumps(body).encode(),
                                         headers={"Authorization": "Bearer " + KEY, "Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.read().decode()

        body = {"model": "tl-2-9", "messages": [{"role": "user", "content": "Capital?"}], "max_tokens": 3, "temperature": 0,
                "stop": ["\n"], "seed": 4}
        r = json.loads(post(body))
        assert r["choices"][0]["message"]["content"] == "Paris is" and r["choices"][0]["finish_reason"] == "length"
        assert r["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
        prompts, kw = FakeLLM.asked[0]
        assert prompts == [tok.apply_chat_template([{"role": "user", "content": "Capital?"}], tokenize=False, add_generation_prompt=True)]
        assert kw == {"n": 1, "max_tokens": 3, "temperature": 0.0, "top_p": 1.0, "stop": ["\n"], "seed": 4}
        streamed = post({**body, "stream": True})
        assert '"content": "Paris is"' in streamed and streamed.endswith("data: [DONE]\n\n")
    finally:
        s.stop()
