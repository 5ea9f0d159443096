"""The command line: the token comes from the environment only, and is checked before any
request; --offer prints what the machine can train."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import PKG_DIR, TINY


def _run(args, env_extra=None):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PKG_DIR), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "tunelab_worker", *args], env=env, capture_output=True, text=True, timeout=300)


def test_the_token_is_read_from_the_environment_never_argv():
    p = _run(["--server", "http://127.0.0.1:9", "--run", "3"])
    assert p.returncode == 2 and "TUNELAB_RUN_TOKEN is not set" in p.stderr
    p = _run(["--server", "http://127.0.0.1:9", "--run", "3", "--token", "0" * 32])
    assert p.returncode == 2 and "unrecognized arguments: --token" in p.stderr


def test_a_malformed_token_or_run_is_refused_without_echoing_it():
    p = _run(["--server", "http://127.0.0.1:9", "--run", "3"], {"TUNELAB_RUN_TOKEN": "secret-not-hex"})
    assert p.returncode == 2 and "malformed" in p.stderr and "secret-not-hex" not in p.stderr + p.stdout
    p = _run(["--server", "http://127.0.0.1:9", "--run", "x"], {"TUNELAB_RUN_TOKEN": "ab" * 16})
    assert p.returncode == 2 and "not a run id" in p.stderr
    p = _run(["--server", "ftp://h", "--run", "3"], {"TUNELAB_RUN_TOKEN": "ab" * 16})
    assert p.returncode == 2 and "not an http:// or https:// URL" in p.stderr


def test_offer_lists_the_models_here_and_the_cpu(models_dir, tmp_path):
    p = _run(["--offer"], {"TUNELAB_MODELS_DIR": str(models_dir), "HF_HOME": str(tmp_path)})
    assert p.returncode == 0, p.stderr
    o = json.loads(p.stdout)
    assert TINY in [m["id"] for m in o["models"]]
    assert o["gpus"] == [] and "qlora" not in o["methods"]  # no CUDA on this machine
