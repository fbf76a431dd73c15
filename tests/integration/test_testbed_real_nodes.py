"""The test bed's real nodes (scripts/testbed/nodes-up.sh) run containers.

Real here: kubelet and kube-proxy (iptables mode) from the pinned k8s.io/kubernetes, containerd and
runc from Debian, the CNI bridge/host-local plugins, CoreDNS, and an image built locally from Debian
packages (scripts/testbed/image_build.py). Simulated: the accelerators, which our device plugin
advertises through the real kubelet device-plugin API (no hardware behind them).

Skips when the cluster is not up or was started with TESTBED_REAL_NODES=0 (cluster-up starts two real
nodes by default and fails when they do not come up); when nodes-up.sh ran (.state/testbed/nodes
exists), missing real nodes are a failure.
"""

import json
import os
import uuid

import pytest
from kubernetes import client
from testbed_support import ROOT, wait_for

PYTHON_IMAGE = "llmops.invalid/testbed/python:3.11"
TAINT = client.V1Toleration(key="llmops.io/real-node", operator="Exists", effect="NoSchedule")
POD_CIDR_PREFIX = "10.214."
NODES_STATE = os.path.join(ROOT, ".state", "testbed", "nodes")

SERVER = """
import http.server, json, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"pod": os.environ["HOSTNAME"], "gpus": os.environ.get("NVIDIA_VISIBLE_DEVICES")}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("", 8080), H).serve_forever()
"""

CLIENT = """
import json, socket, sys, urllib.request
name = sys.argv[1]
ip = socket.gethostbyname(name)
body = json.loads(urllib.request.urlopen(f"http://{name}/", timeout=10).read())
result = json.dumps({"resolved": ip, "answer": body})
open("/dev/termination-log", "w").write(result)
print(result)
"""


@pytest.fixture(scope="module")
def real_nodes(core):
    if not os.path.isdir(NODES_STATE):
        pytest.skip(f"the test bed runs no real nodes ({NODES_STATE} missing; TESTBED_REAL_NODES=2 make cluster-up)")
    nodes = core.list_node(label_selector="type=real").items
    assert nodes, "no real node registered (scripts/testbed/nodes-up.sh; logs in .state/testbed/nodes/)"
    return sorted(node.metadata.name for node in nodes)


def test_real_nodes_are_ready_and_advertise_simulated_devices(core, real_nodes):
    for name in real_nodes:
        node = core.read_node(name)
        ready = [c for c in node.status.conditions if c.type == "Ready"]
        assert ready and ready[0].status == "True", f"{name} not Ready: {node.status.conditions}"
        # from our device plugin, through the kubelet's device-plugin registration
        assert node.status.allocatable["nvidia.com/gpu"] == "2"
        assert node.status.allocatable["rdma/ib"] == "1"
        assert node.metadata.labels["nvidia.com/gpu.present"] == "true"
        assert node.metadata.labels["nvidia.com/gpu.count"] == "2"
        assert node.status.node_info.container_runtime_version.startswith("containerd://")
        assert node.status.node_info.kubelet_version == client.VersionApi(core.api_client).get_code().git_version
        assert any(t.key == "llmops.io/real-node" for t in node.spec.taints or [])


def test_real_nodes_never_evict_or_taint_for_disk(core, real_nodes):
    """The running kubelets' own configuration (configz): the only eviction threshold is memory's.

    The real nodes share this host's disk, whose free space moves with everything else on it; a 1% disk threshold
    once put the disk-pressure taint on both nodes mid-run and failed the molecule serve scenario.
    """
    for name in real_nodes:
        raw = core.connect_get_node_proxy_with_path(name, "configz", _preload_content=False).data
        config = json.loads(raw)["kubeletconfig"]
        hard = config.get("evictionHard") or {}
        disk = {signal: value for signal, value in hard.items() if not signal.startswith("memory.")}
        assert all(value == "0%" for value in disk.values()), f"{name} evicts on disk: {hard}"
        assert not config.get("evictionSoft"), f"{name} has soft eviction thresholds: {config['evictionSoft']}"
        taints = [t.key for t in core.read_node(name).spec.taints or []]
        assert "node.kubernetes.io/disk-pressure" not in taints


def _pod(name, node, args, labels=None, gpus=0, probe=False, restart="Always"):
    resources = {"nvidia.com/gpu": str(gpus)} if gpus else None
    container = client.V1Container(
        name="main",
        image=PYTHON_IMAGE,
        image_pull_policy="IfNotPresent",
        command=["python3", "-c"],
        args=args,
        resources=client.V1ResourceRequirements(requests=resources, limits=resources) if gpus else None,
        readiness_probe=client.V1Probe(http_get=client.V1HTTPGetAction(path="/", port=8080), period_seconds=1)
        if probe
        else None,
    )
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels or {}),
        spec=client.V1PodSpec(
            containers=[container],
            node_selector={"kubernetes.io/hostname": node},
            tolerations=[TAINT],
            restart_policy=restart,
            termination_grace_period_seconds=0,
        ),
    )


def test_pod_on_real_node_reaches_a_service_by_dns(core, namespace, real_nodes):
    """A locally built image runs; its pod gets a pod IP, passes a real HTTP readiness probe, and a
    second pod (on the other real node when there are two) resolves the Service by DNS (CoreDNS) and
    reaches it through the Service IP (kube-proxy); the server saw the simulated GPU the device plugin
    allocated to it."""
    app = f"web-{uuid.uuid4().hex[:6]}"
    core.create_namespaced_pod(namespace, _pod(app, real_nodes[0], [SERVER], labels={"app": app}, gpus=1, probe=True))
    service = core.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name=app),
            spec=client.V1ServiceSpec(selector={"app": app}, ports=[client.V1ServicePort(port=80, target_port=8080)]),
        ),
    )

    def ready():
        pod = core.read_namespaced_pod(app, namespace)
        conditions = {c.type: c.status for c in pod.status.conditions or []}
        return pod if conditions.get("Ready") == "True" else None

    server = wait_for(ready, timeout=120, what=f"pod {app} Ready on {real_nodes[0]}")
    assert server.status.pod_ip.startswith(POD_CIDR_PREFIX)

    fqdn = f"{app}.{namespace}.svc.cluster.local"
    client_node = real_nodes[-1]
    core.create_namespaced_pod(namespace, _pod(f"{app}-client", client_node, [CLIENT, fqdn], restart="Never"))

    def finished():
        pod = core.read_namespaced_pod(f"{app}-client", namespace)
        return pod if pod.status.phase in ("Succeeded", "Failed") else None

    pod = wait_for(finished, timeout=120, what=f"client pod on {client_node} to finish")
    state = pod.status.container_statuses[0].state.terminated
    assert pod.status.phase == "Succeeded", f"client failed: {state.message}"
    result = json.loads(state.message)
    assert result["resolved"] == service.spec.cluster_ip
    assert result["answer"]["pod"] == app
    assert result["answer"]["gpus"].startswith(f"{real_nodes[0]}-gpu-")
