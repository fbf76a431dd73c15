"""The Kubernetes test bed (scripts/testbed/cluster-up.sh) behaves like a GPU cluster.

Everything here talks to the real kube-apiserver, scheduler and controllers that cluster-up.sh
starts; only the kubelets are simulated (kwok), shaped like the 2 x 8 A800 servers of the seeds.
Skipped with a message when the cluster is not up (`make cluster-up` starts it).
"""

import os
import subprocess

import pytest
from kubernetes import client
from testbed_support import GPU_NODES, PAUSE_IMAGE, ROOT, wait_for, wait_pods_gone


@pytest.fixture()
def gpu_pods(core, namespace):
    """Create GPU pods through this fixture; they are deleted (and waited for) after the test."""
    created = []

    def create(name, gpus):
        created.append(name)
        return core.create_namespaced_pod(namespace, gpu_pod(name, gpus))

    yield create
    for name in created:
        core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
    wait_pods_gone(core, namespace, "app.kubernetes.io/part-of=testbed-test")


def gpu_pod(name, gpus):
    resources = {"nvidia.com/gpu": str(gpus)}
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"app.kubernetes.io/part-of": "testbed-test"}),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="main",
                    image=PAUSE_IMAGE,
                    resources=client.V1ResourceRequirements(requests=resources, limits=resources),
                )
            ],
        ),
    )


def test_gpu_nodes_advertise_a800_capacity(core):
    nodes = {node.metadata.name: node for node in core.list_node(label_selector="type=kwok").items}
    for name in GPU_NODES:
        assert name in nodes, f"simulated node {name} missing; nodes: {sorted(nodes)}"
        node = nodes[name]
        assert node.status.allocatable["nvidia.com/gpu"] == "8"
        assert node.status.allocatable["rdma/ib"] == "4"
        assert node.status.capacity["cpu"] == "128"
        assert node.status.capacity["memory"] == "1Ti"
        assert node.metadata.labels["nvidia.com/gpu.product"] == "NVIDIA-A800-SXM4-80GB"
        assert node.metadata.labels["feature.node.kubernetes.io/rdma.available"] == "true"
        ready = [c for c in node.status.conditions if c.type == "Ready"]
        assert ready and ready[0].status == "True", f"{name} is not Ready (kwok-controller not running?)"


def test_upstream_crds_are_established(api_client):
    crds = client.ApiextensionsV1Api(api_client).list_custom_resource_definition().items
    names = {crd.metadata.name for crd in crds}
    for expected in (
        "leaderworkersets.leaderworkerset.x-k8s.io",
        "podgroups.scheduling.volcano.sh",
        "clusterpolicies.nvidia.com",
        "inferenceservices.serving.kserve.io",
        "datascienceclusters.datasciencecluster.opendatahub.io",
        "rayclusters.ray.io",
        "servicemonitors.monitoring.coreos.com",
        "routes.route.openshift.io",
        "securitycontextconstraints.security.openshift.io",
        "nicclusterpolicies.mellanox.com",
    ):
        assert expected in names, f"CRD {expected} not installed"
    not_established = [
        crd.metadata.name
        for crd in crds
        if not any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])
    ]
    assert not not_established, f"CRDs not Established: {not_established}"


def test_pod_requesting_eight_gpus_runs_on_a_gpu_node(core, namespace, gpu_pods):
    gpu_pods("eight-gpus", 8)
    pod = wait_for(lambda: _running(core, namespace, "eight-gpus"), what="pod eight-gpus Running")
    assert pod.spec.node_name in GPU_NODES


def test_pod_requesting_nine_gpus_stays_pending(core, namespace, gpu_pods):
    gpu_pods("nine-gpus", 9)

    def unschedulable():
        pod = core.read_namespaced_pod("nine-gpus", namespace)
        for cond in pod.status.conditions or []:
            if cond.type == "PodScheduled" and cond.status == "False" and cond.reason == "Unschedulable":
                return pod, cond
        return None

    pod, cond = wait_for(unschedulable, what="the scheduler to report nine-gpus Unschedulable")
    assert "Insufficient nvidia.com/gpu" in cond.message
    assert pod.status.phase == "Pending" and not pod.spec.node_name


def _running(core, namespace, name):
    pod = core.read_namespaced_pod(name, namespace)
    return pod if pod.status.phase == "Running" else None


def test_leaderworkerset_creates_leader_and_worker_pods(api_client, core, namespace):
    """The real LWS controller + webhooks (scripts/testbed/lws-up.sh) turn one LWS into pods."""
    hooks = (
        client.AdmissionregistrationV1Api(api_client)
        .list_mutating_webhook_configuration(label_selector="app.kubernetes.io/part-of=llmops-testbed")
        .items
    )
    if not hooks:
        pytest.skip("LWS controller not started (cluster-up.sh with TESTBED_LWS=0?)")
    template = {
        "spec": {
            "containers": [
                {
                    "name": "sglang",
                    "image": PAUSE_IMAGE,
                    "resources": {
                        "requests": {"nvidia.com/gpu": "8", "rdma/ib": "4"},
                        "limits": {"nvidia.com/gpu": "8", "rdma/ib": "4"},
                    },
                }
            ]
        }
    }
    lws = {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": "deepseek"},
        "spec": {
            "replicas": 1,
            "leaderWorkerTemplate": {"size": 2, "leaderTemplate": template, "workerTemplate": template},
        },
    }
    custom = client.CustomObjectsApi(api_client)
    custom.create_namespaced_custom_object("leaderworkerset.x-k8s.io", "v1", namespace, "leaderworkersets", lws)
    try:
        _check_lws_pods(core, namespace)
    finally:
        custom.delete_namespaced_custom_object(
            "leaderworkerset.x-k8s.io", "v1", namespace, "leaderworkersets", "deepseek"
        )
        wait_pods_gone(core, namespace, "leaderworkerset.sigs.k8s.io/name=deepseek")


def _check_lws_pods(core, namespace):
    def both_running():
        pods = core.list_namespaced_pod(namespace, label_selector="leaderworkerset.sigs.k8s.io/name=deepseek").items
        running = {pod.metadata.name: pod for pod in pods if pod.status.phase == "Running"}
        return running if len(running) == 2 else None

    pods = wait_for(both_running, timeout=90, what="LWS leader and worker pods Running")
    assert set(pods) == {"deepseek-0", "deepseek-0-1"}
    assert pods["deepseek-0"].metadata.labels["leaderworkerset.sigs.k8s.io/worker-index"] == "0"
    assert pods["deepseek-0-1"].metadata.labels["leaderworkerset.sigs.k8s.io/worker-index"] == "1"
    # each pod asks for a whole node's GPUs, so the real scheduler spreads them over both nodes
    assert {pod.spec.node_name for pod in pods.values()} == set(GPU_NODES)
    # the pod webhook injected the LWS environment the serving command lines use
    env = {e.name: e.value for e in pods["deepseek-0-1"].spec.containers[0].env or []}
    assert env.get("LWS_LEADER_ADDRESS", "").startswith("deepseek-0.deepseek.")
    assert env.get("LWS_GROUP_SIZE") == "2"


def test_kwokctl_dry_run_uses_only_local_binaries(tmp_path):
    """cluster-up.sh's kwokctl flags leave kwokctl nothing to download and bind nothing beyond loopback."""
    bin_dir = os.path.join(ROOT, ".build", "testbed", "bin")
    if not os.path.exists(os.path.join(bin_dir, "kwokctl")):
        pytest.skip("test bed binaries not built (run `make testbed-build`)")
    flags = [
        f"--{name}-binary={os.path.join(bin_dir, binary)}"
        for name, binary in (
            ("kube-apiserver", "kube-apiserver"),
            ("kube-controller-manager", "kube-controller-manager"),
            ("kube-scheduler", "kube-scheduler"),
            ("kwok-controller", "kwok"),
            ("etcd", "etcd"),
        )
    ]
    env = dict(os.environ, KWOK_WORKDIR=str(tmp_path), PATH=bin_dir + os.pathsep + os.environ["PATH"])
    plan = subprocess.run(
        [
            os.path.join(bin_dir, "kwokctl"),
            "--config",
            os.path.join(ROOT, "testbed", "kwokctl.yaml"),
            "create",
            "cluster",
            "--name",
            "dry",
            "--runtime",
            "binary",
            "--dry-run",
            *flags,
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    downloads = [line for line in plan.splitlines() if line.startswith("# Download ")]
    assert len(downloads) == 5, plan
    assert all(line.split()[2].startswith(bin_dir) for line in downloads), downloads
    assert "http://" not in plan.replace("http://127.0.0.1", "") and "https://" not in plan.replace(
        "https://127.0.0.1", ""
    ).replace("https://kubernetes.default.svc", ""), plan
    assert "0.0.0.0" not in plan, "a component would listen beyond loopback"
