# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Model shapes from a Hugging Face config.json, and the bytes they need.

Everything here is arithmetic on the published architecture numbers:

* parameters per component (embeddings, attention, dense MLP, routed and shared
  experts, router, norms), so that each can be sharded the way SGLang/vLLM
  shard it (see parallelism.py);
* bytes per component for a serving dtype, keeping embeddings, lm_head, norms,
  biases and MoE routers in bf16 the way FP8/INT8/INT4 checkpoints do;
* KV-cache bytes per token: ``2 * kv_heads * head_dim`` per layer for MHA/GQA,
  ``kv_lora_rank + qk_rope_head_dim`` per layer for MLA (DeepSeek V2/V3/R1).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

WEIGHT_DTYPES = ("auto", "bf16", "fp16", "fp8", "int8", "int4", "mxfp4", "nvfp4")
KV_CACHE_DTYPES = ("auto", "bf16", "fp8")
GIB = float(1 << 30)

# Bytes per parameter of a quantized linear weight, scales included:
# fp8 block quantization keeps one fp32 scale per 128x128 block (DeepSeek/Qwen FP8);
# int8 (W8A8) one fp32 scale per output channel (~4/hidden bytes, added separately);
# int4 (AWQ/GPTQ, group 128) packs 2 weights per byte plus an fp16 scale and a 4-bit zero per group.
FP8_BLOCK_SCALE_BYTES = 4.0 / (128 * 128)
INT4_BYTES = 0.5 + 2.5 / 128
# MXFP4 (OCP microscaling, gpt-oss): 4-bit E2M1 values plus one 8-bit E8M0 scale per 32 values.
MXFP4_BYTES = 0.5 + 1.0 / 32
# NVFP4 (ModelOpt / compressed-tensors): E2M1 values, one FP8 E4M3 scale per 16 values (+ one fp32
# per tensor, negligible).
NVFP4_BYTES = 0.5 + 1.0 / 16
HALF_BYTES = 2.0

REQUIRED_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
MLA_FIELDS = ("kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim")
# Qwen2-family attention has q/k/v biases without a config flag for it.
QKV_BIAS_MODEL_TYPES = ("qwen2", "qwen2_moe")


def _int(cfg, key, default=0):
    value = cfg.get(key)
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise LlmopsError("config field %s=%r is not an integer" % (key, value))


def _checkpoint_dtype(cfg):
    """``(format, block, quant_method)`` of the checkpoint's quantized linear weights.

    ``block`` is the [n, k] quantization block when scales are per block (DeepSeek FP8, meituan
    Block-INT8): every tensor-parallel shard must then hold whole blocks.
    """
    quant = cfg.get("quantization_config") or {}
    method = str(quant.get("quant_method") or "").lower()
    block = quant.get("weight_block_size")
    if method in ("fp8", "fbgemm_fp8"):
        return "fp8", block, method
    if method in ("blockwise_int8", "w8a8_int8", "ascend", "bitsandbytes_8bit"):
        return "int8", block, method
    if method in ("awq", "gptq", "awq_marlin", "gptq_marlin", "moe_wna16"):
        return ("int4" if int(quant.get("bits", 4)) == 4 else "int8"), None, method
    if method == "mxfp4":
        return "mxfp4", None, method
    if method in ("modelopt", "modelopt_fp4") or quant.get("quant_algo"):
        algo = str(quant.get("quant_algo") or "").upper()
        if "FP4" in algo or method == "modelopt_fp4":
            return "nvfp4", None, method or "modelopt_fp4"
        if "FP8" in algo:
            return "fp8", None, method
    if method == "compressed-tensors":
        for group in (quant.get("config_groups") or {}).values():
            weights = group.get("weights") or {}
            bits, kind = weights.get("num_bits"), weights.get("type")
            if bits == 4 and kind == "float":
                return "nvfp4", None, method
            if bits == 4:
                group = weights.get("group_size") or 128
                return "int4", [int(group), 1 if weights.get("symmetric", True) else 0], method
            if bits == 8:
                return ("fp8" if kind == "float" else "int8"), weights.get("block_structure"), method
    torch_dtype = str(cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16").lower()
    if "float16" in torch_dtype and "bfloat16" not in torch_dtype:
        return "fp16", None, ""
    return "bf16", None, ""


# Parts of a layer a checkpoint can leave in 16 bit (modules_to_not_convert / ignore patterns):
# gpt-oss keeps attention and routers in BF16 (only the MXFP4 experts are quantized), Kimi-K2-Thinking
# keeps attention, shared experts and the dense MLP in BF16 (INT4 experts only).
_IGNORE_PARTS = (
    ("self_attn", "attn"),
    ("shared_expert", "shared"),
    ("mlp.gate_proj", "dense_mlp"),
    ("mlp.down_proj", "dense_mlp"),
    (r"mlp\.(gate", "dense_mlp"),
)


def _unquantized_parts(quant):
    patterns = []
    for key in ("modules_to_not_convert", "ignore", "ignored_layers"):
        patterns += [str(item) for item in (quant.get(key) or [])]
    found = set()
    for pattern in patterns:
        for needle, part in _IGNORE_PARTS:
            if needle in pattern:
                found.add(part)
    return frozenset(found)


ROUTER_BIAS_MODEL_TYPES = ("gpt_oss", "glm4_moe", "minimax_m2")
# config.json layer_types values -> how their KV cache grows
LAYER_TYPES = {
    "full_attention": "full",
    "attention": "full",
    "sliding_attention": "sliding",  # KV bounded by sliding_window tokens (gpt-oss, Gemma)
    "chunked_attention": "chunked",  # KV bounded by attention_chunk_size tokens (Llama 4)
    "linear_attention": "linear",  # no per-token KV: a fixed per-sequence state (Qwen3-Next gated DeltaNet)
}
# config keys of layer mixes this planner does not model: refused by name rather than guessed
UNMODELLED_LAYER_KEYS = (
    "hybrid_override_pattern",  # Nemotron-H Mamba/attention mix
    "attn_type_list",  # MiniMax-01 lightning attention
    "layers_block_type",  # Jamba / Zamba style
)
# SGLang's hybrid SWA pool gives the sliding-window layers this share of the full layers' tokens
# (ServerArgs.swa_full_tokens_ratio default 0.8, python/sglang/srt/server_args.py).
SGLANG_SWA_FULL_TOKENS_RATIO = 0.8
# Bytes one token takes in DeepSeek-V3.2's indexer K cache per layer: index_head_dim FP8 values and one
# fp32 scale per 128 (SGLang NSATokenToKVPool, vLLM DeepseekV32IndexerCache: head_dim + head_dim // 128 * 4).
INDEXER_SCALE_BLOCK = 128


class ModelShape:
    """The architecture numbers the planner needs, parsed from one config.json."""

    def __init__(self, config, name="model"):
        if not isinstance(config, dict):
            raise LlmopsError("config of %s is not a JSON object" % name)
        cfg = dict(config)
        if isinstance(cfg.get("text_config"), dict):  # multimodal wrappers keep the LM in text_config
            text = dict(cfg["text_config"])
            for key in ("quantization_config", "torch_dtype", "dtype"):
                text.setdefault(key, cfg.get(key))
            cfg = text
        self.name = name
        self.model_type = str(cfg.get("model_type") or "")
        missing = [key for key in REQUIRED_FIELDS if cfg.get(key) in (None, "")]
        self.n_experts = _int(cfg, "n_routed_experts") or _int(cfg, "num_experts") or _int(cfg, "num_local_experts")
        self.is_mla = cfg.get("kv_lora_rank") not in (None, 0)
        if self.is_mla:
            missing += [key for key in MLA_FIELDS if cfg.get(key) in (None, "")]
        if cfg.get("intermediate_size") in (None, "") and not (
            self.n_experts and cfg.get("moe_intermediate_size") and not _int(cfg, "first_k_dense_replace")
        ):
            missing.append("intermediate_size")
        if missing:
            raise LlmopsError(
                "config of %s lacks %s: a Hugging Face config.json of a decoder-only model is needed"
                % (name, ", ".join(sorted(set(missing))))
            )
        self.hidden = _int(cfg, "hidden_size")
        self.layers = _int(cfg, "num_hidden_layers")
        self.heads = _int(cfg, "num_attention_heads")
        self.kv_heads = _int(cfg, "num_key_value_heads", self.heads) or self.heads
        self.head_dim = _int(cfg, "head_dim") or self.hidden // self.heads
        self.vocab = _int(cfg, "vocab_size")
        self.intermediate = _int(cfg, "intermediate_size")
        self.tie_embeddings = bool(cfg.get("tie_word_embeddings", False))
        self.max_context = _int(cfg, "max_position_embeddings", 4096)
        self.q_lora_rank = _int(cfg, "q_lora_rank")
        self.kv_lora_rank = _int(cfg, "kv_lora_rank")
        self.qk_rope_head_dim = _int(cfg, "qk_rope_head_dim")
        self.qk_nope_head_dim = _int(cfg, "qk_nope_head_dim")
        self.v_head_dim = _int(cfg, "v_head_dim")
        if self.is_mla:
            self.kv_heads = self.heads  # MLA has no grouped KV heads
            self.head_dim = self.qk_nope_head_dim + self.qk_rope_head_dim
        self.experts_per_token = _int(cfg, "num_experts_per_tok")
        self.moe_intermediate = _int(cfg, "moe_intermediate_size") or self.intermediate
        self.n_shared_experts = _int(cfg, "n_shared_experts")
        self.shared_expert_intermediate = _int(cfg, "shared_expert_intermediate_size")
        self.first_k_dense = _int(cfg, "first_k_dense_replace")
        self.moe_layer_freq = _int(cfg, "moe_layer_freq", 1) or 1
        self.decoder_sparse_step = _int(cfg, "decoder_sparse_step", 1) or 1
        self.mlp_only_layers = set(cfg.get("mlp_only_layers") or [])
        self.router_bias = (
            str(cfg.get("topk_method") or "") == "noaux_tc"
            or bool(cfg.get("use_routing_bias"))
            or self.model_type in ROUTER_BIAS_MODEL_TYPES
        )
        # multi-token-prediction layers (DeepSeek/GLM num_nextn_predict_layers, Qwen3-Next mtp_num_hidden_layers)
        self.nextn_layers = _int(cfg, "num_nextn_predict_layers") or _int(cfg, "mtp_num_hidden_layers")
        self.attention_bias = bool(cfg.get("attention_bias", self.model_type in QKV_BIAS_MODEL_TYPES))
        self.qk_norm = self.model_type.startswith("qwen3") or bool(cfg.get("use_qk_norm"))
        # MiniMax-M2 normalizes the whole q/k projection ("qk_norm_type": "per_layer"), Qwen3 one head_dim
        self.qk_norm_per_layer = str(cfg.get("qk_norm_type") or "") == "per_layer"
        # gpt-oss: o_proj and expert biases, one attention-sink logit per head
        self.gpt_oss = self.model_type == "gpt_oss"
        # DeepSeek-V3.2 sparse attention (DSA) lightning indexer
        self.index_heads = _int(cfg, "index_n_heads")
        self.index_head_dim = _int(cfg, "index_head_dim")
        self._parse_layer_types(cfg, name)
        self.checkpoint_dtype, block, self.quant_method = _checkpoint_dtype(cfg)
        if isinstance(block, str):  # compressed-tensors writes "128x128"
            block = [int(x) for x in block.lower().split("x")]
        self.quant_block = list(block) if block else None
        self.unquantized = _unquantized_parts(cfg.get("quantization_config") or {})
        for key in ("hidden", "layers", "heads", "vocab"):
            if getattr(self, key) <= 0:
                raise LlmopsError("config of %s has a non-positive %s" % (name, key))
        self.layer_kinds = [self._layer_kind(i) for i in range(self.layers)]
        # prefix sums of MoE layers let a pipeline stage count its layer kinds in O(1)
        self._moe_prefix = [0]
        for kind in self.layer_kinds:
            self._moe_prefix.append(self._moe_prefix[-1] + (kind == "moe"))

    def _parse_layer_types(self, cfg, name):
        for key in UNMODELLED_LAYER_KEYS:
            if cfg.get(key):
                raise LlmopsError(
                    "config of %s sets %s: its layer types (%s) are not modelled by the planner; plan it with "
                    "accelerator_memory_gib and a measured KV size instead" % (name, key, str(cfg[key])[:60])
                )
        names = cfg.get("layer_types")
        interval = _int(cfg, "full_attention_interval")
        if names:
            if not isinstance(names, list) or len(names) != self.layers:
                raise LlmopsError(
                    "config of %s: layer_types has %s entries for %d layers"
                    % (name, len(names) if isinstance(names, list) else "no list of", self.layers)
                )
            unknown = sorted({str(item) for item in names} - set(LAYER_TYPES))
            if unknown:
                raise LlmopsError(
                    "config of %s has layer type %s, which the planner does not model (known: %s)"
                    % (name, ", ".join(unknown), ", ".join(sorted(LAYER_TYPES)))
                )
            self.attn_types = [LAYER_TYPES[str(item)] for item in names]
        elif interval:  # Qwen3-Next: full attention every interval-th layer, gated DeltaNet elsewhere
            self.attn_types = ["full" if (i + 1) % interval == 0 else "linear" for i in range(self.layers)]
        else:
            self.attn_types = ["full"] * self.layers
        self.window = _int(cfg, "sliding_window")
        self.chunk = _int(cfg, "attention_chunk_size")
        if "sliding" in self.attn_types and not self.window:
            raise LlmopsError("config of %s has sliding_attention layers but no sliding_window" % name)
        if "chunked" in self.attn_types and not self.chunk:
            raise LlmopsError("config of %s has chunked_attention layers but no attention_chunk_size" % name)
        if "linear" in self.attn_types:
            missing = [
                key
                for key in (
                    "linear_num_key_heads",
                    "linear_num_value_heads",
                    "linear_key_head_dim",
                    "linear_value_head_dim",
                    "linear_conv_kernel_dim",
                )
                if not cfg.get(key)
            ]
            if missing:
                raise LlmopsError("config of %s has linear_attention layers but lacks %s" % (name, ", ".join(missing)))
            self.lin_k_heads = _int(cfg, "linear_num_key_heads")
            self.lin_v_heads = _int(cfg, "linear_num_value_heads")
            self.lin_k_dim = _int(cfg, "linear_key_head_dim")
            self.lin_v_dim = _int(cfg, "linear_value_head_dim")
            self.lin_conv = _int(cfg, "linear_conv_kernel_dim")
        self.attn_gate = bool(cfg.get("attn_output_gate", self.model_type == "qwen3_next"))
        self.hybrid = any(kind != "full" for kind in self.attn_types)
        # prefix sums per attention type let a pipeline stage count its layers in O(1)
        self._type_prefix = {}
        for kind in ("full", "sliding", "chunked", "linear"):
            prefix = [0]
            for item in self.attn_types:
                prefix.append(prefix[-1] + (item == kind))
            self._type_prefix[kind] = prefix

    def layers_of_type(self, kind, start=0, stop=None):
        prefix = self._type_prefix[kind]
        return prefix[self.layers if stop is None else stop] - prefix[start]

    def indexer_bytes_per_token_per_layer(self):
        """DeepSeek-V3.2: the indexer's FP8 key (plus its fp32 scales) kept for every token and layer."""
        if not self.index_head_dim:
            return 0
        return self.index_head_dim + (self.index_head_dim // INDEXER_SCALE_BLOCK) * 4

    def linear_state_bytes(self, state_bytes=2.0, conv_bytes=2.0):
        """Gated DeltaNet state of one sequence in one linear-attention layer: the recurrent state
        (v_heads x k_dim x v_dim) and the causal-conv window ((kernel - 1) x conv channels)."""
        if "linear" not in self.attn_types:
            return 0
        recurrent = self.lin_v_heads * self.lin_k_dim * self.lin_v_dim * state_bytes
        channels = 2 * self.lin_k_heads * self.lin_k_dim + self.lin_v_heads * self.lin_v_dim
        return int(recurrent + channels * (self.lin_conv - 1) * conv_bytes)

    def latent_bytes(self, kv_bytes=2.0):
        """KV bytes per token and layer before the indexer. DeepSeek-V3.2's FP8 cache is FlashMLA's sparse
        format: 512 FP8 latent values, one fp32 scale per 128 of them and the 64 RoPE dims kept in BF16
        (656 bytes: SGLang NSATokenToKVPool, vLLM fp8_ds_mla)."""
        if self.is_mla and self.index_head_dim and kv_bytes == 1.0:
            return self.kv_lora_rank + (self.kv_lora_rank // 128) * 4 + self.qk_rope_head_dim * 2
        return self.kv_elements_per_token_per_layer() * kv_bytes

    def attention_bytes_per_token_per_layer(self, kv_bytes=2.0):
        """What one token adds to one softmax-attention layer's cache, unsharded (indexer included)."""
        return self.latent_bytes(kv_bytes) + self.indexer_bytes_per_token_per_layer()

    def sequence_kv_bytes(self, context, kv_bytes=2.0, state_bytes=2.0):
        """Exact cache of one sequence of ``context`` tokens: full layers grow with it, window/chunk layers
        stop at their bound, linear layers hold a fixed state (the hand calculation the tests check)."""
        per_layer = self.attention_bytes_per_token_per_layer(kv_bytes)
        total = self.layers_of_type("full") * context * per_layer
        total += self.layers_of_type("sliding") * min(context, self.window or context) * per_layer
        total += self.layers_of_type("chunked") * min(context, self.chunk or context) * per_layer
        total += self.layers_of_type("linear") * self.linear_state_bytes(state_bytes, state_bytes)
        return int(total)

    def _layer_kind(self, index):
        if not self.n_experts:
            return "dense"
        if self.first_k_dense or self.moe_layer_freq > 1:  # DeepSeek rule
            return "moe" if index >= self.first_k_dense and index % self.moe_layer_freq == 0 else "dense"
        if index in self.mlp_only_layers or (index + 1) % self.decoder_sparse_step:  # Qwen-MoE rule
            return "dense"
        return "moe"

    @property
    def is_moe(self):
        return bool(self.n_experts)

    @property
    def attention(self):
        if self.is_mla:
            return "mla"
        return "mha" if self.kv_heads == self.heads else "gqa"

    def moe_layers_in(self, start, stop):
        return self._moe_prefix[stop] - self._moe_prefix[start]

    def kv_elements_per_token_per_layer(self):
        """KV-cache elements one token needs in one layer, unsharded."""
        if self.is_mla:
            return self.kv_lora_rank + self.qk_rope_head_dim
        return 2 * self.kv_heads * self.head_dim

    def kv_bytes_per_token(self, kv_bytes=2.0):
        """One token in every softmax-attention layer (full, sliding, chunked), one replica, unsharded:
        what the engines' token pools are sized by (vLLM counts window layers at full size too)."""
        attention_layers = self.layers - self.layers_of_type("linear")
        return int(attention_layers * self.attention_bytes_per_token_per_layer(kv_bytes))

    def kv_bytes_per_token_uncompressed(self, kv_bytes=2.0):
        """MLA only: what a cache of decompressed K and V (Hugging Face transformers) would hold."""
        if not self.is_mla:
            return self.kv_bytes_per_token(kv_bytes)
        per_layer = self.heads * (self.qk_nope_head_dim + self.qk_rope_head_dim + self.v_head_dim)
        return int(self.layers * per_layer * kv_bytes)

    def parameter_counts(self):
        """Parameters per component; layer entries are per layer of that kind."""
        h = self.hidden
        counts = {
            "embed": self.vocab * h,
            "lm_head": 0 if self.tie_embeddings else self.vocab * h,
            "final_norm": h,
        }
        # attention: sharded by heads ("attn_heads"), GQA k/v by kv heads ("attn_kv"),
        # replicated low-rank MLA down-projections ("attn_repl"), small non-quantized parts ("small")
        if self.is_mla:
            qk_head = self.qk_nope_head_dim + self.qk_rope_head_dim
            if self.q_lora_rank:
                attn_repl = h * self.q_lora_rank
                attn_heads = self.q_lora_rank * self.heads * qk_head
                small = self.q_lora_rank
            else:
                attn_repl, attn_heads, small = 0, h * self.heads * qk_head, 0
            attn_repl += h * (self.kv_lora_rank + self.qk_rope_head_dim)
            attn_heads += self.kv_lora_rank * self.heads * (self.qk_nope_head_dim + self.v_head_dim)
            attn_heads += self.heads * self.v_head_dim * h
            small += self.kv_lora_rank
            attn_kv = 0
        else:
            # q (twice as wide with Qwen3-Next's output gate) and o by heads
            attn_heads = (3 if self.attn_gate else 2) * h * self.heads * self.head_dim
            attn_kv = 2 * h * self.kv_heads * self.head_dim
            attn_repl = 0
            small = 0
            if self.attention_bias:
                small += (self.heads + 2 * self.kv_heads) * self.head_dim
            if self.qk_norm_per_layer:
                small += (self.heads + self.kv_heads) * self.head_dim
            elif self.qk_norm:
                small += 2 * self.head_dim
            if self.gpt_oss:
                small += h + self.heads  # o_proj bias, attention sinks
        if self.index_head_dim:  # DeepSeek-V3.2 indexer: wq_b, wk, weights_proj (replicated), k_norm
            attn_repl += self.q_lora_rank * self.index_heads * self.index_head_dim
            attn_repl += h * self.index_head_dim + h * self.index_heads
            small += 2 * self.index_head_dim
        small += 2 * h  # input and post-attention RMSNorm
        common = {"attn_heads": attn_heads, "attn_kv": attn_kv, "attn_repl": attn_repl, "small": small}
        dense = dict(common, mlp=3 * h * self.intermediate, experts=0, router=0)
        counts["dense"] = dense
        if self.is_moe:
            shared = 3 * h * self.moe_intermediate * self.n_shared_experts
            router = self.n_experts * h + (self.n_experts if self.router_bias else 0)
            if self.shared_expert_intermediate:
                shared += 3 * h * self.shared_expert_intermediate
                router += h  # shared_expert_gate
            experts = 3 * h * self.moe_intermediate * self.n_experts
            if self.gpt_oss:
                experts += self.n_experts * (2 * self.moe_intermediate + h)  # gate_up and down biases
            counts["moe"] = dict(common, mlp=shared, experts=experts, router=router)
        if "linear" in self.attn_types:
            # a gated DeltaNet layer replaces the attention block: in_proj_qkvz, in_proj_ba, out_proj (by
            # heads), conv1d, dt_bias, A_log, gated norm; stored as the difference to a full-attention block
            k_width, v_width = self.lin_k_heads * self.lin_k_dim, self.lin_v_heads * self.lin_v_dim
            linear_heads = h * (2 * k_width + 2 * v_width) + h * 2 * self.lin_v_heads + v_width * h
            linear_small = (2 * k_width + v_width) * self.lin_conv + 2 * self.lin_v_heads + self.lin_v_dim
            counts["linear_delta"] = {
                "attn_heads": linear_heads - attn_heads,
                "attn_kv": -attn_kv,
                "attn_repl": -attn_repl,
                "small": linear_small + 2 * h - small,
                "mlp": 0,
                "experts": 0,
                "router": 0,
            }
        return counts

    def mtp_parameters(self, embedding_copies=True):
        """Parameters of the multi-token-prediction layers (loaded only when speculative decoding uses
        them): one decoder layer each plus the projection of [embedding; hidden] and its norms.
        DeepSeek/GLM MTP layers have their own embedding and head (embed_tokens, shared_head.head); the
        engines allocate them (the default, for memory), but a checkpoint may leave them out and share
        the model's: GLM-4.6 does, GLM-4.5 does not (vllm-project/vllm#27597). ``embedding_copies=False``
        counts such a checkpoint."""
        if not self.nextn_layers:
            return 0
        counts = self.parameter_counts()
        layer = counts["moe" if self.is_moe else "dense"]
        h = self.hidden
        per_layer = sum(layer.values()) + 2 * h * h + 3 * h
        if embedding_copies and self.model_type in ("deepseek_v3", "deepseek_v32", "glm4_moe"):
            per_layer += 2 * self.vocab * h
        return self.nextn_layers * per_layer

    def checkpoint_parameters(self, with_mtp=False, mtp_embedding_copies=True):
        """Parameters a published checkpoint holds (what its safetensors count adds up to)."""
        mtp = self.mtp_parameters(mtp_embedding_copies) if with_mtp else 0
        return self.total_parameters() + mtp

    def total_parameters(self):
        if getattr(self, "_total_parameters", None) is not None:
            return self._total_parameters
        counts = self.parameter_counts()
        total = counts["embed"] + counts["lm_head"] + counts["final_norm"]
        for kind in self.layer_kinds:
            total += sum(counts[kind].values())
        if "linear_delta" in counts:
            total += self.layers_of_type("linear") * sum(counts["linear_delta"].values())
        self._total_parameters = total
        return total

    def to_dict(self):
        facts = {
            "name": self.name,
            "model_type": self.model_type,
            "attention": self.attention,
            "layers": self.layers,
            "hidden_size": self.hidden,
            "attention_heads": self.heads,
            "kv_heads": self.kv_heads,
            "head_dim": self.head_dim,
            "vocab_size": self.vocab,
            "max_context_length": self.max_context,
            "checkpoint_dtype": self.checkpoint_dtype,
            "parameters": self.total_parameters(),
        }
        if self.is_mla:
            facts.update(
                kv_lora_rank=self.kv_lora_rank, qk_rope_head_dim=self.qk_rope_head_dim, q_lora_rank=self.q_lora_rank
            )
        if self.is_moe:
            facts.update(
                experts=self.n_experts, experts_per_token=self.experts_per_token, moe_layers=self._moe_prefix[-1]
            )
        return facts


def quantized_param_bytes(dtype, hidden, block=None):
    """Bytes per parameter of a linear weight stored in ``dtype``, scales included."""
    if dtype in ("fp8", "int8"):
        if block:  # one fp32 scale per block (DeepSeek FP8, Block-INT8)
            return 1.0 + 4.0 / (block[0] * block[1])
        return 1.0 + 4.0 / hidden  # one fp32 scale per output channel (W8A8 INT8, FP8-dynamic)
    if dtype == "int4":
        if block:  # (group, symmetric): 16-bit scale per group, plus a 4-bit zero when asymmetric
            return 0.5 + (2.0 + (0.0 if block[1] else 0.5)) / block[0]
        return INT4_BYTES
    if dtype == "mxfp4":
        return MXFP4_BYTES
    if dtype == "nvfp4":
        return NVFP4_BYTES
    return HALF_BYTES


def component_bytes(shape, weight_dtype):
    """Bytes per component for ``weight_dtype``.

    Linear weights take the quantized size; embeddings, lm_head, norms, biases and
    routers stay 16-bit in FP8/INT8/INT4/FP4 checkpoints (DeepSeek-V3 FP8, Qwen3 FP8,
    AWQ/GPTQ and W8A8 all keep them unquantized), and so do the parts the checkpoint's
    ignore list names (``shape.unquantized``) when the checkpoint itself is loaded.
    """
    block = shape.quant_block if weight_dtype == shape.checkpoint_dtype else None
    linear = quantized_param_bytes(weight_dtype, shape.hidden, block)
    skip = shape.unquantized if weight_dtype == shape.checkpoint_dtype else frozenset()
    attn = HALF_BYTES if "attn" in skip else linear
    counts = shape.parameter_counts()
    result = {
        "embed": counts["embed"] * HALF_BYTES,
        "lm_head": counts["lm_head"] * HALF_BYTES,
        "final_norm": counts["final_norm"] * HALF_BYTES,
    }
    for kind in ("dense", "moe", "linear_delta"):
        if kind not in counts:
            continue
        layer = counts[kind]
        mlp = HALF_BYTES if ("dense_mlp" if kind == "dense" else "shared") in skip else linear
        result[kind] = {
            "attn_heads": layer["attn_heads"] * attn,
            "attn_kv": layer["attn_kv"] * attn,
            "attn_repl": layer["attn_repl"] * attn,
            "mlp": layer["mlp"] * mlp,
            "experts": layer["experts"] * linear,
            "small": layer["small"] * HALF_BYTES,
            "router": layer["router"] * HALF_BYTES,
        }
    return result


def total_weight_bytes(shape, weight_dtype):
    parts = component_bytes(shape, weight_dtype)
    total = parts["embed"] + parts["lm_head"] + parts["final_norm"]
    moe_layers = shape.moe_layers_in(0, shape.layers)
    total += (shape.layers - moe_layers) * sum(parts["dense"].values())
    if moe_layers:
        total += moe_layers * sum(parts["moe"].values())
    if "linear_delta" in parts:
        total += shape.layers_of_type("linear") * sum(parts["linear_delta"].values())
    return total


_LAYER_KEY = re.compile(r"(?:^|\.)layers\.(\d+)\.")


def read_model_dir(model_path):
    """Read config.json and, when present, the checkpoint's exact size.

    Returns ``(config, checkpoint_bytes, extra_layers)``: checkpoint_bytes from
    ``model.safetensors.index.json`` (metadata.total_size) or a single
    ``model.safetensors``; extra_layers counts layers the index holds beyond
    num_hidden_layers (DeepSeek's MTP layer, not loaded for plain serving).
    """
    path = os.path.expanduser(str(model_path))
    if os.path.isdir(path):
        folder, config_file = path, os.path.join(path, "config.json")
    else:
        folder, config_file = os.path.dirname(path) or ".", path
    if not os.path.isfile(config_file):
        raise LlmopsError("model_path %s has no config.json (looked for %s)" % (model_path, config_file))
    try:
        with open(config_file) as handle:
            config = json.load(handle)
    except ValueError as exc:
        raise LlmopsError("%s is not valid JSON: %s" % (config_file, exc))
    checkpoint_bytes, extra_layers = None, 0
    index_file = os.path.join(folder, "model.safetensors.index.json")
    single_file = os.path.join(folder, "model.safetensors")
    if os.path.isfile(index_file):
        try:
            with open(index_file) as handle:
                index = json.load(handle)
        except ValueError as exc:
            raise LlmopsError("%s is not valid JSON: %s" % (index_file, exc))
        total = (index.get("metadata") or {}).get("total_size")
        if total:
            checkpoint_bytes = int(total)
        layers = int((config.get("text_config") or config).get("num_hidden_layers") or 0)
        seen = set()
        for key in index.get("weight_map") or {}:
            match = _LAYER_KEY.search(key)
            if match:
                seen.add(int(match.group(1)))
        extra_layers = len([i for i in seen if layers and i >= layers])
    elif os.path.isfile(single_file):
        checkpoint_bytes = os.path.getsize(single_file)
    return config, checkpoint_bytes, extra_layers


def to_gib(value):
    return value / GIB
