"""playbooks/status.yml, uninstall.yml and upgrade.yml in render mode (no cluster), through the real
ansible-playbook, on the DeepSeek-R1 2 x 8 A800 inventory with its recorded plan: the status table compares the
plan with the LeaderWorkerSet our builder makes, the uninstall writes its plan (reverse apply order, the model
cache kept; the add-ons, when asked, in reverse order by their own roles), the upgrade renders the new image with
the rolling update it was asked for. Live runs against the test bed are in test_lifecycle_live.py."""

import os
import re

import yaml
from render_helpers import rendered, run_render

INVENTORY = "deepseek-r1-2x8-a800-sglang"


def recap(output):
    match = re.search(r"ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output)
    assert match, output[-2000:]
    return {"ok": int(match.group(1)), "changed": int(match.group(2)), "failed": int(match.group(4))}


def test_status_prints_the_plan_against_the_built_group_and_changes_nothing(tmp_path):
    result = run_render(INVENTORY, str(tmp_path / "out"), "--check", playbook="status.yml")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert recap(output)["changed"] == 0
    assert "LeaderWorkerSet deepseek-r1" in output and "built (render mode: not applied)" in output
    for row in (
        "plan: nodes per group",
        "plan: accelerators per pod",
        "plan: tensor parallel",
        "plan: engine --nnodes",
    ):
        line = next(line for line in output.splitlines() if row in line)
        assert line.rstrip("'").rstrip().endswith("yes"), line
    assert "plan 16, built 16" in output
    assert "problems: none" in output
    assert not os.path.exists(tmp_path / "out"), "status wrote into the render folder"


def test_uninstall_plan_is_reverse_apply_order_and_keeps_the_model_cache(tmp_path):
    out = tmp_path / "out"
    result = run_render(INVENTORY, str(out), "-e", "lifecycle_uninstall_addons=true", playbook="uninstall.yml")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    with open(out / "uninstall" / "plan.yml") as handle:
        plan = yaml.safe_load(handle)
    kinds = [ref["kind"] for ref in plan["delete"]]
    assert kinds.index("Service") < kinds.index("LeaderWorkerSet") < kinds.index("PodGroup")
    assert kinds.index("LeaderWorkerSet") < kinds.index("PodDisruptionBudget")
    kept = {(ref["kind"], ref["metadata"]["name"]) for ref in plan["keep"]}
    assert ("ConfigMap", "deepseek-r1-model-download") in kept and (
        "PersistentVolumeClaim",
        "deepseek-r1-webui",
    ) in kept
    assert "PersistentVolumeClaim" not in kinds and "Job" not in kinds
    assert all(ref["metadata"]["namespace"] == "deepseek" for ref in plan["delete"] + plan["keep"])
    assert "keep ConfigMap/deepseek-r1-model-download (model cache" in output
    # the add-ons the inventory enables, in reverse order of cluster_addons.yml, each by its own role (state absent)
    removed = re.findall(r"TASK \[Remove the add-on with its own role - (\w+)\]", output)
    assert removed == [
        "engine_monitoring",
        "leaderworkerset",
        "volcano",
        "rdma_device_plugin",
        "gpu_operator",
        "node_feature_discovery",
    ], removed
    # nothing else was written: an uninstall renders no objects
    written = [os.path.join(root, name) for root, _dirs, names in os.walk(out) for name in names]
    assert written == [str(out / "uninstall" / "plan.yml")], written


def test_upgrade_renders_the_new_image_with_the_asked_surge(tmp_path):
    out = tmp_path / "out"
    result = run_render(
        INVENTORY,
        str(out),
        "--skip-tags",
        "cluster_addons",
        "-e",
        "inference_server_image=docker.io/lmsysorg/sglang:v0.5.23",
        "-e",
        "lifecycle_upgrade_max_surge=1",
        playbook="upgrade.yml",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "render mode: the cluster is not read, so the surge is what lifecycle_upgrade_max_surge" in output
    lws = rendered(str(out))["LeaderWorkerSet"][0]
    assert lws["spec"]["rolloutStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdateConfiguration": {"maxSurge": 1, "maxUnavailable": 0},
    }
    templates = lws["spec"]["leaderWorkerTemplate"]
    for role in ("leaderTemplate", "workerTemplate"):
        assert templates[role]["spec"]["containers"][0]["image"] == "docker.io/lmsysorg/sglang:v0.5.23"
