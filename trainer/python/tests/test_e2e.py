"""The Python worker against a real tunelab server: the server's local backend starts
`python -m tunelab_worker` for each run (TUNELAB_LOCAL_WORKER=python), with the run's
token in its environment, and the tiny model trains on this machine's CPU."""

from __future__ import annotations

import hashlib
import io
import math
import re
import zipfile
from pathlib import Path

import pytest
import torch

from conftest import TINY


def _done(row):
    return row["status"] in ("succeeded", "failed", "cancelled")


def _finite_falling(series):
    values = [v for _, v in sorted(series)]
    assert values and all(isinstance(v, float | int) and math.isfinite(v) for v in values), values
    k = max(1, len(values) // 5)
    first, last = sum(values[:k]) / k, sum(values[-k:]) / k
    assert last < first, f"loss did not fall: first {first:.4f}, last {last:.4f}"


def _download(server, run_id: int, snap: dict, dest: Path) -> Path:
    st, h, body = server.request("GET", f"/runs/{run_id}/snapshots/{snap['id']}/download")
    assert st == 200, body[:300]
    assert h["Content-Type"] == "application/zip"
    assert re.search(rf'filename="run-{run_id}-step-{snap["step"]}\.zip"', h["Content-Disposition"]), h["Content-Disposition"]
    digest = hashlib.sha256(body).hexdigest()
    assert digest == snap["sha256"] == h["X-Content-SHA256"]
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        names = set(z.namelist())
        assert {"README.md", "tunelab.json", "tokenizer.json", "tokenizer_config.json"} <= names, names
        assert not any(n.endswith((".bin", ".pt", ".pkl", ".py")) for n in names), names
        z.extractall(dest)
    return dest


def _succeeded(server, run_id):
    row = server.wait_run(run_id, _done, "the end of the run")
    assert row["status"] == "succeeded", f"{row}\n{server.worker_log(run_id)}"
    assert row["step"] == row["total_steps"] > 0
    return row


def test_sft_lora_trains_and_its_adapters_load_back_with_peft(server, models_dir, tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = server.start_run(server.sample("chat"), "lora", snapshot_every=20)
    _succeeded(server, run)
    m = server.metrics(run)
    _finite_falling(m["loss"])
    for name in ("eval_loss", "learning_rate", "grad_norm", "tokens_per_sec"):
        assert m.get(name), f"no {name} metric; got {sorted(m)}"
    assert "gpu_util" not in m and "gpu_memory" not in m  # no CUDA here
    snaps = server.snapshots(run)
    assert len(snaps) >= 2 and snaps[-1]["final"] == 1 and not any(s["final"] for s in snaps[:-1]), snaps
    folder = _download(server, run, snaps[-1], tmp_path / "snap")
    assert (folder / "adapter_model.safetensors").is_file() and (folder / "adapter_config.json").is_file()
    assert "lora" in (folder / "README.md").read_text()

    base = AutoModelForCausalLM.from_pretrained(models_dir / TINY, use_safetensors=True)
    model = PeftModel.from_pretrained(base, str(folder))
    saved = load_file(folder / "adapter_model.safetensors")
    b = [v for k, v in saved.items() if "lora_B" in k]
    assert b and any(float(t.abs().sum()) > 0 for t in b), "the adapters' B matrices are still zero: nothing was trained"
    tok = AutoTokenizer.from_pretrained(folder)
    ids = tok.apply_chat_template([{"role": "user", "content": "hello"}], add_generation_prompt=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=ids).logits).all()


def test_full_fine_tune_saves_all_weights(server, models_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    run = server.start_run(server.sample("chat"), "full", eval_dataset_id=server.sample("chat"))
    _succeeded(server, run)
    # The eval dataset replaces the held-out split: every training row trains, all of its rows evaluate.
    assert "loaded 160 rows (chat): 160 for training, 160 for eval" in server.worker_log(run)
    _finite_falling(server.metrics(run)["loss"])
    snaps = server.snapshots(run)
    assert [s["final"] for s in snaps] == [1]
    folder = _download(server, run, snaps[0], tmp_path / "snap")
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    tuned = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True)
    base = AutoModelForCausalLM.from_pretrained(models_dir / TINY, use_safetensors=True)
    changed = [n for (n, p), (_, q) in zip(tuned.named_parameters(), base.named_parameters()) if not torch.equal(p, q)]
    assert changed, "the full fine-tune's weights equal the base model's"


def test_dpo_learns_the_preferences(server, tmp_path):
    run = server.start_run(server.sample("preference"), "dpo", epochs=4)
    _succeeded(server, run)
    m = server.metrics(run)
    _finite_falling(m["loss"])
    assert m.get("reward_accuracy") and m.get("eval_loss"), sorted(m)
    snaps = server.snapshots(run)
    folder = _download(server, run, snaps[-1], tmp_path / "snap")
    assert (folder / "model.safetensors").is_file()


def test_continue_from_a_lora_snapshot(server, tmp_path):
    """A run continued from a snapshot starts from its adapters (GET /init-snapshot)."""
    ds = server.sample("chat")
    first = server.start_run(ds, "lora", epochs=1)
    _succeeded(server, first)
    snap = server.snapshots(first)[-1]
    second = server.start_run(ds, "lora", epochs=1, init_snapshot_id=snap["id"])
    _succeeded(server, second)
    assert f"continuing from run {first}" in server.worker_log(second)
    # It starts where the first ended: its first loss is below the first run's first loss.
    l1 = sorted(server.metrics(first)["loss"])[0][1]
    l2 = sorted(server.metrics(second)["loss"])[0][1]
    assert l2 < l1, (l1, l2)


def test_cancel_stops_within_one_heartbeat(server):
    run = server.start_run(server.sample("chat"), "lora", epochs=500)
    server.wait_run(run, lambda r: r["status"] == "running" and r["step"] > 0, "training")
    server.post(f"/runs/{run}/cancel", {})
    row = server.wait_run(run, _done, "the cancel")
    assert row["status"] == "cancelled", row
    log = server.worker_log(run)
    asked = re.search(r"cancel asked at step (\d+)", log)
    ended = re.search(r"cancelled at step (\d+) of (\d+)", log)
    assert asked and ended, log
    # Training checks between steps, so at most the step under way finishes.
    assert int(ended.group(1)) <= int(asked.group(1)) + 1 < int(ended.group(2)), log
    assert server.snapshots(run) == []
