"""Engine argv, env and pod layout for every example inventory (serving.py)."""

import copy
import os
import subprocess

import pytest
from serving_cases import INVENTORIES, case

from ansible_collections.llmops.inference.plugins.module_utils import serving
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError


def workload(inventory):
    config, plan, cache = case(inventory)
    objects = serving.server_manifests(config, plan, cache["layout"])
    return config, plan, objects


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "LeaderWorkerSet")


def server(objects):
    """The workload among the server's objects (a PodDisruptionBudget follows it since issue 10)."""
    return next(o for o in objects if o["kind"] in WORKLOAD_KINDS)


def engine(pod_template):
    return pod_template["spec"]["containers"][0]


def env_names(container):
    return [item["name"] for item in container["env"]]


def test_local_single_node_sglang_argv():
    config, plan, objects = workload("local")
    # A PodDisruptionBudget follows the workload (issue 10, Medium).
    assert [o["kind"] for o in objects] == ["Deployment", "PodDisruptionBudget"]
    container = engine(server(objects)["spec"]["template"])
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
    assert server(objects)["spec"]["strategy"] == {"type": "Recreate"}
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "1", "cpu": "8", "memory": "32Gi"}


def test_deepseek_r1_lws_sglang_dist_init_and_env():
    _config, _plan, objects = workload("deepseek-r1-2x8-a800-sglang")
    assert [o["kind"] for o in objects] == ["PodGroup", "LeaderWorkerSet", "PodDisruptionBudget"]
    podgroup, lws, _pdb = objects
    assert podgroup["spec"]["minMember"] == 2
    assert podgroup["spec"]["minResources"] == {"nvidia.com/gpu": "16"}
    spec = lws["spec"]
    assert spec["startupPolicy"] == "LeaderCreated"
    template = spec["leaderWorkerTemplate"]
    assert template["size"] == 2 and template["restartPolicy"] == "RecreateGroupOnPodRestart"
    leader, worker = engine(template["leaderTemplate"]), engine(template["workerTemplate"])
    # SGLang runs the same argv on every pod; the rank comes from the LWS worker-index label (issue 10 #13:
    # $(LWS_WORKER_INDEX) is injected only from LWS v0.6.0). The leader (serving the API) adds its key file.
    argv = worker["command"]
    assert leader["command"][2].splitlines()[-1] == "exec " + serving.shell_join(
        argv + ["--config", serving.SGLANG_API_KEY_FILE]
    )
    assert argv[argv.index("--tp-size") + 1] == "16"
    assert argv[argv.index("--nnodes") + 1] == "2"
    assert argv[argv.index("--dist-init-addr") + 1] == "$(LWS_LEADER_ADDRESS):20000"
    assert argv[argv.index("--node-rank") + 1] == "$(LLMOPS_WORKER_INDEX)"
    assert argv.count("--nnodes") == 1
    env = {e["name"]: e.get("value") for e in leader["env"]}
    # Exact-match HCA list (issue 10 #5: a bare mlx5_1 also selects mlx5_10..17); eth0 from the pod network mode.
    assert env["NCCL_IB_HCA"] == "=mlx5_0,mlx5_1,mlx5_4,mlx5_5" and env["GLOO_SOCKET_IFNAME"] == "eth0"
    assert "LLMOPS_API_KEY" in env and "LLMOPS_API_KEY" not in env_names(worker)
    # One share of the shared device plugin's rdma/ib gives every HCA (the inventory asked for 4 shares before).
    assert leader["resources"]["limits"]["rdma/ib"] == "1"
    # Hardened by default (issue 10, Medium): every capability dropped, IPC_LOCK back because rdma/ib is requested.
    assert leader["securityContext"] == {
        "privileged": False,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"], "add": ["IPC_LOCK"]},
    }
    assert "startupProbe" in leader and "startupProbe" not in worker
    # Issue 10 #1: 40.18 GiB x 8 per node at 0.5 GiB/s (643 s) + 600 s group formation + 300 s warm-up = 1543 s,
    # below the one-hour floor of a multi-node group -> 360 probes of 10 s (was 95: 943 s, an endless reload).
    assert leader["startupProbe"]["failureThreshold"] == 360
    pod = template["leaderTemplate"]
    assert pod["spec"]["schedulerName"] == "volcano"
    assert pod["metadata"]["annotations"] == {"scheduling.k8s.io/group-name": "deepseek-r1"}
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "128Gi"}} in pod["spec"]["volumes"]
    # No RWX: every pod gets its own claim, staged before the group exists; the pods only wait (issue 10 #2).
    assert template["volumeClaimTemplates"][0]["metadata"]["name"] == "model-cache"
    assert template["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "local-path"
    assert pod["spec"]["initContainers"][0]["command"][-1] == "wait"
    # One engine pod per node; the model download Job's pod (same name label) must not block a node.
    term = pod["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["labelSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "deepseek-r1",
        "app.kubernetes.io/component": "inference-server",
    }


def test_distill_vllm_single_gpu_argv():
    _config, _plan, objects = workload("distill-1gpu")
    container = engine(server(objects)["spec"]["template"])
    assert container["command"][:3] == ["vllm", "serve", "/models/deepseek-ai--DeepSeek-R1-Distill-Qwen-7B"]
    assert container["command"][container["command"].index("--reasoning-parser") + 1] == "deepseek_r1"
    assert "--enable-prefix-caching" in container["command"]
    assert "--enable-metrics" not in container["command"]
    assert server(objects)["spec"]["template"]["spec"]["initContainers"][0]["command"][-1] == "wait"


def test_qwen3_tp8_vllm_options_and_extra_args():
    _config, _plan, objects = workload("qwen3-235b-vllm-tp8")
    argv = engine(server(objects)["spec"]["template"])["command"]
    assert argv[argv.index("--tensor-parallel-size") + 1] == "8"
    for flag in ("--enable-prefix-caching", "--enable-chunked-prefill", "--enable-auto-tool-choice"):
        assert flag in argv
    assert argv[argv.index("--tool-call-parser") + 1] == "hermes"
    assert argv[-2:] == ["--max-num-seqs", "128"] and "--api-key" not in argv
    assert "--distributed-executor-backend" not in argv


def test_qwen3_two_node_vllm_through_ray():
    _config, _plan, objects = workload("qwen3-235b-vllm-2node-ray")
    lws = server(objects)
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
    assert 'until ray start --address="${LWS_LEADER_ADDRESS}":6379 --block' in worker["command"][2]
    pod = template["workerTemplate"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    # rdma/roce is now announced by the device plugin (linkTypes [ether]); one share is all HCAs of the pod.
    assert worker["resources"]["limits"]["rdma/roce"] == "1"
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


def _sized(inventory, **sizing):
    """Engine resources and /dev/shm size of ``inventory``'s server with only ``sizing`` set."""
    config, plan, cache = case(inventory)
    config.update(dict(dict(cpu="", memory="", cpu_per_accelerator="", memory_per_accelerator=""), **sizing))
    objects = serving.server_manifests(config, plan, cache["layout"])
    pod = pod_templates(objects)[0][1]
    shm = next(v for v in pod["spec"]["volumes"] if v["name"] == "dshm")["emptyDir"]["sizeLimit"]
    return engine(pod)["resources"], shm


def test_per_accelerator_sizing_follows_the_plan():
    """One site sizing (per accelerator) on a 1-accelerator pod and on an 8-accelerator pod: each gets
    its share times the accelerators, and the memory holds the /dev/shm the same plan sizes."""
    resources, shm = _sized("local", cpu_per_accelerator="8", memory_per_accelerator="32Gi")
    assert resources["limits"] == resources["requests"] == {"nvidia.com/gpu": "1", "cpu": "8", "memory": "32Gi"}
    assert shm == "16Gi"
    resources, shm = _sized("deepseek-r1-2x8-a800-sglang", cpu_per_accelerator="500m", memory_per_accelerator="20Gi")
    assert resources["limits"]["nvidia.com/gpu"] == "8"
    assert resources["limits"]["cpu"] == resources["requests"]["cpu"] == "4"
    assert resources["limits"]["memory"] == resources["requests"]["memory"] == "160Gi"
    assert shm == "128Gi"
    resources, _shm = _sized("local", cpu_per_accelerator="1.5", memory_per_accelerator="17.5Gi")
    assert (resources["limits"]["cpu"], resources["limits"]["memory"]) == ("1500m", "17920Mi")


def test_absolute_sizing_wins_and_is_used_as_given():
    resources, _shm = _sized(
        "deepseek-r1-2x8-a800-sglang", cpu="96", memory="1000Gi", cpu_per_accelerator="1", memory_per_accelerator="20Gi"
    )
    assert (resources["limits"]["cpu"], resources["limits"]["memory"]) == ("96", "1000Gi")
    # Unsized: no cpu/memory at all (the accelerators only).
    resources, _shm = _sized("local")
    assert resources["limits"] == {"nvidia.com/gpu": "1"}


def test_sizing_that_cannot_hold_shm_is_refused_with_its_origin():
    # An explicit absolute memory stays explicit: 32Gi for an 8-accelerator pod is refused, not raised.
    with pytest.raises(
        LlmopsError,
        match=r"inference_server_memory 32Gi leaves no room beside /dev/shm of 128Gi \(8 accelerators per pod x 16Gi\)",
    ):
        _sized("deepseek-r1-2x8-a800-sglang", memory="32Gi")
    # A per-accelerator share below the /dev/shm share never fits, whatever the shape.
    with pytest.raises(
        LlmopsError, match=r"memory_per_accelerator 12Gi x 8 accelerators per pod = 96Gi leaves no room"
    ):
        _sized("deepseek-r1-2x8-a800-sglang", memory_per_accelerator="12Gi")
    with pytest.raises(
        LlmopsError, match=r"inference_server_memory 8Gi leaves no room beside /dev/shm of 8Gi \(the 8Gi floor\)"
    ):
        _sized("local", memory="8Gi", shm_gib_per_accelerator=4)
    with pytest.raises(LlmopsError, match=r"beside /dev/shm of 200Gi \(inference_server_shm_gib\)"):
        _sized("deepseek-r1-2x8-a800-sglang", memory_per_accelerator="20Gi", shm_gib=200)
    for bad in ({"cpu": "eight"}, {"cpu_per_accelerator": "1core"}, {"memory_per_accelerator": "32GB"}):
        ((key, value),) = bad.items()
        with pytest.raises(
            LlmopsError, match="inference_server_%s: not a Kubernetes (CPU|memory) quantity: '%s'" % (key, value)
        ):
            _sized("local", **bad)


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
    container = engine(server(serving.server_manifests(config, plan, cache["layout"]))["spec"]["template"])
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
    template = server(objects)["spec"]["leaderWorkerTemplate"]
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
        spec = server(objects)["spec"]["leaderWorkerTemplate"][role]["spec"]
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
    container = engine(server(serving.server_manifests(config, plan, cache["layout"]))["spec"]["template"])
    # The compile cache (issue 10 #1) is a subfolder of the model cache volume, not a host path.
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/dev/shm", "/models", "/var/cache/llmops"]
    config, plan, cache = _ascend_case(
        host_mounts=[{"host_path": "/opt/driver", "mount_path": "/usr/local/Ascend/driver"}]
    )
    spec = server(serving.server_manifests(config, plan, cache["layout"]))["spec"]["leaderWorkerTemplate"][
        "leaderTemplate"
    ]
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


# Issue 10: pod lifecycle, placement and hardening. Each test below failed on the output before the fix.
def pod_templates(objects):
    """(role, pod template) of every engine pod the workload creates."""
    spec = server(objects)["spec"]
    if "leaderWorkerTemplate" in spec:
        template = spec["leaderWorkerTemplate"]
        return [("leader", template["leaderTemplate"]), ("worker", template["workerTemplate"])]
    return [("single", spec["template"])]


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_startup_budget_covers_loading_formation_and_warmup(inventory):
    config, plan, objects = workload(inventory)
    budget = serving.startup_budget(config, plan)
    weights = plan["weights_gib_per_accelerator"] * serving.accelerators_per_pod(plan)
    assert budget["load_seconds"] >= weights / config["load_gib_per_second"]
    large = plan["nodes"] > 1 or plan["model"]["parameters"] > 100e9
    # The floor: an hour for a multi-node group or a model over 100B (671B loads take 40-50 min, seed 003).
    assert budget["startup_seconds"] >= (3600 if large else 600)
    assert budget["startup_seconds"] >= budget["load_seconds"] + budget["formation_seconds"] + budget["warmup_seconds"]
    for role, pod in pod_templates(objects):
        if role != "worker":
            probe = engine(pod)["startupProbe"]
            assert probe["failureThreshold"] * probe["periodSeconds"] >= budget["startup_seconds"]


def test_startup_budget_numbers_for_deepseek_r1():
    config, plan, _cache = case("deepseek-r1-2x8-a800-sglang")
    budget = serving.startup_budget(dict(config, load_gib_per_second=0.25, warmup_seconds=900), plan)
    # 40.18 GiB x 8 = 321.44 GiB per node / 0.25 GiB/s = 1286 s + 600 s formation + 900 s warm-up = 2786 s < 3600.
    assert budget["load_seconds"] == 1286 and budget["formation_seconds"] == 600
    assert budget["startup_seconds"] == 3600 and budget["dist_timeout_seconds"] == 3600
    slow = serving.startup_budget(dict(config, load_gib_per_second=0.1, warmup_seconds=900), plan)
    assert slow["startup_seconds"] == 3215 + 600 + 900


def test_sglang_rendezvous_waits_as_long_as_the_probe():
    config, plan, objects = workload("deepseek-r1-2x8-a800-sglang")
    # the leader's command is a shell line (it writes the API key file first): compare the words
    for _role, pod in pod_templates(objects):
        words = " ".join(engine(pod)["command"]).split()
        assert words[words.index("--dist-timeout") + 1] == str(serving.startup_seconds(config, plan))
    # A user's own --dist-timeout is kept, never repeated.
    config["options"] = dict(config["options"], extra_args=["--dist-timeout", "7200"])
    words = " ".join(
        engine(
            pod_templates(serving.server_manifests(config, plan, case("deepseek-r1-2x8-a800-sglang")[2]["layout"]))[0][
                1
            ]
        )["command"]
    ).split()
    assert words.count("--dist-timeout") == 1 and words[words.index("--dist-timeout") + 1] == "7200"


def test_vllm_ray_pods_get_the_budget_as_env():
    config, plan, objects = workload("qwen3-235b-vllm-2node-ray")
    for _role, pod in pod_templates(objects):
        env = {e["name"]: e.get("value") for e in engine(pod)["env"]}
        assert env["LLMOPS_STARTUP_BUDGET_SECONDS"] == str(serving.startup_seconds(config, plan))
        assert "--dist-timeout" not in engine(pod)["command"][2]


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_probe_timeouts_cover_sglangs_health_generate(inventory):
    _config, _plan, objects = workload(inventory)
    for role, pod in pod_templates(objects):
        if role == "worker":
            continue
        container = engine(pod)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["timeoutSeconds"] >= 20, probe


def test_probe_timeout_below_twenty_seconds_is_refused():
    config, plan, cache = case("local")
    with pytest.raises(LlmopsError, match="20 s /health generate"):
        serving.server_manifests(dict(config, probe_timeout_seconds=5), plan, cache["layout"])


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_prestop_drain_and_grace_period(inventory):
    _config, _plan, objects = workload(inventory)
    for role, pod in pod_templates(objects):
        container = engine(pod)
        assert pod["spec"]["terminationGracePeriodSeconds"] >= 600 + 10
        command = container["lifecycle"]["preStop"]["exec"]["command"]
        if role == "worker":
            assert command[:2] == ["python3", "-c"]
        else:
            assert command == ["sleep", "10"]


def test_worker_prestop_holds_until_the_leader_closes(tmp_path):
    """The worker's preStop script, run by a real python3 against a real listening socket."""
    import socket
    import subprocess
    import sys
    import time

    _config, _plan, objects = workload("qwen3-235b-vllm-2node-ray")
    command = engine(dict(pod_templates(objects))["worker"])["lifecycle"]["preStop"]["exec"]["command"]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    env = {"LWS_LEADER_ADDRESS": "127.0.0.1"}
    started = time.time()
    # Leader still up: the worker stays for the (shortened) drain budget.
    subprocess.run([sys.executable, "-c", command[2], str(port), "3"], env=env, check=True, timeout=30)
    assert time.time() - started >= 3
    listener.close()
    started = time.time()
    subprocess.run([sys.executable, "-c", command[2], str(port), "600"], env=env, check=True, timeout=60)
    assert time.time() - started < 30  # far below the 600 s drain: it left as soon as the port closed


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_pods_are_hardened_by_default(inventory):
    config, _plan, objects = workload(inventory)
    for _role, pod in pod_templates(objects):
        spec = pod["spec"]
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"] + spec.get("initContainers", []):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False and context["privileged"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            added = context["capabilities"].get("add", [])
            assert added == (["IPC_LOCK"] if container["name"] == "engine" and config["rdma_resources"] else [])


def test_ipc_lock_can_be_forced_either_way():
    config, plan, cache = case("local")
    container = engine(
        pod_templates(serving.server_manifests(dict(config, ipc_lock=True), plan, cache["layout"]))[0][1]
    )
    assert container["securityContext"]["capabilities"]["add"] == ["IPC_LOCK"]


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_pod_disruption_budget_covers_the_engine_pods_only(inventory):
    config, plan, objects = workload(inventory)
    pdb = objects[-1]
    assert pdb["kind"] == "PodDisruptionBudget" and pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["maxUnavailable"] == plan["nodes"]
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    selector = pdb["spec"]["selector"]["matchLabels"]
    for _role, pod in pod_templates(objects):
        assert selector.items() <= pod["metadata"]["labels"].items()
    config, plan, cache = case(inventory)
    assert "PodDisruptionBudget" not in [
        o["kind"] for o in serving.server_manifests(dict(config, pdb_enabled=False), plan, cache["layout"])
    ]


# gpu-feature-discovery's nvidia.com/gpu.product of each inventory's GPU (nvidia-smi name, spaces as dashes).
PRODUCTS = {
    "local": "NVIDIA-A10",
    "deepseek-r1-2x8-a800-sglang": "NVIDIA-A800-SXM4-80GB",
    "distill-1gpu": "NVIDIA-A100-SXM4-80GB",
    "qwen3-235b-vllm-tp8": "NVIDIA-A800-SXM4-80GB",
    "qwen3-235b-vllm-2node-ray": "NVIDIA-A100-SXM4-40GB",
}


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_engine_pods_select_the_planned_accelerator_and_tolerate_its_taint(inventory):
    _config, plan, objects = workload(inventory)
    for _role, pod in pod_templates(objects):
        spec = pod["spec"]
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
        terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        expression = terms[0]["matchExpressions"][0]
        assert expression["key"] == "nvidia.com/gpu.product" and expression["operator"] == "In"
        assert PRODUCTS[inventory] in expression["values"]


def test_ascend_pods_select_npu_nodes_and_placement_can_be_turned_off():
    config, plan, cache = _ascend_case()
    spec = pod_templates(serving.server_manifests(config, plan, cache["layout"]))[0][1]["spec"]
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0] == {"key": "accelerator", "operator": "In", "values": ["huawei-Ascend910"]}
    assert spec["tolerations"][0]["key"] == "huawei.com/Ascend910"
    # The inventory's own nodeSelector on the same label is not required twice.
    spec = pod_templates(
        serving.server_manifests(dict(config, node_selector={"accelerator": "huawei-Ascend910"}), plan, cache["layout"])
    )[0][1]["spec"]
    assert spec["nodeSelector"] == {"accelerator": "huawei-Ascend910"} and "nodeAffinity" not in spec["affinity"]
    off = dict(
        config, accelerator_node_labels={}, accelerator_tolerations=[], tolerations=[{"key": "x", "operator": "Exists"}]
    )
    spec = pod_templates(serving.server_manifests(off, plan, cache["layout"]))[0][1]["spec"]
    assert "nodeAffinity" not in spec["affinity"] and spec["tolerations"] == [{"key": "x", "operator": "Exists"}]


@pytest.mark.parametrize("inventory", ["deepseek-r1-2x8-a800-sglang", "qwen3-235b-vllm-2node-ray"])
def test_worker_index_comes_from_the_label_on_every_lws_version(inventory):
    _config, _plan, objects = workload(inventory)
    assert "LWS_WORKER_INDEX" not in repr(objects)
    for _role, pod in pod_templates(objects):
        env = {e["name"]: e for e in engine(pod)["env"]}
        assert env["LLMOPS_WORKER_INDEX"]["valueFrom"] == {
            "fieldRef": {"fieldPath": "metadata.labels['leaderworkerset.sigs.k8s.io/worker-index']"}
        }


@pytest.mark.parametrize("version, ok", [("v0.5.1", False), ("v0.7.0", False), ("v0.8.0", True), ("0.10.0", True)])
def test_volume_claim_templates_need_lws_0_8(version, ok):
    config, plan, cache = case("deepseek-r1-2x8-a800-sglang")
    config["lws_version"] = version
    if ok:
        assert serving.server_manifests(config, plan, cache["layout"])
    else:
        with pytest.raises(LlmopsError, match="has no volumeClaimTemplates .it exists from v0.8.0"):
            serving.server_manifests(config, plan, cache["layout"])
    # An RWX cache needs no claim templates and runs on v0.5.1 (the seed's).
    config, plan, cache = case("qwen3-235b-vllm-2node-ray")
    assert serving.server_manifests(dict(config, lws_version="v0.5.1"), plan, cache["layout"])


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_init_containers_keep_the_pod_guaranteed(inventory):
    config, plan, objects = workload(inventory)
    for _role, pod in pod_templates(objects):
        containers = pod["spec"]["containers"] + pod["spec"].get("initContainers", [])
        for container in pod["spec"].get("initContainers", []):
            resources = container["resources"]
            assert resources["requests"] == resources["limits"] and {"cpu", "memory"} <= set(resources["limits"])
        if set(serving.pod_size(config, plan)) == {"cpu", "memory"}:
            # Kubernetes' Guaranteed class: every container has cpu and memory with requests = limits.
            for container in containers:
                limits, requests = container["resources"]["limits"], container["resources"]["requests"]
                assert requests["cpu"] == limits["cpu"] and requests["memory"] == limits["memory"]


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_compile_caches_persist_on_the_cache_volume(inventory):
    config, _plan, objects = workload(inventory)
    for _role, pod in pod_templates(objects):
        container = engine(pod)
        env = {e["name"]: e.get("value") for e in container["env"]}
        for name in ("TRITON_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR", "VLLM_CACHE_ROOT", "FLASHINFER_WORKSPACE_BASE"):
            assert env[name].startswith("/var/cache/llmops/")
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/var/cache/llmops")
        assert mount["name"] == "model-cache" and mount["subPath"] == ".llmops-compile-cache/" + config["name"]
        assert not mount.get("readOnly")
        # The weights stay read-only; the volume itself is not, so the subfolder can be written.
        model = next(m for m in container["volumeMounts"] if m["mountPath"] == "/models")
        assert model["readOnly"] is True
        volume = next((v for v in pod["spec"]["volumes"] if v["name"] == "model-cache"), None)
        assert volume is None or not volume.get("persistentVolumeClaim", {}).get("readOnly")


def test_inventory_env_wins_over_the_compile_cache_dirs():
    config, plan, cache = case("local")
    config["extra_env"] = {"TRITON_CACHE_DIR": "/tmp/triton"}
    env = engine(pod_templates(serving.server_manifests(config, plan, cache["layout"]))[0][1])["env"]
    assert [e["value"] for e in env if e["name"] == "TRITON_CACHE_DIR"] == ["/tmp/triton"]


# --- fabric: socket interface by network mode, Ascend env and mounts (issue 10 items 5 and 8) ---


def _env(container):
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


@pytest.mark.parametrize("inventory", [i for i in INVENTORIES if case(i)[1]["nodes"] > 1])
def test_socket_interface_follows_the_network_mode(inventory):
    config, plan, objects = workload(inventory)
    template = server(objects)["spec"]["leaderWorkerTemplate"]["workerTemplate"]
    env = _env(engine(template))
    expected = config["host_ifname"] if config["host_network"] else "eth0"
    assert template["spec"].get("hostNetwork", False) is bool(config["host_network"])
    assert env["NCCL_SOCKET_IFNAME"] == env["GLOO_SOCKET_IFNAME"] == expected
    assert env["NCCL_IB_HCA"].startswith("=")


def test_host_network_with_the_pod_interface_name_is_refused():
    """Today's qwen3 two-node inventory before the fix: hostNetwork with NCCL_SOCKET_IFNAME eth0."""
    config, plan, cache = case("qwen3-235b-vllm-2node-ray")
    config = dict(config, nccl_env=dict(config["nccl_env"], NCCL_SOCKET_IFNAME="eth0"))
    with pytest.raises(LlmopsError, match="NCCL_SOCKET_IFNAME=eth0 does not match the host network"):
        serving.server_manifests(config, plan, cache["layout"])
    with pytest.raises(LlmopsError, match="needs the host's interface name"):
        serving.server_manifests(dict(config, host_ifname="", nccl_env={}), plan, cache["layout"])


def test_single_node_gets_no_socket_interface():
    config, plan, cache = case("distill-1gpu")
    env = _env(engine(serving.server_manifests(config, plan, cache["layout"])[0]["spec"]["template"]))
    assert "NCCL_SOCKET_IFNAME" not in env


def test_ascend_npu_smi_is_mounted_from_where_the_seed_hosts_have_it():
    """Seed 003 (shared/seeds/003_*.txt) mounts -v /usr/local/sbin/npu-smi:/usr/local/sbin/npu-smi: that is where
    the Ascend driver puts it on those hosts. A hostPath of type File that does not exist keeps the pod from
    starting, so /usr/local/bin/npu-smi (vllm-ascend's docker example) must not be mounted."""
    paths = [mount["host_path"] for mount in serving.ASCEND_HOST_MOUNTS]
    assert "/usr/local/sbin/npu-smi" in paths and "/usr/local/bin/npu-smi" not in paths


def test_ascend_multi_node_env_follows_the_vllm_ascend_guide():
    config, plan, cache = _ascend_case(host_ifname="eth0")
    objects = serving.server_manifests(config, plan, cache["layout"])
    for role in ("leaderTemplate", "workerTemplate"):
        template = server(objects)["spec"]["leaderWorkerTemplate"][role]
        env = _env(engine(template))
        assert env["ASCEND_RT_VISIBLE_DEVICES"] == "0,1,2,3,4,5,6,7"
        assert env["RAY_EXPERIMENTAL_NOSET_ASCEND_RT_VISIBLE_DEVICES"] == "1"
        assert env["HCCL_IF_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
        assert env["GLOO_SOCKET_IFNAME"] == env["TP_SOCKET_IFNAME"] == env["HCCL_SOCKET_IFNAME"] == "eth0"
        assert template["spec"]["hostNetwork"] is True


def test_ascend_visible_devices_that_disagree_with_the_plan_are_refused():
    config, plan, cache = _ascend_case(nccl_env={"ASCEND_RT_VISIBLE_DEVICES": "0,1"})
    with pytest.raises(LlmopsError, match="ASCEND_RT_VISIBLE_DEVICES=0,1 disagrees"):
        serving.server_manifests(config, plan, cache["layout"])


# --- OpenShift: a dedicated SCC with exactly what the pods need (issue 10 #6) ---


def test_openshift_pods_run_under_their_own_scc_not_privileged():
    config, plan, cache = case("qwen3-235b-vllm-2node-ray")
    assert config["openshift"] is True
    objects = serving.server_manifests(config, plan, cache["layout"])
    kinds = [obj["kind"] for obj in objects]
    # the PodDisruptionBudget (issue 10, Medium) follows the workload
    assert kinds == [
        "ServiceAccount",
        "SecurityContextConstraints",
        "ClusterRole",
        "RoleBinding",
        "LeaderWorkerSet",
        "PodDisruptionBudget",
    ]
    account, scc, role, binding, lws, _pdb = objects
    assert account["metadata"]["name"] == "qwen3-235b-engine" and account["automountServiceAccountToken"] is False
    assert scc["allowPrivilegedContainer"] is False and scc["allowPrivilegeEscalation"] is False
    # IPC_LOCK for RDMA and hostNetwork (this inventory's RoCE mode) and nothing else the pods do not use.
    assert scc["allowedCapabilities"] == ["IPC_LOCK"]
    assert scc["allowHostNetwork"] is True and scc["allowHostPorts"] is True
    assert scc["allowHostDirVolumePlugin"] is False and "hostPath" not in scc["volumes"]
    assert scc["runAsUser"] == {"type": "MustRunAsRange"} and scc["requiredDropCapabilities"] == ["ALL"]
    assert role["rules"][0]["verbs"] == ["use"] and role["rules"][0]["resourceNames"] == [scc["metadata"]["name"]]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "qwen3-235b-engine", "namespace": "ai-serving"}]
    for name in ("leaderTemplate", "workerTemplate"):
        pod = lws["spec"]["leaderWorkerTemplate"][name]
        assert pod["spec"]["serviceAccountName"] == "qwen3-235b-engine"
        env = _env(engine(pod))
        assert env["HOME"] == "/tmp" and env["XDG_CACHE_HOME"] == "/tmp/.cache"
        volume_types = {key for volume in pod["spec"]["volumes"] for key in volume if key != "name"}
        assert volume_types <= set(scc["volumes"])


def test_openshift_scc_allows_host_paths_only_where_the_pods_mount_them():
    config, plan, cache = _ascend_case(host_ifname="eth0", openshift=True)
    scc = serving.server_manifests(config, plan, cache["layout"])[1]
    assert scc["allowHostDirVolumePlugin"] is True and "hostPath" in scc["volumes"]
    config, plan, cache = case("distill-1gpu")
    kinds = [o["kind"] for o in serving.server_manifests(config, plan, cache["layout"])]
    assert kinds == ["Deployment", "PodDisruptionBudget"]


def _run_group_script(tmp_path, script, env):
    """Run a rendered Ray script under bash with `ray` and `python3` replaced by stubs on PATH.

    Ray cannot form a group without a cluster here; the stubs stand in for a head that never answers
    (`ray start --address` fails) and a head that counts one live node, so what is tested is our script's
    bounded wait, not Ray.
    """
    stubs = tmp_path / "bin"
    stubs.mkdir(parents=True)
    for name, body in (("ray", 'case "$*" in *--head*) exit 0 ;; *) exit 1 ;; esac'), ("python3", "echo 1")):
        (stubs / name).write_text("#!/bin/sh\n%s\n" % body)
        (stubs / name).chmod(0o755)
    path = "%s:%s" % (stubs, os.environ["PATH"])
    full_env = dict(env, PATH=path, LLMOPS_STARTUP_BUDGET_SECONDS="1", LLMOPS_GROUP_POLL_SECONDS="0.2")
    return subprocess.run(["bash", "-c", script], env=full_env, capture_output=True, text=True, timeout=60, check=False)


def test_ray_group_waits_end_at_the_startup_budget(tmp_path):
    """Issue 10 #1: the Ray head and workers stop waiting for the group after LLMOPS_STARTUP_BUDGET_SECONDS."""
    _config, _plan, objects = workload("qwen3-235b-vllm-2node-ray")
    template = server(objects)["spec"]["leaderWorkerTemplate"]
    leader, worker = engine(template["leaderTemplate"]), engine(template["workerTemplate"])
    budget = {item["name"]: item.get("value") for item in leader["env"]}["LLMOPS_STARTUP_BUDGET_SECONDS"]
    assert int(budget) >= 3600
    result = _run_group_script(tmp_path / "leader", leader["command"][2], {"LWS_GROUP_SIZE": "2"})
    assert result.returncode == 1, result
    assert "the Ray group did not form: fewer than 2 nodes joined within 1 s" in result.stderr
    assert "waiting for 2 Ray nodes to join" in result.stdout and "vllm serve" not in result.stdout
    result = _run_group_script(tmp_path / "worker", worker["command"][2], {"LWS_LEADER_ADDRESS": "leader.svc"})
    assert result.returncode == 1 and "no Ray head at leader.svc within 1 s" in result.stderr, result
