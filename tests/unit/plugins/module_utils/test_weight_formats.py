# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Weight formats: bytes per parameter, quantization_config parsing, which hardware/engine runs each."""

import json

import pytest

from ansible_collections.llmops.inference.plugins.module_utils import accelerator_catalog, model_catalog
from ansible_collections.llmops.inference.plugins.module_utils.model_memory import (
    ModelShape,
    quantized_param_bytes,
    total_weight_bytes,
)
from ansible_collections.llmops.inference.plugins.module_utils.parallelism import plan
from ansible_collections.llmops.inference.plugins.module_utils.weight_formats import support


@pytest.mark.parametrize(
    "fmt,block,expected",
    [
        ("bf16", None, 2.0),
        ("fp8", [128, 128], 1.0 + 4.0 / 16384),  # one fp32 scale per 128x128 block (DeepSeek, Qwen3 FP8)
        ("fp8", None, 1.0 + 4.0 / 4096),  # one fp32 scale per output channel (FP8-dynamic), hidden 4096
        ("int8", None, 1.0 + 4.0 / 4096),  # W8A8 per-channel
        ("int8", [128, 128], 1.0 + 4.0 / 16384),  # meituan Block-INT8
        ("int4", None, 0.5 + 2.5 / 128),  # AWQ/GPTQ group 128: fp16 scale + 4-bit zero per group
        ("mxfp4", None, 0.5 + 1.0 / 32),  # E2M1 + one E8M0 scale per 32 values = 4.25 bits
        ("nvfp4", None, 0.5 + 1.0 / 16),  # E2M1 + one E4M3 scale per 16 values = 4.5 bits
    ],
)
def test_bytes_per_parameter(fmt, block, expected):
    assert quantized_param_bytes(fmt, 4096, block) == pytest.approx(expected)


CT_GROUP = {"targets": ["Linear"]}


def _ct(weights):
    return {"quant_method": "compressed-tensors", "config_groups": {"group_0": dict(CT_GROUP, weights=weights)}}


# quantization_config as the checkpoints publish them -> (format, block, method)
QUANT_CONFIGS = [
    (
        "DeepSeek-V3 FP8",
        {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [128, 128]},
        ("fp8", [128, 128], "fp8"),
    ),
    ("compressed-tensors FP8 channel", _ct({"num_bits": 8, "type": "float", "strategy": "channel"}), ("fp8", None)),
    (
        "compressed-tensors FP8 block",
        _ct({"num_bits": 8, "type": "float", "strategy": "block", "block_structure": [128, 128]}),
        ("fp8", [128, 128]),
    ),
    ("compressed-tensors W8A8 INT8", _ct({"num_bits": 8, "type": "int", "strategy": "channel"}), ("int8", None)),
    ("compressed-tensors W4A16", _ct({"num_bits": 4, "type": "int", "group_size": 128}), ("int4", [128, 1])),
    ("compressed-tensors NVFP4", _ct({"num_bits": 4, "type": "float", "group_size": 16}), ("nvfp4", None)),
    ("AWQ", {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True}, ("int4", None, "awq")),
    ("GPTQ", {"quant_method": "gptq", "bits": 4, "group_size": 128}, ("int4", None, "gptq")),
    ("ModelOpt NVFP4", {"quant_method": "modelopt", "quant_algo": "NVFP4"}, ("nvfp4", None, "modelopt")),
    ("gpt-oss MXFP4", {"quant_method": "mxfp4"}, ("mxfp4", None, "mxfp4")),
    (
        "meituan Block-INT8",
        {"quant_method": "blockwise_int8", "weight_block_size": [128, 128], "activation_scheme": "dynamic"},
        ("int8", [128, 128], "blockwise_int8"),
    ),
    ("SGLang W8A8 INT8", {"quant_method": "w8a8_int8"}, ("int8", None, "w8a8_int8")),
    ("vllm-ascend msModelSlim W8A8", {"quant_method": "ascend"}, ("int8", None, "ascend")),
]


def _llama_config(**changes):
    config = dict(model_catalog.MODELS["meta-llama/Llama-3.1-8B-Instruct"]["config"])
    config.update(changes)
    return config


@pytest.mark.parametrize("label,quant,expected", QUANT_CONFIGS, ids=[q[0] for q in QUANT_CONFIGS])
def test_quantization_config_parsed(label, quant, expected):
    shape = ModelShape(_llama_config(quantization_config=quant), name=label)
    assert shape.checkpoint_dtype == expected[0]
    assert shape.quant_block == expected[1]
    if len(expected) > 2:
        assert shape.quant_method == expected[2]


def test_ignore_list_keeps_named_parts_in_bf16():
    """gpt-oss keeps attention in BF16 (modules_to_not_convert); so the attention bytes are 2 per param."""
    quant = {"quant_method": "mxfp4", "modules_to_not_convert": ["model.layers.*.self_attn", "lm_head"]}
    shape = ModelShape(_llama_config(quantization_config=quant), name="llama-mxfp4-attn-bf16")
    everything = ModelShape(_llama_config(quantization_config={"quant_method": "mxfp4"}), name="llama-mxfp4")
    counts = shape.parameter_counts()["dense"]
    attention = (counts["attn_heads"] + counts["attn_kv"]) * shape.layers
    difference = total_weight_bytes(shape, "mxfp4") - total_weight_bytes(everything, "mxfp4")
    assert difference == pytest.approx(attention * (2.0 - (0.5 + 1.0 / 32)))


# (format, accelerator, engine) -> verdict; sources in weight_formats.py
VERDICTS = [
    ("fp8", "A800-80G", "sglang", "refused"),  # Triton fp8e4nv needs SM 8.9
    ("fp8", "A100-80G", "vllm", "emulated"),  # FP8 Marlin W8A16
    ("fp8", "L40S", "sglang", "native"),  # Ada, SM 8.9
    ("fp8", "H20-141G", "sglang", "native"),
    ("nvfp4", "H100-80G", "sglang", "refused"),  # SM100 FP4 GEMMs only
    ("nvfp4", "H100-80G", "vllm", "emulated"),  # FP4 Marlin
    ("nvfp4", "B200", "sglang", "native"),
    ("nvfp4", "GB300", "vllm", "native"),
    ("mxfp4", "H200-141G", "sglang", "emulated"),  # triton_kernels W4A16 on Hopper
    ("mxfp4", "B200", "sglang", "native"),
    ("mxfp4", "RTX-PRO-6000-96G", "sglang", "refused"),  # sglang#9707
    ("mxfp4", "RTX-PRO-6000-96G", "vllm", "native"),
    ("mxfp4", "A100-80G", "vllm", "emulated"),  # Marlin MXFP4
    ("mxfp4", "A100-80G", "sglang", "refused"),
    ("int8", "A800-80G", "sglang", "native"),
    ("int4", "A10-24G", "vllm", "native"),
    ("nvfp4", "Ascend-910C-64G", "vllm", "refused"),
    ("bf16", "Ascend-910B3-64G", "vllm", "native"),
]


@pytest.mark.parametrize("fmt,accelerator,engine,verdict", VERDICTS, ids=["-".join(v[:3]) for v in VERDICTS])
def test_engine_and_hardware_support(fmt, accelerator, engine, verdict):
    assert support(fmt, "", accelerator_catalog.get(accelerator), engine)[0] == verdict


def test_checkpoint_method_an_engine_cannot_load():
    a800 = accelerator_catalog.get("A800-80G")
    assert support("int8", "blockwise_int8", a800, "vllm")[0] == "refused"
    assert support("int8", "w8a8_int8", a800, "sglang")[0] == "native"
    assert support("int8", "ascend", a800, "vllm")[0] == "refused"  # msModelSlim W8A8 is for Ascend


def _write_model(tmp_path, config):
    (tmp_path / "config.json").write_text(json.dumps(config))
    return str(tmp_path)


def test_nvfp4_on_hopper_refused_for_sglang_with_numbers(tmp_path):
    path = _write_model(
        tmp_path, _llama_config(quantization_config={"quant_method": "modelopt", "quant_algo": "NVFP4"})
    )
    result = plan({"model_path": path, "accelerator": "H100-80G", "engine": "sglang", "accelerators_per_node": 1})
    assert result["fits"] is False and result["weight_dtype"] == "nvfp4"
    reason = result["reasons"][0]
    assert reason.startswith(
        "sglang v0.5.6.post2 has no NVFP4 kernels for H100-80G (SM 9.0; it runs them on SM >= 10.0)"
    )
    assert "an FP8 checkpoint: 8.5 GiB of weights, fits 1 x 1 H100-80G (TP 1, PP 1)" in reason
    assert "BF16 weights: 15.0 GiB of weights, fits 1 x 1 H100-80G (TP 1, PP 1)" in reason
    assert "vllm v0.12.0 with these NVFP4 weights (weight-only kernels)" in reason
    # 8.03B params: 7.0B linear at 4.5 bits + 1.05B embeddings/lm_head in BF16 = about 5.8 GiB
    assert 5.5 < result["weights_gib_total"] < 6.1
    blackwell = plan({"model_path": path, "accelerator": "B200", "engine": "sglang", "accelerators_per_node": 1})
    assert blackwell["fits"] and not blackwell["warnings"]
