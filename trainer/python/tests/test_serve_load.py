"""Loading a snapshot for serving, both kinds the training worker saves: full weights, and
LoRA adapters merged into the base model (which must then answer as base + adapters)."""

from __future__ import annotations

from pathlib import Path

import torch

from conftest import TINY


def _snapshot(tmp_path: Path, model, tok, kind: str) -> tuple[Path, dict]:
    from tunelab_worker import snapshot

    meta = {"run_id": 1, "step": 2, "total_steps": 2, "base_model": TINY, "method": "lora" if kind != "full" else "full",
            "kind": kind, "config": {"seed": 1}}
    z = tmp_path / f"{kind}.zip"
    snapshot.build(model, tok, meta, z)
    folder = tmp_path / kind
    return folder, snapshot.extract(z, folder, 1 << 30)


def test_full_and_lora_snapshots_load_for_serving(models_dir, tmp_path, monkeypatch):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunelab_worker.deploy import load_for_serving

    monkeypatch.setenv("TUNELAB_MODELS_DIR", str(models_dir))
    tok = AutoTokenizer.from_pretrained(str(models_dir / TINY))
    ids = tok("The quick brown", return_tensors="pt")["input_ids"]

    full = AutoModelForCausalLM.from_pretrained(str(models_dir / TINY), use_safetensors=True)
    with torch.no_grad():
        for p in full.parameters():
            p.add_(0.01)
    folder, meta = _snapshot(tmp_path, full, tok, "full")
    served, stok = load_for_serving({"base_model": TINY}, folder, meta)
    with torch.no_grad():
        assert torch.allclose(served(ids).logits, full(ids).logits, atol=1e-5)
    assert stok.chat_template

    base = AutoModelForCausalLM.from_pretrained(str(models_dir / TINY), use_safetensors=True)
    lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    with torch.no_grad():
        for n, p in lora.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)  # adapters that change the answer
        want = lora(ids).logits
    folder, meta = _snapshot(tmp_path, lora, tok, "lora-adapter")
    notes = []
    served, _ = load_for_serving({"base_model": TINY}, folder, meta, notes.append)
    assert type(served).__name__ == "LlamaForCausalLM", f"the adapters were not merged: {type(served)}"
    assert not any("lora" in n for n, _ in served.named_parameters())
    with torch.no_grad():
        got = served(ids).logits
        plain = AutoModelForCausalLM.from_pretrained(str(models_dir / TINY), use_safetensors=True)(ids).logits
    assert torch.allclose(got, want, atol=1e-4) and not torch.allclose(got, plain, atol=1e-3)
    assert notes == [f"merged the LoRA adapters into {TINY}"]
