# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Catalog of accelerators: memory, FP8 support and links.

``memory_mib`` is the total that ``nvidia-smi --query-gpu=memory.total`` (or
``npu-smi info``, HBM capacity) reports, which is what the engines' memory
fractions multiply. ``link_gbps`` is the per-accelerator bidirectional
bandwidth of the intra-node link in GB/s from the vendor datasheet.
``fp8`` means FP8 tensor cores (Hopper, Ada, Blackwell); Ampere and Ascend 910B
have none. ``sm`` is the CUDA compute capability (``nvidia-smi --query-gpu=compute_cap``)
that weight_formats.support() checks kernels against. ``per_node`` is the usual
number per node when it is not 8 (GB200/GB300 trays: 4, Atlas 800I A3: 16), and
``nvlink_domain`` the GPUs one NVLink fabric joins across nodes (NVL72: 72). To add
an accelerator: add an entry with these keys and the source of its numbers in a comment.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

LINKS = ("nvlink", "pcie", "hccs", "ib", "roce", "tcp")
FAST_INTER_NODE_LINKS = ("ib", "roce")

ACCELERATORS = {
    # NVIDIA A100/A800 SXM datasheets: 40/80 GB HBM2e, NVLink3 600 GB/s (A800: 400 GB/s), no FP8.
    "A100-40G": {
        "vendor": "nvidia",
        "sm": 8.0,
        "arch": "ampere",
        "memory_mib": 40960,
        "fp8": False,
        "link": "nvlink",
        "link_gbps": 600,
    },
    "A100-80G": {
        "vendor": "nvidia",
        "sm": 8.0,
        "arch": "ampere",
        "memory_mib": 81920,
        "fp8": False,
        "link": "nvlink",
        "link_gbps": 600,
    },
    "A800-80G": {
        "vendor": "nvidia",
        "sm": 8.0,
        "arch": "ampere",
        "memory_mib": 81920,
        "fp8": False,
        "link": "nvlink",
        "link_gbps": 400,
    },
    # H100/H800 SXM5: 80 GB HBM3 (81559 MiB in nvidia-smi), NVLink4 900 GB/s (H800: 400 GB/s).
    "H100-80G": {
        "vendor": "nvidia",
        "sm": 9.0,
        "arch": "hopper",
        "memory_mib": 81559,
        "fp8": True,
        "link": "nvlink",
        "link_gbps": 900,
    },
    "H800-80G": {
        "vendor": "nvidia",
        "sm": 9.0,
        "arch": "hopper",
        "memory_mib": 81559,
        "fp8": True,
        "link": "nvlink",
        "link_gbps": 400,
    },
    # H20: 96 GB HBM3, NVLink 900 GB/s. H200: 141 GB HBM3e, NVLink 900 GB/s.
    "H20-96G": {
        "vendor": "nvidia",
        "sm": 9.0,
        "arch": "hopper",
        "memory_mib": 97871,
        "fp8": True,
        "link": "nvlink",
        "link_gbps": 900,
    },
    "H200-141G": {
        "vendor": "nvidia",
        "sm": 9.0,
        "arch": "hopper",
        "memory_mib": 143771,
        "fp8": True,
        "link": "nvlink",
        "link_gbps": 900,
    },
    # B200 (HGX): 180 GB HBM3e usable, NVLink5 1800 GB/s.
    "B200": {
        "vendor": "nvidia",
        "sm": 10.0,
        "arch": "blackwell",
        "memory_mib": 183359,
        "fp8": True,
        "link": "nvlink",
        "link_gbps": 1800,
    },
    # H20 141 GB (H20-3e): HBM3e, the H200's stack; nvidia-smi "NVIDIA H20-3e, 143771 MiB" (SGLang PD
    # benchmark "H20-3e (143 GB) x 16"); Hopper SM 9.0, NVLink 900 GB/s.
    "H20-141G": {
        "vendor": "nvidia",
        "sm": 9.0,
        "arch": "hopper",
        "memory_mib": 143771,
        "fp8": True,
        "link": "nvlink",
        "link_gbps": 900,
    },
    # B300 (HGX B300): 288 GB HBM3e, nvidia-smi "NVIDIA B300 SXM6 AC, 275040 MiB", SM 10.3 (FP4/FP8
    # tensor cores), NVLink5 1800 GB/s.
    "B300": {
        "vendor": "nvidia",
        "sm": 10.3,
        "arch": "blackwell",
        "memory_mib": 275040,
        "fp8": True,
        "link": "nvlink",
        "link_gbps": 1800,
    },
    # GB200 / GB300 NVL72: a compute tray (the Kubernetes node) holds 4 Blackwell GPUs, and NVLink5
    # (1800 GB/s per GPU) joins all 72 GPUs of the rack through the NVLink switch trays, so TP/EP may span
    # trays inside the rack without IB/RoCE but not across racks. nvidia-smi: "NVIDIA GB200, 189471 MiB"
    # (SM 10.0), "NVIDIA GB300, 284208 MiB" (SM 10.3; 288 GB HBM3e).
    "GB200": {
        "vendor": "nvidia",
        "sm": 10.0,
        "arch": "blackwell",
        "memory_mib": 189471,
        "fp8": True,
        "link": "nvlink",
        "link_gbps": 1800,
        "per_node": 4,
        "nvlink_domain": 72,
    },
    "GB300": {
        "vendor": "nvidia",
        "sm": 10.3,
        "arch": "blackwell",
        "memory_mib": 284208,
        "fp8": True,
        "link": "nvlink",
        "link_gbps": 1800,
        "per_node": 4,
        "nvlink_domain": 72,
    },
    # RTX PRO 6000 Blackwell Server Edition: 96 GB GDDR7 (nvidia-smi 97887 MiB), SM 12.0, FP4/FP8,
    # no NVLink: PCIe Gen5 x16 (128 GB/s bidirectional).
    "RTX-PRO-6000-96G": {
        "vendor": "nvidia",
        "sm": 12.0,
        "arch": "blackwell",
        "memory_mib": 97887,
        "fp8": True,
        "link": "pcie",
        "link_gbps": 128,
    },
    # Ada PCIe cards: no NVLink, PCIe Gen4 x16 (64 GB/s bidirectional). L20: 48 GB GDDR6 (46068 MiB).
    "L40S": {
        "vendor": "nvidia",
        "sm": 8.9,
        "arch": "ada",
        "memory_mib": 46068,
        "fp8": True,
        "link": "pcie",
        "link_gbps": 64,
    },
    "L20": {
        "vendor": "nvidia",
        "sm": 8.9,
        "arch": "ada",
        "memory_mib": 46068,
        "fp8": True,
        "link": "pcie",
        "link_gbps": 64,
    },
    "RTX4090": {
        "vendor": "nvidia",
        "sm": 8.9,
        "arch": "ada",
        "memory_mib": 24564,
        "fp8": True,
        "link": "pcie",
        "link_gbps": 64,
    },
    "A10-24G": {
        "vendor": "nvidia",
        "sm": 8.6,
        "arch": "ampere",
        "memory_mib": 23028,
        "fp8": False,
        "link": "pcie",
        "link_gbps": 64,
    },
    # Ascend 910B (Atlas 800T/800I A2): 64 GB HBM2e, HCCS 392 GB/s; 910B4: 32 GB. INT8, no FP8.
    "Ascend-910B-64G": {
        "vendor": "huawei",
        "arch": "ascend",
        "memory_mib": 65536,
        "fp8": False,
        "link": "hccs",
        "link_gbps": 392,
    },
    # Ascend 910B3 (Atlas 800I A2): 64 GB HBM, HCCS 392 GB/s, no FP8 (npu-smi chip name 910B3).
    "Ascend-910B3-64G": {
        "vendor": "huawei",
        "arch": "ascend",
        "memory_mib": 65536,
        "fp8": False,
        "link": "hccs",
        "link_gbps": 392,
    },
    # Ascend 910C (Atlas 800I A3 / A3 SuperPoD): each 910C package is two dies that npu-smi and the
    # engines see as two 64 GB NPUs, 16 per server (vllm-ascend DeepSeek-R1 guide: "1 Atlas 800 A3
    # (64G x 16)"); HCCS between the NPUs of a server; INT8 W8A8, no FP8/FP4 in the engines' paths.
    "Ascend-910C-64G": {
        "vendor": "huawei",
        "arch": "ascend",
        "memory_mib": 65536,
        "fp8": False,
        "link": "hccs",
        "link_gbps": 392,
        "per_node": 16,
    },
    "Ascend-910B4-32G": {
        "vendor": "huawei",
        "arch": "ascend",
        "memory_mib": 32768,
        "fp8": False,
        "link": "hccs",
        "link_gbps": 392,
    },
}

_ALIASES = {
    "a100": "A100-80G",
    "a800": "A800-80G",
    "h100": "H100-80G",
    "h800": "H800-80G",
    "h20": "H20-96G",
    "h200": "H200-141G",
    "4090": "RTX4090",
    "rtx-4090": "RTX4090",
    "910b": "Ascend-910B-64G",
    "910b3": "Ascend-910B3-64G",
    "910c": "Ascend-910C-64G",
    "atlas-800i-a3": "Ascend-910C-64G",
    "h20-3e": "H20-141G",
    "l20-48g": "L20",
    "rtx-pro-6000": "RTX-PRO-6000-96G",
    "gb200-nvl72": "GB200",
    "gb300-nvl72": "GB300",
    "ascend-910b": "Ascend-910B-64G",
    "a10": "A10-24G",
}


_BY_LOWER = {known.lower(): known for known in ACCELERATORS}


def resolve(name):
    if not name:
        return None
    key = str(name).strip().lower()
    return _BY_LOWER.get(key) or _ALIASES.get(key)


def get(name):
    accelerator_id = resolve(name)
    if accelerator_id is None:
        raise LlmopsError(
            "unknown accelerator %r. Known: %s. Give accelerator_memory_gib (and the links) for another one."
            % (name, ", ".join(sorted(ACCELERATORS)))
        )
    entry = dict(ACCELERATORS[accelerator_id])
    entry["id"] = accelerator_id
    entry["memory_gib"] = entry["memory_mib"] / 1024.0
    return entry
