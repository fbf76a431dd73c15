"""The real Volcano scheduler on the test bed gang-schedules PodGroups (TESTBED_VOLCANO=1 cluster-up).

Two pods of a PodGroup with minMember 2, each asking for a whole A800 node (8 GPUs), are bound
together; a group of three such pods can never fit the two simulated GPU nodes, so Volcano binds
none of them (all-or-nothing) instead of two, which is what the default scheduler would do.
"""

import uuid

import pytest
from kubernetes import client
from testbed_support import PAUSE_IMAGE, volcano_running, wait_for, wait_pods_gone


@pytest.fixture(scope="module")
def volcano(api_client):
    if not volcano_running():
        pytest.skip("Volcano scheduler not running; start the test bed with TESTBED_VOLCANO=1")
    return client.CustomObjectsApi(api_client)


@pytest.fixture()
def namespace(core):
    name = f"testbed-vc-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for(lambda: core.list_namespaced_service_account(name).items, what="default ServiceAccount")
    yield name
    core.delete_collection_namespaced_pod(name, grace_period_seconds=0)
    wait_pods_gone(core, name, "")
    core.delete_namespace(name)


def create_gang(custom, core, namespace, name, members):
    gpus = {"nvidia.com/gpu": "8"}
    custom.create_namespaced_custom_object(
        "scheduling.volcano.sh",
        "v1beta1",
        namespace,
        "podgroups",
        {
            "apiVersion": "scheduling.volcano.sh/v1beta1",
            "kind": "PodGroup",
            "metadata": {"name": name},
            "spec": {"minMember": members, "queue": "default"},
        },
    )
    for index in range(members):
        core.create_namespaced_pod(
            namespace,
            client.V1Pod(
                metadata=client.V1ObjectMeta(
                    name=f"{name}-{index}", annotations={"scheduling.k8s.io/group-name": name}
                ),
                spec=client.V1PodSpec(
                    scheduler_name="volcano",
                    containers=[
                        client.V1Container(
                            name="main",
                            image=PAUSE_IMAGE,
                            resources=client.V1ResourceRequirements(requests=gpus, limits=gpus),
                        )
                    ],
                ),
            ),
        )


def test_gang_of_two_whole_nodes_is_bound(volcano, core, namespace):
    create_gang(volcano, core, namespace, "pair", 2)

    def all_running():
        pods = core.list_namespaced_pod(namespace).items
        return pods if len(pods) == 2 and all(pod.status.phase == "Running" for pod in pods) else None

    pods = wait_for(all_running, timeout=90, what="both gang members Running")
    assert len({pod.spec.node_name for pod in pods}) == 2


def test_gang_that_cannot_fit_binds_nobody(volcano, core, namespace):
    create_gang(volcano, core, namespace, "trio", 3)

    def group_unschedulable():
        group = volcano.get_namespaced_custom_object("scheduling.volcano.sh", "v1beta1", namespace, "podgroups", "trio")
        conditions = (group.get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Unschedulable" and c.get("status") == "True" for c in conditions)

    wait_for(group_unschedulable, timeout=90, what="Volcano to mark PodGroup trio Unschedulable")
    assert not [pod.metadata.name for pod in core.list_namespaced_pod(namespace).items if pod.spec.node_name]
