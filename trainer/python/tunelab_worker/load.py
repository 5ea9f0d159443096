"""Loading a base model for a method: local files only, safetensors only, no remote code."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from . import data as D
from .models import ModelDir, ModelRefused, check_model_dir
from .snapshot import set_adapter_alpha

# Never run code that came with a model, never fetch anything.
SAFE = dict(trust_remote_code=False, local_files_only=True)


def cuda_ok() -> bool:
    return torch.cuda.is_available()


def qlora_ok() -> bool:
    """4-bit QLoRA needs CUDA and the bitsandbytes package."""
    if not cuda_ok():
        return False
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return False
    return True


def _dtype():
    if cuda_ok():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def model_for(base: ModelDir, method: str, cfg: dict, init_dir: Path | None):
    """The model to train (LoRA-wrapped for lora/qlora), its tokenizer, and lines for the log."""
    notes: list[str] = []
    check_model_dir(base.path, base.id)  # again: the folder may have changed since the offer
    tok = AutoTokenizer.from_pretrained(str(init_dir or base.path), **SAFE)
    if D.ensure_chat_template(tok):
        notes.append("the tokenizer has no chat template; chat rows use a plain <|role|> layout")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    kwargs = dict(SAFE, use_safetensors=True)
    if method == "qlora":
        if not qlora_ok():
            raise ModelRefused("qlora needs a CUDA GPU and the bitsandbytes package; this machine has "
                               + ("no CUDA GPU" if not cuda_ok() else "no bitsandbytes"))
        from transformers import BitsAndBytesConfig
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=_dtype())
        kwargs["device_map"] = {"": 0}  # 4-bit weights are placed on the GPU as they load
    else:
        kwargs["torch_dtype"] = _dtype()
    full_from_snapshot = init_dir is not None and method not in ("lora", "qlora")
    src = init_dir if full_from_snapshot else base.path
    model = AutoModelForCausalLM.from_pretrained(str(src), **kwargs)
    if cuda_ok() and method != "qlora":
        model = model.to("cuda")
    if method in ("lora", "qlora"):
        from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
        if method == "qlora":
            model = prepare_model_for_kbit_training(model)
        if init_dir is not None:
            set_adapter_alpha(init_dir, float(cfg["lora_alpha"]))
            model = PeftModel.from_pretrained(model, str(init_dir), is_trainable=True)
            r = model.peft_config["default"].r
            if r != int(cfg["lora_rank"]):
                raise ModelRefused(f"the snapshot's adapters have rank {r}, the run asks for {cfg['lora_rank']}")
        else:
            lc = LoraConfig(r=int(cfg["lora_rank"]), lora_alpha=float(cfg["lora_alpha"]), lora_dropout=0.0,
                            target_modules="all-linear", task_type="CAUSAL_LM")
            model = get_peft_model(model, lc)
    model.config.use_cache = False
    return model, tok, notes
