"""The autoscaling loop, live: a load from the load test (playbooks/benchmark.yml) raises the engine stand-in's
queue gauge, KEDA grows the server from 1 to 2 replicas, and shrinks it back after the scale-down window.

Real here: KEDA's operator and metrics adapter (KEDA_VERSION, built from its Go module by build.sh) serving
external.metrics.k8s.io through the kube-apiserver's aggregator, the HPA that KEDA makes and the real
kube-controller-manager acts on, Prometheus (Debian's package) scraping the pods, the Deployment our builder
renders with the ScaledObject the autoscaling role renders (only the Prometheus address and quick windows are
the test's), the real nodes' kubelets, containerd, CNI and kube-proxy, and the benchmark playbook's load through
the NodePort Service. Simulated: the GPUs (our device plugin) and SGLang's model execution: the stand-in enforces
SGLang's own cap on requests in flight (--max-running-requests) with a real queue behind it and takes
LLMOPS_STANDIN_TOKEN_SECONDS per token (test bed only), so the load builds a real queue in
sglang:num_queue_reqs. The KEDA operator, adapter and Prometheus run as host processes
(scripts/testbed/keda-up.sh), not as pods: no registry, and their images are not what is tested here.
Prometheus's targets are written by the test (Debian's Prometheus has no Kubernetes discovery), labelled with
namespace and pod as a PodMonitor would.

This module installs KEDA's CRDs for its own run and removes them after (keda-up.sh --down): the other day-two
tests check that the bed has none. Times (scale-up after the load, scale-down after the queue drained) are
printed: run with -s to see them.
"""

import json
import os
import threading
import time
from urllib.parse import urlencode

import pytest
import test_engine_standin_live as standin
from kubernetes import client, dynamic
from kubernetes.client.rest import ApiException
from standin_support import SINGLE_NODE_PLAN, http
from testbed_support import KUBECONFIG, bed_script

NAME = standin.NAME
KEDA_STATE = os.path.join(os.path.dirname(KUBECONFIG), "keda")
QUEUE_TARGET = 2
SCALE_DOWN_WINDOW_S = 20
TOKEN_SECONDS = 0.5
LOAD = {"concurrency": 8, "duration_s": 30, "max_tokens": 8}
real_nodes = standin.real_nodes
host_models = standin.host_models


def log(message):
    print("[scaling-live] %s" % message, flush=True)


@pytest.fixture(scope="module")
def keda(real_nodes):
    """KEDA, its external metrics API and Prometheus up (keda-up.sh prints Prometheus's URL); removed after."""
    up = bed_script("keda-up.sh", timeout=1500)
    log("keda-up.sh in %.1fs: %s" % (up.seconds, up.logged))
    yield up.printed
    bed_script("keda-up.sh", "--down", timeout=300)


@pytest.fixture(scope="module")
def scaled(keda, namespace, host_models, real_nodes, tmp_path_factory):
    """Our render of the single-pod stand-in server with the autoscaling role's ScaledObject on its queue."""
    return standin.render_group(
        namespace,
        host_models,
        real_nodes,
        str(tmp_path_factory.mktemp("render")),
        applied=("ConfigMap", "Secret", "Deployment", "Service", "ScaledObject"),
        serving_plan_override=SINGLE_NODE_PLAN,
        inference_server_rdma_resources={},
        inference_server_extra_args=["--max-running-requests", "1"],
        inference_server_extra_env={"LLMOPS_STANDIN_TOKEN_SECONDS": str(TOKEN_SECONDS)},
        autoscaling_enabled=True,
        autoscaling_provider="keda",
        autoscaling_prometheus_url=keda,
        autoscaling_metrics=[{"signal": "queue", "target": QUEUE_TARGET}],
        autoscaling_accelerator_nodes=2,
        autoscaling_polling_seconds=2,
        autoscaling_scale_up_period_seconds=2,
        autoscaling_scale_down_period_seconds=2,
        autoscaling_scale_down_stabilization_seconds=SCALE_DOWN_WINDOW_S,
    )


class Targets(threading.Thread):
    """Keeps Prometheus's file_sd target file at the running server pods (what a PodMonitor would select)."""

    def __init__(self, core, namespace, port):
        super().__init__(daemon=True)
        self.core, self.namespace, self.port = core, namespace, port
        self.path = os.path.join(KEDA_STATE, "targets", "%s.json" % namespace)
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            pods = self.core.list_namespaced_pod(self.namespace, label_selector="app.kubernetes.io/name=%s" % NAME)
            targets = [
                {
                    "targets": ["%s:%d" % (pod.status.pod_ip, self.port)],
                    "labels": {"namespace": self.namespace, "pod": pod.metadata.name},
                }
                for pod in pods.items
                if pod.status.pod_ip and pod.metadata.deletion_timestamp is None
            ]
            with open(self.path + ".tmp", "w") as handle:
                json.dump(targets, handle)
            os.replace(self.path + ".tmp", self.path)
            self.done.wait(1)

    def stop(self):
        self.done.set()
        self.join(10)
        if os.path.exists(self.path):
            os.remove(self.path)


def queue_depth(prometheus, namespace):
    query = 'sum(sglang:num_queue_reqs{namespace="%s",model_name="%s"})' % (namespace, NAME)
    status, answer = http(prometheus + "/api/v1/query?" + urlencode({"query": query}), timeout=5)
    assert status == 200, answer
    result = answer["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def replicas(apps, namespace):
    return apps.read_namespaced_deployment(NAME, namespace).spec.replicas


def test_a_load_grows_the_server_and_the_window_shrinks_it(
    api_client, core, namespace, scaled, keda, real_nodes, ansible_playbook, tmp_path
):
    deployment = next(o for o in scaled if o["kind"] == "Deployment")
    scaled_object = next(o for o in scaled if o["kind"] == "ScaledObject")
    assert "replicas" not in deployment["spec"]  # the autoscaler owns them
    assert scaled_object["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME}
    assert (scaled_object["spec"]["minReplicaCount"], scaled_object["spec"]["maxReplicaCount"]) == (1, 2)
    engine = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "engine")
    assert "--max-running-requests 1" in " ".join(engine.get("command", []) + engine.get("args", []))
    port = engine["ports"][0]["containerPort"]
    apps = client.AppsV1Api(api_client)
    targets = Targets(core, namespace, port)
    standin.apply(api_client, namespace, scaled)
    targets.start()
    try:
        standin.wait_ready(core, namespace, lambda: ready_pods(core, namespace) >= 1, "the server pod Ready")
        # KEDA's HPA exists and reads the queue through external.metrics.k8s.io before any load
        hpa_name = scaled_object["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["name"]
        standin.wait_ready(
            core,
            namespace,
            lambda: metric_read(api_client, namespace, hpa_name),
            "KEDA's HPA reading the queue metric",
            timeout=120,
        )
        assert replicas(apps, namespace) == 1
        settings = {
            "llmops_kubeconfig": KUBECONFIG,
            "llmops_namespace": namespace,
            "llmops_served_model_name": NAME,
            "inference_benchmark_base_url": standin.node_port_url(core, namespace, real_nodes, service=NAME),
            "inference_benchmark_api_key_secret": "%s-api-key" % NAME,
            "inference_benchmark_concurrency": [LOAD["concurrency"]],
            "inference_benchmark_duration_s": LOAD["duration_s"],
            "inference_benchmark_warmup_requests": 0,
            "inference_benchmark_max_tokens": LOAD["max_tokens"],
            "inference_benchmark_output_dir": str(tmp_path / "results"),
            "inference_benchmark_name": "scaling",
        }
        outcome = {}
        load = threading.Thread(
            target=lambda: outcome.update(
                run=ansible_playbook("playbooks/benchmark.yml", "-i", "inventories/testbed", "-e", json.dumps(settings))
            ),
            daemon=True,
        )
        started = time.monotonic()
        load.start()
        peak, seen = 0.0, []
        deadline = started + 120
        while time.monotonic() < deadline and replicas(apps, namespace) < 2:
            depth = queue_depth(keda, namespace)
            peak = max(peak, depth or 0)
            seen.append(depth)
            time.sleep(1)
        grown = time.monotonic() - started
        assert replicas(apps, namespace) == 2, "no scale-up within 120 s of the load; queue depths seen: %s" % seen
        log("queue gauge peaked at %s; the Deployment went 1 -> 2 replicas %.1fs after the load began" % (peak, grown))
        assert peak > QUEUE_TARGET
        standin.wait_ready(core, namespace, lambda: ready_pods(core, namespace) == 2, "the second replica Ready")
        load.join(300)
        assert not load.is_alive(), "the benchmark did not end within 300 s"
        run = outcome["run"]
        assert run.returncode == 0, run.output[-4000:]
        with open(tmp_path / "results" / "scaling.json") as handle:
            level = json.load(handle)["levels"][0]
        log(
            "load: %d requests ok, %d failed, TTFT p50 %.0f ms p99 %.0f ms"
            % (level["succeeded"], level["failed"], level["ttft_ms_p50"], level["ttft_ms_p99"])
        )
        assert level["failed"] == 0 and level["succeeded"] >= LOAD["concurrency"]
        drained = time.monotonic()
        standin.wait_ready(
            core, namespace, lambda: queue_depth(keda, namespace) == 0, "the queue gauge back at 0", timeout=60
        )
        deadline = drained + SCALE_DOWN_WINDOW_S + 90
        while time.monotonic() < deadline and replicas(apps, namespace) > 1:
            time.sleep(1)
        shrunk = time.monotonic()
        assert replicas(apps, namespace) == 1, "still 2 replicas %.0fs after the load ended" % (shrunk - drained)
        # The HPA recommended 2 when it scaled up; it may go down only after a whole window without such a
        # recommendation, so never sooner than the window after the scale-up.
        assert shrunk - (started + grown) >= SCALE_DOWN_WINDOW_S, (grown, shrunk - started)
        log(
            "back to 1 replica %.1fs after the load ended, %.1fs after the scale-up (window %ds)"
            % (shrunk - drained, shrunk - started - grown, SCALE_DOWN_WINDOW_S)
        )
    finally:
        targets.stop()
        delete_server(api_client, core, namespace, scaled_object)


def ready_pods(core, namespace):
    pods = core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/name=%s" % NAME).items
    return sum(1 for pod in pods if pod.metadata.deletion_timestamp is None and standin.ready(pod))


def metric_read(api_client, namespace, hpa_name):
    """KEDA's HPA has a current value for its external metric (the adapter answered through the aggregator)."""
    try:
        status = client.AutoscalingV2Api(api_client).read_namespaced_horizontal_pod_autoscaler(hpa_name, namespace)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    current = status.status.current_metrics or []
    return any(m.external and m.external.current for m in current)


def delete_server(api_client, core, namespace, scaled_object):
    dyn = dynamic.DynamicClient(api_client)
    try:
        dyn.resources.get(api_version=scaled_object["apiVersion"], kind="ScaledObject").delete(
            name=scaled_object["metadata"]["name"], namespace=namespace
        )
    except ApiException as error:
        if error.status != 404:
            raise
    client.AppsV1Api(api_client).delete_namespaced_deployment(NAME, namespace, grace_period_seconds=0)
    for pod in core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/name=%s" % NAME).items:
        try:
            core.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)
        except ApiException as error:
            if error.status != 404:
                raise
