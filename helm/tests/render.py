"""Renders and lints the chart with Helm's own Go SDK and checks every
rendered object against the Kubernetes API schema (strict).

    render.py CHART VALUES.yaml|- [VALUES.yaml|- ...]  ->  JSON on stdout

`-` stands for the chart's defaults; `a.yaml+b.yaml` layers b over a, as
`helm -f a.yaml -f b.yaml` does (maps merge, anything else replaces). A
values file the chart's schema refuses gives {"schema_error": "..."}
instead of documents.
"""

import json
import sys

import helm_python as helm
import kubernetes_validate
import yaml

KUBE_VERSION = "1.30.0"


def merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def load(values_file: str) -> dict:
    if values_file == "-":
        return {}
    values = {}
    for part in values_file.split("+"):
        values = merged(values, yaml.safe_load(open(part)) or {})
    return values


def main() -> None:
    chart_dir = sys.argv[1]
    out = {}
    for values_file in sys.argv[2:]:
        values = load(values_file)
        chart = helm.Chart.load(chart_dir)
        try:
            chart.validate_schema(values)
        except helm.HelmValuesError as e:
            out[values_file] = {"schema_error": str(e)}
            continue
        lint = helm.lint(chart_dir, values, strict=True, kube_version=f"v{KUBE_VERSION}")
        rendered = chart.render(values, name="lineage", namespace="data", is_install=True)
        docs = []
        for path, text in sorted(rendered.items()):
            if not path.endswith((".yaml", ".yml")):
                continue
            for doc in yaml.safe_load_all(text):
                if not doc:
                    continue
                errors = []
                try:
                    kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
                except kubernetes_validate.SchemaNotFoundError:
                    errors.append("no schema")
                except kubernetes_validate.ValidationError as e:
                    errors.append(f"{'.'.join(map(str, e.path))}: {e.message}")
                docs.append({"template": path, "object": doc, "errors": errors})
        out[values_file] = {"lint": lint, "docs": docs}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
