#!/usr/bin/env python3
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
    selectors = {}
    for patch in ("mutating-patch.yaml", "validating-patch.yaml"):
        with open(f"{module_dir}/config/webhook/{patch}") as handle:
            for doc in yaml.safe_load_all(handle):
                for hook in (doc or {}).get("webhooks", []):
                    if "objectSelector" in hook:
                        selectors[hook["name"]] = hook["objectSelector"]
    out = []
    with open(f"{module_dir}/config/webhook/manifests.yaml") as handle:
        for doc in yaml.safe_load_all(handle):
            if not doc:
                continue
            doc["metadata"] = {
                "name": PREFIX + doc["kind"].replace("WebhookConfiguration", "").lower(),
                "labels": {"app.kubernetes.io/part-of": "llmops-testbed"},
            }
            for hook in doc["webhooks"]:
                path = hook["clientConfig"]["service"]["path"]
                hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}", "caBundle": ca_bundle}
                if hook["name"] in selectors:
                    hook["objectSelector"] = selectors[hook["name"]]
                hook["timeoutSeconds"] = 10
            out.append(doc)
    yaml.safe_dump_all(out, sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main(*sys.argv[1:4])
