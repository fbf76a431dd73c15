# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""All-reduce bandwidth sweeps: parse nccl-tests output, read NCCL_DEBUG=INFO, judge the result.

One parser serves both tools nccl_check can run: nccl-tests' ``all_reduce_perf`` and the
PyTorch fallback in ``nccl_torch_sweep``, which prints rows in the same layout
(``writeBenchmarkLinePreamble``/``writeBenchmarkLineBody`` in nccl-tests' src/util.cu).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import itertools
import os
import re
import subprocess
import time

from ansible_collections.llmops.inference.plugins.module_utils import nccl_log
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

# Expected all-reduce bus bandwidth (GB/s) at large messages (>= 1 GiB), NVLink multicast (NVLS) off.
# Starting values, to be overridden per site with `expected_table` or `expected_busbw_gbps`.
# `model` matches as a case-insensitive substring of the nvidia-smi name; `gpus` None = any count.
DEFAULT_EXPECTED_BUSBW = [
    {
        "model": "H200",
        "gpus": 2,
        "link": "nvlink",
        "busbw_gbps": 340.0,
        "source": "measured: all_reduce_perf 4 GiB on 2 x H200 SXM, NCCL_NVLS_ENABLE=0 (docs/node_health.md)",
    },
    {
        "model": "H200",
        "gpus": None,
        "link": "nvlink",
        "busbw_gbps": 360.0,
        "source": "NVLink4 450 GB/s per direction x ~0.8 ring efficiency",
    },
    {
        "model": "H100",
        "gpus": 2,
        "link": "nvlink",
        "busbw_gbps": 340.0,
        "source": "same NVLink4 fabric as H200 SXM (measured H200 value)",
    },
    {
        "model": "H100",
        "gpus": None,
        "link": "nvlink",
        "busbw_gbps": 360.0,
        "source": "NVLink4 450 GB/s per direction x ~0.8 ring efficiency",
    },
    {
        "model": "H800",
        "gpus": None,
        "link": "nvlink",
        "busbw_gbps": 160.0,
        "source": "H800 NVLink 400 GB/s bidirectional = 200 per direction x ~0.8",
    },
    {
        "model": "A800",
        "gpus": None,
        "link": "nvlink",
        "busbw_gbps": 155.0,
        "source": "A800 NVLink 400 GB/s bidirectional = 200 per direction x ~0.78",
    },
    {
        "model": "A100",
        "gpus": None,
        "link": "nvlink",
        "busbw_gbps": 230.0,
        "source": "NVLink3 300 GB/s per direction x ~0.78 ring efficiency",
    },
    {
        "model": "",
        "gpus": None,
        "link": "pcie",
        "busbw_gbps": 18.0,
        "source": "PCIe Gen4 x16 ~25 GB/s per direction x ~0.7 through the host bridge",
    },
]

# Large messages are where bus bandwidth plateaus; small ones measure latency.
DEFAULT_JUDGE_MIN_BYTES = 1 << 30

_ROW_RE = re.compile(r"^\s*\d+\s+\d+\s+\S+\s+\S+\s+-?\d+\s")
_DEVICE_RE = re.compile(
    r"#\s+Rank\s+(?P<rank>\d+)\s+Group\s+\d+\s+Pid\s+\d+\s+on\s+(?P<host>\S+)\s+device\s+(?P<device>\d+)\s+"
    r"\[(?P<busid>[^\]]+)\]\s+(?P<name>.+?)\s*$"
)


def _number(token):
    """nccl-tests prints N/A for #wrong when validation is off (-c 0)."""
    if token in ("N/A", "n/a"):
        return None
    return float(token)


def parse_all_reduce_perf(text):
    """Parse the table all_reduce_perf prints (and the torch fallback imitates).

    Returns ``{"rows": [...], "avg_busbw_gbps", "out_of_bounds", "devices"}``; each row has
    size_bytes, count, type, redop, root and out_of_place/in_place dicts with time_us, algbw_gbps,
    busbw_gbps, wrong. Raises LlmopsError when no row can be read.
    """
    rows = []
    devices = []
    avg_busbw = None
    out_of_bounds = None
    for line in text.splitlines():
        device = _DEVICE_RE.match(line)
        if device:
            devices.append(
                {
                    "rank": int(device.group("rank")),
                    "host": device.group("host"),
                    "device": int(device.group("device")),
                    "bus_id": device.group("busid"),
                    "name": device.group("name"),
                }
            )
            continue
        if line.startswith("#"):
            if "Avg bus bandwidth" in line:
                avg_busbw = float(line.split(":", 1)[1].split()[0])
            elif "Out of bounds values" in line:
                out_of_bounds = int(line.split(":", 1)[1].split()[0])
            continue
        if not _ROW_RE.match(line):
            continue
        fields = line.split()
        # 13 fields normally; 21 with per-iteration timing (-R / per_iter_timing); timestamps may follow.
        width = 8 if len(fields) >= 21 and _looks_numeric(fields[9:13]) else 4
        try:
            out_of_place = fields[5:9]
            in_place = fields[5 + width : 9 + width]
            row = {
                "size_bytes": int(fields[0]),
                "count": int(fields[1]),
                "type": fields[2],
                "redop": fields[3],
                "root": int(fields[4]),
                "out_of_place": _side(out_of_place),
                "in_place": _side(in_place),
            }
        except (ValueError, IndexError):
            raise LlmopsError("Cannot read this all_reduce_perf row: %r" % line)
        rows.append(row)
    if not rows:
        raise LlmopsError("No result rows in the all-reduce output; the tool printed: %s" % _tail(text))
    return {"rows": rows, "avg_busbw_gbps": avg_busbw, "out_of_bounds": out_of_bounds, "devices": devices}


def _looks_numeric(tokens):
    try:
        [float(t) for t in tokens if t != "N/A"]
        return True
    except ValueError:
        return False


def _side(fields):
    """One placement's columns; an op without an in-place form (all-to-all in the torch sweep) prints N/A."""
    if len(fields) < 4:
        raise IndexError("short row")
    return {
        "time_us": _number(fields[0]),
        "algbw_gbps": _number(fields[1]),
        "busbw_gbps": _number(fields[2]),
        "wrong": _number(fields[3]),
    }


_SWEEP_BACKEND_RE = re.compile(r"^# nccl_torch_sweep op \w+ backend (?P<backend>\w+)", re.MULTILINE)


def sweep_backend(text):
    """The collective backend the torch sweep names in its header (nccl, hccl, gloo), or None."""
    match = _SWEEP_BACKEND_RE.search(text or "")
    return match.group("backend") if match else None


_SWEEP_OP_RE = re.compile(r"^# nccl_torch_sweep op (?P<op>\w+)", re.MULTILINE)


def split_sweeps(text):
    """[(op, text)] for each sweep in one output: the torch sweep starts each with "# nccl_torch_sweep op <op>".

    Output without that line (all_reduce_perf, older sweeps) is one all-reduce.
    """
    starts = list(_SWEEP_OP_RE.finditer(text or ""))
    if not starts:
        return [("all_reduce", text or "")]
    ends = [match.start() for match in starts[1:]] + [len(text)]
    return [(match.group("op"), text[match.start() : end]) for match, end in zip(starts, ends)]


def _tail(text, limit=800):
    text = (text or "").strip()
    return text[-limit:] if text else "(nothing)"


def parse_nccl_debug(text):
    """Read NCCL_DEBUG=INFO lines: NCCL version, network plugin, transports each channel uses.

    A channel "via NET/Socket" is traffic on TCP sockets: the socket fallback that costs an
    order of magnitude of bandwidth. "Using network Socket" alone only names the plugin that
    NCCL would use between hosts. The channel parsing is nccl_log's (one parser for sweeps, user
    logs and the serving pre-flight); `transport` carries its full report.
    """
    return debug_summary(nccl_log.parse_nccl_log(text))


def debug_summary(parsed):
    """parse_nccl_debug's answer from an already parsed log (nccl_log.parse_nccl_log)."""
    transports = set()
    for channel in parsed["channels"]:
        # P2P/CUMEM/read -> P2P/CUMEM, SHM/direct/direct -> SHM, NET/IB/0/GDRDMA -> NET/IB
        parts = channel["transport"].split("/")
        transports.add("/".join(parts[:2]) if parts[0] in ("P2P", "NET") else parts[0])
    return {
        "nccl_version": parsed["nccl_version"],
        "network": parsed["network"],
        "transports": sorted(transports),
        "socket_channels": sorted(
            {"%d->%d" % (c["src"], c["dst"]) for c in parsed["channels"] if c["kind"] == "socket"}
        ),
        "transport": nccl_log.transport_report(parsed),
    }


def lookup_expected(model, gpu_count, link, table=None):
    """First entry of ``table`` + DEFAULT_EXPECTED_BUSBW matching model substring, count and link."""
    entries = list(table or []) + DEFAULT_EXPECTED_BUSBW
    for entry in entries:
        if not isinstance(entry, dict) or "busbw_gbps" not in entry:
            raise LlmopsError("expected_table entries need model, gpus, link and busbw_gbps; got %r" % (entry,))
        if str(entry.get("model", "")).lower() not in (model or "").lower():
            continue
        if entry.get("gpus") not in (None, gpu_count):
            continue
        if entry.get("link") not in (None, link):
            continue
        return float(entry["busbw_gbps"]), entry
    return None, None


def peak_busbw(parsed, min_bytes=0):
    """Best busbw (GB/s) over both placements among rows of at least min_bytes (all rows if none)."""
    rows = [r for r in parsed["rows"] if r["size_bytes"] >= min_bytes] or parsed["rows"]
    return max(
        side["busbw_gbps"]
        for r in rows
        for side in (r["out_of_place"], r["in_place"])
        if side["busbw_gbps"] is not None
    )


def judge(
    parsed, debug, expected_busbw, tolerance, min_bytes=DEFAULT_JUDGE_MIN_BYTES, label="all GPUs", link_type=None
):
    """Return (passed, reasons, peak). Fails on slow busbw, wrong values, socket traffic, NVLink unused."""
    reasons = []
    if not 0 <= tolerance < 1:
        raise LlmopsError("tolerance must be a fraction in [0, 1), got %r" % tolerance)
    peak = peak_busbw(parsed, min_bytes)
    if expected_busbw is not None:
        floor = expected_busbw * (1 - tolerance)
        if peak < floor:
            reasons.append(
                "%s: peak busbw %.1f GB/s is below %.1f GB/s (expected %.1f GB/s - %d%%), a %.0f%% shortfall"
                % (
                    label,
                    peak,
                    floor,
                    expected_busbw,
                    round(tolerance * 100),
                    100.0 * (expected_busbw - peak) / expected_busbw,
                )
            )
    for row in parsed["rows"]:
        for side in ("out_of_place", "in_place"):
            wrong = row[side]["wrong"]
            if wrong:
                reasons.append(
                    "%s: %d wrong values at %d bytes (%s)" % (label, wrong, row["size_bytes"], side.replace("_", "-"))
                )
    if parsed.get("out_of_bounds"):
        reasons.append("%s: all_reduce_perf reports %d out-of-bounds values" % (label, parsed["out_of_bounds"]))
    if debug and debug.get("socket_channels"):
        reasons.append(
            "%s: NCCL fell back to TCP sockets (NET/Socket) on channels %s"
            % (label, ", ".join(debug["socket_channels"]))
        )
    if (
        link_type == "nvlink"
        and debug
        and debug.get("transports")
        and not any(t.startswith("P2P") for t in debug["transports"])
    ):
        reasons.append(
            "%s: GPUs are NVLink-connected but NCCL channels run via %s, not P2P (NCCL_P2P_DISABLE "
            "set, or P2P unavailable)" % (label, ", ".join(debug["transports"]))
        )
    return not reasons, reasons, peak


def gpu_pairs(indexes):
    """All unordered GPU pairs, for the pairwise sweep that finds one slow link."""
    return [list(pair) for pair in itertools.combinations(indexes, 2)]


def all_reduce_perf_command(binary, min_bytes, max_bytes, factor, gpus, iters, warmup):
    return [
        binary,
        "-b",
        str(min_bytes),
        "-e",
        str(max_bytes),
        "-f",
        str(factor),
        "-g",
        str(gpus),
        "-n",
        str(iters),
        "-w",
        str(warmup),
    ]


def run_sweep(command, env, timeout):
    """Run one sweep, return (stdout+stderr text, seconds). Raises LlmopsError on failure."""
    started = time.time()
    try:
        proc = subprocess.run(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, check=False
        )
    except OSError as exc:
        raise LlmopsError("Cannot run %s: %s" % (command[0], exc))
    except subprocess.TimeoutExpired:
        raise LlmopsError(
            "%s did not finish within %d s; raise timeout or lower max_bytes" % (os.path.basename(command[0]), timeout)
        )
    text = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise LlmopsError("%s exited with %d: %s" % (os.path.basename(command[0]), proc.returncode, _tail(text)))
    return text, time.time() - started


def sweep_env(base_env, nccl_env, visible_devices=None):
    """Environment of a sweep: the host env, then the pods' NCCL env, NVLS off unless set, INFO logs."""
    env = dict(base_env)
    env.update({str(k): str(v) for k, v in (nccl_env or {}).items()})
    # NVLink multicast stays off unless the caller's env says otherwise; the serving pods run without it.
    env.setdefault("NCCL_NVLS_ENABLE", "0")
    env["NCCL_DEBUG"] = "INFO"
    if visible_devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in visible_devices)
    return env


_SIZE_RE = re.compile(r"^\s*(?P<num>\d+)\s*(?P<unit>[KMGT]?)i?B?\s*$", re.IGNORECASE)


def parse_size(value):
    """8, '1M', '4G' (powers of 1024, as all_reduce_perf reads -b/-e) -> bytes."""
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE_RE.match(str(value))
        if not match:
            raise LlmopsError("Cannot read %r as a size: use bytes or a number with K, M, G or T" % (value,))
        size = int(match.group("num")) * 1024 ** "_KMGT".index((match.group("unit") or "_").upper())
    if size < 1:
        raise LlmopsError("Sizes must be at least 1 byte, got %r" % (value,))
    return size
