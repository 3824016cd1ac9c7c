"""Validate Kubernetes manifests with the kserve SDK's own models; run by tests/test_deploy.py in a venv
that has `kserve` (it pins protobuf<7 and pandas<3, so it cannot share convzoo's test environment).

Each document is built as its kserve model class (V1alpha1ServingRuntime, V1beta1InferenceService), field
by field through the classes' ``openapi_types`` and ``attribute_map``, down to the Kubernetes classes they
name (V1Container, V1Probe...). A key no class declares, a value of the wrong type, or a required field
missing (the SDK's own constructors check it) is a problem. Prints one JSON line per document:
{"file", "kind", "name", "ok", "problems"}.
"""

import json
import re
import sys

import kserve.models
import kubernetes.client.models
import yaml

KINDS = {("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
         ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): "V1alpha1ClusterServingRuntime",
         ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService"}
NATIVE = {"str": str, "int": int, "float": (int, float), "bool": bool, "object": object, "datetime": str,
          "date": str}
LIST = re.compile(r"^(?:list|List)\[(.*)\]$")
DICT = re.compile(r"^(?:dict\(str, (.*)\)|Dict\[str, (.*)\])$")


def model_class(name):
    return getattr(kserve.models, name, None) or getattr(kubernetes.client.models, name)


def build(data, kind, path, problems):
    """``data`` as the SDK type named ``kind``; problems are appended with their path."""
    if (m := LIST.match(kind)):
        if not isinstance(data, list):
            problems.append(f"{path}: expected a list, got {type(data).__name__}")
            return None
        return [build(item, m.group(1), f"{path}[{i}]", problems) for i, item in enumerate(data)]
    if (m := DICT.match(kind)):
        if not isinstance(data, dict):
            problems.append(f"{path}: expected a mapping, got {type(data).__name__}")
            return None
        return {k: build(v, m.group(1) or m.group(2), f"{path}.{k}", problems) for k, v in data.items()}
    if kind in NATIVE:
        if not isinstance(data, NATIVE[kind]) or (kind == "int" and isinstance(data, bool)):
            problems.append(f"{path}: expected {kind}, got {data!r}")
        return data
    klass = model_class(kind)
    if not isinstance(data, dict):
        problems.append(f"{path}: expected a {kind} mapping, got {data!r}")
        return None
    by_json = {json_key: attr for attr, json_key in klass.attribute_map.items()}
    kwargs = {}
    for key, value in data.items():
        if key not in by_json:
            problems.append(f"{path}.{key}: not a field of {kind}")
            continue
        attr = by_json[key]
        kwargs[attr] = build(value, klass.openapi_types[attr], f"{path}.{key}", problems)
    try:
        return klass(**kwargs)
    except (ValueError, TypeError) as e:  # the SDK's own checks: required fields, enumerations
        problems.append(f"{path}: {kind} refused it: {e}")
        return None


def main(paths):
    for path in paths:
        with open(path) as f:
            for document in yaml.safe_load_all(f):
                kind = KINDS.get((document.get("apiVersion"), document.get("kind")))
                line = {"file": path, "kind": document.get("kind"), "name": document.get("metadata", {}).get("name")}
                problems = [] if kind else [f"{document.get('apiVersion')}/{document.get('kind')} is not a kserve kind"]
                if kind:
                    build(document, kind, "$", problems)
                print(json.dumps(line | {"ok": not problems, "problems": problems}))


if __name__ == "__main__":
    main(sys.argv[1:])
