"""Model cache layouts (model_cache.py) and the download script itself, run by a real /bin/sh."""

import json
import os
import subprocess

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
    assert [o["kind"] for o in result["objects"]] == ["ConfigMap"]
    layout = result["layout"]
    assert layout["mode"] == "per_pod_pvc"
    # model_cache_model_gib 642 x 1.2 + 10
    assert layout["volume_claim_template"]["spec"]["resources"]["requests"]["storage"] == "781Gi"
    env = {e["name"]: e.get("value") for e in layout["init_container"]["env"]}
    # the INT8 DeepSeek-R1 for the A800s comes through the Hugging Face mirror
    assert env["LLMOPS_SOURCE"] == "huggingface" and env["PIP_INDEX_URL"].startswith("https://pypi.tuna")
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
    config = dict(cache_config("deepseek-r1-2x8-a800-sglang"), storage="host_path", host_path="/mnt/catcat_data/model")
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
    (folder / ".llmops-complete").write_text("x")
    result = _run(folder, "wait")
    assert result.returncode == 0 and "complete" in result.stdout
