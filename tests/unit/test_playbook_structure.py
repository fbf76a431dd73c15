"""Structure of the stage playbooks that the pre-flight and the fleet checks rely on (read from the YAML)."""

import os

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(name):
    with open(os.path.join(ROOT, "playbooks", name)) as handle:
        return yaml.safe_load(handle)


def test_site_imports_the_preflight_first():
    assert load("site.yml")[0]["ansible.builtin.import_playbook"] == "preflight.yml"


def test_preflight_plays_are_never_skipped_by_other_tags():
    for play in load("preflight.yml"):
        assert {"preflight", "always"} <= set(play["tags"]), play["name"]


def test_every_host_play_of_the_prepare_stage_stops_the_fleet_on_a_failure():
    for play in load("prepare_nodes.yml"):
        if play["hosts"] in ("gpu_nodes", "npu_nodes"):
            assert play.get("any_errors_fatal") is True, play["name"]


def test_serve_imports_entry_points_ansible_core_validates():
    """tasks_from: build.yml matches no argument_specs entry point (ansible-core looks up 'build.yml'); 'build' does."""
    with open(os.path.join(ROOT, "playbooks", "serve.yml")) as handle:
        text = handle.read()
    assert "tasks_from: build.yml" not in text and "tasks_from: apply.yml" not in text
    assert text.count("tasks_from: build") == 5 and text.count("tasks_from: apply") == 5
