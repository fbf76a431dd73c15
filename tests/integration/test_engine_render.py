"""Real ansible-playbook render runs for the engine interface (issue 11, issue 10 #11).

- serving_plan passes ``attention_data_parallel`` to parallelism_plan, and the builder writes the DP-attention
  flags the target image's SGLang takes (0.5.23: ``--attn-dp-size``; 0.5.6.post2: ``--dp-size --enable-dp-attention``);
- the API key given to the role appears in no printed line of ``ansible-playbook -v`` and in no rendered
  object except the Secret that carries it, and no engine container has ``--api-key`` on its argv.
"""

import glob
import os

from render_helpers import read, rendered
from render_helpers import run_render as run_serve

API_KEY = "sk-engine-render-7c1d9e2f-never-printed"
DPA = '{"serving_plan_overrides": {"tensor_parallel": 2, "attention_data_parallel": 2}}'


def _engine_command(objects):
    deployment = objects["Deployment"][0]
    return deployment["spec"]["template"]["spec"]["containers"][0]["command"]


def test_attention_data_parallel_reaches_the_engine_in_each_versions_spelling(tmp_path):
    new, old = str(tmp_path / "new"), str(tmp_path / "old")
    common = ("-e", "llmops_accelerators_per_node=2", "-e", "inference_server_memory=64Gi", "-e", DPA)
    common += ("-e", "inference_server_api_key=%s" % API_KEY)
    result = run_serve("local", new, *common, "-e", "inference_server_render_api_key_secret=true", plan=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    script = _engine_command(rendered(new))[2]
    assert "--attn-dp-size 2" in script and "--enable-dp-attention" not in script
    # the key: nowhere in what ansible printed, only in the Secret we asked to render, never on argv
    assert API_KEY not in result.stdout + result.stderr
    with_key = [p for p in glob.glob(os.path.join(new, "*", "*.yaml")) if API_KEY in read(p)]
    assert len(with_key) == 1 and "Secret" in read(with_key[0])
    assert "--api-key" not in "".join(read(p) for p in glob.glob(os.path.join(new, "*", "*.yaml")))

    image = "-e", '{"inference_server_images": {"sglang": "docker.io/lmsysorg/sglang:v0.5.6.post2-cu129"}}'
    result = run_serve("local", old, *common, *image, plan=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    script = _engine_command(rendered(old))[2]
    assert "--dp-size 2 --enable-dp-attention" in script and "--attn-dp-size" not in script
    assert API_KEY not in result.stdout + result.stderr
