"""Autoscaling, routing and the benchmark against the test bed (docs/autoscaling.md).

- Every object serve.yml renders with autoscaling (prometheus-adapter: an autoscaling/v2 HPA) and routing on goes
  through `kubectl apply --server-side --dry-run=server` against the bed's kube-apiserver, which carries the
  InferencePool/InferenceObjective CRDs of ../shared/crds; the Gateway API kinds and KEDA's ScaledObject have no
  CRD on the bed (it may not install cluster-wide CRDs): the test checks they are indeed not served, and
  test_day_two_render.py validates them offline against the pinned upstream CRDs.
- The HPA is then created for real with the LeaderWorkerSet it scales (its pods pinned to no node, so they stay
  Pending and hold no GPU): the real HPA controller raises the LWS to autoscaling_min_replicas groups through
  the scale subresource, which shows the scaler points at the group count. The scaling loop driven by the queue
  metric, with the real KEDA and Prometheus, is test_day_two_scaling_live.py (it removes KEDA's CRDs after).
- playbooks/benchmark.yml sweeps concurrency 1, 2, 4 against the engine stand-in group on the real nodes (real
  kubelets, containerd, CNI, kube-proxy NodePort; the stand-in streams SSE like SGLang) and its results file is
  read back.
"""

import copy
import glob
import json
import os
import shutil
import subprocess
import time

import pytest
import test_engine_standin_live as standin
import yaml
from kubernetes import client, dynamic
from render_helpers import run_render
from standin_support import PLAN
from testbed_support import KUBECONFIG, ROOT

KUBECTL = os.environ.get("TESTBED_KUBECTL") or os.path.join(ROOT, ".build", "testbed", "bin", "kubectl")
if not os.path.exists(KUBECTL):
    KUBECTL = shutil.which("kubectl") or KUBECTL
# Kinds the render holds that have no CRD on the bed (validated offline in test_day_two_render.py).
NOT_ON_THE_BED = {"Gateway", "HTTPRoute", "ScaledObject", "DestinationRule"}
NOWHERE = {"llmops.io/autoscaling-test-no-node": "true"}
STANDIN_NAME = standin.NAME
STANDIN_PLAN = PLAN
# The stand-in test's fixtures (its real nodes, its model folder, its rendered group), used here by name.
real_nodes = standin.real_nodes
host_models = standin.host_models
rendered = standin.rendered


def log(message):
    print("[day-two-live] %s" % message, flush=True)


def kubectl(*args, stdin=None, timeout=60):
    return subprocess.run(
        [KUBECTL, "--kubeconfig", KUBECONFIG] + list(args),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def day_two(api_client, namespace, tmp_path_factory):
    """serve.yml rendered for the LWS stand-in plan with autoscaling (HPA, min 2 groups) and routing on."""
    folder = str(tmp_path_factory.mktemp("day-two"))
    settings = {
        "llmops_namespace": namespace,
        "llmops_model_id": "llmops/tiny-standin",
        "llmops_served_model_name": "tiny-scaled",
        "llmops_accelerators_per_node": 1,
        "serving_plan_override": STANDIN_PLAN,
        "model_cache_storage": "host_path",
        "model_cache_stage_nodes": ["gpu-a800-0", "gpu-a800-1"],
        "model_cache_model_gib": 1,
        "inference_server_node_selector": NOWHERE,
        "inference_server_rdma_resources": {},
        "inference_server_cpu": "1",
        "inference_server_memory": "2Gi",
        "inference_server_shm_gib": 1,
        "autoscaling_enabled": True,
        "autoscaling_provider": "prometheus-adapter",
        "autoscaling_accelerator_nodes": 4,
        "autoscaling_min_replicas": 2,
        "autoscaling_metrics": [{"signal": "queue", "target": 2}, {"signal": "ttft", "target": 4}],
        "inference_routing_enabled": True,
    }
    with open(os.path.join(folder, "vars.json"), "w") as handle:
        json.dump(settings, handle)
    out = os.path.join(folder, "out")
    result = run_render("testbed", out, "-e", "@" + os.path.join(folder, "vars.json"), plan=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    objects = []
    for path in sorted(glob.glob(os.path.join(out, "*", "*.yaml"))):
        with open(path) as handle:
            objects += [doc for doc in yaml.safe_load_all(handle) if doc]
    return objects


def served_kinds():
    listed = kubectl("api-resources", "--no-headers", "-o", "name")
    assert listed.returncode == 0, listed.stderr
    return listed.stdout


def test_every_rendered_object_passes_a_server_side_dry_run(day_two):
    kinds = {obj["kind"] for obj in day_two}
    assert {"HorizontalPodAutoscaler", "InferencePool", "InferenceObjective", "HTTPRoute", "Gateway"} <= kinds
    resources = served_kinds()
    # the kinds left out here really have no CRD on the bed (else they would be dry-run too)
    assert "httproutes.gateway.networking.k8s.io" not in resources and "scaledobjects.keda.sh" not in resources
    eligible = [obj for obj in day_two if obj["kind"] not in NOT_ON_THE_BED and obj["kind"] != "Namespace"]
    started = time.monotonic()
    dry_run = kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "--field-manager",
        "llmops-inference",
        "-f",
        "-",
        stdin=yaml.safe_dump_all(eligible),
    )
    assert dry_run.returncode == 0, dry_run.stderr
    assert dry_run.stdout.count("(server dry run)") == len(eligible), dry_run.stdout
    log(
        "server dry run of %d objects (%s) in %.1fs"
        % (len(eligible), ", ".join(sorted({o["kind"] for o in eligible})), time.monotonic() - started)
    )


def test_the_hpa_drives_the_leaderworkerset_group_count(api_client, namespace, day_two):
    lws = next(o for o in day_two if o["kind"] == "LeaderWorkerSet")
    hpa = next(o for o in day_two if o["kind"] == "HorizontalPodAutoscaler")
    assert "replicas" not in lws["spec"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "name": lws["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 2)
    dyn = dynamic.DynamicClient(api_client)
    lws_api = dyn.resources.get(api_version="leaderworkerset.x-k8s.io/v1", kind="LeaderWorkerSet")
    lws_api.create(body=lws, namespace=namespace)
    started = time.monotonic()
    dyn.resources.get(api_version="autoscaling/v2", kind="HorizontalPodAutoscaler").create(
        body=hpa, namespace=namespace
    )
    autoscaling = client.AutoscalingV2Api(api_client)
    name = hpa["metadata"]["name"]
    try:
        deadline = time.monotonic() + 60
        groups = None
        while time.monotonic() < deadline:
            groups = lws_api.get(name=lws["metadata"]["name"], namespace=namespace).spec.replicas
            status = autoscaling.read_namespaced_horizontal_pod_autoscaler(name, namespace).status
            if groups == 2 and status.desired_replicas == 2:
                break
            time.sleep(1)
        assert groups == 2, "the HPA did not raise the LWS to its 2 minimum groups within 60 s (at %s)" % groups
        log("the HPA raised LWS %s from 1 to 2 groups in %.1fs" % (lws["metadata"]["name"], time.monotonic() - started))
        # Without a metrics API the HPA says why it cannot scale on the queue (no prometheus-adapter on the bed).
        conditions = {
            c.type: c
            for c in autoscaling.read_namespaced_horizontal_pod_autoscaler(name, namespace).status.conditions or []
        }
        log("HPA conditions: %s" % {k: (c.status, c.reason) for k, c in conditions.items()})
        assert conditions["AbleToScale"].status == "True"
    finally:
        dyn.resources.get(api_version="autoscaling/v2", kind="HorizontalPodAutoscaler").delete(
            name=name, namespace=namespace
        )
        lws_api.delete(name=lws["metadata"]["name"], namespace=namespace)


def test_apply_mode_counts_the_bed_nodes_and_refuses_keda_without_its_crd(api_client, namespace, ansible_playbook):
    """autoscaling in apply mode: the Nodes are read from the API and counted by the engine pods' placement: the
    node affinity to the nodes the host_path cache is staged on, the A800 product label, the real nodes' taint
    (tolerated here). Staged on all 4 nodes they all count: 2 replicas of the 2-node plan. The HPA is applied; the
    keda provider is refused because the bed has no ScaledObject CRD."""
    settings = {
        "llmops_kubeconfig": KUBECONFIG,
        "llmops_namespace": namespace,
        "llmops_model_id": "llmops/tiny-standin",
        "llmops_served_model_name": "tiny-counted",
        "llmops_accelerators_per_node": 1,
        "serving_plan_override": STANDIN_PLAN,
        "model_cache_stage_nodes": ["gpu-a800-0", "gpu-a800-1", "llmops-real-0", "llmops-real-1"],
        "model_cache_model_gib": 1,
        "inference_server_rdma_resources": {},
        "inference_server_tolerations": [{"key": "llmops.io/real-node", "operator": "Exists", "effect": "NoSchedule"}],
        "autoscaling_enabled": True,
        "autoscaling_provider": "prometheus-adapter",
    }
    started = time.monotonic()
    applied = ansible_playbook(
        "tests/integration/playbooks/autoscaling_apply.yml", "-i", "inventories/testbed", "-e", json.dumps(settings)
    )
    assert applied.returncode == 0, applied.output[-4000:]
    said = " ".join(applied.output.split())
    assert "(the cluster holds 2: 4 accelerator node(s), Nodes with allocatable nvidia.com/gpu)" in said, said[-3000:]
    hpa = client.AutoscalingV2Api(api_client).read_namespaced_horizontal_pod_autoscaler(
        "tiny-counted-autoscaler", namespace
    )
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (1, 2)
    assert hpa.spec.scale_target_ref.kind == "LeaderWorkerSet" and hpa.spec.scale_target_ref.name == "tiny-counted"
    log("apply mode: 4 nodes counted, HPA applied, in %.1fs" % (time.monotonic() - started))
    refused = ansible_playbook(
        "tests/integration/playbooks/autoscaling_apply.yml",
        "-i",
        "inventories/testbed",
        "-e",
        json.dumps(dict(settings, autoscaling_provider="keda", llmops_served_model_name="tiny-keda")),
    )
    assert refused.returncode != 0
    assert "the cluster has no scaledobjects.keda.sh CRD" in " ".join(refused.output.split()), refused.output[-3000:]


def without_rdma(objects):
    """The stand-in group without its rdma/ib share: a benchmark needs none, and each real node has one, which
    the other stand-in tests hold while they run."""
    objects = copy.deepcopy(objects)
    for obj in objects:
        if obj["kind"] != "LeaderWorkerSet":
            continue
        template = obj["spec"]["leaderWorkerTemplate"]
        for pod in (template["leaderTemplate"], template["workerTemplate"]):
            for container in pod["spec"]["containers"]:
                for amounts in (container.get("resources") or {}).values():
                    amounts.pop("rdma/ib", None)
    return objects


def test_benchmark_playbook_sweeps_the_standin_group(
    api_client,
    core,
    namespace,
    rendered,
    real_nodes,
    ansible_playbook,
    tmp_path,
):
    started = time.monotonic()
    standin.apply(api_client, namespace, without_rdma(rendered))
    try:
        standin.wait_ready(core, namespace, lambda: standin.leader_ready(core, namespace), "the stand-in leader Ready")
        log("stand-in group Ready in %.1fs" % (time.monotonic() - started))
        settings = {
            "llmops_kubeconfig": KUBECONFIG,
            "llmops_namespace": namespace,
            "llmops_served_model_name": STANDIN_NAME,
            "inference_benchmark_base_url": standin.node_port_url(core, namespace, real_nodes),
            "inference_benchmark_api_key_secret": "%s-api-key" % STANDIN_NAME,
            "inference_benchmark_concurrency": [1, 2, 4],
            "inference_benchmark_duration_s": 3,
            "inference_benchmark_warmup_requests": 1,
            "inference_benchmark_max_tokens": 24,
            "inference_benchmark_output_dir": str(tmp_path / "results"),
            "inference_benchmark_name": "standin",
        }
        swept = time.monotonic()
        result = ansible_playbook("playbooks/benchmark.yml", "-i", "inventories/testbed", "-e", json.dumps(settings))
        log("benchmark.yml ran in %.1fs" % (time.monotonic() - swept))
        assert result.returncode == 0, result.output[-4000:]
        assert standin.api_key(core, namespace) not in result.output
        with open(tmp_path / "results" / "standin.json") as handle:
            saved = json.load(handle)
        assert (tmp_path / "results" / "standin.csv").exists() and (tmp_path / "results" / "standin.svg").exists()
        rows = saved["levels"]
        assert [row["concurrency"] for row in rows] == [1, 2, 4]
        for row in rows:
            log(
                "c=%d: %d ok, %.1f req/s, %.1f tok/s, TTFT p50 %.1f ms p99 %.1f ms, TPOT p50 %s ms, E2E p50 %.1f ms"
                % (
                    row["concurrency"],
                    row["succeeded"],
                    row["requests_per_s"],
                    row["output_tokens_per_s"],
                    row["ttft_ms_p50"],
                    row["ttft_ms_p99"],
                    row["tpot_ms_p50"],
                    row["e2e_ms_p50"],
                )
            )
            assert row["failed"] == 0 and row["succeeded"] >= 2, row
            # the stand-in answers a capped number of words: every request streams the same token count
            assert row["output_tokens"] % row["succeeded"] == 0 and 2 <= row["output_tokens"] // row["succeeded"] <= 24
            assert 0 < row["ttft_ms_p50"] <= row["ttft_ms_p99"] <= row["e2e_ms_p99"] < 3000, row
            assert row["ttft_ms_p50"] <= row["e2e_ms_p50"], row
            # throughput is what the requests add up to over the level's wall time
            assert row["output_tokens_per_s"] == pytest.approx(row["output_tokens"] / row["duration_s"], rel=0.01)
            assert row["duration_s"] >= 3
        assert "standin.json" in result.output
    finally:
        standin.delete_group(api_client, core, namespace)
