"""Deploying a Python-worker snapshot end to end: a real tunelab server (built from this
checkout) whose local backend starts `python -m tunelab_worker --deployment ID` for the
deployment; the tiny model trains, is deployed, answers /v1 chat and completions (streamed
and not) through the server's proxy, is stopped, and its GPU seconds are in the usage
ledger. Another person sees none of it. On the CPU, with transformers generate (no vLLM)."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request

from conftest import Server


def _deployment(server, snapshot_id: int) -> dict | None:
    with server.db() as c:
        c.row_factory = __import__("sqlite3").Row
        row = c.execute("SELECT id, name, url, healthy, ended_at, failed, reason FROM deployments WHERE snapshot_id = ? "
                        "ORDER BY id DESC LIMIT 1", (snapshot_id,)).fetchone()
        return dict(row) if row else None


def _wait(server, snapshot_id: int, ok, what: str, within: float = 300) -> dict:
    deadline = time.monotonic() + within
    d = None
    while time.monotonic() < deadline:
        d = _deployment(server, snapshot_id)
        if d and ok(d):
            return d
        time.sleep(0.3)
    log = server.data / "workers" / f"deployment-{d['id'] if d else 0}.log"
    raise AssertionError(f"{what} did not happen within {within}s; last {d}\n{log.read_text() if log.exists() else ''}")


def _api_key(server) -> str:
    server.post("/settings/api-keys", {"name": "e2e", "expires": ""})
    _, _, body = server.request("GET", "/settings/api-keys")
    m = re.search(rb'data-testid="api-key">(tl_[0-9A-Za-z]{32})<', body)
    assert m, "no key shown"
    return m.group(1).decode()


def _v1(base: str, path: str, key: str, body: dict):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=180) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def test_train_deploy_call_stop_and_meter(server):
    run = server.start_run(server.sample("chat"), "lora")
    row = server.wait_run(run, lambda r: r["status"] in ("succeeded", "failed", "cancelled"), "the end of the run")
    assert row["status"] == "succeeded", f"{row}\n{server.worker_log(run)}"
    snap = server.snapshots(run)[-1]
    server.post(f"/runs/{run}/snapshots/{snap['id']}/deploy", {})
    d = _wait(server, snap["id"], lambda d: d["healthy"] == 1 or d["ended_at"] is not None, "the inference server's start")
    assert d["ended_at"] is None, d
    assert d["url"].startswith("http://127.0.0.1:"), d
    _, _, page = server.request("GET", "/deployments")
    assert d["name"].encode() in page and b">Live<" in page and b"local backend" in page

    key = _api_key(server)
    model = d["name"]
    st, ct, body = _v1(server.base, "/v1/chat/completions", key,
                       {"model": model, "messages": [{"role": "user", "content": "What is the capital of France?"}],
                        "max_tokens": 12, "temperature": 0})
    assert st == 200 and ct.startswith("application/json"), body
    r = json.loads(body)
    assert r["object"] == "chat.completion" and r["model"] == model
    whole = r["choices"][0]["message"]["content"]
    assert isinstance(whole, str) and 0 < r["usage"]["completion_tokens"] <= 12

    st, ct, body = _v1(server.base, "/v1/chat/completions", key,
                       {"model": model, "messages": [{"role": "user", "content": "What is the capital of France?"}],
                        "max_tokens": 12, "temperature": 0, "stream": True})
    assert st == 200 and ct.startswith("text/event-stream"), body
    events = [e for e in body.split("\n\n") if e]
    assert events[-1] == "data: [DONE]", body
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == whole

    st, _, body = _v1(server.base, "/v1/completions", key, {"model": model, "prompt": "The quick brown", "max_tokens": 6})
    assert st == 200 and json.loads(body)["object"] == "text_completion", body

    # The inference server itself answers only the tunelab server (the deployment's secret).
    st, _, body = _v1(d["url"], "/v1/chat/completions", key, {"model": model, "messages": [{"role": "user", "content": "x"}]})
    assert st == 401, body

    # Another person: not on their page, not theirs to stop, not a model for their key.
    other = Server(server.base, server.data, server.proc)
    other.post("/signup", {"email": "py-other@example.com", "password": "a long training passphrase", "accept_terms": "yes"})
    _, _, page = other.request("GET", "/deployments")
    assert model.encode() not in page
    st, _, _ = other.request("POST", f"/deployments/{d['id']}/stop", {})
    assert st == 404
    st, _, body = _v1(server.base, "/v1/chat/completions", _api_key(other), {"model": model, "messages": [{"role": "user", "content": "x"}]})
    assert st == 404 and json.loads(body)["error"]["code"] == "model_not_found", body

    server.post(f"/deployments/{d['id']}/stop", {})
    d = _wait(server, snap["id"], lambda d: d["ended_at"] is not None, "the end of the deployment")
    assert d["failed"] == 0, d
    log = (server.data / "workers" / f"deployment-{d['id']}.log").read_text()
    assert "reported the deployment as stopped" in log, log
    with server.db() as c:
        rows = c.execute("SELECT run_id, seconds FROM usage WHERE deployment_id = ?", (d["id"],)).fetchall()
    assert rows and all(r[0] == run for r in rows) and sum(r[1] for r in rows) >= 1, rows
    _, _, page = server.request("GET", "/deployments")
    assert b">Stopped<" in page
