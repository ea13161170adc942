"""deploy/: the Kubernetes manifests and the two container images, checked offline.

There is no cluster and no Docker daemon on these machines. What is checked: kustomize renders the base, the
example overlay and each autoscaling component; every built-in resource validates against the Kubernetes 1.31
schemas; the custom resources (Strimzi, KEDA, CloudNativePG), which no schema here covers, carry the fields
their operators require and agree with fleetscope's settings and topics; the probes, ports and commands are
those the worker and Triton really serve; the images copy only what exists and is not dockerignored.
"""

from __future__ import annotations

import base64
import fnmatch
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import kubernetes_validate
import pytest
import pytriton
import yaml

from core.settings import Settings
from infra.manifests import (
    PRODUCTION_KAFKA,
    STRIMZI_CLUSTER,
    kafka_topics,
    kafka_topics_yaml,
    production_settings,
    resource_name,
)
from infra.process import free_ports
from infra.triton import MODELS
from streams import metrics, topics
from streams.sinks.migrations import READER_ROLE, WRITER_ROLE
from tests.http_get import get

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "kubernetes"
DOCKER = REPO / "deploy" / "docker"
TOPICS_FILE = K8S / "base" / "kafka-topics.yaml"

KUBERNETES_VERSION = "1.31"  # the oldest minor still in upstream support when these manifests were written
# Kinds no schema of kubernetes_validate covers: operators' custom resources, checked field by field below.
CUSTOM_KINDS = {
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"),
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("postgresql.cnpg.io/v1", "Cluster"),
}
OVERLAY_NAMESPACE = "fleetscope"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def clean_settings(**kafka: Any) -> Settings:
    """Production settings as the committed files assume them, even with a FLEETSCOPE_* variable set here."""
    with mock.patch.dict(os.environ, {"FLEETSCOPE_KAFKA__TOPIC_PREFIX": "not-read."}):
        return production_settings(**kafka)


def kustomize(directory: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, f"kubectl kustomize {directory} failed:\n{out.stderr}"
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def with_component(tmp: Path, component: str) -> list[dict[str, Any]]:
    """The base with one of components/ (kustomize takes only relative paths to them)."""
    tmp.mkdir(parents=True, exist_ok=True)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(K8S / "base", tmp)],
        "components": [os.path.relpath(K8S / "components" / component, tmp)],
    }
    (tmp / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return kustomize(tmp)


@pytest.fixture(scope="module")
def renders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("kustomize")
    return {
        "base": kustomize(K8S / "base"),
        "overlay": kustomize(K8S / "overlays" / "example"),
        "base+keda": with_component(tmp / "keda", "keda"),
        "base+hpa": with_component(tmp / "hpa", "hpa"),
    }


@pytest.fixture(scope="module")
def overlay(renders: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return renders["overlay"]


@pytest.fixture(scope="module")
def settings() -> Settings:
    return clean_settings()


def one(resources: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [r for r in resources if r["kind"] == kind and (name is None or r["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[r['metadata']['name'] for r in found]}"
    return found[0]


def of_kind(resources: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["kind"] == kind]


def container(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return found


def port_number(c: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in c["ports"] if p["name"] == port]
    return int(number)


def worker_config(resources: list[dict[str, Any]]) -> dict[str, str]:
    """The data of the ConfigMap the worker container takes its environment from."""
    c = container(one(resources, "Deployment", "fleetscope-worker"), "worker")
    (name,) = [e["configMapRef"]["name"] for e in c["envFrom"] if "configMapRef" in e]
    data: dict[str, str] = one(resources, "ConfigMap", name)["data"]
    return data


# --- rendering and schemas ------------------------------------------------------------------------------------


def test_the_base_is_namespace_agnostic_and_the_overlay_puts_everything_in_its_namespace(renders, overlay):
    assert all("namespace" not in r["metadata"] for r in renders["base"])
    assert {r["metadata"].get("namespace") for r in overlay} == {OVERLAY_NAMESPACE}


def test_the_base_holds_every_part_and_no_autoscaler(renders):
    kinds = {(r["kind"], r["metadata"]["name"]) for r in renders["base"]}
    assert {
        ("Deployment", "fleetscope-worker"),
        ("Deployment", "fleetscope-triton"),
        ("Service", "fleetscope-triton"),
        ("PodDisruptionBudget", "fleetscope-worker"),
        ("Job", "fleetscope-schema"),
    } <= kinds
    assert not of_kind(renders["base"], "ScaledObject") and not of_kind(renders["base"], "HorizontalPodAutoscaler")


def test_every_resource_has_a_component_label_the_ordered_apply_selects(overlay):
    # deploy/README.md applies config, database and kafka-topics, then schema, then triton, then the rest.
    components = {r["metadata"]["labels"].get("app.kubernetes.io/component") for r in overlay}
    assert components == {"config", "database", "kafka-topics", "schema", "triton", "worker"}


def test_every_render_has_at_most_one_autoscaler_on_the_worker(renders):
    for name, resources in renders.items():
        scalers = of_kind(resources, "ScaledObject") + of_kind(resources, "HorizontalPodAutoscaler")
        assert len(scalers) == (0 if name == "base" else 1), name
        for scaler in scalers:
            assert scaler["spec"]["scaleTargetRef"]["name"] == "fleetscope-worker"
    assert of_kind(renders["overlay"], "ScaledObject"), "the example overlay autoscales with KEDA"


def test_every_built_in_resource_validates_against_the_kubernetes_schemas(renders):
    for name, resources in renders.items():
        for r in resources:
            if (r["apiVersion"], r["kind"]) in CUSTOM_KINDS:
                continue
            try:
                kubernetes_validate.validate(r, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{name}: {r['kind']}/{r['metadata']['name']}: {'.'.join(map(str, exc.path))}: {exc}")


def test_custom_resources_are_not_schema_checked_so_they_are_checked_field_by_field_below(overlay):
    # kubernetes_validate has no schemas for operators' kinds: it raises rather than passing them.
    custom = [r for r in overlay if (r["apiVersion"], r["kind"]) in CUSTOM_KINDS]
    assert {(r["apiVersion"], r["kind"]) for r in custom} == CUSTOM_KINDS
    for r in custom:
        with pytest.raises(kubernetes_validate.SchemaNotFoundError):
            kubernetes_validate.validate(r, KUBERNETES_VERSION, strict=True)


def test_the_strict_schemas_reject_a_misspelled_field(overlay):
    deployment = one(overlay, "Deployment", "fleetscope-worker")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    c = broken["spec"]["template"]["spec"]["containers"][0]
    c["readinesProbe"] = c.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


# --- Kafka topics (Strimzi) -----------------------------------------------------------------------------------


def test_the_committed_kafka_topics_are_what_fleetscope_generates(settings):
    assert TOPICS_FILE.read_text() == kafka_topics_yaml(settings, STRIMZI_CLUSTER), (
        f"{TOPICS_FILE.relative_to(REPO)} is stale: regenerate it with the command in its header"
    )


def test_the_kafka_topics_are_every_topic_the_worker_needs_with_the_production_layout(renders, settings):
    resources = of_kind(renders["base"], "KafkaTopic")
    assert sorted(r["spec"]["topicName"] for r in resources) == sorted(topics.all_topics(settings))
    for r in resources:
        assert r["apiVersion"] == "kafka.strimzi.io/v1beta2"
        assert r["metadata"]["labels"]["strimzi.io/cluster"] == STRIMZI_CLUSTER
        assert DNS_LABEL.match(r["metadata"]["name"]), r["metadata"]["name"]
        spec = r["spec"]
        assert (spec["partitions"], spec["replicas"]) == (
            PRODUCTION_KAFKA["partitions"],
            PRODUCTION_KAFKA["replication_factor"],
        )
        assert all(isinstance(v, str) for v in spec["config"].values()), "Kafka topic configs are strings"
    changelog = topics.changelog(settings, topics.SEGMENT_WINDOWS_TABLE)
    config = one(resources, "KafkaTopic", resource_name(changelog))["spec"]["config"]
    assert config.items() >= topics.CHANGELOG_CONFIG.items()
    # Every topic takes the largest message the worker accepts (Apache Kafka's default is about 1 MB).
    assert {r["spec"]["config"]["max.message.bytes"] for r in resources} == {str(settings.kafka.max_message_bytes)}


def test_the_worker_is_configured_with_the_layout_the_topics_were_generated_with(overlay):
    config = worker_config(overlay)
    assert int(config["FLEETSCOPE_KAFKA__PARTITIONS"]) == PRODUCTION_KAFKA["partitions"]
    assert int(config["FLEETSCOPE_KAFKA__REPLICATION_FACTOR"]) == PRODUCTION_KAFKA["replication_factor"]
    # The changelog topic and the KEDA consumer group are named by these; the generated files assume defaults.
    assert "FLEETSCOPE_WORKER__APP_ID" not in config and "FLEETSCOPE_KAFKA__TOPIC_PREFIX" not in config
    assert config["FLEETSCOPE_KAFKA__BOOTSTRAP_SERVERS"].startswith(f"{STRIMZI_CLUSTER}-kafka-bootstrap:")


def test_topic_resource_names_follow_a_prefix_and_never_collide():
    prefixed = kafka_topics(clean_settings(topic_prefix="Team_A."), "c")
    assert [r["metadata"]["name"] for r in prefixed][:2] == ["team-a-fleet-frames", "team-a-fleet-gps"]
    assert prefixed[0]["spec"]["topicName"] == "Team_A.fleet.frames"
    colliding = (topics.TopicSpec("a.b", 1, 1, {}), topics.TopicSpec("a-b", 1, 1, {}))
    with (
        mock.patch("infra.manifests.topic_specs", return_value=colliding),
        pytest.raises(ValueError, match="both"),
    ):
        kafka_topics(clean_settings(), "c")


# --- worker: probes, metrics, autoscaling ---------------------------------------------------------------------


def test_the_worker_probes_call_what_the_worker_serves_on_its_metrics_port(overlay, settings, monkeypatch):
    worker = one(overlay, "Deployment", "fleetscope-worker")
    c = container(worker, "worker")
    probes = {kind: c[kind]["httpGet"] for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert {kind: g["path"] for kind, g in probes.items()} == {
        "startupProbe": "/ready",
        "readinessProbe": "/ready",
        "livenessProbe": "/live",
    }
    assert {port_number(c, g["port"]) for g in probes.values()} == {settings.worker.metrics_port}
    annotations = worker["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == settings.worker.metrics_port

    monkeypatch.setattr(metrics, "_state", metrics._ProbeState())  # this test's readiness stays its own
    (port,) = free_ports(1)
    metrics.serve("127.0.0.1", port)
    metrics.set_ready(False)
    assert get(port, "/ready") == (503, "not ready\n")
    metrics.set_ready(True)
    assert get(port, "/ready") == (200, "ready\n")
    assert get(port, "/live") == (200, "live\n")
    status, text = get(port, annotations["prometheus.io/path"])
    assert status == 200 and "fleetscope_worker_ready" in text


def test_the_worker_gets_the_pipeline_login_only_and_the_schema_job_the_owner_login_too(overlay):
    c = container(one(overlay, "Deployment", "fleetscope-worker"), "worker")
    secrets = {e["valueFrom"]["secretKeyRef"]["key"] for e in c.get("env", []) if "secretKeyRef" in e["valueFrom"]}
    assert secrets == {"FLEETSCOPE_POSTGRES__DSN"}
    assert not any("secretRef" in e for e in c["envFrom"])
    job = one(overlay, "Job", "fleetscope-schema")["spec"]["template"]["spec"]["containers"][0]
    (secret_name,) = [e["secretRef"]["name"] for e in job["envFrom"]]
    secret = one(overlay, "Secret", secret_name)
    assert set(secret["data"]) == {"FLEETSCOPE_POSTGRES__DSN", "FLEETSCOPE_POSTGRES__ADMIN_DSN"}


def test_keda_scales_the_worker_consumer_group_on_its_input_topics(overlay, settings):
    scaled = one(overlay, "ScaledObject", "fleetscope-worker")
    spec = scaled["spec"]
    kafka = [t["metadata"] for t in spec["triggers"] if t["type"] == "kafka"]
    assert {m["consumerGroup"] for m in kafka} == {settings.worker.app_id}
    assert sorted(m["topic"] for m in kafka) == sorted(settings.topic(t) for t in (topics.FRAMES, topics.GPS))
    config = worker_config(overlay)
    for m in kafka:
        # KEDA reads the broker address from the target container's environment.
        assert m["bootstrapServersFromEnv"] in config
        assert int(m["lagThreshold"]) > 0
        assert m["offsetResetPolicy"] in ("earliest", "latest")
    (cpu,) = [t for t in spec["triggers"] if t["type"] == "cpu"]
    assert cpu["metricType"] == "Utilization" and 0 < int(cpu["metadata"]["value"]) <= 100
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= PRODUCTION_KAFKA["partitions"]


def test_the_hpa_fallback_has_the_same_bounds_and_a_cpu_target(renders):
    hpa = one(renders["base+hpa"], "HorizontalPodAutoscaler")["spec"]
    keda = one(renders["base+keda"], "ScaledObject")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (keda["minReplicaCount"], keda["maxReplicaCount"])
    assert hpa["maxReplicas"] <= PRODUCTION_KAFKA["partitions"]
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]


def test_cpu_autoscaling_has_a_cpu_request_to_measure_against(overlay):
    c = container(one(overlay, "Deployment", "fleetscope-worker"), "worker")
    assert c["resources"]["requests"]["cpu"]


# --- Triton -----------------------------------------------------------------------------------------------------


def tritonserver_help() -> str:
    """``tritonserver --help`` of the bundled server, the release the Triton image is based on (2.51.0)."""
    binary = Path(pytriton.__file__).parent / "tritonserver" / "bin" / "tritonserver"
    out = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=60, check=False)
    return out.stdout + out.stderr


@pytest.fixture(scope="module")
def triton_help() -> str:
    return tritonserver_help()


def triton_default_port(help_text: str, option: str) -> int:
    match = re.search(rf"--{option} <integer>\s+[^\n]*\n?[^\n]*Default is (\d+)\.", help_text)
    assert match, f"tritonserver --help states no default for --{option}"
    return int(match.group(1))


def test_the_triton_service_and_probes_use_tritons_default_ports(overlay, triton_help):
    defaults = {name: triton_default_port(triton_help, f"{name}-port") for name in ("http", "grpc", "metrics")}
    service = {p["name"]: p["port"] for p in one(overlay, "Service", "fleetscope-triton")["spec"]["ports"]}
    assert service == defaults
    deployment = one(overlay, "Deployment", "fleetscope-triton")
    c = container(deployment, "triton")
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == defaults
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert {port_number(c, c[p]["httpGet"]["port"]) for p in ("readinessProbe", "livenessProbe")} == {defaults["http"]}
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == defaults["metrics"]
    assert worker_config(overlay)["FLEETSCOPE_TRITON__URL"] == f"fleetscope-triton:{defaults['grpc']}"


def test_triton_on_gpus_in_the_overlay(overlay):
    triton = one(overlay, "Deployment", "fleetscope-triton")
    assert int(container(triton, "triton")["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    pod = triton["spec"]["template"]["spec"]
    assert pod["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])


# --- PostgreSQL (CloudNativePG) ---------------------------------------------------------------------------------


def test_the_cloudnativepg_cluster_matches_the_dsns_and_the_schemas_roles(overlay):
    cluster = one(overlay, "Cluster", "fleetscope-db")["spec"]
    assert cluster["instances"] >= 1 and cluster["storage"]["size"]
    job = one(overlay, "Job", "fleetscope-schema")["spec"]["template"]["spec"]["containers"][0]
    (secret_name,) = [e["secretRef"]["name"] for e in job["envFrom"]]
    dsn = {k: base64.b64decode(v).decode() for k, v in one(overlay, "Secret", secret_name)["data"].items()}
    pattern = re.compile(r"^postgresql://(?P<user>[^:]+):[^@]+@(?P<host>[^:/]+):\d+/(?P<db>\w+)$")
    admin, pipeline = (pattern.match(dsn[f"FLEETSCOPE_POSTGRES__{k}"]) for k in ("ADMIN_DSN", "DSN"))
    assert admin and pipeline
    initdb = cluster["bootstrap"]["initdb"]
    assert (initdb["owner"], initdb["database"]) == (admin["user"], admin["db"]) and pipeline["db"] == admin["db"]
    assert {admin["host"], pipeline["host"]} == {"fleetscope-db-rw"}  # CloudNativePG's read-write Service
    roles = {r["name"]: r for r in cluster["managed"]["roles"]}
    assert {WRITER_ROLE, READER_ROLE} <= set(roles)
    assert roles[pipeline["user"]]["login"] and WRITER_ROLE in roles[pipeline["user"]]["inRoles"]
    for name, user in (
        (initdb["secret"]["name"], admin["user"]),
        (roles[pipeline["user"]]["passwordSecret"]["name"], pipeline["user"]),
    ):
        secret = one(overlay, "Secret", name)
        assert secret["type"] == "kubernetes.io/basic-auth"
        assert base64.b64decode(secret["data"]["username"]).decode() == user


# --- images ------------------------------------------------------------------------------------------------------


def instructions(dockerfile: Path) -> Iterator[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in dockerfile.read_text().splitlines() if not line.lstrip().startswith("#")),
    )
    for line in text.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            yield keyword.upper(), rest.strip()


def copies(dockerfile: Path) -> list[tuple[str, str]]:
    """(source, destination) of each COPY from the build context."""
    out = []
    for keyword, rest in instructions(dockerfile):
        if keyword == "COPY" and "--from=" not in rest:
            *sources, dest = [word for word in rest.split() if not word.startswith("--")]
            out += [(s, dest) for s in sources]
    return out


def exec_form(dockerfile: Path, keyword: str) -> list[str]:
    (value,) = [rest for k, rest in instructions(dockerfile) if k == keyword]
    parsed = yaml.safe_load(value)
    assert isinstance(parsed, list), f"{keyword} of {dockerfile.name} must be exec form (signals reach the process)"
    return parsed


def dockerignored(path: str, patterns: list[str]) -> bool:
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatch(p, pat) or fnmatch.fnmatch(p, pat.removeprefix("**/")) for p in prefixes for pat in patterns
    )


@pytest.fixture(scope="module")
def ignore_patterns() -> list[str]:
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert not any(p.startswith("!") for p in patterns), "exceptions would need Docker's own matching"
    return patterns


@pytest.mark.parametrize("image", ["worker", "triton"])
def test_every_copy_source_exists_and_is_in_the_build_context(image, ignore_patterns):
    for source, _ in copies(DOCKER / f"{image}.Dockerfile"):
        assert (REPO / source).exists(), f"{image}: COPY {source} does not exist"
        assert not dockerignored(source.rstrip("/"), ignore_patterns), f"{image}: COPY {source} is dockerignored"


@pytest.mark.parametrize("image", ["worker", "triton"])
def test_the_images_copy_every_package_pyproject_installs(image):
    find = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = {p.rstrip("*") for p in find["include"]}
    copied = {source.rstrip("/") for source, _ in copies(DOCKER / f"{image}.Dockerfile")}
    assert packages <= copied, f"{image} lacks {sorted(packages - copied)}"
    assert {"pyproject.toml", "README.md"} <= copied  # README.md is the package's readme


def test_the_build_context_leaves_out_environments_run_directories_and_data(ignore_patterns):
    for path in (".venv", "var", "fleetscope-data", "fleetscope-eval-data", ".git", "core/__pycache__"):
        assert dockerignored(path, ignore_patterns), path


def test_the_worker_image_runs_fleetscope_worker_as_a_non_root_user_listening_beyond_loopback(settings):
    dockerfile = DOCKER / "worker.Dockerfile"
    assert exec_form(dockerfile, "ENTRYPOINT") + exec_form(dockerfile, "CMD") == ["fleetscope", "worker"]
    final = dockerfile.read_text().rpartition("\nFROM ")[2]
    assert re.search(r"^USER 10001", final, re.M), "numeric, so that runAsNonRoot can verify it"
    assert re.search(rf"^EXPOSE {settings.worker.metrics_port}$", final, re.M)
    assert "FLEETSCOPE_WORKER__METRICS_HOST=0.0.0.0" in final


def test_the_commands_the_manifests_run_are_real_fleetscope_commands(overlay):
    fleetscope = Path(sys.executable).with_name("fleetscope")
    worker = container(one(overlay, "Deployment", "fleetscope-worker"), "worker")
    job = one(overlay, "Job", "fleetscope-schema")["spec"]["template"]["spec"]["containers"][0]
    assert "command" not in worker and "command" not in job, "the image's entrypoint, `fleetscope`, runs"
    for args in (worker["args"], job["args"]):
        out = subprocess.run([fleetscope, *args, "--help"], capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode == 0, f"fleetscope {' '.join(args)} --help: {out.stderr}"


def test_the_triton_image_serves_the_embedded_stacks_models_with_flags_tritonserver_knows(
    renders, overlay, triton_help
):
    # The base runs the image's CPU arguments; the overlay replaces them for GPUs.
    assert "args" not in container(one(renders["base"], "Deployment", "fleetscope-triton"), "triton")
    dockerfile = DOCKER / "triton.Dockerfile"
    entrypoint = exec_form(dockerfile, "ENTRYPOINT")
    assert Path(entrypoint[0]).name == "tritonserver"
    gpu_args = container(one(overlay, "Deployment", "fleetscope-triton"), "triton")["args"]
    flags = entrypoint[1:] + exec_form(dockerfile, "CMD") + gpu_args
    for flag in flags:
        option = flag.split("=")[0]
        assert re.search(rf"^\s+{re.escape(option)}( <|$)", triton_help, re.M), f"tritonserver has no {option}"
    values = [f.partition("=")[::2] for f in flags]
    assert sorted(v for k, v in values if k == "--load-model") == sorted(MODELS)
    assert not {k for k, _ in values} & {"--http-port", "--grpc-port", "--metrics-port"}, "Triton's defaults"
    destinations = dict(copies(dockerfile))
    (repository,) = [v for k, v in values if k == "--model-repository"]
    assert destinations["triton_repo/"].rstrip("/") == repository
    for model in MODELS:
        assert (REPO / "triton_repo" / model / "config.pbtxt").is_file()
    env = container(one(overlay, "Deployment", "fleetscope-triton"), "triton")["env"]
    (checkpoints,) = [e["value"] for e in env if e["name"] == "FLEETSCOPE_TRITON__CHECKPOINT_DIR"]
    assert destinations["models/weights/"].rstrip("/") == checkpoints
    assert f"FLEETSCOPE_TRITON__CHECKPOINT_DIR={checkpoints}" in dockerfile.read_text()


def test_deploy_render_check_names_a_generated_file_that_was_edited_by_hand(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from fleetscope.cli import main
    from infra import deploy_files

    assert CliRunner().invoke(main, ["deploy", "render", "--check"]).exit_code == 0
    edited = tmp_path / "kafka-topics.yaml"
    edited.write_text(deploy_files.KAFKA_TOPICS.read_text().replace("partitions: 12", "partitions: 3", 1))
    makers = deploy_files.generated()
    monkeypatch.setattr(deploy_files, "generated", lambda: {**makers, edited: makers[deploy_files.KAFKA_TOPICS]})
    result = CliRunner().invoke(main, ["deploy", "render", "--check"])
    assert result.exit_code == 1 and "kafka-topics.yaml" in result.output


def test_deploy_kafka_topics_prints_another_layout_with_the_workers_prefix_and_app_id():
    from click.testing import CliRunner

    from fleetscope.cli import main

    args = ["deploy", "kafka-topics", "--topic-prefix", "acme.", "--app-id", "acme", "--partitions", "24"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    specs = [doc["spec"] for doc in yaml.safe_load_all(result.output) if doc]
    assert {s["partitions"] for s in specs} == {24}
    names = {s["topicName"] for s in specs}
    assert "acme.fleet.frames" in names and f"acme-{topics.SEGMENT_WINDOWS_TABLE}-changelog" in names
    assert CliRunner().invoke(main, ["deploy", "kafka-topics", "--partitions", "0"]).exit_code == 2
