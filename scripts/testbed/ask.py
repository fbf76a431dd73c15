"""Ask a served model one question through its Service, as `make demo` ends: prints who answered and what.

Reads the API key from the server's Secret with the test bed's kubectl (never printed), sends one chat
completion to the base URL and prints the model, the engine's system_fingerprint, the answer and the
server's /version (vLLM's own).
Usage: python3 scripts/testbed/ask.py INVENTORY [PROMPT]   (namespace, served model name and base URL come
from INVENTORY/group_vars/all.yml; the Secret is <model>-api-key, as the roles name it)
"""

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KUBECTL = os.path.join(ROOT, ".build", "testbed", "bin", "kubectl")
KUBECONFIG = os.path.join(ROOT, ".state", "testbed", "kubeconfig")


def api_key(namespace, secret):
    result = subprocess.run(
        [KUBECTL, "--kubeconfig", KUBECONFIG, "-n", namespace, "get", "secret", secret]
        + ["-o", "jsonpath={.data.api-key}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.exit("cannot read the API key Secret %s/%s: %s" % (namespace, secret, result.stderr.strip()))
    return base64.b64decode(result.stdout).decode()


def main(argv):
    if len(argv) not in (1, 2):
        sys.exit(__doc__)
    import yaml  # from the venv: make demo runs this with .venv/bin/python

    with open(os.path.join(argv[0], "group_vars", "all.yml")) as handle:
        settings = yaml.safe_load(handle)
    if not settings.get("inference_verify_base_url"):
        print(">>> %s serves nothing that answers here: %s" % (argv[0], settings.get("inference_verify_skip_reason")))
        return 0
    namespace, model = settings["llmops_namespace"], settings["llmops_served_model_name"]
    base_url, secret = settings["inference_verify_base_url"], model + "-api-key"
    prompt = argv[1] if len(argv) == 2 else "Say hello in one short sentence."
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 32, "temperature": 0}
    request = urllib.request.Request(
        base_url.rstrip("/") + "/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": "Bearer " + api_key(namespace, secret)},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.load(response)
    except (urllib.error.URLError, OSError) as error:
        sys.exit("the endpoint %s did not answer: %s" % (base_url, error))
    print(">>> asked %s through the Service at %s: %r" % (model, base_url, prompt))
    print(">>> answered by model %s, system_fingerprint %s" % (answer.get("model"), answer.get("system_fingerprint")))
    print(">>> answer: %r" % answer["choices"][0]["message"]["content"])
    try:  # vLLM serves its version at /version (outside /v1, no key)
        with urllib.request.urlopen(base_url.rstrip("/") + "/version", timeout=10) as response:
            print(">>> the server's /version: %s" % response.read().decode().strip())
    except (urllib.error.URLError, OSError):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
