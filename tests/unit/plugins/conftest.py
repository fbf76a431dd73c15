"""Shared helpers: fake sysfs trees, fake executables, driving a module in-process."""

import json
import os
import stat

import pytest
from ansible.module_utils.testing import patch_module_args

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")


def read_fixture(*parts):
    with open(os.path.join(FIXTURES, *parts)) as handle:
        return handle.read()


def build_sysfs(root, layout):
    """Write class/infiniband/<dev>/... under root from a fixtures/rdma/*.json layout; returns root."""
    base = os.path.join(str(root), "class", "infiniband")
    for dev, spec in layout.items():
        dev_path = os.path.join(base, dev)
        for name in ("hca_type", "fw_ver", "board_id", "node_guid"):
            _write(os.path.join(dev_path, name), spec.get(name, ""))
        for netdev in spec.get("netdevs", []):
            os.makedirs(os.path.join(dev_path, "device", "net", netdev))
        for port, attrs in spec["ports"].items():
            port_path = os.path.join(dev_path, "ports", port)
            for name in ("state", "phys_state", "rate", "link_layer"):
                _write(os.path.join(port_path, name), attrs[name])
            for index, (gid, gid_type, ndev) in attrs["gids"].items():
                _write(os.path.join(port_path, "gids", index), gid)
                if gid_type is not None:
                    _write(os.path.join(port_path, "gid_attrs", "types", index), gid_type)
                if ndev is not None:
                    _write(os.path.join(port_path, "gid_attrs", "ndevs", index), ndev)
    return str(root)


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text + "\n")


@pytest.fixture
def sysfs(tmp_path):
    count = [0]

    def make(layout_name, extra=None):
        layout = json.loads(read_fixture("rdma", layout_name))
        if extra:
            extra(layout)
        count[0] += 1
        return build_sysfs(tmp_path / ("sys%d" % count[0]), layout)

    return make


@pytest.fixture
def fake_tool(tmp_path):
    """fake_tool(name, body) -> absolute path of an executable bash script in tmp_path/bin."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)

    def make(name, body):
        path = bindir / name
        path.write_text("#!/bin/bash\n" + body + "\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
        return str(path)

    return make


@pytest.fixture
def empty_path(tmp_path, monkeypatch):
    """PATH holding only tmp_path/bin (plus /usr/bin and /bin for bash, cat); tools not faked are missing."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", "%s:/usr/bin:/bin" % bindir)
    return bindir


def run_module(main, args, capsys, check_mode=False, diff=False):
    """Run a module's main() with args; return its JSON result (failed=True when it failed)."""
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    with patch_module_args(args), pytest.raises(SystemExit):
        main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def run(capsys):
    """run(main, args, check_mode=False, diff=False) -> result dict."""

    def call(main, args, check_mode=False, diff=False):
        return run_module(main, args, capsys, check_mode, diff)

    return call


@pytest.fixture
def fixture_text():
    return read_fixture
