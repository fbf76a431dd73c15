"""ascend parsers, address plan, diff and hccn.conf (shapes: fixtures/ascend/README.md)."""

import pytest

from ansible_collections.llmops.inference.plugins.module_utils import ascend
from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

DEFAULTS = {"netmask": "255.255.255.0", "gateway": "10.197.90.254", "netdetect": "10.197.90.254", "tls": 0}


def test_npu_smi_info_910b3x8(fixture_text):
    info = ascend.parse_npu_smi_info(fixture_text("ascend", "npu_smi_info_910b3x8.txt"))
    assert len(info["npus"]) == 8 and info["driver_version"] == "23.0.rc3"
    first = info["npus"][0]
    assert first == {
        "npu_id": 0,
        "name": "910B3",
        "health": "OK",
        "power_w": 93.5,
        "temp_c": 38.0,
        "chip": 0,
        "bus_id": "0000:C1:00.0",
        "aicore_pct": 0.0,
        "hbm_used_mb": 3161,
        "hbm_total_mb": 65536,
    }
    with pytest.raises(LlmopsError, match="npu-smi info"):
        ascend.parse_npu_smi_info("dcmi module initialize failed. ret is -8005\n")


def test_hccn_tool_parsers():
    """Shapes from Huawei's HCCN Tool reference and public checkers (fixtures/ascend/README.md)."""
    assert ascend.parse_ip("ipaddr:10.197.90.10\nnetmask:255.255.255.0\n") == {
        "address": "10.197.90.10",
        "netmask": "255.255.255.0",
    }
    assert ascend.parse_ip("ipaddr:\n") == {"address": None, "netmask": None}
    assert ascend.parse_gateway("default gateway:11.12.165.1, Iface:eth0\n") == "11.12.165.1"
    assert ascend.parse_netdetect("netdetect address: 0.0.0.0\n") is None
    assert ascend.parse_tls("dev_id:0, tls switch[0](0:disable, 1:enable), tls preconfigured[1]\n") == 0
    assert ascend.parse_link("link status: UP\n") == "UP"
    for parser in (ascend.parse_ip, ascend.parse_netdetect, ascend.parse_tls, ascend.parse_link):
        with pytest.raises(LlmopsError, match="Cannot read"):
            parser("Usage: hccn_tool -i <id> ...\n")


def test_plan_base_and_explicit_map():
    plan = ascend.compute_address_plan(
        {"node01": {"base": "10.197.90.10"}, "node02": {"addresses": {i: "10.197.90.%d" % (30 + i) for i in range(8)}}},
        8,
        DEFAULTS,
    )
    assert plan["node01"][7] == {
        "address": "10.197.90.17",
        "netmask": "255.255.255.0",
        "gateway": "10.197.90.254",
        "netdetect": "10.197.90.254",
        "tls": 0,
    }
    assert plan["node02"][0]["address"] == "10.197.90.30"
    strided = ascend.compute_address_plan({"n": {"base": "172.16.0.10", "stride": 256, "netmask": "255.255.0.0"}}, 2)
    assert strided["n"][1]["address"] == "172.16.1.10"


@pytest.mark.parametrize(
    "plan, message",
    [
        ({"node01": {"base": "10.197.90.1.10"}}, "not an IPv4 address"),  # seed 003's typo
        ({"a": {"base": "10.197.90.10"}, "b": {"base": "10.197.90.14"}}, "used twice: 10.197.90.14 by a:4, b:0"),
        ({"a": {"base": "10.197.90.250"}}, "broadcast"),
        ({"a": {"base": "10.197.90.10", "gateway": "10.0.0.1"}}, "not in the subnet"),
        ({"a": {"base": "10.197.90.10", "addresses": {}}}, "not both"),
        ({"a": {"addresses": {0: "10.197.90.10"}}}, "no address for devices"),
        ({"a": {"base": "10.197.90.10", "netmask": "255.0.255.0"}}, "contiguous"),
        ({"a": {"base": "10.197.90.10", "tls": 2}}, "tls must be 0 or 1"),
        ({}, "at least one host"),
    ],
)
def test_plan_validation(plan, message):
    with pytest.raises(LlmopsError, match=message):
        ascend.compute_address_plan(plan, 8, DEFAULTS)


def test_diff_commands_and_conf():
    desired = ascend.compute_address_plan({"n": {"base": "10.197.90.10"}}, 2, DEFAULTS)["n"]
    current = {"address": "10.197.90.10", "netmask": "255.255.255.0", "gateway": None, "netdetect": None, "tls": 1}
    changes = ascend.diff_device(current, desired[0])
    assert sorted(changes) == ["gateway", "netdetect", "tls"]
    assert ascend.set_commands("hccn_tool", 0, desired[0], changes) == [
        ["hccn_tool", "-i", "0", "-gateway", "-s", "gateway", "10.197.90.254"],
        ["hccn_tool", "-i", "0", "-netdetect", "-s", "address", "10.197.90.254"],
        ["hccn_tool", "-i", "0", "-tls", "-s", "enable", "0"],
    ]
    assert ascend.diff_device(dict(desired[1]), desired[1]) == {}
    conf = ascend.render_hccn_conf("address_0=1.2.3.4\nsend_arp_status_0=1\n# comment\n", desired)
    assert conf.splitlines() == [
        "address_0=10.197.90.10",
        "send_arp_status_0=1",
        "netmask_0=255.255.255.0",
        "netdetect_0=10.197.90.254",
        "gateway_0=10.197.90.254",
        "tls_0=0",
        "address_1=10.197.90.11",
        "netmask_1=255.255.255.0",
        "netdetect_1=10.197.90.254",
        "gateway_1=10.197.90.254",
        "tls_1=0",
    ]
    assert ascend.render_hccn_conf(conf, desired) == conf


@pytest.mark.parametrize("field", ["gateway", "netdetect"])
def test_a_gateway_or_netdetect_that_is_an_npu_address_is_refused(field):
    """Issue 13: the NPU would answer its own probe (netdetect) or route to itself (gateway)."""
    plan = {"node01": {"base": "10.197.90.10"}, "node02": {"base": "10.197.90.20"}}
    defaults = {"netmask": "255.255.255.0", field: "10.197.90.23"}
    with pytest.raises(
        LlmopsError, match=r"Host node01 device 0: %s 10.197.90.23 is the address of NPU node02:3" % field
    ):
        ascend.compute_address_plan(plan, 8, defaults)
    defaults[field] = "10.197.90.254"
    assert ascend.compute_address_plan(plan, 8, defaults)["node02"][3][field] == "10.197.90.254"
