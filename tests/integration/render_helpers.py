"""Helpers shared by the render-mode integration tests: run a playbook of this tree in render mode, read
what it wrote, and check every custom resource against the real upstream CRD schema (../shared/crds).

Imported by name (``from render_helpers import ...``): pytest puts this folder on sys.path.
"""

import copy
import glob
import json
import os
import shlex
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")
CRDS = os.path.join(os.path.dirname(ROOT), "shared", "crds")
if not os.path.isdir(CRDS):
    CRDS = "/work/shared/crds"
PLANS = os.path.join(ROOT, "tests", "integration", "fixtures", "plans")
BIN = os.path.dirname(sys.executable)

# kind -> (CRD file under ../shared/crds, served version the collection writes)
SCHEMAS = {
    "LeaderWorkerSet": ("lws/leaderworkerset.x-k8s.io_leaderworkersets.yaml", "v1"),
    "PodGroup": ("volcano/scheduling.volcano.sh_podgroups.yaml", "v1beta1"),
    "ServiceMonitor": ("prometheus-operator/monitoring.coreos.com_servicemonitors.yaml", "v1"),
    "Route": ("openshift-api/routes.crd.yaml", "v1"),
    "SecurityContextConstraints": (
        "openshift-api/0000_03_config-operator_01_securitycontextconstraints.crd.yaml",
        "v1",
    ),
    "ServingRuntime": ("kserve/serving.kserve.io_servingruntimes.yaml", "v1alpha1"),
    "InferenceService": ("kserve/serving.kserve.io_inferenceservices.yaml", "v1beta1"),
    "Subscription": ("operator-framework-api/operators.coreos.com_subscriptions.yaml", "v1alpha1"),
    "OperatorGroup": ("operator-framework-api/operators.coreos.com_operatorgroups.yaml", "v1"),
    "DSCInitialization": ("opendatahub-operator/dscinitialization.opendatahub.io_dscinitializations.yaml", "v2"),
    "DataScienceCluster": ("opendatahub-operator/datasciencecluster.opendatahub.io_datascienceclusters.yaml", "v2"),
}


def ensure_collection_link():
    link = os.path.join(COLLECTIONS, "ansible_collections", "llmops", "inference")
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(ROOT, link)


def load_plan(inventory):
    with open(os.path.join(PLANS, inventory + ".yml")) as handle:
        return yaml.safe_load(handle)


def ansible_env(**extra):
    """The environment of an ansible-playbook run on this tree as llmops.inference (the link made first)."""
    ensure_collection_link()
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
        ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
    )
    env.update(extra)
    return env


def run_render(inventory, render_dir, *extra, plan=True, playbook="serve.yml"):
    """ansible-playbook -v of playbooks/<playbook> on inventories/<inventory> in render mode.

    ``plan=True`` passes the recorded plan (fixtures/plans/<inventory>.yml) as serving_plan_override.
    """
    env = ansible_env()
    command = [
        os.path.join(BIN, "ansible-playbook"),
        "-i",
        os.path.join(ROOT, "inventories", inventory),
        os.path.join(ROOT, "playbooks", playbook),
        "-v",
        "-e",
        "llmops_apply_mode=render",
        "-e",
        "llmops_render_dir=%s" % render_dir,
    ]
    if plan:
        command += ["-e", json.dumps({"serving_plan_override": load_plan(inventory)})]
    command += list(extra)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT, check=False)


def read(path):
    with open(path) as handle:
        return handle.read()


def engine_argv(container):
    """The engine's argv: the command itself, or the line a start script execs (SGLang's API-key start)."""
    command = container["command"]
    if command[:2] != ["/bin/bash", "-c"]:
        return command
    return shlex.split(command[2].splitlines()[-1][len("exec ") :])


def rendered_files(render_dir):
    return sorted(glob.glob(os.path.join(render_dir, "*", "*.yaml")))


def rendered(render_dir):
    """kind -> [objects] of everything the run wrote."""
    objects = {}
    for path in rendered_files(render_dir):
        with open(path) as handle:
            obj = yaml.safe_load(handle)
        objects.setdefault(obj["kind"], []).append(obj)
    return objects


def crd_schema(relative, version):
    with open(os.path.join(CRDS, relative)) as handle:
        for doc in yaml.safe_load_all(handle):
            for served in doc["spec"]["versions"]:
                if served["name"] == version:
                    return served["schema"]["openAPIV3Schema"]
    raise AssertionError("no version %s in %s" % (version, relative))


def _openapi_to_jsonschema(node):
    """Kubernetes structural schemas are OpenAPI v3: int-or-string has no JSON Schema type of its own."""
    if isinstance(node, dict):
        if node.get("x-kubernetes-int-or-string"):
            node.pop("anyOf", None)
            node["type"] = ["integer", "string"]
        # `nullable: true` admits null (the SCC CRD requires priority/defaultAddCapabilities, null allowed).
        if node.get("nullable") is True and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        for key in [k for k, v in node.items() if v is None]:
            del node[key]
        for value in node.values():
            _openapi_to_jsonschema(value)
    elif isinstance(node, list):
        for item in node:
            _openapi_to_jsonschema(item)
    return node


def pruned_fields(obj, schema, path=""):
    """Fields the API server would silently drop (not in a structural schema): a misspelled or retired
    field name passes plain JSON Schema validation, so look for them separately."""
    found = []
    if not isinstance(schema, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return found
    if isinstance(obj, dict):
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        for key, value in obj.items():
            if properties is not None and key in properties:
                found += pruned_fields(value, properties[key], "%s.%s" % (path, key))
            elif isinstance(additional, dict):
                found += pruned_fields(value, additional, "%s.%s" % (path, key))
            elif properties is not None and not (path == "" and key in ("apiVersion", "kind", "metadata")):
                found.append("%s.%s" % (path, key))
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(obj):
            found += pruned_fields(item, schema["items"], "%s[%d]" % (path, index))
    return found


def validate_custom_resources(objects):
    """Validate every rendered custom resource against its CRD; return how many were checked."""
    import jsonschema

    checked = 0
    for kind, (relative, version) in SCHEMAS.items():
        for obj in objects.get(kind, []):
            assert obj["apiVersion"].endswith("/" + version), obj["apiVersion"]
            schema = crd_schema(relative, version)
            assert pruned_fields(obj, schema) == [], "%s/%s" % (kind, obj["metadata"]["name"])
            jsonschema.Draft7Validator(_openapi_to_jsonschema(copy.deepcopy(schema))).validate(obj)
            checked += 1
    return checked
