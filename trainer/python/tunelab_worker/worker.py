"""One run from start to finish, as docs/worker-api.md describes: job, data, heartbeats
that hear cancel and stop requests, batched metrics and logs, snapshots, finish."""

from __future__ import annotations

import json
import math
import queue
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import data as D
from . import models, snapshot
from .client import APIError, Client, NetError

MAX_METRIC_BATCH = 1000
MAX_LOG_BATCH = 200
MAX_LOG_LINE = 2000
MAX_STEP = 1_000_000_000
METHODS = ("lora", "qlora", "full", "dpo")


class RunFailed(Exception):
    """The run cannot go on; the message is the reason shown to its owner."""


class Dead(Exception):
    """The server accepts nothing more for this run (token dead, run ended)."""


class Batcher:
    """Sends queued items in batches from a background thread; flush waits for them all."""

    def __init__(self, send, limit: int, on_dead):
        self.q: queue.Queue = queue.Queue()
        self.send, self.limit, self.on_dead = send, limit, on_dead
        self.error: Exception | None = None
        self._pending = 0
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def put(self, item) -> None:
        with self._cv:
            self._pending += 1
        self.q.put(item)

    def _loop(self) -> None:
        while True:
            items = [self.q.get()]
            time.sleep(0.2)  # let a few more arrive: fewer, larger requests
            while len(items) < self.limit:
                try:
                    items.append(self.q.get_nowait())
                except queue.Empty:
                    break
            try:
                if self.error is None:
                    self.send(items)
            except Exception as e:  # noqa: BLE001 - kept and reported at flush
                self.error = e
                if isinstance(e, APIError) and e.ends_run:
                    self.on_dead(e)
            with self._cv:
                self._pending -= len(items)
                self._cv.notify_all()

    def flush(self) -> None:
        with self._cv:
            self._cv.wait_for(lambda: self._pending == 0)
        if self.error is not None:
            raise self.error


class Worker:
    def __init__(self, server: str, run_id: int, token: str, out=sys.stdout):
        self.run_id = run_id
        self.out = out
        self.c = Client(server, run_id, token, note=self.note)
        self.step = 0
        self.total = 0
        self.cancel = threading.Event()  # the owner cancelled: stop, finish cancelled
        self.stop_reason: str | None = None  # "stop" asked: final snapshot, finish cancelled
        self.halt = threading.Event()  # any of the above, or a fault: training stops
        self.dead: Exception | None = None
        self.fault: Exception | None = None
        self.spec: dict = {}
        self.tmp = Path(tempfile.mkdtemp(prefix=f"tunelab-run-{run_id}-"))

    # --- output -------------------------------------------------------------------------
    def note(self, line: str) -> None:
        """A line for the operator only (stdout)."""
        print(f"tunelab worker: {line}", file=self.out, flush=True)

    def say(self, line: str) -> None:
        """A line for the operator and the run's log on the server."""
        self.note(line)
        if hasattr(self, "logs"):
            self.logs.put(line.encode("utf-8")[:MAX_LOG_LINE].decode("utf-8", "ignore"))

    def _mark_dead(self, e: Exception) -> None:
        self.dead = self.dead or e
        self.halt.set()

    # --- protocol -----------------------------------------------------------------------
    def _post_metrics(self, points: list) -> None:
        # One point per name and step: a batch that repeats one is refused whole.
        seen, uniq = set(), []
        for p in points:
            if (p["name"], p["step"]) not in seen:
                seen.add((p["name"], p["step"]))
                uniq.append(p)
        self.c.post_json("send metrics", "/metrics", {"points": uniq})

    def _post_logs(self, lines: list) -> None:
        self.c.post_json("send logs", "/logs", {"lines": lines})

    def metric(self, step: int, values: dict[str, float]) -> None:
        for name, v in values.items():
            v = float(v)
            if math.isnan(v):
                v = "NaN"
            elif math.isinf(v):
                v = "Infinity" if v > 0 else "-Infinity"
            self.metrics.put({"name": name, "step": min(step, MAX_STEP), "value": v})

    def _heartbeats(self) -> None:
        every = float(self.spec.get("heartbeat_interval_seconds") or 5)
        while not self._hb_stop.is_set():
            sent = time.monotonic()
            total = min(self.total, MAX_STEP)
            body = {"step": min(self.step, total), "total_steps": total, "wait": True}
            try:
                reply = self.c.post_json("send a heartbeat", "/heartbeat", body, timeout=every + 60) or {}
            except APIError as e:
                if e.ends_run:
                    self._mark_dead(e)
                else:
                    self.fault = self.fault or e
                    self.halt.set()
                return
            except NetError as e:
                self.fault = self.fault or e
                self.halt.set()
                return
            if self._hb_stop.is_set():
                return
            # Training is told first, then the step is read for the log line: training ends
            # at most one step past the step the line names.
            if reply.get("cancel") and not self.cancel.is_set():
                self.cancel.set()
                self.halt.set()
                self.say(f"cancel asked at step {self.step}; stopping")
            stop = reply.get("stop")
            if isinstance(stop, dict) and self.stop_reason is None and not self.cancel.is_set():
                self.stop_reason = str(stop.get("reason") or "stopped by the server")
                self.halt.set()
                self.say(f"stop asked at step {self.step} ({self.stop_reason}); saving the weights and stopping")
            left = every - (time.monotonic() - sent)
            if left > 0:
                self._hb_stop.wait(left)

    def finish(self, status: str, reason: str = "") -> None:
        self.c.post_json("finish the run", "/finish", {"status": status, "reason": reason.encode()[:500].decode("utf-8", "ignore")})

    def upload(self, path: Path, step: int, final: bool, sha: str) -> dict:
        size = path.stat().st_size
        cap = int(self.spec.get("max_snapshot_bytes") or 0)
        if cap and size > cap:
            raise RunFailed(f"the snapshot at step {step} is {size} bytes, over the server's cap of {cap} bytes")

        def read(r):
            return json.loads(r.read())

        headers = {"Content-Type": "application/zip", "Content-Length": str(size),
                   "X-Snapshot-SHA256": sha, "X-Snapshot-Final": "true" if final else "false"}
        with open(path, "rb") as f:
            def body():  # streamed from the start again on every try
                f.seek(0)
                return f
            return self.c.do(f"upload the snapshot at step {step}", "PUT", f"{self.c.base}/snapshots/{step}",
                             body=body, headers=headers, timeout=600.0, read=read)

    # --- the run --------------------------------------------------------------------------
    def run(self) -> int:
        """Trains the run; returns the process exit code (0: succeeded or cancelled)."""
        try:
            return self._run()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _run(self) -> int:
        self.metrics = Batcher(self._post_metrics, MAX_METRIC_BATCH, self._mark_dead)
        self.logs = Batcher(self._post_logs, MAX_LOG_BATCH, self._mark_dead)
        self._hb_stop = threading.Event()
        try:
            self.spec = self.c.get_json("get the job", "/job")
        except (APIError, NetError) as e:
            self.note(f"could not get the job: {e}")
            return 1
        hb = threading.Thread(target=self._heartbeats, daemon=True)
        hb.start()
        status, reason, code = "succeeded", "", 0
        try:
            self._train()
        except Dead:
            pass
        except (RunFailed, models.ModelRefused, ValueError) as e:
            status, reason, code = "failed", str(e), 1
        except (APIError, NetError) as e:
            if isinstance(e, APIError) and e.ends_run:
                self._mark_dead(e)
            status, reason, code = "failed", f"the worker could not talk to the server: {e}", 1
        except Exception as e:  # noqa: BLE001 - any crash fails the run with its words
            status, reason, code = "failed", f"training crashed: {type(e).__name__}: {e}", 1
        if status == "succeeded":
            if self.cancel.is_set():
                status = "cancelled"
            elif self.stop_reason is not None:
                status, reason = "cancelled", self.stop_reason
            elif self.fault is not None:
                status, reason, code = "failed", f"heartbeats could not be delivered: {self.fault}", 1
        if self.dead is not None:
            self.note(f"the server no longer accepts this run ({self.dead}); stopping without finishing it")
            return 1
        if status == "failed":
            self.say(f"failed: {reason}")
        try:
            self.metrics.flush()
            self.logs.flush()
        except (APIError, NetError) as e:
            if isinstance(e, APIError) and e.ends_run:
                self.note(f"the server no longer accepts this run ({e}); stopping without finishing it")
                return 1
            self.note(f"could not deliver every metric and log line: {e}")
            if status == "succeeded":
                status, reason, code = "failed", f"metrics or logs could not be delivered: {e}", 1
        self._hb_stop.set()
        try:
            self.finish(status, reason)
        except (APIError, NetError) as e:
            self.note(f"could not finish the run: {e}")
            return 1
        self.note(f"reported the run as {status}")
        return code

    def _train(self) -> None:
        from . import load, train as T  # torch and transformers load only once the job is known

        spec, cfg = self.spec, self.spec["config"]
        method = cfg.get("method")
        if method not in METHODS:
            raise RunFailed(f"the method {method!r} is not one this worker trains ({', '.join(METHODS)})")
        T.set_seed(int(cfg["seed"]))
        base = models.resolve(cfg["base_model"])
        rows = self._rows(spec["dataset"], "dataset")
        eval_rows = self._rows(spec["eval_dataset"], "eval dataset") if spec.get("eval_dataset") else None
        fmt = spec["dataset"]["format"]
        if (method == "dpo") != (fmt == "preference"):
            raise RunFailed(f"{method} does not train on {fmt} rows" if method != "dpo" else "dpo trains on preference rows only")
        if eval_rows is None:
            train_rows, eval_rows = D.split(rows, float(cfg.get("validation_split") or 0), int(cfg["seed"]))
        else:
            train_rows = rows
        init_dir = self._init_snapshot(spec) if spec.get("init_snapshot") else None
        model, tok, notes = load.model_for(base, method, cfg, init_dir)
        for n in notes:
            self.say(n)
        self.tok, self.model, self.base, self.method = tok, model, base, method
        max_len = int(cfg["max_seq_len"])
        if method == "dpo":
            tr, ev = D.pref_examples(tok, train_rows, max_len), D.pref_examples(tok, eval_rows, max_len)
        else:
            tr, ev = D.sft_examples(tok, train_rows, fmt, max_len), D.sft_examples(tok, eval_rows, fmt, max_len)
        if not tr:
            raise RunFailed(f"no training row has tokens to learn within max_seq_len {max_len}")
        self.say(f"loaded {len(rows)} rows ({fmt}): {len(tr)} for training, {len(ev)} for eval; "
                 f"{D.count_tokens(tr)} training tokens")
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        self.say(f"training: {method} on {base.id} ({base.parameters:,} parameters, {trainable:,} trainable) "
                 f"on {T.device()}, {cfg['epochs']} epochs")

        def progress(step, total):
            self.step, self.total = step, total

        hooks = T.Hooks(metrics=self.metric, log=self.say, progress=progress,
                        snapshot=lambda step, final: self._snapshot(step, final), should_stop=self.halt.is_set)
        out = T.train(model, tok, method, cfg, tr, ev, hooks)
        if self.dead is not None:
            raise Dead()
        if self.cancel.is_set():
            self.say(f"cancelled at step {out.step} of {out.total}, as asked")
            return
        if self.stop_reason is not None:
            self._snapshot(out.step, True)
            self.say(f"stopped at step {out.step} of {out.total}: {self.stop_reason}")
            return
        if self.fault is not None:
            return
        self._snapshot(out.step, True)
        first, last = out.losses[0], out.losses[-1]
        self.say(f"finished: {out.step} steps, loss {first:.4f} -> {last:.4f}")

    def _rows(self, ds: dict, what: str) -> list[dict]:
        dest = self.tmp / (what.replace(" ", "-") + ".jsonl")
        self.c.download(f"download the {what}", self.c.resolve(ds["url"]), str(dest))
        rows = D.read_rows(str(dest))
        dest.unlink()
        if not rows:
            raise RunFailed(f"the {what} has no rows")
        return rows

    def _init_snapshot(self, spec: dict) -> Path:
        info = spec["init_snapshot"]
        dest = self.tmp / "init.zip"
        self.c.download("download the snapshot this run continues from", self.c.resolve(info["url"]), str(dest))
        if info.get("sha256") and snapshot.sha256_file(dest) != info["sha256"]:
            raise RunFailed("the snapshot this run continues from arrived damaged (its sha256 differs)")
        folder = self.tmp / "init"
        cap = int(spec.get("max_snapshot_bytes") or (1 << 30))
        meta = snapshot.extract(dest, folder, 4 * cap)
        dest.unlink()
        self.say(f"continuing from run {info.get('run_id')}, step {info.get('step')} ({meta.get('kind')})")
        return folder

    def _snapshot(self, step: int, final: bool) -> None:
        cfg = self.spec["config"]
        kind = "lora-adapter" if self.method in ("lora", "qlora") else "full"
        meta = {"run_id": self.run_id, "step": step, "total_steps": self.total, "base_model": self.base.id,
                "method": self.method, "kind": kind,
                "config": {k: cfg[k] for k in ("epochs", "learning_rate", "batch_size", "lora_rank", "lora_alpha",
                                                "max_seq_len", "seed", "validation_split") if k in cfg}}
        if kind == "full":
            for k in ("lora_rank", "lora_alpha"):
                meta["config"].pop(k, None)
        path = self.tmp / f"snapshot-{step}.zip"
        sha, size = snapshot.build(self.model, self.tok, meta, path)
        try:
            got = self.upload(path, step, final, sha)
        finally:
            path.unlink(missing_ok=True)
        if got.get("sha256") != sha:
            raise RunFailed(f"the server stored the snapshot at step {step} with another sha256")
        self.say(f"snapshot at step {step} uploaded ({size:,} bytes, sha256 {sha[:12]}…{', final' if final else ''})")
