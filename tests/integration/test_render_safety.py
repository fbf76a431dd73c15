"""Render mode is safe to commit, and privileged add-ons are opt-in.

1. One real `ansible-playbook playbooks/site.yml --tags cluster_addons` run in render mode renders the add-ons
   of every example inventory at once: each inventory's group_vars/all.yml are the host vars of one
   k8s_control host with a render folder of its own. No rendered object may be privileged, use the host
   network or mount a hostPath unless that inventory asked for the component (today only the RDMA shared
   device plugin DaemonSet, behind rdma_device_plugin_enabled: true).
2. One real `playbooks/serve.yml --tags model_cache` run renders the model cache of the 1-GPU inventory four
   times: a Hugging Face token and S3 keys given, each with and without model_cache_render_credentials_secret.
   The token and keys reach the render folder only with the opt-in.
"""

import glob
import os
import subprocess

import pytest
import yaml
from render_helpers import BIN, ROOT, ansible_env

INVENTORIES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "inventories", "*")) if os.path.isdir(p))
HF_TOKEN = "hf_render_safety_never_written_7c1d"
S3_SECRET = "s3-render-safety-never-written-91ab"


def run(inventories, playbook, *extra):
    env = ansible_env()
    command = [os.path.join(BIN, "ansible-playbook")]
    for inventory in inventories:
        command += ["-i", inventory]
    command += [os.path.join(ROOT, "playbooks", playbook), "-e", "llmops_apply_mode=render"] + list(extra)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200, cwd=ROOT, check=False)


def host_vars(inventory):
    with open(os.path.join(ROOT, "inventories", inventory, "group_vars", "all.yml")) as handle:
        return yaml.safe_load(handle) or {}


def write_hosts(folder, hosts):
    for values in hosts.values():
        values.update(ansible_connection="local", ansible_python_interpreter="{{ ansible_playbook_python }}")
    path = os.path.join(str(folder), "hosts.yml")
    with open(path, "w") as handle:
        yaml.safe_dump({"k8s_control": {"hosts": hosts}}, handle)
    return path


def objects(folder):
    found = []
    for path in sorted(glob.glob(os.path.join(str(folder), "*", "*.yaml"))):
        with open(path) as handle:
            for obj in yaml.safe_load_all(handle):
                if obj:
                    found.append((os.path.basename(os.path.dirname(path)), obj))
    return found


def host_access(node, path=""):
    """Every privileged: true, hostNetwork: true and hostPath in an object, with where it is."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            where = "%s.%s" % (path, key)
            if (key in ("privileged", "hostNetwork", "hostPID", "hostIPC") and value is True) or key == "hostPath":
                found.append(where)
            found += host_access(value, where)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found += host_access(item, "%s[%d]" % (path, index))
    return found


@pytest.fixture(scope="module")
def addons(tmp_path_factory):
    folder = tmp_path_factory.mktemp("addons")
    hosts = {}
    for inventory in INVENTORIES:
        values = host_vars(inventory)
        values["llmops_render_dir"] = str(folder / inventory)
        hosts["inv_" + inventory.replace("-", "_")] = values
    result = run([write_hosts(folder, hosts)], "site.yml", "--tags", "cluster_addons")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return folder


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_no_host_access_the_inventory_did_not_ask_for(addons, inventory):
    asked = {"rdma_device_plugin"} if host_vars(inventory).get("rdma_device_plugin_enabled") is True else set()
    # inventories/testbed turns every add-on off (the bed installs them itself): nothing rendered is fine there.
    rendered = objects(addons / inventory)
    unasked = [
        "%s %s/%s: %s" % (stage, obj["kind"], obj["metadata"]["name"], ", ".join(access))
        for stage, obj in rendered
        for access in [host_access(obj)]
        if access and stage not in asked
    ]
    assert unasked == []
    # The RDMA device plugin is rendered exactly when asked for (it is off by default).
    assert any(stage == "rdma_device_plugin" for stage, _path in rendered) == ("rdma_device_plugin" in asked)


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model-cache")
    base = dict(host_vars("distill-1gpu"))
    hf = dict(base, model_cache_hf_token=HF_TOKEN)
    s3 = dict(
        base,
        llmops_model_source="s3",
        model_cache_source="s3",
        model_cache_s3_uri="s3://models/deepseek-r1-distill-qwen-7b",
        model_cache_s3_access_key="AKIARENDERSAFETY",
        model_cache_s3_secret_key=S3_SECRET,
    )
    hosts = {
        "hf_default": dict(hf, llmops_render_dir=str(folder / "hf_default")),
        "hf_opt_in": dict(hf, model_cache_render_credentials_secret=True, llmops_render_dir=str(folder / "hf_opt_in")),
        "s3_default": dict(s3, llmops_render_dir=str(folder / "s3_default")),
        "s3_opt_in": dict(s3, model_cache_render_credentials_secret=True, llmops_render_dir=str(folder / "s3_opt_in")),
    }
    result = run([write_hosts(folder, hosts)], "serve.yml", "--tags", "model_cache")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert HF_TOKEN not in result.stdout + result.stderr and S3_SECRET not in result.stdout + result.stderr
    return folder


def _texts(folder):
    texts = {}
    for path in glob.glob(os.path.join(str(folder), "**", "*.yaml"), recursive=True):
        with open(path) as handle:
            texts[path] = handle.read()
    return texts


@pytest.mark.parametrize("host,value", [("hf_default", HF_TOKEN), ("s3_default", S3_SECRET)])
def test_render_mode_writes_no_secret_value_by_default(model_cache, host, value):
    texts = _texts(model_cache / host)
    assert any("/model_cache/" in path for path in texts), "the model cache was not rendered"
    assert [path for path, text in texts.items() if value in text] == []


@pytest.mark.parametrize("host,value", [("hf_opt_in", HF_TOKEN), ("s3_opt_in", S3_SECRET)])
def test_render_mode_writes_the_secret_when_asked(model_cache, host, value):
    holders = [path for path, text in _texts(model_cache / host).items() if value in text]
    assert len(holders) == 1 and "/model_cache_secrets/" in holders[0]
