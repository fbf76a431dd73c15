"""Day-two logic (module_utils/lifecycle.py): the status table, the upgrade's surge sizing, the uninstall order.

The workloads are the ones our builder makes for the example inventories (serving_cases), the nodes the test
bed's simulated A800 node definitions (testbed/nodes), the metrics the engine stand-in serves in the engines'
names (testbed/standin). Pods and Helm release Secrets are built here in the shape the API returns them (a Helm
release Secret as Helm's storage driver writes it: JSON, gzip, base64, and the API's base64 on top)."""

import base64
import copy
import gzip
import importlib.util
import json
import os
import re

import pytest
import yaml
from serving_cases import ROOT, case

from ansible_collections.llmops.inference.plugins.module_utils import lifecycle, serving
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError


def built(inventory, **config_changes):
    config, plan, cache = case(inventory)
    config.update(config_changes)
    objects = serving.server_manifests(config, plan, cache["layout"])
    return plan, next(o for o in objects if o["kind"] in ("LeaderWorkerSet", "Deployment", "StatefulSet"))


def bed_node(name, gpus=8, ready=True, **labels):
    with open(os.path.join(ROOT, "testbed", "nodes", "gpu-a800-0.yaml")) as handle:
        node = yaml.safe_load(handle)
    node["metadata"]["name"] = name
    node["metadata"]["labels"]["kubernetes.io/hostname"] = name
    node["metadata"]["labels"].update(labels)
    node["status"]["allocatable"]["nvidia.com/gpu"] = str(gpus)
    node["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    return node


def pod_of(workload, name, node, role="worker", ready=True, image=None, restarts=0):
    """A pod as the API returns it for a template of ``workload`` bound to ``node``."""
    templates = dict(lifecycle.pod_templates(workload))
    template = copy.deepcopy(templates.get(role) or templates["single"])
    spec = template["spec"]
    spec["nodeName"] = node
    if image:
        spec["containers"][0]["image"] = image
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "llmops", "labels": template["metadata"]["labels"]},
        "spec": spec,
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [{"name": "engine", "restartCount": restarts, "ready": ready}],
        },
    }


def standin_metrics(engine):
    path = os.path.join(ROOT, "testbed", "standin", "llmops_standin", "server.py")
    spec = importlib.util.spec_from_file_location("standin_server", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    state = module.State(engine, "0.5.23", "tiny", "/models/tiny", [], 2, 2)
    state.running, state.prompt_tokens, state.generation_tokens = 3, 120, 48
    return state.metrics()


# --- quantities and argv -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value", [("250m", 0.25), ("2Gi", 2**31), ("8", 8.0), ("1k", 1000.0), ("1.5", 1.5), (4, 4.0), ("1e3", 1000.0)]
)
def test_quantities(text, value):
    assert lifecycle.quantity(text) == value


@pytest.mark.parametrize("text", ["", "lots", "2GB", True, None])
def test_bad_quantities_are_refused(text):
    with pytest.raises(LlmopsError, match="quantity"):
        lifecycle.quantity(text)


def test_parallelism_from_the_builders_sglang_argv_behind_its_start_script():
    plan, lws = built("deepseek-r1-2x8-a800-sglang")
    container = lifecycle.engine_container(lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"])
    argv = lifecycle._container_argv(container)
    found = lifecycle.parallelism_from_argv(argv)
    assert found["tensor_parallel"] == plan["tensor_parallel"] == 16
    assert found["pipeline_parallel"] == 1
    assert found["nnodes"] == 2


def test_parallelism_from_vllm_flags_and_equals_form():
    argv = ["vllm", "serve", "/models/x", "--tensor-parallel-size", "8", "--pipeline-parallel-size=2"]
    assert lifecycle.parallelism_from_argv(argv) == {
        "tensor_parallel": 8,
        "pipeline_parallel": 2,
        "data_parallel": 1,
        "expert_parallel": 1,
        "nnodes": 1,
    }


# --- status ------------------------------------------------------------------------------------------


def test_summary_of_a_running_group_and_the_plan_matches():
    plan, lws = built("deepseek-r1-2x8-a800-sglang")
    live = copy.deepcopy(lws)
    live["status"] = {"readyReplicas": 1, "updatedReplicas": 1, "replicas": 1}
    pods = [
        pod_of(lws, "deepseek-r1-0", "gpu-a800-0", role="leader"),
        pod_of(lws, "deepseek-r1-0-1", "gpu-a800-1", restarts=2),
    ]
    summary = lifecycle.workload_summary(live, pods, "nvidia.com/gpu")
    assert summary["engine"] == "sglang" and summary["engine_version"] == "0.5.6.post2"
    assert (summary["pods_ready"], summary["pods_total"], summary["restarts"]) == (2, 2, 2)
    assert summary["accelerators_per_pod"] == 8 and summary["group_size"] == 2
    checks = lifecycle.plan_vs_running(plan, summary, 1)
    assert all(check["ok"] for check in checks), checks
    assert {c["what"] for c in checks} >= {
        "nodes per group",
        "accelerators per pod",
        "tensor parallel",
        "engine --nnodes",
    }
    report = lifecycle.status_report([], summary, plan, 1, {"queried": False, "reason": "no URL"})
    assert report["healthy"], report["problems"]
    text = "\n".join(report["lines"])
    assert "LeaderWorkerSet deepseek-r1" in text and "sglang 0.5.6.post2" in text
    assert "1/1 groups ready, pods 2/2 Ready, 2 restarts" in text
    assert "plan 16, runs 16" in text


def test_a_pod_spec_that_drifted_from_the_plan_is_a_problem():
    plan, lws = built("deepseek-r1-2x8-a800-sglang")
    drifted = copy.deepcopy(lws)
    worker = drifted["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]
    worker["resources"]["limits"]["nvidia.com/gpu"] = 4
    drifted["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]["resources"]["limits"][
        "nvidia.com/gpu"
    ] = 4
    drifted["status"] = {"readyReplicas": 1}
    summary = lifecycle.workload_summary(drifted, [], "")
    report = lifecycle.status_report([], summary, plan, 2)
    assert not report["healthy"]
    assert any("accelerators per pod: the plan says 8, the pod spec 4" in p for p in report["problems"])
    assert any("replicas (groups): the plan says 2, the pod spec 1" in p for p in report["problems"])


def test_no_workload_and_a_silent_endpoint_are_problems():
    report = lifecycle.status_report(
        [], lifecycle.workload_summary({}), {}, 1, {"queried": True, "ok": False, "error": "refused"}
    )
    assert not report["healthy"]
    assert "no serving workload" in report["problems"]
    assert any("does not answer: refused" in p for p in report["problems"])


def test_key_metrics_from_the_standin_in_both_engines_names():
    sglang = dict(lifecycle.key_metrics(standin_metrics("sglang"), "sglang"))
    assert sglang["requests running"] == 3 and sglang["requests waiting"] == 0
    assert sglang["prompt tokens total"] == 120 and sglang["generation tokens total"] == 48
    vllm = dict(lifecycle.key_metrics(standin_metrics("vllm"), "vllm"))
    assert vllm["requests running"] == 3 and "KV cache usage" in vllm
    plan, lws = built("deepseek-r1-2x8-a800-sglang")
    report = lifecycle.status_report([], lifecycle.workload_summary(lws), plan, None, {}, standin_metrics("sglang"))
    assert any("metric: requests running" in line and " 3" in line for line in report["lines"])


def test_metrics_parser_sums_label_sets_and_skips_comments_and_nan():
    text = '# HELP x\nx{a="1"} 2\nx{a="2"} 3.5\ny NaN\nz 1 1700000000\nnot a sample\n'
    assert lifecycle.parse_metrics(text) == {"x": 5.5, "z": 1.0}


def helm_secret(name, revision, status="deployed", app_version="v1.15.1", chart_version="1.15.1"):
    release = {
        "name": name,
        "version": revision,
        "chart": {"metadata": {"name": name, "version": chart_version, "appVersion": app_version}},
    }
    stored = base64.b64encode(gzip.compress(json.dumps(release).encode()))
    return {
        "metadata": {
            "name": "sh.helm.release.v1.%s.v%d" % (name, revision),
            "labels": {"owner": "helm", "name": name, "version": str(revision), "status": status},
        },
        "data": {"release": base64.b64encode(stored).decode()},
    }


def deployment(name, ready, want, release=None):
    labels = {"app.kubernetes.io/instance": release} if release else {}
    return {
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": want, "template": {"spec": {"containers": [{"name": "c", "image": "reg/x:v9"}]}}},
        "status": {"readyReplicas": ready},
    }


def test_addon_row_reads_the_latest_helm_revision_and_the_release_workloads():
    secrets = [helm_secret("volcano", 1, "superseded", "v1.9.0", "1.9.0"), helm_secret("volcano", 2)]
    workloads = [
        deployment("volcano-scheduler", 1, 1, "volcano"),
        deployment("volcano-controllers", 1, 1, "volcano"),
        deployment("someone-else", 0, 1, "other"),
    ]
    row = lifecycle.addon_row("volcano", "v1.15.1", secrets, workloads, "volcano")
    assert row["version"] == "v1.15.1" and row["ok"] and row["health"] == "2/2 ready"
    assert "helm 1.15.1 rev 2 deployed" in row["detail"] and "someone-else" not in row["detail"]
    assert lifecycle.addon_change(row) == "volcano: runs v1.15.1, pinned v1.15.1: unchanged"
    older = lifecycle.addon_row(
        "volcano", "v1.15.1", [helm_secret("volcano", 1, "deployed", "v1.9.0", "1.9.0")], workloads, "volcano"
    )
    assert "upgraded" in lifecycle.addon_change(older)
    report = lifecycle.status_report([older], {}, {}, None)
    assert any("runs v1.9.0, the inventory pins v1.15.1" in p for p in report["problems"])
    failed = lifecycle.addon_row("volcano", "v1.15.1", [helm_secret("volcano", 3, "failed")], workloads, "volcano")
    assert not failed["ok"] and failed["health"] == "2/2 ready, Helm release failed"


def test_addon_row_of_a_missing_or_unready_addon():
    missing = lifecycle.addon_row("kuberay", "v1.7.0", [], [], "kuberay-operator")
    assert missing["health"] == "not installed" and not missing["ok"]
    assert lifecycle.addon_change(missing) == "kuberay: runs -, pinned v1.7.0: installed at v1.7.0"
    lws = lifecycle.addon_row("leaderworkerset", "", [], [deployment("lws-controller-manager", 0, 1, "lws")], "lws")
    assert lws["version"] == "v9" and lws["health"] == "0/1 ready" and not lws["ok"]
    # installed without Helm (no release label): the controller named <release>-*
    plain = lifecycle.addon_row("leaderworkerset", "", [], [deployment("lws-controller-manager", 1, 1)], "lws")
    assert plain["ok"] and plain["health"] == "1/1 ready"
    # shown for a multi-node group though the inventory does not manage it, and run outside the cluster: not judged
    elsewhere = lifecycle.addon_row("leaderworkerset", "v0.10.0", [], [], "lws", managed=False)
    assert elsewhere["ok"] is None and elsewhere["health"] == "not found"
    assert "not managed by this inventory" in elsewhere["detail"]
    assert lifecycle.status_report([elsewhere], {}, {}, None)["problems"] == ["no serving workload"]


def test_a_corrupt_helm_secret_is_refused_with_its_name():
    secret = helm_secret("lws", 1)
    secret["data"]["release"] = base64.b64encode(b"not base64 !!").decode()
    with pytest.raises(LlmopsError, match="lws cannot be read"):
        lifecycle.helm_release([secret])


# --- upgrade -----------------------------------------------------------------------------------------


def as_live(workload):
    """What the API returns for an applied workload: defaults filled in, status, metadata."""
    live = copy.deepcopy(workload)
    for _role, template in lifecycle.pod_templates(live):
        for container in template["spec"]["containers"]:
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container["resources"] = json.loads(json.dumps(container.get("resources", {})))
            for part in container["resources"].values():
                for key, value in part.items():
                    part[key] = str(value)
        template["spec"].setdefault("dnsPolicy", "ClusterFirst")
    live["metadata"].update(uid="u", generation=3, resourceVersion="7")
    live["status"] = {"replicas": 1, "readyReplicas": 1, "updatedReplicas": 1}
    return live


def test_an_unchanged_workload_rolls_nothing_and_keeps_the_running_rollout():
    _plan, lws = built("deepseek-r1-2x8-a800-sglang")
    live = as_live(lws)
    live["spec"]["rolloutStrategy"]["rollingUpdateConfiguration"] = {"maxSurge": 1, "maxUnavailable": 0}
    result = lifecycle.upgrade_plan(live, lws, [], [], 1)
    assert result["changes"] == [] and not result["rolls"]
    assert (result["max_surge"], result["max_unavailable"]) == (1, 0)


def test_a_new_image_is_a_change_named_per_role():
    _plan, lws = built("deepseek-r1-2x8-a800-sglang")
    _plan, newer = built("deepseek-r1-2x8-a800-sglang", image="docker.io/lmsysorg/sglang:v0.5.23")
    changes = lifecycle.workload_changes(as_live(lws), newer)
    assert (
        "leader engine: image docker.io/lmsysorg/sglang:v0.5.6.post2-cu129 -> docker.io/lmsysorg/sglang:v0.5.23"
        in changes
    )
    assert any(change.startswith("worker engine: image") for change in changes)
    assert lifecycle.workload_changes({}, newer) == ["LeaderWorkerSet deepseek-r1 does not exist yet: it is created"]


def four_bed_nodes():
    return [bed_node("gpu-a800-%d" % i) for i in range(4)]


def running_group(lws, nodes=("gpu-a800-0", "gpu-a800-1")):
    return [pod_of(lws, "deepseek-r1-0", nodes[0], role="leader"), pod_of(lws, "deepseek-r1-0-1", nodes[1])]


def test_spare_capacity_counts_whole_groups_beside_the_running_one():
    _plan, lws = built("deepseek-r1-2x8-a800-sglang")
    spare = lifecycle.spare_capacity(four_bed_nodes(), running_group(lws), lws)
    assert (spare["groups"], spare["slots"], spare["group_size"]) == (1, 2, 2)
    assert "gpu-a800-0: room for 0 pod(s) (runs a pod of this server: one engine pod per node)" in spare["nodes"]
    assert spare["per_pod"]["nvidia.com/gpu"] == 8


def test_spare_capacity_sees_other_pods_cordons_taints_and_readiness():
    _plan, lws = built("deepseek-r1-2x8-a800-sglang")
    nodes = four_bed_nodes() + [bed_node("gpu-a800-4", ready=False)]
    nodes[2]["spec"]["unschedulable"] = True
    nodes[3]["spec"]["taints"] = [{"key": "maintenance", "value": "yes", "effect": "NoSchedule"}]
    assert lifecycle.spare_capacity(nodes, running_group(lws), lws)["groups"] == 0
    # another tenant's 1-GPU pod on an otherwise free node leaves 7 of the 8 GPUs a pod needs
    nodes = four_bed_nodes()
    other = {
        "metadata": {"name": "other", "labels": {}},
        "spec": {"nodeName": "gpu-a800-3", "containers": [{"resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
        "status": {"phase": "Running"},
    }
    spare = lifecycle.spare_capacity(nodes, running_group(lws) + [other], lws)
    assert spare["groups"] == 0
    assert any("gpu-a800-3: room for 0 pod(s) (nvidia.com/gpu 7 free of 8)" in line for line in spare["nodes"])
    # a finished pod holds nothing
    other["status"]["phase"] = "Succeeded"
    assert lifecycle.spare_capacity(nodes, running_group(lws) + [other], lws)["groups"] == 1


def test_spare_capacity_follows_the_node_selector():
    _plan, lws = built("deepseek-r1-2x8-a800-sglang", node_selector={"pool": "serving"})
    nodes = four_bed_nodes()
    nodes[2]["metadata"]["labels"]["pool"] = "serving"
    assert lifecycle.spare_capacity(nodes, running_group(lws), lws)["groups"] == 0
    nodes[3]["metadata"]["labels"]["pool"] = "serving"
    assert lifecycle.spare_capacity(nodes, running_group(lws), lws)["groups"] == 1


def test_surge_auto_takes_what_fits_and_a_bigger_ask_is_refused_with_the_numbers():
    _plan, lws = built("deepseek-r1-2x8-a800-sglang")
    _plan, newer = built("deepseek-r1-2x8-a800-sglang", image="docker.io/lmsysorg/sglang:v0.5.23")
    live = as_live(lws)
    result = lifecycle.upgrade_plan(live, newer, four_bed_nodes(), running_group(lws), 1)
    assert result["rolls"] and (result["max_surge"], result["max_unavailable"]) == (1, 0)
    assert any("maxSurge 1, maxUnavailable 0" in line for line in result["lines"])
    refused = lifecycle.upgrade_plan(live, newer, four_bed_nodes(), running_group(lws), 2, max_surge=2)["refused"]
    assert re.search(r"a surge of 2 group\(s\) needs room for 4 more pod\(s\).*spare capacity for 1", refused), refused
    assert "memory 1000Gi" in refused


def test_no_room_for_a_surge_refuses_one_replica_unless_downtime_is_allowed():
    _plan, lws = built("deepseek-r1-2x8-a800-sglang")
    _plan, newer = built("deepseek-r1-2x8-a800-sglang", image="docker.io/lmsysorg/sglang:v0.5.23")
    nodes = four_bed_nodes()[:2]
    refused = lifecycle.upgrade_plan(as_live(lws), newer, nodes, running_group(lws), 1)["refused"]
    assert re.search("cannot hold a surge group.*lifecycle_upgrade_allow_downtime", refused), refused
    result = lifecycle.upgrade_plan(as_live(lws), newer, nodes, running_group(lws), 1, allow_downtime=True)
    assert result["refused"] == ""
    assert (result["max_surge"], result["max_unavailable"]) == (0, 1)
    assert any("the endpoint is down until the new group is Ready" in line for line in result["lines"])
    # two replicas: one keeps serving while the other is replaced
    result = lifecycle.surge_plan(["x"], 2, {"groups": 0}, "auto")
    assert (result["max_surge"], result["max_unavailable"]) == (0, 1)
    with pytest.raises(LlmopsError, match="auto or a number"):
        lifecycle.surge_plan(["x"], 2, {"groups": 0}, "lots")


def test_the_builder_writes_the_planned_rolling_update():
    _plan, lws = built("deepseek-r1-2x8-a800-sglang", max_surge=1)
    assert lws["spec"]["rolloutStrategy"]["rollingUpdateConfiguration"] == {"maxSurge": 1, "maxUnavailable": 0}
    _plan, lws = built("deepseek-r1-2x8-a800-sglang")
    assert lws["spec"]["rolloutStrategy"]["rollingUpdateConfiguration"] == {"maxSurge": 0, "maxUnavailable": 1}
    _plan, deployment_ = built("distill-1gpu", max_surge=1, max_unavailable="None")
    assert deployment_["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    _plan, deployment_ = built("distill-1gpu")
    assert deployment_["spec"]["strategy"] == {"type": "Recreate"}
    with pytest.raises(LlmopsError, match="not both 0"):
        built("deepseek-r1-2x8-a800-sglang", max_surge=0, max_unavailable=0)


def test_rollout_state_waits_for_the_new_image_and_the_counts():
    _plan, lws = built("deepseek-r1-2x8-a800-sglang")
    live = as_live(lws)
    image = "docker.io/lmsysorg/sglang:v0.5.6.post2-cu129"
    assert lifecycle.rollout_state(live, running_group(lws), image)["done"]
    stale = running_group(lws)
    stale[1]["spec"]["containers"][0]["image"] = "old:1"
    state = lifecycle.rollout_state(live, stale, image)
    assert not state["done"] and "deepseek-r1-0-1" in state["message"]
    stale[1]["metadata"]["deletionTimestamp"] = "2026-11-30T00:00:00Z"
    assert lifecycle.rollout_state(live, stale, image)["done"]
    live["status"]["updatedReplicas"] = 0
    assert not lifecycle.rollout_state(live, [], "")["done"]
    assert not lifecycle.rollout_state({}, [], "")["done"]


# --- uninstall ---------------------------------------------------------------------------------------


def test_uninstall_order_and_the_model_cache_kept():
    config, plan, cache = case("deepseek-r1-2x8-a800-sglang")
    objects = cache["objects"] + serving.server_manifests(config, plan, cache["layout"])
    objects.append(serving.api_key_secret("deepseek-r1-api-key", "deepseek", "api-key", "k", "deepseek-r1"))
    objects.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "deepseek-r1-s3-credentials"}})
    objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "foreign", "labels": {}}})
    owned = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "deepseek-r1",
            "labels": {lifecycle.NAME_LABEL: "deepseek-r1", lifecycle.MANAGED_BY_LABEL: "llmops.inference"},
            "ownerReferences": [{"kind": "LeaderWorkerSet", "name": "deepseek-r1", "controller": True}],
        },
    }
    result = lifecycle.uninstall_plan(objects + [owned], "deepseek-r1", False, ["deepseek-r1-s3-credentials"])
    kinds = [ref["kind"] for ref in result["delete"]]
    assert kinds.index("LeaderWorkerSet") < kinds.index("PodGroup") < kinds.index("Secret")
    assert "Service" not in kinds  # the LWS's own headless Service goes with it
    names = {(ref["kind"], ref["metadata"]["name"]) for ref in result["delete"]}
    assert ("Secret", "deepseek-r1-api-key") in names and ("ConfigMap", "foreign") not in names
    kept = {(ref["kind"], ref["metadata"]["name"]) for ref in result["keep"]}
    assert ("Secret", "deepseek-r1-s3-credentials") in kept
    assert all(kind in ("ConfigMap", "Job", "PersistentVolumeClaim", "Secret") for kind, _name in kept), kept
    assert not any(ref["kind"] == "PersistentVolumeClaim" for ref in result["delete"])
    assert any(line.startswith("keep ") and "lifecycle_uninstall_model_cache" in line for line in result["lines"])
    data = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "deepseek-r1-webui", "labels": owned["metadata"]["labels"]},
    }
    result = lifecycle.uninstall_plan(objects + [data], "deepseek-r1", True, ["deepseek-r1-s3-credentials"])
    assert (
        "keep PersistentVolumeClaim/deepseek-r1-webui (a volume; lifecycle_uninstall_volumes: true removes it)"
        in result["lines"]
    )
    everything = lifecycle.uninstall_plan(objects, "deepseek-r1", True, ["deepseek-r1-s3-credentials"], True)
    assert everything["keep"] == [] and everything["delete"][-1]["kind"] in ("PersistentVolumeClaim", "Secret")
    assert lifecycle.uninstall_plan([], "deepseek-r1")["lines"] == ["nothing of deepseek-r1 is left to delete"]


def crd(name, release=None, namespace="lws-system", keep=False):
    annotations = {}
    if release:
        annotations.update({"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": namespace})
    if keep:
        annotations["helm.sh/resource-policy"] = "keep"
    return {"metadata": {"name": name, "annotations": annotations}}


def test_crds_a_release_would_delete_are_kept_while_used():
    crds = [
        crd("leaderworkersets.leaderworkerset.x-k8s.io", "lws"),
        crd("other.example.com", "other"),
        crd("fromcrdsdir.example.com"),
        crd("kept.example.com", "lws", keep=True),
    ]
    result = lifecycle.crds_to_keep(crds, "lws", "lws-system")
    assert result["keep"] == ["leaderworkersets.leaderworkerset.x-k8s.io"] and result["remove"] == []
    counts = {"leaderworkersets.leaderworkerset.x-k8s.io": 3}
    used = lifecycle.crds_to_keep(crds, "lws", "lws-system", counts, remove_unused=True)
    assert used["keep"] == ["leaderworkersets.leaderworkerset.x-k8s.io"]
    assert "3 custom resource(s) still use it" in " ".join(used["lines"])
    unused = lifecycle.crds_to_keep(crds, "lws", "lws-system", {}, remove_unused=True)
    assert unused["remove"] == ["leaderworkersets.leaderworkerset.x-k8s.io"] and unused["keep"] == []
