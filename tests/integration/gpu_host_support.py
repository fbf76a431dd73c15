"""Recorded GPU host output for playbook tests: a fake nvidia-smi printing the 2 x H200 recording and RDMA
sysfs trees written from the recorded ConnectX-6 layouts (tests/unit/fixtures, README files there)."""

import importlib.util
import os

UNIT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "unit")
FIXTURES = os.path.join(UNIT, "fixtures")
_spec = importlib.util.spec_from_file_location("unit_plugins_conftest", os.path.join(UNIT, "plugins", "conftest.py"))
_unit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_unit)
build_sysfs = _unit.build_sysfs
read_fixture = _unit.read_fixture


def fake_nvidia_smi(path):
    """An executable at path that answers gpu_facts' nvidia-smi calls with the recorded 2 x H200 output."""

    def fx(name):
        return os.path.join(FIXTURES, "nvidia_smi", name)

    path.write_text(
        '#!/bin/bash\ncase "$*" in\n'
        '  --query-gpu*) cat %s ;;\n  "topo -m") cat %s ;;\n  "nvlink -s") cat %s ;;\n  "-q") cat %s ;;\n'
        '  "") cat %s ;;\n  *) echo "unexpected $*" >&2; exit 2 ;;\nesac\n'
        % (
            fx("h200x2_nvidia-smi-query-gpu.csv"),
            fx("h200x2_nvidia-smi-topo-m.txt"),
            fx("h200x2_nvidia-smi-nvlink-s.txt"),
            fx("h200x2_nvidia-smi-q.txt"),
            fx("h200x2_nvidia-smi.txt"),
        )
    )
    path.chmod(0o755)
    return str(path)
