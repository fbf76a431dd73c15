# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse nvidia-smi output and judge what is worth failing on (gpu_facts, nccl_check)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

# Fields every driver since R450 accepts; one unknown field makes nvidia-smi refuse the whole query.
QUERY_FIELDS = [
    "index",
    "name",
    "uuid",
    "pci.bus_id",
    "memory.total",
    "driver_version",
    "mig.mode.current",
    "persistence_mode",
    "ecc.mode.current",
    "ecc.errors.uncorrected.volatile.total",
    "ecc.errors.uncorrected.aggregate.total",
]

_NA = ("[N/A]", "N/A", "[Not Supported]", "Not Supported", "[Unknown Error]", "")

# XIDs that mean the GPU or its links need attention, not an application bug (NVIDIA's XID catalogue):
# 48 double-bit ECC, 61/62 internal micro-controller, 63/64 row remapping, 74 NVLink error, 79 fallen off
# the bus, 92 high single-bit ECC rate, 94/95 contained/uncontained ECC, 119/120 GSP, 140 unrecovered ECC.
CRITICAL_XIDS = frozenset([48, 61, 62, 63, 64, 74, 79, 92, 94, 95, 119, 120, 140])

_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
_XID_RE = re.compile(r"NVRM: Xid \((?P<pci>[^)]*)\): (?P<xid>\d+),\s*(?P<text>.*)")
_CUDA_RE = re.compile(r"CUDA Version:\s*(?P<cuda>[\d.]+)")
_DRIVER_RE = re.compile(r"Driver Version:\s*(?P<driver>[\d.]+)")


def query_command(binary="nvidia-smi"):
    return [binary, "--query-gpu=" + ",".join(QUERY_FIELDS), "--format=csv,noheader,nounits"]


def _value(raw):
    raw = raw.strip()
    return None if raw in _NA else raw


def _int(raw):
    value = _value(raw)
    return int(value) if value is not None else None


def parse_query_gpu(text):
    """Rows of ``--query-gpu=QUERY_FIELDS --format=csv,noheader,nounits`` as a list of dicts."""
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(QUERY_FIELDS):
            raise LlmopsError(
                "nvidia-smi --query-gpu printed %d fields where %d were asked for: %r"
                % (len(cells), len(QUERY_FIELDS), line)
            )
        row = dict(zip(QUERY_FIELDS, cells))
        try:
            gpus.append(
                {
                    "index": int(row["index"]),
                    "name": row["name"],
                    "uuid": row["uuid"],
                    "pci_bus_id": row["pci.bus_id"],
                    "memory_total_mib": _int(row["memory.total"]),
                    "driver_version": _value(row["driver_version"]),
                    "mig_mode": _value(row["mig.mode.current"]),
                    "persistence_mode": _value(row["persistence_mode"]),
                    "ecc_mode": _value(row["ecc.mode.current"]),
                    "ecc_uncorrected_volatile": _int(row["ecc.errors.uncorrected.volatile.total"]),
                    "ecc_uncorrected_aggregate": _int(row["ecc.errors.uncorrected.aggregate.total"]),
                }
            )
        except ValueError:
            raise LlmopsError("nvidia-smi --query-gpu printed a value that is not a number: %r" % line)
    if not gpus:
        raise LlmopsError("nvidia-smi --query-gpu listed no GPU")
    return gpus


def parse_versions(text):
    """Driver and CUDA version from the banner of plain ``nvidia-smi``."""
    driver = _DRIVER_RE.search(text)
    cuda = _CUDA_RE.search(text)
    return {
        "driver_version": driver.group("driver") if driver else None,
        "cuda_version": cuda.group("cuda") if cuda else None,
    }


def parse_topo_matrix(text):
    """``nvidia-smi topo -m``: link between each GPU pair, GPU-NIC links, CPU/NUMA affinity, NIC names.

    The matrix is tab separated (its header underlined with ANSI codes); the legend follows a blank
    line; "NIC Legend" maps NIC0.. to mlx5_0...
    """
    lines = [_ANSI_RE.sub("", line).rstrip() for line in text.splitlines()]
    header = None
    matrix = {}
    nic_names = {}
    for line in lines:
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split("\t")]
        if header is None:
            if len(cells) > 1 and cells[0] == "" and cells[1].startswith("GPU"):
                header = cells[1:]
            continue
        nic = re.match(r"^\s*(NIC\d+):\s*(\S+)", line)
        if nic:
            nic_names[nic.group(1)] = nic.group(2)
            continue
        if re.match(r"^(GPU|NIC)\d+$", cells[0]):
            matrix[cells[0]] = dict(zip(header, cells[1:]))
    if header is None or not matrix:
        raise LlmopsError("Cannot read the nvidia-smi topo -m matrix: %r" % text[:400])
    gpus = sorted((k for k in matrix if k.startswith("GPU")), key=lambda k: int(k[3:]))
    links = {}
    for a in gpus:
        for b in gpus:
            if int(a[3:]) < int(b[3:]):
                links["%s-%s" % (a, b)] = matrix[a].get(b)
    affinity = {}
    for gpu in gpus:
        row = matrix[gpu]
        affinity[gpu] = {
            "cpu": row.get("CPU Affinity"),
            "numa": row.get("NUMA Affinity"),
            "nics": {nic_names.get(k, k): v for k, v in row.items() if k.startswith("NIC")},
        }
    return {
        "gpus": gpus,
        "links": links,
        "affinity": affinity,
        "nics": nic_names,
        "link_type": classify_links(links.values()),
    }


def classify_links(values):
    """nvlink when every GPU pair has NV#, pcie when none has, mixed otherwise (a degraded fabric)."""
    values = [v for v in values if v]
    if not values:
        return "single"
    nvlink = [v for v in values if v.startswith("NV")]
    if len(nvlink) == len(values):
        return "nvlink"
    return "pcie" if not nvlink else "mixed"


def nvlink_counts(links):
    """NV18 -> 18 links per pair, so a pair with fewer links than its peers stands out."""
    return {pair: int(v[2:]) for pair, v in links.items() if v and v.startswith("NV") and v[2:].isdigit()}


def parse_nvlink_status(text):
    """``nvidia-smi nvlink -s``: per GPU, per link speed in GB/s or None when inactive."""
    gpus = {}
    current = None
    for line in text.splitlines():
        gpu = re.match(r"^GPU (\d+):", line)
        if gpu:
            current = int(gpu.group(1))
            gpus[current] = {}
            continue
        link = re.match(r"^\s*Link (\d+):\s*(.*)$", line)
        if link and current is not None:
            speed = re.match(r"([\d.]+) GB/s", link.group(2).strip())
            gpus[current][int(link.group(1))] = float(speed.group(1)) if speed else None
    return gpus


def parse_fabric_state(text):
    """Fabric State/Status per GPU from ``nvidia-smi -q`` (NVSwitch systems, driver >= R530)."""
    states = []
    in_fabric = False
    current = {}
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("GPU ") and re.match(r"^GPU [0-9A-Fa-f:.]+$", stripped):
            in_fabric = False
            continue
        if stripped == "Fabric":
            in_fabric = True
            current = {}
            states.append(current)
            continue
        if in_fabric and ":" in stripped:
            key, _sep, value = stripped.partition(":")
            key = key.strip().lower()
            if key in ("state", "status", "clique id", "cluster uuid"):
                current[key.replace(" ", "_")] = value.strip()
            elif current:
                in_fabric = key in ("health",)
    return states


def parse_xid_log(text):
    """XID events from the kernel log (dmesg / journalctl -k)."""
    events = []
    for line in text.splitlines():
        match = _XID_RE.search(line)
        if match:
            xid = int(match.group("xid"))
            events.append(
                {
                    "pci": match.group("pci"),
                    "xid": xid,
                    "text": match.group("text").strip(),
                    "critical": xid in CRITICAL_XIDS,
                }
            )
    return events


def nvswitch_devices(proc_root="/"):
    """NVSwitch devices the nvidia-nvswitch driver lists (empty on hosts without NVSwitch)."""
    path = os.path.join(proc_root, "proc/driver/nvidia-nvswitch/devices")
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def judge_gpus(
    gpus, topo=None, xids=None, fabric=None, nvswitches=None, fabric_manager_active=None, expected_count=None
):
    """Reasons a node is not fit to serve: ECC errors, XIDs, degraded NVLink, fabric not ready."""
    reasons = []
    if expected_count is not None and len(gpus) != expected_count:
        reasons.append("%d GPUs found, %d expected" % (len(gpus), expected_count))
    for gpu in gpus:
        if gpu.get("ecc_uncorrected_volatile"):
            reasons.append(
                "GPU %d (%s) has %d uncorrected ECC errors since the driver loaded"
                % (gpu["index"], gpu["pci_bus_id"], gpu["ecc_uncorrected_volatile"])
            )
    for event in xids or []:
        if event["critical"]:
            reasons.append("XID %d on %s: %s" % (event["xid"], event["pci"], event["text"]))
    if topo:
        if topo["link_type"] == "mixed":
            slow = sorted(p for p, v in topo["links"].items() if not (v or "").startswith("NV"))
            reasons.append("NVLink missing between %s (topology is mixed: degraded NVLink)" % ", ".join(slow))
        counts = nvlink_counts(topo["links"])
        if counts and len(set(counts.values())) > 1:
            best = max(counts.values())
            fewer = sorted("%s (NV%d)" % (p, n) for p, n in counts.items() if n < best)
            reasons.append("fewer NVLinks than NV%d between %s" % (best, ", ".join(fewer)))
    for index, state in enumerate(fabric or []):
        if state.get("state") and state["state"] not in ("Completed", "N/A"):
            reasons.append(
                "GPU %d fabric state is %s (status %s): Fabric Manager has not finished"
                % (index, state["state"], state.get("status"))
            )
        elif state.get("status") and state["status"] not in ("Success", "N/A"):
            reasons.append("GPU %d fabric status is %s" % (index, state["status"]))
    if nvswitches and fabric_manager_active is False:
        reasons.append("%d NVSwitches present but nvidia-fabricmanager is not active" % len(nvswitches))
    return reasons


def judge_driver_version(running, expected=None):
    """A problem when the running driver is not the pinned one (a reboot or a nvidia_driver run is due)."""
    if not expected or running == expected:
        return []
    return [
        "driver %s is running, %s expected (the nvidia_driver pin): reboot if it is installed, "
        "else re-run nvidia_driver" % (running, expected)
    ]
