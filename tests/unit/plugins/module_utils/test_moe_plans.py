# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Large MoE plans: DeepEP all-to-all from the fabric, MTP speculative decoding with its memory, vLLM DP/EP.

The flags are checked against the recorded CLI schemas in test_engine_cli.py (plan matrix); here the choices.
"""

import pytest

from ansible_collections.llmops.inference.plugins.module_utils import engine_memory
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError
from ansible_collections.llmops.inference.plugins.module_utils.parallelism import plan

H100 = {"accelerator": "H100-80G", "accelerators_per_node": 8, "inter_node_link": "ib"}
R1_EP = dict(
    H100,
    model="deepseek-ai/DeepSeek-R1",
    nodes=2,
    tensor_parallel=16,
    expert_parallel=16,
    attention_data_parallel=16,
    cuda_graph_max_bs=128,
)
VLLM_DP_EP = dict(
    H100,
    engine="vllm",
    model="deepseek-ai/DeepSeek-R1",
    nodes=2,
    tensor_parallel=8,
    data_parallel=2,
    expert_parallel=16,
)


def _flag(args, flag):
    return args[args.index(flag) + 1] if flag in args else None


def test_dp_attention_over_16_ranks_names_the_cuda_graph_knob_when_it_does_not_fit():
    """SGLang's rule reserves 512 x 16 x 4.5 MiB = 36 GiB per GPU for DP-attention graphs at its default batch."""
    request = {key: value for key, value in R1_EP.items() if key != "cuda_graph_max_bs"}
    result = plan(request)
    assert not result["fits"] and "set cuda_graph_max_bs (e.g. 128) or memory_fraction" in result["reasons"][0]
    assert plan(R1_EP)["fits"]


def test_sglang_deepep_on_an_all_to_all_fabric():
    result = plan(dict(R1_EP, fabric_shape="all-to-all"))
    assert result["fits"] and result["moe_all_to_all"] == "deepep"
    args = result["engine_args"]
    assert _flag(args, "--moe-a2a-backend") == "deepep" and _flag(args, "--deepep-mode") == "auto"
    assert _flag(args, "--ep-size") == "16" == _flag(args, "--tp-size")  # SGLang's DeepEP sets EP = TP
    assert "--enable-dp-attention" in args and _flag(args, "--cuda-graph-max-bs") == "128"


@pytest.mark.parametrize("shape", ["rail-only", "partial", "none"])
def test_auto_leaves_deepep_off_and_explicit_deepep_is_refused_on_a_fabric_without_cross_rail_paths(shape):
    result = plan(dict(R1_EP, fabric_shape=shape))
    assert result["moe_all_to_all"] == "none" and "--moe-a2a-backend" not in result["engine_args"]
    assert any("fabric is %s" % shape in w for w in result["warnings"])
    with pytest.raises(LlmopsError, match="moe_all_to_all deepep: the fabric is %s" % shape):
        plan(dict(R1_EP, fabric_shape=shape, moe_all_to_all="deepep"))
    with pytest.raises(LlmopsError, match="the fabric is %s" % shape):
        plan(dict(VLLM_DP_EP, fabric_shape=shape, moe_all_to_all="deepep"))


def test_unmeasured_fabric_auto_stays_off_explicit_deepep_warns():
    auto = plan(R1_EP)
    assert auto["moe_all_to_all"] == "none"
    assert any("fabric shape is not measured" in w for w in auto["warnings"])
    forced = plan(dict(R1_EP, moe_all_to_all="deepep"))
    assert forced["moe_all_to_all"] == "deepep"
    assert any("fabric not measured" in w for w in forced["warnings"])


def test_deepep_needs_hopper_ib_and_expert_parallel():
    ampere = dict(R1_EP, model="meituan/DeepSeek-R1-Block-INT8", accelerator="A800-80G", fabric_shape="all-to-all")
    assert plan(ampere)["moe_all_to_all"] == "none"
    with pytest.raises(LlmopsError, match="DeepEP needs NVIDIA Hopper or newer; A800-80G is ampere"):
        plan(dict(ampere, moe_all_to_all="deepep"))
    with pytest.raises(LlmopsError, match="no expert parallel"):
        plan(dict(H100, model="deepseek-ai/DeepSeek-R1", nodes=2, tensor_parallel=16, moe_all_to_all="deepep"))
    # inside one node the engine's own all-to-all stays unless DeepEP is asked for
    single = dict(H100, model="Qwen/Qwen3-235B-A22B", tensor_parallel=8, expert_parallel=8)
    assert plan(single)["moe_all_to_all"] == "none"
    assert _flag(plan(dict(single, moe_all_to_all="deepep"))["engine_args"], "--moe-a2a-backend") == "deepep"


def test_deepep_costs_memory_in_sglang_0_5_23_only():
    new = plan(dict(R1_EP, fabric_shape="all-to-all", engine_version="0.5.23"))
    off = plan(dict(R1_EP, fabric_shape="all-to-all", engine_version="0.5.23", moe_all_to_all="none"))
    assert new["memory_fraction"] == pytest.approx(off["memory_fraction"] - 3072 / 81559.0, abs=0.0015)
    old = plan(dict(R1_EP, fabric_shape="all-to-all", engine_version="0.5.6.post2"))
    old_off = plan(dict(R1_EP, fabric_shape="all-to-all", engine_version="0.5.6.post2", moe_all_to_all="none"))
    assert old["memory_fraction"] == old_off["memory_fraction"]


def test_vllm_dp_ep_across_nodes_runs_without_ray_with_deepep_from_the_fabric():
    result = plan(dict(VLLM_DP_EP, fabric_shape="all-to-all"))
    assert result["multi_node"]["launcher"] == "vllm-data-parallel"
    assert "--distributed-executor-backend" not in result["engine_args"]
    assert _flag(result["engine_args"], "--all2all-backend") == "deepep_low_latency"
    normal = plan(dict(VLLM_DP_EP, fabric_shape="all-to-all", deepep_mode="normal"))
    assert _flag(normal["engine_args"], "--all2all-backend") == "deepep_high_throughput"
    # TP across nodes keeps Ray
    ray = plan(dict(H100, engine="vllm", model="deepseek-ai/DeepSeek-R1", nodes=2, tensor_parallel=16))
    assert ray["multi_node"]["launcher"] == "ray"


def test_mtp_flags_and_memory():
    base = dict(H100, model="deepseek-ai/DeepSeek-R1", nodes=2, tensor_parallel=16)
    plain, mtp = (
        plan(dict(base, engine_version="0.5.6.post2")),
        plan(dict(base, engine_version="0.5.6.post2", speculative_mtp=True)),
    )
    assert mtp["speculative_mtp"] and not plain["speculative_mtp"]
    args = mtp["engine_args"]
    assert args[args.index("--speculative-algorithm") :] == engine_memory.sglang_mtp_args()
    assert _flag(args, "--speculative-num-draft-tokens") == str(engine_memory.MTP_STEPS + 1)
    # the MTP layer's weights, one more KV layer, and (0.5.6.post2) 2 GiB more reserve for the draft graphs
    assert mtp["weights_gib_per_accelerator"] > plain["weights_gib_per_accelerator"] + 0.5
    assert mtp["memory_fraction"] == pytest.approx(plain["memory_fraction"] - 2048 / 81559.0, abs=0.0015)
    assert mtp["kv_cache_tokens"] < plain["kv_cache_tokens"]
    vllm = plan(dict(VLLM_DP_EP, speculative_mtp=True))
    assert _flag(vllm["engine_args"], "--speculative-config") == '{"method": "mtp", "num_speculative_tokens": 1}'
    with pytest.raises(LlmopsError, match="no multi-token-prediction layers"):
        plan(dict(H100, model="Qwen/Qwen3-32B", speculative_mtp=True))


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"moe_all_to_all": "pplx"}, "moe_all_to_all must be one of auto, deepep, none"),
        ({"deepep_mode": "fast"}, "deepep_mode must be one of"),
        ({"fabric_shape": "mesh"}, "fabric_shape must be one of"),
        ({"cuda_graph_max_bs": 0}, "cuda_graph_max_bs must be an integer"),
        ({"cuda_graph_max_bs": 64, "engine": "vllm"}, "cuda_graph_max_bs is SGLang's"),
        ({"engine_version": "v-next"}, "is not a version"),
    ],
)
def test_bad_moe_input_is_refused_by_name(extra, message):
    with pytest.raises(LlmopsError, match=message):
        plan(dict(H100, model="Qwen/Qwen3-32B", **extra))
