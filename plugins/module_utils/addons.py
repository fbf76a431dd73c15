# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Logic shared by the cluster add-on roles (roles/helm_release and the roles that call it).

Everything the roles decide before touching a cluster lives here, so it is tested without one:
- which versions of an add-on are known (and which chart version, which image keys go with each),
- where the chart comes from (repository URL, OCI reference, local archive),
- the Helm values a role passes, built from the role's settings, with every image moved to the mirror,
- whether a LeaderWorkerSet upgrade is safe (the <= 0.7 -> >= 0.8 CRD trap),
- reading a field of an object's status for the readiness waits.

The image keys and setting keys below were taken from the upstream charts' values.yaml files; the
unit tests check them against recorded key lists (tests/unit/fixtures/addons/) so a key that the
upstream chart does not have is caught before it reaches a cluster.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import re

from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError
from ansible_collections.llmops.inference.plugins.module_utils.manifests import mirror_image

# Image keys, per chart layout. ("repository", path): the value is registry/path[/name] (no tag) and
# the registry part is replaced by the mirror; ("registry", path): the value is a registry host only
# and becomes the mirror itself. The default is the upstream value, used when the user sets none.
# GPU Operator v26.7.0; older releases differ as _gpu_operator_images() says.
_GPU_OPERATOR_V26 = {
    "operator.repository": "nvcr.io/nvidia",
    "validator.repository": "nvcr.io/nvidia",
    "driver.repository": "nvcr.io/nvidia",
    "driver.manager.repository": "nvcr.io/nvidia/cloud-native",
    "toolkit.repository": "nvcr.io/nvidia/k8s",
    "devicePlugin.repository": "nvcr.io/nvidia",
    "dcgm.repository": "nvcr.io/nvidia/cloud-native",
    "dcgmExporter.repository": "nvcr.io/nvidia/k8s",
    "gfd.repository": "nvcr.io/nvidia",
    "migManager.repository": "nvcr.io/nvidia/cloud-native",
    "nodeStatusExporter.repository": "nvcr.io/nvidia",
    "gds.repository": "nvcr.io/nvidia/cloud-native",
    "gdrcopy.repository": "nvcr.io/nvidia/cloud-native",
    "vgpuManager.driverManager.repository": "nvcr.io/nvidia/cloud-native",
    "vgpuDeviceManager.repository": "nvcr.io/nvidia/cloud-native",
    "vfioManager.repository": "nvcr.io/nvidia/cloud-native",
    "vfioManager.driverManager.repository": "nvcr.io/nvidia/cloud-native",
    "sandboxDevicePlugin.repository": "nvcr.io/nvidia",
    "kataSandboxDevicePlugin.repository": "nvcr.io/nvidia/cloud-native",
    "ccManager.repository": "nvcr.io/nvidia/cloud-native",
    "draDriver.repository": "nvcr.io/nvidia",
}


def _gpu_operator_images(version):
    images = dict(_GPU_OPERATOR_V26)
    if version != "v26":
        # Up to v25.10: Kata manager and the operator's init container; no DRA driver, no Kata sandbox plugin.
        for path in ("draDriver.repository", "kataSandboxDevicePlugin.repository"):
            del images[path]
        images.update(
            {
                "kataManager.repository": "nvcr.io/nvidia/cloud-native",
                "operator.initContainer.repository": "nvcr.io/nvidia",
                "vfioManager.repository": "nvcr.io/nvidia",
            }
        )
    if version == "v24":
        images.update(
            {
                "validator.repository": "nvcr.io/nvidia/cloud-native",
                "nodeStatusExporter.repository": "nvcr.io/nvidia/cloud-native",
            }
        )
    return [("repository", path, default) for path, default in sorted(images.items())]


_VOLCANO_NAMES = [
    ("basic.controller_image_name", "volcanosh/vc-controller-manager"),
    ("basic.scheduler_image_name", "volcanosh/vc-scheduler"),
    ("basic.admission_image_name", "volcanosh/vc-webhook-manager"),
]

_HAMI_REGISTRIES = [
    ("scheduler.kubeScheduler.image.registry", "registry.cn-hangzhou.aliyuncs.com"),
    ("scheduler.extender.image.registry", "docker.io"),
    ("scheduler.patch.image.registry", "docker.io"),
    ("scheduler.patch.imageNew.registry", "docker.io"),
    ("devicePlugin.image.registry", "docker.io"),
    ("devicePlugin.monitor.image.registry", "docker.io"),
    ("mockDevicePlugin.image.registry", "docker.io"),
]


def _repos(pairs):
    return [("repository", path, default) for path, default in pairs]


def _registries(pairs):
    return [("registry", path, default) for path, default in pairs]


# Settings: role setting name -> (values path, minimum add-on version or None). A setting left at
# None or "" is not passed, so the chart default applies.
CATALOG = {
    "gpu_operator": {
        "chart": "gpu-operator",
        "versions": {
            "v26.7.0": {"chart_version": "v26.7.0", "images": _gpu_operator_images("v26")},
            "v25.10.1": {"chart_version": "v25.10.1", "images": _gpu_operator_images("v25")},
            "v24.9.1": {"chart_version": "v24.9.1", "images": _gpu_operator_images("v24")},
        },
        "settings": {
            "driver_enabled": ("driver.enabled", None),
            "driver_version": ("driver.version", None),
            "toolkit_enabled": ("toolkit.enabled", None),
            "device_plugin_enabled": ("devicePlugin.enabled", None),
            "gfd_enabled": ("gfd.enabled", None),
            "dcgm_exporter_enabled": ("dcgmExporter.enabled", None),
            "dcgm_exporter_service_monitor": ("dcgmExporter.serviceMonitor.enabled", None),
            "mig_strategy": ("mig.strategy", None),
            "mig_manager_enabled": ("migManager.enabled", None),
            "nfd_enabled": ("nfd.enabled", None),
            "cdi_enabled": ("cdi.enabled", None),
        },
    },
    "node_feature_discovery": {
        "chart": "node-feature-discovery",
        "versions": {
            "v0.19.0": {
                "chart_version": "0.19.0",
                "images": _repos([("image.repository", "registry.k8s.io/nfd/node-feature-discovery")]),
            },
            "v0.17.3": {
                "chart_version": "0.17.3",
                "images": _repos([("image.repository", "registry.k8s.io/nfd/node-feature-discovery")]),
            },
        },
        "settings": {
            "master_replicas": ("master.replicaCount", None),
            "worker_tolerations": ("worker.tolerations", None),
            "gc_enabled": ("gc.enable", None),
            "topology_updater_enabled": ("topologyUpdater.enable", None),
        },
    },
    "volcano": {
        "chart": "volcano",
        "versions": {
            "v1.15.1": {"chart_version": "1.15.1", "images": _registries([("basic.image_registry", "docker.io")])},
            "v1.9.0": {"chart_version": "1.9.0", "images": _repos(_VOLCANO_NAMES)},
        },
        "settings": {
            "image_tag": ("basic.image_tag_version", None),
            "scheduler_replicas": ("custom.scheduler_replicas", None),
            "controller_replicas": ("custom.controller_replicas", None),
            "metrics_enabled": ("custom.metrics_enable", None),
        },
    },
    "leaderworkerset": {
        "chart": "lws",
        "versions": {
            "v0.10.0": {
                "chart_version": "0.10.0",
                "images": _repos([("image.manager.repository", "registry.k8s.io/lws/lws")]),
            },
            "v0.7.0": {
                "chart_version": "0.7.0",
                "images": _repos([("image.manager.repository", "registry.k8s.io/lws/lws")]),
            },
            "v0.5.1": {
                "chart_version": "0.5.1",
                "images": _repos(
                    [
                        ("image.manager.repository", "gcr.io/k8s-staging-lws/lws"),
                        ("image.kubeRbacProxy.repository", "gcr.io/kubebuilder/kube-rbac-proxy"),
                    ]
                ),
            },
        },
        "settings": {
            "replicas": ("replicaCount", None),
            "image_tag": ("image.manager.tag", None),
            "prometheus_enabled": ("enablePrometheus", None),
            "gang_scheduler": ("gangSchedulingManagement.schedulerProvider", "v0.7.0"),
        },
    },
    "kuberay": {
        "chart": "kuberay-operator",
        "versions": {
            "v1.7.0": {"chart_version": "1.7.0", "images": _repos([("image.repository", "quay.io/kuberay/operator")])},
            "v1.2.2": {"chart_version": "1.2.2", "images": _repos([("image.repository", "quay.io/kuberay/operator")])},
        },
        "settings": {
            "batch_scheduler": ("batchScheduler.name", None),
            "single_namespace": ("singleNamespaceInstall", None),
        },
    },
    # Plain manifests (upstream publishes no chart): only the known versions matter.
    "rdma_device_plugin": {
        "chart": None,
        "versions": {
            "v1.5.3": {"chart_version": None, "images": []},
            "v1.5.2": {"chart_version": None, "images": []},
        },
        "settings": {},
    },
    "hami": {
        "chart": "hami",
        "versions": {
            "v2.10.0": {"chart_version": "2.10.0", "images": _registries(_HAMI_REGISTRIES)},
        },
        "settings": {
            "resource_name": ("resourceName", None),
            "resource_mem": ("resourceMem", None),
            "resource_mem_percentage": ("resourceMemPercentage", None),
            "resource_cores": ("resourceCores", None),
            "resource_priority": ("resourcePriority", None),
            "scheduler_name": ("schedulerName", None),
            "kube_scheduler_tag": ("scheduler.kubeScheduler.image.tag", None),
            "node_selector": ("devicePlugin.nvidiaNodeSelector", None),
        },
    },
}

_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$")


def parse_version(version):
    """``v0.5.1`` / ``0.5.1`` / ``24.9.1`` -> (0, 5, 1). Pre-release suffixes are ignored."""
    match = _VERSION_RE.match(str(version).strip()) if version is not None else None
    if not match:
        raise LlmopsError("not a version: %r (expected MAJOR.MINOR.PATCH, with or without a leading v)" % (version,))
    return tuple(int(part) for part in match.groups())


def compare_versions(left, right):
    """-1, 0 or 1 as ``left`` is older than, equal to or newer than ``right``."""
    left_t, right_t = parse_version(left), parse_version(right)
    return (left_t > right_t) - (left_t < right_t)


def _addon(addon):
    if addon not in CATALOG:
        raise LlmopsError("unknown add-on %r; known: %s" % (addon, ", ".join(sorted(CATALOG))))
    return CATALOG[addon]


def known_versions(addon):
    """Known versions of an add-on, newest first."""
    return sorted(_addon(addon)["versions"], key=parse_version, reverse=True)


def resolve_version(addon, version, allow_unknown=False, chart_version=""):
    """Look a version up in the catalog.

    Returns a dict with the version, the chart version, the image keys and ``known``. An unknown
    version is refused, with the known ones listed, unless ``allow_unknown``: then the image keys of
    the nearest older known version are used (the chart's layout rarely changes between patch
    releases) and the caller is told to check them.
    """
    entry = _addon(addon)
    parsed = parse_version(version)
    normalized = "v%d.%d.%d" % parsed
    versions = entry["versions"]
    if normalized in versions:
        info = versions[normalized]
        return {
            "addon": addon,
            "version": normalized,
            "chart": entry["chart"],
            "chart_version": chart_version or info["chart_version"],
            "images": info["images"],
            "known": True,
        }
    if not allow_unknown:
        raise LlmopsError(
            "%s version %s is not one this collection knows (known: %s). Pick a known version, or set "
            "%s_allow_unknown_version: true to use it with the chart layout of the nearest older known "
            "version (check the image keys in docs/addons.md)."
            % (addon, version, ", ".join(known_versions(addon)), addon)
        )
    older = [known for known in known_versions(addon) if parse_version(known) < parsed]
    base = older[0] if older else known_versions(addon)[-1]
    return {
        "addon": addon,
        "version": normalized,
        "chart": entry["chart"],
        "chart_version": chart_version or normalized.lstrip("v"),
        "images": versions[base]["images"],
        "known": False,
        "layout_of": base,
    }


def _set_path(values, path, value):
    node = values
    parts = path.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def get_path(values, path, default=None):
    """Value at a dotted path of nested dicts, or ``default``."""
    node = values
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def deep_merge(base, override):
    """Recursive dict merge; ``override`` wins, lists are replaced, inputs are not changed."""
    result = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def mirror_values(values, images, mirror):
    """Point every image key of a chart at ``mirror`` (registry host[/prefix]); empty mirror: unchanged.

    A key the user already set is mirrored from the user's value, so a custom repository keeps its path.
    """
    result = copy.deepcopy(values)
    if not mirror:
        return result
    mirror = mirror.rstrip("/")
    for style, path, default in images:
        current = get_path(result, path, default)
        if not current:
            continue  # e.g. vgpuManager.repository: only set when the user brings a vGPU driver image
        if style == "registry":
            _set_path(result, path, mirror)
        else:
            _set_path(result, path, mirror_image(current, mirror))
    return result


def build_values(addon, version, settings=None, extra_values=None, mirror="", allow_unknown=False):
    """The Helm values a role passes: its settings mapped to chart keys, then the user's extra values,
    then every image moved to the mirror.

    ``settings`` uses the role's own names (without the role prefix), see CATALOG[addon]["settings"].
    """
    entry = _addon(addon)
    info = resolve_version(addon, version, allow_unknown=allow_unknown)
    values = {}
    for name, value in (settings or {}).items():
        if name not in entry["settings"]:
            raise LlmopsError(
                "%s has no setting %r; known settings: %s" % (addon, name, ", ".join(sorted(entry["settings"])))
            )
        if value is None or value == "":
            continue
        path, minimum = entry["settings"][name]
        if minimum and compare_versions(info["version"], minimum) < 0:
            raise LlmopsError(
                "%s_%s needs %s %s or newer (this is %s); unset it or pick a newer version"
                % (addon, name, addon, minimum, info["version"])
            )
        _set_path(values, path, value)
    if extra_values and not isinstance(extra_values, dict):
        raise LlmopsError("%s_values must be a mapping of Helm values, got %r" % (addon, extra_values))
    values = deep_merge(values, extra_values or {})
    return mirror_values(values, info["images"], mirror)


def flatten_keys(values, prefix=""):
    """Dotted key paths of nested dicts (every level), used to compare with upstream key lists."""
    keys = []
    for key, value in values.items():
        path = "%s.%s" % (prefix, key) if prefix else str(key)
        keys.append(path)
        if isinstance(value, dict) and value:
            keys.extend(flatten_keys(value, path))
    return keys


def unknown_keys(values, upstream_keys):
    """Keys of ``values`` the upstream chart does not have. A key below an upstream empty map
    (recorded as ``path.{}``: nodeSelector, annotations...) is accepted."""
    known = set(upstream_keys)
    open_maps = [key[:-3] for key in known if key.endswith(".{}")]
    missing = []
    for key in flatten_keys(values):
        if key in known or any(key.startswith(prefix + ".") for prefix in open_maps):
            continue
        missing.append(key)
    return missing


def chart_reference(source, chart, version, repo_url="", oci_ref="", archive=""):
    """Arguments for kubernetes.core.helm / helm_template from the chart source.

    ``repo``: chart name + repository URL + version; ``oci``: oci:// reference + version;
    ``local``: a chart archive (.tgz) or folder, whose own version is used.
    """
    if source == "repo":
        if not repo_url:
            raise LlmopsError(
                "chart source is 'repo' but no repository URL is set for %s; set the role's "
                "*_chart_repo_url, or llmops_chart_source: local with *_chart_archive" % chart
            )
        return {"chart_ref": chart, "chart_repo_url": repo_url, "chart_version": version, "local": False}
    if source == "oci":
        if not oci_ref or not str(oci_ref).startswith("oci://"):
            raise LlmopsError(
                "chart source is 'oci' but the OCI reference for %s is %r; set the role's "
                "*_chart_oci_ref to oci://registry/path/%s" % (chart, oci_ref, chart)
            )
        return {"chart_ref": oci_ref, "chart_repo_url": None, "chart_version": version, "local": False}
    if source == "local":
        if not archive:
            raise LlmopsError(
                "chart source is 'local' but no chart archive is set for %s; set the role's "
                "*_chart_archive to the path of %s-<version>.tgz" % (chart, chart)
            )
        return {"chart_ref": archive, "chart_repo_url": None, "chart_version": None, "local": True}
    raise LlmopsError("llmops_chart_source must be repo, oci or local, got %r" % (source,))


# LeaderWorkerSet: up to v0.7.0 the chart rendered the CRD from templates/ (so the CRD belongs to the
# release); from v0.8.0 it ships in crds/. The first `helm upgrade` across that boundary deletes the CRD
# and with it every LeaderWorkerSet (kubernetes-sigs/lws#880), unless the CRD carries
# helm.sh/resource-policy: keep.
LWS_CRD_LEAVES_RELEASE = "v0.8.0"
LWS_CRD_NAME = "leaderworkersets.leaderworkerset.x-k8s.io"
KEEP_ANNOTATION = "helm.sh/resource-policy"


def lws_upgrade_plan(installed_version, target_version, crd=None, policy="safe"):
    """Decide how to install or upgrade LeaderWorkerSet without losing the CRD.

    ``installed_version``: app version of the existing Helm release ("" when none);
    ``crd``: the live CRD object (or {}); ``policy``: ``safe`` (keep the CRD, apply the new CRDs,
    then upgrade) or ``refuse`` (stop and say what to do).

    Returns {action: install|upgrade|safe_upgrade, annotate_keep, apply_crds, message}.
    """
    if policy not in ("safe", "refuse"):
        raise LlmopsError("leaderworkerset_crd_upgrade_policy must be safe or refuse, got %r" % (policy,))
    target = parse_version(target_version)
    boundary = parse_version(LWS_CRD_LEAVES_RELEASE)
    crd = crd or {}
    annotations = (crd.get("metadata") or {}).get("annotations") or {}
    kept = annotations.get(KEEP_ANNOTATION) == "keep"
    target_uses_crds_dir = target >= boundary
    if not installed_version:
        message = "no LWS release installed: install %s" % target_version
        if crd and not annotations.get("meta.helm.sh/release-name"):
            message += (
                "; the CRD %s already exists and is not owned by Helm (installed from manifests.yaml?)" % LWS_CRD_NAME
            )
            if not target_uses_crds_dir:
                raise LlmopsError(
                    "LWS chart %s renders the CRD from templates/ but %s already exists outside Helm "
                    "(installed from manifests.yaml?); Helm would refuse to take it over. Remove the old "
                    "install (kubectl delete -f manifests.yaml keeps nothing) or pick LWS >= %s, whose chart "
                    "leaves an existing CRD alone." % (target_version, LWS_CRD_NAME, LWS_CRD_LEAVES_RELEASE)
                )
        return {"action": "install", "annotate_keep": False, "apply_crds": False, "message": message}
    installed = parse_version(installed_version)
    installed_in_templates = installed < boundary
    if target < installed and installed >= boundary > target:
        raise LlmopsError(
            "refusing to downgrade LWS from %s to %s: the older chart renders the CRD from templates/ and "
            "Helm would fight over (or later delete) the CRD that holds every LeaderWorkerSet"
            % (installed_version, target_version)
        )
    if installed_in_templates and target_uses_crds_dir:
        if kept:
            return {
                "action": "upgrade",
                "annotate_keep": False,
                "apply_crds": True,
                "message": "LWS %s -> %s crosses the CRD move; the CRD already carries %s=keep, so Helm "
                "keeps it; applying the new CRDs, then upgrading"
                % (installed_version, target_version, KEEP_ANNOTATION),
            }
        if policy == "refuse":
            raise LlmopsError(
                "refusing to upgrade LWS %s -> %s: this chart upgrade would delete the CRD %s and every "
                "LeaderWorkerSet with it (kubernetes-sigs/lws#880). Run `kubectl annotate crd %s %s=keep "
                "--overwrite` first, or set leaderworkerset_crd_upgrade_policy: safe to let the role do it."
                % (installed_version, target_version, LWS_CRD_NAME, LWS_CRD_NAME, KEEP_ANNOTATION)
            )
        return {
            "action": "safe_upgrade",
            "annotate_keep": True,
            "apply_crds": True,
            "message": "LWS %s -> %s crosses the CRD move (templates/ -> crds/): taking the safe path: "
            "annotating the CRD %s=keep so Helm does not delete it, applying the new CRDs "
            "server-side, then upgrading the release" % (installed_version, target_version, KEEP_ANNOTATION),
        }
    # the same version again (a re-run, or a values change) needs no CRD update: the CRDs are the ones
    # the release was installed or upgraded with
    apply_crds = target_uses_crds_dir and target != installed
    return {
        "action": "upgrade",
        "annotate_keep": False,
        "apply_crds": apply_crds,
        "message": "LWS %s -> %s: %s"
        % (
            installed_version,
            target_version,
            "applying the chart's CRDs first (Helm never updates crds/), then upgrading"
            if apply_crds
            else "the CRDs stay as they are; plain upgrade",
        ),
    }


_SELECTOR_RE = re.compile(r"^(?P<key>[^\[]+)\[(?P<field>[^=\]]+)=(?P<value>[^\]]*)\]$")


def field_at(obj, path, default=None):
    """Read ``status.state`` or ``status.conditions[type=Established].status`` from an object.

    A ``[field=value]`` step picks the first list element whose field equals value.
    """
    node = obj
    for step in path.split("."):
        match = _SELECTOR_RE.match(step)
        key = match.group("key") if match else step
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
        if match:
            if not isinstance(node, list):
                return default
            wanted = [
                item
                for item in node
                if isinstance(item, dict) and str(item.get(match.group("field"))) == match.group("value")
            ]
            if not wanted:
                return default
            node = wanted[0]
    return node
