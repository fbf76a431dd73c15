#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: admission_check
short_description: Will the cluster admit the pods about to be created (Pod Security, SCC, webhooks, ResourceQuota)
version_added: 0.3.0
description:
  - For every pod template in O(objects) (Deployment, StatefulSet, Job, DaemonSet, LeaderWorkerSet leader and
    worker templates, bare Pods), sends one Pod to the API server with C(dryRun=All). Pod Security admission,
    OpenShift security context constraints, LimitRanges and admission webhooks judge it exactly as they will judge
    the real pod, and nothing is stored.
  - Sums what every pod will charge against the namespace's ResourceQuotas (a LeaderWorkerSet of size 2 and 3
    replicas is 6 pods) and refuses a shortfall that a dry run of one pod cannot see. Pods of the current release
    (found by the objects' labels) are counted as released, so re-running an unchanged deployment passes.
  - Checks first that the API server serves every apiVersion and kind of O(objects) (discovery), so a missing add-on
    or one installed at a release without that API (LeaderWorkerSet, Volcano PodGroup, KServe InferenceService,
    a ServiceMonitor) is refused by name.
  - A namespace that does not exist yet, and a template whose ServiceAccount does not exist yet (it is created
    with the objects), are reported in RV(notes) and not judged.
  - Reads and dry-runs only, so it runs in check mode as well.
options:
  objects:
    description: Manifests as the serve stage builds them; kinds without a pod template are ignored.
    type: list
    elements: dict
    required: true
  namespace:
    description: Namespace for objects that carry none.
    type: str
    default: default
  kubeconfig:
    description: Path to a kubeconfig. Empty uses E(K8S_AUTH_KUBECONFIG), E(KUBECONFIG), then the in-cluster config.
    type: path
  context:
    description: Context of the kubeconfig to use; empty uses its current context.
    type: str
  quota:
    description: Also judge the summed usage against the namespaces' ResourceQuotas.
    type: bool
    default: true
  fail_on_problems:
    description: Fail when a template is refused or a quota is short; false only reports RV(problems).
    type: bool
    default: true
requirements:
  - kubernetes (the Python client kubernetes.core also needs)
author:
  - llmops.inference maintainers (@llmops)
"""

EXAMPLES = r"""
- name: Refuse pods the namespace would not admit, before anything is applied
  llmops.inference.admission_check:
    kubeconfig: "{{ llmops_kubeconfig }}"
    namespace: "{{ inference_server_namespace }}"
    objects: "{{ _inference_server_objects }}"
"""

RETURN = r"""
pods:
  description: One entry per pod template with its verdict.
  returned: always
  type: list
  elements: dict
  sample:
    - owner: LeaderWorkerSet/deepseek-r1
      role: leader
      namespace: llmops
      pods: 1
      verdict: admitted
      warnings: []
quota:
  description: Per namespace, what all the pods will charge against a ResourceQuota (readable amounts).
  returned: always
  type: dict
  sample: {"llmops": {"pods": "2", "requests.nvidia.com/gpu": "16", "requests.memory": "1024Gi"}}
problems:
  description: Refused templates and quota shortfalls, each with its fix.
  returned: always
  type: list
  elements: str
notes:
  description: What was not judged and why (namespace or ServiceAccount not created yet, scoped quotas).
  returned: always
  type: list
  elements: str
"""

import json
import os
from decimal import Decimal

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.llmops.inference.plugins.module_utils import admission

try:
    import urllib3
    from kubernetes import client, config, dynamic
    from kubernetes.client.rest import ApiException
    from kubernetes.dynamic.exceptions import ResourceNotFoundError, ResourceNotUniqueError

    HAS_KUBERNETES = True
    IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module
    HAS_KUBERNETES = False
    IMPORT_ERROR = exc


def _api_client(kubeconfig, context):
    path = kubeconfig or os.environ.get("K8S_AUTH_KUBECONFIG") or os.environ.get("KUBECONFIG")
    if path:
        return config.new_client_from_config(config_file=path, context=context or None)
    config.load_incluster_config()
    return client.ApiClient()


def _message(exc):
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return str(exc.body or exc.reason)
    return body.get("message") or str(exc.reason)


def _exists(read, *args):
    try:
        read(*args)
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


def _released(core, namespace, templates):
    """Quota usage of the pods the objects will replace (the current release's running pods)."""
    total = {}
    seen = set()
    for where, selector in admission.pod_label_selectors([t for t in templates if t["namespace"] == namespace]):
        for pod in core.list_namespaced_pod(where, label_selector=selector).items:
            if pod.metadata.uid in seen or pod.status.phase in ("Succeeded", "Failed"):
                continue
            seen.add(pod.metadata.uid)
            spec = core.api_client.sanitize_for_serialization(pod.spec)
            for name, amount in admission.pod_usage(spec).items():
                total[name] = total.get(name, Decimal(0)) + amount
    return total


def _served(api_client):
    """served(api_version, kind) from the API server's discovery (read once, cached by the dynamic client)."""
    found = {}

    def served(api_version, kind):
        if "resources" not in found:  # discovery only when there is something to look up
            resources = dynamic.DynamicClient(api_client).resources
            # Fresh, not from the dynamic client's cache file (one per API server, shared by every client on this
            # machine): it can still list a kind whose CRD was removed since, which would pass a missing add-on.
            resources.invalidate_cache()
            found["resources"] = resources
        try:
            found["resources"].get(api_version=api_version, kind=kind)
            return True
        except (ResourceNotFoundError, ResourceNotUniqueError):
            return False

    return served


def check(core, templates, usage, judge_quota, objects=None):
    result = {"pods": [], "quota": {}, "problems": [], "notes": []}
    result["problems"].extend(admission.unserved(objects, _served(core.api_client)))
    namespaces = []
    for entry in templates:
        if entry["namespace"] not in namespaces:
            namespaces.append(entry["namespace"])
    missing = [name for name in namespaces if not _exists(core.read_namespace, name)]
    for name in missing:
        result["notes"].append(
            "namespace %s does not exist yet (the serve stage creates it): its pods were not judged; the cluster's "
            "default Pod Security level will apply" % name
        )
    for entry in templates:
        verdict = {key: entry[key] for key in ("owner", "role", "namespace", "pods")}
        verdict.update(verdict="not judged", warnings=[])
        result["pods"].append(verdict)
        if entry["namespace"] in missing:
            continue
        account = entry["template"]["spec"].get("serviceAccountName") or ""
        if account and not _exists(core.read_namespaced_service_account, account, entry["namespace"]):
            result["notes"].append(
                "%s (%s pod): ServiceAccount %s does not exist yet (created with the objects): not judged"
                % (entry["owner"], entry["role"], account)
            )
            continue
        try:
            _data, _status, headers = core.create_namespaced_pod_with_http_info(
                entry["namespace"], admission.dry_run_pod(entry), dry_run="All"
            )
            verdict["verdict"] = "admitted"
            warning = (headers or {}).get("Warning")
            verdict["warnings"] = [warning] if warning else []
        except ApiException as exc:
            if exc.status not in (400, 403, 409, 422):
                raise
            verdict["verdict"] = "refused"
            result["problems"].append(
                admission.admission_problem(
                    entry["owner"], entry["role"], entry["namespace"], exc.status, exc.reason, _message(exc)
                )
            )
    for name, needed in usage.items():
        result["quota"][name] = {key: admission.format_quantity(key, value) for key, value in sorted(needed.items())}
        if not judge_quota or name in missing:
            continue
        quotas = core.api_client.sanitize_for_serialization(core.list_namespaced_resource_quota(name).items)
        problems, notes = admission.quota_problems(quotas, needed, _released(core, name, templates))
        result["problems"].extend(problems)
        result["notes"].extend(notes)
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            objects=dict(type="list", elements="dict", required=True),
            namespace=dict(type="str", default="default"),
            kubeconfig=dict(type="path"),
            context=dict(type="str"),
            quota=dict(type="bool", default=True),
            fail_on_problems=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(IMPORT_ERROR))
    params = module.params
    # Judge the objects before any API call: a malformed manifest is the caller's error, not the cluster's.
    try:
        templates = admission.pod_templates(params["objects"], params["namespace"])
        usage = admission.usage_of(templates)
    except ValueError as exc:
        module.fail_json(msg="admission_check: %s" % exc, problems=[str(exc)])
    try:
        core = client.CoreV1Api(_api_client(params["kubeconfig"], params["context"]))
        result = check(core, templates, usage, params["quota"], params["objects"])
    except ApiException as exc:
        module.fail_json(msg="admission_check: the API answered %s: %s" % (exc.status, _message(exc)))
    except (config.ConfigException, OSError, ValueError, urllib3.exceptions.HTTPError) as exc:
        module.fail_json(msg="admission_check: cannot reach the Kubernetes API: %s" % exc)
    if result["problems"] and params["fail_on_problems"]:
        module.fail_json(
            msg="the cluster would refuse these objects: " + " | ".join(result["problems"]), changed=False, **result
        )
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
