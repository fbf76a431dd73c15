"""Engine argv, env and pod layout for every example inventory (serving.py)."""

import copy

import pytest
from serving_cases import INVENTORIES, case

from ansible_collections.llmops.inference.plugins.module_utils import serving
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError


def workload(inventory):
    config, plan, cache = case(inventory)
    objects = serving.server_manifests(config, plan, cache["layout"])
    return config, plan, objects


def engine(pod_template):
    return pod_template["spec"]["containers"][0]


def env_names(container):
    return [item["name"] for item in container["env"]]


def test_local_single_node_sglang_argv():
    config, plan, objects = workload("local")
    assert [o["kind"] for o in objects] == ["Deployment"]
    container = engine(objects[0]["spec"]["template"])
    argv = serving.server_argv(config, plan, False)
    assert argv == [
        "python3",
        "-m",
        "sglang.launch_server",
        "--model-path",
        "/models/deepseek-ai--DeepSeek-R1-Distill-Qwen-1.5B",
        "--served-model-name",
        "deepseek-r1-distill-1.5b",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--tp-size",
        "1",
        "--mem-fraction-static",
        "0.88",
        "--context-length",
        "32768",
        "--reasoning-parser",
        "deepseek-r1",
        "--enable-metrics",
    ]
    # The API key is not on argv: a shell writes it from the Secret's env into SGLang's --config file.
    assert container["command"][:2] == ["/bin/bash", "-c"]
    script = container["command"][2].splitlines()
    assert script[-1] == "exec " + serving.shell_join(argv + ["--config", serving.SGLANG_API_KEY_FILE])
    assert "umask 077" in script
    assert objects[0]["spec"]["strategy"] == {"type": "Recreate"}
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "1", "cpu": "8", "memory": "32Gi"}


def test_deepseek_r1_lws_sglang_dist_init_and_env():
    _config, _plan, objects = workload("deepseek-r1-2x8-a800-sglang")
    assert [o["kind"] for o in objects] == ["PodGroup", "LeaderWorkerSet"]
    podgroup, lws = objects
    assert podgroup["spec"]["minMember"] == 2
    assert podgroup["spec"]["minResources"] == {"nvidia.com/gpu": "16"}
    spec = lws["spec"]
    assert spec["startupPolicy"] == "LeaderCreated"
    template = spec["leaderWorkerTemplate"]
    assert template["size"] == 2 and template["restartPolicy"] == "RecreateGroupOnPodRestart"
    leader, worker = engine(template["leaderTemplate"]), engine(template["workerTemplate"])
    # SGLang runs the same argv on every pod; the rank comes from the LWS worker index. The leader (the
    # one serving the API) adds its API key file.
    argv = worker["command"]
    assert leader["command"][2].splitlines()[-1] == "exec " + serving.shell_join(
        argv + ["--config", serving.SGLANG_API_KEY_FILE]
    )
    assert argv[argv.index("--tp-size") + 1] == "16"
    assert argv[argv.index("--nnodes") + 1] == "2"
    assert argv[argv.index("--dist-init-addr") + 1] == "$(LWS_LEADER_ADDRESS):20000"
    assert argv[argv.index("--node-rank") + 1] == "$(LWS_WORKER_INDEX)"
    assert argv.count("--nnodes") == 1
    env = {e["name"]: e.get("value") for e in leader["env"]}
    assert env["NCCL_IB_HCA"] == "mlx5_0,mlx5_1,mlx5_4,mlx5_5" and env["GLOO_SOCKET_IFNAME"] == "eth0"
    assert "LLMOPS_API_KEY" in env and "LLMOPS_API_KEY" not in env_names(worker)
    assert leader["resources"]["limits"]["rdma/ib"] == "4"
    assert leader["securityContext"] == {"privileged": False, "capabilities": {"add": ["IPC_LOCK"]}}
    assert "startupProbe" in leader and "startupProbe" not in worker
    # 40.18 GiB x 8 per pod at 0.5 GiB/s + 300 s warm-up = 943 s -> 95 probes of 10 s.
    assert leader["startupProbe"]["failureThreshold"] == 95
    pod = template["leaderTemplate"]
    assert pod["spec"]["schedulerName"] == "volcano"
    assert pod["metadata"]["annotations"] == {"scheduling.k8s.io/group-name": "deepseek-r1"}
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "128Gi"}} in pod["spec"]["volumes"]
    # No RWX: every pod downloads into its own claim.
    assert template["volumeClaimTemplates"][0]["metadata"]["name"] == "model-cache"
    assert template["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "local-path"
    assert pod["spec"]["initContainers"][0]["command"][-1] == "download"
    # One engine pod per node; the model download Job's pod (same name label) must not block a node.
    term = pod["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["labelSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "deepseek-r1",
        "app.kubernetes.io/component": "inference-server",
    }


def test_distill_vllm_single_gpu_argv():
    _config, _plan, objects = workload("distill-1gpu")
    container = engine(objects[0]["spec"]["template"])
    assert container["command"][:3] == ["vllm", "serve", "/models/deepseek-ai--DeepSeek-R1-Distill-Qwen-7B"]
    assert container["command"][container["command"].index("--reasoning-parser") + 1] == "deepseek_r1"
    assert "--enable-prefix-caching" in container["command"]
    assert "--enable-metrics" not in container["command"]
    assert objects[0]["spec"]["template"]["spec"]["initContainers"][0]["command"][-1] == "wait"


def test_qwen3_tp8_vllm_options_and_extra_args():
    _config, _plan, objects = workload("qwen3-235b-vllm-tp8")
    argv = engine(objects[0]["spec"]["template"])["command"]
    assert argv[argv.index("--tensor-parallel-size") + 1] == "8"
    for flag in ("--enable-prefix-caching", "--enable-chunked-prefill", "--enable-auto-tool-choice"):
        assert flag in argv
    assert argv[argv.index("--tool-call-parser") + 1] == "hermes"
    assert argv[-2:] == ["--max-num-seqs", "128"] and "--api-key" not in argv
    assert "--distributed-executor-backend" not in argv


def test_qwen3_two_node_vllm_through_ray():
    _config, _plan, objects = workload("qwen3-235b-vllm-2node-ray")
    lws = objects[-1]
    template = lws["spec"]["leaderWorkerTemplate"]
    leader, worker = engine(template["leaderTemplate"]), engine(template["workerTemplate"])
    script = leader["command"][2]
    assert leader["command"][:2] == ["/bin/bash", "-c"]
    assert script.startswith("set -e\nray start --head --port=6379")
    assert '-ge "${LWS_GROUP_SIZE}"' in script
    serve = script.splitlines()[-1]
    assert serve.startswith("exec vllm serve /models/Qwen--Qwen3-235B-A22B-Instruct-2507 ")
    assert "--tensor-parallel-size 8 --pipeline-parallel-size 2" in serve
    assert serve.count("--distributed-executor-backend") == 1
    assert "--api-key" not in serve and "VLLM_API_KEY" in env_names(leader)
    assert worker["command"][2].startswith('until ray start --address="${LWS_LEADER_ADDRESS}":6379 --block')
    pod = template["workerTemplate"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert worker["resources"]["limits"]["rdma/roce"] == "2"
    assert "schedulerName" not in pod


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_nothing_privileged(inventory):
    _config, _plan, objects = workload(inventory)
    text = repr(objects)
    assert "'privileged': True" not in text
    assert "SYS_ADMIN" not in text and "SYS_PTRACE" not in text


def test_unknown_engine_is_refused():
    config, plan, cache = case("local")
    config["engine"] = "tgi"
    with pytest.raises(LlmopsError, match="unknown engine 'tgi'"):
        serving.server_manifests(config, plan, cache["layout"])


def test_plan_that_does_not_fit_is_refused():
    config, plan, cache = case("local")
    plan = dict(plan, fits=False, reasons=["weights need 1340 GiB, 8 x 80 GiB available"])
    with pytest.raises(LlmopsError, match="1340 GiB"):
        serving.server_manifests(config, plan, cache["layout"])


@pytest.mark.parametrize("flag", ["--tp", "--tensor-parallel-size=4", "--nnodes", "--port", "--api-key"])
def test_extra_args_may_not_set_parallelism_or_role_flags(flag):
    config, plan, cache = case("qwen3-235b-vllm-tp8")
    config["options"] = dict(config["options"], extra_args=[flag, "4"])
    with pytest.raises(LlmopsError, match="may not set"):
        serving.server_manifests(config, plan, cache["layout"])


def test_option_repeating_a_plan_flag_is_refused():
    config, plan, cache = case("qwen3-235b-vllm-tp8")
    config["options"] = dict(config["options"], extra_args=["--max-model-len", "4096"])
    with pytest.raises(LlmopsError, match="repeat flags the plan already sets: --max-model-len"):
        serving.server_manifests(config, plan, cache["layout"])


def test_memory_must_leave_room_for_shm():
    config, plan, cache = case("deepseek-r1-2x8-a800-sglang")
    config["memory"] = "100Gi"
    with pytest.raises(LlmopsError, match="no room beside /dev/shm of 128Gi"):
        serving.server_manifests(config, plan, cache["layout"])


def test_duplicate_env_between_nccl_and_extra_is_refused():
    config, plan, cache = case("deepseek-r1-2x8-a800-sglang")
    config["extra_env"] = {"NCCL_IB_HCA": "mlx5_0"}
    with pytest.raises(LlmopsError, match="NCCL_IB_HCA"):
        serving.server_manifests(config, plan, cache["layout"])


def test_sglang_options_off():
    config, plan, cache = case("local")
    config["options"] = dict(config["options"], prefix_caching=False, chunked_prefill=False, enable_metrics=False)
    argv = serving.server_argv(config, plan, False)
    assert "--disable-radix-cache" in argv
    assert argv[argv.index("--chunked-prefill-size") + 1] == "-1"
    assert "--enable-metrics" not in argv


def test_without_api_key_secret_there_is_no_key_flag():
    config, plan, cache = case("local")
    config["api_key_secret"] = ""
    container = engine(serving.server_manifests(config, plan, cache["layout"])[0]["spec"]["template"])
    assert "--api-key" not in container["command"]
    assert "LLMOPS_API_KEY" not in env_names(container)


def test_multi_node_plan_without_nnodes_gets_group_size():
    config, plan, cache = case("deepseek-r1-2x8-a800-sglang")
    plan = copy.deepcopy(plan)
    plan["engine_args"] = ["--tp-size", "16"]
    argv = serving.server_argv(config, plan, True)
    assert argv[argv.index("--nnodes") + 1] == "$(LWS_GROUP_SIZE)"


def test_uneven_plan_is_refused():
    config, plan, cache = case("deepseek-r1-2x8-a800-sglang")
    with pytest.raises(LlmopsError, match="does not split evenly"):
        serving.server_manifests(config, dict(plan, accelerators_used=15), cache["layout"])


def test_shell_quote_keeps_env_references_live():
    assert serving.shell_join(["echo", "$(A):1", "it's", "a b"]) == "echo \"${A}\":1 'it'\"'\"'s' 'a b'"


def test_shell_join_round_trips_through_bash():
    """The quoting is checked by a real bash: it must hand the engine exactly the argv we built."""
    import subprocess

    argv = ["--served-model-name", "it's a model", "--dist-init-addr", "$(LEADER):20000", "--x", "$(EMPTY)"]
    script = 'printf "%s\\n" ' + serving.shell_join(argv)
    out = subprocess.run(
        ["bash", "-c", script], env={"LEADER": "10.0.0.7", "EMPTY": ""}, capture_output=True, text=True, check=True
    ).stdout
    assert out.split("\n")[:-1] == [
        "--served-model-name",
        "it's a model",
        "--dist-init-addr",
        "10.0.0.7:20000",
        "--x",
        "",
    ]


@pytest.mark.parametrize("inventory", ["qwen3-235b-vllm-2node-ray"])
def test_ray_scripts_are_valid_bash(inventory):
    import subprocess

    _config, _plan, objects = workload(inventory)
    template = objects[-1]["spec"]["leaderWorkerTemplate"]
    for pod in (template["leaderTemplate"], template["workerTemplate"]):
        subprocess.run(["bash", "-n", "-c", engine(pod)["command"][2]], check=True)


def test_quantity_bytes():
    assert serving.quantity_bytes("1Ti") == 2**40
    assert serving.quantity_bytes("1.5Gi") == int(1.5 * 2**30)
    with pytest.raises(LlmopsError):
        serving.quantity_bytes("lots")


def _ascend_case(**changes):
    config, plan, cache = case("qwen3-235b-vllm-2node-ray")
    plan = copy.deepcopy(plan)
    plan["accelerator"]["id"] = "Ascend-910B-64G"
    config = dict(config, image="", accelerator_resource="", **changes)
    config["images"] = {"nvidia": {"vllm": "nv"}, "huawei": {"vllm": "quay.io/ascend/vllm-ascend:v0.13.0"}}
    return config, plan, cache


def test_vendor_comes_from_the_plans_accelerator():
    config, plan, _cache = _ascend_case()
    assert serving.accelerator_vendor(config, plan) == "huawei"
    assert serving.accelerator_vendor(dict(config, accelerator_vendor="nvidia"), plan) == "nvidia"
    assert serving.accelerator_vendor({}, {"accelerator": {"id": "custom-48G"}}) == "nvidia"
    with pytest.raises(LlmopsError, match="unknown accelerator vendor 'amd'"):
        serving.accelerator_vendor({"accelerator_vendor": "amd"}, plan)


def test_ascend_pods_get_npu_resource_image_and_driver_mounts():
    config, plan, cache = _ascend_case()
    objects = serving.server_manifests(config, plan, cache["layout"])
    for role in ("leaderTemplate", "workerTemplate"):
        spec = objects[-1]["spec"]["leaderWorkerTemplate"][role]["spec"]
        container = engine({"spec": spec})
        assert container["image"] == "quay.io/ascend/vllm-ascend:v0.13.0"
        assert container["resources"]["limits"]["huawei.com/Ascend910"] == "8"
        assert "nvidia.com/gpu" not in container["resources"]["limits"]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert mounts["/usr/local/Ascend/driver"]["readOnly"] is True and mounts["/usr/slog"]["readOnly"] is False
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert all(
            volumes[m["name"]].get("hostPath") for m in container["volumeMounts"] if m["name"].startswith("host-")
        )
        assert {"path": "/etc/ascend_install.info", "type": "File"} in [v.get("hostPath") for v in spec["volumes"]]


def test_nvidia_pods_get_no_host_mounts_and_explicit_mounts_replace_the_defaults():
    config, plan, cache = case("distill-1gpu")
    container = engine(serving.server_manifests(config, plan, cache["layout"])[0]["spec"]["template"])
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/dev/shm", "/models"]
    config, plan, cache = _ascend_case(
        host_mounts=[{"host_path": "/opt/driver", "mount_path": "/usr/local/Ascend/driver"}]
    )
    spec = serving.server_manifests(config, plan, cache["layout"])[-1]["spec"]["leaderWorkerTemplate"]["leaderTemplate"]
    assert [v["hostPath"] for v in spec["spec"]["volumes"] if "hostPath" in v] == [{"path": "/opt/driver"}]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"images": {"huawei": {}}}, "no vllm image is known for huawei accelerators"),
        ({"host_mounts": [{"host_path": "relative"}]}, "absolute path"),
        ({"host_mounts": [{"host_path": "/x", "type": "Dir"}]}, "is not one of"),
    ],
)
def test_bad_accelerator_settings(changes, message):
    config, plan, cache = _ascend_case()
    config.update(changes)
    with pytest.raises(LlmopsError, match=message):
        serving.server_manifests(config, plan, cache["layout"])
