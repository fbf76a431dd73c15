"""Real ansible-playbook runs of playbooks/cluster_addons.yml in render mode (no cluster needed).

Render mode writes the objects the roles create themselves (Volcano Queue, NodeFeatureRule, ClusterPolicy
patch, PodMonitor, RDMA device plugin, HAMi node labels) and the Helm values each chart would get; the
objects are server-side dry-run against the real CRDs on the test bed in test_live_dry_run.py.
Bad input (unknown version, missing chart source) must stop the play with a clear message before the
role writes anything.
"""

import os
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BIN = os.path.dirname(sys.executable)
PLAYBOOK = os.path.join(ROOT, "playbooks", "cluster_addons.yml")
INVENTORY = (
    """all:
  children:
    k8s_control:
      hosts:
        localhost:
          ansible_connection: local
          ansible_python_interpreter: %s
"""
    % sys.executable
)


def run_playbook(tmp_path, *extra):
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(INVENTORY)
    collections = os.path.join(ROOT, ".build", "collections")
    link = os.path.join(collections, "ansible_collections", "llmops", "inference")
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(ROOT, link)
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=collections,
        ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
    )
    command = [
        os.path.join(BIN, "ansible-playbook"),
        "-i",
        str(inventory),
        PLAYBOOK,
        "-e",
        "llmops_apply_mode=render",
        "-e",
        "llmops_render_dir=%s" % (tmp_path / "rendered"),
    ] + list(extra)
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)


def load(path):
    with open(path) as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("render")
    result = run_playbook(
        tmp_path,
        "-e",
        "kuberay_enabled=true",
        "-e",
        "hami_enabled=true",
        # The RDMA device plugin (privileged, host network) is opt-in.
        "-e",
        "rdma_device_plugin_enabled=true",
        "-e",
        "llmops_registry_mirror=harbor.local:5000/proxy",
        "-e",
        '{"gpu_operator_cluster_policy_patch": {"mig": {"strategy": "mixed"}}, "hami_gpu_nodes": ["gpu-1"]}',
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return tmp_path / "rendered", result.stdout


def test_objects_the_roles_create(rendered):
    out, _log = rendered
    queue = load(out / "volcano" / "01-queue-llmops.yaml")
    assert queue["kind"] == "Queue" and queue["spec"] == {"weight": 1, "reclaimable": False}
    rule = load(out / "node_feature_discovery" / "01-nodefeaturerule-llmops-inference.yaml")
    assert [r["name"] for r in rule["spec"]["rules"]] == ["nvidia-gpu", "rdma-nic"]
    policy = load(out / "gpu_operator" / "01-clusterpolicy-cluster-policy.yaml")
    assert policy["spec"] == {"mig": {"strategy": "mixed"}}
    monitor = load(out / "engine_monitoring" / "01-podmonitor-llmops-llmops-engines.yaml")
    assert monitor["spec"]["selector"]["matchExpressions"][0]["values"] == ["sglang", "vllm"]
    node = load(out / "hami" / "01-node-gpu-1.yaml")
    assert node["metadata"]["labels"] == {"gpu": "on"}


def test_images_and_values_go_through_the_mirror(rendered):
    out, _log = rendered
    daemonset = load(out / "rdma_device_plugin" / "02-daemonset-kube-system-rdma-shared-dp-ds.yaml")
    image = daemonset["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "harbor.local:5000/proxy/mellanox/k8s-rdma-shared-dev-plugin:v1.5.3"
    gpu = load(out / "gpu_operator" / "values-gpu-operator.yaml")
    assert gpu["driver"]["enabled"] is False and gpu["nfd"]["enabled"] is False
    assert gpu["toolkit"]["repository"] == "harbor.local:5000/proxy/nvidia/k8s"
    assert load(out / "volcano" / "values-volcano.yaml")["basic"]["image_registry"] == "harbor.local:5000/proxy"


def test_render_mode_says_when_only_values_were_written(rendered):
    _out, log = rendered
    assert "only the values file was written" in log


def test_seed_versions_render(tmp_path):
    result = run_playbook(
        tmp_path,
        "-e",
        "gpu_operator_version=v24.9.1",
        "-e",
        "volcano_version=v1.9.0",
        "-e",
        "leaderworkerset_version=v0.5.1",
        "--tags",
        "gpu_operator,volcano,leaderworkerset",
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert load(tmp_path / "rendered" / "volcano" / "values-volcano.yaml")["basic"]["image_tag_version"] == "v1.9.0"


def test_unknown_version_stops_before_anything(tmp_path):
    result = run_playbook(tmp_path, "-e", "volcano_version=v1.8.7", "--tags", "volcano")
    assert result.returncode != 0
    assert "volcano version v1.8.7 is not one this collection knows" in result.stdout
    assert "nothing was changed" in result.stdout
    assert not (tmp_path / "rendered" / "volcano").exists()


def test_missing_chart_source_stops_before_anything(tmp_path):
    result = run_playbook(
        tmp_path, "-e", "llmops_chart_source=local", "--tags", "kuberay", "-e", "kuberay_enabled=true"
    )
    assert result.returncode != 0
    assert "no chart archive is set for kuberay-operator" in result.stdout
    assert not (tmp_path / "rendered" / "kuberay").exists()
