# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Model cache layout: where the weights live and how they get there, decided once for the server.

Three layouts:
- ``shared_pvc``: one PVC filled by a download Job; pods wait for it (init container) and mount it
  read-only. Used with a ReadWriteMany storage class, or when the server has a single pod (then the
  Job runs on an accelerator node, where a node-local volume must bind for the engine to use it).
- ``per_pod_pvc``: the storage class has no RWX and there are several pods: each pod gets its own
  PVC (volumeClaimTemplates). The PVCs are created beforehand under the names the StatefulSets behind
  the workload give them (``model-cache-<pod>``) and filled by one staging Job each, before the group
  exists; the engine pods only wait (the seeds' two-PVC case, without downloads inside the group).
- ``host_path``: a folder on every node (the seeds' hostPath). With ``stage_nodes`` (required for a
  multi-node group) one staging Job per node fills it, pinned by hostname, and the engine pods wait,
  pinned to those nodes; a single-node server without them downloads in its init container.
The same script (roles/model_cache/files/download-model.sh, mounted from a ConfigMap) downloads,
skips a complete cache, verifies config.json and the weight index, or waits for a complete, verified
cache whose stamp names the expected source and revision.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import math
import re

from ansible_collections.llmops.inference.plugins.module_utils import pod_policy
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

SOURCES = ("huggingface", "modelscope", "s3")
ACCESS_MODES = ("ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
SCRIPT_KEY = "download-model.sh"
SCRIPT_MOUNT = "/llmops"
VOLUME_NAME = "model-cache"
SCRIPT_VOLUME = "model-download-script"
# Subfolder of the cache volume for the engines' JIT/compile caches (serving.compile_cache).
COMPILE_CACHE_SUB_PATH = ".llmops-compile-cache"
STAGE_LABEL = "llmops.io/model-stage"
# download-model.sh exits with this when retrying cannot help (refused credentials, no such bucket, ...).
PERMANENT_FAILURE_EXIT = 3


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


def model_gib(config, plan):
    """The model's size on disk: model_cache_model_gib when given, else the plan's weights for one model copy."""
    if config.get("model_gib"):
        return float(config["model_gib"])
    return (
        float(plan.get("weights_gib_per_accelerator") or 0)
        * int(plan["tensor_parallel"])
        * int(plan["pipeline_parallel"])
    )


def size_gib(config, plan):
    """PVC size: the model's bytes on disk when known, else the plan's weights for one model copy, +20% +10Gi."""
    if config.get("size_gib"):
        return int(config["size_gib"])
    weights = model_gib(config, plan)
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
    if source == "s3":
        env.append({"name": "LLMOPS_S3_URI", "value": config["s3"]["uri"]})
    if mode == "download" and config.get("expected_bytes"):
        # the progress lines' "of N GiB" and ETA (an estimate: the plan's weights when the size is not given)
        env.append({"name": "LLMOPS_MODEL_BYTES", "value": str(int(config["expected_bytes"]))})
    if mode == "wait":
        # Waiting reads the folder and its stamp only: no credentials, no tools.
        return _script_container(config, mode, config["wait_image"], env)
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
        if s3.get("endpoint"):
            env.append({"name": "AWS_ENDPOINT_URL", "value": s3["endpoint"]})
        env.append({"name": "AWS_DEFAULT_REGION", "value": s3.get("region") or "us-east-1"})
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            env.append({"name": key, "valueFrom": {"secretKeyRef": {"name": s3["credentials_secret"], "key": key}}})
    return _script_container(config, mode, config["images"][source], env)


def _script_container(config, mode, image, env):
    cpu, memory = (
        (config.get("wait_cpu") or "100m", config.get("wait_memory") or "128Mi")
        if mode == "wait"
        else (config.get("download_cpu") or "4", config.get("download_memory") or "8Gi")
    )
    return {
        "name": "model-%s" % mode,
        "image": image,
        "imagePullPolicy": config.get("image_pull_policy", "IfNotPresent"),
        "command": ["/bin/sh", "%s/%s" % (SCRIPT_MOUNT, SCRIPT_KEY), mode],
        "env": env,
        # The pod's status then carries the outcome (the script's last line, or on failure the log's tail),
        # which apply mode reports without reading logs through the kubelet.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        # requests = limits: an init container with less makes the engine pod Burstable, not Guaranteed.
        "resources": pod_policy.guaranteed_resources(cpu, memory),
        "securityContext": pod_policy.container_security_context(),
        "volumeMounts": [
            {"name": VOLUME_NAME, "mountPath": config["mount_path"], "readOnly": mode == "wait"},
            {"name": SCRIPT_VOLUME, "mountPath": SCRIPT_MOUNT, "readOnly": True},
        ],
    }


def _script_volume(config):
    return {"name": SCRIPT_VOLUME, "configMap": {"name": _names(config)["script"], "defaultMode": 0o555}}


def engine_pod_names(config, plan, replicas):
    """Names of the engine pods, as the StatefulSets behind the workload give them.

    LeaderWorkerSet: leader ``<name>-<group>``, workers ``<name>-<group>-<index>``; StatefulSet ``<name>-<i>``.
    """
    server = config.get("server_name") or config["name"]
    nodes = int(plan["nodes"])
    names = []
    for group in range(int(replicas)):
        names.append("%s-%d" % (server, group))
        names += ["%s-%d-%d" % (server, group, index) for index in range(1, nodes)]
    return names


def _placement(config, plan):
    return pod_policy.placement(
        pod_policy.plan_vendor(plan, config.get("accelerator_vendor") or ""),
        plan,
        node_labels=config.get("node_labels"),
        tolerations=config.get("tolerations"),
        extra_tolerations=config.get("extra_tolerations"),
        node_selector=config.get("node_selector"),
    )


def _stage_nodes(config, pods, required):
    nodes = [str(node) for node in (config.get("stage_nodes") or [])]
    if len(set(nodes)) != len(nodes):
        raise LlmopsError("model_cache_stage_nodes lists a node twice: %s" % ", ".join(nodes))
    if (nodes or required) and len(nodes) < pods:
        raise LlmopsError(
            "the model cache is staged on every node before the group starts: model_cache_stage_nodes needs at "
            "least %d node names (the engine pods run only there), got %d; list them with kubectl get nodes"
            % (pods, len(nodes))
        )
    return nodes


def cache_plan(config, plan, replicas=1):
    """Everything the cache contributes: objects to apply and what the server's pods need.

    Returns a dict with ``objects`` (ConfigMap, [PVCs], [Jobs], in apply order) and ``layout``, the
    value the serving stage keeps as ``llmops_model_cache`` for roles/inference_server.
    """
    validate(config)
    config = dict(config, expected_bytes=model_gib(config, plan) * 2**30)
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
        "compile_cache_sub_path": COMPILE_CACHE_SUB_PATH,
        "node_names": [],
    }
    pods = engine_pod_names(config, plan, replicas)
    wait = downloader_container(config, "wait", model_path)
    if mode == "shared_pvc":
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": dict(meta, name=names["pvc"]),
                "spec": claim_spec,
            }
        )
        # A single-pod RWO cache is filled where the engine will run: a node-local volume binds to the node
        # of its first pod, so the Job runs on a node of the planned accelerator.
        place = _placement(config, plan) if claim_spec["accessModes"][0] != "ReadWriteMany" else None
        objects.append(download_job(config, model_path, meta, names["pvc"], "download", place))
        # Not read-only at the volume: the engines' compile cache is a writable subfolder of it.
        layout["volume"] = {"persistentVolumeClaim": {"claimName": names["pvc"]}}
        layout["init_container"] = wait
    elif mode == "per_pod_pvc":
        layout["volume_claim_template"] = {"metadata": {"name": VOLUME_NAME, "labels": labels}, "spec": claim_spec}
        nodes = _stage_nodes(config, len(pods), False)
        place = _placement(config, plan)
        server = config.get("server_name") or config["name"]
        for index, pod in enumerate(pods):
            claim = "%s-%s" % (VOLUME_NAME, pod)
            objects.append(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": dict(meta, name=claim),
                    "spec": claim_spec,
                }
            )
            job_place = _pinned(place, nodes[index]) if nodes else dict(place, spread=True)
            objects.append(download_job(config, model_path, meta, claim, "stage-" + pod[len(server) + 1 :], job_place))
        layout["init_container"] = wait
        layout["node_names"] = nodes
    else:
        layout["volume"] = {"hostPath": {"path": config["host_path"], "type": "DirectoryOrCreate"}}
        nodes = _stage_nodes(config, len(pods), int(plan["nodes"]) > 1)
        if nodes:
            place = _placement(config, plan)
            for node in nodes:
                objects.append(
                    download_job(
                        config,
                        model_path,
                        meta,
                        None,
                        "stage-" + re.sub(r"[^a-z0-9-]+", "-", node.lower())[:20].strip("-"),
                        _pinned(place, node),
                    )
                )
            layout["init_container"] = wait
            layout["node_names"] = nodes
        else:
            layout["init_container"] = downloader_container(config, "download", model_path)
    return {"objects": objects, "layout": layout}


def _pinned(place, node):
    """Placement on exactly ``node`` (hostname label, so the scheduler still checks taints and room)."""
    return dict(place, affinity=None, node_selector={pod_policy.HOSTNAME_LABEL: node})


def download_job(config, model_path, meta, claim, suffix, place=None):
    """Job that fills one cache (a PVC ``claim``, or the node's host path when ``claim`` is None).

    Its name carries a hash of its spec: Job templates are immutable, so a changed source gives a new Job,
    and an unchanged one is applied again without a change. ``place`` (pod_policy.placement) puts it on
    the nodes the engine will use; ``spread`` keeps staging pods of one server on different nodes.
    """
    container = downloader_container(config, "download", model_path)
    if claim:
        volume = {"name": VOLUME_NAME, "persistentVolumeClaim": {"claimName": claim}}
    else:
        volume = {"name": VOLUME_NAME, "hostPath": {"path": config["host_path"], "type": "DirectoryOrCreate"}}
    pod_spec = {
        # Never (a new pod per retry): podFailurePolicy, which fails the Job at once on a permanent error
        # instead of retrying with back-off for minutes, requires it.
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": pod_policy.pod_security_context(),
        "containers": [container],
        "volumes": [volume, _script_volume(config)],
    }
    pod_labels = dict(meta["labels"])
    if place:
        if place.get("node_selector"):
            pod_spec["nodeSelector"] = dict(place["node_selector"])
        if place.get("tolerations"):
            pod_spec["tolerations"] = list(place["tolerations"])
        affinity = dict(place.get("affinity") or {})
        if place.get("spread"):
            pod_labels[STAGE_LABEL] = config["name"]
            affinity["podAntiAffinity"] = {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "labelSelector": {"matchLabels": {STAGE_LABEL: config["name"]}},
                        "topologyKey": pod_policy.HOSTNAME_LABEL,
                    }
                ]
            }
        if affinity:
            pod_spec["affinity"] = affinity
    digest = hashlib.sha256(json.dumps([pod_spec, config["script"]], sort_keys=True).encode("utf-8")).hexdigest()
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": dict(meta, name="%s-%s-%s" % (config["name"][:30].rstrip("-"), suffix, digest[:8])),
        "spec": {
            "backoffLimit": int(config.get("download_retries", 6)),
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": container["name"],
                            "operator": "In",
                            "values": [PERMANENT_FAILURE_EXIT],
                        },
                    }
                ]
            },
            "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec},
        },
    }
