#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: parallelism_plan
short_description: Decide whether an LLM fits, how to split it (TP/PP/DP/EP) and the exact engine flags
version_added: 0.1.0
description:
  - Pure computation. From a model (catalog id or a local Hugging Face folder) and the hardware
    (accelerator type or memory, accelerators per node, nodes, links), computes the weights per
    accelerator, the KV-cache bytes per token and capacity, the longest context and the concurrency,
    picks a legal tensor/pipeline/data/expert-parallel layout and returns the SGLang or vLLM flags.
  - Refuses an impossible plan with the numbers (GiB, accelerators) and the smallest cluster that would fit.
  - Never changes anything; C(changed) is always false. Check mode is supported.
  - The memory model and the catalogs are described in docs/parallelism_plan.md.
  - C(engine_args) holds the flags common to every node. For a multi-node SGLang plan each node adds
    C(--dist-init-addr <leader>:<port>) and C(--node-rank <rank>) itself (C(multi_node.per_node_args));
    C(--nnodes) is already in C(engine_args). For a vLLM plan whose model instance spans nodes
    (C(multi_node.launcher=ray)) the nodes form a Ray cluster and only the leader runs C(vllm serve) with
    C(engine_args). For vLLM data parallel across nodes (C(multi_node.launcher=vllm-data-parallel)) each
    node adds the C(--data-parallel-*) flags of C(multi_node.per_node_args). Model path, host, port,
    served model name and API key are the serving role's to add.
author:
  - llmops.inference maintainers (@llmops)
options:
  model:
    description:
      - Catalog id, e.g. C(deepseek-ai/DeepSeek-R1), C(Qwen/Qwen3-235B-A22B-Instruct-2507),
        C(deepseek-ai/DeepSeek-R1-Distill-Qwen-32B), C(meta-llama/Llama-3.1-405B-Instruct); matched
        case-insensitively, with or without the organisation.
      - With O(model_path), only a label.
      - One of O(model) and O(model_path) is required.
    type: str
  model_path:
    description:
      - A local model folder (or its config.json). The shapes come from config.json and the exact
        weight bytes from C(model.safetensors.index.json) (or C(model.safetensors)) when present.
    type: path
  weight_dtype:
    description:
      - Format the weights are served in. V(auto) takes the checkpoint's (FP8 for DeepSeek-V3/R1, MXFP4
        for gpt-oss, read from C(quantization_config)).
      - V(fp8) block (128x128) or per-channel scales; V(int8) W8A8 (per-channel or block scales);
        V(int4) W4A16 (AWQ, GPTQ, compressed-tensors, group 128); V(mxfp4) 4-bit with one E8M0 scale per
        32 values; V(nvfp4) 4-bit with one FP8 scale per 16 values.
      - Embeddings, lm_head, norms and MoE routers stay 16-bit in quantized checkpoints, and so do the
        modules the checkpoint's ignore list names.
      - A format the engine has no kernels for on the accelerator (FP8 with SGLang below SM 8.9, NVFP4
        with SGLang below SM 10.0, FP4 on Ascend) gives C(fits=false) with the alternatives in numbers;
        one it runs through weight-only kernels (vLLM Marlin) gives a warning.
    type: str
    choices: [auto, bf16, fp16, fp8, int8, int4, mxfp4, nvfp4]
    default: auto
  kv_cache_dtype:
    description: KV-cache dtype. V(auto) is the model's 16-bit dtype.
    type: str
    choices: [auto, bf16, fp8]
    default: auto
  accelerator:
    description:
      - Catalog id (C(A100-40G), C(A100-80G), C(A800-80G), C(H100-80G), C(H800-80G), C(H20-96G),
        C(H20-141G), C(H200-141G), C(B200), C(B300), C(GB200), C(GB300), C(RTX-PRO-6000-96G), C(L40S),
        C(L20), C(RTX4090), C(A10-24G), C(Ascend-910B-64G), C(Ascend-910B3-64G), C(Ascend-910C-64G),
        C(Ascend-910B4-32G)).
      - GB200/GB300 are NVL72 racks of 4-GPU trays; tensor and expert parallel may span the trays of one
        rack (NVLink) but not racks.
      - One of O(accelerator) and O(accelerator_memory_gib) is required.
    type: str
  accelerator_memory_gib:
    description: Memory of one accelerator in GiB; overrides the catalog's value, or describes an accelerator not in it.
    type: float
  accelerators_per_node:
    description:
      - Accelerators in each node. Default the catalog's usual count - 8, 4 for a GB200/GB300 tray, 16 for
        an Atlas 800I A3 (Ascend 910C) - or 8.
    type: int
  nodes:
    description: The most nodes the plan may use.
    type: int
    default: 1
  intra_node_link:
    description: Link between accelerators of a node, when not implied by the catalog.
    type: str
    choices: [nvlink, pcie, hccs, ib, roce, tcp]
  inter_node_link:
    description:
      - Link between nodes. Tensor parallel spans nodes only over V(ib) or V(roce) (or inside an NVL72
        rack's NVLink domain); otherwise pipeline parallel does. When omitted with O(nodes) > 1, V(tcp) is
        assumed (with a warning), V(nvlink) for GB200/GB300 trays.
    type: str
    choices: [nvlink, pcie, hccs, ib, roce, tcp]
  engine:
    description: Serving engine whose flags are returned. Ascend accelerators get vllm-ascend style flags with V(vllm).
    type: str
    choices: [sglang, vllm]
    default: sglang
  context_length:
    description:
      - Context length every request must be able to reach. The plan must hold one sequence of it.
      - When omitted, the model's max_position_embeddings is the target; if the KV cache cannot hold it,
        the context is capped (with a warning) at what fits, down to 4096 tokens.
    type: int
  memory_fraction:
    description:
      - Share of each accelerator's memory the engine may take (SGLang C(--mem-fraction-static), vLLM
        C(--gpu-memory-utilization)); must be in (0, 1].
      - When omitted, the default rule of the engine release the plan is for (O(engine_version)). SGLang takes
        (memory - reserve) / memory, the reserve from the memory size, TP x PP, DP attention, MTP (0.5.6.post2),
        prefill CUDA graphs and DeepEP buffers (0.5.23); vLLM 0.9 up to 0.13, 0.92 from 0.21 with the CUDA-graph
        memory inside the budget. docs/parallelism_plan.md has the rules and their sources.
    type: float
  engine_version:
    description:
      - Release of the engine the plan is for (C(0.5.23), C(0.33.0)); its memory rule sizes the KV cache.
      - Default the version of O(engine_image), else the newest recorded release.
    type: str
  engine_image:
    description:
      - The engine image the plan will run in; its tag gives O(engine_version) (C(lmsysorg/sglang:v0.5.23) is 0.5.23).
      - The serving role refuses an image whose release sizes memory by another rule than the plan's.
    type: str
  moe_all_to_all:
    description:
      - MoE expert-parallel all-to-all. V(auto) uses DeepEP (SGLang C(--moe-a2a-backend deepep), vLLM
        C(--all2all-backend deepep_*)) when expert parallel spans nodes on Hopper or newer over ib/roce and
        O(fabric_shape) is C(all-to-all); otherwise the engine's default.
      - V(deepep) forces it (also inside one node); refused on a fabric measured C(rail-only), C(partial) or C(none),
        without expert parallel, or below Hopper. V(none) never uses it.
    type: str
    choices: [auto, deepep, none]
    default: auto
  deepep_mode:
    description:
      - DeepEP kernels. SGLang C(--deepep-mode) (V(auto) is low latency for decode, normal for prefill); vLLM has no
        per-batch switch, V(auto) and V(low_latency) are C(deepep_low_latency), V(normal) C(deepep_high_throughput).
    type: str
    choices: [auto, normal, low_latency]
    default: auto
  fabric_shape:
    description:
      - The fabric shape fabric_check measured (C(llmops_fabric.shape.shape)); empty when not measured.
        DeepEP across nodes needs C(all-to-all).
    type: str
    choices: ['', all-to-all, rail-only, partial, none]
    default: ''
  cuda_graph_max_bs:
    description:
      - SGLang only - the decode CUDA-graph batch cap (C(--cuda-graph-max-bs), C(--cuda-graph-max-bs-decode) from
        0.5.23). SGLang's default memory rule reserves 3 MiB per batch slot and DP-attention rank (4.5 above 300),
        so a large DP-attention group needs a lower cap (for example 128) to leave room for the weights.
    type: int
  tensor_parallel:
    description: Force this tensor-parallel size; validated (must divide the attention heads, split KV heads evenly...).
    type: int
  pipeline_parallel:
    description: Force this pipeline-parallel size; validated.
    type: int
  data_parallel:
    description:
      - Force this number of data-parallel ranks (replicas; for vLLM MoE models they share the experts).
      - By default the replicas fill one node when the model fits in part of it.
    type: int
  expert_parallel:
    description:
      - Force this expert-parallel size (MoE models). SGLang C(--ep-size) must divide TP; vLLM's is
        TP x DP (C(--enable-expert-parallel)).
    type: int
  attention_data_parallel:
    description: SGLang only - DP attention size (C(--dp-size N --enable-dp-attention)), dividing TP.
    type: int
  speculative_mtp:
    description:
      - Plan memory for speculative decoding with the model's own multi-token-prediction layers (DeepSeek
        V3/R1/V3.x, GLM-4.5/4.6, Qwen3-Next) - their weights and one more KV layer each (and SGLang 0.5.6.post2's
        2 GiB draft reserve) - and emit the flags, SGLang C(--speculative-algorithm EAGLE --speculative-num-steps 3
        --speculative-eagle-topk 1 --speculative-num-draft-tokens 4), vLLM C(--speculative-config) with method mtp.
    type: bool
    default: false
  fail_on_no_fit:
    description: Fail when the model does not fit. With V(false), return C(plan.fits=false) and C(plan.reasons).
    type: bool
    default: true
notes:
  - Supports check mode; the result is the same in check mode.
"""

EXAMPLES = r"""
- name: Plan DeepSeek-R1 (INT8; FP8 does not run on Ampere with SGLang) on two 8 x A800 nodes with SGLang
  llmops.inference.parallelism_plan:
    model: meituan/DeepSeek-R1-Block-INT8
    accelerator: A800-80G
    accelerators_per_node: 8
    nodes: 2
    inter_node_link: ib
    engine: sglang
    context_length: 131072
  register: plan_result

- name: Keep the plan for the serving roles
  ansible.builtin.set_fact:
    llmops_plan: "{{ plan_result.plan }}"

- name: Plan a downloaded model, report instead of failing when it does not fit
  llmops.inference.parallelism_plan:
    model_path: /models/Qwen3-235B-A22B-Instruct-2507
    accelerator: H100-80G
    engine: vllm
    context_length: 131072
    fail_on_no_fit: false
  register: plan_result
"""

RETURN = r"""
plan:
  description: The plan; serving roles keep it unchanged as C(llmops_plan).
  returned: always (also on failure when the inputs were valid)
  type: dict
  contains:
    fits:
      description: Whether weights and one sequence of the target context fit.
      type: bool
    engine:
      description: The engine the flags are for.
      type: str
    tensor_parallel:
      description: Tensor-parallel size.
      type: int
    pipeline_parallel:
      description: Pipeline-parallel size.
      type: int
    data_parallel:
      description: Data-parallel ranks (replicas of TP x PP accelerators each).
      type: int
    attention_data_parallel:
      description: SGLang DP-attention size (1 when off); does not add accelerators.
      type: int
    expert_parallel:
      description: Expert-parallel size (1 when off).
      type: int
    nodes:
      description: Nodes the plan uses.
      type: int
    accelerators_per_node:
      description: Accelerators the plan uses on each node (what each pod requests).
      type: int
    accelerators_used:
      description: Accelerators the plan uses in all (TP x PP x DP).
      type: int
    weights_gib_per_accelerator:
      description: Weight GiB on the most loaded accelerator.
      type: float
    weights_gib_total:
      description: Weight GiB of one replica.
      type: float
    weights_source:
      description: Where the weight bytes come from (catalog, config.json, safetensors index).
      type: str
    weight_dtype:
      description: Resolved weight dtype.
      type: str
    kv_cache_dtype:
      description: Resolved KV-cache dtype.
      type: str
    kv_bytes_per_token:
      description: KV bytes of one token, all layers, one replica, unsharded.
      type: int
    kv_cache_tokens:
      description: Tokens the KV cache of one replica holds (summed over DP-attention ranks).
      type: int
    max_context_length:
      description: Longest single sequence the plan holds (capped at the model's maximum).
      type: int
    context_length:
      description: Value passed as C(--context-length) / C(--max-model-len).
      type: int
    max_concurrent_sequences:
      description: Sequences of C(context_length) tokens the whole plan holds at once.
      type: int
    memory_fraction:
      description: Memory fraction used (given or the engine release's default rule).
      type: float
    engine_version:
      description: The engine release the plan is for (its memory rule and defaults).
      type: str
    memory_rule:
      description: The release, file and function the default memory rule was taken from.
      type: str
    moe_all_to_all:
      description: C(deepep) when the flags use DeepEP all-to-all (the pods then get the NVSHMEM env), else C(none).
      type: str
    speculative_mtp:
      description: Whether the flags run MTP speculative decoding.
      type: bool
    engine_args:
      description: Flags common to all nodes, as an argv list; empty when the plan does not fit.
      type: list
      elements: str
      sample: ["--tp-size", "16", "--nnodes", "2", "--mem-fraction-static", "0.79", "--context-length", "131072"]
    multi_node:
      description: C(required), C(launcher) (sglang, ray, vllm-data-parallel) and C(per_node_args) with placeholders.
      type: dict
    model:
      description: Resolved model id and the shape facts used (layers, heads, kv heads, experts, MLA ranks...).
      type: dict
    accelerator:
      description: Resolved accelerator facts (id, memory_gib, fp8, links).
      type: dict
    warnings:
      description: Things that work but deserve attention (no FP8 tensor cores, no NVLink, capped context...).
      type: list
      elements: str
    reasons:
      description: Why the plan does not fit, in GiB and accelerators, with the smallest cluster that would.
      type: list
      elements: str
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError  # noqa: E402
from ansible_collections.llmops.inference.plugins.module_utils.parallelism import plan  # noqa: E402

LINK_CHOICES = ["nvlink", "pcie", "hccs", "ib", "roce", "tcp"]


def main():
    module = AnsibleModule(
        argument_spec={
            "model": {"type": "str"},
            "model_path": {"type": "path"},
            "weight_dtype": {
                "type": "str",
                "default": "auto",
                "choices": ["auto", "bf16", "fp16", "fp8", "int8", "int4", "mxfp4", "nvfp4"],
            },
            "kv_cache_dtype": {"type": "str", "default": "auto", "choices": ["auto", "bf16", "fp8"]},
            "accelerator": {"type": "str"},
            "accelerator_memory_gib": {"type": "float"},
            "accelerators_per_node": {"type": "int"},
            "nodes": {"type": "int", "default": 1},
            "intra_node_link": {"type": "str", "choices": LINK_CHOICES},
            "inter_node_link": {"type": "str", "choices": LINK_CHOICES},
            "engine": {"type": "str", "default": "sglang", "choices": ["sglang", "vllm"]},
            "context_length": {"type": "int"},
            "memory_fraction": {"type": "float"},
            "tensor_parallel": {"type": "int"},
            "pipeline_parallel": {"type": "int"},
            "data_parallel": {"type": "int"},
            "expert_parallel": {"type": "int"},
            "attention_data_parallel": {"type": "int"},
            "speculative_mtp": {"type": "bool", "default": False},
            "engine_version": {"type": "str"},
            "engine_image": {"type": "str"},
            "moe_all_to_all": {"type": "str", "default": "auto", "choices": ["auto", "deepep", "none"]},
            "deepep_mode": {"type": "str", "default": "auto", "choices": ["auto", "normal", "low_latency"]},
            "fabric_shape": {
                "type": "str",
                "default": "",
                "choices": ["", "all-to-all", "rail-only", "partial", "none"],
            },
            "cuda_graph_max_bs": {"type": "int"},
            "fail_on_no_fit": {"type": "bool", "default": True},
        },
        required_one_of=[["model", "model_path"], ["accelerator", "accelerator_memory_gib"]],
        supports_check_mode=True,
    )
    request = dict(module.params)
    fail_on_no_fit = request.pop("fail_on_no_fit")
    try:
        result = plan(request)
    except LlmopsError as exc:
        module.fail_json(msg=exc.message, changed=False)
    if not result["fits"] and fail_on_no_fit:
        module.fail_json(
            msg="%s does not fit: %s" % (result["model"]["id"], "; ".join(result["reasons"])),
            changed=False,
            plan=result,
        )
    module.exit_json(changed=False, plan=result)


if __name__ == "__main__":
    main()
