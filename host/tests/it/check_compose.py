"""Checks docker-compose.yml against the Compose specification's JSON
schema (the one docker-compose 1.29.2 ships, installed without its
dependencies), since no Docker engine runs where the tests do.

    check_compose.py docker-compose.yml  ->  {"errors": [...], "compose": {...}}
"""

import importlib.util
import json
import pathlib
import sys

import jsonschema
import yaml


def main() -> None:
    spec = importlib.util.find_spec("compose")
    schema_path = pathlib.Path(spec.submodule_search_locations[0]) / "config" / "compose_spec.json"
    schema = json.loads(schema_path.read_text())
    compose = yaml.safe_load(open(sys.argv[1]))
    validator = jsonschema.Draft7Validator(schema)
    errors = [
        f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
        for e in validator.iter_errors(compose)
    ]
    json.dump({"errors": errors, "compose": compose}, sys.stdout)


if __name__ == "__main__":
    main()
