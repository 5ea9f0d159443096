"""A heartbeat reply with "stop": {"reason"} (the server's budget stop) makes the worker
save the weights it has as the final snapshot and finish the run cancelled with that
reason. The real server is started with its workers pointed at a small proxy that adds
the stop to heartbeat replies once training is under way; everything else is the server's."""

from __future__ import annotations

import http.client
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import _free_port, start_server, stop_server

REASON = "The run reached its budget of $0.01."
STOP_FROM_STEP = 5


def _proxy(upstream_port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _forward(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else None
            conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=120)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if self.path.endswith("/heartbeat") and resp.status == 200 and body:
                if json.loads(body).get("step", 0) >= STOP_FROM_STEP:
                    reply = json.loads(data)
                    reply["stop"] = {"reason": REASON}
                    data = json.dumps(reply).encode()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            conn.close()

        do_GET = do_POST = do_PUT = _forward

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture(scope="module")
def stopping_server(tunelab_bin, models_dir, tmp_path_factory):
    port = _free_port()
    proxy = _proxy(port)
    s = start_server(tunelab_bin, models_dir, tmp_path_factory.mktemp("data-stop"), tmp_path_factory.mktemp("hf-stop"),
                     extra={"TUNELAB_WORKER_URL": f"http://127.0.0.1:{proxy.server_address[1]}"}, port=port)
    yield s
    stop_server(s)
    proxy.shutdown()


def test_a_stop_request_saves_a_final_snapshot_and_cancels_with_its_reason(stopping_server):
    s = stopping_server
    run = s.start_run(s.sample("chat"), "lora", epochs=500)
    row = s.wait_run(run, lambda r: r["status"] in ("succeeded", "failed", "cancelled"), "the stop")
    log = s.worker_log(run)
    assert row["status"] == "cancelled" and row["reason"] == REASON, f"{row}\n{log}"
    asked = re.search(r"stop asked at step (\d+)", log)
    assert asked, log
    snaps = s.snapshots(run)
    assert len(snaps) == 1 and snaps[0]["final"] == 1, snaps
    # The snapshot holds the weights at the step training stopped: the step under way when
    # the stop was heard, at most one past it, and far from the end.
    assert int(asked.group(1)) <= snaps[0]["step"] <= int(asked.group(1)) + 1 < row["total_steps"], (snaps, row, log)
