"""KServe objects (kserve.py) built from the same serving.py pieces as the Deployment/LWS path."""

import copy

import pytest
from serving_cases import load_plan, server_config

from ansible_collections.llmops.inference.plugins.module_utils import kserve, serving
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

KSERVE = {
    "storage_uri": "s3://openshift/mymodel/deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
    "s3_endpoint": "http://minio-svc.minio-store.svc.cluster.local:9000",
    "s3_region": "us-east-1",
    "s3_credentials_secret": "minio-model-reader",
}


def build(kserve_settings=None, **config_changes):
    config = dict(server_config("distill-1gpu"), **config_changes)
    return kserve.kserve_manifests(config, load_plan("distill-1gpu"), dict(KSERVE, **(kserve_settings or {})))


def by_kind(objects):
    return {obj["kind"]: obj for obj in objects}


def test_objects_in_apply_order():
    # The Secret is the existing credentials Secret, annotated with the S3 endpoint (issue 10 #7).
    assert [obj["kind"] for obj in build()] == ["ServiceAccount", "Secret", "ServingRuntime", "InferenceService"]
    # Keys given: the role creates the Secret with the annotations itself (s3_credentials_secret, no_log).
    assert [obj["kind"] for obj in build({"creates_s3_secret": True})] == [
        "ServiceAccount",
        "ServingRuntime",
        "InferenceService",
    ]


def test_runtime_argv_is_the_shared_builder_with_mnt_models():
    config = dict(server_config("distill-1gpu"), model_path="/mnt/models")
    plan = load_plan("distill-1gpu")
    runtime = by_kind(build())["ServingRuntime"]
    assert runtime["spec"]["containers"][0]["command"] == serving.server_argv(config, plan, False)
    assert runtime["spec"]["containers"][0]["command"][:3] == ["vllm", "serve", "/mnt/models"]


def test_inference_service_fields():
    isvc = by_kind(build())["InferenceService"]
    assert isvc["metadata"]["annotations"][kserve.DEPLOYMENT_MODE_ANNOTATION] == "RawDeployment"
    predictor = isvc["spec"]["predictor"]
    assert predictor["model"]["storageUri"] == KSERVE["storage_uri"]
    assert predictor["model"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert predictor["serviceAccountName"] == "deepseek-r1-distill-qwen-7b-model-reader"
    assert predictor["labels"]["llmops.io/role"] == "leader"


def test_s3_annotations_follow_the_endpoint_scheme():
    assert kserve.s3_endpoint_annotations({"s3_endpoint": "https://s3.example.com"}) == {
        "serving.kserve.io/s3-endpoint": "s3.example.com",
        "serving.kserve.io/s3-usehttps": "1",
    }
    objects = by_kind(build())
    # KServe's storage initializer reads the endpoint from the credentials Secret's annotations; a ServiceAccount's
    # are read only with an IRSA role (eks.amazonaws.com/role-arn), so on the ServiceAccount MinIO is never reached.
    secret = objects["Secret"]
    assert secret["metadata"]["name"] == "minio-model-reader"
    assert secret["metadata"]["annotations"] == {
        "serving.kserve.io/s3-endpoint": "minio-svc.minio-store.svc.cluster.local:9000",
        "serving.kserve.io/s3-usehttps": "0",
        "serving.kserve.io/s3-region": "us-east-1",
    }
    # Metadata only: server-side apply adds the annotations and leaves the keys alone.
    assert set(secret) == {"apiVersion", "kind", "metadata"}
    assert "annotations" not in objects["ServiceAccount"]["metadata"]
    assert objects["ServiceAccount"]["secrets"] == [{"name": "minio-model-reader"}]
    created = kserve.s3_credentials_secret("creds", "ns", "AK", "SK", KSERVE, "srv")
    assert created["metadata"]["annotations"]["serving.kserve.io/s3-endpoint"].endswith(":9000")
    with pytest.raises(LlmopsError, match="without a path"):
        kserve.s3_endpoint_annotations({"s3_endpoint": "http://minio:9000/bucket"})


def test_existing_service_account_is_used_not_created():
    objects = build({"service_account": "reader", "s3_credentials_secret": ""})
    assert [obj["kind"] for obj in objects] == ["ServingRuntime", "InferenceService"]
    assert objects[1]["spec"]["predictor"]["serviceAccountName"] == "reader"


def test_home_is_writable_unless_the_user_sets_it():
    runtime = by_kind(build())["ServingRuntime"]
    env = {item["name"]: item.get("value") for item in runtime["spec"]["containers"][0]["env"]}
    assert env["HOME"] == "/tmp" and env["HF_HOME"] == "/tmp/hf_home"
    env = by_kind(build(extra_env={"HOME": "/data"}))["ServingRuntime"]["spec"]["containers"][0]["env"]
    assert [item["value"] for item in env if item["name"] == "HOME"] == ["/data"]


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"storage_uri": ""}, "needs the model's storage URI"),
        ({"storage_uri": "ftp://x/y"}, "scheme 'ftp'"),
        ({"s3_credentials_secret": ""}, "needs S3 credentials"),
        ({"deployment_mode": "Serverless"}, "not supported here"),
    ],
)
def test_bad_kserve_settings(settings, message):
    with pytest.raises(LlmopsError, match=message):
        build(settings)


def test_multi_node_plan_is_refused():
    plan = load_plan("qwen3-235b-vllm-2node-ray")
    with pytest.raises(LlmopsError, match="needs 2 nodes"):
        kserve.kserve_manifests(server_config("qwen3-235b-vllm-2node-ray"), plan, KSERVE)


def test_ascend_plan_gets_npu_resource_and_mounts():
    plan = copy.deepcopy(load_plan("distill-1gpu"))
    plan["accelerator"]["id"] = "Ascend-910B-64G"
    config = dict(server_config("distill-1gpu"), image="", accelerator_resource="")
    config["images"] = {"huawei": {"vllm": "quay.io/ascend/vllm-ascend:v0.13.0"}}
    runtime, isvc = kserve.kserve_manifests(config, plan, dict(KSERVE, s3_credentials_secret="", service_account="sa"))
    assert runtime["spec"]["containers"][0]["image"] == "quay.io/ascend/vllm-ascend:v0.13.0"
    assert isvc["spec"]["predictor"]["model"]["resources"]["limits"]["huawei.com/Ascend910"] == "1"
    assert "/usr/local/Ascend/driver" in {m["mountPath"] for m in runtime["spec"]["containers"][0]["volumeMounts"]}
    assert runtime["metadata"]["annotations"]["opendatahub.io/recommended-accelerators"] == '["huawei.com/Ascend910"]'


def test_s3_secret_holds_the_keys_under_the_aws_names():
    secret = kserve.s3_credentials_secret("creds", "ns", "AK", "SK", KSERVE, "srv")
    assert secret["stringData"] == {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"}
    with pytest.raises(LlmopsError, match="both the S3 access key and the secret key"):
        kserve.s3_credentials_secret("creds", "ns", "AK", "", KSERVE, "srv")
