# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Model cache layout: where the weights live and how they get there, decided once for the server.

Three layouts:
- ``shared_pvc``: one PVC filled by a download Job; pods wait for it (init container) and mount it
  read-only. Used with a ReadWriteMany storage class, or when the server has a single pod.
- ``per_pod_pvc``: the storage class has no RWX and there are several pods: each pod gets its own
  PVC (volumeClaimTemplates) and fills it itself in an init container (the seeds' two-PVC case).
- ``host_path``: a folder on every node (the seeds' hostPath), filled by an init container.
The same script (roles/model_cache/files/download-model.sh, mounted from a ConfigMap) downloads,
skips a complete cache, verifies config.json and the weight index, or waits for another pod.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import math
import re

from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

SOURCES = ("huggingface", "modelscope", "s3")
ACCESS_MODES = ("ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
SCRIPT_KEY = "download-model.sh"
SCRIPT_MOUNT = "/llmops"
VOLUME_NAME = "model-cache"
SCRIPT_VOLUME = "model-download-script"


def validate(config):
    source = config.get("source")
    if source not in SOURCES:
        raise LlmopsError("unknown model source %r: choose one of %s" % (source, ", ".join(SOURCES)))
    if source == "s3":
        s3 = config.get("s3") or {}
        if not s3.get("uri", "").startswith("s3://"):
            raise LlmopsError("model source s3 needs model_cache_s3_uri like s3://bucket/models/DeepSeek-R1")
        if not s3.get("credentials_secret"):
            raise LlmopsError(
                "model source s3 needs credentials: set model_cache_s3_credentials_secret to an existing Secret "
                "with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or model_cache_s3_access_key and "
                "model_cache_s3_secret_key (from a vault) so the role creates it"
            )
    elif not config.get("model_id"):
        raise LlmopsError(
            "model source %s needs the repository id (llmops_model_id), e.g. deepseek-ai/DeepSeek-R1" % source
        )
    if config.get("storage") not in ("pvc", "host_path"):
        raise LlmopsError("model_cache_storage must be pvc or host_path, got %r" % (config.get("storage"),))
    if config["storage"] == "pvc" and config.get("access_mode") not in ACCESS_MODES:
        raise LlmopsError("model_cache_access_mode must be one of %s" % ", ".join(ACCESS_MODES))
    if config["storage"] == "host_path" and not str(config.get("host_path", "")).startswith("/"):
        raise LlmopsError("model_cache_host_path must be an absolute path on the nodes")
    if not config.get("images", {}).get(source):
        raise LlmopsError("no downloader image for source %s (model_cache_images.%s)" % (source, source))
    return config


def model_dir_name(config):
    """Folder of the model inside the cache: the repository id (or S3 prefix) with slashes flattened."""
    if config.get("dir"):
        return config["dir"]
    ident = config.get("model_id") or (config.get("s3") or {}).get("uri", "").rstrip("/")[len("s3://") :]
    return re.sub(r"[^A-Za-z0-9._-]+", "--", ident).strip("-") or "model"


def size_gib(config, plan):
    """PVC size: the model's bytes on disk when known, else the plan's weights for one model copy, +20% +10Gi."""
    if config.get("size_gib"):
        return int(config["size_gib"])
    if config.get("model_gib"):
        weights = float(config["model_gib"])
    else:
        weights = (
            float(plan.get("weights_gib_per_accelerator") or 0)
            * int(plan["tensor_parallel"])
            * int(plan["pipeline_parallel"])
        )
    if weights <= 0:
        raise LlmopsError("cannot size the model cache: set model_cache_size_gib or model_cache_model_gib")
    return int(math.ceil(weights * 1.2 + 10))


def layout_mode(config, plan, replicas):
    if config["storage"] == "host_path":
        return "host_path"
    pods = int(plan["nodes"]) * int(replicas)
    if config["access_mode"] == "ReadWriteMany" or pods == 1:
        return "shared_pvc"
    return "per_pod_pvc"


def _names(config):
    return {"pvc": "%s-model-cache" % config["name"], "script": "%s-model-download" % config["name"]}


def downloader_container(config, mode, model_path):
    """The container that runs download-model.sh (``download`` or ``wait``)."""
    source = config["source"]
    env = [
        {"name": "LLMOPS_SOURCE", "value": source},
        {"name": "LLMOPS_MODEL_ID", "value": config.get("model_id") or ""},
        {"name": "LLMOPS_REVISION", "value": config.get("revision") or ""},
        {"name": "LLMOPS_MODEL_DIR", "value": model_path},
        {"name": "LLMOPS_PIP_INSTALL", "value": "true" if config.get("pip_install", True) else "false"},
    ]
    if config.get("pip_index_url"):
        env.append({"name": "PIP_INDEX_URL", "value": config["pip_index_url"]})
    if source == "huggingface":
        if config.get("hf_endpoint"):
            env.append({"name": "HF_ENDPOINT", "value": config["hf_endpoint"]})
        if config.get("hf_token_secret"):
            env.append(
                {
                    "name": "HF_TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": config["hf_token_secret"], "key": "HF_TOKEN"}},
                }
            )
    if source == "modelscope" and config.get("modelscope_domain"):
        env.append({"name": "MODELSCOPE_DOMAIN", "value": config["modelscope_domain"]})
    if source == "s3":
        s3 = config["s3"]
        env.append({"name": "LLMOPS_S3_URI", "value": s3["uri"]})
        if s3.get("endpoint"):
            env.append({"name": "AWS_ENDPOINT_URL", "value": s3["endpoint"]})
        env.append({"name": "AWS_DEFAULT_REGION", "value": s3.get("region") or "us-east-1"})
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            env.append({"name": key, "valueFrom": {"secretKeyRef": {"name": s3["credentials_secret"], "key": key}}})
    image = config["images"][source] if mode == "download" else config["wait_image"]
    return {
        "name": "model-%s" % mode,
        "image": image,
        "imagePullPolicy": config.get("image_pull_policy", "IfNotPresent"),
        "command": ["/bin/sh", "%s/%s" % (SCRIPT_MOUNT, SCRIPT_KEY), mode],
        "env": env,
        "securityContext": {"privileged": False, "allowPrivilegeEscalation": False},
        "volumeMounts": [
            {"name": VOLUME_NAME, "mountPath": config["mount_path"]},
            {"name": SCRIPT_VOLUME, "mountPath": SCRIPT_MOUNT, "readOnly": True},
        ],
    }


def _script_volume(config):
    return {"name": SCRIPT_VOLUME, "configMap": {"name": _names(config)["script"], "defaultMode": 0o555}}


def cache_plan(config, plan, replicas=1):
    """Everything the cache contributes: objects to apply and what the server's pods need.

    Returns a dict with ``objects`` (ConfigMap, [PVC], [Job], in apply order) and ``layout``, the
    value the serving stage keeps as ``llmops_model_cache`` for roles/inference_server.
    """
    validate(config)
    mode = layout_mode(config, plan, replicas)
    names = _names(config)
    model_path = "%s/%s" % (config["mount_path"].rstrip("/"), model_dir_name(config))
    labels = {
        "app.kubernetes.io/name": config["name"],
        "app.kubernetes.io/component": "model-cache",
        "app.kubernetes.io/managed-by": "llmops.inference",
    }
    meta = {"namespace": config["namespace"], "labels": labels}
    objects = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": dict(meta, name=names["script"]),
            "data": {SCRIPT_KEY: config["script"]},
        }
    ]
    size = "%dGi" % size_gib(config, plan)
    claim_spec = {
        "accessModes": [config.get("access_mode") or "ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
    }
    if config.get("storage_class"):
        claim_spec["storageClassName"] = config["storage_class"]
    layout = {
        "mode": mode,
        "mount_path": config["mount_path"],
        "model_path": model_path,
        "read_only": True,
        "extra_volumes": [_script_volume(config)],
        "volume": None,
        "volume_claim_template": None,
        "init_container": None,
        "size": size,
    }
    if mode == "shared_pvc":
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": dict(meta, name=names["pvc"]),
                "spec": claim_spec,
            }
        )
        objects.append(download_job(config, model_path, meta, names))
        layout["volume"] = {"persistentVolumeClaim": {"claimName": names["pvc"], "readOnly": True}}
        layout["init_container"] = downloader_container(config, "wait", model_path)
        layout["init_container"]["volumeMounts"][0]["readOnly"] = True
    elif mode == "per_pod_pvc":
        layout["volume_claim_template"] = {"metadata": {"name": VOLUME_NAME, "labels": labels}, "spec": claim_spec}
        layout["init_container"] = downloader_container(config, "download", model_path)
    else:
        layout["volume"] = {"hostPath": {"path": config["host_path"], "type": "DirectoryOrCreate"}}
        layout["init_container"] = downloader_container(config, "download", model_path)
    return {"objects": objects, "layout": layout}


def download_job(config, model_path, meta, names):
    """Job that fills the shared PVC. Its name carries a hash of its spec: Job templates are immutable,
    so a changed source gives a new Job, and an unchanged one is applied again without a change."""
    container = downloader_container(config, "download", model_path)
    pod_spec = {
        "restartPolicy": "OnFailure",
        "containers": [container],
        "volumes": [
            {"name": VOLUME_NAME, "persistentVolumeClaim": {"claimName": names["pvc"]}},
            _script_volume(config),
        ],
    }
    digest = hashlib.sha256(json.dumps([pod_spec, config["script"]], sort_keys=True).encode("utf-8")).hexdigest()
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": dict(meta, name="%s-download-%s" % (config["name"], digest[:8])),
        "spec": {
            "backoffLimit": int(config.get("download_retries", 6)),
            "template": {"metadata": {"labels": meta["labels"]}, "spec": pod_spec},
        },
    }
