"""Tags of site.yml, read from real `ansible-playbook --list-tasks` runs (cheap: nothing executes).

--tags cluster_addons runs the add-ons (and the pre-flight, tagged always), nothing of the other stages;
--skip-tags cluster_addons runs every stage but the add-ons; --tags serve still gets the pre-flight.
"""

import os
import re
import subprocess

import pytest
from render_helpers import BIN, COLLECTIONS, ROOT, ensure_collection_link

ADDONS = (
    "OpenShift AI operator stack",
    "Node Feature Discovery",
    "NVIDIA GPU Operator",
    "RDMA shared device plugin",
    "Volcano",
    "LeaderWorkerSet",
    "KubeRay operator",
    "HAMi",
    "Engine monitoring",
)


def list_tasks(*tag_args):
    """(play name, task name, tags) of every task the run would execute."""
    ensure_collection_link()
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    result = subprocess.run(
        [
            os.path.join(BIN, "ansible-playbook"),
            "-i",
            os.path.join(ROOT, "inventories", "deepseek-r1-2x8-a800-baremetal"),
            os.path.join(ROOT, "playbooks", "site.yml"),
            "--list-tasks",
        ]
        + list(tag_args),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    tasks, play = [], None
    for line in result.stdout.splitlines():
        found = re.match(r"\s+play #\d+ \(([^)]*)\): (.*?)\tTAGS:", line)
        if found:
            play = found.group(2)
            continue
        found = re.match(r"\s{6}(.*?)\tTAGS: \[(.*)\]$", line)
        if found:
            tasks.append((play, found.group(1), {t.strip() for t in found.group(2).split(",") if t.strip()}))
    return tasks


@pytest.fixture(scope="module")
def listed():
    return {
        "all": list_tasks(),
        "only": list_tasks("--tags", "cluster_addons"),
        "skip": list_tasks("--skip-tags", "cluster_addons"),
        "serve": list_tasks("--tags", "serve"),
    }


def _addon(name):
    return next((addon for addon in ADDONS if name == addon or name.startswith(addon + " (")), None)


def _addon_tasks(tasks):
    return [_addon(name) for play, name, _tags in tasks if play == "Cluster add-ons" and _addon(name)]


def test_every_addon_carries_the_stage_tag(listed):
    addons = [(_addon(name), tags) for play, name, tags in listed["all"] if play == "Cluster add-ons" and _addon(name)]
    assert sorted(name for name, _tags in addons) == sorted(ADDONS)
    assert all("cluster_addons" in tags for _name, tags in addons)


def test_tags_cluster_addons_runs_only_the_addons_and_the_preflight(listed):
    assert sorted(_addon_tasks(listed["only"])) == sorted(ADDONS)
    others = [
        (play, name) for play, name, tags in listed["only"] if "cluster_addons" not in tags and "always" not in tags
    ]
    assert others == []
    # The pre-flight is never skipped by --tags.
    assert any(play.startswith("Preflight") for play, _name, _tags in listed["only"])
    # Of the serve stage only ansible-core's own argument validation (always tagged) is left: nothing is built.
    serve = [name for play, name, _tags in listed["only"] if play.startswith("Serve")]
    assert all("Validating arguments against arg spec" in name for name in serve), serve


def test_skip_tags_cluster_addons_keeps_the_other_stages(listed):
    assert _addon_tasks(listed["skip"]) == []
    plays = {play for play, _name, _tags in listed["skip"]}
    assert "Serve | plan, build and apply the inference service" in plays
    assert "Preflight | inputs, plan and objects" in plays
    assert "Check GPU hosts" in plays


def test_tags_serve_gets_the_preflight(listed):
    plays = {play for play, _name, _tags in listed["serve"]}
    assert "Preflight | inputs, plan and objects" in plays
    assert _addon_tasks(listed["serve"]) == []
