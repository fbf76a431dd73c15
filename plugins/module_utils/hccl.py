# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ascend node pre-flight: NPU network health, link state and CANN's HCCL all-reduce test, judged in one place.

Output shapes (sources in tests/unit/fixtures/ascend/README.md):
  hccn_tool -i N -net_health -g   "net health status: Success" (hccn_tool prints one of the strings of its
                                  g_net_health_status table: Success, Socket fail, Receive timeout, Unreachable,
                                  Time exceeded, Fault, Init, Thread error, Detect ip set, Unknown)
  hccn_tool -i N -link -g         "link status: UP" (parsed by ascend.parse_link)
  hccl_test all_reduce_test       "the minbytes is 8192, maxbytes is ..." then the table
                                  "data_size(Bytes): | aveg_time(us): | alg_bandwidth(GB/s): | check_result:"
                                  and one "%-17llu | %-14.2f | %-20.5f | success|failed|NULL" row per size;
                                  a rank whose result check fails prints "rank id 3, check result failed"
                                  (older CANN) or "local rank_id 3, check result failed, <row> | failed".

hccl_test prints algorithm bandwidth (data size / time). The judge works on bus bandwidth, as nccl-tests
and nccl_check do: for all-reduce busbw = algbw x 2(n-1)/n (n ranks), so an expected value means the same
on NVIDIA and Ascend hosts and the rows are judged by nccl_tests.judge, the code nccl_check uses.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.llmops.inference.plugins.module_utils import ascend, nccl_tests
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

# The strings hccn_tool prints for -net_health -g (index = the driver's DSMI_NET_HEALTH_STATUS value).
NET_HEALTH_STATUSES = (
    "Success",
    "Socket fail",
    "Receive timeout",
    "Unreachable",
    "Time exceeded",
    "Fault",
    "Init",
    "Thread error",
    "Detect ip set",
    "Unknown",
)

# What each status means for the NPU's RoCE port and what to do about it (N = the device id).
NET_HEALTH_FIXES = {
    "Socket fail": "the probe socket could not be opened: check the NPU address (hccn_tool -i {n} -ip -g) and "
    "that the driver is loaded",
    "Receive timeout": "the detect IP does not answer: check hccn_tool -i {n} -netdetect -g is the switch "
    "gateway in the NPU's subnet, hccn_tool -i {n} -gateway -g, the cable and the switch port",
    "Unreachable": "no route to the detect IP: set a gateway in the NPU's subnet (hccn_tool -i {n} -gateway -s "
    "gateway <switch>) and check the switch port's VLAN",
    "Time exceeded": "the probe's TTL ran out (routing loop): check the switch routing for the NPU subnet",
    "Fault": "the port is faulted or the link is down: check the cable or optical module and the switch port "
    "(hccn_tool -i {n} -link -g, -optical -g)",
    "Init": "the probe has not finished since the address was set: wait a few seconds and check again",
    "Thread error": "the driver's probe thread failed: restart the NPU driver services or reboot the host",
    "Detect ip set": "no detect IP is configured: set one (hccn_tool -i {n} -netdetect -s address <gateway>)",
    "Unknown": "hccn_tool reports an unknown state: check the driver version and the device log (msnpureport)",
}

LINK_FIX = "check the cable or optical module and the switch port; hccn_tool -i {n} -link -g must say UP"

# Expected all-reduce bus bandwidth (GB/s) of large messages (>= 1 GiB) inside one Ascend node, the
# counterpart of nccl_tests.DEFAULT_EXPECTED_BUSBW. `model` matches as a case-insensitive substring of
# npu-smi's name (910B1..910B4); `gpus` is the number of NPUs swept. Starting values: override per site with
# `expected_table` or `expected_busbw_gbps`.
DEFAULT_EXPECTED_BUSBW = [
    {
        "model": "910B",
        "gpus": 8,
        "link": "hccs",
        "busbw_gbps": 100.0,
        "source": (
            "starting value, not a measurement: about a quarter of the 392 GB/s aggregate HCCS bandwidth public "
            "notes give an 8 x 910B full mesh (7 links x 56 GB/s), low on purpose so a healthy Atlas 800 A2 "
            "passes; set the site's acceptance number in expected_table"
        ),
    },
]

DEFAULT_HCCL_TEST_PATH = "/usr/local/Ascend/ascend-toolkit/latest/tools/hccl_test/bin"

_STATUS_RE = re.compile(r"net health status\s*:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
_ROW_RE = re.compile(r"^\s*(\d+)\s*\|\s*([\d.]+|-?nan|inf)\s*\|\s*([\d.]+|-?nan|inf)\s*\|\s*(\w+)\s*$", re.IGNORECASE)
_RANK_FAILED_RE = re.compile(r"(?:local )?rank[ _]id\s+(\d+),\s*check result failed(?:,\s*(\d+))?", re.IGNORECASE)
_HEADER_RE = re.compile(r"data_size\(Bytes\):\s*\|\s*aveg?_time\(us\):\s*\|\s*alg_bandwidth\(GB/s\):")


# ---------------------------------------------------------------- parsing


def parse_net_health(text):
    """The status of ``hccn_tool -i N -net_health -g`` ("Success", "Receive timeout", ...)."""
    match = _STATUS_RE.search(text or "")
    if not match:
        raise LlmopsError("Cannot read hccn_tool -net_health -g output: %r" % (text or "")[:200])
    status = match.group(1)
    # Newer drivers print the name; some wrappers print the number of the same table.
    if status.isdigit():
        index = int(status)
        status = NET_HEALTH_STATUSES[index] if index < len(NET_HEALTH_STATUSES) else "Unknown"
    return status


def parse_all_reduce_test(text):
    """Rows of hccl_test's all_reduce_test: size_bytes, time_us, algbw_gbps, check_result (success/failed/NULL).

    Returns {"rows", "failed_ranks": {size or None: [ranks]}, "settings"}; raises LlmopsError when no row is
    found (the run failed before the table: its last lines are in the message).
    """
    rows = []
    failed = {}
    settings = None
    header = False
    pending_ranks = []
    for line in (text or "").splitlines():
        if line.startswith("the minbytes is"):
            settings = line.strip()
            continue
        if _HEADER_RE.search(line):
            header = True
            continue
        rank = _RANK_FAILED_RE.search(line)
        if rank:
            # Older CANN prints the rank line before its size's row; newer CANN puts the size on the line.
            if rank.group(2):
                failed.setdefault(int(rank.group(2)), []).append(int(rank.group(1)))
            else:
                pending_ranks.append(int(rank.group(1)))
            continue
        match = _ROW_RE.match(line)
        if not match or not header:
            continue
        try:
            row = {
                "size_bytes": int(match.group(1)),
                "time_us": float(match.group(2)),
                "algbw_gbps": float(match.group(3)),
                "check_result": match.group(4),
            }
        except ValueError:
            raise LlmopsError("Cannot read this all_reduce_test row: %r" % line)
        if row["check_result"].lower() not in ("success", "failed", "null"):
            raise LlmopsError("Unknown check_result %r in this all_reduce_test row: %r" % (row["check_result"], line))
        if pending_ranks:
            failed.setdefault(row["size_bytes"], []).extend(pending_ranks)
            pending_ranks = []
        rows.append(row)
    if pending_ranks:
        failed.setdefault(None, []).extend(pending_ranks)
    if not rows:
        raise LlmopsError("No result rows in the hccl_test output; it printed: %s" % _tail(text))
    return {"rows": rows, "failed_ranks": failed, "settings": settings}


def _tail(text, lines=6):
    kept = [line for line in (text or "").strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:])[-800:] if kept else "(nothing)"


def bus_factor(ranks):
    """all-reduce bus bandwidth / algorithm bandwidth = 2(n-1)/n (nccl-tests' PERFORMANCE.md)."""
    if not isinstance(ranks, int) or ranks < 1:
        raise LlmopsError("The number of ranks must be a positive integer, got %r" % (ranks,))
    return 2.0 * (ranks - 1) / ranks


def with_busbw(parsed, ranks):
    """The rows with busbw_gbps added (algbw x 2(n-1)/n)."""
    factor = bus_factor(ranks)
    return [dict(row, busbw_gbps=round(row["algbw_gbps"] * factor, 5)) for row in parsed["rows"]]


def _nccl_shape(rows):
    """The rows in nccl_tests' shape, so nccl_tests.judge (nccl_check's judge) decides the bandwidth."""
    shaped = []
    for row in rows:
        side = {"time_us": row["time_us"], "algbw_gbps": row["algbw_gbps"], "busbw_gbps": row["busbw_gbps"]}
        side["wrong"] = None  # hccl_test reports correctness per size as check_result, judged below
        shaped.append({"size_bytes": row["size_bytes"], "out_of_place": side, "in_place": side})
    return {"rows": shaped}


# ---------------------------------------------------------------- judging


def lookup_expected(model, npus, table=None):
    """(busbw, entry) from the site's table, then DEFAULT_EXPECTED_BUSBW; (None, None) when none matches."""
    return nccl_tests.lookup_expected(model, npus, "hccs", list(table or []) + DEFAULT_EXPECTED_BUSBW)


def judge_health(health, require_detect_ip=True):
    """Reasons for every NPU whose net_health is not Success or whose link is not UP, with the fix."""
    reasons = []
    for entry in health:
        n = entry["device"]
        status = entry.get("net_health")
        if status is not None and status != "Success":
            if status == "Detect ip set" and not require_detect_ip:
                continue
            fix = NET_HEALTH_FIXES.get(status, NET_HEALTH_FIXES["Unknown"]).format(n=n)
            reasons.append("NPU %d net_health is %s: %s" % (n, status, fix))
        link = entry.get("link")
        if link is not None and link != "UP":
            reasons.append("NPU %d link is %s: %s" % (n, link, LINK_FIX.format(n=n)))
    return reasons


def judge(health, parsed=None, ranks=None, expected_busbw=None, tolerance=0.1, min_bytes=None, require_detect_ip=True):
    """Return (passed, reasons, peak busbw or None).

    health: [{"device", "net_health", "link"}] (empty when only a test output is judged); parsed: the
    parse_all_reduce_test result or None when the bandwidth test did not run; ranks: the number of NPUs the
    test ran on. Bandwidth is judged on bus bandwidth (see the module docstring) by nccl_tests.judge.
    """
    reasons = judge_health(health, require_detect_ip)
    peak = None
    if parsed is not None:
        rows = with_busbw(parsed, ranks)
        min_bytes = nccl_tests.DEFAULT_JUDGE_MIN_BYTES if min_bytes is None else min_bytes
        label = "%d NPUs" % ranks
        _ok, why, peak = nccl_tests.judge(_nccl_shape(rows), None, expected_busbw, tolerance, min_bytes, label=label)
        largest = max(row["size_bytes"] for row in rows)
        if why and largest < min_bytes:
            why = [
                "%s (the largest size run, %d bytes, is below judge_min_bytes %d: the peak is a small-message "
                "figure; run up to max_bytes 1G)" % (reason, largest, min_bytes)
                for reason in why
            ]
        reasons.extend(why)
        failed_sizes = {row["size_bytes"] for row in rows if row["check_result"].lower() == "failed"}
        for size in sorted(failed_sizes):
            ranks_failed = parsed["failed_ranks"].get(size, [])
            reasons.append(
                "%s: the all-reduce result check failed at %d bytes%s (wrong data: a faulty NPU or HCCS link)"
                % (label, size, " on rank " + ", ".join(map(str, ranks_failed)) if ranks_failed else "")
            )
        # Newer CANN marks a size failed only for rank 0's own check; other ranks print their own line.
        for size, ranks_failed in sorted(parsed["failed_ranks"].items(), key=lambda kv: kv[0] or 0):
            if size not in failed_sizes:
                reasons.append(
                    "%s: rank %s reported a failed result check%s"
                    % (label, ", ".join(map(str, ranks_failed)), "" if size is None else " at %d bytes" % size)
                )
    return not reasons, reasons, peak


# ---------------------------------------------------------------- reading a node through a runner


def read_net_health(run, hccn_tool, device):
    return parse_net_health(ascend.read_attribute(run, hccn_tool, device, "net_health"))


def read_health(run, hccn_tool, devices):
    """[{"device", "net_health", "link"}] for every device id; run(cmd) -> (rc, stdout, stderr)."""
    return [
        {
            "device": device,
            "net_health": read_net_health(run, hccn_tool, device),
            "link": ascend.read_link(run, hccn_tool, device),
        }
        for device in devices
    ]


def all_reduce_test_binary(hccl_test_path):
    """all_reduce_test inside hccl_test_path (the bin folder, or the hccl_test folder above it)."""
    for candidate in (
        os.path.join(hccl_test_path, "all_reduce_test"),
        os.path.join(hccl_test_path, "bin", "all_reduce_test"),
    ):
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def all_reduce_test_command(mpirun, mpirun_args, binary, npus, min_bytes, max_bytes, factor, iters, warmup):
    """mpirun -n <npus> all_reduce_test -b .. -e .. -f .. -d fp32 -o sum -p <npus> -n iters -w warmup."""
    return (
        [mpirun]
        + [str(arg) for arg in mpirun_args or []]
        + ["-n", str(npus), binary]
        + ["-b", str(min_bytes), "-e", str(max_bytes), "-f", str(factor), "-d", "fp32", "-o", "sum"]
        + ["-p", str(npus), "-n", str(iters), "-w", str(warmup)]
    )


def report_lines(health, rows):
    """A printable table: one line per NPU (net_health, link), then one per size (algbw, busbw, check)."""
    lines = []
    if health:
        lines.append("%-4s %-16s %s" % ("NPU", "net_health", "link"))
        lines.extend("%-4d %-16s %s" % (h["device"], h["net_health"], h["link"]) for h in health)
    if rows:
        lines.append("%12s %12s %12s %12s  %s" % ("size(B)", "time(us)", "algbw(GB/s)", "busbw(GB/s)", "check"))
        lines.extend(
            "%12d %12.2f %12.2f %12.2f  %s"
            % (r["size_bytes"], r["time_us"], r["algbw_gbps"], r["busbw_gbps"], r["check_result"])
            for r in rows
        )
    return lines
