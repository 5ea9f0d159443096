"""python -m tunelab_worker --server URL --run ID          (token in TUNELAB_RUN_TOKEN)
python -m tunelab_worker --server URL --deployment ID   (serve a snapshot; same token variable)
python -m tunelab_worker --offer                        (JSON: models, methods, GPU types here)"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys

USAGE = "usage: TUNELAB_RUN_TOKEN=<token> python -m tunelab_worker --server URL --run ID"
TOKEN_ENV = "TUNELAB_RUN_TOKEN"


def offer() -> dict:
    """What this machine can train: the base models present and safe, the methods, and the
    GPUs torch sees (else the CPU). The local backend reads this when the server starts."""
    from . import models
    ok, skipped = models.available_models()
    out = {"models": [{"id": m.id, "parameters": m.parameters, "path": str(m.path)} for m in ok],
           "skipped": skipped, "methods": ["lora", "dpo", "full"], "gpus": []}
    try:
        import torch
        from .load import qlora_ok
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                p = torch.cuda.get_device_properties(i)
                out["gpus"].append({"name": p.name, "memory_bytes": p.total_memory})
            if qlora_ok():
                out["methods"].insert(1, "qlora")
    except ImportError as e:
        out["error"] = f"torch is not installed in this Python ({e})"
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tunelab_worker", usage=USAGE)
    p.add_argument("--server")
    p.add_argument("--run")
    p.add_argument("--deployment", help="serve a deployment's snapshot instead of training a run")
    p.add_argument("--offer", action="store_true", help="print what this machine can train, as JSON")
    a = p.parse_args(argv)
    if a.offer:
        print(json.dumps(offer()))
        return 0
    if not a.server or bool(a.run) == bool(a.deployment):
        print(f"tunelab worker: --server and one of --run or --deployment are required ({USAGE})", file=sys.stderr)
        return 2
    what, ident = ("run", a.run) if a.run else ("deployment", a.deployment)
    if not re.fullmatch(r"[1-9][0-9]{0,17}", ident):
        print(f"tunelab worker: --{what} {ident!r} is not a {what} id (a positive whole number)", file=sys.stderr)
        return 2
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        print(f"tunelab worker: {TOKEN_ENV} is not set; the backend that starts a worker passes the run's token there",
              file=sys.stderr)
        return 2
    if not re.fullmatch(r"[0-9a-fA-F]{32}", token):
        print(f"tunelab worker: {TOKEN_ENV} is malformed; a run token is 32 hex digits", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded at run time
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # A signal (the backend cancelling the job) ends the worker without finishing the run:
    # the server decides how it ends. SystemExit still cleans up the worker's temp files.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if a.deployment:
        from .deploy import Deployer
        try:
            d = Deployer(a.server, int(a.deployment), token)
        except ValueError as e:
            print(f"tunelab worker: {e}", file=sys.stderr)
            return 2
        d.note(f"deployment {a.deployment} on {a.server}")
        return d.run()
    from .worker import Worker
    try:
        w = Worker(a.server, int(a.run), token)
    except ValueError as e:
        print(f"tunelab worker: {e}", file=sys.stderr)
        return 2
    w.note(f"run {a.run} on {a.server}")
    return w.run()


if __name__ == "__main__":
    sys.exit(main())
