"""Filters of the bare-metal roles: the apt-cache madison output shape (apt 2.6, Debian 12) and refusals."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.llmops.inference.plugins.filter.bare_metal import FilterModule

FILTERS = FilterModule().filters()
# `apt-cache madison nvidia-fabricmanager-550` in the shape apt prints it (package | version | source).
REPO = "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2204/x86_64  Packages"
MADISON = [
    "nvidia-fabricmanager-550 | 550.144.03-1 | " + REPO,
    "nvidia-fabricmanager-550 | 550.127.05-1 | " + REPO,
]


def test_locked_version_from_madison():
    versions = FILTERS["madison_versions"](MADISON)
    assert versions == ["550.144.03-1", "550.127.05-1"]
    assert FILTERS["locked_version"](versions, "550.127.05", "Fabric Manager") == "550.127.05-1"
    with pytest.raises(AnsibleFilterError, match="Fabric Manager 550.90.07 is not in the repository"):
        FILTERS["locked_version"](versions, "550.90.07", "Fabric Manager")
    assert FILTERS["driver_branch"]("550.127.05") == "550"
    with pytest.raises(AnsibleFilterError, match="full version"):
        FILTERS["driver_branch"]("550")
    assert FILTERS["upstream_version"]("1:535.261.03-1") == "535.261.03"


def test_ascend_filters():
    plan = FILTERS["ascend_install_plan"]({"driver": "24.1.0", "firmware": ""}, "24.1.0", "7.5.0.3.220")
    assert [(s["component"], s["action"]) for s in plan] == [("firmware", "full")]
    assert FILTERS["version_info"]("Version=24.1.0\npackage_version=24.1.0\n")["Version"] == "24.1.0"
    with pytest.raises(AnsibleFilterError, match="llmops_reboot"):
        FILTERS["ascend_reboot_decision"](plan, "sometimes")
