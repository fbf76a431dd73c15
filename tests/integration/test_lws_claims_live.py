"""Per-pod model caches are adopted by the real LeaderWorkerSet controller (issue 10, finding 2).

The model cache stages weights into one PVC per engine pod before the group exists, named as a StatefulSet
names its claims (<template>-<pod>). That only works if the StatefulSets the real LWS controller (v0.9.0 on the
test bed) creates for leaders and workers pick up those claims instead of making new ones. Here our builders'
real output for the 2 x 8 DeepSeek inventory with 2 replicas (4 pods) is applied: the 4 claims first, then the
LeaderWorkerSet. The pods stay Pending (the bed has no provisioner, so the claims never bind), which is enough:
the StatefulSet controller has already written each pod's claimName.
"""

import copy
import os
import sys

from kubernetes import client, utils
from render_helpers import COLLECTIONS, ensure_collection_link
from testbed_support import wait_for

ensure_collection_link()
sys.path.insert(0, COLLECTIONS)
sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "unit", "plugins", "module_utils")
)
from serving_cases import cache_config, load_plan, server_config  # noqa: E402

from ansible_collections.llmops.inference.plugins.module_utils import model_cache, serving  # noqa: E402

INVENTORY = "deepseek-r1-2x8-a800-sglang"


def _objects(namespace, replicas):
    plan = load_plan(INVENTORY)
    cache = model_cache.cache_plan(dict(cache_config(INVENTORY), namespace=namespace), plan, replicas)
    config = dict(server_config(INVENTORY), namespace=namespace, replicas=replicas)
    config["model_path"] = cache["layout"]["model_path"]
    claims = [o for o in cache["objects"] if o["kind"] == "PersistentVolumeClaim"]
    workload = [o for o in serving.server_manifests(config, plan, cache["layout"]) if o["kind"] == "LeaderWorkerSet"]
    return claims, workload[0]


def test_the_lws_pods_use_the_claims_staged_for_them(api_client, core, namespace):
    claims, lws = _objects(namespace, 2)
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == 2 and lws["spec"]["replicas"] == 2
    staged = sorted(claim["metadata"]["name"] for claim in claims)
    assert len(staged) == 4
    for claim in claims:
        utils.create_from_dict(api_client, copy.deepcopy(claim), namespace=namespace)
    custom = client.CustomObjectsApi(api_client)
    custom.create_namespaced_custom_object("leaderworkerset.x-k8s.io", "v1", namespace, "leaderworkersets", lws)
    try:
        pods = wait_for(
            lambda: (
                [p for p in core.list_namespaced_pod(namespace).items if p.spec.volumes]
                if (len(core.list_namespaced_pod(namespace).items) == 4)
                else None
            ),
            timeout=120,
            what="the 4 engine pods of the LeaderWorkerSet",
        )
        used = {}
        for pod in pods:
            for volume in pod.spec.volumes:
                if volume.persistent_volume_claim:
                    used[pod.metadata.name] = volume.persistent_volume_claim.claim_name
        # every pod (2 leaders, 2 workers) mounts the claim staged for it, by name
        assert sorted(used.values()) == staged, used
        assert all(claim == "%s-%s" % (model_cache.VOLUME_NAME, pod) for pod, claim in used.items()), used
        # and the controllers made no claim of their own
        assert sorted(c.metadata.name for c in core.list_namespaced_persistent_volume_claim(namespace).items) == staged
    finally:
        custom.delete_namespaced_custom_object(
            "leaderworkerset.x-k8s.io", "v1", namespace, "leaderworkersets", lws["metadata"]["name"]
        )
