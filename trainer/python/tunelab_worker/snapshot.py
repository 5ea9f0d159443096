"""Snapshots: a ZIP of a Hugging Face-style folder (safetensors weights or LoRA adapters,
the tokenizer, a model card, tunelab.json), written byte-for-byte the same for the same
weights, and read back safely for a run that continues from one."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

from .models import PICKLE_SUFFIXES, ModelRefused, check_model_dir

FORMAT = "tunelab-hf-zip/1"
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def model_card(meta: dict) -> str:
    lora = meta["kind"] == "lora-adapter"
    load = (
        "```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\nfrom peft import PeftModel\n\n"
        f"base = AutoModelForCausalLM.from_pretrained(\"{meta['base_model']}\")\n"
        "model = PeftModel.from_pretrained(base, \"./this-folder\")\n"
        "tokenizer = AutoTokenizer.from_pretrained(\"./this-folder\")\n```\n"
        if lora else
        "```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
        "model = AutoModelForCausalLM.from_pretrained(\"./this-folder\")\n"
        "tokenizer = AutoTokenizer.from_pretrained(\"./this-folder\")\n```\n"
    )
    c = meta["config"]
    rows = "\n".join(f"| {k} | {c[k]} |" for k in sorted(c) if k not in ("gpu_type",))
    return (
        f"---\nbase_model: {meta['base_model']}\nlibrary_name: {'peft' if lora else 'transformers'}\n"
        f"tags: [tunelab, {meta['method']}]\n---\n\n"
        f"# Run {meta['run_id']}, step {meta['step']}\n\n"
        f"Fine-tuned by tunelab's Python worker from **{meta['base_model']}** with **{meta['method']}**"
        f" ({'LoRA adapters only; load them on the base model' if lora else 'all weights'}),"
        f" saved at step {meta['step']} of {meta['total_steps']}.\n\n"
        f"## Settings\n\n| setting | value |\n|---|---|\n{rows}\n\n## Loading\n\n{load}"
    )


def build(model, tok, meta: dict, dest: Path) -> tuple[str, int]:
    """Writes the snapshot ZIP to dest; returns its sha256 (hex) and size."""
    with tempfile.TemporaryDirectory(prefix="tunelab-snap-") as d:
        folder = Path(d)
        model.save_pretrained(folder, safe_serialization=True)
        tok.save_pretrained(folder)
        (folder / "README.md").write_text(model_card(meta))  # replaces peft's generic card
        (folder / "tunelab.json").write_text(json.dumps({"format": FORMAT, **meta}, indent=2, sort_keys=True) + "\n")
        with zipfile.ZipFile(dest, "w") as z:
            for p in sorted(folder.iterdir()):
                if not p.is_file():
                    continue
                info = zipfile.ZipInfo(p.name, date_time=FIXED_TIME)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_STORED if p.suffix == ".safetensors" else zipfile.ZIP_DEFLATED
                with open(p, "rb") as src, z.open(info, "w") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
    return sha256_file(dest), dest.stat().st_size


def sha256_file(p: Path | str) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def extract(zpath: Path, dest: Path, max_bytes: int) -> dict:
    """Unpacks a snapshot ZIP written by this worker into dest, refusing anything that is
    not a flat folder of plain files, runs code, or unpacks to more than max_bytes; returns
    its tunelab.json."""
    with open(zpath, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":
        raise ModelRefused("the snapshot this run continues from is not one the Python worker saved (not a ZIP); "
                           "continue only from snapshots of runs trained by the same worker")
    with zipfile.ZipFile(zpath) as z:
        infos = z.infolist()
        if sum(i.file_size for i in infos) > max_bytes:
            raise ModelRefused("the snapshot unpacks to more than its size allows")
        for i in infos:
            if not SAFE_NAME.match(i.filename) or i.is_dir():
                raise ModelRefused(f"the snapshot holds an entry {i.filename!r}; only plain files at its top level are allowed")
            if i.filename.endswith(PICKLE_SUFFIXES) or i.filename.endswith(".py"):
                raise ModelRefused(f"the snapshot holds {i.filename}, which could run code; it is refused")
        dest.mkdir(parents=True, exist_ok=True)
        for i in infos:
            with z.open(i) as src, open(dest / i.filename, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    try:
        meta = json.loads((dest / "tunelab.json").read_text())
    except (OSError, ValueError):
        raise ModelRefused("the snapshot has no readable tunelab.json; it was not saved by the Python worker") from None
    if meta.get("format") != FORMAT:
        raise ModelRefused(f"the snapshot's format {meta.get('format')!r} is not {FORMAT}")
    if meta.get("kind") == "full":
        check_model_dir(dest, "in the snapshot")
    elif not (dest / "adapter_model.safetensors").is_file() or not (dest / "adapter_config.json").is_file():
        raise ModelRefused("the snapshot's LoRA adapters (adapter_model.safetensors, adapter_config.json) are missing")
    return meta


def set_adapter_alpha(folder: Path, alpha: float) -> None:
    """The adapters keep training scaled by this run's lora_alpha (as in the built-in trainer)."""
    p = folder / "adapter_config.json"
    cfg = json.loads(p.read_text())
    cfg["lora_alpha"] = alpha
    p.write_text(json.dumps(cfg))


def tmp_path(prefix: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=prefix)
    os.close(fd)
    return Path(name)
