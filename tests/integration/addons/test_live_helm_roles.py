"""Each Helm add-on role, live: the real ansible-playbook runs playbooks/cluster_addons.yml in apply mode against
the test bed (real kube-apiserver with the real upstream CRDs, kwok nodes) with the real helm binary.

The charts are our stand-ins (tests/integration/charts/, packaged with helm and served on loopback by the
chart_repo fixture) because the upstream chart repositories are unreachable here; they carry the chart names,
values keys, upstream CRDs and the objects each role waits on. Per role: install (changed), the same run again
(changed=0), an upgrade with a values change (changed, new revision, the new value reaches the chart), then
state absent (the release is gone).
"""

import threading
import time

import pytest
import yaml
from charts import helm, release
from kubernetes import client
from kubernetes.client.rest import ApiException

# role: release, namespace, extra vars of every run, the upgrade's values change and where to find it.
ROLES = {
    "node_feature_discovery": {
        "release": "node-feature-discovery",
        "namespace": "node-feature-discovery",
        "upgrade": {"master": {"replicaCount": 2}},
        "check": ("master", "replicaCount"),
        "creates": ("nfd.k8s-sigs.io", "v1alpha1", "nodefeaturerules", "llmops-inference"),
    },
    "gpu_operator": {
        "release": "gpu-operator",
        "namespace": "gpu-operator",
        "vars": {"gpu_operator_cluster_policy_patch": {"mig": {"strategy": "mixed"}}},
        "upgrade": {"dcgmExporter": {"serviceMonitor": {"enabled": True}}},
        "check": ("dcgmExporter", "serviceMonitor", "enabled"),
    },
    "volcano": {
        "release": "volcano",
        "namespace": "volcano-system",
        "upgrade": {"custom": {"scheduler_replicas": 2}},
        "check": ("custom", "scheduler_replicas"),
        "creates": ("scheduling.volcano.sh", "v1beta1", "queues", "llmops"),
    },
    "leaderworkerset": {
        "release": "lws",
        "namespace": "lws-system",
        "upgrade": {"replicaCount": 2},
        "check": ("replicaCount",),
    },
    "kuberay": {
        "release": "kuberay-operator",
        "namespace": "kuberay-system",
        "upgrade": {"batchScheduler": {"name": "volcano"}},
        "check": ("batchScheduler", "name"),
    },
    "hami": {
        "release": "hami",
        "namespace": "kube-system",
        "vars": {"hami_gpu_nodes": ["gpu-a800-1"]},
        "upgrade": {"resourceName": "nvidia.com/vgpu"},
        "check": ("resourceName",),
    },
}


def standin_values(core, name, namespace):
    """The values Helm gave the stand-in chart (it echoes them into <release>-standin-values)."""
    return yaml.safe_load(core.read_namespaced_config_map(f"{name}-standin-values", namespace).data["values.yaml"])


def dig(values, path):
    for key in path:
        values = values[key]
    return values


@pytest.fixture
def cluster_policy_operator(api_client):
    """Plays the GPU Operator's part that kwok cannot: once the chart created ClusterPolicy cluster-policy, report
    .status.state notReady, then ready 25 s after the operator Deployment is Available (as the real operator does
    once its validators pass), so the role's wait really polls (8 s was not always enough: on a loaded 2-core
    machine the role's tasks between the chart's install and the wait took longer, and the first poll saw ready)."""
    custom = client.CustomObjectsApi(api_client)
    apps = client.AppsV1Api(api_client)
    stop = threading.Event()

    def set_state(state):
        custom.patch_cluster_custom_object_status(
            "nvidia.com", "v1", "clusterpolicies", "cluster-policy", {"status": {"state": state}}
        )

    def operate():
        available_since = None
        while not stop.wait(0.5):
            try:
                policy = custom.get_cluster_custom_object("nvidia.com", "v1", "clusterpolicies", "cluster-policy")
                deployment = apps.read_namespaced_deployment("gpu-operator", "gpu-operator")
            except ApiException:
                available_since = None
                continue
            state = (policy.get("status") or {}).get("state")
            if not state:
                set_state("notReady")
            if (deployment.status.available_replicas or 0) < 1:
                continue
            available_since = available_since or time.monotonic()
            if state != "ready" and time.monotonic() - available_since > 25:
                set_state("ready")

    thread = threading.Thread(target=operate, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=5)


def role_vars(role, chart_repo, spec, values=None):
    variables = {f"{role}_chart_repo_url": chart_repo.url}
    if role == "leaderworkerset":  # its default source is OCI; the stand-in comes as a local archive
        variables = {
            "leaderworkerset_chart_source": "local",
            "leaderworkerset_chart_archive": chart_repo.archives["lws"]["0.10.0"],
        }
    variables.update(spec.get("vars", {}))
    if values is not None:
        variables[f"{role}_values"] = values
    return variables


@pytest.mark.parametrize("role", sorted(ROLES))
def test_install_idempotent_upgrade_uninstall(
    request, role, addons, chart_repo, api_client, core, cluster_policy_operator, volcano_queue
):
    spec = ROLES[role]
    name, namespace = spec["release"], spec["namespace"]
    if role == "volcano" and not volcano_queue:
        pytest.skip("Volcano's default queue is not Open (start the test bed with TESTBED_VOLCANO=1)")
    assert release(name, namespace) is None, f"{name} left over from an earlier run"
    request.addfinalizer(lambda: release(name, namespace) and helm("uninstall", name, "-n", namespace, "--wait"))

    result, changed = addons(role, "install", **role_vars(role, chart_repo, spec))
    assert result.returncode == 0, result.output[-6000:]
    assert changed > 0
    assert release(name, namespace)["status"] == "deployed"
    if "creates" in spec:
        assert custom_object(api_client, spec["creates"]) is not None
    if role == "gpu_operator":  # waited (polling) for the operator's status, then applied the patch
        waits = result.task_results("Wait for the operator's own status")
        assert waits and waits[0]["attempts"] > 1  # it polled until the stand-in operator reported ready
        policy = custom_object(api_client, ("nvidia.com", "v1", "clusterpolicies", "cluster-policy"))
        assert policy["status"]["state"] == "ready" and policy["spec"]["mig"]["strategy"] == "mixed"
        assert policy["spec"]["driver"]["enabled"] is False  # the host driver: driver container off
    if role == "hami":  # GPU node labelled, kube-scheduler image matched to the API server's version
        assert core.read_node("gpu-a800-1").metadata.labels.get("gpu") == "on"
        server = client.VersionApi(api_client).get_code().git_version
        assert dig(standin_values(core, name, namespace), ("scheduler", "kubeScheduler", "image", "tag")) == server
    assert "waiting for CRD" in result.output or role == "hami"  # the Established wait ran (hami has no CRDs)

    again, changed = addons(role, "idempotent", **role_vars(role, chart_repo, spec))
    assert again.returncode == 0, again.output[-6000:]
    assert changed == 0, again.changed_tasks()
    assert release(name, namespace)["revision"] == "1"

    upgraded, changed = addons(role, "upgrade", **role_vars(role, chart_repo, spec, values=spec["upgrade"]))
    assert upgraded.returncode == 0, upgraded.output[-6000:]
    assert changed > 0
    assert release(name, namespace)["revision"] == "2"
    assert dig(standin_values(core, name, namespace), spec["check"]) == dig(spec["upgrade"], spec["check"])

    removed, changed = addons(role, "uninstall", **role_vars(role, chart_repo, spec), **{f"{role}_state": "absent"})
    assert removed.returncode == 0, removed.output[-6000:]
    assert changed > 0
    assert release(name, namespace) is None
    if "creates" in spec:
        assert custom_object(api_client, spec["creates"]) is None


def custom_object(api_client, ref):
    group, version, plural, name = ref
    try:
        return client.CustomObjectsApi(api_client).get_cluster_custom_object(group, version, plural, name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
