"""deploy/k8s validates against the Kubernetes API schemas and agrees with the code.

Built-in kinds are checked in strict mode (unknown fields are errors) with kubernetes-validate,
which ships the JSON schemas generated from Kubernetes' OpenAPI for every supported version
(the schemas kubeconform uses, offline, in a PyPI package). KEDA's ScaledObject is a custom
resource those schemas do not cover: its fields are written down below from KEDA's CRD and
the Temporal scaler's documentation, with the source beside them, and checked with jsonschema.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import typer.main
import yaml
from pydantic import SecretStr

from revops import __version__
from revops.settings import Settings
from starter.cli import app
from starter.lazy import subcommands
from tests.conftest import REPO

K8S = REPO / "deploy" / "k8s"
KUSTOMIZATION: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text())
KUBERNETES_VERSIONS = ("1.29", kubernetes_validate.utils.latest_version())
"""The oldest Kubernetes still commonly offered by managed clusters, and the newest schemas."""


def _documents() -> Iterator[dict[str, Any]]:
    for name in KUSTOMIZATION["resources"]:
        for document in yaml.safe_load_all((K8S / name).read_text()):
            if document:
                yield document


RESOURCES = list(_documents())
CONFIG: dict[str, str] = dict(
    literal.split("=", 1) for literal in KUSTOMIZATION["configMapGenerator"][0]["literals"]
)


def _of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in RESOURCES if r["kind"] == kind}


def _containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for resource in RESOURCES:
        spec = resource.get("spec", {}).get("template", {}).get("spec")
        if spec:
            for container in spec["containers"]:
                yield resource["metadata"]["name"], container


# KEDA ScaledObject (keda.sh/v1alpha1), from kedacore/keda config/crd/bases/
# keda.sh_scaledobjects.yaml: spec requires scaleTargetRef (name) and triggers (type,
# metadata: a map of strings). Only the fields these manifests may use are listed, so a typo
# is an error here as it would be in the API server's structural schema.
SCALED_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
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
                        "name": {"type": "string"},
                        "kind": {"type": "string"},
                        "apiVersion": {"type": "string"},
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "initialCooldownPeriod": {"type": "integer", "minimum": 0},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "idleReplicaCount": {"type": "integer", "minimum": 0},
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string"},
                                "behavior": {"type": "object"},  # checked as an HPA's below
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
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metadata": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "kind": {"type": "string"},
                                },
                            },
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                        },
                    },
                },
            },
        },
    },
}

# The `temporal` trigger's metadata, from keda.sh/docs/2.17-2.22/scalers/temporal (kedacore/
# keda-docs content/docs/2.18/scalers/temporal.md): endpoint or endpointFromEnv and taskQueue
# are required; the rest optional (credentials go in a TriggerAuthentication or *FromEnv).
TEMPORAL_TRIGGER_KEYS = {
    "endpoint",
    "endpointFromEnv",
    "namespace",
    "activationTargetQueueSize",
    "targetQueueSize",
    "taskQueue",
    "queueTypes",
    "buildId",
    "selectAllActive",
    "selectUnversioned",
    "apiKeyFromEnv",
    "minConnectTimeout",
    "unsafeSsl",
    "tlsServerName",
}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_built_in_resources_validate_strictly_against_the_kubernetes_schemas(
    version: str,
) -> None:
    built_in = [r for r in RESOURCES if not r["apiVersion"].startswith("keda.sh/")]
    assert {r["kind"] for r in built_in} >= {
        "Deployment",
        "Job",
        "Service",
        "HorizontalPodAutoscaler",
    }
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "revops-config", "namespace": KUSTOMIZATION["namespace"]},
        "data": CONFIG,
    }
    for resource in [*built_in, config_map]:
        kubernetes_validate.validate(resource, version, strict=True)


def test_the_validation_would_catch_a_typo() -> None:
    deployment = _of_kind("Deployment")["revops-worker"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    broken = {**container, "readinesProbe": container["readinessProbe"]}
    typo = {**deployment}
    typo["spec"] = {
        **deployment["spec"],
        "template": {
            **deployment["spec"]["template"],
            "spec": {**deployment["spec"]["template"]["spec"], "containers": [broken]},
        },
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, KUBERNETES_VERSIONS[0], strict=True)


def test_scaled_objects_match_keda_and_its_temporal_scaler() -> None:
    scaled = _of_kind("ScaledObject")
    deployments = _of_kind("Deployment")
    assert set(scaled) == {"revops-worker", "revops-handoff-worker"}
    for name, resource in scaled.items():
        jsonschema.validate(resource, SCALED_OBJECT_SCHEMA)
        spec = resource["spec"]
        assert spec["scaleTargetRef"]["name"] in deployments, name
        assert spec["minReplicaCount"] >= 1, "never to zero: timers need a worker"
        behavior = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {})
        if "behavior" in behavior:
            hpa = {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": name},
                "spec": {
                    "scaleTargetRef": {"kind": "Deployment", "name": name},
                    "maxReplicas": spec["maxReplicaCount"],
                    "behavior": behavior["behavior"],
                },
            }
            kubernetes_validate.validate(hpa, KUBERNETES_VERSIONS[0], strict=True)
        for trigger in spec["triggers"]:
            assert trigger["type"] == "temporal"
            metadata = trigger["metadata"]
            assert set(metadata) <= TEMPORAL_TRIGGER_KEYS, set(metadata) - TEMPORAL_TRIGGER_KEYS
            assert "taskQueue" in metadata
            assert {"endpoint", "endpointFromEnv"} & set(metadata)
            assert metadata.get("endpointFromEnv", "REVOPS_TEMPORAL_ADDRESS") in CONFIG
            assert metadata["namespace"] == CONFIG["REVOPS_TEMPORAL_NAMESPACE"]


def test_each_worker_deployment_is_scaled_on_the_queue_it_serves() -> None:
    scaled = _of_kind("ScaledObject")
    queues = {
        name: _env(container).get("REVOPS_TASK_QUEUE", CONFIG["REVOPS_TASK_QUEUE"])
        for name, container in _containers()
        if container["command"] == ["revops", "worker"]
    }
    assert queues == {
        "revops-worker": CONFIG["REVOPS_TASK_QUEUE"],
        "revops-handoff-worker": CONFIG["REVOPS_PRIORITY_TASK_QUEUE"],
    }
    for name, queue in queues.items():
        assert scaled[name]["spec"]["triggers"][0]["metadata"]["taskQueue"] == queue
    main = dict(_containers())["revops-worker"]
    assert _env(main)["REVOPS_SERVE_PRIORITY_QUEUE"] == "false"


def test_the_gateway_scales_on_cpu() -> None:
    hpa = _of_kind("HorizontalPodAutoscaler")["revops-gateway"]
    assert hpa["spec"]["scaleTargetRef"]["name"] in _of_kind("Deployment")
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def test_commands_are_revops_subcommands_and_probes_hit_served_paths() -> None:
    commands = set(subcommands(typer.main.get_group(app)))
    served = {"/healthz", "/readyz"}  # the gateway's and a worker's health endpoints
    for name, container in _containers():
        assert container["command"][0] == "revops" and container["command"][1] in commands
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        if container["command"][1] == "worker":
            assert ports["health"] == int(_env(container)["REVOPS_WORKER_HEALTH_PORT"])
        if container["command"][1] == "migrate":
            continue
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            http = container[probe]["httpGet"]
            assert http["path"] in served and http["port"] in ports, (name, probe)


def test_schema_wait_is_covered_by_the_startup_probes() -> None:
    wait = float(CONFIG["REVOPS_SCHEMA_WAIT_SECONDS"])
    for name, container in _containers():
        if "startupProbe" in container:
            probe = container["startupProbe"]
            assert probe["periodSeconds"] * probe["failureThreshold"] > wait, name


def test_every_container_requests_resources_and_runs_unprivileged() -> None:
    for name, container in _containers():
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), name
        assert "memory" in resources["limits"], name
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
    for resource in RESOURCES:
        pod = resource.get("spec", {}).get("template", {}).get("spec")
        if pod:
            assert pod["securityContext"]["runAsNonRoot"] is True


def test_secrets_are_only_referenced_never_written_here() -> None:
    assert not _of_kind("Secret")
    secret_settings = {
        f"REVOPS_{name.upper()}"
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation)
    } | {"REVOPS_DATABASE_URL"}
    assert secret_settings >= {"REVOPS_ID_SECRET", "REVOPS_TEMPORAL_API_KEY"}
    assert not secret_settings & set(CONFIG)
    for name, container in _containers():
        refs = {s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s}
        assert refs == {"revops-secrets"}, name
        assert not secret_settings & {e["name"] for e in container.get("env", [])}, name
    assert isinstance(Settings().id_secret, SecretStr)


def test_config_holds_real_settings_and_the_required_production_ones() -> None:
    fields = {f"REVOPS_{name.upper()}" for name in Settings.model_fields}
    assert set(CONFIG) <= fields, set(CONFIG) - fields
    assert {"REVOPS_PUBLIC_URL", "REVOPS_MAIL_FROM", "REVOPS_SMTP_HOST"} <= set(CONFIG)
    Settings.model_validate({k.removeprefix("REVOPS_").lower(): v for k, v in CONFIG.items()})


def test_the_migration_job_runs_revops_migrate_before_the_release() -> None:
    job = _of_kind("Job")["revops-migrate"]
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == ["revops", "migrate"]
    assert pod["restartPolicy"] == "OnFailure"


def test_the_image_tag_is_this_release() -> None:
    (image,) = KUSTOMIZATION["images"]
    assert image["newTag"] == __version__
    assert {c["image"] for _, c in _containers()} == {image["name"]}


def test_the_crm_definition_can_be_mounted_in_the_workers_and_is_optional() -> None:
    pod = _of_kind("Deployment")["revops-worker"]["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "crm-definition"]
    assert volume["configMap"] == {"name": "revops-crm", "optional": True}
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "crm-definition"]
    assert mount["mountPath"] == "/etc/revops/crm" and mount["readOnly"] is True
    text = (REPO / "deploy" / "k8s" / "kustomization.yaml").read_text()
    for key in ("REVOPS_HUBSPOT_ACCESS_TOKEN", "REVOPS_SALESFORCE_INSTANCE_URL", "revops-crm"):
        assert key in text and key in (REPO / "docs" / "deploy.md").read_text(), key
