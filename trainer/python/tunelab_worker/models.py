"""Base models: found only in the operator's local folders, never downloaded, and refused
when they would run code: remote code (auto_map, *.py) or pickled weights (.bin, .pt...).

Where models are looked for:
  TUNELAB_MODELS_DIR/<name>/ or TUNELAB_MODELS_DIR/<org>/<name>/ (id "<name>" or "<org>/<name>")
  the Hugging Face cache: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub,
  as models--<org>--<name>/snapshots/<revision>/ (id "<org>/<name>")
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")


class ModelRefused(Exception):
    """The base model cannot be used; the message says why in words for the run's owner."""


@dataclass
class ModelDir:
    id: str
    path: Path
    parameters: int  # from the safetensors headers; 0 when unknown


def models_dir() -> Path | None:
    d = os.environ.get("TUNELAB_MODELS_DIR", "")
    return Path(d) if d else None


def hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(home) / "hub"


def check_model_dir(path: Path, model_id: str) -> int:
    """Raises ModelRefused when the folder is not a safe, loadable model; returns its
    parameter count read from the safetensors headers."""
    if not (path / "config.json").is_file():
        raise ModelRefused(f"the base model {model_id} has no config.json in {path}")
    try:
        cfg = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise ModelRefused(f"the base model {model_id} has a config.json that is not JSON: {e}") from None
    names = sorted(p.name for p in path.iterdir())
    code = [n for n in names if n.endswith(".py")]
    if "auto_map" in cfg or code:
        what = "auto_map in config.json" if "auto_map" in cfg else ", ".join(code)
        raise ModelRefused(f"the base model {model_id} carries its own Python code ({what}); "
                           "tunelab never runs a model's code (trust_remote_code stays off), so it is refused")
    pickles = [n for n in names if n.endswith(PICKLE_SUFFIXES)]
    if pickles:
        raise ModelRefused(f"the base model {model_id} has pickled weights ({', '.join(pickles)}), which can run code "
                           "when loaded; tunelab loads safetensors only: remove them or convert the model to safetensors")
    weights = [n for n in names if n.endswith(".safetensors")]
    if not weights:
        raise ModelRefused(f"the base model {model_id} has no .safetensors weights in {path}")
    return sum(_safetensors_parameters(path / n) for n in weights)


def _safetensors_parameters(p: Path) -> int:
    try:
        with open(p, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n > 100 << 20:
                return 0
            header = json.loads(f.read(n))
    except (OSError, ValueError):
        return 0
    total = 0
    for k, v in header.items():
        if k == "__metadata__":
            continue
        size = 1
        for d in v.get("shape", []):
            size *= d
        total += size
    return total


def _candidates() -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    d = models_dir()
    if d and d.is_dir():
        for first in sorted(d.iterdir()):
            if not first.is_dir():
                continue
            if (first / "config.json").is_file():
                out.append((first.name, first))
                continue
            for second in sorted(first.iterdir()):
                if second.is_dir() and (second / "config.json").is_file():
                    out.append((f"{first.name}/{second.name}", second))
    hub = hub_cache()
    if hub.is_dir():
        for repo in sorted(hub.glob("models--*")):
            parts = repo.name.split("--")[1:]
            if len(parts) != 2:
                continue
            snap = _hub_snapshot(repo)
            if snap is not None:
                out.append(("/".join(parts), snap))
    return out


def _hub_snapshot(repo: Path) -> Path | None:
    ref = repo / "refs" / "main"
    if ref.is_file():
        p = repo / "snapshots" / ref.read_text().strip()
        if p.is_dir():
            return p
    snaps = sorted((repo / "snapshots").glob("*")) if (repo / "snapshots").is_dir() else []
    return snaps[-1] if snaps else None


def available_models() -> tuple[list[ModelDir], list[str]]:
    """Models that can be used, and a line for each folder that was skipped and why."""
    ok, skipped, seen = [], [], set()
    for model_id, path in _candidates():
        if model_id in seen or not ID_PATTERN.match(model_id):
            continue
        seen.add(model_id)
        try:
            ok.append(ModelDir(model_id, path, check_model_dir(path, model_id)))
        except ModelRefused as e:
            skipped.append(str(e))
    return ok, skipped


def resolve(model_id: str) -> ModelDir:
    """The folder of a base model, checked; ModelRefused says what is wrong."""
    if not ID_PATTERN.match(model_id or ""):
        raise ModelRefused(f"{model_id!r} is not a model id this worker can look up")
    for cid, path in _candidates():
        if cid == model_id:
            return ModelDir(cid, path, check_model_dir(path, cid))
    where = []
    if models_dir():
        where.append(f"TUNELAB_MODELS_DIR ({models_dir()})")
    where.append(f"the Hugging Face cache ({hub_cache()})")
    raise ModelRefused(f"the base model {model_id} is not on this machine (looked in {' and '.join(where)}); "
                       "nothing is downloaded at run time: the operator puts models there")
