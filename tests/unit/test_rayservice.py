"""deployments/rayservice.yaml is a RayService that KubeRay's CRD and Ray Serve's schema accept, and
it runs deployments/production.yaml's applications with the environment every Ray node needs.

The CRD (tests/data/kuberay: KubeRay v1.7.0) is applied the way the Kubernetes API server checks a
custom resource, as far as a JSON schema can: CRD defaults are filled in before ``required`` is
checked, ``x-kubernetes-int-or-string`` takes an integer or a string, and an unknown field is an
error, as with ``kubectl apply``'s default strict field validation (unless a schema node says
``x-kubernetes-preserve-unknown-fields``). Not checked: CEL rules (``x-kubernetes-validations``),
``metadata`` (the API server validates ObjectMeta itself) and KubeRay's own admission checks.
No Kubernetes cluster, no Ray cluster, no network.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import json
import os
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml
from ray.serve.schema import HTTPOptionsSchema, ServeApplicationSchema, ServeDeploySchema

from eventlens.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "deployments" / "rayservice.yaml"
PRODUCTION = REPO / "deployments" / "production.yaml"
CRD = REPO / "tests" / "data" / "kuberay" / "ray.io_rayservices.yaml"

SERVE_ENV = {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}
SECRET = "eventlens-storage"
# setting -> (key in the Secret, a value of the shape the Secret is documented to hold)
SECRET_SETTINGS = {
    "EVENTLENS_CLICKHOUSE_URL": ("clickhouse-url", "http://eventlens:x@clickhouse.example:8123"),
    "EVENTLENS_METADATA_URL": ("metadata-url", "mysql://eventlens:x@mysql.example:3306/eventlens"),
    "EVENTLENS_REDIS_URL": ("redis-url", "redis://:x@redis.example:6379/0"),
}
URL_FIELDS = {"clickhouse_url", "metadata_url", "redis_url"}
RAY_HEALTH_PORT = 52365  # the dashboard agent's /api/healthz (raylet, and GCS on the head)


# --- loading -------------------------------------------------------------------------------------


def _yaml(path: Path) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRD is 1 MB
    with path.open() as f:
        return yaml.load(f, Loader=loader)


def manifest() -> dict[str, Any]:
    """A fresh copy, as the JSON kubectl sends: YAML anchors become independent values."""
    return json.loads(json.dumps(_yaml(MANIFEST)))


@cache
def crd_schema() -> dict[str, Any]:
    crd = _yaml(CRD)
    assert crd["kind"] == "CustomResourceDefinition" and crd["spec"]["names"]["kind"] == "RayService"
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return v1["schema"]["openAPIV3Schema"]


def strict(node: Any) -> Any:
    """A copy of a structural-schema node that rejects unknown fields and takes int-or-string.

    Only the structural skeleton (properties, items, additionalProperties) is walked, as the API
    server prunes by it; anyOf/allOf branches only constrain values.
    """
    if not isinstance(node, dict):
        return node
    out = dict(node)
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in out:
        out["properties"] = {name: strict(sub) for name, sub in out["properties"].items()}
        if not out.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in out:
            out["additionalProperties"] = False
    if isinstance(out.get("items"), dict):
        out["items"] = strict(out["items"])
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = strict(out["additionalProperties"])
    return out


def with_defaults(value: Any, schema: dict[str, Any]) -> Any:
    """The value with the schema's defaults filled in where fields are missing (API server defaulting)."""
    if isinstance(value, dict):
        props = schema.get("properties", {})
        out = dict(value)
        for name, sub in props.items():
            if name not in out and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
        extra = schema.get("additionalProperties")
        for name in out:
            if name in props:
                out[name] = with_defaults(out[name], props[name])
            elif isinstance(extra, dict):
                out[name] = with_defaults(out[name], extra)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [with_defaults(item, schema["items"]) for item in value]
    return value


def crd_errors(doc: dict[str, Any]) -> list[str]:
    schema = strict(crd_schema())
    validator = jsonschema.Draft7Validator(schema)
    errors = validator.iter_errors(with_defaults(doc, crd_schema()))
    return sorted(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def group_specs(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    cluster = doc["spec"]["rayClusterConfig"]
    yield "head", cluster["headGroupSpec"]
    for group in cluster["workerGroupSpecs"]:
        yield group["groupName"], group


def ray_container(group: dict[str, Any]) -> dict[str, Any]:
    return group["template"]["spec"]["containers"][0]  # KubeRay runs Ray in the first container


def all_containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for _, group in group_specs(doc):
        pod = group["template"]["spec"]
        out += pod.get("initContainers", []) + pod["containers"]
    return out


def serve_config(doc: dict[str, Any] | None = None) -> dict[str, Any]:
    return yaml.safe_load((doc or manifest())["spec"]["serveConfigV2"])


def production() -> dict[str, Any]:
    return _yaml(PRODUCTION)


# --- the CRD -------------------------------------------------------------------------------------


def test_manifest_is_one_rayservice_accepted_by_the_crd() -> None:
    with MANIFEST.open() as f:
        assert len(list(yaml.safe_load_all(f))) == 1
    doc = manifest()
    assert doc["apiVersion"] == "ray.io/v1"
    assert doc["kind"] == "RayService"
    assert crd_errors(doc) == []


def test_crd_defaults_are_filled_in_before_checking() -> None:
    doc = with_defaults(manifest(), crd_schema())
    worker = doc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    assert worker["numOfHosts"] == 1  # a CRD default the manifest leaves out


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    return ray_container(doc["spec"]["rayClusterConfig"]["headGroupSpec"])


def _worker(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]


HEAD = "spec.rayClusterConfig.headGroupSpec.template.spec.containers.0"
WORKER = "spec.rayClusterConfig.workerGroupSpecs.0"

# (id, mutation, the error it must cause: its path and message)
INVALID: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    # v1alpha1's field, gone from v1
    ("unknown-spec-field", lambda d: d["spec"].update(serveConfig={}), "spec: Additional properties"),
    # `port` for `containerPort`, deep inside the embedded PodSpec
    (
        "unknown-container-port-field",
        lambda d: _container(d)["ports"][0].update(port=8000),
        f"{HEAD}.ports.0: Additional properties",
    ),
    (
        "unknown-probe-field",
        lambda d: _container(d)["livenessProbe"].update(path="/health"),
        f"{HEAD}.livenessProbe: Additional properties",
    ),
    (
        "string-for-integer",
        lambda d: _worker(d).update(replicas="2"),
        f"{WORKER}.replicas: '2' is not of type",
    ),
    (
        "integer-in-string-map",
        lambda d: _worker(d)["rayStartParams"].update({"num-cpus": 4}),
        f"{WORKER}.rayStartParams.num-cpus: 4 is not of type 'string'",
    ),
    (
        "list-for-int-or-string",
        lambda d: _container(d)["livenessProbe"]["httpGet"].update(port=[52365]),
        f"{HEAD}.livenessProbe.httpGet.port: [52365] is not valid",
    ),
    (
        "missing-required-container-name",
        lambda d: _container(d).pop("name"),
        f"{HEAD}: 'name' is a required property",
    ),
    (
        "missing-required-head-group",
        lambda d: d["spec"]["rayClusterConfig"].pop("headGroupSpec"),
        "spec.rayClusterConfig: 'headGroupSpec' is a required property",
    ),
]


@pytest.mark.parametrize(("mutate", "expected"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_crd_rejects_an_invalid_copy(mutate: Callable[[dict[str, Any]], None], expected: str) -> None:
    doc = manifest()
    mutate(doc)
    errors = crd_errors(doc)
    assert len(errors) == 1 and errors[0].startswith(expected), errors


def test_int_or_string_takes_a_named_port() -> None:
    doc = manifest()
    _container(doc)["readinessProbe"]["httpGet"]["port"] = "dashboard"
    assert crd_errors(doc) == []


# --- serveConfigV2 -------------------------------------------------------------------------------


def test_serve_config_is_valid_for_ray_serve() -> None:
    config = serve_config()
    ServeDeploySchema.model_validate(config)
    # Serve ignores unknown keys (forward compatibility), which would hide a typo: check them here.
    assert set(config) <= set(ServeDeploySchema.model_fields)
    assert set(config["http_options"]) <= set(HTTPOptionsSchema.model_fields)
    for app in config["applications"]:
        assert set(app) <= set(ServeApplicationSchema.model_fields), app["name"]


def test_applications_match_production_yaml_and_are_importable() -> None:
    ours, prod = serve_config(), production()

    def shape(config: dict[str, Any]) -> list[tuple[str, str, str]]:
        return [(a["name"], a["route_prefix"], a["import_path"]) for a in config["applications"]]

    assert shape(ours) == shape(prod)
    assert ours["proxy_location"] == prod["proxy_location"]
    assert ours["http_options"] == prod["http_options"]
    for _, _, import_path in shape(ours):
        module, _, attr = import_path.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), import_path


def _secret_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment with each Secret reference replaced by a plausible value."""
    values = {key: value for key, value in SECRET_SETTINGS.values()}
    env = {}
    for var in container["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            env[var["name"]] = values[var["valueFrom"]["secretKeyRef"]["key"]]
    return env


def test_each_application_resolves_the_production_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a replica builds (application args over EVENTLENS_*) equals production.yaml's settings,
    apart from the storage URLs, which come from the Secret instead of args."""
    env = _secret_env(_container(manifest()))
    prod_apps = {a["name"]: a for a in production()["applications"]}

    def settings(args: dict[str, Any], environ: dict[str, str]) -> Settings:
        with monkeypatch.context() as m:
            for key in [k for k in os.environ if k.startswith("EVENTLENS_")]:
                m.delenv(key)
            for key, value in environ.items():
                m.setenv(key, value)
            return load_settings(**args)

    for app in serve_config()["applications"]:
        assert not URL_FIELDS & set(app.get("args") or {}), "passwords belong in the Secret"
        ours = settings(app.get("args") or {}, env)
        prod = settings(prod_apps[app["name"]]["args"], {})
        assert ours.model_dump(exclude=URL_FIELDS) == prod.model_dump(exclude=URL_FIELDS), app["name"]
        assert ours.clickhouse_url and ours.metadata_url and ours.redis_url
        assert not ours.embedded_clickhouse


# --- the pods ------------------------------------------------------------------------------------


def test_every_container_has_the_serve_variables_and_storage_settings_from_the_secret() -> None:
    containers = all_containers(manifest())
    assert len(containers) >= 3  # the migrate init container, the head and a worker
    for container in containers:
        env = {var["name"]: var for var in container["env"]}
        for name, value in SERVE_ENV.items():
            assert env[name].get("value") == value, (container["name"], name)
        for name, (key, _) in SECRET_SETTINGS.items():
            assert "value" not in env[name], (container["name"], name)
            assert env[name]["valueFrom"]["secretKeyRef"] == {"name": SECRET, "key": key}
        assert int(env["EVENTLENS_SHARDS"]["value"]) >= 1
    # one environment everywhere: shard actors and replicas on any node must agree
    assert all(c["env"] == containers[0]["env"] for c in containers)


def test_header_creates_the_secret_keys_the_manifest_reads() -> None:
    text = MANIFEST.read_text()
    assert f"kubectl create secret generic {SECRET}" in text
    for key, _ in SECRET_SETTINGS.values():
        assert f"--from-literal={key}=" in text, key


def test_one_image_with_the_pinned_ray_version() -> None:
    doc = manifest()
    images = {c["image"] for c in all_containers(doc)}
    assert len(images) == 1, images
    ray_version = doc["spec"]["rayClusterConfig"]["rayVersion"]
    assert ray_version == ray.__version__
    assert f'"ray[serve]=={ray_version}"' in (REPO / "pyproject.toml").read_text()
    assert f"FROM rayproject/ray:{ray_version}-py3" in MANIFEST.read_text()


def test_head_migrates_before_ray_starts() -> None:
    from eventlens.cli.main import app

    head = manifest()["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    (init,) = head["initContainers"]
    assert init["command"] == ["eventlens", "migrate"]
    assert "migrate" in [c.name for c in app.registered_commands]


def test_no_second_cluster_during_upgrades() -> None:
    # Two clusters' shard actors would own the same Redis write-ahead logs.
    assert manifest()["spec"]["upgradeStrategy"] == {"type": "None"}


def test_ports_and_probes() -> None:
    doc = manifest()
    serve_port = serve_config(doc)["http_options"]["port"]
    for name, group in group_specs(doc):
        assert group["rayStartParams"]["metrics-export-port"] == "8080", name
        container = ray_container(group)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["metrics"] == 8080, name
        assert ports["serve"] == serve_port, name
        resources = container["resources"]
        assert resources["requests"] and resources["limits"], name

        liveness, readiness = container["livenessProbe"], container["readinessProbe"]
        # Ray's node health, never Event Lens's /ready: a storage outage must not restart pods.
        assert liveness["httpGet"] == {"path": "/api/healthz", "port": RAY_HEALTH_PORT}, name
        assert "/ready" not in json.dumps([liveness, readiness]), name
        if name == "head":
            assert readiness["httpGet"] == liveness["httpGet"]
        else:
            # workers take Serve traffic only while this node's proxy answers
            command = " ".join(readiness["exec"]["command"])
            assert f"localhost:{serve_port}/-/healthz" in command, name
            assert f"localhost:{RAY_HEALTH_PORT}/api/healthz" in command, name


def test_haproxy_answers_the_worker_readiness_path() -> None:
    """With RAY_SERVE_ENABLE_HA_PROXY=1, HAProxy (not Serve's Python proxy) answers on the Serve port."""
    from ray.serve._private.haproxy import HAProxyConfig

    (endpoint,) = [f.default for f in dataclasses.fields(HAProxyConfig) if f.name == "health_check_endpoint"]
    assert endpoint == "/-/healthz"
