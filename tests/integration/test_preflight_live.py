"""The pre-flight's apply-mode checks against the real test bed (read only: nothing is created).

One real ansible-playbook run of playbooks/preflight.yml on inventories/testbed with two k8s_control hosts:
``fits`` is the bed's own 2 x 8 A800 DeepSeek setup and must pass every cluster check (API, nodes with 8
allocatable nvidia.com/gpu and the rdma/ib the pods request); ``sixteen_per_node`` plans one pod of 16 GPUs,
which the planner accepts but no node of the bed can hold (8 per A800 node), so it is refused with every
node's allocatable listed (an LWS larger than the nodes that can hold it: tests/unit/.../test_preflight.py).
The last pre-flight play then stops both (one host was refused).

``baseline`` and ``quota`` (apply mode, through the admission_check module) put the same fitting plan into
namespaces of their own: one labelled ``pod-security.kubernetes.io/enforce=baseline``, where the real Pod
Security admission refuses the engine pods' IPC_LOCK on a ``dryRun=All`` create; one with a real ResourceQuota of
12 nvidia.com/gpu, which would admit one 8-GPU pod but not the 2-pod group (16). Nothing is stored: the
namespaces hold no pod afterwards.
"""

import json
import os
import uuid

import pytest
import yaml
from kubernetes import client, dynamic
from testbed_support import KUBECONFIG, exists, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def admission_namespaces(core):
    """Two namespaces: Pod Security 'baseline' enforced, and a ResourceQuota of 12 GPUs; deleted afterwards."""
    names = {"baseline": "pss-%s" % uuid.uuid4().hex[:6], "quota": "quota-%s" % uuid.uuid4().hex[:6]}
    labels = {"pod-security.kubernetes.io/enforce": "baseline"}
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=names["baseline"], labels=labels)))
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=names["quota"])))
    core.create_namespaced_resource_quota(
        names["quota"],
        client.V1ResourceQuota(
            metadata=client.V1ObjectMeta(name="gpus"),
            spec=client.V1ResourceQuotaSpec(hard={"requests.nvidia.com/gpu": "12"}),
        ),
    )
    yield names
    for name in names.values():
        core.delete_namespace(name)


def test_cluster_checks_on_the_bed(core, ansible_playbook, tmp_path, admission_namespaces):
    base = {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "llmops_kubeconfig": KUBECONFIG,
    }
    hosts = {"fits": dict(base), "sixteen_per_node": dict(base, llmops_nodes=1, llmops_accelerators_per_node=16)}
    for host, name in admission_namespaces.items():
        hosts[host] = dict(base, llmops_namespace=name, inference_server_namespace=name, model_cache_namespace=name)
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"k8s_control": {"hosts": hosts}}))
    run = ansible_playbook(
        os.path.join(ROOT, "playbooks", "preflight.yml"),
        "-i",
        os.path.join(ROOT, "inventories", "testbed"),
        "-i",
        str(tmp_path / "hosts.yml"),
        "--limit",
        "fits,sixteen_per_node,baseline,quota",
        json_output=True,
    )
    report = json.loads(run.output[run.output.index("{") :])
    failed = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                if result.get("failed") and host not in failed:
                    failed[host] = (play["play"]["name"], task["task"]["name"], result.get("msg", ""))
    # fits passed every check and was only stopped by the last play, because sixteen_per_node was refused.
    assert failed["fits"][0] == "Preflight | stop every stage when a host was refused", failed["fits"]
    assert "sixteen_per_node" in failed["fits"][2] and "fits" not in failed["fits"][2].split("refused")[1].split("(")[0]
    play, task, message = failed["sixteen_per_node"]
    assert task == "Refuse a plan the nodes cannot hold (allocatable accelerators and RDMA per node)"
    message = " ".join(message.split())
    assert "the plan needs 1 node(s) with 16 allocatable nvidia.com/gpu and 4 rdma/ib each" in message
    assert "the cluster has 0 (gpu-a800-0: 8 nvidia.com/gpu" in message and "llmops_accelerators_per_node" in message

    admission_task = (
        "Refuse pods the namespace would not admit (Pod Security, SCC, ResourceQuota; dry run, nothing stored)"
    )
    play, task, message = failed["baseline"]
    assert task == admission_task, failed["baseline"]
    message = " ".join(message.split())
    assert 'violates PodSecurity "baseline:latest"' in message and "IPC_LOCK" in message, message
    assert "pod-security.kubernetes.io/enforce=privileged" in message
    play, task, message = failed["quota"]
    assert task == admission_task, failed["quota"]
    message = " ".join(message.split())
    assert "allows requests.nvidia.com/gpu=12 and 0 is in use by other pods: the deployment needs 16" in message, (
        message
    )
    # a dry run stores nothing
    for name in admission_namespaces.values():
        assert core.list_namespaced_pod(name).items == []


def test_unreachable_api_is_named(ansible_playbook, tmp_path):
    """A kubeconfig pointing at a closed port (no test bed needed): refused before any build step reads the API."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "x", "cluster": {"server": "https://127.0.0.1:1"}}],
                "contexts": [{"name": "x", "context": {"cluster": "x", "user": "u"}}],
                "current-context": "x",
                "users": [{"name": "u", "user": {"token": "t"}}],
            }
        )
    )
    run = ansible_playbook(
        os.path.join(ROOT, "playbooks", "preflight.yml"),
        "-i",
        os.path.join(ROOT, "inventories", "testbed"),
        "-e",
        "llmops_kubeconfig=%s" % kubeconfig,
    )
    output = " ".join(run.output.split())
    assert run.returncode != 0
    assert "Preflight cannot reach the Kubernetes API with llmops_kubeconfig=%s" % kubeconfig in output
    assert "Read the installed LeaderWorkerSet version" not in output


def test_a_kind_the_cluster_does_not_serve_is_refused_by_name(ansible_playbook, namespace, tmp_path):
    """A KEDA ScaledObject on a bed without KEDA's CRD, and an InferenceService in a version KServe never had: both
    named from the real API server's discovery; the served kinds beside them pass."""
    objects = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fine"}, "data": {}},
        {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "metadata": {"name": "fine"}},
        {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "r1"}},
        {"apiVersion": "serving.kserve.io/v1beta9", "kind": "InferenceService", "metadata": {"name": "r1"}},
    ]
    settings = {"admission_kubeconfig": KUBECONFIG, "admission_namespace": namespace, "admission_objects": objects}
    run = ansible_playbook("tests/integration/playbooks/admission_check.yml", "-e", json.dumps(settings))
    output = " ".join(run.output.split())
    assert run.returncode == 2, run.output[-3000:]
    assert "the cluster serves no ScaledObject in keda.sh/v1alpha1 (ScaledObject/r1)" in output
    assert "the cluster serves no InferenceService in serving.kserve.io/v1beta9 (InferenceService/r1)" in output
    assert "ConfigMap in v1" not in output and "LeaderWorkerSet in" not in output


def test_a_kind_whose_crd_was_removed_is_refused_though_a_discovery_cache_still_lists_it(
    api_client, ansible_playbook, namespace
):
    """The kubernetes client's dynamic client keeps discovery in a file per API server (in the temp folder, shared by
    every client on the machine) and refreshes it only on a miss. A CRD of our own is created, looked up (the file
    now lists it) and removed: the preflight must still say the cluster does not serve it."""
    group = "stale-%s.llmops.io" % uuid.uuid4().hex[:8]
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.%s" % group},
        "spec": {
            "group": group,
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }
    extensions = client.ApiextensionsV1Api(api_client)
    extensions.create_custom_resource_definition(crd)
    try:
        wait_for(
            lambda: any(
                c.type == "Established" and c.status == "True"
                for c in extensions.read_custom_resource_definition(crd["metadata"]["name"]).status.conditions or []
            ),
            what="the Widget CRD Established",
        )
        cached = dynamic.DynamicClient(api_client).resources
        assert cached.get(api_version="%s/v1" % group, kind="Widget").kind == "Widget"
    finally:
        extensions.delete_custom_resource_definition(crd["metadata"]["name"])
    wait_for(lambda: not exists(extensions.read_custom_resource_definition, crd["metadata"]["name"]), what="CRD gone")
    # the cache file still lists the Widget: a dynamic client made now finds it without asking the server
    assert dynamic.DynamicClient(api_client).resources.get(api_version="%s/v1" % group, kind="Widget")
    objects = [{"apiVersion": "%s/v1" % group, "kind": "Widget", "metadata": {"name": "w"}}]
    settings = {"admission_kubeconfig": KUBECONFIG, "admission_namespace": namespace, "admission_objects": objects}
    run = ansible_playbook("tests/integration/playbooks/admission_check.yml", "-e", json.dumps(settings))
    assert run.returncode == 2, run.output[-3000:]
    assert "the cluster serves no Widget in %s/v1 (Widget/w)" % group in " ".join(run.output.split())
