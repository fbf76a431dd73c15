"""Fixtures for tests on the Kubernetes test bed (scripts/testbed/cluster-up.sh, docs/testing.md).

They skip, with a message, when the test bed is not up; `make cluster-up` starts it.
"""

import os
import uuid

import pytest
import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from testbed_support import KUBECONFIG, exists, wait_for


@pytest.fixture(scope="module")
def api_client():
    if not os.path.exists(KUBECONFIG):
        pytest.skip(f"test bed not up: {KUBECONFIG} missing (run `make cluster-up`)")
    api = config.new_client_from_config(config_file=KUBECONFIG)
    try:
        client.VersionApi(api).get_code(_request_timeout=5)
    except (urllib3.exceptions.HTTPError, OSError, ApiException) as exc:
        pytest.skip(f"test bed not reachable through {KUBECONFIG}: {exc} (run `make cluster-up`)")
    return api


@pytest.fixture(scope="module")
def core(api_client):
    return client.CoreV1Api(api_client)


@pytest.fixture(scope="module")
def namespace(core):
    name = f"testbed-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    # the namespace controller creates the default ServiceAccount pods need
    wait_for(lambda: exists(core.read_namespaced_service_account, "default", name), what="default ServiceAccount")
    yield name
    core.delete_namespace(name)
