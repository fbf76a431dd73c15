"""Routing across replicas through the real endpoint picker, on the test bed's real nodes (docs/autoscaling.md).

serve.yml's objects for two single-node replicas of the engine stand-in with inference_routing on are applied
as rendered: the engine's Deployment (2 replicas on the real nodes), the InferencePool over their API pods, the
InferenceObjective, and the endpoint picker's ServiceAccount, Role, RoleBinding, plugin ConfigMap, Deployment and
Service. The picker is the real EPP of gateway-api-inference-extension v1.5.0, built here from its Go module
and run from a local image tagged as the role's default (scripts/testbed/epp-up.sh); it watches the pool
through the API server with its own RBAC, scrapes the replicas' /metrics and scores them with the plugin
configuration the role wrote.

What stands in: the Gateway's data plane. No Gateway implementation runs here (Envoy is neither a Go module
nor a Debian package), so llmops-extproc-gateway (testbed/go/epp) plays Envoy's part: it speaks Envoy's
ext_proc protocol to the picker over TLS, as a gateway does, forwards each request to the endpoint the picker
named and passes the response back through the picker. The Gateway and HTTPRoute objects are validated
offline against the Gateway API CRDs (test_day_two_render.py). The replicas are the engine stand-in, which
serves SGLang's metric names; the GPUs are simulated.
"""

import json
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import test_engine_standin_live as standin
from kubernetes import client
from standin_support import SINGLE_NODE_PLAN
from testbed_support import bed_script, wait_for

NAME = standin.NAME
# a single-node plan runs as a Deployment (no LeaderWorkerSet); the picker has one too
KINDS = tuple(kind for kind in standin.APPLIED if kind != "LeaderWorkerSet") + (
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "Deployment",
    "InferencePool",
    "InferenceObjective",
)
# One node per replica, so each real node holds one replica.
REPLICA_PLAN = SINGLE_NODE_PLAN
REAL_NODE = {"key": "llmops.io/real-node", "operator": "Exists", "effect": "NoSchedule"}

real_nodes = standin.real_nodes
host_models = standin.host_models


def log(message):
    print("[routing-live] %s" % message, flush=True)


@pytest.fixture(scope="module")
def gateway_binary(real_nodes):
    """The EPP binary and image (built once, ~3 min cold) and our gateway; the image imported into the nodes."""
    done = bed_script("epp-up.sh")
    log("epp-up.sh in %.1fs" % done.seconds)
    return done.printed


@pytest.fixture(scope="module")
def routed(api_client, core, namespace, host_models, real_nodes, gateway_binary, tmp_path_factory):
    objects = standin.render_group(
        namespace,
        host_models,
        real_nodes,
        str(tmp_path_factory.mktemp("routing")),
        applied=KINDS,
        serving_plan_override=REPLICA_PLAN,
        llmops_replicas=2,
        inference_server_rdma_resources={},
        inference_routing_enabled=True,
        inference_routing_epp_resources={"requests": {"cpu": "100m", "memory": "256Mi"}},
        inference_routing_node_selector={"type": "real"},
        inference_routing_tolerations=[REAL_NODE],
        inference_routing_log_level=2,
    )
    started = time.monotonic()
    standin.apply(api_client, namespace, objects)
    epp = "%s-epp" % NAME

    pool = [o for o in objects if o["kind"] == "InferencePool"][0]
    pool_selector = ",".join("%s=%s" % item for item in sorted(pool["spec"]["selector"]["matchLabels"].items()))

    def ready_pods(selector):
        return [p for p in core.list_namespaced_pod(namespace, label_selector=selector).items if standin.ready(p)]

    def serving():
        leaders, pickers = ready_pods(pool_selector), ready_pods("app.kubernetes.io/component=endpoint-picker")
        return (leaders, pickers) if len(leaders) == 2 and pickers else None

    leaders, pickers = standin.wait_ready(core, namespace, serving, "2 replicas and the endpoint picker Ready", 180)
    log(
        "2 replicas on %s and the picker on %s Ready %.1fs after apply"
        % (sorted(p.spec.node_name for p in leaders), pickers[0].spec.node_name, time.monotonic() - started)
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway_log = tmp_path_factory.mktemp("gateway") / "gateway.log"
    with open(gateway_log, "w") as handle:
        gateway = subprocess.Popen(
            [gateway_binary, "--listen", "127.0.0.1:%d" % port, "--epp", "%s:9002" % pickers[0].status.pod_ip],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    url = "http://127.0.0.1:%d" % port
    wait_for(lambda: _answers(url), timeout=30, what="the ext_proc gateway listening")
    yield {
        "url": url,
        "key": standin.api_key(core, namespace),
        "endpoints": {"%s:8000" % p.status.pod_ip: p.spec.node_name for p in leaders},
        "picker": pickers[0],
        "replicas": leaders,
        "gateway_log": gateway_log,
    }
    gateway.send_signal(signal.SIGTERM)
    gateway.wait(timeout=10)
    for deployment in (epp, NAME):
        client.AppsV1Api(api_client).delete_namespaced_deployment(deployment, namespace)
    standin.delete_group(api_client, core, namespace)


def _answers(url):
    try:
        urllib.request.urlopen(url + "/health", timeout=2)
    except urllib.error.HTTPError:
        return True  # any HTTP answer: it listens
    except OSError:
        return False
    return True


def complete(routed, prompt, model=NAME):
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 8}).encode()
    request = urllib.request.Request(
        routed["url"] + "/v1/chat/completions",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": "Bearer " + routed["key"]},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, json.loads(response.read())  # headers: case-insensitive
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode(errors="replace")


def picker_log(routed, core, namespace):
    """The picker's last lines, the replicas' and our gateway's: what a failed request left behind."""
    text = "picker: " + core.read_namespaced_pod_log(routed["picker"].metadata.name, namespace)[-2000:]
    for pod in routed["replicas"]:
        text += "\n%s: %s" % (pod.metadata.name, core.read_namespaced_pod_log(pod.metadata.name, namespace)[-1000:])
    return text + "\ngateway: " + routed["gateway_log"].read_text()[-1000:]


def test_the_picker_routes_every_request_to_a_replica_of_the_pool(routed, core, namespace):
    endpoints = routed["endpoints"]
    seen = {}
    for i in range(16):
        status, headers, answer = complete(routed, "question %d: %s" % (i, "which replica answers this? " * 8))
        assert status == 200, (status, answer, picker_log(routed, core, namespace))
        chosen = headers.get("x-llmops-gateway-endpoint")
        assert chosen in endpoints, "the picker chose %r, not a pool endpoint %s" % (chosen, sorted(endpoints))
        assert answer["choices"][0]["message"]["content"], answer
        seen[chosen] = seen.get(chosen, 0) + 1
    log("16 distinct prompts through the picker: %s" % {endpoints[e]: n for e, n in seen.items()})
    # distinct prompts tie on the prefix score and the idle replicas on queue and KV-cache: both get traffic
    assert len(seen) == 2, "every request went to %s" % seen


def test_a_repeated_prompt_sticks_to_the_replica_that_holds_its_prefix(routed, core, namespace):
    prompt = "You are a careful assistant. " * 40 + "Summarise the plan."
    chosen = set()
    for attempt in range(8):
        status, headers, answer = complete(routed, prompt)
        assert status == 200, (attempt, status, answer)
        chosen.add(headers["x-llmops-gateway-endpoint"])
    log("8 requests with one long prompt went to %s" % sorted(routed["endpoints"][e] for e in chosen))
    assert len(chosen) == 1, "the prefix-cache scorer should keep one prompt on one replica: %s" % chosen


def test_a_request_without_the_key_is_refused_by_the_replica_behind_the_picker(routed):
    request = urllib.request.Request(
        routed["url"] + "/v1/chat/completions",
        data=json.dumps({"model": NAME, "messages": [{"role": "user", "content": "hi"}]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 401
    assert refused.value.headers.get("x-llmops-gateway-endpoint") in routed["endpoints"]
