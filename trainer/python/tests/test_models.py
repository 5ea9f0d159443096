"""Base models come only from local folders, and nothing in them may run code."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import TINY
from tunelab_worker import models


@pytest.fixture
def zoo(models_dir, tmp_path, monkeypatch):
    d = tmp_path / "zoo"
    shutil.copytree(models_dir / TINY, d / "good")
    shutil.copytree(models_dir / TINY, d / "org" / "remote-code")
    cfg = json.loads((d / "org" / "remote-code" / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    (d / "org" / "remote-code" / "config.json").write_text(json.dumps(cfg))
    shutil.copytree(models_dir / TINY, d / "py-file")
    (d / "py-file" / "modeling_evil.py").write_text("import os\n")
    shutil.copytree(models_dir / TINY, d / "pickled")
    (d / "pickled" / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    (d / "no-weights").mkdir()
    shutil.copy(models_dir / TINY / "config.json", d / "no-weights")
    monkeypatch.setenv("TUNELAB_MODELS_DIR", str(d))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return d


def test_a_model_with_remote_code_is_refused_saying_why(zoo):
    with pytest.raises(models.ModelRefused, match=r"carries its own Python code \(auto_map in config.json\).*trust_remote_code"):
        models.resolve("org/remote-code")
    with pytest.raises(models.ModelRefused, match=r"modeling_evil\.py"):
        models.resolve("py-file")


def test_a_model_with_pickled_weights_is_refused_saying_why(zoo):
    with pytest.raises(models.ModelRefused, match=r"pickled weights \(pytorch_model\.bin\).*safetensors only"):
        models.resolve("pickled")
    with pytest.raises(models.ModelRefused, match=r"no \.safetensors weights"):
        models.resolve("no-weights")


def test_only_safe_models_are_offered(zoo):
    ok, skipped = models.available_models()
    assert [m.id for m in ok] == ["good"]
    assert ok[0].parameters > 0
    assert len(skipped) == 4 and any("org/remote-code" in s for s in skipped), skipped


def test_a_missing_model_is_never_downloaded(zoo):
    with pytest.raises(models.ModelRefused, match=r"not on this machine.*nothing is downloaded"):
        models.resolve("meta-llama/Llama-3.2-1B")


def test_the_offline_hugging_face_cache_is_searched(models_dir, tmp_path, monkeypatch):
    snap = tmp_path / "hf" / "hub" / "models--acme--tiny" / "snapshots" / "abc123"
    shutil.copytree(models_dir / TINY, snap)
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text("abc123")
    monkeypatch.delenv("TUNELAB_MODELS_DIR", raising=False)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert models.resolve("acme/tiny").path == snap


def test_a_refused_model_fails_the_run_through_the_server(server, models_dir):
    """The worker reports the refusal as the run's reason, in words for its owner."""
    # The offer was read when the server started; the folder turned bad since, and the
    # worker checks again before loading anything.
    pickle = models_dir / TINY / "pytorch_model.bin"
    pickle.write_bytes(b"\x80\x04")
    try:
        run = server.start_run(server.sample("chat"), "lora")
        row = server.wait_run(run, lambda r: r["status"] in ("succeeded", "failed", "cancelled"), "the end of the run")
    finally:
        pickle.unlink()
    assert row["status"] == "failed" and "pickled weights (pytorch_model.bin)" in row["reason"], row
