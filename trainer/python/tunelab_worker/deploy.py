"""A deployment's serve job from start to finish (docs/worker-api.md, "Deployments"): the
spec, the snapshot, the model loaded (adapters merged into the base, or full weights;
safetensors only, no remote code), the inference server (serve.py), heartbeats reporting
its URL and health until the server says stop, then finish."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import models, snapshot
from .client import APIError, Client, NetError

DEPLOY_PREFIX = "/api/v1/worker/deployments/"
MAX_LOG_LINE = 2000


class ServeFailed(Exception):
    """The deployment cannot be served; the message is the reason shown to its owner."""


def load_for_serving(spec: dict, folder: Path, meta: dict, say=lambda s: None):
    """The model and tokenizer of a snapshot unpacked in folder, ready to generate."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from . import data as D
    from .load import SAFE, _dtype

    kw = dict(SAFE, use_safetensors=True, torch_dtype=_dtype())
    tok = AutoTokenizer.from_pretrained(str(folder), **SAFE)
    D.ensure_chat_template(tok)
    if meta.get("kind") == "full":
        model = AutoModelForCausalLM.from_pretrained(str(folder), **kw)
    else:
        from peft import PeftModel

        base = models.resolve(spec["base_model"])
        models.check_model_dir(base.path, base.id)
        model = AutoModelForCausalLM.from_pretrained(str(base.path), **kw)
        model = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
        say(f"merged the LoRA adapters into {base.id}")
    if torch.cuda.is_available():
        model = model.to("cuda")
    model.eval()
    model.config.use_cache = True
    return model, tok


def vllm_usable() -> bool:
    """vLLM serves when it is installed and CUDA is present, unless TUNELAB_SERVE_ENGINE
    says transformers."""
    if os.environ.get("TUNELAB_SERVE_ENGINE", "") == "transformers":
        return False
    try:
        import torch
        import vllm  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


def vllm_folder(folder: Path, meta: dict, model, tok, dest: Path) -> Path:
    """A model folder vLLM can load: the snapshot's own for full weights, else the merged
    model written out (safetensors) with its tokenizer."""
    if meta.get("kind") == "full":
        return folder
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest, safe_serialization=True)
    tok.save_pretrained(dest)
    return dest


def advertised_host(host: str) -> str:
    """The host name the tunelab server reaches the inference server at."""
    adv = os.environ.get("TUNELAB_SERVE_ADVERTISE", "")
    if adv:
        return adv
    if host in ("", "0.0.0.0", "::"):
        return socket.getfqdn()
    return host


class Deployer:
    def __init__(self, server: str, dep_id: int, token: str, out=sys.stdout):
        self.dep_id, self.out = dep_id, out
        self.c = Client(server, dep_id, token, note=self.note, prefix=DEPLOY_PREFIX)
        self.stop = threading.Event()
        self.url, self.healthy, self.detail = "", False, "loading the model"
        self.httpd = None
        self.tmp = Path(tempfile.mkdtemp(prefix=f"tunelab-deployment-{dep_id}-"))

    def note(self, line: str) -> None:
        print(f"tunelab serve: {line}", file=self.out, flush=True)

    def say(self, line: str) -> None:
        """A line for the operator and the deployment's log on the server."""
        self.note(line)
        try:
            self.c.post_json("send logs", "/logs", {"lines": [line.encode()[:MAX_LOG_LINE].decode("utf-8", "ignore")]})
        except (APIError, NetError) as e:
            self.note(f"could not send a log line: {e}")

    def _heartbeats(self, every: float) -> None:
        while not self.stop.is_set():
            healthy = self.healthy and self.httpd is not None and self.httpd.alive
            try:
                reply = self.c.post_json("send a heartbeat", "/heartbeat",
                                         {"url": self.url, "healthy": healthy, "detail": self.detail}) or {}
            except (APIError, NetError) as e:
                self.note(f"heartbeats stopped: {e}")
                self.dead = e
                self.stop.set()
                return
            if reply.get("stop"):
                self.say("stop asked; shutting the inference server down")
                self.stop.set()
                return
            self.stop.wait(every)

    def run(self) -> int:
        try:
            return self._run()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _run(self) -> int:
        self.dead = None
        try:
            spec = self.c.get_json("get the job", "/job")
        except (APIError, NetError) as e:
            self.note(f"could not get the job: {e}")
            return 1
        every = float(spec.get("heartbeat_interval_seconds") or 5)
        hb = threading.Thread(target=self._heartbeats, args=(every,), daemon=True)
        hb.start()
        status, reason = "stopped", ""
        try:
            self._serve(spec)
        except (ServeFailed, models.ModelRefused, ValueError, OSError) as e:
            status, reason = "failed", str(e)
        except (APIError, NetError) as e:
            status, reason = "failed", f"the serve job could not talk to the server: {e}"
        except Exception as e:  # noqa: BLE001 - any crash fails the deployment with its words
            status, reason = "failed", f"the inference server crashed: {type(e).__name__}: {e}"
        self.stop.set()
        if self.httpd is not None:
            self.httpd.stop()
        if self.dead is not None and isinstance(self.dead, APIError) and self.dead.ends_run:
            self.note("the server no longer accepts this deployment; stopping without finishing it")
            return 1
        if status == "failed":
            self.say(f"failed: {reason}")
        try:
            self.c.post_json("finish the deployment", "/finish",
                             {"status": status, "reason": reason.encode()[:500].decode("utf-8", "ignore")})
        except (APIError, NetError) as e:
            self.note(f"could not finish the deployment: {e}")
            return 1
        self.note(f"reported the deployment as {status}")
        return 0 if status == "stopped" else 1

    def _serve(self, spec: dict) -> None:
        from .serve import Generator, Server

        info = spec["snapshot"]
        dest = self.tmp / "snapshot.zip"
        self.say(f"downloading run {info.get('run_id')}'s snapshot at step {info.get('step')}")
        self.c.download("download the snapshot", self.c.resolve(info["url"]), str(dest))
        if info.get("sha256") and snapshot.sha256_file(dest) != info["sha256"]:
            raise ServeFailed("the snapshot arrived damaged (its sha256 differs)")
        folder = self.tmp / "snapshot"
        meta = snapshot.extract(dest, folder, 4 * max(int(info.get("size_bytes") or 0), 1 << 20))
        dest.unlink()
        if self.stop.is_set():
            return
        started = time.monotonic()
        model, tok = load_for_serving(spec, folder, meta, self.say)
        from .train import device
        max_tokens = int(spec.get("max_tokens") or 512)
        if vllm_usable():
            from .serve import VLLMGenerator
            src = vllm_folder(folder, meta, model, tok, self.tmp / "merged")
            del model  # vLLM loads its own copy onto the GPU
            import torch
            torch.cuda.empty_cache()
            gen = VLLMGenerator(str(src), tok, max_tokens)
        else:
            gen = Generator(model, tok, max_tokens)
        self.say(f"loaded {spec['model']} ({meta.get('kind')} of {spec['base_model']}) on {device()} "
                 f"in {time.monotonic() - started:.1f}s; generating with {gen.engine}")
        host = os.environ.get("TUNELAB_SERVE_HOST", "127.0.0.1")
        port = int(os.environ.get("TUNELAB_SERVE_PORT", "0") or 0)
        self.httpd = Server(gen, spec["model"], spec["api_key"], host, port, log=self.say).start()
        self.url = f"http://{advertised_host(host)}:{self.httpd.port}"
        self.healthy, self.detail = True, ""
        self.say(f"serving on {self.url}")
        while not self.stop.is_set():
            self.stop.wait(0.5)
            if not self.httpd.alive:
                raise ServeFailed("the inference server's HTTP thread stopped")
