"""Every bad input of the table in docs/preflight.md, refused by the pre-flight through site.yml.

The table is the test's input (read from the doc, so the two cannot drift). One real ansible-playbook run
of playbooks/site.yml in render mode serves all host-level rows: each row is a host of k8s_control carrying
that one mistake as host vars over the 2 x 8 DeepSeek inventory, with a render folder of its own (the
pre-flight refuses each host on its own, then stops every stage). Each host must fail in a task of a
Preflight play, with the row's text in the message, and its render folder must not exist (nothing written).
Inventory rows (hosts.yml mistakes) run site.yml once each on a hosts.yml of their own.
"""

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml
from render_helpers import BIN, ROOT, ansible_env

DOC = os.path.join(ROOT, "docs", "preflight.md")
BASE = os.path.join(ROOT, "inventories", "deepseek-r1-2x8-a800-sglang")
FIXTURES = os.path.join(ROOT, "tests", "integration", "fixtures", "preflight")
ROW = re.compile(r"^\| (\d+) \| (\w+) \| `(.*)` \| `(.*)` \|$")


def table():
    rows = []
    with open(DOC) as handle:
        for line in handle:
            found = ROW.match(line.rstrip("\n"))
            if found:
                number, kind, given, expected = found.groups()
                given = json.loads(given.replace("{fixtures}", FIXTURES))
                rows.append((int(number), kind, given, expected))
    return rows


ROWS = table()
HOST_ROWS = [row for row in ROWS if row[1] != "inventory"]
INVENTORY_ROWS = [row for row in ROWS if row[1] == "inventory"]


def test_the_table_is_complete():
    assert len(ROWS) >= 60
    assert [row[0] for row in ROWS] == list(range(1, len(ROWS) + 1))
    # Each message names the variable (or the inventory group) it is about.
    for number, kind, given, expected in ROWS:
        names = list(given)
        if kind == "inventory":
            names = [n for n in given if n != "all"] + list(given.get("all", {}).get("vars", {}))
        assert any(name in expected for name in names), (number, expected)


def playbook(inventories, *extra):
    env = ansible_env(ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    command = [os.path.join(BIN, "ansible-playbook")]
    for inventory in inventories:
        command += ["-i", inventory]
    command += [os.path.join(ROOT, "playbooks", "site.yml"), "-e", "llmops_apply_mode=render"] + list(extra)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, cwd=ROOT, check=False)
    start = result.stdout.find("{")
    assert start >= 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result, json.loads(result.stdout[start:])


def failures(report):
    """host -> (play name, task name, message) of the failed task that stopped each host (a rescue's failure
    replaces the failure it rescued; the final stop play only counts for a host nothing else refused)."""
    found = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                if play["play"]["name"].startswith("Preflight | stop") and host in found:
                    continue
                if result.get("failed") and not result.get("ignore_errors"):
                    message = result.get("msg", "")
                    if not message and result.get("results"):
                        message = " ".join(str(r.get("msg", "")) for r in result["results"] if r.get("failed"))
                    found[host] = (play["play"]["name"], task["task"]["name"], str(message))
    return found


@pytest.fixture(scope="module")
def host_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("preflight-table")
    hosts = {}
    for number, _kind, given, _expected in HOST_ROWS:
        hosts["case%02d" % number] = dict(
            given,
            ansible_connection="local",
            ansible_python_interpreter="{{ ansible_playbook_python }}",
            llmops_render_dir=str(folder / ("render%02d" % number)),
        )
    cases = folder / "cases.yml"
    cases.write_text(yaml.safe_dump({"k8s_control": {"hosts": hosts}}))
    result, report = playbook([BASE, str(cases)], "--limit", "k8s_control:!localhost")
    return folder, result, failures(report)


@pytest.mark.parametrize("number,kind,given,expected", HOST_ROWS, ids=["row%02d" % row[0] for row in HOST_ROWS])
def test_refused_in_preflight_with_nothing_written(host_run, number, kind, given, expected):
    folder, result, failed = host_run
    host = "case%02d" % number
    assert host in failed, "row %d was not refused: %s" % (number, result.stderr[-1500:])
    play, task, message = failed[host]
    assert play.startswith("Preflight"), (play, task, message)
    assert expected in " ".join(message.split()), message
    assert not os.path.exists(str(folder / ("render%02d" % number)))


@pytest.mark.parametrize(
    "number,kind,given,expected", INVENTORY_ROWS, ids=["row%02d" % row[0] for row in INVENTORY_ROWS]
)
def test_inventory_mistake_refused(tmp_path, number, kind, given, expected):
    inventory = tmp_path / "inventory"
    shutil.copytree(os.path.join(BASE, "group_vars"), str(inventory / "group_vars"))
    for group in given.values():
        for host in (group.get("hosts") or {}).values():
            host.update(ansible_connection="local", ansible_python_interpreter="{{ ansible_playbook_python }}")
    (inventory / "hosts.yml").write_text(yaml.safe_dump(given))
    render = tmp_path / "render"
    result, report = playbook([str(inventory)], "-e", "llmops_render_dir=%s" % render)
    assert result.returncode != 0
    failed = failures(report)
    assert failed, result.stdout[-2000:]
    play, _task, message = next(iter(failed.values()))
    assert play == "Preflight | inventory groups"
    assert expected in " ".join(message.split()), message
    assert not render.exists()
