"""VLLMGenerator.token_nll's glue against a stand-in `vllm` whose prompt logprobs come from the
tiny model itself: the NLL read from vLLM's prompt_logprobs must equal the transformers
path's on the same tokens. vLLM itself is not installed here (it needs CUDA)."""

from __future__ import annotations

import sys
import types

import pytest

from conftest import TINY


@pytest.fixture(scope="module")
def tiny(models_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(models_dir / TINY))
    model = AutoModelForCausalLM.from_pretrained(str(models_dir / TINY), use_safetensors=True)
    model.eval()
    return model, tok


def test_vllm_prompt_logprobs_give_the_same_nll(tiny, monkeypatch):
    import torch

    model, tok = tiny
    asked = []

    class FakeLLM:
        def __init__(self, **kw):
            pass

        def generate(self, prompts, params, use_tqdm=True):
            asked.append(params.kw)
            ids = prompts[0]["prompt_token_ids"]
            with torch.no_grad():
                lp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
            pl = [None] + [{ids[i]: types.SimpleNamespace(logprob=float(lp[i - 1, ids[i]]))} for i in range(1, len(ids))]
            return [types.SimpleNamespace(prompt_token_ids=ids, prompt_logprobs=pl, outputs=[])]

    class FakeParams:
        def __init__(self, **kw):
            self.kw = kw

    mod = types.ModuleType("vllm")
    mod.LLM, mod.SamplingParams = FakeLLM, FakeParams
    monkeypatch.setitem(sys.modules, "vllm", mod)
    from tunelab_worker import data as D
    from tunelab_worker.serve import Generator, VLLMGenerator

    row = {"messages": [{"role": "user", "content": "What is the capital of France?"},
                        {"role": "assistant", "content": "Paris is the capital of France."}]}
    ex = D.sft_examples(tok, [row], "chat", 64)[0]
    got = VLLMGenerator("/nowhere", tok, 16).token_nll(ex.input_ids, ex.labels)
    want = Generator(model, tok, 16).token_nll(ex.input_ids, ex.labels)
    assert got[1] == want[1] > 0
    assert got[0] == pytest.approx(want[0], rel=1e-4)
    assert asked == [{"max_tokens": 1, "prompt_logprobs": 0}]
