# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A serving benchmark against an OpenAI-compatible endpoint: a concurrency sweep of streamed chat
completions, per level TTFT / TPOT / end-to-end latency percentiles and throughput, written as JSON and CSV
with an SVG chart drawn here (no plotting library on the control host)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv
import io
import json
import math
import os
import threading
import time

from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError
from ansible_collections.llmops.inference.plugins.module_utils.openai_client import percentile

PERCENTILES = (50, 90, 99)
MAX_CONCURRENCY = 1024
CSV_COLUMNS = (
    "concurrency",
    "requests",
    "succeeded",
    "failed",
    "duration_s",
    "requests_per_s",
    "output_tokens",
    "output_tokens_per_s",
    "ttft_ms_p50",
    "ttft_ms_p90",
    "ttft_ms_p99",
    "tpot_ms_p50",
    "tpot_ms_p90",
    "tpot_ms_p99",
    "e2e_ms_p50",
    "e2e_ms_p90",
    "e2e_ms_p99",
)


def validate_sweep(concurrency, duration_s, requests_per_level):
    """The concurrency levels (ascending, unique, 1..1024) and the bound of each level (seconds or requests)."""
    if not isinstance(concurrency, (list, tuple)) or not concurrency:
        raise LlmopsError("concurrency must list at least one level, such as [1, 2, 4, 8]")
    levels = []
    for value in concurrency:
        try:
            level = int(value)
        except (TypeError, ValueError):
            raise LlmopsError("concurrency level %r is not a whole number" % (value,))
        if not 1 <= level <= MAX_CONCURRENCY:
            raise LlmopsError("concurrency level %d must be between 1 and %d" % (level, MAX_CONCURRENCY))
        if level not in levels:
            levels.append(level)
    if float(duration_s) <= 0 and int(requests_per_level) <= 0:
        raise LlmopsError("each level needs a bound: duration_s above 0 or requests_per_level above 0")
    if float(duration_s) < 0 or int(requests_per_level) < 0:
        raise LlmopsError("duration_s and requests_per_level cannot be negative")
    return sorted(levels)


def _ms(value):
    return None if value is None else round(value * 1000.0, 2)


def summarize(concurrency, outcomes, errors, wall):
    """One level's numbers from its requests' outcomes (ttft_s, total_s, tokens)."""
    ttft = [o["ttft_s"] for o in outcomes]
    e2e = [o["total_s"] for o in outcomes]
    # Time per output token after the first: a request that streamed one token has none.
    tpot = [(o["total_s"] - o["ttft_s"]) / (o["tokens"] - 1) for o in outcomes if o["tokens"] > 1]
    tokens = sum(o["tokens"] for o in outcomes)
    row = {
        "concurrency": concurrency,
        "requests": len(outcomes) + len(errors),
        "succeeded": len(outcomes),
        "failed": len(errors),
        "duration_s": round(wall, 3),
        "requests_per_s": round(len(outcomes) / wall, 3) if wall > 0 else None,
        "output_tokens": tokens,
        "output_tokens_per_s": round(tokens / wall, 2) if wall > 0 else None,
    }
    for name, values in (("ttft", ttft), ("tpot", tpot), ("e2e", e2e)):
        for share in PERCENTILES:
            row["%s_ms_p%d" % (name, share)] = _ms(percentile(values, share / 100.0))
    row["errors"] = errors[:3]
    return row


def run_level(send, concurrency, duration_s=0.0, requests=0):
    """``concurrency`` workers call ``send(index)`` back to back until ``duration_s`` has passed (no new
    request starts after it) or ``requests`` were sent; returns the level's summary."""
    outcomes, errors = [], []
    lock = threading.Lock()
    sent = [0]
    started = time.monotonic()
    deadline = started + float(duration_s) if float(duration_s) > 0 else None

    def worker():
        while True:
            with lock:
                if requests and sent[0] >= requests:
                    return
                if deadline is not None and time.monotonic() >= deadline:
                    return
                index = sent[0]
                sent[0] += 1
            try:
                outcome = send(index)
            except LlmopsError as error:
                with lock:
                    errors.append(error.message)
                continue
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=worker) for _index in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return summarize(concurrency, outcomes, errors, time.monotonic() - started)


def sweep(endpoint, model, prompts, max_tokens, concurrency, duration_s=0.0, requests_per_level=0, warmup=0):
    """The benchmark: ``warmup`` unmeasured requests, then each concurrency level in turn.

    prompts: the user messages, used in turn (several prompts exercise prefix caching and routing)."""
    levels = validate_sweep(concurrency, duration_s, requests_per_level)
    if isinstance(prompts, str):
        prompts = [prompts]
    if not prompts or not all(isinstance(p, str) and p for p in prompts):
        raise LlmopsError("prompts must be non-empty strings")

    def send(index):
        return endpoint.stream_chat(model, prompts[index % len(prompts)], max_tokens)

    for index in range(int(warmup)):
        send(index)
    started = time.time()
    rows = [run_level(send, level, duration_s, int(requests_per_level)) for level in levels]
    return {
        "model": model,
        "base_url": endpoint.base_url,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "max_tokens": int(max_tokens),
        "prompts": len(prompts),
        "duration_s_per_level": float(duration_s),
        "requests_per_level": int(requests_per_level),
        "levels": rows,
    }


def results_csv(result):
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in result["levels"]:
        writer.writerow({key: ("" if row.get(key) is None else row[key]) for key in CSV_COLUMNS})
    return out.getvalue()


def _escape(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _nice_max(value):
    """A round axis top at or above ``value`` (1, 2, 2.5, 5 x 10^n)."""
    if not value or value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def _panel(x0, y0, width, height, title, concurrency, series, unit):
    """One chart: concurrency (log2-spaced, as swept) across, ``series`` [(name, colour, values)] up."""
    values = [v for _name, _colour, vals in series for v in vals if v is not None]
    top = _nice_max(max(values) if values else 0)
    parts = [
        '<text x="%d" y="%d" font-size="14" font-weight="bold">%s</text>' % (x0, y0 - 10, _escape(title)),
        '<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>' % (x0, y0, width, height),
    ]
    for tick in range(5):
        value = top * tick / 4.0
        y = y0 + height - height * tick / 4.0
        parts.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (x0, y, x0 + width, y))
        parts.append(
            '<text x="%d" y="%.1f" font-size="11" text-anchor="end">%s</text>' % (x0 - 6, y + 4, _escape("%g" % value))
        )
    count = len(concurrency)

    def x_of(i):
        return x0 + (width * (i + 0.5) / count)

    for i, level in enumerate(concurrency):
        parts.append(
            '<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%d</text>' % (x_of(i), y0 + height + 16, level)
        )
    parts.append(
        '<text x="%d" y="%d" font-size="11" text-anchor="middle">concurrency</text>'
        % (x0 + width // 2, y0 + height + 32)
    )
    parts.append(
        '<text x="%d" y="%d" font-size="11" transform="rotate(-90 %d %d)" text-anchor="middle">%s</text>'
        % (x0 - 44, y0 + height // 2, x0 - 44, y0 + height // 2, _escape(unit))
    )
    for n, (name, colour, vals) in enumerate(series):
        points = [(x_of(i), y0 + height - height * v / top) for i, v in enumerate(vals) if v is not None]
        if len(points) > 1:
            parts.append(
                '<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>'
                % (colour, " ".join("%.1f,%.1f" % p for p in points))
            )
        for x, y in points:
            parts.append('<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>' % (x, y, colour))
        legend_y = y0 + 14 + 14 * n
        parts.append('<rect x="%d" y="%d" width="10" height="3" fill="%s"/>' % (x0 + 8, legend_y - 4, colour))
        parts.append('<text x="%d" y="%d" font-size="11">%s</text>' % (x0 + 22, legend_y, _escape(name)))
    return parts


def results_svg(result, title=""):
    """Two charts side by side: output tokens/s and requests/s; TTFT and TPOT percentiles (ms)."""
    rows = result["levels"]
    concurrency = [row["concurrency"] for row in rows]
    width, height = 960, 400
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
        'font-family="sans-serif">' % (width, height, width, height),
        '<rect width="100%" height="100%" fill="white"/>',
        '<text x="20" y="24" font-size="15">%s</text>'
        % _escape(title or "%s at %s" % (result.get("model", ""), result.get("base_url", ""))),
    ]
    parts += _panel(
        80,
        70,
        360,
        260,
        "throughput",
        concurrency,
        [
            ("output tokens/s", "#1f77b4", [row["output_tokens_per_s"] for row in rows]),
            (
                "requests/s x 100",
                "#2ca02c",
                [None if row["requests_per_s"] is None else row["requests_per_s"] * 100 for row in rows],
            ),
        ],
        "per second",
    )
    parts += _panel(
        560,
        70,
        360,
        260,
        "latency",
        concurrency,
        [
            ("TTFT p50", "#ff7f0e", [row["ttft_ms_p50"] for row in rows]),
            ("TTFT p99", "#d62728", [row["ttft_ms_p99"] for row in rows]),
            ("TPOT p50", "#9467bd", [row["tpot_ms_p50"] for row in rows]),
            ("TPOT p99", "#8c564b", [row["tpot_ms_p99"] for row in rows]),
        ],
        "milliseconds",
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write_results(result, directory, name):
    """results JSON, CSV and SVG under ``directory`` as <name>.json/.csv/.svg; returns their paths."""
    if not name or os.sep in name or name.startswith("."):
        raise LlmopsError("the results name %r must be a plain file name" % (name,))
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory)
        paths = {kind: os.path.join(directory, "%s.%s" % (name, kind)) for kind in ("json", "csv", "svg")}
        contents = {
            "json": json.dumps(result, indent=2, sort_keys=True) + "\n",
            "csv": results_csv(result),
            "svg": results_svg(result),
        }
        for kind, path in paths.items():
            with open(path, "w") as handle:
                handle.write(contents[kind])
    except OSError as error:
        raise LlmopsError("cannot write the benchmark results under %s: %s" % (directory, error))
    return paths


def _pair(row, name):
    low, high = row["%s_ms_p50" % name], row["%s_ms_p99" % name]
    return "%s/%s" % ("-" if low is None else "%g" % low, "-" if high is None else "%g" % high)


def table(result):
    """The sweep as text lines (what the playbook prints)."""
    header = "concurrency  ok/fail  req/s   out tok/s  TTFT p50/p99 ms   TPOT p50/p99 ms   E2E p50/p99 ms"
    lines = [header]
    for row in result["levels"]:
        lines.append(
            "%11d  %3d/%-4d %-7s %-10s %-17s %-17s %s"
            % (
                row["concurrency"],
                row["succeeded"],
                row["failed"],
                row["requests_per_s"],
                row["output_tokens_per_s"],
                _pair(row, "ttft"),
                _pair(row, "tpot"),
                _pair(row, "e2e"),
            )
        )
    return lines
