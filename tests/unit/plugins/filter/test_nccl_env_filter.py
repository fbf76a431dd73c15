"""Filter llmops.inference.nccl_env: same result as rdma_check's nccl_env, errors as filter errors."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.llmops.inference.plugins.filter.nccl_env import FilterModule


def test_filter_from_rdma_facts():
    nccl_env = FilterModule().filters()["nccl_env"]
    facts = {
        "devices": [
            {
                "name": "mlx5_0",
                "ports": [{"port": 1, "state": "ACTIVE", "phys_state": "LinkUp", "link_layer": "InfiniBand"}],
            }
        ],
        "socket_ifname": "bond0",
    }
    assert nccl_env(facts, {"NCCL_SOCKET_IFNAME": "eth0"}) == {
        "NCCL_IB_DISABLE": "0",
        "NCCL_IB_HCA": "=mlx5_0:1",
        "NCCL_SOCKET_IFNAME": "eth0",
        "GLOO_SOCKET_IFNAME": "bond0",
    }
    assert nccl_env({}, as_list=True) == [{"name": "NCCL_IB_DISABLE", "value": "1"}]
    with pytest.raises(AnsibleFilterError, match="rdma_check returns"):
        nccl_env("not a dict")
