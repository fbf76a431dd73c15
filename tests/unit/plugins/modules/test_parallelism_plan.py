# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drive the parallelism_plan module through AnsibleModule with patch_module_args."""

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.llmops.inference.plugins.modules import parallelism_plan


def run_module(capsys, args):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        parallelism_plan.main()
    result = json.loads(capsys.readouterr().out)
    return exit_info.value.code, result


def test_plan_returned_unchanged_in_check_mode(capsys):
    args = {
        "model": "meituan/DeepSeek-R1-Block-INT8",
        "accelerator": "A800-80G",
        "nodes": 2,
        "inter_node_link": "ib",
        "context_length": 131072,
        "_ansible_check_mode": True,
    }
    code, result = run_module(capsys, args)
    assert code == 0 and result["changed"] is False
    plan = result["plan"]
    for key in (
        "fits",
        "tensor_parallel",
        "pipeline_parallel",
        "data_parallel",
        "expert_parallel",
        "nodes",
        "accelerators_used",
        "weights_gib_per_accelerator",
        "kv_bytes_per_token",
        "kv_cache_tokens",
        "max_context_length",
        "max_concurrent_sequences",
        "engine_args",
        "warnings",
        "reasons",
    ):
        assert key in plan
    assert plan["fits"] and plan["tensor_parallel"] == 16 and plan["nodes"] == 2
    assert "--nnodes" in plan["engine_args"]


def test_no_fit_fails_with_numbers(capsys):
    code, result = run_module(
        capsys, {"model": "deepseek-ai/DeepSeek-R1", "accelerator": "A800-80G", "weight_dtype": "bf16"}
    )
    assert code == 1 and result["failed"]
    assert result["msg"].startswith("deepseek-ai/DeepSeek-R1 does not fit: needs 1250 GiB for weights (bf16)")
    assert "smallest fit" in result["msg"]
    assert result["plan"]["fits"] is False


def test_no_fit_reported_when_fail_on_no_fit_false(capsys):
    code, result = run_module(
        capsys,
        {
            "model": "deepseek-ai/DeepSeek-R1",
            "accelerator": "A800-80G",
            "weight_dtype": "bf16",
            "fail_on_no_fit": False,
        },
    )
    assert code == 0 and result["changed"] is False
    assert result["plan"]["fits"] is False and result["plan"]["reasons"]


@pytest.mark.parametrize(
    "args,message",
    [
        ({"model": "nobody/Unknown-3B", "accelerator": "H100-80G"}, "unknown model 'nobody/Unknown-3B'"),
        (
            {"model": "Qwen/Qwen3-8B", "accelerator": "H100-80G", "accelerators_per_node": 0},
            "no accelerators to plan for",
        ),
        (
            {"model": "Qwen/Qwen3-8B", "accelerator": "H100-80G", "memory_fraction": 1.5},
            "memory_fraction must be in (0, 1]",
        ),
        (
            {"model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "accelerator": "H100-80G", "tensor_parallel": 3},
            "does not divide the 40 attention heads",
        ),
        ({"accelerator": "H100-80G"}, "one of the following is required: model, model_path"),
    ],
)
def test_bad_input_fails_cleanly(capsys, args, message):
    code, result = run_module(capsys, args)
    assert code == 1 and result["failed"]
    assert message in result["msg"]
    assert "Traceback" not in result["msg"]


def test_model_path_config_missing_fields(capsys, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 1024, "num_hidden_layers": 4}))
    code, result = run_module(capsys, {"model_path": str(tmp_path), "accelerator": "L40S"})
    assert code == 1 and "lacks intermediate_size, num_attention_heads, vocab_size" in result["msg"]


def test_module_plans_deepep_and_mtp_for_the_images_release(capsys):
    args = {
        "model": "deepseek-ai/DeepSeek-R1",
        "accelerator": "H100-80G",
        "nodes": 2,
        "inter_node_link": "ib",
        "tensor_parallel": 16,
        "expert_parallel": 16,
        "attention_data_parallel": 16,
        "cuda_graph_max_bs": 128,
        "fabric_shape": "all-to-all",
        "speculative_mtp": True,
        "engine_image": "lmsysorg/sglang:v0.5.6.post2-cu129",
    }
    code, result = run_module(capsys, args)
    assert code == 0, result
    plan = result["plan"]
    assert plan["engine_version"] == "0.5.6.post2" and "server_args.py" in plan["memory_rule"]
    assert plan["moe_all_to_all"] == "deepep" and plan["speculative_mtp"] is True
    assert "--moe-a2a-backend" in plan["engine_args"] and "--speculative-algorithm" in plan["engine_args"]
    code, result = run_module(capsys, dict(args, fabric_shape="rail-only", moe_all_to_all="deepep"))
    assert code == 1 and "the fabric is rail-only" in result["msg"]
