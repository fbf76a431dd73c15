"""A 2-pod SGLang group, rendered by our builder (playbooks/serve.yml in render mode), run for real on the
test bed's real nodes with the engine stand-in image (testbed/standin, tagged as the roles' default SGLang
image so the rendered manifests run unchanged).

Real here: ansible-playbook and our manifest builders, the kube-apiserver, scheduler and LWS controller
(RecreateGroupOnPodRestart), the kubelets, containerd/runc, CNI pod networking, CoreDNS (the leader's LWS
DNS name), kube-proxy (the NodePort Service), the probes, the Secret-backed API key, the model-wait init
container, the TCP rendezvous between the two pods at --dist-init-addr. Simulated: the GPUs (our device
plugin) and SGLang's model execution (the stand-in answers and says so).

Times (group formation, time to Ready, kill-worker recovery) are printed: run with -s to see them.
"""

import copy
import glob
import json
import os
import shutil
import time

import pytest
import yaml
from kubernetes import dynamic
from kubernetes.client.rest import ApiException
from render_helpers import run_render
from standin_support import fill_host_models, group_vars, http
from testbed_support import KUBECONFIG, volcano_running, wait_for

NODES_STATE = os.path.join(os.path.dirname(KUBECONFIG), "nodes")  # beside the bed the tests use
NAME = "tiny"
# What applies from the render: the group and what it needs (the staging Jobs run the download image, which
# the stand-in test does not use: the test fills the hostPath folder itself, as a staging Job would).
APPLIED = ("ConfigMap", "Secret", "LeaderWorkerSet", "Service", "PodDisruptionBudget")


def log(message):
    print("[standin-live] %s" % message, flush=True)


@pytest.fixture(scope="module")
def real_nodes(core):
    if not os.path.isdir(NODES_STATE):
        pytest.skip(f"the test bed runs no real nodes ({NODES_STATE} missing; TESTBED_REAL_NODES=2 make cluster-up)")
    nodes = sorted(node.metadata.name for node in core.list_node(label_selector="type=real").items)
    assert len(nodes) >= 2, "the stand-in group needs two real nodes, found %s" % nodes
    return nodes[:2]


@pytest.fixture(scope="module")
def host_models(namespace):
    base = fill_host_models(namespace)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def rendered(namespace, host_models, real_nodes, tmp_path_factory):
    """The objects our builder renders for the group (a fresh API key in its Secret)."""
    return render_group(namespace, host_models, real_nodes, str(tmp_path_factory.mktemp("render")))


def render_group(namespace, host_models, real_nodes, folder, applied=APPLIED, **more):
    extra = group_vars(namespace, host_models, real_nodes, NAME)
    extra.update(more)
    vars_file = os.path.join(folder, "vars.json")
    with open(vars_file, "w") as handle:
        json.dump(extra, handle)
    out = os.path.join(folder, "out")
    result = run_render("testbed", out, "-e", "@" + vars_file, plan=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    objects = []
    for path in sorted(glob.glob(os.path.join(out, "*", "*.yaml"))):
        with open(path) as handle:
            objects += [doc for doc in yaml.safe_load_all(handle) if doc and doc["kind"] in applied]
    assert {o["kind"] for o in objects} == set(applied), [o["kind"] for o in objects]
    return objects


def _dyn(api_client):
    return dynamic.DynamicClient(api_client)


def apply(api_client, namespace, objects):
    dyn = _dyn(api_client)
    for obj in objects:
        dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"]).create(body=obj, namespace=namespace)


def delete_group(api_client, core, namespace):
    lws = _dyn(api_client).resources.get(api_version="leaderworkerset.x-k8s.io/v1", kind="LeaderWorkerSet")
    try:
        lws.delete(name=NAME, namespace=namespace)
    except ApiException as error:
        if error.status != 404:
            raise
    # Then the pods, at once: the worker exits when its leader goes away (as SGLang does), and a container
    # the kubelet restarts while its pod is terminating kept the worker pod Terminating for minutes on the bed.
    selector = "app.kubernetes.io/name=%s" % NAME
    for pod in core.list_namespaced_pod(namespace, label_selector=selector).items:
        try:
            core.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)
        except ApiException as error:
            if error.status != 404:
                raise
    wait_for(
        lambda: not core.list_namespaced_pod(namespace, label_selector=selector).items,
        timeout=60,
        what="the group's pods gone",
    )


def pods(core, namespace):
    found = core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/name=%s" % NAME).items
    return {pod.metadata.labels.get("llmops.io/role"): pod for pod in found if pod.metadata.deletion_timestamp is None}


def ready(pod):
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def leader_ready(core, namespace):
    group = pods(core, namespace)
    leader = group.get("leader")
    return leader if leader is not None and ready(leader) and "worker" in group else None


def wait_ready(core, namespace, condition, what, timeout=90):
    """condition() within timeout, else fail saying where each pod of the group stands (Pending for GPUs
    another test holds, a waiting init container, a crashing engine with its last log lines)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(1)
    states = []
    for pod in core.list_namespaced_pod(namespace).items:
        waiting = [
            "%s: %s %s" % (c.name, c.state.waiting.reason, c.state.waiting.message or "")
            for c in (pod.status.container_statuses or []) + (pod.status.init_container_statuses or [])
            if c.state and c.state.waiting
        ]
        conditions = ["%s=%s %s" % (c.type, c.status, c.message or "") for c in pod.status.conditions or []]
        states.append(
            "%s on %s: %s %s %s\n  log: %s"
            % (pod.metadata.name, pod.spec.node_name, pod.status.phase, conditions, waiting, pod_logs(pod)[-600:])
        )
    pytest.fail("timed out after %ds waiting for %s:\n%s" % (timeout, what, "\n".join(states)))


def node_port_url(core, namespace, real_nodes, service="%s-api" % NAME):
    """The NodePort Service via a real node: a group's leaders (<name>-api) or a single-pod server (<name>)."""
    service = core.read_namespaced_service(service, namespace)
    port = service.spec.ports[0].node_port
    node = core.read_node(real_nodes[1])
    address = next(a.address for a in node.status.addresses if a.type == "InternalIP")
    return "http://%s:%d" % (address, port)


def api_key(core, namespace):
    import base64

    secret = core.read_namespaced_secret("%s-api-key" % NAME, namespace)
    return base64.b64decode(secret.data["api-key"]).decode()


def chat(url, key):
    request = {"model": NAME, "messages": [{"role": "user", "content": "which engine are you?"}]}
    return http(url + "/v1/chat/completions", request, key=key, timeout=10)


def formation_seconds(pod):
    text = pod_logs(pod)
    for line in text.splitlines():
        if "group formed:" in line:
            return float(line.rsplit(" in ", 1)[1].rstrip("s"))
    return None


@pytest.fixture(scope="module")
def group(api_client, core, namespace, rendered, real_nodes):
    started = time.monotonic()
    apply(api_client, namespace, rendered)
    leader = wait_ready(core, namespace, lambda: leader_ready(core, namespace), "the leader Ready")
    ready_after = time.monotonic() - started
    nodes = {role: pod.spec.node_name for role, pod in pods(core, namespace).items()}
    formed = formation_seconds(leader)
    log("group Ready %.1fs after apply (rendezvous formed in %ss on the leader), on %s" % (ready_after, formed, nodes))
    yield {"ready_after": ready_after, "nodes": nodes}
    delete_group(api_client, core, namespace)


def test_group_is_ready_and_answers_through_the_service_with_the_secret_key(core, namespace, group, real_nodes):
    assert sorted(group["nodes"].values()) == sorted(real_nodes), "one pod per real node: %s" % group["nodes"]
    url = node_port_url(core, namespace, real_nodes)
    key = api_key(core, namespace)
    status, answer = chat(url, key)
    assert status == 200, answer
    assert answer["system_fingerprint"].startswith("llmops-engine-standin sglang-0.5.23")
    assert "over 2 node(s), tp 2" in answer["choices"][0]["message"]["content"]
    assert chat(url, None)[0] == 401
    # the worker got the simulated GPUs of its node and the leader's DNS name
    text = pod_logs(pods(core, namespace)["worker"])
    assert "rank 1 registered at %s-0.%s.%s" % (NAME, NAME, namespace) in text, text


def test_killing_the_worker_recreates_the_group_which_serves_again(core, namespace, group, real_nodes):
    before = pods(core, namespace)
    url = node_port_url(core, namespace, real_nodes)
    key = api_key(core, namespace)
    started = time.monotonic()
    core.delete_namespaced_pod(before["worker"].metadata.name, namespace, grace_period_seconds=0)

    def recreated():
        leader = leader_ready(core, namespace)
        if leader is None or leader.metadata.uid == before["leader"].metadata.uid:
            return None
        return leader

    leader = wait_ready(core, namespace, recreated, "a new leader Ready after the worker was killed")
    status, answer = chat(url, key)
    recovery = time.monotonic() - started
    assert status == 200, answer
    after = pods(core, namespace)
    assert after["worker"].metadata.uid != before["worker"].metadata.uid
    log(
        "kill-worker recovery: new group answering %.1fs after the delete (rendezvous %ss)"
        % (recovery, formation_seconds(leader))
    )


def test_wrong_dist_init_port_never_gets_ready_and_the_log_says_why(
    api_client, core, namespace, rendered, group, ansible_playbook
):
    delete_group(api_client, core, namespace)
    objects = copy.deepcopy([o for o in rendered if o["kind"] == "LeaderWorkerSet"])
    leader = objects[0]["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]
    script = leader["command"][2]
    assert ":20000" in script and "--dist-timeout 3600" in script
    # The leader listens on another port than the one the worker (the same rendered argv) dials; a short
    # rendezvous timeout so the leader's exit and its message come within the test's time.
    leader["command"][2] = script.replace(":20000", ":20001").replace("--dist-timeout 3600", "--dist-timeout 25")
    apply(api_client, namespace, objects)
    # Our verify stage, as site.yml runs it: the wait runs out and prints what the leader waits for.
    settings = {
        "llmops_kubeconfig": KUBECONFIG,
        "llmops_namespace": namespace,
        "llmops_served_model_name": NAME,
        "llmops_nodes": 2,
        "inference_verify_ready_timeout": 20,
        "inference_verify_poll_seconds": 2,
        "inference_verify_query_endpoint": False,
    }
    verify = ansible_playbook("playbooks/verify.yml", "-i", "inventories/testbed", "-e", json.dumps(settings))
    assert verify.returncode == 2, verify.output[-3000:]
    assert "the engine pods of %s did not become ready within 20 s" % NAME in verify.output, verify.output[-3000:]
    assert "rank 0 of 2: waiting for ranks [1] at 0.0.0.0:20001" in verify.output, verify.output[-3000:]
    seen = ""
    deadline = time.monotonic() + 80
    while time.monotonic() < deadline and "did not form within" not in seen:
        group_pods = pods(core, namespace)
        leader_pod = group_pods.get("leader")
        assert leader_pod is None or not ready(leader_pod), "a leader on the wrong port got Ready"
        if leader_pod is not None:
            seen = pod_logs(leader_pod) or seen
        time.sleep(2)
    assert "did not form within --dist-timeout 25s" in seen, seen
    assert "never heard from rank(s) [1]" in seen and "0.0.0.0:20001" in seen, seen
    log(
        "wrong port: leader never Ready; its log: %s"
        % [line for line in seen.splitlines() if "did not form" in line][0]
    )


def test_volcano_gang_schedules_the_group_onto_the_real_nodes(
    api_client, core, namespace, host_models, real_nodes, group, tmp_path
):
    """inference_server_volcano_enabled: the real Volcano scheduler (TESTBED_VOLCANO=1, as CI starts the bed)
    binds the group's pods together through our PodGroup, onto the real nodes' simulated GPUs, and it serves."""
    if not volcano_running():
        pytest.fail("the test bed runs no Volcano scheduler: start it with TESTBED_VOLCANO=1 (scripts/test.sh does)")
    delete_group(api_client, core, namespace)
    objects = render_group(
        namespace,
        host_models,
        real_nodes,
        str(tmp_path),
        applied=("LeaderWorkerSet", "PodGroup"),
        inference_server_volcano_enabled=True,
    )
    started = time.monotonic()
    apply(api_client, namespace, objects)
    try:
        wait_ready(core, namespace, lambda: leader_ready(core, namespace), "the Volcano-scheduled leader Ready")
        ready_after = time.monotonic() - started
        group_pods = pods(core, namespace)
        assert {pod.spec.scheduler_name for pod in group_pods.values()} == {"volcano"}
        assert sorted(pod.spec.node_name for pod in group_pods.values()) == sorted(real_nodes)
        podgroup = (
            _dyn(api_client)
            .resources.get(api_version="scheduling.volcano.sh/v1beta1", kind="PodGroup")
            .get(name=NAME, namespace=namespace)
        )
        assert podgroup.spec.minMember == 2 and podgroup.status.phase == "Running", podgroup.status
        # the Secret and Service of the first apply still front the new group
        status, answer = chat(node_port_url(core, namespace, real_nodes), api_key(core, namespace))
        assert status == 200, answer
        log("Volcano gang: group Ready %.1fs after apply on %s" % (ready_after, sorted(real_nodes)))
    finally:
        delete_group(api_client, core, namespace)


def pod_logs(pod):
    """The engine container's log, every run of it (restarts too), oldest first. Read from the kubelet's
    podLogsDir on this machine, the files `kubectl logs` serves: the bed's apiserver cannot reach the
    kubelets' log endpoint (it dials the node name, which does not resolve on this machine)."""
    folder = os.path.join(
        NODES_STATE,
        pod.spec.node_name or "-",
        "pod-logs",
        "%s_%s_%s" % (pod.metadata.namespace, pod.metadata.name, pod.metadata.uid),
        "engine",
    )
    lines = []
    for path in sorted(glob.glob(os.path.join(folder, "*.log")), key=lambda p: int(os.path.basename(p)[:-4])):
        with open(path, errors="replace") as handle:
            # CRI log format: "<time> <stream> <P|F> <text>"
            lines += [line.rstrip("\n").split(" ", 3)[-1] for line in handle]
    return "\n".join(lines)
