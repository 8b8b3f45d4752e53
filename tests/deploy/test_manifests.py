"""deploy/k8s: every manifest validates, and the pieces fit together.

Core kinds are checked against the Kubernetes OpenAPI schemas bundled with
``kubernetes-validate`` (strict: unknown fields fail); KEDA's ScaledObject, a custom resource,
against the JSON Schema below, written from the fields of KEDA's CRD.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

from worker.keyspace import fair_key

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
# The oldest Kubernetes release the manifests promise to work on (hostPath type Socket,
# seccompProfile fields, autoscaling/v2 behaviour for KEDA) and the newest bundled one.
K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
NAMESPACE = "runner"
SOCKET = "/var/run/docker.sock"

_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_INT32 = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
_SCALING_RULES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "stabilizationWindowSeconds": {"type": "integer", "minimum": 0, "maximum": 3600},
        "selectPolicy": {"enum": ["Max", "Min", "Disabled"]},
        "tolerance": {"type": ["string", "number"]},
        "policies": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["type", "value", "periodSeconds"],
                "properties": {
                    "type": {"enum": ["Pods", "Percent"]},
                    "value": {"type": "integer", "minimum": 1},
                    "periodSeconds": {"type": "integer", "minimum": 1, "maximum": 1800},
                },
            },
        },
    },
}

# keda.sh/v1alpha1 ScaledObject (KEDA 2.x CRD): required fields, types, and no unknown spec keys
# (a misspelt key is otherwise silently ignored by the API server's pruning).
SCALED_OBJECT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                "namespace": {"type": "string"},
                "labels": _STRING_MAP,
                "annotations": _STRING_MAP,
            },
        },
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string", "minLength": 1},
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                "pollingInterval": _INT32,
                "cooldownPeriod": _INT32,
                "initialCooldownPeriod": _INT32,
                "idleReplicaCount": _INT32,
                "minReplicaCount": _INT32,
                "maxReplicaCount": _INT32,
                "fallback": {
                    "type": "object",
                    "required": ["failureThreshold", "replicas"],
                    "properties": {
                        "failureThreshold": _INT32,
                        "replicas": _INT32,
                        "behavior": {"type": "string"},
                    },
                },
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "scalingModifiers": {"type": "object"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string"},
                                "behavior": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "scaleUp": _SCALING_RULES,
                                        "scaleDown": _SCALING_RULES,
                                    },
                                },
                            },
                        },
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"type": "string", "minLength": 1},
                            "name": {"type": "string"},
                            # KEDA's CRD: a map of strings; a YAML number here is rejected.
                            "metadata": _STRING_MAP,
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "kind": {
                                        "enum": [
                                            "TriggerAuthentication",
                                            "ClusterTriggerAuthentication",
                                        ]
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}

Doc = dict[str, Any]


def _load() -> list[tuple[str, Doc]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append(
                    (
                        f"{path.name}:{doc.get('kind')}/{doc['metadata']['name']}"
                        if "metadata" in doc
                        else path.name,
                        doc,
                    )
                )
    return docs


DOCS = _load()
RESOURCES = [(name, doc) for name, doc in DOCS if doc.get("kind") != "Kustomization"]


def find(kind: str, name: str) -> Doc:
    found = [d for _, d in RESOURCES if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def env_of(container: Doc) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def worker_pod() -> Doc:
    return find("Deployment", "runner-worker")["spec"]["template"]["spec"]


def test_the_directory_holds_the_expected_kinds() -> None:
    kinds = sorted({d["kind"] for _, d in RESOURCES})
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "Namespace",
            "NetworkPolicy",
            "PersistentVolumeClaim",
            "ScaledObject",
            "Secret",
            "Service",
        ]
    )


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(
    "name,doc",
    [r for r in RESOURCES if r[1]["apiVersion"] != "keda.sh/v1alpha1"],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_core_manifest_validates_against_kubernetes_schema(
    name: str, doc: Doc, version: str
) -> None:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{name} is invalid for Kubernetes {version}: {exc.message} at {exc.path}")


def test_every_namespaced_resource_is_in_the_fleet_namespace() -> None:
    for name, doc in RESOURCES:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACE, name
    assert find("Namespace", NAMESPACE)


def test_scaled_object_validates_against_keda_schema() -> None:
    scaled = [d for _, d in RESOURCES if d["apiVersion"] == "keda.sh/v1alpha1"]
    assert len(scaled) == 1
    jsonschema.Draft202012Validator.check_schema(SCALED_OBJECT_SCHEMA)
    jsonschema.validate(scaled[0], SCALED_OBJECT_SCHEMA, cls=jsonschema.Draft202012Validator)


def test_keda_schema_rejects_what_keda_would() -> None:
    good = find("ScaledObject", "runner-worker")
    validator = jsonschema.Draft202012Validator(SCALED_OBJECT_SCHEMA)
    assert validator.is_valid(good)
    numeric = yaml.safe_load(yaml.safe_dump(good))
    numeric["spec"]["triggers"][0]["metadata"]["listLength"] = 8
    no_target = yaml.safe_load(yaml.safe_dump(good))
    del no_target["spec"]["scaleTargetRef"]["name"]
    typo = yaml.safe_load(yaml.safe_dump(good))
    typo["spec"]["maxReplicas"] = 3
    no_type = yaml.safe_load(yaml.safe_dump(good))
    del no_type["spec"]["triggers"][0]["type"]
    for bad in (numeric, no_target, typo, no_type):
        assert not validator.is_valid(bad)


def test_scaled_object_targets_the_worker_deployment_and_its_queue() -> None:
    spec = find("ScaledObject", "runner-worker")["spec"]
    deployment = find("Deployment", spec["scaleTargetRef"]["name"])
    assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
    assert deployment["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    worker = deployment["spec"]["template"]["spec"]["containers"][0]
    env = env_of(worker)
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    # the queue's list, and the parked doorbells of tests held to their tenant's share
    lists = {t["metadata"]["listName"]: t for t in spec["triggers"] if t["type"] == "redis"}
    queue = env["RUNNER_QUEUE"]
    assert set(lists) == {queue, fair_key(queue, "\x06\x16", "parked")}
    for trigger in lists.values():
        assert int(trigger["metadata"]["listLength"]) >= 1
        assert trigger["metadata"]["address"] == lists[queue]["metadata"]["address"]
    meta = lists[queue]["metadata"]
    # The queue lives in the broker's database, on the Redis Service of this namespace.
    broker = urlsplit(env["RUNNER_BROKER_URL"])
    assert meta.get("databaseIndex", "0") == (broker.path.lstrip("/") or "0")
    host, port = meta["address"].rsplit(":", 1)
    service = find("Service", broker.hostname or "")
    assert host in (
        service["metadata"]["name"],
        f"{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local",
    )
    assert int(port) == broker.port == service["spec"]["ports"][0]["port"]


def test_worker_drains_before_it_is_killed_and_probes_itself() -> None:
    pod = worker_pod()
    assert pod["terminationGracePeriodSeconds"] >= 60
    (worker,) = pod["containers"]
    for probe in ("livenessProbe", "startupProbe"):
        command = worker[probe]["exec"]["command"]
        assert command[:2] == ["/opt/venv/bin/runner", "ping"], probe
        assert worker[probe]["timeoutSeconds"] > float(command[command.index("--timeout") + 1])


def test_worker_mounts_the_socket_read_write_only_where_documented() -> None:
    """The Docker socket is root on the node: exactly one pod may mount it, the worker, and
    the manifest says so next to the mount."""
    mounting = []
    for _, doc in RESOURCES:
        if doc["kind"] != "Deployment":
            continue
        pod = doc["spec"]["template"]["spec"]
        socket_volumes = {
            v["name"] for v in pod.get("volumes", []) if v.get("hostPath", {}).get("path") == SOCKET
        }
        other_host_paths = [
            v for v in pod.get("volumes", []) if "hostPath" in v and v["name"] not in socket_volumes
        ]
        assert not other_host_paths, doc["metadata"]["name"]
        for container in pod["containers"]:
            for mount in container.get("volumeMounts", []):
                if mount["name"] in socket_volumes:
                    mounting.append((doc["metadata"]["name"], container["name"], mount))
    assert [(d, c) for d, c, _ in mounting] == [("runner-worker", "worker")]
    (_, _, mount) = mounting[0]
    assert mount["mountPath"] == SOCKET
    assert mount.get("readOnly", False) is False
    (socket_volume,) = [v for v in worker_pod()["volumes"] if v["name"] == mount["name"]]
    assert socket_volume["hostPath"]["type"] == "Socket"
    text = (K8S / "worker.yaml").read_text()
    assert "WHAT THE SOCKET GRANTS" in text and "root on the node" in text
    assert "Read-write on purpose" in text


def test_worker_runs_unprivileged_apart_from_the_socket() -> None:
    pod = worker_pod()
    (worker,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["supplementalGroups"], "the socket's group"
    assert pod["automountServiceAccountToken"] is False
    context = worker["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"]["drop"] == ["ALL"]
    assert not context.get("privileged", False)
    assert worker["resources"]["limits"]["memory"]


def test_redis_never_evicts_and_persists() -> None:
    conf = find("ConfigMap", "redis-config")["data"]["redis.conf"]
    settings = dict(
        line.split(None, 1) for line in conf.splitlines() if line and not line.startswith("#")
    )
    assert settings["maxmemory-policy"] == "noeviction"
    assert settings["appendonly"] == "yes"
    pod = find("Deployment", "redis")["spec"]["template"]["spec"]
    (redis,) = pod["containers"]
    assert redis["args"][-1].startswith("/etc/redis/") and redis["args"][-1].endswith(".conf")
    assert find("Deployment", "redis")["spec"]["strategy"]["type"] == "Recreate"


def test_flower_takes_its_basic_auth_from_the_secret() -> None:
    pod = find("Deployment", "flower")["spec"]["template"]["spec"]
    (flower,) = pod["containers"]
    refs = [s["secretRef"]["name"] for s in flower.get("envFrom", []) if "secretRef" in s]
    secret = find("Secret", refs[0])
    assert "FLOWER_BASIC_AUTH" in secret.get("stringData", secret.get("data", {}))
    assert not any("basic-auth" in arg for arg in flower["args"]), "password on the command line"
    assert flower["readinessProbe"]["httpGet"]["path"] == "/healthcheck"
    assert find("Service", "flower")["spec"].get("type", "ClusterIP") == "ClusterIP"


def test_redis_clients_carry_the_network_policy_label() -> None:
    policy = find("NetworkPolicy", "redis-clients")["spec"]
    allowed = policy["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    for name in ("runner-worker", "flower", "runner-api"):
        labels = find("Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert allowed.items() <= labels.items(), name


def test_kustomization_lists_every_manifest() -> None:
    (kustomization,) = [d for _, d in DOCS if d.get("kind") == "Kustomization"]
    listed = sorted(kustomization["resources"])
    present = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert listed == present


def test_api_runs_unprivileged_and_probes_its_health() -> None:
    pod = find("Deployment", "runner-api")["spec"]["template"]["spec"]
    (api,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert api["securityContext"]["readOnlyRootFilesystem"] is True
    assert api["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert "volumes" not in pod or all("hostPath" not in v for v in pod["volumes"])
    assert api["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert env_of(api)["RUNNER_REDIS_URL"] == "redis://redis:6379"
    assert find("Service", "runner-api")["spec"]["ports"][0]["port"] == 8000


def test_flower_loads_the_same_celery_configuration_as_in_compose() -> None:
    config = find("ConfigMap", "flower-celeryconfig")["data"]["celeryconfig.py"]
    assert config == (K8S.parent / "flower" / "celeryconfig.py").read_text()
    pod = find("Deployment", "flower")["spec"]["template"]["spec"]
    (flower,) = pod["containers"]
    assert env_of(flower)["CELERY_CONFIG_MODULE"] == "celeryconfig"
    mount = next(m for m in flower["volumeMounts"] if m["name"] == "celeryconfig")
    assert mount["mountPath"] == env_of(flower)["PYTHONPATH"]
