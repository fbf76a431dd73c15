# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engines' default memory rules per release, checked against hand calculations from their code.

Each expected number below is worked out from the quoted release's source (PyPI sdist/wheel, read with
``pip download --no-deps``): SGLang 0.5.6.post2 ``sglang/srt/server_args.py`` ``_handle_gpu_memory_settings``,
SGLang 0.5.23 ``sglang/srt/arg_groups/memory_hook.py``, vLLM ``vllm/config/cache.py`` and
``vllm/v1/worker/gpu_worker.py`` of 0.12.0/0.13.0 and 0.32.0/0.33.0. No engine runs here (no GPU).
"""

import pytest

from ansible_collections.llmops.inference.plugins.module_utils import engine_memory
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError
from ansible_collections.llmops.inference.plugins.module_utils.parallelism import plan

H100_MIB = 81559  # nvidia-smi memory.total of an H100 SXM5, what SGLang divides by


@pytest.mark.parametrize(
    "engine, version, rule",
    [
        ("sglang", "0.5.6.post2", "0.5.6.post2"),
        ("sglang", "0.5.10", "0.5.6.post2"),
        ("sglang", "0.5.23", "0.5.23"),
        ("sglang", "0.6.0", "0.5.23"),
        ("vllm", "0.12.0", "0.12.0"),
        ("vllm", "0.13.0", "0.12.0"),
        ("vllm", "0.32.0", "0.21.0"),
        ("vllm", "0.33.0", "0.21.0"),
        ("vllm", None, "0.21.0"),  # the newest recorded release
    ],
)
def test_each_version_takes_the_newest_rule_at_or_below_it(engine, version, rule):
    assert engine_memory.rule_version(engine, version)[0] == rule


def test_a_version_older_than_every_rule_takes_the_oldest_with_a_warning():
    rule, version, warnings = engine_memory.rule_version("sglang", "0.4.9")
    assert (rule, version) == ("0.5.6.post2", "0.4.9")
    assert "older than the oldest modelled memory rule" in warnings[0]
    with pytest.raises(LlmopsError, match="not a version"):
        engine_memory.rule_version("vllm", "latest")


def test_sglang_0_5_6_post2_rule_by_hand():
    # H100, TP8: chunked prefill 8192, CUDA-graph batch 512 (tp >= 4)
    # 512 + 8192 x 1.5 + 512 x 2 + 8 x 1 / 8 x 1024 = 14848 MiB (above the 10 GiB floor)
    assert engine_memory.sglang_reserved_mib("0.5.6.post2", H100_MIB, tp=8) == 14848
    assert engine_memory.sglang_memory_fraction("0.5.6.post2", H100_MIB, tp=8) == round(
        (H100_MIB - 14848) / H100_MIB, 3
    )
    # TP1: batch 256 -> 512 + 12288 + 512 + 128 = 13440
    assert engine_memory.sglang_reserved_mib("0.5.6.post2", H100_MIB, tp=1) == 13440
    # EAGLE/NEXTN (MTP) adds 2 GiB after the floor
    assert engine_memory.sglang_reserved_mib("0.5.6.post2", H100_MIB, tp=8, speculative=True) == 14848 + 2048
    # DP attention 16 at TP16: + 512 x 16 x 3 + 512 x 16 x 1.5 (batch above 300); TP16 adds 2048 not 1024
    assert engine_memory.sglang_reserved_mib("0.5.6.post2", H100_MIB, tp=16, attn_dp=16) == (
        512 + 12288 + 1024 + 2048 + 24576 + 12288
    )
    # the batch cap shrinks it: 128 x 16 x 3, no 1.5 term below 300
    assert engine_memory.sglang_reserved_mib("0.5.6.post2", H100_MIB, tp=16, attn_dp=16, cuda_graph_max_bs=128) == (
        512 + 12288 + 256 + 2048 + 6144
    )
    # DeepEP has no term in 0.5.6.post2
    assert engine_memory.sglang_reserved_mib("0.5.6.post2", H100_MIB, tp=8, deepep=True) == 14848


def test_sglang_0_5_23_rule_by_hand():
    # + the breakable prefill CUDA graph: 58 capture sizes up to 8192 tokens x 8 MiB (non-MLA)
    assert len(engine_memory._prefill_graph_sizes(8192)) == 58
    assert engine_memory.sglang_reserved_mib("0.5.23", H100_MIB, tp=8) == 14848 + 58 * 8
    # MLA (DeepSeek): 1.5 GiB instead
    assert engine_memory.sglang_reserved_mib("0.5.23", H100_MIB, tp=8, mla=True) == 14848 + 1536
    # DeepEP: 1 GiB for the prefill graph's bridge pool + 2 GiB of all-to-all buffers (after the floor)
    assert engine_memory.sglang_reserved_mib("0.5.23", H100_MIB, tp=8, mla=True, deepep=True) == 14848 + 1536 + 3072
    # no speculative term any more
    assert engine_memory.sglang_reserved_mib("0.5.23", H100_MIB, tp=8, speculative=True) == 14848 + 464
    # a 24 GB card: 0.5.23 takes 4096-token chunks and batch 48 (0.5.6.post2: 2048 and 24)
    assert engine_memory._sglang_capacity_defaults("0.5.23", 24564, 1, False) == (4096, 48)
    assert engine_memory._sglang_capacity_defaults("0.5.6.post2", 24564, 1, False) == (2048, 24)


def test_sglang_small_gpu_floor_applies_only_above_60_gib():
    # L40S-class 46 GiB: 512 + 4096 x 1.5 + 32 x 2 + 128 = 6848, no 10 GiB floor below 60 GiB
    assert engine_memory.sglang_reserved_mib("0.5.6.post2", 46068, tp=1) == 6848


def test_vllm_budget_changed_between_releases():
    assert engine_memory.vllm_defaults("0.12.0") == (0.9, 0.0)
    assert engine_memory.vllm_defaults("0.21.0") == (0.92, engine_memory.VLLM_CUDAGRAPH_ESTIMATE_GIB)


QWEN = {"model": "Qwen/Qwen3-32B", "accelerator": "H100-80G", "accelerators_per_node": 1, "context_length": 32768}


def test_plan_follows_the_vllm_version():
    old, new = plan(dict(QWEN, engine="vllm", engine_version="0.12.0")), plan(dict(QWEN, engine="vllm"))
    assert old["memory_fraction"] == 0.9 and new["memory_fraction"] == 0.92
    assert old["engine_version"] == "0.12.0" and new["engine_version"] == "0.33.0"
    assert "gpu_memory_utilization=0.92" in new["memory_rule"]
    assert "--gpu-memory-utilization" in old["engine_args"]
    assert old["engine_args"][old["engine_args"].index("--gpu-memory-utilization") + 1] == "0.90"
    # 2% more budget, 0.5 GiB of it for CUDA graphs: the pool grows by 0.02 x 79.6 - 0.5 GiB
    per_token = new["kv_bytes_per_token"]
    grown = (new["kv_cache_tokens"] - old["kv_cache_tokens"]) * per_token / float(1 << 30)
    assert grown == pytest.approx(0.02 * 81559 / 1024.0 - 0.5, abs=0.05)


def test_plan_follows_the_sglang_version_from_the_image_tag():
    old = plan(dict(QWEN, engine="sglang", engine_image="docker.io/lmsysorg/sglang:v0.5.6.post2-cu129"))
    new = plan(dict(QWEN, engine="sglang", engine_image="lmsysorg/sglang:v0.5.23"))
    assert old["engine_version"] == "0.5.6.post2" and new["engine_version"] == "0.5.23"
    assert old["memory_fraction"] == round((H100_MIB - 13440) / H100_MIB, 3)
    assert new["memory_fraction"] == round((H100_MIB - 13440 - 58 * 8) / H100_MIB, 3)
    assert old["kv_cache_tokens"] > new["kv_cache_tokens"]
    with pytest.raises(LlmopsError, match="runs vllm, not sglang"):
        plan(dict(QWEN, engine="sglang", engine_image="vllm/vllm-openai:v0.12.0"))


def test_an_explicit_fraction_wins_over_every_rule():
    for version in ("0.5.6.post2", "0.5.23"):
        result = plan(dict(QWEN, engine="sglang", engine_version=version, memory_fraction=0.8))
        assert result["memory_fraction"] == 0.8


def test_h200_fraction_divides_by_what_nvidia_smi_reports():
    """SGLang divides by nvidia-smi memory.total (get_nvgpu_memory_capacity). Measured on an H200 SXM (driver
    580.159.04, 2026-11-30): `nvidia-smi --query-gpu=memory.total` printed 143771 (MiB), the catalog's value."""
    result = plan(dict(QWEN, accelerator="H200-141G", engine="sglang", tensor_parallel=8, accelerators_per_node=8))
    assert result["accelerator"]["memory_gib"] == round(143771 / 1024.0, 2)
    # TP8 on a 140 GiB card: chunk 8192, batch 512, 1024 for TP8, 58 prefill graphs x 8 (0.5.23)
    assert result["memory_fraction"] == round((143771 - 14848 - 464) / 143771, 3)
