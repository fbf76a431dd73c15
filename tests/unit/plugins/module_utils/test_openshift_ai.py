"""OLM objects, DSCInitialization and DataScienceCluster of the openshift_ai role (openshift_ai.py)."""

import json
import os

import pytest
import yaml

from ansible_collections.llmops.inference.plugins.module_utils import openshift_ai
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
DEFAULTS = {"source_namespace": "openshift-marketplace", "install_plan_approval": "Automatic"}


def role_operators():
    """The role's operator defaults, with the channel/CSV/source variables filled in as Ansible would."""
    with open(os.path.join(ROOT, "roles", "openshift_ai", "defaults", "main.yml")) as handle:
        defaults = yaml.safe_load(handle)
    text = json.dumps(defaults["openshift_ai_operators"])
    for name, value in defaults.items():
        if isinstance(value, str):
            text = text.replace("{{ %s }}" % name, value)
    return json.loads(text), defaults["openshift_ai_operator_order"]


def test_role_defaults_make_the_seed_stack_in_order():
    operators, order = role_operators()
    objects = openshift_ai.operator_manifests(openshift_ai.enabled_operators(operators, order, DEFAULTS))
    subscriptions = [obj["spec"]["name"] for obj in objects if obj["kind"] == "Subscription"]
    assert subscriptions == [
        "nfd",
        "gpu-operator-certified",
        "servicemeshoperator",
        "serverless-operator",
        "rhods-operator",
    ]
    kinds = [(obj["kind"], obj["metadata"].get("namespace", obj["metadata"]["name"])) for obj in objects]
    # Each namespace (and its OperatorGroup) comes before its Subscription; openshift-operators gets neither.
    assert kinds.index(("Namespace", "openshift-nfd")) < kinds.index(("Subscription", "openshift-nfd"))
    assert ("Namespace", "openshift-operators") not in kinds and ("OperatorGroup", "openshift-operators") not in kinds
    gpu = [obj for obj in objects if obj["kind"] == "Subscription" and obj["spec"]["name"] == "gpu-operator-certified"]
    assert gpu[0]["spec"]["source"] == "certified-operators"
    assert gpu[0]["spec"]["startingCSV"] == "gpu-operator-certified.v24.9.1"


def test_mirrored_catalog_and_manual_approval():
    operators = {
        "rhoai": {
            "package": "rhods-operator",
            "namespace": "redhat-ods-operator",
            "channel": "stable",
            "starting_csv": "rhods-operator.3.0.0",
            "source": "cs-redhat-operator-index",
            "target_namespaces": "all",
        }
    }
    defaults = dict(DEFAULTS, install_plan_approval="Manual")
    objects = openshift_ai.operator_manifests(openshift_ai.enabled_operators(operators, ["rhoai"], defaults))
    subscription = objects[-1]["spec"]
    assert subscription["source"] == "cs-redhat-operator-index" and subscription["installPlanApproval"] == "Manual"
    assert objects[1]["spec"] == {}  # AllNamespaces OperatorGroup


def test_disabled_operator_is_left_out():
    operators, order = role_operators()
    operators["servicemesh"]["enabled"] = False
    enabled = openshift_ai.enabled_operators(operators, order, DEFAULTS)
    assert "servicemeshoperator" not in [operator["package"] for operator in enabled]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"channel": 2.16}, "channel must be a string, got the number 2.16"),
        ({"channel": ""}, "channel is empty"),
        ({"install_plan_approval": "Sometimes"}, "must be one of Automatic, Manual"),
        ({"install_plan_approval": "Manual"}, "needs starting_csv"),
        ({"chanel": "stable"}, "unknown settings chanel"),
        ({"target_namespaces": "mine"}, "target_namespaces must be"),
        ({"namespace": "Bad_NS"}, "not a DNS label"),
    ],
)
def test_bad_operator_settings(change, message):
    operators, order = role_operators()
    operators["nfd"].update(change)
    with pytest.raises(LlmopsError, match=message):
        openshift_ai.enabled_operators(operators, order, DEFAULTS)


def test_dsc_kserve_is_managed_and_components_checked():
    dsc = openshift_ai.dsc_manifest({"components": {"dashboard": "Managed", "ray": {"managementState": "Removed"}}})
    assert dsc["apiVersion"] == "datasciencecluster.opendatahub.io/v2"
    assert dsc["spec"]["components"]["kserve"] == {
        "managementState": "Managed",
        "rawDeploymentServiceConfig": "Headless",
    }
    assert dsc["spec"]["components"]["ray"] == {"managementState": "Removed"}
    with pytest.raises(LlmopsError, match="unknown DataScienceCluster v2 components modelmeshserving"):
        openshift_ai.dsc_manifest({"components": {"modelmeshserving": "Managed"}})
    with pytest.raises(LlmopsError, match="managementState must be one of"):
        openshift_ai.dsc_manifest({"components": {"dashboard": "On"}})
    with pytest.raises(LlmopsError, match="Headless or Headed"):
        openshift_ai.dsc_manifest({"kserve_raw_service_config": "Serverless"})


def test_dsc_components_match_the_v2_crd():
    path = os.path.join(
        os.path.dirname(ROOT),
        "shared",
        "crds",
        "opendatahub-operator",
        "datasciencecluster.opendatahub.io_datascienceclusters.yaml",
    )
    if not os.path.exists(path):
        path = "/work/shared/crds/opendatahub-operator/datasciencecluster.opendatahub.io_datascienceclusters.yaml"
    with open(path) as handle:
        crd = yaml.safe_load(handle)
    v2 = [version for version in crd["spec"]["versions"] if version["name"] == "v2"][0]
    components = v2["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["components"]["properties"]
    assert sorted(components) == sorted(openshift_ai.DSC_COMPONENTS)


def test_dsci_fields():
    dsci = openshift_ai.dsci_manifest(
        {"applications_namespace": "redhat-ods-applications", "monitoring_namespace": "redhat-ods-monitoring"}
    )
    assert dsci["spec"]["monitoring"] == {"managementState": "Managed", "namespace": "redhat-ods-monitoring"}
    assert dsci["spec"]["trustedCABundle"] == {"managementState": "Managed", "customCABundle": ""}
    assert (
        "monitoring"
        not in openshift_ai.dsci_manifest({"applications_namespace": "a", "monitoring_namespace": ""})["spec"]
    )


def test_alm_example_picks_the_kind_and_places_it():
    csv = {
        "metadata": {
            "name": "gpu-operator-certified.v24.9.1",
            "annotations": {
                "alm-examples": json.dumps(
                    [
                        {
                            "apiVersion": "nvidia.com/v1",
                            "kind": "ClusterPolicy",
                            "metadata": {"name": "gpu-cluster-policy"},
                        },
                        {
                            "apiVersion": "nvidia.com/v1alpha1",
                            "kind": "NVIDIADriver",
                            "metadata": {"name": "d", "namespace": "x"},
                        },
                    ]
                )
            },
        }
    }
    policy = openshift_ai.alm_example(
        csv, {"kind": "ClusterPolicy", "namespaced": False, "namespace": "nvidia-gpu-operator"}
    )
    assert policy["metadata"] == {"name": "gpu-cluster-policy"}
    driver = openshift_ai.alm_example(
        csv, {"kind": "NVIDIADriver", "namespaced": True, "namespace": "nvidia-gpu-operator"}
    )
    assert driver["metadata"]["namespace"] == "nvidia-gpu-operator"
    with pytest.raises(LlmopsError, match="has no NodeFeatureDiscovery example .it has: ClusterPolicy, NVIDIADriver"):
        openshift_ai.alm_example(csv, {"kind": "NodeFeatureDiscovery"})
