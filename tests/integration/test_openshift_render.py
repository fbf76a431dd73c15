"""Real ansible-playbook runs, render mode, of the two inventories added with OpenShift AI and Ascend support.

- inventories/openshift-ai-kserve (seed 000): site.yml writes the OLM Subscriptions, DSCInitialization and
  DataScienceCluster (openshift_ai role), then the KServe ServingRuntime + InferenceService, Service and Route.
- inventories/ascend-910b (seed 003): serve.yml writes a vllm-ascend LeaderWorkerSet on huawei.com/Ascend910.

Each custom resource is validated against the real CRD (../shared/crds) with jsonschema, and checked for
fields the API server would prune (render_helpers.pruned_fields). Plans are the recorded parallelism_plan
outputs in fixtures/plans/. Bad input must stop the play before any file is written.
"""

import glob
import os

import pytest
from render_helpers import engine_argv, load_plan, read, rendered, rendered_files, run_render, validate_custom_resources

API_KEY = "sk-test-5d2a91c0e7f3-never-printed"
S3_ACCESS = "AKIA-TEST-ACCESS-6c1f0b"
S3_SECRET = "s3-secret-value-93e1d7a4b2-never-printed"
SECRETS = (API_KEY, S3_ACCESS, S3_SECRET)


def _contains(argv, part):
    return any(argv[i : i + len(part)] == part for i in range(len(argv) - len(part) + 1))


@pytest.fixture(scope="module")
def openshift(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("openshift-ai-kserve"))
    result = run_render(
        "openshift-ai-kserve",
        folder,
        "-e",
        "inference_server_api_key=%s" % API_KEY,
        "-e",
        "inference_server_kserve_s3_access_key=%s" % S3_ACCESS,
        "-e",
        "inference_server_kserve_s3_secret_key=%s" % S3_SECRET,
        playbook="site.yml",
    )
    return result, folder


@pytest.fixture(scope="module")
def ascend(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("ascend-910b"))
    return run_render("ascend-910b", folder, "-e", "inference_server_api_key=%s" % API_KEY), folder


def test_openshift_site_renders_and_prints_no_secret(openshift):
    result, folder = openshift
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr
        # Render mode leaves both Secrets out unless asked: nothing on disk holds a key.
        assert [path for path in rendered_files(folder) if secret in read(path)] == []
    flat = " ".join(result.stdout.split())
    assert "create secret generic minio-model-reader --from-literal=AWS_ACCESS_KEY_ID=<key>" in flat
    # KServe fetches the model itself: no model cache objects.
    assert not os.path.isdir(os.path.join(folder, "model_cache"))


def test_openshift_objects_match_the_crds(openshift):
    _result, folder = openshift
    objects = rendered(folder)
    assert validate_custom_resources(objects) == 5 + 4 + 1 + 1 + 1 + 1 + 1
    assert {kind: len(objects[kind]) for kind in ("Subscription", "OperatorGroup", "ServingRuntime")} == {
        "Subscription": 5,
        "OperatorGroup": 4,
        "ServingRuntime": 1,
    }


def test_operator_stack_subscriptions(openshift):
    _result, folder = openshift
    objects = rendered(folder)
    subscriptions = {obj["spec"]["name"]: obj for obj in objects["Subscription"]}
    assert list(subscriptions) == [
        "nfd",
        "gpu-operator-certified",
        "servicemeshoperator",
        "serverless-operator",
        "rhods-operator",
    ]
    gpu = subscriptions["gpu-operator-certified"]
    assert gpu["metadata"]["namespace"] == "nvidia-gpu-operator"
    assert gpu["spec"]["source"] == "certified-operators"
    assert gpu["spec"]["channel"] == "v24.9" and gpu["spec"]["startingCSV"] == "gpu-operator-certified.v24.9.1"
    assert subscriptions["rhods-operator"]["metadata"]["namespace"] == "redhat-ods-operator"
    assert {sub["spec"]["installPlanApproval"] for sub in subscriptions.values()} == {"Automatic"}
    # openshift-operators already has its global OperatorGroup; a second one would break every operator there.
    groups = {obj["metadata"]["namespace"]: obj["spec"] for obj in objects["OperatorGroup"]}
    assert "openshift-operators" not in groups
    assert groups["redhat-ods-operator"] == {} and groups["openshift-nfd"] == {"targetNamespaces": ["openshift-nfd"]}
    # No Helm add-on ran: the inventory turns them off in favour of OLM.
    assert sorted(os.listdir(folder)) == [
        "inference_exposure",
        "inference_server",
        "namespace",
        "openshift_ai",
        "openshift_ai_operators",
    ]


def test_dsc_has_kserve_managed_in_raw_deployment(openshift):
    _result, folder = openshift
    objects = rendered(folder)
    dsc = objects["DataScienceCluster"][0]
    assert dsc["apiVersion"] == "datasciencecluster.opendatahub.io/v2"
    assert dsc["spec"]["components"]["kserve"] == {
        "managementState": "Managed",
        "rawDeploymentServiceConfig": "Headless",
    }
    assert dsc["spec"]["components"]["dashboard"] == {"managementState": "Managed"}
    dsci = objects["DSCInitialization"][0]
    assert dsci["spec"]["applicationsNamespace"] == "redhat-ods-applications"


def test_kserve_runtime_and_inference_service(openshift):
    _result, folder = openshift
    objects = rendered(folder)
    plan = load_plan("openshift-ai-kserve")
    runtime = objects["ServingRuntime"][0]
    container = runtime["spec"]["containers"][0]
    # SGLang takes its API key from a --config file the start script writes from the Secret's env (issue 10 #11)
    assert container["command"][:2] == ["/bin/bash", "-c"]
    script = container["command"][2]
    argv = engine_argv(container)
    assert argv[:5] == ["python3", "-m", "sglang.launch_server", "--model-path", "/mnt/models"]
    assert _contains(argv, plan["engine_args"])
    assert argv[-2:] == ["--config", "/dev/shm/llmops-api-key.yaml"] and "--api-key" not in script
    assert container["securityContext"]["privileged"] is False
    isvc = objects["InferenceService"][0]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["modelFormat"]["name"] == runtime["spec"]["supportedModelFormats"][0]["name"] == "sglang"
    assert model["storageUri"] == "s3://openshift/mymodel/deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"
    assert model["resources"]["limits"]["nvidia.com/gpu"] == str(plan["accelerators_used"])
    account = objects["ServiceAccount"][0]
    assert isvc["spec"]["predictor"]["serviceAccountName"] == account["metadata"]["name"]
    assert account["secrets"] == [{"name": "minio-model-reader"}]
    # The S3 annotations moved to the credentials Secret (issue 10 #7: KServe reads a ServiceAccount's only with
    # an IRSA role); here the keys were given, so the role creates that Secret (no_log, left out of render mode).
    assert "annotations" not in account["metadata"]
    # The Route goes to our Service, which selects the predictor pod by the labels KServe puts on it.
    service, route = objects["Service"][0], objects["Route"][0]
    assert route["spec"]["to"]["name"] == service["metadata"]["name"]
    labels = isvc["spec"]["predictor"]["labels"]
    assert all(labels.get(key) == value for key, value in service["spec"]["selector"].items())
    assert "privileged: true" not in "".join(read(path) for path in rendered_files(folder))


def test_s3_secret_rendered_only_on_request(tmp_path):
    result = run_render(
        "openshift-ai-kserve",
        str(tmp_path),
        "-e",
        "inference_server_kserve_s3_access_key=%s" % S3_ACCESS,
        "-e",
        "inference_server_kserve_s3_secret_key=%s" % S3_SECRET,
        "-e",
        "inference_server_kserve_render_s3_secret=true",
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert S3_SECRET not in result.stdout + result.stderr
    holding = [path for path in rendered_files(str(tmp_path)) if S3_SECRET in read(path)]
    assert len(holding) == 1 and "/inference_server_secrets/" in holding[0]


def test_ascend_renders_vllm_ascend_on_npus(ascend):
    result, folder = ascend
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert API_KEY not in result.stdout + result.stderr
    objects = rendered(folder)
    assert validate_custom_resources(objects) == 2  # LeaderWorkerSet, PodGroup
    plan = load_plan("ascend-910b")
    lws = objects["LeaderWorkerSet"][0]
    template = lws["spec"]["leaderWorkerTemplate"]
    assert template["size"] == plan["nodes"] == 2
    for role in ("leaderTemplate", "workerTemplate"):
        spec = template[role]["spec"]
        container = spec["containers"][0]
        assert container["image"] == "quay.io/ascend/vllm-ascend:v0.13.0"
        assert container["resources"]["limits"]["huawei.com/Ascend910"] == "8"
        mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
        # npu-smi from /usr/local/sbin, where seed 003's hosts have it (issue 10 #8).
        assert {"/usr/local/Ascend/driver", "/usr/local/dcmi", "/usr/local/sbin/npu-smi"} <= mounts
        assert {"/etc/ascend_install.info", "/etc/hccn.conf", "/usr/slog"} <= mounts
        paths = {volume["hostPath"]["path"] for volume in spec["volumes"] if "hostPath" in volume}
        assert "/var/log/npu" in paths and "/usr/local/Ascend/driver" in paths
        assert spec["nodeSelector"] == {"accelerator": "huawei-Ascend910"}
        env = {item["name"]: item.get("value") for item in container["env"]}
        # Host networking as in vllm-ascend's multi-node guide; eth0 is seed 003's host NIC (issue 10 #8).
        assert env["HCCL_SOCKET_IFNAME"] == "eth0" and env["HCCL_CONNECT_TIMEOUT"] == "1800"
        assert spec["hostNetwork"] is True
    leader = template["leaderTemplate"]["spec"]["containers"][0]["command"][2]
    assert " ".join(plan["engine_args"]) in leader
    assert objects["PodGroup"][0]["spec"]["minResources"] == {"huawei.com/Ascend910": "16"}
    assert "nvidia.com/gpu" not in "".join(read(path) for path in rendered_files(folder))


@pytest.mark.parametrize(
    "inventory, playbook, extra, message",
    [
        (
            "openshift-ai-kserve",
            "serve.yml",
            ["-e", "inference_server_kserve_storage_uri="],
            "KServe serving needs the model's storage URI",
        ),
        (
            "openshift-ai-kserve",
            "serve.yml",
            ["-e", "inference_server_kserve_s3_credentials_secret="],
            "needs S3 credentials",
        ),
        (
            "openshift-ai-kserve",
            "serve.yml",
            ["-e", "inference_server_kserve_storage_uri=ftp://models/x"],
            "is not one KServe's storage initializer reads",
        ),
        (
            "openshift-ai-kserve",
            "cluster_addons.yml",
            ["-e", '{"openshift_ai_gpu_operator_channel": 24.9}'],
            "channel must be a string, got the number 24.9; quote it",
        ),
        (
            "openshift-ai-kserve",
            "cluster_addons.yml",
            ["-e", "openshift_ai_install_plan_approval=Manual"],
            "Manual install plan approval needs starting_csv",
        ),
        (
            "openshift-ai-kserve",
            "cluster_addons.yml",
            ["-e", '{"openshift_ai_components": {"codeflare": "Managed"}}'],
            "unknown DataScienceCluster v2 components codeflare",
        ),
        (
            "ascend-910b",
            "serve.yml",
            ["-e", "llmops_serving_platform=kserve", "-e", "inference_server_kserve_storage_uri=s3://m/q"],
            "the plan needs 2 nodes; the KServe path serves one node per replica",
        ),
        (
            "ascend-910b",
            "serve.yml",
            ["-e", '{"inference_server_npu_images": {}}'],
            "no vllm image is known for huawei accelerators",
        ),
    ],
)
def test_bad_input_fails_before_anything_is_written(tmp_path, inventory, playbook, extra, message):
    result = run_render(inventory, str(tmp_path), *extra, playbook=playbook)
    assert result.returncode != 0
    assert message in " ".join((result.stdout + result.stderr).split())
    assert glob.glob(os.path.join(str(tmp_path), "*", "*.yaml")) == []
