# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Accelerator catalog: memory as nvidia-smi/npu-smi report it, SM, nodes of 4 (NVL72) and 16 (Atlas A3)."""

import pytest

from ansible_collections.llmops.inference.plugins.module_utils import accelerator_catalog
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError
from ansible_collections.llmops.inference.plugins.module_utils.parallelism import plan

# nvidia-smi --query-gpu=name,memory.total lines published for each (sources in accelerator_catalog.py)
SMI = [
    ("H20-141G", "NVIDIA H20-3e, 143771 MiB", 9.0),
    ("B300", "NVIDIA B300 SXM6 AC, 275040 MiB", 10.3),
    ("GB200", "NVIDIA GB200, 189471 MiB", 10.0),
    ("GB300", "NVIDIA GB300, 284208 MiB", 10.3),
    ("RTX-PRO-6000-96G", "NVIDIA RTX PRO 6000 Blackwell Server Edition, 97887 MiB", 12.0),
    ("L20", "NVIDIA L20, 46068 MiB", 8.9),
]


@pytest.mark.parametrize("accelerator,line,sm", SMI, ids=[s[0] for s in SMI])
def test_memory_matches_nvidia_smi(accelerator, line, sm):
    entry = accelerator_catalog.get(accelerator)
    assert "%d MiB" % entry["memory_mib"] == line.rsplit(", ", 1)[1]
    assert entry["sm"] == sm


def test_every_nvidia_entry_has_a_compute_capability():
    for name, entry in accelerator_catalog.ACCELERATORS.items():
        if entry["vendor"] == "nvidia":
            assert 7.0 <= entry["sm"] <= 12.0, name
            assert entry["fp8"] == (entry["sm"] >= 8.9), name


def test_aliases():
    assert accelerator_catalog.resolve("910c") == "Ascend-910C-64G"
    assert accelerator_catalog.resolve("H20-3e") == "H20-141G"
    assert accelerator_catalog.resolve("gb200-nvl72") == "GB200"


def test_gb200_trays_of_four_tp_inside_the_rack_over_nvlink():
    """DeepSeek-R1 FP8 (627 GiB) on GB200 trays: 4 x 185 GiB does not hold it, 2 trays (TP 8) do, over the
    rack's NVLink with no inter_node_link given; TP may not exceed the 72 GPUs of one NVLink domain."""
    result = plan({"model": "deepseek-ai/DeepSeek-R1", "accelerator": "GB200", "nodes": 2, "engine": "sglang"})
    assert result["fits"] and result["accelerators_per_node"] == 4
    assert result["tensor_parallel"] == 8 and result["nodes"] == 2
    assert result["accelerator"]["inter_node_link"] == "nvlink" and not result["warnings"]
    assert "--nnodes" in result["engine_args"]
    with pytest.raises(LlmopsError, match="spans more than one NVLink domain of GB200 \\(72 GPUs\\)"):
        plan(
            {
                "model": "deepseek-ai/DeepSeek-R1",
                "accelerator": "GB200",
                "nodes": 32,
                "inter_node_link": "ib",
                "tensor_parallel": 128,
            }
        )


def test_h100_across_nodes_still_needs_ib_for_tp():
    result = plan({"model": "deepseek-ai/DeepSeek-R1", "accelerator": "H100-80G", "nodes": 2, "engine": "sglang"})
    assert result["fits"] and result["tensor_parallel"] == 8 and result["pipeline_parallel"] == 2


def test_atlas_800i_a3_sixteen_npus_per_node():
    """vllm-ascend: DeepSeek-R1-W8A8 needs 1 Atlas 800 A3 (64G x 16) or 2 Atlas 800 A2 (64G x 8)."""
    result = plan({"model": "vllm-ascend/DeepSeek-R1-W8A8", "accelerator": "Ascend-910C-64G", "engine": "vllm"})
    assert result["fits"] and result["accelerators_per_node"] == 16 and result["nodes"] == 1
    assert result["tensor_parallel"] == 16
    a2 = plan({"model": "vllm-ascend/DeepSeek-R1-W8A8", "accelerator": "Ascend-910B3-64G", "engine": "vllm"})
    assert a2["fits"] is False  # one A2 node of 8 x 64 GB is too small


def test_rtx_pro_6000_has_no_nvlink():
    with pytest.raises(LlmopsError, match="RTX-PRO-6000-96G has no NVLink"):
        plan({"model": "Qwen/Qwen3-32B", "accelerator": "RTX-PRO-6000-96G", "intra_node_link": "nvlink"})
