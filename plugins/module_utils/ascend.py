# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ascend NPUs: parse npu-smi and hccn_tool, plan NPU network addresses, diff, render /etc/hccn.conf.

Output shapes (HDK 23.x-25.x, Atlas 800 A2 / 910B):
  npu-smi info          boxed table, two rows per NPU (NPU/Name/Health/Power/Temp/Hugepages, then
                        Chip/Bus-Id/AICore/Memory/HBM), then a process table
  hccn_tool -i N -ip -g         "ipaddr:10.0.0.10" / "netmask:255.255.255.0"
  hccn_tool -i N -gateway -g    "default gateway:10.0.0.254, Iface:eth0"
  hccn_tool -i N -netdetect -g  "netdetect address: 10.0.0.254"
  hccn_tool -i N -tls -g        "dev_id:0, tls switch[0](0:disable, 1:enable), ..." then certificate lines
  hccn_tool -i N -link -g       "link status: UP"
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import socket
import struct

from ansible_collections.llmops.inference.plugins.module_utils.errors import LlmopsError

NETWORK_FIELDS = ("address", "netmask", "gateway", "netdetect", "tls")

_IPV4_RE = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$")


# ---------------------------------------------------------------- parsing


def parse_npu_smi_info(text):
    """NPUs of ``npu-smi info``: id, name, health, power_w, temp_c, chip, bus_id, aicore_pct, hbm used/total."""
    npus = []
    rows = [line for line in text.splitlines() if line.startswith("|")]
    pending = None
    for line in rows:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3:
            continue
        first = cells[0].split()
        if pending is None:
            # "| 0     910B3               | OK            | 93.5        40                0    / 0             |"
            if (
                len(first) >= 2
                and first[0].isdigit()
                and cells[1] in ("OK", "Warning", "Alarm", "Critical", "Unknown", "NOT_EXIST")
            ):
                metrics = cells[2].split()
                pending = {
                    "npu_id": int(first[0]),
                    "name": " ".join(first[1:]),
                    "health": cells[1],
                    "power_w": _float(metrics[0]) if metrics else None,
                    "temp_c": _float(metrics[1]) if len(metrics) > 1 else None,
                }
            continue
        # second row: "| 0      | 0000:C1:00.0  | 0           0    / 0          3161 / 65536         |"
        if first and first[0].isdigit() and re.match(r"^[0-9A-Fa-f]{4}:", cells[1]):
            usage = re.findall(r"(\d+)\s*/\s*(\d+)", cells[2])
            aicore = cells[2].split()[0] if cells[2].split() else None
            pending.update({"chip": int(first[0]), "bus_id": cells[1], "aicore_pct": _float(aicore)})
            if usage:
                pending["hbm_used_mb"], pending["hbm_total_mb"] = int(usage[-1][0]), int(usage[-1][1])
            npus.append(pending)
        pending = None
    if not npus:
        raise LlmopsError("Cannot read any NPU from npu-smi info: %r" % text[:300])
    version = re.search(r"npu-smi\s+(\S+)\s+Version:\s*(\S+)", text)
    return {
        "npus": npus,
        "npu_smi_version": version.group(1) if version else None,
        "driver_version": version.group(2) if version else None,
    }


def _float(raw):
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None


def parse_ip(text):
    # a device without an address prints "ipaddr:" and nothing else
    address = re.search(r"ipaddr[ \t]*:[ \t]*(\S*)", text)
    netmask = re.search(r"netmask[ \t]*:[ \t]*(\S*)", text)
    if not address:
        raise LlmopsError("Cannot read hccn_tool -ip -g output: %r" % text[:200])
    return {"address": address.group(1) or None, "netmask": (netmask.group(1) if netmask else None) or None}


def parse_gateway(text):
    match = re.search(r"gateway\s*:\s*([\d.]+)", text)
    if match:
        return match.group(1)
    if text.strip() == "" or "no default gateway" in text.lower():
        return None
    raise LlmopsError("Cannot read hccn_tool -gateway -g output: %r" % text[:200])


def parse_netdetect(text):
    match = re.search(r"netdetect address\s*:\s*([\d.]+)", text)
    if not match:
        raise LlmopsError("Cannot read hccn_tool -netdetect -g output: %r" % text[:200])
    return None if match.group(1) == "0.0.0.0" else match.group(1)


def parse_tls(text):
    match = re.search(r"tls switch\[\s*([01])\s*\]", text)
    if not match:
        raise LlmopsError("Cannot read hccn_tool -tls -g output: %r" % text[:200])
    return int(match.group(1))


def parse_link(text):
    match = re.search(r"link status\s*:\s*(\w+)", text, re.IGNORECASE)
    if not match:
        raise LlmopsError("Cannot read hccn_tool -link -g output: %r" % text[:200])
    return match.group(1).upper()


# ---------------------------------------------------------------- addresses


def _ip_to_int(address, what):
    match = _IPV4_RE.match(str(address or ""))
    if not match or any(int(part) > 255 for part in match.groups()):
        raise LlmopsError("%s %r is not an IPv4 address (four numbers 0-255, e.g. 10.197.90.10)" % (what, address))
    return struct.unpack("!I", socket.inet_aton(address))[0]


def _int_to_ip(value):
    return socket.inet_ntoa(struct.pack("!I", value))


def _netmask_bits(netmask, what):
    value = _ip_to_int(netmask, what)
    bits = bin(value).count("1")  # noqa: FURB161 - int.bit_count needs Python 3.10
    if value != ((0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF):
        raise LlmopsError("%s %r is not a contiguous netmask" % (what, netmask))
    return value


def compute_address_plan(hosts_plan, device_count, defaults=None):
    """Desired network of every NPU of every host: {host: {device: {address, netmask, gateway, netdetect, tls}}}.

    hosts_plan: {host: {"base": "10.0.0.10"} | {"addresses": {0: "10.0.0.10", ...}}, plus optional netmask,
    gateway, netdetect, tls, stride (base + index * stride)}. defaults apply to every host. Validated before
    anything is set: IPv4 syntax, netmask, gateway and netdetect in the device's subnet, no address twice
    across all hosts.
    """
    if not isinstance(hosts_plan, dict) or not hosts_plan:
        raise LlmopsError("The NPU address plan needs at least one host: {host: {base: ...} or {addresses: ...}}")
    if device_count < 1:
        raise LlmopsError("device_count must be at least 1")
    defaults = dict(defaults or {})
    plan = {}
    owners = {}
    for host in sorted(hosts_plan):
        if not isinstance(hosts_plan[host] or {}, dict):
            raise LlmopsError(
                "Host %s: the plan entry must be a mapping such as {base: 10.0.0.10} or {addresses: {0: ...}}, got %r"
                % (host, hosts_plan[host])
            )
        spec = dict(defaults)
        spec.update(hosts_plan[host] or {})
        if ("base" in spec) == ("addresses" in spec):
            raise LlmopsError(
                "Host %s: give either base (first address, + device index) or addresses "
                "(device index -> address), not %s" % (host, "both" if "base" in spec else "neither")
            )
        netmask = spec.get("netmask")
        if not netmask:
            raise LlmopsError("Host %s: netmask is missing (set it for the host or in the defaults)" % host)
        mask = _netmask_bits(netmask, "Host %s netmask" % host)
        tls = int(spec.get("tls", 0))
        if tls not in (0, 1):
            raise LlmopsError("Host %s: tls must be 0 or 1, got %r" % (host, spec.get("tls")))
        if "base" in spec:
            base = _ip_to_int(spec["base"], "Host %s base" % host)
            stride = int(spec.get("stride", 1))
            addresses = {index: _int_to_ip(base + index * stride) for index in range(device_count)}
        else:
            raw = spec["addresses"]
            if not isinstance(raw, dict):
                raise LlmopsError("Host %s: addresses must map device index to address" % host)
            addresses = {}
            for key, value in raw.items():
                if not str(key).isdigit() or int(key) >= device_count:
                    raise LlmopsError("Host %s: device index %r is not in 0..%d" % (host, key, device_count - 1))
                addresses[int(key)] = value
            missing = sorted(set(range(device_count)) - set(addresses))
            if missing:
                raise LlmopsError("Host %s: no address for devices %s" % (host, missing))
        devices = {}
        for index in range(device_count):
            address = addresses[index]
            value = _ip_to_int(address, "Host %s device %d address" % (host, index))
            if value & ~mask & 0xFFFFFFFF in (0, ~mask & 0xFFFFFFFF):
                raise LlmopsError(
                    "Host %s device %d: %s is the network or broadcast address of its subnet" % (host, index, address)
                )
            entry = {
                "address": address,
                "netmask": netmask,
                "gateway": spec.get("gateway"),
                "netdetect": spec.get("netdetect"),
                "tls": tls,
            }
            for field in ("gateway", "netdetect"):
                if entry[field] and (_ip_to_int(entry[field], "Host %s %s" % (host, field)) & mask) != (value & mask):
                    raise LlmopsError(
                        "Host %s device %d: %s %s is not in the subnet of %s/%s"
                        % (host, index, field, entry[field], address, netmask)
                    )
            owners.setdefault(address, []).append("%s:%d" % (host, index))
            devices[index] = entry
        plan[host] = devices
    duplicates = {a: o for a, o in owners.items() if len(o) > 1}
    if duplicates:
        raise LlmopsError(
            "NPU addresses used twice: "
            + "; ".join("%s by %s" % (a, ", ".join(o)) for a, o in sorted(duplicates.items()))
        )
    # A gateway or netdetect address that is also an NPU's own address makes that NPU answer its own health
    # probe (netdetect) or route to itself: the link looks up while the fabric is unreachable.
    for host in sorted(plan):
        for index, entry in sorted(plan[host].items()):
            for field in ("gateway", "netdetect"):
                if entry[field] in owners:
                    raise LlmopsError(
                        "Host %s device %d: %s %s is the address of NPU %s; use the switch's address (outside the "
                        "NPU addresses)" % (host, index, field, entry[field], owners[entry[field]][0])
                    )
    return plan


# ---------------------------------------------------------------- diff and commands


def diff_device(current, desired):
    """Fields whose current value differs from the desired one ({} when nothing changes)."""
    changes = {}
    if current.get("address") != desired["address"] or current.get("netmask") != desired["netmask"]:
        changes["ip"] = {
            "before": "%s/%s" % (current.get("address"), current.get("netmask")),
            "after": "%s/%s" % (desired["address"], desired["netmask"]),
        }
    for field in ("gateway", "netdetect"):
        if desired.get(field) and current.get(field) != desired[field]:
            changes[field] = {"before": current.get(field), "after": desired[field]}
    if desired.get("tls") is not None and current.get("tls") != desired["tls"]:
        changes["tls"] = {"before": current.get("tls"), "after": desired["tls"]}
    return changes


def set_commands(hccn_tool, device, desired, changes):
    """hccn_tool commands (seed 003's syntax) for the changed fields, in dependency order: ip before gateway."""
    commands = []
    dev = str(device)
    if "ip" in changes:
        commands.append(
            [hccn_tool, "-i", dev, "-ip", "-s", "address", desired["address"], "netmask", desired["netmask"]]
        )
    if "gateway" in changes:
        commands.append([hccn_tool, "-i", dev, "-gateway", "-s", "gateway", desired["gateway"]])
    if "netdetect" in changes:
        commands.append([hccn_tool, "-i", dev, "-netdetect", "-s", "address", desired["netdetect"]])
    if "tls" in changes:
        commands.append([hccn_tool, "-i", dev, "-tls", "-s", "enable", str(desired["tls"])])
    return commands


# ---------------------------------------------------------------- /etc/hccn.conf


def parse_hccn_conf(text):
    """key=value lines, in order (comments and blank lines dropped)."""
    entries = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _sep, value = line.partition("=")
        entries.append((key.strip(), value.strip()))
    return entries


def render_hccn_conf(existing_text, devices):
    """/etc/hccn.conf with our keys (address_i, netmask_i, netdetect_i, gateway_i, tls_i) set; others kept."""
    ours = {}
    for index, entry in sorted(devices.items()):
        ours["address_%d" % index] = entry["address"]
        ours["netmask_%d" % index] = entry["netmask"]
        if entry.get("netdetect"):
            ours["netdetect_%d" % index] = entry["netdetect"]
        if entry.get("gateway"):
            ours["gateway_%d" % index] = entry["gateway"]
        if entry.get("tls") is not None:
            ours["tls_%d" % index] = str(entry["tls"])
    lines = []
    seen = set()
    for key, value in parse_hccn_conf(existing_text):
        if key in seen:
            continue
        seen.add(key)
        lines.append("%s=%s" % (key, ours.get(key, value)))
    for key in _conf_order(ours):
        if key not in seen:
            lines.append("%s=%s" % (key, ours[key]))
    return "\n".join(lines) + "\n"


def _conf_order(keys):
    order = {"address": 0, "netmask": 1, "netdetect": 2, "gateway": 3, "tls": 4}
    return sorted(keys, key=lambda k: (int(k.rsplit("_", 1)[1]), order.get(k.rsplit("_", 1)[0], 9)))


# ---------------------------------------------------------------- reading a device through a runner


def _checked(run, command):
    rc, out, err = run(command)
    if rc != 0:
        raise LlmopsError("%s exited with %d: %s" % (" ".join(command[1:]), rc, (err or out).strip()[:300]))
    return out


def read_device_network(run, hccn_tool, device):
    """Current address/netmask/gateway/netdetect/tls of one NPU; run(cmd) -> (rc, stdout, stderr)."""
    dev = str(device)
    current = parse_ip(_checked(run, [hccn_tool, "-i", dev, "-ip", "-g"]))
    current["gateway"] = parse_gateway(_checked(run, [hccn_tool, "-i", dev, "-gateway", "-g"]))
    current["netdetect"] = parse_netdetect(_checked(run, [hccn_tool, "-i", dev, "-netdetect", "-g"]))
    current["tls"] = parse_tls(_checked(run, [hccn_tool, "-i", dev, "-tls", "-g"]))
    return current


def read_attribute(run, hccn_tool, device, attribute):
    """stdout of ``hccn_tool -i N -<attribute> -g`` (a non-zero exit raises LlmopsError with the tool's words)."""
    return _checked(run, [hccn_tool, "-i", str(device), "-" + attribute, "-g"])


def read_link(run, hccn_tool, device):
    return parse_link(read_attribute(run, hccn_tool, device, "link"))


def resolve_tool(get_bin_path, name, what):
    """Absolute path of an Ascend driver tool (a name looked up in PATH, or a path); LlmopsError when missing."""
    path = name if "/" in name else get_bin_path(name)
    if not path or not os.access(path, os.X_OK):
        raise LlmopsError(
            "%s not found (%s); install the Ascend driver (it ships npu-smi and hccn_tool in "
            "/usr/local/Ascend/driver/tools) or set the path" % (name, what)
        )
    return path


def read_npu_smi(run, npu_smi):
    """parse_npu_smi_info of ``npu-smi info``; the NPU's position in its list is the id hccn_tool -i takes."""
    rc, out, err = run([npu_smi, "info"])
    if rc != 0:
        raise LlmopsError("npu-smi info exited with %d: %s" % (rc, (err or out).strip()[:300]))
    return parse_npu_smi_info(out)
