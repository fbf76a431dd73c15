# -*- coding: utf-8 -*-
# Copyright: llmops.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Time playbooks/preflight.yml on the 2 x 8 DeepSeek setup and print a table (target: under 20 s live).

render: inventories/deepseek-r1-2x8-a800-sglang in render mode (no cluster: argument specs, cross checks,
the plan, every serve build step). live: inventories/testbed (the same model on 2 x 8 A800) in apply mode
against the test bed (adds the API, node, Secret and add-on reads); skipped when the bed's kubeconfig is
missing. Each is run --runs times; the median and the best are printed.

    python3 benchmarks/preflight_time.py [--runs 3] [--kubeconfig .state/testbed/kubeconfig]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


def collections_path():
    base = tempfile.mkdtemp(prefix="llmops-collections-")
    link = os.path.join(base, "ansible_collections", "llmops", "inference")
    os.makedirs(os.path.dirname(link))
    os.symlink(ROOT, link)
    return base


def timed_run(inventory, collections, *extra):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    command = [os.path.join(BIN, "ansible-playbook"), "-i", os.path.join(ROOT, "inventories", inventory)]
    command += [os.path.join(ROOT, "playbooks", "preflight.yml")] + list(extra)
    started = time.monotonic()
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT, check=False)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit("preflight failed on %s:\n%s" % (inventory, (result.stdout + result.stderr)[-3000:]))
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--kubeconfig",
        default=os.environ.get("TESTBED_KUBECONFIG", os.path.join(ROOT, ".state", "testbed", "kubeconfig")),
    )
    args = parser.parse_args()
    collections = collections_path()
    cases = [
        (
            "render, 2 x 8 A800 (deepseek-r1-2x8-a800-sglang)",
            "deepseek-r1-2x8-a800-sglang",
            ["-e", "llmops_apply_mode=render", "-e", "llmops_render_dir=" + tempfile.mkdtemp()],
        )
    ]
    if os.path.exists(args.kubeconfig):
        cases.append(
            (
                "live, 2 x 8 A800 test bed (testbed)",
                "testbed",
                ["-e", "llmops_kubeconfig=" + os.path.abspath(args.kubeconfig)],
            )
        )
    else:
        print("(live run skipped: no kubeconfig at %s)" % args.kubeconfig)
    print("%-52s %8s %8s %6s" % ("preflight.yml", "median s", "best s", "runs"))
    for label, inventory, extra in cases:
        times = [timed_run(inventory, collections, *extra) for _run in range(args.runs)]
        print("%-52s %8.1f %8.1f %6d" % (label, statistics.median(times), min(times), len(times)))
    print("cpu cores: %d, load average: %.1f" % (os.cpu_count() or 0, os.getloadavg()[0]))


if __name__ == "__main__":
    main()
