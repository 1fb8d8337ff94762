"""The container image and the Kubernetes manifests: valid, and wired the way the server runs.

The manifests are rendered as `kubectl apply -k deploy/kubernetes/production`
would (tests/kustomize.py, checked against `kubectl kustomize` where it is
installed) and validated offline against the Kubernetes API schemas of the
oldest and the newest release we support (kubernetes-validate, strict: an
unknown or misplaced field fails).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import kubernetes_validate
import pytest
import yaml

from homeserver.api.sync import MAX_TIMEOUT_MS
from homeserver.config import load_config
from homeserver.events.signing import load_key_ring
from homeserver.store import migrate
from homeserver.store.migrate import MIGRATIONS_DIR
from tests.kustomize import Object, render

REPO = Path(__file__).resolve().parent.parent
KUBERNETES = REPO / "deploy" / "kubernetes"
# The releases the manifests must be valid for: the oldest still maintained by the
# big providers when written, and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deploy/kubernetes with the secrets an operator makes before the first apply."""
    copy = tmp_path_factory.mktemp("deploy") / "kubernetes"
    shutil.copytree(KUBERNETES, copy, ignore=shutil.ignore_patterns("secrets"))
    secrets = copy / "production" / "secrets"
    secrets.mkdir()
    load_key_ring(secrets / "signing.key", "chat.example.com")  # `homeserver keys generate`
    (secrets / "signing.key.lock").unlink()
    (secrets / "dsn.env").write_text(
        "database_dsn=postgresql://linkchat:secret@linkchat-db-rw:5432/linkchat\n"
        "redis_url=redis://:secret@linkchat-valkey:6379/0\n"
    )
    return copy


@pytest.fixture(scope="module")
def production(checkout: Path) -> list[Object]:
    return render(checkout / "production")


def _one(objects: list[Object], kind: str, prefix: str = "linkchat-homeserver") -> Object:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].startswith(prefix)]
    return found


@pytest.mark.parametrize("overlay", ["base", "production"])
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_valid_for_kubernetes(checkout: Path, overlay: str, version: str) -> None:
    objects = render(checkout / overlay)
    assert objects
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{overlay}: {obj['kind']} {obj['metadata']['name']}: {error.message}")


def test_the_production_overlay_has_every_object_a_deployment_needs(
    production: list[Object],
) -> None:
    kinds = sorted(obj["kind"] for obj in production)
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Ingress",
        "PersistentVolumeClaim",
        "PodDisruptionBudget",
        "Secret",
        "Secret",
        "Service",
    ]
    assert {obj["metadata"]["namespace"] for obj in production} == {"linkchat"}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_the_renderer_renders_what_kubectl_kustomize_renders(
    checkout: Path, production: list[Object]
) -> None:
    built = subprocess.run(
        ["kubectl", "kustomize", str(checkout / "production")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    theirs = sorted(
        (obj for obj in yaml.safe_load_all(built) if obj),
        key=lambda obj: (obj["kind"], obj["metadata"]["name"]),
    )
    assert production == theirs


def _container(deployment: Object) -> Object:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _config_file(production: list[Object], deployment: Object) -> tuple[str, str]:
    """The path the server reads its config from, and the text found there."""
    container = _container(deployment)
    args = container["args"]
    path = PurePosixPath(args[args.index("--config") + 1])
    pod = deployment["spec"]["template"]["spec"]
    [mount] = [m for m in container["volumeMounts"] if PurePosixPath(m["mountPath"]) == path.parent]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    config_map = _one(production, "ConfigMap", volume["configMap"]["name"])
    return str(path), config_map["data"][path.name]


def test_the_server_config_in_the_config_map_is_valid(
    production: list[Object], tmp_path: Path
) -> None:
    _, text = _config_file(production, _one(production, "Deployment"))
    (tmp_path / "config.yaml").write_text(text)
    secret = _one(production, "Secret", "linkchat-dsn")
    environment = {"HOMESERVER_DATABASE_DSN": "postgresql://x/y", "HOMESERVER_REDIS_URL": ""}
    assert set(secret["data"]) == {"database_dsn", "redis_url"}
    config = load_config(tmp_path / "config.yaml", environment)
    assert config.listen.host == "0.0.0.0"
    assert config.metrics.enabled and config.metrics.host == "0.0.0.0"


def test_the_pods_run_unprivileged_with_their_keys_read_only(
    production: list[Object], tmp_path: Path
) -> None:
    deployment = _one(production, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["automountServiceAccountToken"] is False

    _, text = _config_file(production, deployment)
    (tmp_path / "config.yaml").write_text(text)
    key_path = PurePosixPath(str(load_config(tmp_path / "config.yaml", {}).signing_key_path))
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == str(key_path.parent)]
    assert mount["readOnly"] is True
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    secret = _one(production, "Secret", volume["secret"]["secretName"])
    assert set(secret["data"]) == {key_path.name, key_path.name + ".verify_keys.json"}
    for env in container["env"]:
        ref = env["valueFrom"]["secretKeyRef"]
        assert ref["key"] in _one(production, "Secret", ref["name"])["data"]


def test_probes_ask_health_on_the_client_port(production: list[Object], tmp_path: Path) -> None:
    deployment = _one(production, "Deployment")
    container = _container(deployment)
    [http] = [p for p in container["ports"] if p["name"] == "http"]
    _, text = _config_file(production, deployment)
    (tmp_path / "config.yaml").write_text(text)
    assert http["containerPort"] == load_config(tmp_path / "config.yaml", {}).listen.port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe
    # A PostgreSQL outage fails /health everywhere at once: liveness must outlast a blip.
    liveness = container["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 60


def test_a_rolling_update_keeps_every_replica_serving(production: list[Object]) -> None:
    deployment = _one(production, "Deployment")
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0
    pod = deployment["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= 30
    assert _container(deployment)["lifecycle"]["preStop"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    pdb = _one(production, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = _one(production, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert 2 <= hpa["spec"]["minReplicas"] <= deployment["spec"]["replicas"]
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]


def test_the_service_and_ingress_reach_the_client_port_only(production: list[Object]) -> None:
    deployment = _one(production, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = _one(production, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    assert [port["targetPort"] for port in service["spec"]["ports"]] == ["http"]
    ingress = _one(production, "Ingress")
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == service["metadata"]["name"]
            assert backend["port"]["name"] == "http"
    prefixes = {p["path"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert {"/_matrix", "/_linkchat"} <= prefixes


def test_the_ingress_holds_long_polls_and_streams_longer_than_the_server_does(
    production: list[Object],
) -> None:
    annotations = _one(production, "Ingress")["metadata"]["annotations"]
    longest_poll_s = MAX_TIMEOUT_MS / 1000
    for key in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{key}"]) > longest_poll_s + 10
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"


# --- the image ---------------------------------------------------------------------------------


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Containerfile, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_the_image_is_multi_stage_unprivileged_and_checks_health() -> None:
    steps = _instructions((REPO / "Containerfile").read_text())
    stages = [args for word, args in steps if word == "FROM"]
    assert len(stages) >= 2
    final = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM") :]
    [user] = [args for word, args in final if word == "USER"]
    assert re.fullmatch(r"[1-9][0-9]*:[1-9][0-9]*", user), user
    [health] = [args for word, args in final if word == "HEALTHCHECK"]
    assert "/health" in health
    copied = [args for word, args in final if word == "COPY"]
    assert any(args.startswith("--from=") for args in copied)
    for word, args in steps:
        if word == "COPY" and not args.startswith("--from="):
            *sources, _ = args.split()
            for source in sources:
                assert (REPO / source).exists(), source


def test_the_image_puts_the_migrations_where_the_installed_package_looks() -> None:
    """migrate.py finds `migrations` three levels above itself: in an installed
    package, that is site-packages."""
    # homeserver/store/migrate.py -> the directory holding `homeserver`.
    assert MIGRATIONS_DIR == Path(migrate.__file__).resolve().parents[2] / "migrations"
    steps = _instructions((REPO / "Containerfile").read_text())
    [(_, copy)] = [(w, a) for w, a in steps if w == "COPY" and a.startswith("migrations ")]
    destination = PurePosixPath(copy.split()[1])
    assert destination.name == "migrations"
    assert destination.parent.name == "site-packages"
    [venv] = {m.group(1) for w, a in steps if (m := re.search(r"-m venv (\S+)", a))}
    assert destination.is_relative_to(venv)
    python = [a for w, a in steps if w == "ARG" and a.startswith("PYTHON_IMAGE=")]
    version = re.search(r"python:(\d+\.\d+)", python[0])
    assert version is not None and f"python{version.group(1)}" in str(destination)
