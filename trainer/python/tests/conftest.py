"""Fixtures: a tiny model folder, and a real tunelab server (built from this checkout with
`go build`) whose local backend runs this Python worker (TUNELAB_LOCAL_WORKER=python)."""

from __future__ import annotations

import http.cookiejar
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

PKG_DIR = Path(__file__).resolve().parents[1]
REPO = PKG_DIR.parents[1]
sys.path.insert(0, str(PKG_DIR))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_model import save_tiny_llama  # noqa: E402

TINY = "tiny-llama"


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("models")
    save_tiny_llama(d / TINY)
    return d


@pytest.fixture(scope="session")
def tunelab_bin(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bin") / "tunelab"
    subprocess.run(["go", "build", "-o", str(out), "."], cwd=REPO, check=True)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


class Server:
    def __init__(self, base: str, data: Path, proc: subprocess.Popen):
        self.base, self.data, self.proc = base, data, proc
        jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)

    def request(self, method: str, path: str, form: dict | None = None):
        body = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(self.base + path, data=body, method=method)
        try:
            with self.opener.open(req, timeout=60) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def post(self, path: str, form: dict) -> tuple[int, str]:
        st, h, body = self.request("POST", path, form)
        assert st < 400, f"POST {path}: {st} {body[:2000]!r}"
        return st, h.get("Location", "")

    def db(self):
        return sqlite3.connect(f"file:{self.data / 'tunelab.db'}?mode=ro", uri=True, timeout=10)

    def run_row(self, run_id: int) -> dict:
        with self.db() as c:
            c.row_factory = sqlite3.Row
            return dict(c.execute("SELECT status, reason, step, total_steps FROM runs WHERE id = ?", (run_id,)).fetchone())

    def wait_run(self, run_id: int, ok, what: str, within: float = 300) -> dict:
        deadline = time.monotonic() + within
        row = {}
        while time.monotonic() < deadline:
            row = self.run_row(run_id)
            if ok(row):
                return row
            time.sleep(0.2)
        raise AssertionError(f"run {run_id}: {what} did not happen within {within}s; last {row}\n{self.worker_log(run_id)}")

    def worker_log(self, run_id: int) -> str:
        p = self.data / "workers" / f"run-{run_id}.log"
        return p.read_text() if p.exists() else "(no worker log)"

    def metrics(self, run_id: int) -> dict[str, list[tuple[int, float]]]:
        st, _, body = self.request("GET", f"/runs/{run_id}/metrics.jsonl")
        assert st == 200, body[:500]
        out: dict[str, list] = {}
        for line in body.decode().splitlines():
            p = json.loads(line)
            out.setdefault(p["name"], []).append((p["step"], p["value"]))
        return out

    def snapshots(self, run_id: int) -> list[dict]:
        with self.db() as c:
            c.row_factory = sqlite3.Row
            return [dict(r) for r in c.execute(
                "SELECT id, step, final, size_bytes, sha256 FROM snapshots WHERE run_id = ? AND deleted_at IS NULL ORDER BY step",
                (run_id,))]

    def start_run(self, dataset: int, method: str, **over) -> int:
        form = {"dataset_id": dataset, "base_model": TINY, "method": method, "epochs": 3, "learning_rate": "0.005",
                "batch_size": 4, "lora_rank": 8, "lora_alpha": 16, "max_seq_len": 128, "seed": 7, "gpu_type": "cpu",
                "validation_split": 10, "snapshot_every": 0}
        form.update(over)
        _, loc = self.post("/runs", form)
        return int(loc.rstrip("/").rsplit("/", 1)[1])

    def sample(self, fmt: str) -> int:
        _, loc = self.post("/datasets/samples", {"format": fmt})
        return int(loc.rstrip("/").rsplit("/", 1)[1])


def start_server(tunelab_bin: Path, models_dir: Path, data: Path, hf_home: Path, extra: dict | None = None,
                 port: int | None = None) -> Server:
    port = port or _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUNELAB_", "STRIPE_"))}
    env.update({
        "TUNELAB_LOCAL_WORKER": "python", "TUNELAB_PYTHON": sys.executable,
        "TUNELAB_PYTHON_WORKER_DIR": str(PKG_DIR), "TUNELAB_MODELS_DIR": str(models_dir),
        "TUNELAB_HEARTBEAT_INTERVAL": "1s", "TUNELAB_HEARTBEAT_TIMEOUT": "60s",
        "HF_HOME": str(hf_home),  # not this machine's own cache
    })
    env.update(extra or {})
    log = open(data / "server.log", "ab")
    proc = subprocess.Popen([str(tunelab_bin), "serve", "--addr", f"127.0.0.1:{port}", "--data", str(data)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240  # the start-up probe imports torch
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"tunelab serve exited {proc.returncode}:\n{(data / 'server.log').read_text()[-4000:]}")
        try:
            urllib.request.urlopen(base + "/", timeout=2).read()
            break
        except urllib.error.HTTPError:
            break  # it answers
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("tunelab serve was not ready within 240s")
            time.sleep(0.3)
    s = Server(base, data, proc)
    s.post("/signup", {"email": "py@example.com", "password": "a long training passphrase", "accept_terms": "yes"})
    return s


def stop_server(s: Server) -> None:
    s.proc.terminate()
    try:
        s.proc.wait(30)
    except subprocess.TimeoutExpired:
        s.proc.kill()


@pytest.fixture(scope="session")
def server(tunelab_bin, models_dir, tmp_path_factory):
    s = start_server(tunelab_bin, models_dir, tmp_path_factory.mktemp("data"), tmp_path_factory.mktemp("hf-home"))
    yield s
    stop_server(s)
