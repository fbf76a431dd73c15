# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small OpenAI-compatible client (stdlib only) for smoke and load tests of the served endpoint."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import threading
import time

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.six.moves.urllib.parse import urlparse
from ansible.module_utils.urls import Request, make_context

from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError


class Endpoint(object):
    def __init__(self, base_url, api_key="", timeout=120, validate_certs=True):
        parsed = urlparse(base_url) if isinstance(base_url, str) else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise LlmopsError(
                "base_url=%r is not an http(s) URL: give the endpoint such as http://deepseek.llmops.svc:8000/v1"
                % (base_url,)
            )
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.api_key = api_key
        self.timeout = timeout
        self.validate_certs = validate_certs
        # One TLS context for every request: open_url builds one per call, and loading the CA store took
        # 0.13 s of CPU per request on the test machine, added to every measured TTFT under load.
        # (Request.open builds one whenever none is given, for http URLs too.)
        self._context = make_context(validate_certs=validate_certs)

    def _open(self, path, body=None):
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.api_key:
            headers["Authorization"] = "Bearer " + self.api_key
        data = json.dumps(body).encode("utf-8") if body is not None else None
        try:
            return Request().open(
                "POST" if data else "GET",
                self.base_url + path,
                data=data,
                headers=headers,
                timeout=self.timeout,
                validate_certs=self.validate_certs,
                context=self._context,
            )
        except HTTPError as error:
            detail = error.read()[:300].decode("utf-8", "replace")
            hint = " (the API key was refused)" if error.code in (401, 403) else ""
            raise LlmopsError(
                "%s %s answered HTTP %d%s: %s" % ("POST" if data else "GET", path, error.code, hint, detail)
            )
        except (URLError, OSError) as error:
            raise LlmopsError("cannot reach %s%s: %s" % (self.base_url, path, error))

    def _json(self, path, response):
        """The response body as a JSON object; a clear error for an HTML page (a proxy, a login page) or junk."""
        body = response.read().decode("utf-8", "replace")
        try:
            payload = json.loads(body)
        except ValueError:
            raise LlmopsError(
                "%s%s did not answer JSON (is base_url the engine's OpenAI API and not a proxy or web page?): %s"
                % (self.base_url, path, body[:200])
            )
        if not isinstance(payload, dict):
            raise LlmopsError(
                "%s%s answered %s where an object was expected: %s"
                % (self.base_url, path, type(payload).__name__, body[:200])
            )
        return payload

    def models(self):
        with self._open("/models") as response:
            data = self._json("/models", response).get("data") or []
        if not isinstance(data, list) or not all(isinstance(item, dict) and "id" in item for item in data):
            raise LlmopsError("%s/models answered a model list without ids: %r" % (self.base_url, data))
        return [item["id"] for item in data]

    def chat(self, model, prompt, max_tokens):
        """One non-streaming chat completion: (answer, seconds, usage)."""
        started = time.monotonic()
        body = {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "stream": False,
        }
        with self._open("/chat/completions", body) as response:
            payload = self._json("/chat/completions", response)
        elapsed = time.monotonic() - started
        choices = payload.get("choices")
        if (
            not isinstance(choices, list)
            or not choices
            or not isinstance(choices[0], dict)
            or not isinstance(choices[0].get("message"), dict)
        ):
            raise LlmopsError(
                "%s/chat/completions answered no choice with a message: %s" % (self.base_url, json.dumps(payload)[:300])
            )
        message = choices[0]["message"]
        answer = message.get("content") or message.get("reasoning_content") or ""
        return answer, elapsed, payload.get("usage") or {}

    def stream_chat(self, model, prompt, max_tokens):
        """One streamed completion: time to first token, total time and completion tokens."""
        started = time.monotonic()
        first = None
        chunks = 0
        usage_tokens = None
        body = {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        with self._open("/chat/completions", body) as response:
            for raw in response:
                line = raw.decode("utf-8").strip()
                if not line.startswith("data:"):
                    continue
                data = line[len("data:") :].strip()
                if data == "[DONE]":
                    break
                try:
                    event = json.loads(data)
                except ValueError:
                    raise LlmopsError(
                        "%s/chat/completions streamed a line that is not JSON: %s" % (self.base_url, data[:200])
                    )
                if not isinstance(event, dict):
                    continue
                if event.get("usage"):
                    usage_tokens = event["usage"].get("completion_tokens")
                for choice in event.get("choices") or []:
                    delta = choice.get("delta") or {}
                    if delta.get("content") or delta.get("reasoning_content"):
                        if first is None:
                            first = time.monotonic() - started
                        chunks += 1
        total = time.monotonic() - started
        return {
            "ttft_s": first if first is not None else total,
            "total_s": total,
            "tokens": usage_tokens if usage_tokens is not None else chunks,
        }


def percentile(values, share):
    """The value at ``share`` (0..1) of ``values`` (nearest rank); None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    index = min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))
    return ordered[index]


def load_test(endpoint, model, prompt, max_tokens, requests, concurrency):
    """A bounded load test: ``requests`` streamed completions over ``concurrency`` threads."""
    if requests < 1 or concurrency < 1:
        raise LlmopsError("load test needs at least one request and one thread")
    results, errors = [], []
    lock = threading.Lock()
    remaining = [requests]

    def worker():
        while True:
            with lock:
                if remaining[0] == 0:
                    return
                remaining[0] -= 1
            try:
                outcome = endpoint.stream_chat(model, prompt, max_tokens)
                with lock:
                    results.append(outcome)
            except LlmopsError as error:
                with lock:
                    errors.append(error.message)

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _index in range(min(concurrency, requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    ttfts = [r["ttft_s"] for r in results]
    tokens = sum(r["tokens"] for r in results)
    per_request = [r["tokens"] / (r["total_s"] - r["ttft_s"]) for r in results if r["total_s"] > r["ttft_s"]]
    return {
        "requests": requests,
        "concurrency": concurrency,
        "succeeded": len(results),
        "failed": len(errors),
        "errors": errors[:5],
        "wall_s": round(wall, 3),
        "ttft_p50_s": _round(percentile(ttfts, 0.5)),
        "ttft_p95_s": _round(percentile(ttfts, 0.95)),
        "output_tokens": tokens,
        "output_tokens_per_s": round(tokens / wall, 2) if wall else None,
        "decode_tokens_per_s_per_request": _round(sum(per_request) / len(per_request) if per_request else None),
    }


def _round(value):
    return None if value is None else round(value, 3)
