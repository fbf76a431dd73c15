"""Admission arithmetic (issue 13): the pods each object runs, their quota usage by the API server's rules, and
the shortfall against a ResourceQuota's free room. The objects are the serve stage's real builders' output for a
two-node plan (inference_server_manifests), not hand-written dicts, where the shape matters."""

from decimal import Decimal

import pytest

from ansible_collections.llmops.inference.plugins.module_utils import admission


def lws(replicas=1, size=2, gpus=8, memory="512Gi", leader=True):
    container = {"name": "engine", "resources": {"limits": {"nvidia.com/gpu": gpus, "memory": memory, "cpu": "32"}}}
    init = {"name": "wait", "resources": {"requests": {"cpu": "100m", "memory": "1Gi"}}}
    template = {"metadata": {"labels": {"app": "llm"}}, "spec": {"containers": [container], "initContainers": [init]}}
    group = {"size": size, "workerTemplate": template}
    if leader:
        group["leaderTemplate"] = template
    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": "deepseek-r1", "namespace": "llmops"},
        "spec": {"replicas": replicas, "leaderWorkerTemplate": group},
    }


def quota(hard, used=None, name="gpu-quota", **spec):
    body = {"metadata": {"name": name, "namespace": "llmops"}, "spec": dict(hard=hard, **spec)}
    if used is not None:
        body["status"] = {"hard": hard, "used": used}
    return body


@pytest.mark.parametrize(
    "value,expected",
    [("500m", Decimal("0.5")), ("64Gi", Decimal(64 * 2**30)), (8, Decimal(8)), ("1e3", Decimal(1000)), ("2k", 2000)],
)
def test_quantities_parse_as_the_api_server_reads_them(value, expected):
    assert admission.parse_quantity(value) == expected


@pytest.mark.parametrize("value", ["lots", "", None, True, "5 Gi", "1Gb"])
def test_a_bad_quantity_is_a_value_error(value):
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        admission.parse_quantity(value)


def test_a_leader_worker_set_runs_replicas_times_size_pods():
    found = admission.pod_templates([lws(replicas=3, size=2)])
    assert [(t["role"], t["pods"]) for t in found] == [("leader", 3), ("worker", 3)]
    found = admission.pod_templates([lws(replicas=2, size=4, leader=False)])
    assert [(t["role"], t["pods"]) for t in found] == [("pod", 8)]


def test_templates_of_other_kinds_and_the_default_namespace():
    objects = [
        {"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2, "template": {"spec": {}}}},
        {"kind": "Job", "metadata": {"name": "fill"}, "spec": {"template": {"spec": {}}}},
        {"kind": "Service", "metadata": {"name": "svc"}, "spec": {}},
        {"kind": "Deployment", "metadata": {"name": "scaled-to-zero"}, "spec": {"replicas": 0, "template": {}}},
        "not-an-object",
    ]
    found = admission.pod_templates(objects, "llmops")
    assert [(t["owner"], t["pods"], t["namespace"]) for t in found] == [
        ("Deployment/web", 2, "llmops"),
        ("Job/fill", 1, "llmops"),
    ]


def test_usage_follows_the_api_servers_rules():
    usage = admission.pod_usage(lws()["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"])
    # a missing request defaults to the limit; init containers run alone, so they count as a max, not a sum
    assert usage["requests.nvidia.com/gpu"] == 8
    assert usage["requests.memory"] == usage["memory"] == 512 * 2**30
    assert usage["requests.cpu"] == usage["cpu"] == 32
    assert usage["limits.memory"] == 512 * 2**30
    assert usage["pods"] == 1
    big_init = {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}
    big_init["initContainers"] = [{"resources": {"requests": {"cpu": "4"}}}]
    assert admission.pod_usage(big_init)["requests.cpu"] == 4


def test_a_quota_that_admits_one_pod_but_not_the_group_is_a_problem():
    needed = admission.usage_of(admission.pod_templates([lws(replicas=1, size=2)]))["llmops"]
    assert needed["requests.nvidia.com/gpu"] == 16 and needed["pods"] == 2
    problems, notes = admission.quota_problems([quota({"requests.nvidia.com/gpu": "12"}, {})], needed)
    assert notes == []
    assert problems == [
        "ResourceQuota llmops/gpu-quota allows requests.nvidia.com/gpu=12 and 0 is in use by other pods: the "
        "deployment needs 16. Raise the quota, or lower the replicas/resources of the plan"
    ]
    assert admission.quota_problems([quota({"requests.nvidia.com/gpu": "16"}, {})], needed) == ([], [])


def test_pods_in_use_shrink_the_room_unless_they_are_the_ones_replaced():
    needed = admission.usage_of(admission.pod_templates([lws()]))["llmops"]
    hard = {"requests.memory": "1200Gi", "pods": "10"}
    used = {"requests.memory": "400Gi", "pods": "2"}
    problems, _notes = admission.quota_problems([quota(hard, used)], needed)
    assert len(problems) == 1 and "requests.memory=1200Gi and 400Gi is in use" in problems[0]
    assert "needs 1024Gi" in problems[0]  # the 1Gi init container runs before the engine
    released = {"requests.memory": Decimal(400 * 2**30), "pods": Decimal(2)}
    assert admission.quota_problems([quota(hard, used)], needed, released) == ([], [])


def test_a_quota_without_status_yet_and_a_scoped_quota():
    needed = admission.usage_of(admission.pod_templates([lws()]))["llmops"]
    problems, notes = admission.quota_problems(
        [quota({"pods": "1"}), quota({"pods": "1"}, name="scoped", scopes=["BestEffort"])], needed
    )
    assert problems and "pods=1" in problems[0] and "needs 2" in problems[0]
    assert notes == ["ResourceQuota llmops/scoped has scopes and was not judged"]


def test_the_dry_run_pod_keeps_the_template_and_a_valid_name():
    entry = admission.pod_templates([lws()])[0]
    entry["owner"] = "LeaderWorkerSet/" + "x" * 80
    pod = admission.dry_run_pod(entry)
    assert pod["kind"] == "Pod" and pod["spec"] is entry["template"]["spec"]
    assert len(pod["metadata"]["name"]) <= 63 and pod["metadata"]["name"].endswith("-preflight-leader")
    assert pod["metadata"]["labels"] == {"app": "llm"} and pod["metadata"]["namespace"] == "llmops"


def test_the_dry_run_pod_gets_the_volumes_the_controller_adds_for_claim_templates():
    # A per-pod cache: the engine mounts "model-cache", which only the LWS controller turns into a volume. Without
    # it the API server refuses the dry-run pod ("volumeMounts[0].name: Not found"), which a real group never sees.
    group = lws()
    template = group["spec"]["leaderWorkerTemplate"]
    template["volumeClaimTemplates"] = [{"metadata": {"name": "model-cache"}, "spec": {}}]
    template["workerTemplate"]["spec"]["volumes"] = [{"name": "model-cache", "emptyDir": {}}, {"name": "shm"}]
    leader, worker = admission.pod_templates([group])
    pod = admission.dry_run_pod(worker)
    assert pod["spec"]["volumes"] == [
        {"name": "shm"},
        {"name": "model-cache", "persistentVolumeClaim": {"claimName": "model-cache-deepseek-r1-preflight-worker"}},
    ]
    # The template itself is left as built.
    assert template["workerTemplate"]["spec"]["volumes"][0] == {"name": "model-cache", "emptyDir": {}}
    sts = {"kind": "StatefulSet", "metadata": {"name": "s"}, "spec": {"template": {"spec": {}}}}
    sts["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "data"}}]
    assert admission.dry_run_pod(admission.pod_templates([sts], "ns")[0])["spec"]["volumes"][0]["name"] == "data"


def test_label_selectors_find_the_current_release():
    objects = [lws(), {"kind": "Deployment", "metadata": {"name": "ui"}, "spec": {"template": {"spec": {}}}}]
    objects.append(
        {
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "front"},
            "spec": {"template": {"metadata": {"labels": {"b": "2", "a": "1"}}, "spec": {}}},
        }
    )
    assert admission.pod_label_selectors(admission.pod_templates(objects, "llmops")) == [
        ("llmops", "leaderworkerset.sigs.k8s.io/name=deepseek-r1"),
        ("front", "a=1,b=2"),
    ]


def test_a_refusal_names_the_fix():
    message = (
        'pods "x" is forbidden: violates PodSecurity "baseline:latest": non-default capabilities '
        '(container "engine" must not include "IPC_LOCK" in securityContext.capabilities.add)'
    )
    text = admission.admission_problem("LeaderWorkerSet/r1", "leader", "llmops", 403, "Forbidden", message)
    assert "IPC_LOCK" in text and "pod-security.kubernetes.io/enforce=privileged" in text
    quota_text = admission.admission_problem("Job/fill", "pod", "llmops", 403, "Forbidden", "exceeded quota: q")
    assert "raise the quota" in quota_text


def test_malformed_templates_do_not_raise():
    objects = [
        {"kind": "LeaderWorkerSet", "metadata": "x", "spec": {"leaderWorkerTemplate": "y"}},
        {"kind": "Deployment", "spec": {"template": {"spec": {"containers": "str", "overhead": [1]}}}},
        {"kind": "Deployment", "spec": {"template": {"spec": {"containers": [1, {"resources": "r"}]}}}},
    ]
    usage = admission.usage_of(admission.pod_templates(objects, "ns"))
    assert usage == {"ns": {"pods": Decimal(2)}}


def test_kinds_the_cluster_does_not_serve_are_named():
    served = {
        ("v1", "Service"),
        ("leaderworkerset.x-k8s.io", "ignored"),
        ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"),
    }
    objects = [
        lws(),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"}},
        {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": "r1"}},
        {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": "again"}},
        {"kind": "NoVersion"},
        "not-an-object",
    ]
    problems = admission.unserved(objects, lambda version, kind: (version, kind) in served)
    assert problems == [
        "the cluster serves no InferenceService in serving.kserve.io/v1beta1 (InferenceService/r1): install the add-on "
        "that provides it, or upgrade it to a release with that API (docs/addons.md)"
    ]
