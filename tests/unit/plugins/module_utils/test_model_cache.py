"""Model cache layouts (model_cache.py) and the download script itself, run by a real /bin/sh."""

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from serving_cases import ROOT, cache_config, load_plan

from ansible_collections.llmops.inference.plugins.module_utils import model_cache
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

SCRIPT_PATH = os.path.join(ROOT, "roles", "model_cache", "files", "download-model.sh")


def test_shared_pvc_for_a_single_pod():
    result = model_cache.cache_plan(cache_config("local"), load_plan("local"), 1)
    kinds = [o["kind"] for o in result["objects"]]
    assert kinds == ["ConfigMap", "PersistentVolumeClaim", "Job"]
    pvc = result["objects"][1]
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    # 3.31 GiB x 1 (TP) x 1 (PP) x 1.2 + 10
    assert pvc["spec"]["resources"]["requests"]["storage"] == "14Gi"
    layout = result["layout"]
    assert (
        layout["mode"] == "shared_pvc" and layout["model_path"] == "/models/deepseek-ai--DeepSeek-R1-Distill-Qwen-1.5B"
    )
    assert layout["init_container"]["command"][-1] == "wait"
    job = result["objects"][2]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][-1] == "download"


def test_job_name_follows_its_spec():
    config = cache_config("local")
    first = model_cache.cache_plan(config, load_plan("local"), 1)["objects"][2]["metadata"]["name"]
    again = model_cache.cache_plan(config, load_plan("local"), 1)["objects"][2]["metadata"]["name"]
    other = model_cache.cache_plan(dict(config, revision="v2"), load_plan("local"), 1)["objects"][2]["metadata"]["name"]
    assert first == again and first != other


def test_rwo_with_two_nodes_gives_one_cache_per_pod():
    result = model_cache.cache_plan(
        cache_config("deepseek-r1-2x8-a800-sglang"), load_plan("deepseek-r1-2x8-a800-sglang"), 1
    )
    # Issue 10 #2: the per-pod claims are created and filled before the group exists (was: only the ConfigMap,
    # and each pod downloaded 642 GiB in an init container of the group).
    kinds = [o["kind"] for o in result["objects"]]
    assert kinds == ["ConfigMap", "PersistentVolumeClaim", "Job", "PersistentVolumeClaim", "Job"]
    layout = result["layout"]
    assert layout["mode"] == "per_pod_pvc"
    # model_cache_model_gib 642 x 1.2 + 10
    assert layout["volume_claim_template"]["spec"]["resources"]["requests"]["storage"] == "781Gi"
    assert layout["init_container"]["command"][-1] == "wait"
    job = result["objects"][2]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in job["env"]}
    # the INT8 DeepSeek-R1 for the A800s comes through the Hugging Face mirror; the downloader image carries the
    # client, so no PyPI mirror and no pip install at run time (issue 10 #6)
    assert env["LLMOPS_SOURCE"] == "huggingface" and "PIP_INDEX_URL" not in env
    assert env["HF_ENDPOINT"] == "https://hf-mirror.com"


def test_rwx_shares_one_cache_across_nodes():
    result = model_cache.cache_plan(
        cache_config("qwen3-235b-vllm-2node-ray"), load_plan("qwen3-235b-vllm-2node-ray"), 1
    )
    assert result["layout"]["mode"] == "shared_pvc"
    assert result["objects"][1]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert result["objects"][1]["spec"]["storageClassName"] == "cephfs"


def test_s3_credentials_come_from_the_secret():
    result = model_cache.cache_plan(cache_config("qwen3-235b-vllm-tp8"), load_plan("qwen3-235b-vllm-tp8"), 1)
    container = result["objects"][-1]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "minio-model-reader"
    assert env["AWS_ENDPOINT_URL"]["value"] == "http://minio.minio.svc:9000"
    assert container["image"].startswith("docker.io/amazon/aws-cli")


def test_hf_mirror_endpoint():
    result = model_cache.cache_plan(cache_config("distill-1gpu"), load_plan("distill-1gpu"), 1)
    env = {e["name"]: e.get("value") for e in result["objects"][-1]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["HF_ENDPOINT"] == "https://hf-mirror.com"


def test_host_path_layout():
    # A multi-node host_path cache is staged per node (issue 10 #2), so the nodes are named.
    config = dict(
        cache_config("deepseek-r1-2x8-a800-sglang"),
        storage="host_path",
        host_path="/mnt/catcat_data/model",
        stage_nodes=["gpu-a", "gpu-b"],
    )
    layout = model_cache.cache_plan(config, load_plan("deepseek-r1-2x8-a800-sglang"), 1)["layout"]
    assert layout["volume"] == {"hostPath": {"path": "/mnt/catcat_data/model", "type": "DirectoryOrCreate"}}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"source": "ftp"}, "unknown model source 'ftp'"),
        ({"source": "s3", "s3": {"uri": "s3://models/x", "credentials_secret": ""}}, "needs credentials"),
        ({"source": "s3", "s3": {"uri": "models/x", "credentials_secret": "a"}}, "s3://bucket"),
        ({"model_id": ""}, "needs the repository id"),
        ({"access_mode": "ReadMostly"}, "model_cache_access_mode"),
        ({"storage": "host_path", "host_path": "relative"}, "absolute path"),
    ],
)
def test_bad_input_is_refused(change, message):
    with pytest.raises(LlmopsError, match=message):
        model_cache.cache_plan(dict(cache_config("local"), **change), load_plan("local"), 1)


def test_unknown_size_is_refused():
    plan = dict(load_plan("local"), weights_gib_per_accelerator=0)
    with pytest.raises(LlmopsError, match="cannot size the model cache"):
        model_cache.cache_plan(cache_config("local"), plan, 1)


# The script, run for real. Folder shapes follow a Hugging Face snapshot (config.json, the safetensors
# index whose weight_map names the shard files, the shards).
def _snapshot(tmp_path, shards=("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"), drop=None):
    folder = tmp_path / "Qwen--Qwen3-0.6B"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "qwen3"}')
    weight_map = {"model.layers.%d.weight" % i: shard for i, shard in enumerate(shards)}
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 2}, "weight_map": weight_map})
    )
    for shard in shards:
        if shard != drop:
            (folder / shard).write_bytes(b"\0" * 16)
    return folder


def _run(folder, mode, **env):
    environment = {
        "PATH": os.environ["PATH"],
        "LLMOPS_MODEL_DIR": str(folder),
        "LLMOPS_SOURCE": "huggingface",
        "LLMOPS_MODEL_ID": "Qwen/Qwen3-0.6B",
        "LLMOPS_PIP_INSTALL": "false",
    }
    environment.update(env)
    return subprocess.run(
        ["/bin/sh", SCRIPT_PATH, mode], env=environment, capture_output=True, text=True, timeout=30, check=False
    )


def test_script_verifies_a_complete_snapshot(tmp_path):
    result = _run(_snapshot(tmp_path), "verify")
    assert result.returncode == 0, result.stdout
    assert "2 weight files" in result.stdout


def test_script_finds_a_missing_shard(tmp_path):
    result = _run(_snapshot(tmp_path, drop="model-00002-of-00002.safetensors"), "verify")
    assert result.returncode == 1
    assert "model-00002-of-00002.safetensors (listed in model.safetensors.index.json) is missing" in result.stdout


def test_script_needs_config_json(tmp_path):
    folder = _snapshot(tmp_path)
    (folder / "config.json").unlink()
    assert _run(folder, "verify").returncode == 1


def test_script_skips_a_complete_cache(tmp_path):
    folder = _snapshot(tmp_path)
    (folder / ".llmops-complete").write_text("huggingface|Qwen/Qwen3-0.6B||")
    result = _run(folder, "download")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "skipping the download" in result.stdout


def test_script_downloads_again_when_the_source_changed(tmp_path):
    folder = _snapshot(tmp_path)
    (folder / ".llmops-complete").write_text("huggingface|Qwen/Qwen3-0.6B|old-revision|")
    # It tries to download; here the downloader image lacks huggingface_hub and pip is off.
    result = _run(folder, "download", PYTHONPATH="/nonexistent", PATH="/usr/bin:/bin")
    assert "skipping" not in result.stdout


def test_script_wait_returns_once_complete(tmp_path):
    folder = _snapshot(tmp_path)
    # The stamp of this source and revision (issue 10 #15: any marker used to do).
    (folder / ".llmops-complete").write_text("huggingface|Qwen/Qwen3-0.6B||")
    result = _run(folder, "wait")
    assert result.returncode == 0 and "complete" in result.stdout


# Issue 10 #2, #14, #15 and the single-pod RWO Job placement: each failed on the output before the fix.
def _jobs(result):
    return [o for o in result["objects"] if o["kind"] == "Job"]


def test_per_pod_claims_are_staged_under_the_names_the_lws_pods_use():
    plan = load_plan("deepseek-r1-2x8-a800-sglang")
    result = model_cache.cache_plan(cache_config("deepseek-r1-2x8-a800-sglang"), plan, 2)
    claims = [o["metadata"]["name"] for o in result["objects"] if o["kind"] == "PersistentVolumeClaim"]
    # StatefulSet naming (<claim template>-<pod>) of LWS leaders <name>-<group> and workers <name>-<group>-<index>.
    assert claims == [
        "model-cache-deepseek-r1-0",
        "model-cache-deepseek-r1-0-1",
        "model-cache-deepseek-r1-1",
        "model-cache-deepseek-r1-1-1",
    ]
    jobs = _jobs(result)
    assert [j["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] for j in jobs] == claims
    for job in jobs:
        spec = job["spec"]["template"]["spec"]
        assert spec["containers"][0]["command"][-1] == "download"
        # On nodes of the planned accelerator (a node-local claim binds where its first pod runs), never two
        # staging pods of one server on one node (the engine pods need one node each).
        expression = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"
        ][0]["matchExpressions"][0]
        assert expression["key"] == "nvidia.com/gpu.product" and "NVIDIA-A800-SXM4-80GB" in expression["values"]
        anti = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
        assert anti["labelSelector"]["matchLabels"] == {"llmops.io/model-stage": "deepseek-r1"}
        assert job["spec"]["template"]["metadata"]["labels"]["llmops.io/model-stage"] == "deepseek-r1"
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert len({j["metadata"]["name"] for j in jobs}) == 4
    assert all(len(j["metadata"]["name"]) <= 63 for j in jobs)
    # The engine pods only wait.
    assert result["layout"]["init_container"]["command"][-1] == "wait"


def test_per_pod_claims_pinned_to_named_nodes():
    config = dict(cache_config("deepseek-r1-2x8-a800-sglang"), stage_nodes=["gpu-a", "gpu-b"])
    result = model_cache.cache_plan(config, load_plan("deepseek-r1-2x8-a800-sglang"), 1)
    selectors = [j["spec"]["template"]["spec"]["nodeSelector"] for j in _jobs(result)]
    assert selectors == [{"kubernetes.io/hostname": "gpu-a"}, {"kubernetes.io/hostname": "gpu-b"}]
    assert result["layout"]["node_names"] == ["gpu-a", "gpu-b"]


def test_multi_node_host_path_is_staged_per_node_before_the_group():
    plan = load_plan("deepseek-r1-2x8-a800-sglang")
    config = dict(cache_config("deepseek-r1-2x8-a800-sglang"), storage="host_path", host_path="/mnt/models")
    with pytest.raises(LlmopsError, match="model_cache_stage_nodes needs at least 2 node names"):
        model_cache.cache_plan(config, plan, 1)
    with pytest.raises(LlmopsError, match="lists a node twice"):
        model_cache.cache_plan(dict(config, stage_nodes=["gpu-a", "gpu-a"]), plan, 1)
    result = model_cache.cache_plan(dict(config, stage_nodes=["gpu-a", "gpu-b", "gpu-c"]), plan, 1)
    jobs = _jobs(result)
    assert len(jobs) == 3
    for node, job in zip(["gpu-a", "gpu-b", "gpu-c"], jobs):
        spec = job["spec"]["template"]["spec"]
        assert spec["nodeSelector"] == {"kubernetes.io/hostname": node}
        assert spec["volumes"][0]["hostPath"] == {"path": "/mnt/models", "type": "DirectoryOrCreate"}
        assert "-stage-" + node + "-" in job["metadata"]["name"]
    layout = result["layout"]
    assert layout["init_container"]["command"][-1] == "wait" and layout["node_names"] == ["gpu-a", "gpu-b", "gpu-c"]


def test_engine_pods_run_only_on_the_staged_nodes():
    from serving_cases import server_config

    from ansible_collections.llmops.inference.plugins.module_utils import serving

    plan = load_plan("deepseek-r1-2x8-a800-sglang")
    config = dict(
        cache_config("deepseek-r1-2x8-a800-sglang"), storage="host_path", host_path="/mnt/m", stage_nodes=["a", "b"]
    )
    layout = model_cache.cache_plan(config, plan, 1)["layout"]
    server = dict(server_config("deepseek-r1-2x8-a800-sglang"), model_path=layout["model_path"])
    lws = [o for o in serving.server_manifests(server, plan, layout) if o["kind"] == "LeaderWorkerSet"][0]
    for role in ("leaderTemplate", "workerTemplate"):
        spec = lws["spec"]["leaderWorkerTemplate"][role]["spec"]
        expressions = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"
        ][0]["matchExpressions"]
        assert {"key": "kubernetes.io/hostname", "operator": "In", "values": ["a", "b"]} in expressions
        assert spec["initContainers"][0]["command"][-1] == "wait"


def test_single_pod_rwo_job_runs_where_the_engine_will():
    result = model_cache.cache_plan(cache_config("local"), load_plan("local"), 1)
    spec = _jobs(result)[0]["spec"]["template"]["spec"]
    expression = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ][0]["matchExpressions"][0]
    assert expression == {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-A10"]}
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    # An RWX cache is filled from anywhere.
    rwx = model_cache.cache_plan(cache_config("qwen3-235b-vllm-2node-ray"), load_plan("qwen3-235b-vllm-2node-ray"), 1)
    assert "affinity" not in _jobs(rwx)[0]["spec"]["template"]["spec"]


@pytest.mark.parametrize(
    "inventory",
    ["local", "deepseek-r1-2x8-a800-sglang", "distill-1gpu", "qwen3-235b-vllm-tp8", "qwen3-235b-vllm-2node-ray"],
)
def test_cache_pods_are_hardened_and_guaranteed(inventory):
    result = model_cache.cache_plan(cache_config(inventory), load_plan(inventory), 1)
    containers = [result["layout"]["init_container"]]
    for job in _jobs(result):
        spec = job["spec"]["template"]["spec"]
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
        containers += spec["containers"]
    for container in containers:
        assert container["securityContext"] == {
            "privileged": False,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        }
        resources = container["resources"]
        assert resources["requests"] == resources["limits"] and set(resources["limits"]) == {"cpu", "memory"}


def test_the_waiting_container_gets_no_credentials():
    result = model_cache.cache_plan(cache_config("qwen3-235b-vllm-tp8"), load_plan("qwen3-235b-vllm-tp8"), 1)
    wait = result["layout"]["init_container"]
    names = [e["name"] for e in wait["env"]]
    assert "AWS_SECRET_ACCESS_KEY" not in names and "LLMOPS_S3_URI" in names
    assert wait["volumeMounts"][0]["readOnly"] is True


def test_script_wait_refuses_a_cache_of_another_revision(tmp_path):
    folder = _snapshot(tmp_path)
    (folder / ".llmops-complete").write_text("huggingface|Qwen/Qwen3-0.6B|old-revision|")
    with pytest.raises(subprocess.TimeoutExpired) as waited:
        subprocess.run(
            ["/bin/sh", SCRIPT_PATH, "wait"],
            env={
                "PATH": os.environ["PATH"],
                "LLMOPS_MODEL_DIR": str(folder),
                "LLMOPS_SOURCE": "huggingface",
                "LLMOPS_MODEL_ID": "Qwen/Qwen3-0.6B",
                "LLMOPS_REVISION": "new-revision",
                "LLMOPS_WAIT_INTERVAL": "1",
            },
            capture_output=True,
            text=True,
            timeout=3,
            check=False,
        )
    output = waited.value.stdout.decode() if isinstance(waited.value.stdout, bytes) else waited.value.stdout
    assert "holds 'huggingface|Qwen/Qwen3-0.6B|old-revision|', waiting for" in output
    assert "new-revision" in output


# The s3 branch of the script. `aws` here is a recording stand-in on PATH (the real AWS CLI runs in the live
# test, tests/integration/test_model_cache_s3_live.py, against MinIO); it prints what Debian's awscli 2.9.19
# printed there for a wrong secret key.
REFUSED = (
    "fatal error: An error occurred (SignatureDoesNotMatch) when calling the ListObjectsV2 operation: The request "
    "signature we calculated does not match the signature you provided. Check your key and signing method."
)


def _s3_run(tmp_path, stderr="", status=0, **env):
    tools = tmp_path / "bin"
    tools.mkdir()
    argv = tmp_path / "argv"
    aws = tools / "aws"
    aws.write_text(
        '#!/bin/sh\nfor a in "$@"; do echo "$a"; done > %s\nprintf "%%s\\n" "%s" >&2\nexit %d\n'
        % (argv, stderr, status)
    )
    aws.chmod(0o755)
    folder = tmp_path / "model"
    environment = {"PATH": "%s:%s" % (tools, os.environ["PATH"]), "LLMOPS_SOURCE": "s3", "LLMOPS_S3_URI": "s3://b/m"}
    environment.update(env)
    result = _run(folder, "download", **environment)
    return result, argv.read_text().splitlines() if argv.exists() else []


def test_script_gives_aws_the_endpoint_itself(tmp_path):
    # AWS CLI v2 reads AWS_ENDPOINT_URL only from 2.13 on; Debian bookworm's awscli is 2.9.19.
    result, argv = _s3_run(tmp_path, AWS_ENDPOINT_URL="http://10.213.0.1:9400")
    assert argv[:2] == ["--endpoint-url", "http://10.213.0.1:9400"], result.stdout + result.stderr
    assert argv[2:] == ["s3", "sync", "--only-show-errors", "s3://b/m", str(tmp_path / "model")]


def test_script_without_an_endpoint_talks_to_aws_s3(tmp_path):
    _result, argv = _s3_run(tmp_path)
    assert argv[0] == "s3" and "--endpoint-url" not in argv


def test_script_refused_credentials_are_a_permanent_failure(tmp_path):
    result, _argv = _s3_run(tmp_path, stderr=REFUSED, status=1, AWS_ENDPOINT_URL="http://10.213.0.1:9400")
    assert result.returncode == model_cache.PERMANENT_FAILURE_EXIT
    assert "SignatureDoesNotMatch" in result.stdout and "retrying cannot help" in result.stdout


def test_script_other_s3_errors_are_retried(tmp_path):
    result, _argv = _s3_run(tmp_path, stderr="Could not connect to the endpoint URL", status=255)
    assert result.returncode == 1 and "Could not connect" in result.stdout


def test_download_jobs_fail_at_once_on_the_scripts_permanent_exit():
    config = dict(cache_config("local"), script=Path(SCRIPT_PATH).read_text())
    job = _jobs(model_cache.cache_plan(config, load_plan("local"), 1))[0]
    assert "PERMANENT=%d" % model_cache.PERMANENT_FAILURE_EXIT in config["script"]
    # podFailurePolicy needs restartPolicy Never; the rule names the downloader container and the exit status
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # the reason reaches the pod's status (apply mode reports it without the kubelet's log endpoint)
    assert job["spec"]["template"]["spec"]["containers"][0]["terminationMessagePolicy"] == "FallbackToLogsOnError"
    (rule,) = job["spec"]["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob"
    assert rule["onExitCodes"] == {
        "containerName": job["spec"]["template"]["spec"]["containers"][0]["name"],
        "operator": "In",
        "values": [model_cache.PERMANENT_FAILURE_EXIT],
    }


def test_script_prints_progress_lines_a_log_tail_can_show(tmp_path):
    """A long download prints "progress: X GiB on disk of about Y GiB (N%), R MiB/s, about M min left" lines
    (the pod_wait progress shows the last one); the script still ends as soon as the tool does."""
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "aws").write_text(
        '#!/bin/sh\nfor d in "$@"; do :; done\nsleep 1.5\nhead -c 16777216 /dev/zero > "$d/part-1"\nsleep 3\n'
        'head -c 4194304 /dev/zero > "$d/part-2"\n'
    )
    (tools / "aws").chmod(0o755)
    environment = {
        "PATH": "%s:%s" % (tools, os.environ["PATH"]),
        "LLMOPS_SOURCE": "s3",
        "LLMOPS_S3_URI": "s3://b/m",
        "LLMOPS_PROGRESS_SECONDS": "1",
        "LLMOPS_MODEL_BYTES": str(64 * 2**20),
    }
    started = time.monotonic()
    result = _run(tmp_path / "model", "download", **environment)
    took = time.monotonic() - started
    lines = [line for line in result.stdout.splitlines() if line.startswith("progress: ")]
    assert len(lines) >= 2, result.stdout + result.stderr
    assert re.match(r"^progress: 0\.0 GiB on disk of about 0\.1 GiB \(\d+%\), \d+ MiB/s", lines[0]), lines
    # once bytes arrive, the rate and the time left appear
    assert any(re.search(r", [1-9]\d* MiB/s, about \d+ min left$", line) for line in lines), lines
    # the tool ended: verify runs (this folder has no config.json, so the script fails), no progress line after
    assert result.returncode != 0 and "config.json is missing" in result.stdout
    assert took < 20, took  # ends with the tool, not with the progress loop


def test_the_download_job_is_told_the_expected_size():
    def expected(config):
        jobs = [o for o in model_cache.cache_plan(config, load_plan("local"), 1)["objects"] if o["kind"] == "Job"]
        env = {e["name"]: e.get("value") for e in jobs[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
        return int(env["LLMOPS_MODEL_BYTES"])

    assert expected(dict(cache_config("local"), model_gib=15.5)) == int(15.5 * 2**30)
    plan = load_plan("local")
    weights = plan["weights_gib_per_accelerator"] * plan["tensor_parallel"] * plan["pipeline_parallel"]
    assert expected(dict(cache_config("local"), model_gib=0)) == int(weights * 2**30)
