"""An OpenAI-compatible inference server for one loaded model: POST /v1/chat/completions and
/v1/completions (stream and not), every request with the deployment's secret as
"Authorization: Bearer"; also POST /tunelab/score (score.py), tunelab's evaluation of the
snapshot. Generation is transformers generate with a TextIteratorStreamer
(Generator), or vLLM's offline engine where vLLM is installed and CUDA is present
(VLLMGenerator); one request at a time (the model holds the GPU)."""

from __future__ import annotations

import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20
MAX_STOPS = 4
DEFAULT_COMPLETION_TOKENS = 16  # OpenAI's default max_tokens for /v1/completions


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


class Generator:
    """Generates text from a causal LM and its tokenizer with transformers."""

    engine = "transformers"

    def __init__(self, model, tok, max_tokens: int):
        import torch

        self.torch = torch
        self.model, self.tok, self.max_tokens = model, tok, max_tokens
        self.lock = threading.Lock()

    def chat_prompt(self, messages: list[dict]) -> str:
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def token_nll(self, ids: list[int], labels: list[int]) -> tuple[float, int]:
        """The summed NLL (nats) of labels[1:] given what precedes each, and how many
        tokens that is (-100 labels are not scored): training's loss, summed."""
        torch = self.torch
        y = torch.tensor(labels[1:], dtype=torch.long)
        mask = y != -100
        if len(ids) < 2 or not bool(mask.any()):
            return 0.0, 0
        with self.lock, torch.no_grad():
            x = torch.tensor([ids], dtype=torch.long, device=self.model.device)
            logits = self.model(input_ids=x).logits[0, :-1].float().cpu()
        nll = torch.nn.functional.cross_entropy(logits[mask], y[mask], reduction="sum")
        return float(nll), int(mask.sum())

    def stream(self, prompt: str, opts: dict, cancelled: threading.Event):
        """Yields text pieces, then returns (prompt_tokens, completion_tokens, finish_reason)."""
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        torch = self.torch
        enc = self.tok(prompt, return_tensors="pt", add_special_tokens=False)
        ids = enc["input_ids"].to(self.model.device)
        mask = enc["attention_mask"].to(self.model.device)
        n_prompt = int(ids.shape[1])
        stops: list[str] = opts["stop"]
        hit = threading.Event()

        class Halt(StoppingCriteria):
            def __call__(self, input_ids, scores, **kw):
                return cancelled.is_set() or hit.is_set()

        streamer = TextIteratorStreamer(self.tok, skip_prompt=True, skip_special_tokens=True, timeout=600)
        kw = dict(input_ids=ids, attention_mask=mask, max_new_tokens=opts["max_tokens"], streamer=streamer,
                  stopping_criteria=StoppingCriteriaList([Halt()]),
                  pad_token_id=self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id)
        if opts["temperature"] > 0:
            kw.update(do_sample=True, temperature=opts["temperature"], top_p=opts["top_p"])
        else:
            kw.update(do_sample=False)
        out: dict = {}

        def run():
            try:
                with torch.no_grad():
                    if opts.get("seed") is not None:
                        torch.manual_seed(int(opts["seed"]))
                    out["ids"] = self.model.generate(**kw)
            except Exception as e:  # noqa: BLE001 - reported to the client
                out["error"] = e
                streamer.end()

        with self.lock:
            t = threading.Thread(target=run, daemon=True)
            t.start()
            text, sent = "", 0
            hold = max((len(s) for s in stops), default=1) - 1
            for piece in streamer:
                if hit.is_set():
                    continue  # drain what the streamer still has
                text += piece
                cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
                if cut >= 0:
                    hit.set()
                    if cut > sent:
                        yield text[sent:cut]
                    sent = cut
                    continue
                upto = max(len(text) - hold, sent)
                if upto > sent:
                    yield text[sent:upto]
                    sent = upto
            t.join()
        if "error" in out:
            raise RuntimeError(f"generation failed: {out['error']}")
        if not hit.is_set() and len(text) > sent:
            yield text[sent:]
        n_out = int(out["ids"].shape[1]) - n_prompt if "ids" in out else 0
        eos = self.tok.eos_token_id
        ended_eos = n_out > 0 and eos is not None and int(out["ids"][0, -1]) == eos
        reason = "length" if (n_out >= opts["max_tokens"] and not hit.is_set() and not ended_eos) else "stop"
        return n_prompt, n_out, reason


class VLLMGenerator:
    """Generates with vLLM's offline engine from a model folder (safetensors, no remote
    code). A streamed answer arrives as one piece: the offline engine returns whole answers."""

    engine = "vllm"

    def __init__(self, model_dir: str, tok, max_tokens: int):
        from vllm import LLM

        self.tok, self.max_tokens = tok, max_tokens
        self.llm = LLM(model=model_dir, tokenizer=model_dir, trust_remote_code=False)
        self.lock = threading.Lock()

    def chat_prompt(self, messages: list[dict]) -> str:
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def token_nll(self, ids: list[int], labels: list[int]) -> tuple[float, int]:
        """As Generator.token_nll, from vLLM's prompt logprobs of the ids."""
        from vllm import SamplingParams

        scored = [i for i in range(1, len(ids)) if labels[i] != -100]
        if not scored:
            return 0.0, 0
        with self.lock:
            out = self.llm.generate([{"prompt_token_ids": ids}], SamplingParams(max_tokens=1, prompt_logprobs=0),
                                    use_tqdm=False)[0]
        lps = out.prompt_logprobs
        return -sum(float(lps[i][ids[i]].logprob) for i in scored), len(scored)

    def stream(self, prompt: str, opts: dict, cancelled: threading.Event):
        from vllm import SamplingParams

        params = SamplingParams(n=1, max_tokens=opts["max_tokens"], temperature=opts["temperature"],
                                top_p=opts["top_p"] if opts["temperature"] > 0 else 1.0, stop=opts["stop"] or None,
                                seed=opts.get("seed"))
        with self.lock:
            try:
                out = self.llm.generate([prompt], params, use_tqdm=False)[0]
            except Exception as e:  # noqa: BLE001 - reported to the client
                raise RuntimeError(f"generation failed: {e}") from None
        done = out.outputs[0]
        if done.text:
            yield done.text
        reason = "length" if done.finish_reason == "length" else "stop"
        return len(out.prompt_token_ids), len(done.token_ids), reason


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    raise BadRequest("messages[].content must be a string or an array of text parts.", "messages")


def parse_options(body: dict, default_max: int, cap: int) -> dict:
    """The sampling fields both endpoints share; a bad one raises BadRequest naming it."""
    o = {"max_tokens": min(default_max, cap), "temperature": 1.0, "top_p": 1.0, "stop": [], "seed": None}
    if body.get("n") not in (None, 1):
        raise BadRequest("Only n=1 is supported: one choice per request.", "n")
    t = body.get("temperature")
    if t is not None:
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not 0 <= t <= 2:
            raise BadRequest("temperature must be a number from 0 to 2.", "temperature")
        o["temperature"] = float(t)
    p = body.get("top_p")
    if p is not None:
        if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 < p <= 1:
            raise BadRequest("top_p must be a number above 0 and at most 1.", "top_p")
        o["top_p"] = float(p)
    for name in ("max_tokens", "max_completion_tokens"):
        v = body.get(name)
        if v is None:
            continue
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= cap:
            raise BadRequest(f"{name} must be a whole number from 1 to {cap}.", name)
        o["max_tokens"] = v
    s = body.get("stop")
    if isinstance(s, str):
        s = [s]
    if s is not None:
        if not isinstance(s, list) or len(s) > MAX_STOPS or not all(isinstance(x, str) and 0 < len(x) <= 32 for x in s):
            raise BadRequest("stop must be a string or an array of up to 4 strings, each 1 to 32 characters.", "stop")
        o["stop"] = s
    seed = body.get("seed")
    if seed is not None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise BadRequest("seed must be a whole number.", "seed")
        o["seed"] = seed
    return o


class Server:
    """The HTTP server; start() binds host:port (0 picks a free port) and serves in a thread."""

    def __init__(self, gen: Generator, model_id: str, api_key: str, host: str = "127.0.0.1", port: int = 0,
                 log=lambda line: None):
        if len(api_key) < 16:
            raise ValueError("the serve key is missing or too short")
        self.gen, self.model_id, self._key, self.log = gen, model_id, api_key.encode(), log
        outer = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "tunelab-serve"
            sys_version = ""

            def log_message(self, fmt, *args):  # no access log: prompts stay private
                pass

            def do_GET(self):
                if self.path == "/health":
                    return outer._json(self, 200, {"status": "ok", "model": outer.model_id})
                if not outer._authorized(self):
                    return
                if self.path == "/v1/models":
                    return outer._json(self, 200, {"object": "list", "data": [outer._model()]})
                outer._error(self, 404, "invalid_request_error", "Unknown path.", code="not_found")

            def do_POST(self):
                if not outer._authorized(self):
                    return
                if self.path == "/tunelab/score":
                    return outer._score(self)
                if self.path not in ("/v1/chat/completions", "/v1/completions"):
                    return outer._error(self, 404, "invalid_request_error", "Unknown path.", code="not_found")
                try:
                    outer._generate(self, chat=self.path == "/v1/chat/completions")
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.host, self.port = self.httpd.server_address[:2]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)

    def start(self) -> "Server":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    # --- helpers ---------------------------------------------------------------------------
    def _model(self) -> dict:
        return {"id": self.model_id, "object": "model", "created": int(time.time()), "owned_by": "user"}

    def _json(self, h, status: int, obj) -> None:
        b = json.dumps(obj).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(b)))
        h.end_headers()
        h.wfile.write(b)

    def _error(self, h, status: int, typ: str, msg: str, param: str | None = None, code: str | None = None) -> None:
        self._json(h, status, {"error": {"message": msg, "type": typ, "param": param, "code": code}})

    def _authorized(self, h) -> bool:
        got = h.headers.get("Authorization", "")
        if got.startswith("Bearer ") and hmac.compare_digest(got[7:].encode(), self._key):
            return True
        self._error(h, 401, "invalid_request_error", "This inference server answers only the tunelab server that started it.",
                    code="invalid_api_key")
        return False

    def _body(self, h):
        """The request's JSON object, or None once an error is answered."""
        try:
            n = int(h.headers.get("Content-Length") or 0)
        except ValueError:
            n = -1
        if n < 0 or n > MAX_BODY:
            return self._error(h, 413, "invalid_request_error", "The body must have a Content-Length of at most 1 MiB.")
        try:
            body = json.loads(h.rfile.read(n) or b"null")
        except ValueError as e:
            return self._error(h, 400, "invalid_request_error", f"The body is not valid JSON: {e}")
        if not isinstance(body, dict):
            return self._error(h, 400, "invalid_request_error", "The body must be a JSON object.")
        return body

    def _score(self, h) -> None:
        from . import score

        body = self._body(h)
        if body is None:
            return
        try:
            fmt, rows, max_len, answers = score.parse(body)
        except score.ScoreRequestError as e:
            return self._error(h, 400, "invalid_request_error", str(e), code="invalid_value")
        try:
            results = score.score_rows(self.gen, fmt, rows, max_len, answers)
        except Exception as e:  # noqa: BLE001 - logged for the operator, the caller gets a 500
            self.log(f"scoring failed: {type(e).__name__}: {e}")
            return self._error(h, 500, "server_error", "Scoring failed on the inference server.")
        self._json(h, 200, {"rows": results})

    def _generate(self, h, chat: bool) -> None:
        body = self._body(h)
        if body is None:
            return
        try:
            if body.get("model") != self.model_id:
                raise BadRequest(f"This server serves the model `{self.model_id}` only.", "model")
            opts = parse_options(body, self.gen.max_tokens if chat else DEFAULT_COMPLETION_TOKENS, self.gen.max_tokens)
            if chat:
                msgs = body.get("messages")
                if not isinstance(msgs, list) or not msgs or not all(isinstance(m, dict) for m in msgs):
                    raise BadRequest("messages must be a non-empty array of messages.", "messages")
                prompt = self.gen.chat_prompt([{"role": str(m.get("role", "user")), "content": _text(m.get("content", ""))}
                                               for m in msgs])
            else:
                prompt = body.get("prompt")
                if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
                    prompt = prompt[0]
                if not isinstance(prompt, str):
                    raise BadRequest("prompt must be a string (or an array of one string).", "prompt")
        except BadRequest as e:
            return self._error(h, 400, "invalid_request_error", str(e), param=e.param, code="invalid_value")
        stream = body.get("stream") is True
        so = body.get("stream_options")
        include_usage = isinstance(so, dict) and so.get("include_usage") is True
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        created = int(time.time())
        cancelled = threading.Event()
        gen = self.gen.stream(prompt, opts, cancelled)
        if not stream:
            parts = []
            try:
                while True:
                    parts.append(next(gen))
            except StopIteration as done:
                n_prompt, n_out, reason = done.value
            except RuntimeError as e:
                self.log(str(e))
                return self._error(h, 500, "server_error", "Generation failed on the inference server.")
            text = "".join(parts)
            usage = {"prompt_tokens": n_prompt, "completion_tokens": n_out, "total_tokens": n_prompt + n_out}
            if chat:
                choice = {"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                          "logprobs": None, "finish_reason": reason}
                obj = "chat.completion"
            else:
                choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": reason}
                obj = "text_completion"
            return self._json(h, 200, {"id": rid, "object": obj, "created": created, "model": self.model_id,
                                       "system_fingerprint": None, "choices": [choice], "usage": usage})
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Cache-Control", "no-store")
        h.send_header("Connection", "close")
        h.end_headers()
        obj = "chat.completion.chunk" if chat else "text_completion"

        def chunk(choices, usage=None):
            c = {"id": rid, "object": obj, "created": created, "model": self.model_id, "system_fingerprint": None,
                 "choices": choices}
            if include_usage:
                c["usage"] = usage
            h.wfile.write(b"data: " + json.dumps(c).encode() + b"\n\n")
            h.wfile.flush()

        def piece(text=None, reason=None, first=False):
            if chat:
                delta = {"role": "assistant", "content": ""} if first else ({"content": text} if text is not None else {})
                return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}]
            return [{"text": text or "", "index": 0, "logprobs": None, "finish_reason": reason}]

        try:
            if chat:
                chunk(piece(first=True))
            try:
                while True:
                    chunk(piece(next(gen)))
            except StopIteration as done:
                n_prompt, n_out, reason = done.value
            chunk(piece(reason=reason))
            if include_usage:
                chunk([], {"prompt_tokens": n_prompt, "completion_tokens": n_out, "total_tokens": n_prompt + n_out})
            h.wfile.write(b"data: [DONE]\n\n")
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            cancelled.set()  # the client left: the generation stops at its next token
            gen.close()
        except RuntimeError as e:
            self.log(str(e))
            err = {"error": {"message": "Generation failed on the inference server.", "type": "server_error",
                             "param": None, "code": None}}
            h.wfile.write(b"data: " + json.dumps(err).encode() + b"\n\n")
