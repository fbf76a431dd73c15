# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""KServe objects (OpenShift AI model serving) for the same SGLang / vLLM server that serving.py builds.

The engine argv, env, probes, resources and accelerator mounts come from serving.py unchanged; this file
only wraps them the way KServe wants them: a ServingRuntime (serving.kserve.io/v1alpha1) whose container
runs the plan's argv against ``/mnt/models``, and an InferenceService (serving.kserve.io/v1beta1) in
RawDeployment mode whose storage initializer copies the model from S3 (or another storage URI) into
``/mnt/models`` first. S3 credentials reach the storage initializer through a ServiceAccount that lists the
credentials Secret; KServe's ``serving.kserve.io/s3-*`` annotations (endpoint, https) go on that Secret, where
the storage initializer's credential builder reads them (it reads a ServiceAccount's only for an IRSA role).
Field names were checked against the v0.20.0 CRDs (../shared/crds/kserve).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.inference.plugins.module_utils import serving
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

SERVING_RUNTIME_API_VERSION = "serving.kserve.io/v1alpha1"
INFERENCE_SERVICE_API_VERSION = "serving.kserve.io/v1beta1"
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
DEPLOYMENT_MODES = ("RawDeployment",)
MODEL_DIR = "/mnt/models"
CONTAINER_NAME = "kserve-container"
STORAGE_SCHEMES = ("s3", "pvc", "hf", "gs", "https", "oci")
S3_ANNOTATIONS = {
    "endpoint": "serving.kserve.io/s3-endpoint",
    "use_https": "serving.kserve.io/s3-usehttps",
    "region": "serving.kserve.io/s3-region",
    "verify_ssl": "serving.kserve.io/s3-verifyssl",
}
S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
# OpenShift gives pods a random UID without a home folder; the engines write caches under $HOME (seed 000).
WRITABLE_HOME_ENV = (("HOME", "/tmp"), ("HF_HOME", "/tmp/hf_home"))


def storage_scheme(uri):
    return uri.split("://", 1)[0] if "://" in uri else ""


def s3_endpoint_annotations(kserve):
    """KServe's S3 annotations from an endpoint URL such as http://minio.minio.svc:9000."""
    endpoint = kserve.get("s3_endpoint") or ""
    annotations = {}
    if endpoint:
        scheme = storage_scheme(endpoint)
        if scheme not in ("", "http", "https"):
            raise LlmopsError("S3 endpoint %r must be http://host[:port] or https://host[:port]" % endpoint)
        host = endpoint.split("://", 1)[-1].rstrip("/")
        if not host or "/" in host:
            raise LlmopsError("S3 endpoint %r must be a host[:port] without a path" % endpoint)
        annotations[S3_ANNOTATIONS["endpoint"]] = host
        annotations[S3_ANNOTATIONS["use_https"]] = "0" if scheme == "http" else "1"
    if kserve.get("s3_region"):
        annotations[S3_ANNOTATIONS["region"]] = str(kserve["s3_region"])
    if kserve.get("s3_verify_ssl") is False:
        annotations[S3_ANNOTATIONS["verify_ssl"]] = "0"
    return annotations


def validate_kserve(kserve):
    """Refuse a KServe setup that cannot fetch its model, before anything is built."""
    uri = kserve.get("storage_uri") or ""
    if not uri:
        raise LlmopsError(
            "KServe serving needs the model's storage URI: set inference_server_kserve_storage_uri "
            "(e.g. s3://models/DeepSeek-R1-Distill-Qwen-7B); the storage initializer copies it to %s" % MODEL_DIR
        )
    scheme = storage_scheme(uri)
    if scheme not in STORAGE_SCHEMES:
        raise LlmopsError(
            "storage URI %r: scheme %r is not one KServe's storage initializer reads (%s)"
            % (uri, scheme, ", ".join(STORAGE_SCHEMES))
        )
    if scheme == "s3" and not (kserve.get("s3_credentials_secret") or kserve.get("service_account")):
        raise LlmopsError(
            "storage URI %s needs S3 credentials: set inference_server_kserve_s3_credentials_secret (an existing "
            "Secret with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) or inference_server_kserve_s3_access_key and "
            "inference_server_kserve_s3_secret_key, or inference_server_kserve_service_account (one that already "
            "carries the credentials)" % uri
        )
    mode = kserve.get("deployment_mode") or "RawDeployment"
    if mode not in DEPLOYMENT_MODES:
        raise LlmopsError(
            "KServe deployment mode %r is not supported here: the collection serves LLMs in %s mode"
            % (mode, " or ".join(DEPLOYMENT_MODES))
        )
    return kserve


def names(config, kserve):
    """Object names: runtime, service account (the one the storage initializer runs as, or "")."""
    runtime = kserve.get("runtime_name") or "%s-%s" % (config["name"], config["engine"])
    account = kserve.get("service_account") or ""
    if not account and kserve.get("s3_credentials_secret"):
        account = "%s-model-reader" % config["name"]
    return {"runtime": runtime, "service_account": account}


def _env(config):
    env = serving.container_env(config, serves_api=True)
    present = {item["name"] for item in env}
    env += [{"name": name, "value": value} for name, value in WRITABLE_HOME_ENV if name not in present]
    return env


def serving_runtime(config, plan, kserve):
    argv = serving.server_argv(config, plan, multi_node=False)
    volumes, host_mounts = serving.host_mount_volumes(config)
    container = {
        "name": CONTAINER_NAME,
        "image": config["image"],
        "imagePullPolicy": config.get("image_pull_policy", "IfNotPresent"),
        "command": serving.engine_command(config, plan, argv, "single"),
        "env": _env(config),
        "ports": [{"name": "http", "containerPort": int(config["port"]), "protocol": "TCP"}],
        # No privileged mode and no added capabilities: OpenShift's restricted SCC admits the pod as is.
        "securityContext": {"privileged": False, "allowPrivilegeEscalation": False},
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}] + host_mounts,
    }
    container.update(serving.probes(config, plan))
    shm = {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "%dGi" % serving.shm_size_gib(config, plan)}}
    return {
        "apiVersion": SERVING_RUNTIME_API_VERSION,
        "kind": "ServingRuntime",
        "metadata": {
            "name": names(config, kserve)["runtime"],
            "namespace": config["namespace"],
            "labels": dict(serving.labels(config), **{"opendatahub.io/dashboard": "true"}),
            "annotations": {
                "opendatahub.io/recommended-accelerators": '["%s"]' % config["accelerator_resource"],
                "openshift.io/display-name": "%s ServingRuntime for KServe (%s)"
                % ({"sglang": "SGLang", "vllm": "vLLM"}[config["engine"]], config["name"]),
            },
        },
        "spec": {
            "multiModel": False,
            "supportedModelFormats": [{"name": config["engine"], "autoSelect": True}],
            "annotations": {"prometheus.io/path": "/metrics", "prometheus.io/port": str(config["port"])},
            "containers": [container],
            "volumes": [shm] + volumes,
        },
    }


def inference_service(config, plan, kserve):
    object_names = names(config, kserve)
    replicas = int(config.get("replicas", 1))
    predictor = {
        "minReplicas": replicas,
        "maxReplicas": replicas,
        # Pods carry the server's labels, so inference_exposure's Service and Route select them as usual.
        "labels": serving.labels(config, "leader"),
        # An accelerator server cannot surge: the new pod would wait for the old pod's accelerators.
        "deploymentStrategy": {"type": "Recreate"},
        "terminationGracePeriodSeconds": 60,
        "model": {
            "modelFormat": {"name": config["engine"]},
            "runtime": object_names["runtime"],
            "storageUri": kserve["storage_uri"],
            "resources": serving.resources(config, plan),
        },
    }
    if object_names["service_account"]:
        predictor["serviceAccountName"] = object_names["service_account"]
    for key, field in (("node_selector", "nodeSelector"), ("tolerations", "tolerations")):
        if config.get(key):
            predictor[field] = config[key]
    if config.get("scheduler_name"):
        predictor["schedulerName"] = config["scheduler_name"]
    return {
        "apiVersion": INFERENCE_SERVICE_API_VERSION,
        "kind": "InferenceService",
        "metadata": {
            "name": config["name"],
            "namespace": config["namespace"],
            "labels": dict(serving.labels(config), **{"opendatahub.io/dashboard": "true"}),
            "annotations": {
                DEPLOYMENT_MODE_ANNOTATION: kserve.get("deployment_mode") or "RawDeployment",
                "openshift.io/display-name": config["served_model_name"],
            },
        },
        "spec": {"predictor": predictor},
    }


def storage_service_account(config, kserve):
    """The ServiceAccount the storage initializer uses: lists the S3 Secret and carries the endpoint."""
    account = names(config, kserve)["service_account"]
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": account,
            "namespace": config["namespace"],
            "labels": serving.labels(config),
        },
        "secrets": [{"name": kserve["s3_credentials_secret"]}],
    }


def s3_secret_annotations(config, kserve):
    """The S3 annotations for an existing credentials Secret, as a Secret with metadata only.

    Server-side apply of this object adds (and owns) just the annotations; the keys in the Secret are untouched.
    """
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": kserve["s3_credentials_secret"],
            "namespace": config["namespace"],
            "annotations": s3_endpoint_annotations(kserve),
        },
    }


def kserve_manifests(config, plan, kserve):
    """Every KServe object of the server, in apply order: [ServiceAccount], ServingRuntime, InferenceService.

    The S3 credentials Secret is not here: s3_credentials_secret() builds it, so the role applies it apart
    with no_log (and leaves it out of render mode).
    """
    plan = serving.validate_plan(plan)
    if int(plan["nodes"]) > 1:
        raise LlmopsError(
            "the plan needs %d nodes; the KServe path serves one node per replica. Serve it with "
            "llmops_serving_platform: kubernetes (LeaderWorkerSet) or choose hardware that fits one node"
            % int(plan["nodes"])
        )
    validate_kserve(kserve)
    # KServe's predictor runs on the pod network (the ServingRuntime sets no hostNetwork).
    config = serving.resolve_accelerator(dict(config, model_path=MODEL_DIR, host_network=False), plan)
    config = serving.validate_config(serving.resolve_fabric(config, plan))
    serving.check_engine_version(config, plan)
    objects = []
    if names(config, kserve)["service_account"] and not kserve.get("service_account"):
        objects.append(storage_service_account(config, kserve))
        # An existing Secret (no keys given here) still needs the endpoint annotations on it.
        if not kserve.get("creates_s3_secret") and s3_endpoint_annotations(kserve):
            objects.append(s3_secret_annotations(config, kserve))
    objects.append(serving_runtime(config, plan, kserve))
    objects.append(inference_service(config, plan, kserve))
    return objects


def s3_credentials_secret(name, namespace, access_key, secret_key, kserve, server_name):
    """The S3 credentials Secret for the storage initializer (built here so no role templates the keys)."""
    if not access_key or not secret_key:
        raise LlmopsError("both the S3 access key and the secret key are needed to create %s" % name)
    return serving.opaque_secret(
        name, namespace, server_name, dict(zip(S3_KEYS, (access_key, secret_key))), s3_endpoint_annotations(kserve)
    )
