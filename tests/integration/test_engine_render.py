"""Real ansible-playbook render runs for the engine interface (issue 11, issue 10 #11).

- serving_plan passes ``attention_data_parallel`` to parallelism_plan, and the builder writes the DP-attention
  flags the target image's SGLang takes (0.5.23: ``--attn-dp-size``; 0.5.6.post2: ``--dp-size --enable-dp-attention``);
- the API key given to the role appears in no printed line of ``ansible-playbook -v`` and in no rendered
  object except the Secret that carries it, and no engine container has ``--api-key`` on its argv.
"""

import glob
import os

from render_helpers import read, rendered
from render_helpers import run_render as run_serve

API_KEY = "sk-engine-render-7c1d9e2f-never-printed"
DPA = '{"serving_plan_overrides": {"tensor_parallel": 2, "attention_data_parallel": 2}}'


def _engine_command(objects):
    deployment = objects["Deployment"][0]
    return deployment["spec"]["template"]["spec"]["containers"][0]["command"]


def test_attention_data_parallel_reaches_the_engine_in_each_versions_spelling(tmp_path):
    new, old = str(tmp_path / "new"), str(tmp_path / "old")
    common = ("-e", "llmops_accelerators_per_node=2", "-e", "inference_server_memory=64Gi", "-e", DPA)
    common += ("-e", "inference_server_api_key=%s" % API_KEY)
    result = run_serve("local", new, *common, "-e", "inference_server_render_api_key_secret=true", plan=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    script = _engine_command(rendered(new))[2]
    assert "--attn-dp-size 2" in script and "--enable-dp-attention" not in script
    # the key: nowhere in what ansible printed, only in the Secret we asked to render, never on argv
    assert API_KEY not in result.stdout + result.stderr
    with_key = [p for p in glob.glob(os.path.join(new, "*", "*.yaml")) if API_KEY in read(p)]
    assert len(with_key) == 1 and "Secret" in read(with_key[0])
    assert "--api-key" not in "".join(read(p) for p in glob.glob(os.path.join(new, "*", "*.yaml")))

    image = "-e", '{"inference_server_images": {"sglang": "docker.io/lmsysorg/sglang:v0.5.6.post2-cu129"}}'
    result = run_serve("local", old, *common, *image, plan=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    script = _engine_command(rendered(old))[2]
    assert "--dp-size 2 --enable-dp-attention" in script and "--attn-dp-size" not in script
    assert API_KEY not in result.stdout + result.stderr


# DeepSeek-R1 on 2 x 8 H100 with vLLM: data + expert parallel across the nodes (no Ray), MTP, and the fabric facts
# the prepare stage keeps (llmops_fabric: fabric_check's return) - rendered through serving_plan -> inference_server.
MOE = (
    "-e",
    '{"llmops_model_id": "deepseek-ai/DeepSeek-R1", "llmops_accelerator": "H100-80G", "model_cache_model_gib": 700,'
    ' "serving_plan_overrides": {"tensor_parallel": 8, "data_parallel": 2, "expert_parallel": 16},'
    ' "serving_plan_speculative_mtp": true}',
)


def _fabric(shape):
    pairs = 56
    return "-e", '{"llmops_fabric": {"shape": {"shape": "%s", "cross_rail_reachable": %d, "cross_rail_pairs": %d}}}' % (
        shape,
        pairs if shape == "all-to-all" else 0,
        pairs,
    )


def test_vllm_dp_ep_deepep_mtp_renders_headless_workers_with_nvshmem_env(tmp_path):
    out = str(tmp_path / "moe")
    result = run_serve("qwen3-235b-vllm-2node-ray", out, *MOE, *_fabric("all-to-all"), plan=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    lws = rendered(out)["LeaderWorkerSet"][0]["spec"]["leaderWorkerTemplate"]
    leader, worker = (lws[key]["spec"]["containers"][0] for key in ("leaderTemplate", "workerTemplate"))
    for container, headless in ((leader, False), (worker, True)):
        script = container["command"][2]
        assert "ray start" not in script and "--distributed-executor-backend" not in script
        assert ("--headless" in script) is headless and ("--data-parallel-start-rank" in script) is headless
        assert "--all2all-backend deepep_low_latency" in script and "--speculative-config" in script
        env = {item["name"]: item.get("value") for item in container["env"]}
        # the inventory's RoCE NCCL env (GID 3, exact-match HCAs) and its NVSHMEM twins; the host NIC under hostNetwork
        assert env["NVSHMEM_IB_GID_INDEX"] == env["NCCL_IB_GID_INDEX"] == "3"
        assert env["NVSHMEM_HCA_LIST"] == "mlx5_0,mlx5_1" and env["NCCL_IB_HCA"] == "=mlx5_0,mlx5_1"
        assert env["NVSHMEM_BOOTSTRAP_UID_SOCK_IFNAME"] == env["NCCL_SOCKET_IFNAME"] == "bond0"


def test_deepep_on_a_rail_only_fabric_stops_before_anything_is_rendered(tmp_path):
    out = str(tmp_path / "rail")
    forced = "-e", "serving_plan_moe_all_to_all=deepep"
    result = run_serve("qwen3-235b-vllm-2node-ray", out, *MOE, *_fabric("rail-only"), *forced, plan=False)
    assert result.returncode != 0
    assert "moe_all_to_all deepep: the fabric is rail-only" in result.stdout
    assert not glob.glob(os.path.join(out, "*", "*.yaml"))
