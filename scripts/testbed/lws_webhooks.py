"""Print URL-based webhook configurations for an out-of-cluster LWS controller.

Reads upstream's config/webhook/manifests.yaml (+ the objectSelector patches) from the pinned
sigs.k8s.io/lws module, so the rules and paths stay those of the pinned version, and points every
webhook at https://127.0.0.1:<port><path> signed by the test bed's local CA.
Usage: lws_webhooks.py <lws module dir> <port> <ca.crt>
"""

import base64
import sys

import yaml

PREFIX = "llmops-testbed-lws-"


def main(module_dir, port, ca_file):
    with open(ca_file, "rb") as handle:
        ca_bundle = base64.b64encode(handle.read()).decode()
    # upstream kustomizes manifests.yaml with JSON patches that replace whole webhooks (adding the
    # pod webhooks' objectSelector); apply the same replacements, matched by webhook name
    replacements = {}
    for patch in ("mutating-patch.yaml", "validating-patch.yaml"):
        with open(f"{module_dir}/config/webhook/{patch}") as handle:
            for operation in yaml.safe_load(handle) or []:
                if operation.get("op") == "replace" and operation.get("path", "").startswith("/webhooks/"):
                    replacements[operation["value"]["name"]] = operation["value"]
    out = []
    with open(f"{module_dir}/config/webhook/manifests.yaml") as handle:
        for doc in yaml.safe_load_all(handle):
            if not doc:
                continue
            doc["metadata"] = {
                "name": PREFIX + doc["kind"].replace("WebhookConfiguration", "").lower(),
                "labels": {"app.kubernetes.io/part-of": "llmops-testbed"},
            }
            doc["webhooks"] = [replacements.get(hook["name"], hook) for hook in doc["webhooks"]]
            for hook in doc["webhooks"]:
                path = hook["clientConfig"]["service"]["path"]
                hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}", "caBundle": ca_bundle}
                hook["timeoutSeconds"] = 10
            out.append(doc)
    yaml.safe_dump_all(out, sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main(*sys.argv[1:4])
