"""The worker API over HTTP for one run: bearer token, retries of what the protocol
allows retrying (network errors, 429, 5xx), and the server's error envelope."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable

PATH_PREFIX = "/api/v1/worker/runs/"
RETRY_FIRST = 0.2
RETRY_MAX = 5.0


class APIError(Exception):
    """A refusal from the server: {"error": {"code", "message"}}."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"the server answered {status} {code}: {message}".replace("  ", " "))
        self.status, self.code, self.message = status, code, message

    @property
    def ends_run(self) -> bool:
        """The token is dead or foreign, or the run already ended: nothing more is accepted."""
        return self.status in (401, 403) or (self.status == 409 and self.code == "run_finished")


class NetError(Exception):
    """The server could not be reached, or its answer broke off."""


def _retryable(err: Exception) -> bool:
    if isinstance(err, NetError):
        return True
    return isinstance(err, APIError) and (err.status == 429 or err.status >= 500)


class Client:
    def __init__(self, server: str, run_id: int, token: str, note: Callable[[str], None] = lambda s: None,
                 patience: float = 300.0, prefix: str = PATH_PREFIX):
        u = urllib.parse.urlparse(server)
        if u.scheme not in ("http", "https") or not u.netloc:
            raise ValueError(f"--server {server!r} is not an http:// or https:// URL")
        if not token or any(c <= " " or c >= "\x7f" for c in token):
            raise ValueError("the run token is missing or has characters a token cannot have")
        self.server = server.rstrip("/")
        self._origin = (u.scheme, u.netloc)
        self.base = f"{self.server}{prefix}{run_id}"
        self._token = token  # never printed or logged
        self.note = note
        self.patience = patience
        self._last_success = time.monotonic()

    def resolve(self, ref: str) -> str:
        """A URL from the job spec, made absolute; the token goes only to the server."""
        url = urllib.parse.urljoin(self.server + "/", ref)
        u = urllib.parse.urlparse(url)
        if (u.scheme, u.netloc) != self._origin:
            raise ValueError(f"the job names a URL on {u.netloc}, not on the server; the run token is not sent elsewhere")
        return url

    def _once(self, method: str, url: str, body: bytes | None, headers: dict[str, str], timeout: float | None,
              read: Callable[[Any], Any] | None):
        req = urllib.request.Request(url, data=body, method=method)
        for k, v in headers.items():
            req.add_header(k, v)
        req.add_header("Authorization", "Bearer " + self._token)
        try:
            resp = urllib.request.urlopen(req, timeout=timeout)
        except urllib.error.HTTPError as e:
            raw = e.read(64 << 10)
            code, msg = "", e.reason if isinstance(e.reason, str) else ""
            try:
                env = json.loads(raw)["error"]
                code, msg = env.get("code", ""), env.get("message", "")
            except Exception:
                pass
            err = APIError(e.code, code, msg)
            err.retry_after = _retry_after(e.headers.get("Retry-After"))
            raise err from None
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            raise NetError(f"could not reach the server: {e}") from None
        with resp:
            try:
                return read(resp) if read else resp.read()
            except (OSError, TimeoutError) as e:
                raise NetError(f"the answer broke off: {e}") from None

    def do(self, what: str, method: str, url: str, body: bytes | Callable[[], Any] | None = None,
           headers: dict[str, str] | None = None, timeout: float | None = 60.0,
           read: Callable[[Any], Any] | None = None, cancelled: Callable[[], bool] = lambda: False):
        """Sends until success, a refusal for good, or the server has been unreachable for
        the patience (counted from the last success of any request)."""
        started = time.monotonic()
        wait = RETRY_FIRST
        attempt = 0
        while True:
            attempt += 1
            try:
                b = body() if callable(body) else body
                out = self._once(method, url, b, headers or {}, timeout, read)
                self._last_success = time.monotonic()
                return out
            except (APIError, NetError) as err:
                if not _retryable(err):
                    raise
                deadline = min(self._last_success, started) + self.patience
                left = deadline - time.monotonic()
                if left <= 0 or cancelled():
                    raise NetError(f"{what}: gave up after {attempt} tries: {err}") from err
                pause = min(getattr(err, "retry_after", 0) or wait, left)
                self.note(f"{what}: {err} (trying again in {pause:.1f}s)")
                time.sleep(pause)
                wait = min(2 * wait, RETRY_MAX)

    def get_json(self, what: str, path: str) -> Any:
        return self.do(what, "GET", self.base + path, read=lambda r: json.loads(r.read(4 << 20)))

    def post_json(self, what: str, path: str, payload: Any, timeout: float = 60.0) -> Any:
        data = json.dumps(payload, allow_nan=False).encode()
        return self.do(what, "POST", self.base + path, body=data, timeout=timeout,
                       headers={"Content-Type": "application/json"},
                       read=lambda r: json.loads(r.read(4 << 20) or b"null"))

    def download(self, what: str, url: str, dest: str) -> None:
        """Streams url into the file dest (rewritten on each try)."""
        def read(resp):
            with open(dest, "wb") as f:
                while True:
                    chunk = resp.read(1 << 20)
                    if not chunk:
                        break
                    f.write(chunk)
            return resp.headers
        return self.do(what, "GET", url, timeout=300.0, read=read)


def _retry_after(v: str | None) -> float:
    try:
        return max(0.0, min(float(v), 86400.0)) if v else 0.0
    except ValueError:
        return 0.0
