"""A stand-in for Confluent Schema Registry on loopback, for the tests.

No real registry installs on these machines (Confluent's and Apicurio
need a JVM from Maven; Karapace needs Python 3.12 and GitHub). This one
implements the endpoints Lineage and Confluent's Python client use, with
Confluent's response bodies and error codes
(https://docs.confluent.io/platform/current/schema-registry/develop/api.html):

  GET  /schemas/ids/{id}                       {"schema": ...}  | 404 40403
  GET  /schemas/ids/{id}/versions              [{"subject", "version"}]
  POST /subjects/{subject}/versions            {"id": ...}  (same schema: same id)
  GET  /subjects/{subject}/versions/{version}  {"subject", "version", "id", "schema"}
                                               | 404 40401 (subject) | 404 40402 (version)

Ids are global and a schema registered again gets its old id, as in
Confluent's. State is kept in a JSON file, so that a restarted registry
answers the ids it gave before. With --user-info user:password every
request needs that basic auth (401 otherwise). Every request is appended
to --requests, one line each, so that a test can count what Lineage asked.

Usage: schema_registry.py --port-file F --state S [--port P] [--user-info U:P] [--requests R]
"""

import argparse
import base64
import json
import os
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class State:
    def __init__(self, path):
        self.path = path
        self.schemas = {}  # id -> schema text
        self.subjects = {}  # subject -> [id of version 1, 2, ...]
        if os.path.exists(path):
            with open(path) as f:
                saved = json.load(f)
            self.schemas = {int(k): v for k, v in saved["schemas"].items()}
            self.subjects = saved["subjects"]

    def save(self):
        incoming = self.path + ".incoming"
        with open(incoming, "w") as f:
            json.dump({"schemas": self.schemas, "subjects": self.subjects}, f)
        os.replace(incoming, self.path)

    def register(self, subject, schema):
        existing = [i for i, s in self.schemas.items() if s == schema]
        schema_id = existing[0] if existing else max(self.schemas, default=0) + 1
        self.schemas[schema_id] = schema
        versions = self.subjects.setdefault(subject, [])
        if schema_id not in versions:
            versions.append(schema_id)
        self.save()
        return schema_id


def handler(state, user_info, requests_log):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def error(self, status, code, message):
            self.reply(status, {"error_code": code, "message": message})

        def authorized(self):
            if requests_log:
                with open(requests_log, "a") as f:
                    f.write(f"{self.command} {self.path}\n")
            if user_info is None:
                return True
            expected = "Basic " + base64.b64encode(user_info.encode()).decode()
            if self.headers.get("Authorization") == expected:
                return True
            self.error(401, 401, "Unauthorized")
            return False

        def do_GET(self):
            if not self.authorized():
                return
            path = self.path.split("?")[0]
            if m := re.fullmatch(r"/schemas/ids/(\d+)", path):
                schema = state.schemas.get(int(m[1]))
                if schema is None:
                    return self.error(404, 40403, f"Schema {m[1]} not found")
                return self.reply(200, {"schema": schema})
            if m := re.fullmatch(r"/schemas/ids/(\d+)/versions", path):
                schema_id = int(m[1])
                if schema_id not in state.schemas:
                    return self.error(404, 40403, f"Schema {m[1]} not found")
                found = [
                    {"subject": s, "version": v.index(schema_id) + 1}
                    for s, v in state.subjects.items()
                    if schema_id in v
                ]
                return self.reply(200, found)
            if m := re.fullmatch(r"/subjects/([^/]+)/versions/(\w+)", path):
                versions = state.subjects.get(m[1])
                if versions is None:
                    return self.error(404, 40401, f"Subject '{m[1]}' not found.")
                n = len(versions) if m[2] == "latest" else int(m[2]) if m[2].isdigit() else 0
                if not 1 <= n <= len(versions):
                    return self.error(404, 40402, f"Version {m[2]} not found.")
                schema_id = versions[n - 1]
                return self.reply(
                    200,
                    {"subject": m[1], "version": n, "id": schema_id, "schema": state.schemas[schema_id]},
                )
            self.error(404, 404, "HTTP 404 Not Found")

        def do_POST(self):
            if not self.authorized():
                return
            path = self.path.split("?")[0]
            m = re.fullmatch(r"/subjects/([^/]+)/versions", path)
            if not m:
                return self.error(404, 404, "HTTP 404 Not Found")
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if body.get("schemaType", "AVRO") != "AVRO":
                return self.error(422, 42201, "Only Avro schemas are served by this stand-in")
            self.reply(200, {"id": state.register(m[1], body["schema"])})

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--state", required=True)
    parser.add_argument("--user-info")
    parser.add_argument("--requests")
    args = parser.parse_args()
    state = State(args.state)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(state, args.user_info, args.requests))
    incoming = args.port_file + ".incoming"
    with open(incoming, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(incoming, args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
