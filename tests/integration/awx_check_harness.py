"""A validation harness for `ansible-playbook playbooks/awx_configure.yml --check` where no controller can
run (AWX needs PostgreSQL, Redis and Receptor; none is here).

It speaks the part of the controller's REST API the awx.awx modules read in check mode: every list
lookup (``GET /api/v2/<endpoint>/?name=...``) finds one object of that name, every related list is
empty and every survey is empty, with the AWX product headers the modules check. The awx.awx modules
run for real (argument parsing of the templated values, name lookups, check-mode short-circuits);
the harness records every request, so a test can assert that check mode wrote nothing.
"""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

ITEM = re.compile(r"^/api/v2/(?P<endpoint>[a-z_]+)/(?:(?P<id>\d+)/(?:(?P<sub>[a-z_]+)/)?)?$")


class Harness:
    def __init__(self):
        self.requests = []
        harness = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-API-Product-Name", "AWX")
                self.send_header("X-API-Product-Version", "24.6.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urlparse(self.path)
                query = {key: values[0] for key, values in parse_qs(url.query).items()}
                harness.requests.append(("GET", url.path, query))
                match = ITEM.match(url.path)
                if not match:
                    return self._reply(200, {})
                endpoint = match.group("endpoint")
                if match.group("sub") == "survey_spec":
                    return self._reply(200, {})
                if match.group("sub"):
                    return self._reply(200, {"count": 0, "next": None, "results": []})
                item = harness.item(endpoint, query)
                if match.group("id"):
                    return self._reply(200, item)
                return self._reply(200, {"count": 1, "next": None, "previous": None, "results": [item]})

            def _write(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                harness.requests.append((self.command, urlparse(self.path).path, body.decode()))
                self._reply(405, {"detail": "the check harness accepts no writes"})

            do_POST = do_PATCH = do_PUT = do_DELETE = _write

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @staticmethod
    def item(endpoint, query):
        name = query.get("name") or query.get("or__name") or query.get("identifier") or "existing"
        url = "/api/v2/%s/1/" % endpoint
        return {
            "id": 1,
            "type": endpoint.rstrip("s"),
            "name": name,
            "identifier": query.get("identifier", name),
            "url": url,
            "related": {
                "survey_spec": url + "survey_spec/",
                "unified_job_template": "/api/v2/job_templates/1/",
                "credentials": url + "credentials/",
            },
            "summary_fields": {},
            # fields the modules read from an existing object: an ordinary (not smart) inventory,
            # a credential type's kind
            "kind": "",
        }

    def writes(self):
        return [request for request in self.requests if request[0] != "GET"]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
