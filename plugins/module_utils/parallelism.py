# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parallelism planner: does a model fit, with which TP/PP/DP/EP, and with which engine flags.

``plan(request)`` takes the module's arguments as a dict and returns the
``plan`` dict (see plugins/modules/parallelism_plan.py for the contract).
Bad input raises LlmopsError; a plan that does not fit returns fits=False
with the reasons in GiB and accelerators, including the smallest cluster that
would fit. The memory model is documented in docs/parallelism_plan.md.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

from ansible_collections.llmops.inference.plugins.module_utils import (
    accelerator_catalog,
    engine_cli,
    engine_memory,
    model_catalog,
    weight_formats,
)
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError
from ansible_collections.llmops.inference.plugins.module_utils.model_memory import (
    GIB,
    KV_CACHE_DTYPES,
    SGLANG_SWA_FULL_TOKENS_RATIO,
    WEIGHT_DTYPES,
    ModelShape,
    component_bytes,
    read_model_dir,
    total_weight_bytes,
)

ENGINES = ("sglang", "vllm")
# vLLM's gpu_memory_utilization also covers activations (profiled peak) and NCCL buffers (and, from 0.21, the
# profiled CUDA graphs: engine_memory.vllm_defaults); SGLang's mem_fraction_static covers only weights + KV pool.
VLLM_RUNTIME_RESERVE_GIB = 2.0
# SGLang sizes the pool as rest = (free after loading) - (free after distributed init) x (1 - mem_fraction_static)
# (ModelRunner.profile_max_num_token, python/sglang/srt/model_executor/model_runner.py, the same in v0.4.3.post4,
# v0.4.9.post2, v0.5.3 and v0.5.6.post2), i.e. pool = (memory - held before the weights) x fraction - weights:
# what the process holds before loading (the memory the driver keeps from CUDA, the CUDA context, NCCL
# communicators) is scaled by the fraction, not taken whole. Measured on an H200 (torch 2.11, NCCL 2.28.9;
# benchmarks/device/runtime_footprint.py): nvidia-smi total - free after the CUDA context = 1.21 GiB, NCCL over
# NVLink 0.84 GiB more; over PCIe (4 x L4, no custom all-reduce) SGLang logged 0.13 GB for its NCCL init.
SGLANG_CONTEXT_GIB = 1.2
SGLANG_NCCL_GIB = {"fast": 0.85, "pcie": 0.15}
# MoE all-to-all: auto picks DeepEP for expert parallel across nodes when the fabric allows it.
MOE_ALL_TO_ALL = ("auto", "deepep", "none")
DEEPEP_MODES = ("auto", "normal", "low_latency")
# vLLM has no mode switch per batch: SGLang's auto (low latency for decode, normal for prefill) maps to the
# low-latency kernels, which keep CUDA graphs (vllm/config/parallel.py all2all_backend).
VLLM_DEEPEP_BACKENDS = {
    "auto": "deepep_low_latency",
    "low_latency": "deepep_low_latency",
    "normal": "deepep_high_throughput",
}
# DeepEP's kernels need Hopper or newer (SM 9.0+, NVSHMEM IBGDA); fabric_check's shapes
DEEPEP_ARCHS = ("hopper", "blackwell")
FABRIC_SHAPES = ("", "all-to-all", "rail-only", "partial", "none")
MIN_CONTEXT = 4096
MAX_TOKENS = 1 << 40  # a stage without any per-token cache (all linear attention, no state): unbounded
MAX_SEARCH_NODES = 64
DEFAULT_ACCELERATORS_PER_NODE = 8

_SHAPES = {}
_PARTS = {}
_CANDIDATES = {}


def runtime_reserve_gib(engine, fraction, ranks, intra_link="nvlink"):
    """GiB per accelerator that ``engine`` keeps from its KV pool besides the weights.

    vLLM: a flat reserve inside gpu_memory_utilization (profiled activations, non-torch memory).
    SGLang: the memory held before loading, scaled by mem_fraction_static (its pool formula); NCCL only
    when the model spans more than one rank.
    """
    if engine == "vllm":
        return VLLM_RUNTIME_RESERVE_GIB  # its CUDA-graph reserve by version is added by the caller
    held = SGLANG_CONTEXT_GIB
    if ranks > 1:
        held += SGLANG_NCCL_GIB["pcie" if intra_link == "pcie" else "fast"]
    return held * fraction


class _Context:
    """Everything fixed for one request: model, dtypes, hardware, engine."""

    def __init__(self, request):
        self.request = request
        self.warnings = []
        self._load_model(request)
        self._load_hardware(request)
        self._resolve_dtypes(request)
        self.engine = request["engine"]
        self.fraction_override = request.get("memory_fraction")
        shape = self.shape
        self.kv_per_layer_elements = shape.kv_elements_per_token_per_layer()
        self._resolve_engine_version(request)
        self.vllm_graphs_gib = 0.0
        if self.engine == "vllm":
            self.vllm_fraction, self.vllm_graphs_gib = engine_memory.vllm_defaults(self.memory_rule)
        self.a2a = request.get("moe_all_to_all") or "auto"
        self.deepep_mode = request.get("deepep_mode") or "auto"
        self.fabric_shape = request.get("fabric_shape") or ""
        self.cuda_graph_max_bs = request.get("cuda_graph_max_bs")
        # gated DeltaNet state dtype: SGLang keeps the recurrent state in fp32 (--mamba-ssm-dtype float32),
        # vLLM in the model dtype (mamba_ssm_cache_dtype auto)
        self.state_bytes = (4.0 if self.engine == "sglang" else 2.0) if "linear" in shape.attn_types else 0.0
        self.state_context = float(request.get("context_length") or shape.max_context)
        self.hybrid = shape.hybrid
        self._evaluated = {}
        self.indexer_bytes = shape.indexer_bytes_per_token_per_layer()
        self.state_per_layer = shape.linear_state_bytes(self.state_bytes, 2.0) if self.state_bytes else 0.0
        self.seq_tokens = None
        # speculative decoding with the model's MTP layers loads them (weights and one more KV layer each)
        self.mtp_layers = shape.nextn_layers if request.get("speculative_mtp") else 0
        if request.get("speculative_mtp") and not shape.nextn_layers:
            raise LlmopsError("speculative_mtp: %s has no multi-token-prediction layers" % self.model_id)
        self.mtp_extra = 0.0
        if self.mtp_layers:
            from_checkpoint = shape.mtp_parameters() / shape.nextn_layers - sum(
                shape.parameter_counts()["moe" if shape.is_moe else "dense"].values()
            )
            self.mtp_extra = from_checkpoint * 2.0  # projection, norms (and embedding copies) in 16 bit

    def _resolve_engine_version(self, request):
        """The engine release the memory model follows: engine_version, else the image tag, else the newest."""
        version = request.get("engine_version")
        image = request.get("engine_image")
        if image and not version:
            engine, version = engine_cli.image_version(image)
            if engine is not None and engine != request["engine"]:
                raise LlmopsError("engine_image %s runs %s, not %s" % (image, engine, request["engine"]))
        self.memory_rule, self.engine_version, warnings = engine_memory.rule_version(request["engine"], version)
        self.warnings.extend(warnings)

    def _load_model(self, request):
        model, model_path = request.get("model"), request.get("model_path")
        self.checkpoint_bytes, self.extra_layers = None, 0
        if model_path:
            config, self.checkpoint_bytes, self.extra_layers = read_model_dir(model_path)
            self.model_id = model or str(model_path)
            self.shape = ModelShape(config, name=self.model_id)
            self.shape_key = None
            self.weights_source = "safetensors index" if self.checkpoint_bytes else "config.json"
        elif model:
            self.model_id, entry = model_catalog.get(model)
            if self.model_id not in _SHAPES:
                _SHAPES[self.model_id] = ModelShape(entry["config"], name=self.model_id)
            self.shape = _SHAPES[self.model_id]
            self.shape_key = self.model_id
            self.weights_source = "catalog"
        else:
            raise LlmopsError("give model (a catalog id) or model_path (a folder with config.json)")

    def _load_hardware(self, request):
        name, memory_gib = request.get("accelerator"), request.get("accelerator_memory_gib")
        if name:
            self.accelerator = accelerator_catalog.get(name)
        elif memory_gib:
            self.accelerator = {
                "id": "custom-%sG" % memory_gib,
                "vendor": "nvidia",
                "arch": "unknown",
                "fp8": True,
                "link": None,
                "link_gbps": None,
            }
        else:
            raise LlmopsError("give accelerator (a catalog id) or accelerator_memory_gib")
        if memory_gib is not None:
            if memory_gib <= 0:
                raise LlmopsError("accelerator_memory_gib must be positive, got %s" % memory_gib)
            self.accelerator["memory_gib"] = float(memory_gib)
        self.memory_bytes = self.accelerator["memory_gib"] * GIB
        per_node = request.get("accelerators_per_node")
        default_per_node = self.accelerator.get("per_node", DEFAULT_ACCELERATORS_PER_NODE)
        self.per_node = default_per_node if per_node is None else int(per_node)
        # NVL72: NVLink joins the trays of one rack, so TP may span nodes inside it without IB/RoCE
        self.nvlink_domain = self.accelerator.get("nvlink_domain") or 0
        self.nodes = 1 if request.get("nodes") is None else int(request["nodes"])
        if self.per_node < 1 or self.nodes < 1:
            raise LlmopsError(
                "no accelerators to plan for: accelerators_per_node=%s, nodes=%s (both must be at least 1)"
                % (self.per_node, self.nodes)
            )
        intra = request.get("intra_node_link") or self.accelerator.get("link") or "pcie"
        if intra == "nvlink" and self.accelerator.get("link") in ("pcie", "hccs"):
            raise LlmopsError(
                "%s has no NVLink (its intra-node link is %s)" % (self.accelerator["id"], self.accelerator["link"])
            )
        self.intra_link = intra
        self.inter_link = request.get("inter_node_link")
        if self.nodes > 1 and not self.inter_link and self.nvlink_domain:
            self.inter_link = "nvlink"  # the trays of an NVL72 rack share one NVLink fabric
        elif self.nodes > 1 and not self.inter_link:
            self.warnings.append(
                "inter_node_link not given: assuming tcp, so tensor parallel stays inside a node; "
                "set ib or roce to allow TP across nodes"
            )
            self.inter_link = "tcp"
        self.is_ascend = self.accelerator.get("arch") == "ascend"

    def _resolve_dtypes(self, request):
        shape, acc = self.shape, self.accelerator
        wanted = request.get("weight_dtype") or "auto"
        checkpoint = shape.checkpoint_dtype
        dtype = checkpoint if wanted == "auto" else wanted
        if dtype == "fp8" and self.is_ascend:
            if wanted == "fp8":
                raise LlmopsError("%s has no FP8 support: use weight_dtype bf16 or int8 (W8A8)" % acc["id"])
            self.warnings.append(
                "%s cannot run the FP8 checkpoint: planned with BF16 weights (convert with "
                "fp8_cast_bf16.py) - INT8 W8A8 weights (weight_dtype int8) need half of that" % acc["id"]
            )
            dtype = "bf16"
        # can this engine run these weights on this hardware? (weight_formats.py has the table and sources)
        method = shape.quant_method if dtype == checkpoint else ""
        verdict, why = weight_formats.support(dtype, method, acc, request["engine"])
        self.format_refusal = why if verdict == "refused" else None
        if verdict == "emulated":
            self.warnings.append(why)
        self.online_fp8 = dtype == "fp8" and checkpoint != "fp8"
        if dtype in ("int8", "int4", "mxfp4", "nvfp4") and checkpoint != dtype:
            kinds = {"int4": "AWQ/GPTQ", "int8": "W8A8", "mxfp4": "MXFP4", "nvfp4": "NVFP4"}
            self.warnings.append(
                "weight_dtype %s needs a pre-quantized checkpoint (%s); %s is %s"
                % (dtype, kinds[dtype], self.model_id, checkpoint)
            )
        if dtype in ("bf16", "fp16") and checkpoint in ("fp8", "int8", "int4", "mxfp4", "nvfp4"):
            self.warnings.append(
                "weight_dtype %s needs a dequantized %s checkpoint; %s ships %s"
                % (dtype, dtype, self.model_id, checkpoint)
            )
        self.weight_dtype = dtype
        kv = request.get("kv_cache_dtype") or "auto"
        if kv == "fp8" and self.is_ascend:
            raise LlmopsError("%s has no FP8 KV cache: use kv_cache_dtype auto or bf16" % acc["id"])
        self.kv_cache_dtype = "fp16" if kv == "auto" and dtype == "fp16" else ("bf16" if kv == "auto" else kv)
        self.kv_bytes = 1.0 if kv == "fp8" else 2.0
        # block-quantized FP8 keeps its block shape: every TP shard of a quantized matrix must be whole blocks
        self.block_n = shape.quant_block[0] if (dtype == checkpoint and shape.quant_block) else 0
        key = (self.shape_key, dtype)
        if self.shape_key is not None and key in _PARTS:
            self.parts, self.scale = _PARTS[key]
            return
        self.parts = component_bytes(shape, dtype)
        self.scale = 1.0
        if self.checkpoint_bytes and dtype == checkpoint:
            computed = total_weight_bytes(shape, dtype)
            extra = 0.0
            if self.extra_layers:  # MTP layers are in the checkpoint but not loaded for serving
                last = self.parts[shape.layer_kinds[-1]]
                extra = self.extra_layers * (sum(last.values()) + 2 * shape.hidden * shape.hidden)
            self.scale = max(self.checkpoint_bytes - extra, 1.0) / computed
        if self.shape_key is not None:
            _PARTS[key] = (self.parts, self.scale)

    def weights_total(self):
        """Weight bytes of one replica."""
        if not hasattr(self, "_weights_total"):
            key = ("total", self.shape_key, self.weight_dtype)
            if self.shape_key is not None and key in _PARTS:
                self._weights_total = _PARTS[key]
            else:
                self._weights_total = total_weight_bytes(self.shape, self.weight_dtype) * self.scale
                if self.shape_key is not None:
                    _PARTS[key] = self._weights_total
        return self._weights_total

    # --- layouts -------------------------------------------------------------------------------

    def reserve(self, tp, pp=1, dp=1, adp=1, ep=1):
        """Bytes per accelerator the engine keeps from the KV pool besides the weights (see the constants; vLLM
        adds its CUDA-graph reserve where the version's rule counts graphs inside the budget)."""
        fraction = self.memory_fraction(tp, pp, dp, adp, ep)
        return (runtime_reserve_gib(self.engine, fraction, tp * pp, self.intra_link) + self.vllm_graphs_gib) * GIB

    def memory_fraction(self, tp, pp=1, dp=1, adp=1, ep=1):
        """The given fraction, else the engine version's default rule for this layout (engine_memory)."""
        if self.fraction_override is not None:
            return self.fraction_override
        if self.engine == "vllm":
            return self.vllm_fraction
        return engine_memory.sglang_memory_fraction(
            self.memory_rule,
            self.accelerator.get("memory_mib") or self.memory_bytes / float(1 << 20),
            tp=tp,
            pp=pp,
            attn_dp=adp,
            mla=self.shape.is_mla,
            deepep=self.all_to_all(tp, pp, dp, ep)[0] == "deepep",
            speculative=bool(self.mtp_layers),
            ascend=self.is_ascend,
            cuda_graph_max_bs=self.cuda_graph_max_bs,
        )

    def all_to_all(self, tp, pp=1, dp=1, ep=1):
        """(backend, why) for the MoE all-to-all of a layout: "deepep" or "none".

        auto picks DeepEP for expert parallel across nodes on Hopper or newer over IB/RoCE when fabric_check
        measured the fabric as all-to-all (DeepEP/NVSHMEM send from every GPU to every GPU: a rail-only fabric
        hangs them). Within one node the engines' default all-to-all stays (NVLink).
        """
        if self.a2a == "none" or not self.shape.is_moe or ep <= 1:
            return "none", "no expert parallel" if ep <= 1 else "off"
        if self.engine == "sglang" and ep != tp:
            return "none", "SGLang's DeepEP sets the expert-parallel size to TP (%d), the plan has %d" % (tp, ep)
        if self.accelerator.get("vendor") != "nvidia" or self.accelerator.get("arch") not in DEEPEP_ARCHS:
            return "none", "DeepEP needs NVIDIA Hopper or newer; %s is %s" % (
                self.accelerator["id"],
                self.accelerator.get("arch"),
            )
        across = tp * pp * dp > self.per_node
        if across and self.inter_link not in accelerator_catalog.FAST_INTER_NODE_LINKS:
            return "none", "DeepEP across nodes needs an ib or roce inter-node link (have %s)" % self.inter_link
        if across and self.fabric_shape and self.fabric_shape != "all-to-all":
            return "none", "the fabric is %s: DeepEP/NVSHMEM needs every NIC to reach every node's NICs" % (
                self.fabric_shape
            )
        if self.a2a == "deepep":
            return "deepep", "asked for"
        if not across:
            return "none", "expert parallel stays inside one node (NVLink)"
        if not self.fabric_shape:
            return "none", "the fabric shape is not measured (gpu_node_checks_fabric_check)"
        return "deepep", "expert parallel across nodes over an all-to-all fabric"

    def moe_split(self, tp, dp, ep):
        """(GPUs the routed experts are spread over, TP size inside each expert)."""
        group = tp * dp if self.engine == "vllm" else tp  # vLLM's MoE layers span all DP ranks
        return group, (1 if self.engine == "vllm" and ep > 1 else group // ep)

    def illegal(self, tp, pp, dp=1, adp=1, ep=1, max_nodes=None):
        """Why a layout cannot run, or None."""
        shape, per_node = self.shape, self.per_node
        max_gpus = per_node * (max_nodes or self.nodes)
        if tp < 1 or pp < 1 or dp < 1 or adp < 1 or ep < 1:
            return "parallel sizes must be at least 1"
        if shape.heads % tp:
            legal = [d for d in range(1, shape.heads + 1) if shape.heads % d == 0]
            return "tensor_parallel=%d does not divide the %d attention heads of %s (legal: %s)" % (
                tp,
                shape.heads,
                self.model_id,
                ", ".join(str(d) for d in legal if d <= 128),
            )
        kv = shape.kv_heads
        if (tp <= kv and kv % tp) or (tp > kv and tp % kv):
            return (
                "tensor_parallel=%d does not split the %d KV heads of %s evenly (TP must divide them, or be "
                "a multiple of them)" % (tp, kv, self.model_id)
            )
        if pp > shape.layers:
            return "pipeline_parallel=%d exceeds the %d layers of %s" % (pp, shape.layers, self.model_id)
        instance = tp * pp
        total = instance * dp
        if total > max_gpus:
            return "the layout needs %d accelerators (TP %d x PP %d x DP %d), %d nodes x %d give %d" % (
                total,
                tp,
                pp,
                dp,
                max_gpus // per_node,
                per_node,
                max_gpus,
            )
        if total > per_node and total % per_node:
            return "a layout across nodes must use whole nodes: %d accelerators is not a multiple of %d per node" % (
                total,
                per_node,
            )
        if self.engine == "sglang" and dp > 1 and total > per_node:
            # SGLang's start-up check (0.5.23 arg_groups/validation_hook.py check_server_args): "multi-node
            # data-parallel replicas are not supported", and (tp_size * pp_size) % nnodes == 0 ("tp_size must
            # be divisible by number of nodes"), which --tp-size 1 --dp-size N --nnodes N breaks.
            return (
                "SGLang cannot spread data_parallel=%d replicas over %d nodes (its start-up check wants "
                "tp_size x pp_size divisible by nnodes): use one server per node (llmops_replicas) or tensor/"
                "attention data parallel across the nodes" % (dp, total // per_node)
            )
        if instance > per_node and per_node % tp and tp % per_node:
            return "TP %d does not line up with %d accelerators per node" % (tp, per_node)
        if self.nvlink_domain and tp > per_node:
            if tp > self.nvlink_domain:
                return (
                    "tensor_parallel=%d spans more than one NVLink domain of %s (%d GPUs): TP and EP stay "
                    "inside a rack; use pipeline or data parallel across racks"
                    % (tp, self.accelerator["id"], self.nvlink_domain)
                )
        elif tp > per_node and self.inter_link not in accelerator_catalog.FAST_INTER_NODE_LINKS:
            return (
                "tensor_parallel=%d spans nodes, which needs an ib or roce inter-node link (have %s); use "
                "pipeline_parallel across nodes instead" % (tp, self.inter_link)
            )
        if adp > 1:
            if self.engine != "sglang":
                return (
                    "attention_data_parallel is SGLang's --enable-dp-attention; with vLLM use data_parallel "
                    "with expert_parallel for MoE models"
                )
            if tp % adp:
                return "attention_data_parallel=%d must divide tensor_parallel=%d" % (adp, tp)
            if dp > 1:
                return "SGLang uses --dp-size for either replicas or DP attention, not both"
        if ep > 1:
            if not shape.is_moe:
                return "expert_parallel=%d needs a MoE model; %s is dense" % (ep, self.model_id)
            if shape.n_experts % ep:
                return "expert_parallel=%d does not divide the %d experts" % (ep, shape.n_experts)
            if self.engine == "vllm" and ep != tp * dp:
                return (
                    "vLLM sets the expert-parallel size to tensor_parallel x data_parallel (= %d): set "
                    "expert_parallel to %d or 1" % (tp * dp, tp * dp)
                )
            fast = self.inter_link in accelerator_catalog.FAST_INTER_NODE_LINKS
            if self.nvlink_domain and ep > self.nvlink_domain and not fast:
                return "expert_parallel=%d spans more than one NVLink domain of %s (%d GPUs)" % (
                    ep,
                    self.accelerator["id"],
                    self.nvlink_domain,
                )
            if self.engine == "sglang" and tp % ep:
                return "expert_parallel=%d must divide tensor_parallel=%d in SGLang" % (ep, tp)
        if self.block_n:
            has_dense = shape.moe_layers_in(0, shape.layers) < shape.layers
            if has_dense and (shape.intermediate % tp or (shape.intermediate // tp) % self.block_n):
                return (
                    "tensor_parallel=%d splits the %s MLP (intermediate %d) into shards that are not whole "
                    "%d-wide quantization blocks" % (tp, self.weight_dtype.upper(), shape.intermediate, self.block_n)
                )
            if shape.is_moe:
                moe_tp = self.moe_split(tp, dp, ep)[1]
                if (shape.moe_intermediate // moe_tp) % self.block_n:
                    return (
                        "TP %d splits each %s expert (intermediate %d) into shards that are not whole %d-wide "
                        "quantization blocks; use expert_parallel"
                        % (moe_tp, self.weight_dtype.upper(), shape.moe_intermediate, self.block_n)
                    )
        return None

    def evaluate(self, tp, pp, dp=1, adp=1, ep=1):
        """Weights (bytes, heaviest stage) and KV tokens one attention domain holds."""
        key = (tp, pp, dp, adp, ep)
        cached = self._evaluated.get(key)
        if cached is None:
            cached = self._evaluate(tp, pp, dp, adp, ep)
            cached = self._evaluated[key] = cached + (self.seq_tokens, self.seq_count)
        self.seq_tokens, self.seq_count = cached[3], cached[4]
        return cached[:3]

    def _evaluate(self, tp, pp, dp, adp, ep):
        shape, parts = self.shape, self.parts
        attn_tp = tp // adp
        moe_group, _unused = self.moe_split(tp, dp, ep)
        kv_share = 1.0 / min(attn_tp, shape.kv_heads)

        def layer_bytes(layer):
            return (
                layer["attn_heads"] / attn_tp
                + layer["attn_kv"] * kv_share
                + layer["attn_repl"]
                + layer["small"]
                + layer["router"]
                + layer["mlp"] / tp
                + layer["experts"] / moe_group
            )

        dense = layer_bytes(parts["dense"])
        moe = layer_bytes(parts["moe"]) if "moe" in parts else 0.0
        linear_delta = layer_bytes(parts["linear_delta"]) if "linear_delta" in parts else 0.0
        if shape.is_mla:
            kv_layer = shape.latent_bytes(self.kv_bytes)  # the latent is replicated on every TP rank
        else:
            kv_layer = 2 * shape.head_dim * max(1, shape.kv_heads // attn_tp) * self.kv_bytes
        kv_layer += self.indexer_bytes  # DeepSeek-V3.2, replicated like the latent
        # gated DeltaNet state per sequence and layer, its heads split by TP; spread over the target context
        state = self.state_per_layer / attn_tp
        usable = self.memory_bytes * self.memory_fraction(tp, pp, dp, adp, ep) - self.reserve(tp, pp, dp, adp, ep)
        worst_weights, tokens, seq, count = 0.0, None, None, None
        base, extra = divmod(shape.layers, pp)
        if not self.hybrid and not self.mtp_layers and not linear_delta:
            # every layer full attention (the common case): the same arithmetic without the hybrid terms
            start = 0
            head, tail = parts["embed"] / tp, parts["lm_head"] / tp + parts["final_norm"]
            if shape.tie_embeddings and pp > 1:
                tail += head
            for stage in range(pp):
                stop = start + base + (1 if stage < extra else 0)
                n_moe = shape.moe_layers_in(start, stop)
                weights = (stop - start - n_moe) * dense + n_moe * moe
                if stage == 0:
                    weights += head
                if stage == pp - 1:
                    weights += tail
                weights *= self.scale
                if weights > worst_weights:
                    worst_weights = weights
                free = usable - weights
                stage_tokens = int(free // (kv_layer * (stop - start))) if free > 0 else 0
                if tokens is None or stage_tokens < tokens:
                    tokens = stage_tokens
                start = stop
            self.seq_tokens, self.seq_count = tokens, None
            return worst_weights, tokens, usable
        start = 0
        for stage in range(pp):
            stop = start + base + (1 if stage < extra else 0)
            n_moe = shape.moe_layers_in(start, stop)
            weights = (stop - start - n_moe) * dense + n_moe * moe
            n_linear = shape.layers_of_type("linear", start, stop) if linear_delta or state else 0
            weights += n_linear * linear_delta
            if stage == 0:
                weights += parts["embed"] / tp
            if stage == pp - 1:
                weights += parts["lm_head"] / tp + parts["final_norm"]
                if shape.tie_embeddings and pp > 1:
                    weights += parts["embed"] / tp
                weights += self.mtp_layers * ((moe if shape.is_moe else dense) + self.mtp_extra / tp)
            weights *= self.scale
            worst_weights = max(worst_weights, weights)
            per_token = kv_layer * self._token_layers(start, stop, stage == pp - 1)
            per_token += n_linear * state / self.state_context
            free = max(usable - weights, 0.0)
            stage_tokens = int(free // per_token) if per_token else MAX_TOKENS
            tokens = stage_tokens if tokens is None else min(tokens, stage_tokens)
            if self.hybrid:
                stage_seq = self._sequence_tokens(free, kv_layer, state, start, stop, stage == pp - 1)
                one = self._sequence_bytes(kv_layer, state, start, stop, stage == pp - 1)
                stage_count = int(free // one) if one else MAX_TOKENS
                count = stage_count if count is None else min(count, stage_count)
            else:
                stage_seq = stage_tokens
            seq = stage_seq if seq is None else min(seq, stage_seq)
            start = stop
        self.seq_tokens = seq
        self.seq_count = count  # sequences of the target context one domain holds (hybrid models)
        return worst_weights, tokens, usable

    def _sequence_tokens(self, free, kv_layer, state, start, stop, last):
        """Longest single sequence a stage holds: full layers grow with it, window/chunk layers stop at
        their bound, linear-attention layers hold their state once."""
        shape = self.shape
        full = shape.layers_of_type("full", start, stop) + (self.mtp_layers if last else 0)
        bounded = shape.layers_of_type("sliding", start, stop) + shape.layers_of_type("chunked", start, stop)
        free -= shape.layers_of_type("linear", start, stop) * state
        window = max(shape.window, shape.chunk)
        if free <= 0:
            return 0
        if bounded * window * kv_layer <= free and full:
            return int((free - bounded * window * kv_layer) // (full * kv_layer))
        if bounded * window * kv_layer <= free:
            return MAX_TOKENS
        return int(free // ((full + bounded) * kv_layer))

    def _sequence_bytes(self, kv_layer, state, start, stop, last):
        """Cache of one sequence of the target context in a stage (per accelerator)."""
        shape = self.shape
        context = self.state_context
        full = shape.layers_of_type("full", start, stop) + (self.mtp_layers if last else 0)
        window = min(context, max(shape.window, shape.chunk) or context)
        bounded = shape.layers_of_type("sliding", start, stop) + shape.layers_of_type("chunked", start, stop)
        return (full * context + bounded * window) * kv_layer + shape.layers_of_type("linear", start, stop) * state

    def _token_layers(self, start, stop, last):
        """Layers whose cache a token of the engine's token pool occupies (window layers: see the docs)."""
        shape = self.shape
        if not self.hybrid:  # every layer is full attention: the common case, kept cheap
            return stop - start + (self.mtp_layers if last else 0)
        full = shape.layers_of_type("full", start, stop) + (self.mtp_layers if last else 0)
        bounded = shape.layers_of_type("sliding", start, stop) + shape.layers_of_type("chunked", start, stop)
        if bounded and full and self.engine == "sglang":
            # SGLang's hybrid SWA pool: the window layers get swa_full_tokens_ratio x the full pool's tokens
            return full + SGLANG_SWA_FULL_TOKENS_RATIO * bounded
        return full + bounded  # vLLM sizes every attention layer's blocks alike (its hybrid allocator)

    def candidates(self, nodes, tp_only=None, pp_only=None, gpus_only=None, fixed=None):
        """Legal (tp, pp) pairs, most preferred first: fewest accelerators, then the engine's preferred split."""
        key = None
        if self.shape_key is not None:  # catalog models: the answer depends only on these
            key = (
                self.shape_key,
                self.block_n,
                self.per_node,
                nodes,
                self.inter_link,
                self.nvlink_domain,
                self.engine,
                tp_only,
                pp_only,
                gpus_only,
                fixed,
            )
            if key in _CANDIDATES:
                return _CANDIDATES[key]
        per_node = self.per_node
        max_gpus = per_node * nodes
        fast = self.inter_link in accelerator_catalog.FAST_INTER_NODE_LINKS or bool(self.nvlink_domain)
        dp, adp, ep_fixed = fixed or (1, 1, None)
        found = []
        tps = (
            [tp_only]
            if tp_only
            else [d for d in range(1, min(self.shape.heads, max_gpus) + 1) if self.shape.heads % d == 0]
        )
        for tp in tps:
            pps = [pp_only] if pp_only else range(1, max_gpus // (tp * dp) + 1)
            for pp in pps:
                gpus = tp * pp * dp
                if (gpus_only and gpus != gpus_only) or (gpus > per_node and gpus % per_node):
                    continue
                ep = ep_fixed if ep_fixed is not None else self._auto_ep(tp, dp)
                if self.illegal(tp, pp, dp, adp, ep, max_nodes=nodes):
                    continue
                if gpus <= per_node:
                    preference = pp  # inside a node TP over NVLink beats PP: TP8 rather than TP1 x PP7
                elif self.engine == "sglang" and fast:
                    preference = pp  # SGLang guidance: --tp 16 --nnodes 2
                else:
                    preference = (abs(tp - per_node), pp)  # TP inside a node, PP across nodes
                found.append((-(-gpus // per_node), preference, gpus, tp, pp))
        # fewest nodes first, then the preferred layout, then the fewest GPUs
        found.sort(key=lambda item: item[:3])
        result = [(tp, pp) for _nodes, _preference, _gpus, tp, pp in found]
        if key is not None:
            _CANDIDATES[key] = result
        return result

    def _auto_ep(self, tp, dp):
        """EP=1 (experts TP-split) unless TP-splitting breaks FP8 quantization blocks."""
        shape = self.shape
        if not shape.is_moe or not self.block_n:
            return 1
        group = tp * dp if self.engine == "vllm" else tp
        if (shape.moe_intermediate // group) % self.block_n == 0 and shape.moe_intermediate % group == 0:
            return 1
        return group if shape.n_experts % group == 0 else 1


def _validate(request):
    engine = request.get("engine") or "sglang"
    if engine not in ENGINES:
        raise LlmopsError("engine must be one of %s, got %r" % (", ".join(ENGINES), engine))
    request["engine"] = engine
    # Bounds the search can handle: NaN/inf or 2**63 nodes would hang or crash the layout search.
    memory = request.get("accelerator_memory_gib")
    if memory is not None and not (isinstance(memory, (int, float)) and 0 < memory <= 100000):
        raise LlmopsError("accelerator_memory_gib must be a number of GiB between 0 and 100000, got %s" % memory)
    for key, most in (("nodes", 4096), ("accelerators_per_node", 1024), ("context_length", 1 << 24)):
        value = request.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value > most):
            raise LlmopsError("%s must be an integer of at most %d, got %s" % (key, most, value))
    fraction = request.get("memory_fraction")
    if fraction is not None and not (isinstance(fraction, (int, float)) and 0.0 < float(fraction) <= 1.0):
        raise LlmopsError("memory_fraction must be in (0, 1], got %s" % fraction)
    if (request.get("weight_dtype") or "auto") not in WEIGHT_DTYPES:
        raise LlmopsError("weight_dtype must be one of %s" % ", ".join(WEIGHT_DTYPES))
    if (request.get("kv_cache_dtype") or "auto") not in KV_CACHE_DTYPES:
        raise LlmopsError("kv_cache_dtype must be one of %s" % ", ".join(KV_CACHE_DTYPES))
    context = request.get("context_length")
    if context is not None and int(context) < 1:
        raise LlmopsError("context_length must be at least 1, got %s" % context)
    for key in ("intra_node_link", "inter_node_link"):
        if request.get(key) and request[key] not in accelerator_catalog.LINKS:
            raise LlmopsError("%s must be one of %s" % (key, ", ".join(accelerator_catalog.LINKS)))
    for key in ("tensor_parallel", "pipeline_parallel", "data_parallel", "expert_parallel", "attention_data_parallel"):
        if request.get(key) is not None and int(request[key]) < 1:
            raise LlmopsError("%s must be at least 1, got %s" % (key, request[key]))
    for key, allowed in (
        ("moe_all_to_all", MOE_ALL_TO_ALL),
        ("deepep_mode", DEEPEP_MODES),
        ("fabric_shape", FABRIC_SHAPES),
    ):
        if (request.get(key) or "") not in allowed + ("",):
            raise LlmopsError("%s must be one of %s, got %r" % (key, ", ".join(a for a in allowed if a), request[key]))
    graphs = request.get("cuda_graph_max_bs")
    if graphs is not None and (isinstance(graphs, bool) or not isinstance(graphs, int) or not 1 <= graphs <= 4096):
        raise LlmopsError("cuda_graph_max_bs must be an integer from 1 to 4096, got %r" % (graphs,))
    if graphs is not None and engine != "sglang":
        raise LlmopsError("cuda_graph_max_bs is SGLang's (its default rule reserves memory by it); vLLM has none here")


def _search(ctx, nodes, target, floor, tp_only=None, pp_only=None, gpus_only=None, fixed=None):
    """First legal layout holding ``target`` tokens; else the first holding ``floor``; else None.

    ``fixed`` is (dp, adp, ep or None) when data/attention/expert parallel were given.
    """
    dp, adp, ep_fixed = fixed or (1, 1, None)
    fallback = None
    for tp, pp in ctx.candidates(nodes, tp_only, pp_only, gpus_only, fixed):
        ep = ep_fixed if ep_fixed is not None else ctx._auto_ep(tp, dp)
        weights, _tokens, usable = ctx.evaluate(tp, pp, dp, adp, ep)
        tokens = ctx.seq_tokens  # the longest sequence (the pool's tokens unless layers are bounded)
        if weights > usable:
            continue
        if tokens >= target:
            return (tp, pp), True
        if fallback is None and floor is not None and tokens >= floor:
            fallback = (tp, pp)
    return fallback, False


def _smallest_cluster(ctx, target):
    """Smallest number of whole nodes (beyond the given ones) whose best layout fits ``target`` tokens."""
    weights_total = ctx.weights_total()
    per_gpu = ctx.memory_bytes * ctx.memory_fraction(ctx.per_node * ctx.nodes) - ctx.reserve(ctx.per_node * ctx.nodes)
    lower = int(math.ceil(weights_total / max(per_gpu, 1.0) / ctx.per_node)) if per_gpu > 0 else MAX_SEARCH_NODES
    for nodes in range(max(ctx.nodes + 1, lower), MAX_SEARCH_NODES + 1):
        found, ok = _search(ctx, nodes, target, None, gpus_only=nodes * ctx.per_node)
        if ok:
            return nodes, found
    return None, None


_OVERRIDES = ("tensor_parallel", "pipeline_parallel", "data_parallel", "expert_parallel", "attention_data_parallel")


def _alternatives(request, ctx):
    """What runs instead, in numbers: an INT8 checkpoint, BF16 weights, the other engine's fallback."""
    base = {key: value for key, value in request.items() if key not in _OVERRIDES}
    base["weight_dtype"] = None
    base["_nested"] = True
    options = []
    other = [engine for engine in ENGINES if engine != ctx.engine][0]
    candidates = []
    if ctx.shape_key is not None:
        for variant in model_catalog.variants(ctx.model_id, "int8"):
            method = ModelShape(model_catalog.MODELS[variant]["config"], name=variant).quant_method
            if weight_formats.support("int8", method, ctx.accelerator, ctx.engine)[0] != "refused":
                candidates.append(("INT8 W8A8 checkpoint %s" % variant, dict(base, model=variant)))
    if not candidates and ctx.weight_dtype != "int8":
        candidates.append(("an INT8 W8A8 checkpoint (weight_dtype int8)", dict(base, weight_dtype="int8")))
    fp8 = weight_formats.support("fp8", "", ctx.accelerator, ctx.engine)[0] == weight_formats.NATIVE
    if ctx.weight_dtype in ("mxfp4", "nvfp4") and fp8:
        candidates.append(("an FP8 checkpoint", dict(base, weight_dtype="fp8")))
    if ctx.weight_dtype not in ("bf16", "fp16"):
        candidates.append(("BF16 weights", dict(base, weight_dtype="bf16")))
    method = ctx.shape.quant_method if ctx.weight_dtype == ctx.shape.checkpoint_dtype else ""
    verdict = weight_formats.support(ctx.weight_dtype, method, ctx.accelerator, other)[0]
    if verdict != "refused":
        label = "%s %s with these %s weights%s" % (
            other,
            weight_formats.ENGINE_VERSIONS[other],
            ctx.weight_dtype.upper(),
            " (weight-only kernels)" if verdict == "emulated" else "",
        )
        # the other engine's own newest release and defaults, not this engine's version and knobs
        other_request = dict(base, engine=other, weight_dtype=ctx.weight_dtype, engine_version=None, engine_image=None)
        other_request.update(cuda_graph_max_bs=None, moe_all_to_all=None)
        candidates.append((label, other_request))
    for label, alternative in candidates:
        try:
            result = plan(alternative)
        except LlmopsError:
            continue
        if result["fits"]:
            options.append(
                "%s: %s GiB of weights, fits %d x %d %s (TP %d, PP %d), %d KV tokens"
                % (
                    label,
                    _fmt(result["weights_gib_total"]),
                    result["nodes"],
                    result["accelerators_per_node"],
                    ctx.accelerator["id"],
                    result["tensor_parallel"],
                    result["pipeline_parallel"],
                    result["kv_cache_tokens"],
                )
            )
        elif result["reasons"]:
            tail = result["reasons"][0].rsplit("; ", 1)[-1]
            options.append("%s: %s GiB of weights, %s" % (label, _fmt(result["weights_gib_total"]), tail))
    return "alternatives: " + (" | ".join(options) if options else "none found in the catalog")


def _sequences(ctx, pool_tokens, context):
    if ctx.hybrid and ctx.seq_count is not None and context == int(ctx.state_context):
        return ctx.seq_count
    return pool_tokens // context


def _fmt(value):
    return ("%.1f" % value) if value < 100 else ("%.0f" % value)


def plan(request):
    """Plan one served model. ``request`` holds the module's arguments (missing keys take defaults)."""
    request = dict(request)
    _validate(request)
    ctx = _Context(request)
    shape = ctx.shape
    warnings = ctx.warnings
    explicit_context = request.get("context_length")
    model_max = shape.max_context
    if explicit_context and int(explicit_context) > model_max:
        warnings.append(
            "context_length %s exceeds the model's max_position_embeddings %d: the engines refuse it "
            "unless rope scaling is configured" % (explicit_context, model_max)
        )
    target = int(explicit_context) if explicit_context else model_max
    floor = None if explicit_context else min(MIN_CONTEXT, model_max)

    tp_o, pp_o = request.get("tensor_parallel"), request.get("pipeline_parallel")
    dp_o, ep_o = request.get("data_parallel"), request.get("expert_parallel")
    adp_o = request.get("attention_data_parallel")
    overridden = any(v is not None for v in (tp_o, pp_o, dp_o, ep_o, adp_o))
    fixed = (dp_o or 1, adp_o or 1, ep_o) if overridden else None
    if overridden and not ctx.candidates(ctx.nodes, tp_o, pp_o, fixed=fixed):
        probe_tp, probe_pp, probe_dp = tp_o or 1, pp_o or 1, dp_o or 1
        probe_ep = ep_o if ep_o is not None else ctx._auto_ep(probe_tp, probe_dp)
        raise LlmopsError(
            ctx.illegal(probe_tp, probe_pp, probe_dp, adp_o or 1, probe_ep)
            or "no legal layout with tensor_parallel=%s, pipeline_parallel=%s, data_parallel=%s" % (tp_o, pp_o, dp_o)
        )
    chosen, meets_target = _search(ctx, ctx.nodes, target, floor, tp_o, pp_o, fixed=fixed)

    reasons = []
    if chosen is None:
        legal = ctx.candidates(ctx.nodes, tp_o, pp_o, fixed=fixed)
        most = max(tp * pp for tp, pp in legal)
        # the largest legal layout (the engine's preferred split of it) shows how far off the request is
        chosen = [(tp, pp) for tp, pp in legal if tp * pp == most][0]
    tp, pp = chosen
    instance = tp * pp
    adp = adp_o or 1
    if dp_o:
        dp = dp_o
    elif adp > 1 or instance > ctx.per_node:
        dp = 1
    else:
        dp = max(1, ctx.per_node // instance)
    ep = ep_o if ep_o is not None else ctx._auto_ep(tp, dp)
    if ep > 1 and ep_o is None:
        warnings.append(
            "expert parallel %d enabled: splitting each %s expert by TP would break its %d-wide "
            "quantization blocks" % (ep, ctx.weight_dtype.upper(), ctx.block_n)
        )
    reason = ctx.illegal(tp, pp, dp, adp, ep)
    if reason:
        if overridden:
            raise LlmopsError(reason)
        dp, ep = 1, ctx._auto_ep(tp, 1)
        reason = ctx.illegal(tp, pp, dp, adp, ep)
        if reason:
            raise LlmopsError(reason)
    weights, pool_tokens, usable = ctx.evaluate(tp, pp, dp, adp, ep)
    # the longest sequence: the token pool, unless window/linear layers make a sequence cheaper than that
    tokens_per_domain = ctx.seq_tokens
    fraction = ctx.memory_fraction(tp, pp, dp, adp, ep)
    a2a, a2a_why = ctx.all_to_all(tp, pp, dp, ep)
    if ctx.a2a == "deepep" and a2a != "deepep":
        raise LlmopsError("moe_all_to_all deepep: %s" % a2a_why)
    if a2a == "deepep" and tp * pp * dp > ctx.per_node and not ctx.fabric_shape:
        warnings.append(
            "DeepEP across nodes on a fabric not measured: run the GPU node checks with "
            "gpu_node_checks_fabric_check (fabric_check); a rail-only fabric hangs DeepEP at the first MoE layer"
        )
    elif ctx.a2a == "auto" and a2a == "none" and ep > 1 and tp * pp * dp > ctx.per_node:
        warnings.append("MoE all-to-all: the engine's default, not DeepEP (%s)" % a2a_why)
    accelerators_used = instance * dp
    nodes_used = max(1, int(math.ceil(accelerators_used / float(ctx.per_node))))
    weights_fit = weights <= usable
    limit = max(model_max, int(explicit_context or 0))
    max_context = min(tokens_per_domain, limit) if weights_fit else 0
    fits = weights_fit and (tokens_per_domain >= target if explicit_context else tokens_per_domain >= floor)
    engine_context = int(explicit_context) if explicit_context else max(1, max_context)
    if fits and not explicit_context and not meets_target and max_context < model_max:
        warnings.append(
            "the KV cache holds %d tokens per sequence, less than the model's %d: context capped at %d"
            % (tokens_per_domain, model_max, max_context)
        )

    if not fits:
        per_gpu_gib = usable / GIB
        weights_total = ctx.weights_total() / GIB
        nodes_needed, layout = _smallest_cluster(ctx, target if explicit_context else floor)
        if nodes_needed:
            smallest = "smallest fit: %d nodes x %d %s (TP %d, PP %d)" % (
                nodes_needed,
                ctx.per_node,
                ctx.accelerator["id"],
                layout[0],
                layout[1],
            )
        else:
            smallest = "no fit within %d nodes of %d %s" % (MAX_SEARCH_NODES, ctx.per_node, ctx.accelerator["id"])
        available = ctx.per_node * ctx.nodes
        if adp > 1 and ctx.engine == "sglang" and ctx.fraction_override is None and not ctx.cuda_graph_max_bs:
            # SGLang's rule reserves graph batch x attention-DP ranks x 3 MiB (4.5 above batch 300) for DP attention
            smallest += (
                "; SGLang %s's default memory rule reserves room for DP-attention CUDA graphs of its default batch: "
                "set cuda_graph_max_bs (e.g. 128) or memory_fraction" % ctx.engine_version
            )
        if not weights_fit:
            reasons.append(
                "needs %s GiB for weights (%s), %d x %s give %s GiB usable (memory fraction %.2f); %s"
                % (
                    _fmt(weights_total),
                    ctx.weight_dtype,
                    available,
                    ctx.accelerator["id"],
                    _fmt(available * per_gpu_gib),
                    fraction,
                    smallest,
                )
            )
        else:
            reasons.append(
                "weights fit with TP %d x PP %d (%s GiB per accelerator) but the KV cache holds %d tokens per "
                "sequence and context_length %d needs more; %s%s"
                % (
                    tp,
                    pp,
                    _fmt(weights / GIB),
                    tokens_per_domain,
                    target,
                    smallest,
                    "" if ctx.kv_bytes == 1.0 or ctx.is_ascend else " (or kv_cache_dtype fp8)",
                )
            )
    if ctx.format_refusal:
        # the memory fits but the engine cannot run these weights here: refuse, with what would run
        fits = False
        extra = "" if request.get("_nested") else "; " + _alternatives(request, ctx)
        reasons.insert(0, ctx.format_refusal + extra)
    if tp > 1 and ctx.intra_link == "pcie" and instance <= ctx.per_node:
        warnings.append("%s has no NVLink: tensor-parallel all-reduce runs over PCIe" % ctx.accelerator["id"])

    layout = {
        "tp": tp,
        "pp": pp,
        "dp": dp,
        "adp": adp,
        "ep": ep,
        "nodes": nodes_used,
        "fraction": fraction,
        "context": engine_context,
        "a2a": a2a,
    }
    return {
        "fits": bool(fits),
        "engine": ctx.engine,
        "tensor_parallel": tp,
        "pipeline_parallel": pp,
        "data_parallel": dp,
        "attention_data_parallel": adp,
        "expert_parallel": ep,
        "nodes": nodes_used,
        "accelerators_per_node": min(accelerators_used, ctx.per_node),
        "accelerators_used": accelerators_used,
        "weights_gib_per_accelerator": round(weights / GIB, 2),
        "weights_gib_total": round(ctx.weights_total() / GIB, 2),
        "weights_source": ctx.weights_source,
        "weight_dtype": ctx.weight_dtype,
        "kv_cache_dtype": ctx.kv_cache_dtype,
        "kv_bytes_per_token": shape.kv_bytes_per_token(ctx.kv_bytes),
        "kv_cache_tokens": pool_tokens * adp,
        "max_context_length": max_context,
        "context_length": engine_context,
        "max_concurrent_sequences": dp * adp * _sequences(ctx, pool_tokens, engine_context) if weights_fit else 0,
        "memory_fraction": fraction,
        # the release whose memory rule (and defaults) the plan follows; the serving role checks its image against it
        "engine_version": ctx.engine_version,
        "memory_rule": engine_memory.RULE_SOURCES[(ctx.engine, ctx.memory_rule)],
        "moe_all_to_all": a2a,
        "speculative_mtp": bool(ctx.mtp_layers),
        # no flags for a plan that does not fit: nothing should be started from it
        "engine_args": engine_args(ctx, layout) if fits else [],
        "multi_node": multi_node(ctx, layout),
        "model": dict(shape.to_dict(), id=ctx.model_id),
        "accelerator": {
            "id": ctx.accelerator["id"],
            "memory_gib": round(ctx.accelerator["memory_gib"], 2),
            "fp8": bool(ctx.accelerator.get("fp8")),
            "intra_node_link": ctx.intra_link,
            "inter_node_link": ctx.inter_link if nodes_used > 1 else None,
        },
        "warnings": warnings,
        "reasons": reasons,
    }


def engine_args(ctx, layout):
    """Flags common to every node of the deployment (see the module docs for what roles add per node)."""
    tp, pp, dp, adp, ep = layout["tp"], layout["pp"], layout["dp"], layout["adp"], layout["ep"]
    fraction = "%.2f" % layout["fraction"]
    if ctx.engine == "sglang":
        args = ["--tp-size", str(tp)]
        if pp > 1:
            args += ["--pp-size", str(pp)]
        if adp > 1:
            args += ["--dp-size", str(adp), "--enable-dp-attention"]
        elif dp > 1:
            args += ["--dp-size", str(dp)]
        if ep > 1:
            args += ["--ep-size", str(ep)]
        if layout["nodes"] > 1:
            args += ["--nnodes", str(layout["nodes"])]
        args += ["--mem-fraction-static", fraction, "--context-length", str(layout["context"])]
        if ctx.kv_bytes == 1.0:
            args += ["--kv-cache-dtype", "fp8_e4m3"]
        if ctx.is_ascend:
            args += ["--device", "npu", "--attention-backend", "ascend"]
        if ctx.online_fp8:
            args += ["--quantization", "fp8"]
        elif ctx.is_ascend and ctx.weight_dtype == "int8":
            args += ["--quantization", "w8a8_int8"]
        if layout["a2a"] == "deepep":
            args += ["--moe-a2a-backend", "deepep", "--deepep-mode", ctx.deepep_mode]
        if ctx.cuda_graph_max_bs:
            args += ["--cuda-graph-max-bs", str(int(ctx.cuda_graph_max_bs))]
        if ctx.mtp_layers:
            args += engine_memory.sglang_mtp_args()
    else:
        args = ["--tensor-parallel-size", str(tp)]
        if pp > 1:
            args += ["--pipeline-parallel-size", str(pp)]
        if dp > 1:
            args += ["--data-parallel-size", str(dp)]
        if ep > 1:
            args += ["--enable-expert-parallel"]
        if tp * pp > ctx.per_node:
            args += ["--distributed-executor-backend", "ray"]
        args += ["--gpu-memory-utilization", fraction, "--max-model-len", str(layout["context"])]
        if ctx.kv_bytes == 1.0:
            args += ["--kv-cache-dtype", "fp8"]
        if ctx.online_fp8:
            args += ["--quantization", "fp8"]
        elif ctx.is_ascend and ctx.weight_dtype == "int8":
            args += ["--quantization", "ascend"]
        if layout["a2a"] == "deepep":
            args += ["--all2all-backend", VLLM_DEEPEP_BACKENDS[ctx.deepep_mode]]
        if ctx.mtp_layers:
            args += engine_memory.vllm_mtp_args()
    if ctx.weight_dtype == "fp16" and ctx.shape.checkpoint_dtype != "fp16":
        args += ["--dtype", "float16"]
    return args


def multi_node(ctx, layout):
    """How the nodes of a multi-node plan start: the launcher and the flags each node adds itself."""
    nodes = layout["nodes"]
    if nodes <= 1:
        return {"required": False, "launcher": None, "per_node_args": []}
    if ctx.engine == "sglang":
        return {
            "required": True,
            "launcher": "sglang",
            "per_node_args": ["--dist-init-addr", "<leader-address>:<port>", "--node-rank", "<node-rank>"],
        }
    if layout["tp"] * layout["pp"] > ctx.per_node:
        return {"required": True, "launcher": "ray", "per_node_args": []}
    local = layout["dp"] // nodes
    return {
        "required": True,
        "launcher": "vllm-data-parallel",
        "per_node_args": [
            "--data-parallel-size-local",
            str(local),
            "--data-parallel-address",
            "<leader-address>",
            "--data-parallel-rpc-port",
            "<port>",
            "--data-parallel-start-rank",
            "<node-rank x %d>" % local,
        ],
    }
