# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Catalog of models the planner knows without a local config.json.

Each entry holds the fields of the model's published Hugging Face config.json
(https://huggingface.co/<id>/blob/main/config.json) that the memory model reads,
with their config.json names, so a catalog entry and a downloaded model go
through the same parser (model_memory.ModelShape). ``params_b`` is the
published total parameter count (model card), used by the unit tests to check
the parameter accounting. To add a model: copy the fields from its config.json,
add the published parameter count, and run the unit tests.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

_FP8_BLOCK = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [128, 128]}

# DeepSeek-V3 / R1 (and their -0324 / -0528 updates): MLA + 256-expert MoE, FP8 block-quantized
# checkpoint; embed_tokens, lm_head, norms and the MoE gate stay BF16. 671B without the MTP layer.
_DEEPSEEK_V3 = {
    "model_type": "deepseek_v3",
    "hidden_size": 7168,
    "intermediate_size": 18432,
    "moe_intermediate_size": 2048,
    "num_hidden_layers": 61,
    "num_attention_heads": 128,
    "num_key_value_heads": 128,
    "n_routed_experts": 256,
    "n_shared_experts": 1,
    "num_experts_per_tok": 8,
    "first_k_dense_replace": 3,
    "moe_layer_freq": 1,
    "q_lora_rank": 1536,
    "kv_lora_rank": 512,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "vocab_size": 129280,
    "max_position_embeddings": 163840,
    "tie_word_embeddings": False,
    "topk_method": "noaux_tc",
    "num_nextn_predict_layers": 1,
    "torch_dtype": "bfloat16",
    "quantization_config": _FP8_BLOCK,
}

_DEEPSEEK_V2_LITE = {
    "model_type": "deepseek_v2",
    "hidden_size": 2048,
    "intermediate_size": 10944,
    "moe_intermediate_size": 1408,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "n_routed_experts": 64,
    "n_shared_experts": 2,
    "num_experts_per_tok": 6,
    "first_k_dense_replace": 1,
    "moe_layer_freq": 1,
    "q_lora_rank": None,
    "kv_lora_rank": 512,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "vocab_size": 102400,
    "max_position_embeddings": 163840,
    "tie_word_embeddings": False,
    "topk_method": "greedy",
    "torch_dtype": "bfloat16",
}

_QWEN3_235B = {
    "model_type": "qwen3_moe",
    "hidden_size": 4096,
    "intermediate_size": 12288,
    "moe_intermediate_size": 1536,
    "num_hidden_layers": 94,
    "num_attention_heads": 64,
    "num_key_value_heads": 4,
    "head_dim": 128,
    "num_experts": 128,
    "num_experts_per_tok": 8,
    "decoder_sparse_step": 1,
    "mlp_only_layers": [],
    "vocab_size": 151936,
    "tie_word_embeddings": False,
    "attention_bias": False,
    "torch_dtype": "bfloat16",
}

_QWEN3_30B = {
    "model_type": "qwen3_moe",
    "hidden_size": 2048,
    "intermediate_size": 6144,
    "moe_intermediate_size": 768,
    "num_hidden_layers": 48,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "head_dim": 128,
    "num_experts": 128,
    "num_experts_per_tok": 8,
    "decoder_sparse_step": 1,
    "mlp_only_layers": [],
    "vocab_size": 151936,
    "tie_word_embeddings": False,
    "attention_bias": False,
    "torch_dtype": "bfloat16",
}


def _qwen2(hidden, layers, heads, kv_heads, intermediate, vocab, max_pos, tie=False):
    return {
        "model_type": "qwen2",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "intermediate_size": intermediate,
        "vocab_size": vocab,
        "max_position_embeddings": max_pos,
        "tie_word_embeddings": tie,
        "torch_dtype": "bfloat16",
    }


def _qwen3(hidden, layers, heads, kv_heads, intermediate, tie=False):
    return {
        "model_type": "qwen3",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": 128,
        "intermediate_size": intermediate,
        "vocab_size": 151936,
        "max_position_embeddings": 40960,
        "tie_word_embeddings": tie,
        "attention_bias": False,
        "torch_dtype": "bfloat16",
    }


def _llama(hidden, layers, heads, kv_heads, intermediate):
    return {
        "model_type": "llama",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "intermediate_size": intermediate,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
        "tie_word_embeddings": False,
        "attention_bias": False,
        "torch_dtype": "bfloat16",
    }


def _with(base, **changes):
    merged = dict(base)
    merged.update(changes)
    return merged


_LLAMA31_8B = _llama(4096, 32, 32, 8, 14336)
_LLAMA31_70B = _llama(8192, 80, 64, 8, 28672)
_LLAMA31_405B = _llama(16384, 126, 128, 8, 53248)
_QWEN25_72B = _qwen2(8192, 80, 64, 8, 29568, 152064, 32768)

# --- late-2025 releases. Each block names the config.json it copies (https://huggingface.co/<id>/blob/main/
# config.json) and where the values were cross-checked; "params_b" is the published total and, where that
# total counts the multi-token-prediction layers, "params_with_mtp": True (the tests add them).

# DeepSeek-V3.1 / V3.1-Terminus: the V3 architecture; FP8 with UE8M0 scales ("scale_fmt": "ue8m0").
_DEEPSEEK_V31 = _with(_DEEPSEEK_V3, quantization_config=dict(_FP8_BLOCK, scale_fmt="ue8m0"))

# DeepSeek-V3.2(-Exp): V3.1 plus the DSA lightning indexer per layer (index_n_heads 64, index_head_dim 128,
# index_topk 2048): its FP8 keys are an extra per-token cache (SGLang NSATokenToKVPool, sgl-project/sglang#11309).
# Values as in the DeepseekV32ForCausalLM configs mirrored by SGLang/vLLM DSA kernels' model tables.
_DEEPSEEK_V32 = _with(_DEEPSEEK_V31, model_type="deepseek_v32", index_n_heads=64, index_head_dim=128, index_topk=2048)

# Kimi-K2 (moonshotai): the DeepSeek-V3 architecture with 384 experts, 64 heads, one dense layer, a 163840
# vocabulary, no MTP layer; Instruct ships FP8 blocks, Thinking INT4 (compressed-tensors pack-quantized,
# symmetric, group 32) on the routed experts only (attention, shared experts, dense MLP in BF16).
# Cross-checked with the Kimi-K2.5 text_config (same backbone) mirrored in public test fixtures.
_KIMI_K2 = _with(
    _DEEPSEEK_V3,
    num_attention_heads=64,
    num_key_value_heads=64,
    n_routed_experts=384,
    first_k_dense_replace=1,
    vocab_size=163840,
    max_position_embeddings=131072,
    num_nextn_predict_layers=0,
)
_INT4_EXPERTS_ONLY = {
    "quant_method": "compressed-tensors",
    "format": "pack-quantized",
    "config_groups": {
        "group_0": {
            "targets": ["Linear"],
            "weights": {"num_bits": 4, "type": "int", "symmetric": True, "strategy": "group", "group_size": 32},
        }
    },
    "ignore": ["lm_head", "re:.*self_attn.*", "re:.*shared_experts.*", "re:.*mlp\\.(gate|up|gate_up|down)_proj.*"],
}

# GLM-4.5 / 4.6 (zai-org): glm4_moe, GQA 96 heads / 8 KV heads of 128 with q/k/v biases, 160 experts (+1 shared),
# three dense layers, one MTP layer, sigmoid router with a correction bias. 4.6: 200K context.
_GLM45 = {
    "model_type": "glm4_moe",
    "hidden_size": 5120,
    "intermediate_size": 12288,
    "moe_intermediate_size": 1536,
    "num_hidden_layers": 92,
    "num_attention_heads": 96,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "n_routed_experts": 160,
    "n_shared_experts": 1,
    "num_experts_per_tok": 8,
    "first_k_dense_replace": 3,
    "num_nextn_predict_layers": 1,
    "attention_bias": True,
    "use_qk_norm": True,
    "partial_rotary_factor": 0.5,
    "topk_method": "noaux_tc",
    "vocab_size": 151552,
    "max_position_embeddings": 131072,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}

# gpt-oss (openai): https://huggingface.co/openai/gpt-oss-120b/raw/main/config.json: 36 layers alternating
# sliding-window (128 tokens) and full attention, attention sinks, 128 experts (top 4) with biases, MXFP4
# experts while attention, router, embeddings stay BF16 (modules_to_not_convert). 20b: 24 layers, 32 experts.
_GPT_OSS_120B = {
    "model_type": "gpt_oss",
    "hidden_size": 2880,
    "intermediate_size": 2880,
    "num_hidden_layers": 36,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "num_local_experts": 128,
    "num_experts_per_tok": 4,
    "experts_per_token": 4,
    "attention_bias": True,
    "sliding_window": 128,
    "layer_types": ["sliding_attention", "full_attention"] * 18,
    "vocab_size": 201088,
    "max_position_embeddings": 131072,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "quantization_config": {
        "quant_method": "mxfp4",
        "modules_to_not_convert": [
            "model.layers.*.self_attn",
            "model.layers.*.mlp.router",
            "model.embed_tokens",
            "lm_head",
        ],
    },
}
_GPT_OSS_20B = _with(
    _GPT_OSS_120B,
    num_hidden_layers=24,
    num_local_experts=32,
    layer_types=["sliding_attention", "full_attention"] * 12,
)

# Qwen3-Next-80B-A3B: 48 layers, gated DeltaNet (16 key / 32 value heads of 128, conv 4) with gated full
# attention (16 heads, 2 KV heads of 256) every fourth layer, 512 experts (top 10) + a shared expert, one MTP
# layer. Its 79,674,391,296 non-MTP parameters are also the count public parsers derive from this config.
_QWEN3_NEXT = {
    "model_type": "qwen3_next",
    "hidden_size": 2048,
    "intermediate_size": 5120,
    "moe_intermediate_size": 512,
    "shared_expert_intermediate_size": 512,
    "num_hidden_layers": 48,
    "num_attention_heads": 16,
    "num_key_value_heads": 2,
    "head_dim": 256,
    "num_experts": 512,
    "num_experts_per_tok": 10,
    "decoder_sparse_step": 1,
    "mlp_only_layers": [],
    "full_attention_interval": 4,
    "linear_num_key_heads": 16,
    "linear_num_value_heads": 32,
    "linear_key_head_dim": 128,
    "linear_value_head_dim": 128,
    "linear_conv_kernel_dim": 4,
    "num_nextn_predict_layers": 1,
    "vocab_size": 151936,
    "max_position_embeddings": 262144,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}

# Qwen3-Coder-480B-A35B-Instruct: qwen3_moe, 62 layers, 96 heads / 8 KV heads, 160 experts (top 8) of 2560.
_QWEN3_CODER_480B = _with(
    _QWEN3_235B,
    hidden_size=6144,
    intermediate_size=8192,
    moe_intermediate_size=2560,
    num_hidden_layers=62,
    num_attention_heads=96,
    num_key_value_heads=8,
    num_experts=160,
    max_position_embeddings=262144,
)

# MiniMax-M2: minimax_m2, 62 layers, 48 heads / 8 KV heads of 128 with q/k RMSNorm over the whole projection
# ("qk_norm_type": "per_layer"), 256 experts (top 8) of 1536 with a routing bias, FP8 128x128 blocks.
_MINIMAX_M2 = {
    "model_type": "minimax_m2",
    "hidden_size": 3072,
    "intermediate_size": 1536,
    "num_hidden_layers": 62,
    "num_attention_heads": 48,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "num_local_experts": 256,
    "num_experts_per_tok": 8,
    "use_qk_norm": True,
    "qk_norm_type": "per_layer",
    "use_routing_bias": True,
    "vocab_size": 200064,
    "max_position_embeddings": 196608,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "quantization_config": _FP8_BLOCK,
}

# id -> {"config": config.json fields, "params_b": published parameters (billions), "aliases": [...]}
MODELS = {
    "deepseek-ai/DeepSeek-R1": {"config": _DEEPSEEK_V3, "params_b": 671, "aliases": ["deepseek-r1"]},
    "deepseek-ai/DeepSeek-R1-0528": {"config": _DEEPSEEK_V3, "params_b": 671},
    "deepseek-ai/DeepSeek-V3": {"config": _DEEPSEEK_V3, "params_b": 671, "aliases": ["deepseek-v3"]},
    "deepseek-ai/DeepSeek-V3-0324": {"config": _DEEPSEEK_V3, "params_b": 671},
    "deepseek-ai/DeepSeek-V2-Lite-Chat": {
        "config": _DEEPSEEK_V2_LITE,
        "params_b": 15.7,
        "aliases": ["deepseek-ai/DeepSeek-V2-Lite"],
    },
    # DeepSeek-R1 W8A8 (msModelSlim INT8 weights for Ascend, vllm-ascend `--quantization ascend`)
    "vllm-ascend/DeepSeek-R1-W8A8": {
        "config": _with(_DEEPSEEK_V3, quantization_config={"quant_method": "ascend"}),
        "params_b": 671,
    },
    # meituan's INT8 DeepSeek-R1 (block-wise 128x128 INT8 with fp32 scales, W8A8 with dynamic per-token
    # activations): the checkpoint SGLang's DeepSeek guide serves on 2 x 8 A100/A800 with --tp 16
    # (https://docs.sglang.io/docs/basic_usage/deepseek_v3.md "Serving with 2 x 8 x A100/A800"). Its
    # config.json is DeepSeek-R1's with quantization_config rewritten by the repository's
    # inference/bf16_cast_block_int8.py: quant_method blockwise_int8, weight_block_size [128, 128],
    # activation_scheme dynamic (SGLang loads it as BlockInt8Config, no --quantization flag needed).
    "meituan/DeepSeek-R1-Block-INT8": {
        "config": _with(
            _DEEPSEEK_V3,
            quantization_config={
                "activation_scheme": "dynamic",
                "quant_method": "blockwise_int8",
                "weight_block_size": [128, 128],
            },
        ),
        "params_b": 671,
        "aliases": ["deepseek-r1-block-int8"],
    },
    "Qwen/Qwen3-235B-A22B": {"config": _with(_QWEN3_235B, max_position_embeddings=40960), "params_b": 235},
    "Qwen/Qwen3-235B-A22B-Instruct-2507": {
        "config": _with(_QWEN3_235B, max_position_embeddings=262144),
        "params_b": 235,
        "aliases": ["qwen3-235b-a22b-instruct-2507"],
    },
    "Qwen/Qwen3-235B-A22B-Instruct-2507-FP8": {
        "config": _with(_QWEN3_235B, max_position_embeddings=262144, quantization_config=_FP8_BLOCK),
        "params_b": 235,
    },
    "Qwen/Qwen3-30B-A3B": {"config": _with(_QWEN3_30B, max_position_embeddings=40960), "params_b": 30.5},
    "Qwen/Qwen3-30B-A3B-Instruct-2507": {"config": _with(_QWEN3_30B, max_position_embeddings=262144), "params_b": 30.5},
    "Qwen/Qwen3-32B": {"config": _qwen3(5120, 64, 64, 8, 25600), "params_b": 32.8},
    "Qwen/Qwen3-8B": {"config": _qwen3(4096, 36, 32, 8, 12288), "params_b": 8.2},
    "Qwen/Qwen2.5-72B-Instruct": {"config": _QWEN25_72B, "params_b": 72.7},
    "Qwen/Qwen2.5-7B-Instruct": {"config": _qwen2(3584, 28, 28, 4, 18944, 152064, 32768), "params_b": 7.61},
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": {
        "config": _qwen2(1536, 28, 12, 2, 8960, 151936, 131072),
        "params_b": 1.78,
    },
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B": {
        "config": _qwen2(3584, 28, 28, 4, 18944, 152064, 131072),
        "params_b": 7.62,
    },
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B": {
        "config": _qwen2(5120, 48, 40, 8, 13824, 152064, 131072),
        "params_b": 14.8,
    },
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B": {
        "config": _qwen2(5120, 64, 40, 8, 27648, 152064, 131072),
        "params_b": 32.8,
    },
    "deepseek-ai/DeepSeek-R1-Distill-Llama-8B": {"config": _LLAMA31_8B, "params_b": 8.03},
    "deepseek-ai/DeepSeek-R1-Distill-Llama-70B": {"config": _LLAMA31_70B, "params_b": 70.6},
    "meta-llama/Llama-3.1-8B-Instruct": {"config": _LLAMA31_8B, "params_b": 8.03},
    "meta-llama/Llama-3.1-70B-Instruct": {"config": _LLAMA31_70B, "params_b": 70.6},
    "meta-llama/Llama-3.3-70B-Instruct": {"config": _LLAMA31_70B, "params_b": 70.6},
    "meta-llama/Llama-3.1-405B-Instruct": {"config": _LLAMA31_405B, "params_b": 405.9},
    # published totals with the MTP layer: DeepSeek-V3.1/V3.2 685B (model cards)
    "deepseek-ai/DeepSeek-V3.1": {
        "config": _DEEPSEEK_V31,
        "params_b": 685,
        "params_with_mtp": True,
        "aliases": ["deepseek-v3.1"],
    },
    "deepseek-ai/DeepSeek-V3.1-Terminus": {"config": _DEEPSEEK_V31, "params_b": 685, "params_with_mtp": True},
    "deepseek-ai/DeepSeek-V3.2-Exp": {"config": _DEEPSEEK_V32, "params_b": 685, "params_with_mtp": True},
    "deepseek-ai/DeepSeek-V3.2": {
        "config": _DEEPSEEK_V32,
        "params_b": 685,
        "params_with_mtp": True,
        "aliases": ["deepseek-v3.2"],
    },
    # Kimi-K2: 1026.5B, the Hugging Face safetensors count of Kimi-K2-Instruct as listed by
    # https://drose.io/aitools/tools/kimi-k2-instruct ("Parameters: 1026.5B"); the config adds up to 1026.41B
    # (60 MoE layers of 17.06B, one dense layer, 2 x 1.17B embeddings) and the FP8 checkpoint's 128x128-block
    # scales (1/16384 of the quantized weights, 0.06B) make up the rest. The technical report's "1.04T" and the
    # model card's "1T" are rounded. 0905 and Thinking are the same backbone (Thinking's safetensors count is
    # of packed INT4 words, not parameters, so the Instruct count stands for it).
    "moonshotai/Kimi-K2-Instruct": {"config": _KIMI_K2, "params_b": 1026.5, "aliases": ["kimi-k2"]},
    "moonshotai/Kimi-K2-Instruct-0905": {"config": _with(_KIMI_K2, max_position_embeddings=262144), "params_b": 1026.5},
    "moonshotai/Kimi-K2-Thinking": {
        "config": _with(_KIMI_K2, max_position_embeddings=262144, quantization_config=_INT4_EXPERTS_ONLY),
        "params_b": 1026.5,
        "aliases": ["kimi-k2-thinking"],
    },
    # GLM-4.5: 358B is the Hugging Face safetensors count (captured with the model card at
    # https://www.onlylabs.fyi/signals/215ba15c-649f-49a6-b687-455309a9c640: "params 358B"; the card's text says
    # "355 billion total parameters"), MTP layer included with its own embed_tokens and shared_head.head.
    "zai-org/GLM-4.5": {"config": _GLM45, "params_b": 358, "params_with_mtp": True, "aliases": ["glm-4.5"]},
    "zai-org/GLM-4.5-FP8": {
        "config": _with(_GLM45, quantization_config=_FP8_BLOCK),
        "params_b": 358,
        "params_with_mtp": True,
    },
    # GLM-4.6: 357B on Hugging Face (https://www.fitmyllm.com/model/glm-4.6: "357B Parameters"), one embedding and
    # one head fewer than GLM-4.5 (2 x 151552 x 5120 = 1.55B): its checkpoint leaves model.layers.92.embed_tokens
    # and model.layers.92.shared_head.head out and shares the model's (https://github.com/vllm-project/vllm/pull/27597)
    "zai-org/GLM-4.6": {
        "config": _with(_GLM45, max_position_embeddings=202752),
        "params_b": 357,
        "params_with_mtp": True,
        "mtp_shares_embeddings": True,
        "aliases": ["glm-4.6"],
    },
    "zai-org/GLM-4.6-FP8": {
        "config": _with(_GLM45, max_position_embeddings=202752, quantization_config=_FP8_BLOCK),
        "params_b": 357,
        "params_with_mtp": True,
        "mtp_shares_embeddings": True,
    },
    "openai/gpt-oss-120b": {"config": _GPT_OSS_120B, "params_b": 116.83, "aliases": ["gpt-oss-120b"]},
    "openai/gpt-oss-20b": {"config": _GPT_OSS_20B, "params_b": 20.91, "aliases": ["gpt-oss-20b"]},
    # 81.3B: the Hugging Face safetensors count, MTP layer included ("80B" in the name)
    "Qwen/Qwen3-Next-80B-A3B-Instruct": {
        "config": _QWEN3_NEXT,
        # 81,324,862,720 in the safetensors of https://huggingface.co/a-ibrahim-pwc/Qwen3-Next-80B-A3B-Instruct
        # (a mirror of Qwen/Qwen3-Next-80B-A3B-Instruct): 79,674,391,296 + the MTP layer's 1,650,471,424
        "params_b": 81.32486272,
        "params_with_mtp": True,
        "aliases": ["qwen3-next-80b-a3b-instruct", "Qwen/Qwen3-Next-80B-A3B-Thinking"],
    },
    "Qwen/Qwen3-Coder-480B-A35B-Instruct": {
        "config": _QWEN3_CODER_480B,
        "params_b": 480,
        "aliases": ["qwen3-coder-480b-a35b-instruct"],
    },
    "Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8": {
        "config": _with(_QWEN3_CODER_480B, quantization_config=_FP8_BLOCK),
        "params_b": 480,
    },
    # 228.7B: "Parameters: 228.7B total" for the MiniMaxM2ForCausalLM backbone shared by M2 / M2.5 / M2.7
    # (https://huggingface.co/Ex0bit/MiniMax-SLURPY, "Identical to MiniMax-M2.5 / M2.7"; NVIDIA Megatron Bridge lists
    # M2.5 and M2.7 as the same architecture as M2); the model card and transformers' docs round to "230 billion".
    # The checkpoint holds no MTP modules (num_mtp_modules is a training setting).
    "MiniMaxAI/MiniMax-M2": {"config": _MINIMAX_M2, "params_b": 228.7, "aliases": ["minimax-m2"]},
}


def _architecture(config):
    return {key: value for key, value in config.items() if key not in ("quantization_config", "torch_dtype")}


_VARIANTS = {}


def variants(model_id, weight_format):
    """Catalog ids with the same architecture as ``model_id`` whose checkpoint is ``weight_format``."""
    key = (model_id, weight_format)
    if key not in _VARIANTS:
        _VARIANTS[key] = _find_variants(model_id, weight_format)
    return list(_VARIANTS[key])


def _find_variants(model_id, weight_format):
    from ansible_collections.llmops.inference.plugins.module_utils.model_memory import ModelShape

    arch = _architecture(MODELS[model_id]["config"])
    found = []
    for other, entry in sorted(MODELS.items()):
        same = other != model_id and _architecture(entry["config"]) == arch
        if same and ModelShape(entry["config"], name=other).checkpoint_dtype == weight_format:
            found.append(other)
    return found


def _lookup_table():
    table = {}
    for model_id, entry in MODELS.items():
        names = [model_id, model_id.split("/", 1)[1]] + list(entry.get("aliases", []))
        for name in names:
            table[name.lower()] = model_id
    return table


_LOOKUP = _lookup_table()


def resolve(model):
    """Catalog id for ``model`` (case-insensitive, with or without the org prefix), or None."""
    if not model:
        return None
    key = str(model).strip().lower()
    if key in _LOOKUP:
        return _LOOKUP[key]
    if "/" in key:  # ModelScope mirrors use the same names under the same or another org
        return _LOOKUP.get(key.split("/", 1)[1])
    return None


def get(model):
    model_id = resolve(model)
    if model_id is None:
        raise LlmopsError(
            "unknown model %r: not in the catalog and no model_path given. Known: %s. "
            "Give model_path (a folder with config.json) for any other model." % (model, ", ".join(sorted(MODELS)))
        )
    return model_id, MODELS[model_id]
