"""playbooks/prepare_nodes.yml on two simulated GPU hosts: the RDMA facts of every node are compared.

No GPU or HCA exists here: nvidia-smi prints the recorded 2 x H200 output (unit fixtures nvidia_smi/) and each
host's RDMA sysfs tree is written from the recorded ConnectX-6 layouts (unit fixtures rdma/, README there).
The modules, the role, the playbook and ansible-playbook are the real ones.
"""

import json

import yaml
from gpu_host_support import build_sysfs, fake_nvidia_smi, read_fixture


def _inventory(tmp_path, layouts):
    smi = fake_nvidia_smi(tmp_path / "nvidia-smi")
    hosts = {}
    for name, layout in layouts.items():
        tree = build_sysfs(tmp_path / name, json.loads(read_fixture("rdma", layout)))
        hosts[name] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "gpu_node_checks_nvidia_smi_path": smi,
            "gpu_node_checks_sysfs_root": tree,
        }
    inventory = {
        "all": {
            "vars": {"llmops_become": False, "gpu_node_checks_fail_on_problems": False},
            "children": {
                "gpu_nodes": {"hosts": hosts},
                "npu_nodes": {"hosts": {}},
                "k8s_control": {"hosts": {"api": {"ansible_connection": "local"}}},
            },
        }
    }
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    return str(path)


def test_matching_gpu_nodes_hand_one_env_to_the_api_host(ansible_playbook, tmp_path):
    inventory = _inventory(tmp_path, {"gpu01": "cx6_ib_hdr_4ports.json", "gpu02": "cx6_ib_hdr_4ports.json"})
    result = ansible_playbook("playbooks/prepare_nodes.yml", "-i", inventory)
    assert result.returncode == 0, result.output
    assert "NCCL_IB_HCA" in result.output and "=mlx5_0:1,mlx5_1:1,mlx5_2:1,mlx5_3:1" in result.output


def test_gpu_nodes_that_disagree_are_refused_with_the_difference(ansible_playbook, tmp_path):
    inventory = _inventory(tmp_path, {"gpu01": "cx6_ib_hdr_4ports.json", "gpu02": "roce_v2_mixed_gid_table.json"})
    result = ansible_playbook("playbooks/prepare_nodes.yml", "-i", inventory)
    assert result.returncode != 0
    assert "The GPU nodes disagree" in result.output
    assert "active RDMA ports differ between the GPU nodes" in result.output
    assert "mlx5_0:1,mlx5_1:1 on gpu02" in result.output
    allowed = ansible_playbook(
        "playbooks/prepare_nodes.yml", "-i", inventory, "-e", '{"llmops_rdma_fleet_allow_mismatch": true}'
    )
    assert allowed.returncode == 0, allowed.output


def test_one_failed_gpu_node_stops_the_whole_group(ansible_playbook, tmp_path):
    """gpu02 has a port down: rdma_check fails there, and no NCCL env is handed on from gpu01 alone."""
    inventory = _inventory(tmp_path, {"gpu01": "cx6_ib_hdr_4ports.json", "gpu02": "cx6_ib_port_down_and_slow.json"})
    result = ansible_playbook("playbooks/prepare_nodes.yml", "-i", inventory)
    assert result.returncode != 0
    assert "mlx5_2 port 1 is down" in result.output
    assert "Hand the RDMA facts to the API host" not in result.output
