"""The container packaging: Dockerfile, .dockerignore and docker-compose.yml.

No Docker engine runs here, so the image is never built. Instead these tests read the
files as Docker would, check that every file the build copies is in the build context,
and run the image's own commands (the compose init script, the entry point with its
environment, the health check) on this machine with the container's paths under a
temporary directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from authz import provision
from devkit.ports import ReservedPort
from tests.networks import NetworkFixture

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
API_PORT = 8443
PACKAGES = (
    "api",
    "authz",
    "chaincode",
    "checkpoints",
    "devkit",
    "domain",
    "encryption",
    "fhir_export",
    "ledger_backends",
    "proofcheck",
)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def read_dockerfile() -> list[Instruction]:
    """Instructions in order, continuation lines joined and comment lines dropped."""
    instructions, pending = [], ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.strip().startswith("#") or not (pending or line.strip()):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).strip().partition(" ")
        instructions.append(Instruction(keyword.upper(), " ".join(arguments.split())))
        pending = ""
    return instructions


def stages() -> list[list[Instruction]]:
    """The build stages in order, each from its FROM on."""
    found: list[list[Instruction]] = []
    for instruction in read_dockerfile():
        if instruction.keyword == "FROM":
            found.append([])
        found[-1].append(instruction)
    return found


WEB_STAGE, DOCKERFILE = stages()  # the web app's build, then the image that runs
WEB_SOURCES = [
    "schema.graphql",
    "web/package.json",
    "web/package-lock.json",
    "web/index.html",
    "web/graphiql.html",
    "web/vite.config.ts",
    "web/codegen.ts",
    "web/tsconfig.json",
    "web/public",
    "web/src",
    "web/graphiql",
]


def only(keyword: str) -> Instruction:
    found = [i for i in DOCKERFILE if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {len(found)}"
    return found[0]


def position(predicate: Any) -> int:
    return position_in(DOCKERFILE, predicate)


def position_in(stage: list[Instruction], predicate: Any) -> int:
    return next(n for n, i in enumerate(stage) if predicate(i))


def entrypoint() -> list[str]:
    argv: list[str] = json.loads(only("ENTRYPOINT").arguments)
    return argv


def flag(argv: list[str], name: str) -> str:
    """The value after the last `name`: argparse lets a later flag override an earlier one."""
    last = max(n for n, word in enumerate(argv) if word == name)
    return argv[last + 1]


def healthcheck_command() -> list[str]:
    _, _, command = only("HEALTHCHECK").arguments.partition("CMD ")
    argv: list[str] = json.loads(command)
    return argv


def copies(stage: list[Instruction]) -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY/ADD from the build context (not from a stage)."""
    result = []
    for instruction in stage:
        if instruction.keyword in ("COPY", "ADD"):
            words = shlex.split(instruction.arguments)
            if any(w.startswith("--from") for w in words):
                continue
            paths = [w for w in words if not w.startswith("--")]
            result.append((paths[:-1], paths[-1]))
    return result


def excluded_by_dockerignore(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        regex = _pattern_regex(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    # Go's filepath.Match (`*` and `?` stop at `/`) plus Docker's `**` for any depth.
    out = ""
    for token in re.split(r"(\*\*/?|\*|\?|\[[^\]]*\])", pattern):
        if token.startswith("**"):
            out += "(.*/)?" if token.endswith("/") else ".*"
        elif token == "*":
            out += "[^/]*"
        elif token == "?":
            out += "[^/]"
        elif token.startswith("["):
            out += token
        else:
            out += re.escape(token)
    return re.compile(out)


def test_every_file_the_build_copies_is_in_the_build_context() -> None:
    copied = [
        source
        for stage in (WEB_STAGE, DOCKERFILE)
        for sources, _ in copies(stage)
        for source in sources
    ]
    assert sorted(copied) == sorted(["pyproject.toml", "README.md", *PACKAGES, *WEB_SOURCES])
    generated = ("__pycache__", "web/src/gql/")  # made by Python and by the build
    for source in copied:
        path = ROOT / source
        assert path.exists(), f"COPY {source}: no such file in the repository"
        files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
        assert files, f"COPY {source}: the directory is empty"
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            if not any(part in relative for part in generated):
                assert not excluded_by_dockerignore(relative), f"{relative} is in .dockerignore"


def test_the_web_app_is_built_from_locked_packages_and_only_its_files_reach_the_image() -> None:
    assert WEB_STAGE[0].arguments.startswith("node:20")
    commands = [i.arguments for i in WEB_STAGE if i.keyword == "RUN"]
    assert commands == ["npm ci --no-audit --no-fund", "npm run build"]
    install = position_in(WEB_STAGE, lambda i: i.arguments.startswith("npm ci"))
    before = [shlex.split(i.arguments)[:-1] for i in WEB_STAGE[:install] if i.keyword == "COPY"]
    assert before == [["web/package.json", "web/package-lock.json"]]  # a cached npm layer
    [from_stage] = [i for i in DOCKERFILE if i.keyword == "COPY" and "--from=" in i.arguments]
    source, target = from_stage.arguments.split()[1:]
    assert source.endswith("/web/dist")
    assert container_environment()["HEALTHLEDGER_WEB_DIST"] == target


def test_the_build_context_leaves_out_secrets_environments_and_caches() -> None:
    for path in [
        "var/network/orgs/hospital/ca.key",
        ".venv/bin/python",
        ".git/config",
        "tests/test_dockerfile.py",
        "bench/ledger_commit.py",
        "docs/BACKENDS.md",
        "web/node_modules/x/index.js",
        "web/dist/index.html",
        "web/src/gql/graphql.ts",
        "web/test-results/story/01.png",
        "web/e2e/story.test.ts",
        "api/__pycache__/cli.cpython-311.pyc",
        "ledger.db",
    ]:
        assert excluded_by_dockerignore(path), f"{path} would be sent to the Docker daemon"


def test_dependencies_are_installed_in_a_layer_before_the_source_is_copied() -> None:
    dependencies = position(lambda i: i.keyword == "RUN" and "pip install" in i.arguments)
    first_source = position(lambda i: i.keyword == "COPY" and i.arguments.split()[0] in PACKAGES)
    assert dependencies < first_source
    before = [c for c in DOCKERFILE[:dependencies] if c.keyword in ("COPY", "ADD")]
    assert [shlex.split(c.arguments)[:-1] for c in before] == [["pyproject.toml", "README.md"]]
    installs = [i for i in DOCKERFILE if i.keyword == "RUN" and "pip install" in i.arguments]
    assert len(installs) == 2
    assert "--no-deps ." in installs[1].arguments
    assert DOCKERFILE.index(installs[1]) > first_source


def test_the_dependency_layer_installs_exactly_what_pyproject_declares(tmp_path: Path) -> None:
    run = next(
        i for i in DOCKERFILE if i.keyword == "RUN" and "-r /tmp/requirements.txt" in i.arguments
    )
    listing = run.arguments.split(" && ")[0].replace("/tmp/requirements.txt", "requirements.txt")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["/bin/sh", "-c", listing], cwd=tmp_path, env=env, check=True)
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert (tmp_path / "requirements.txt").read_text().splitlines() == declared


def test_the_server_runs_as_a_non_root_user() -> None:
    before_entrypoint = DOCKERFILE[: position(lambda i: i.keyword == "ENTRYPOINT")]
    users = [i for i in before_entrypoint if i.keyword == "USER"]
    assert users, "no USER before ENTRYPOINT: the server would run as root"
    user = users[-1].arguments.split(":")[0]
    assert user not in ("root", "0")


def test_the_entry_point_serves_the_api_on_the_exposed_port() -> None:
    assert only("EXPOSE").arguments == str(API_PORT)
    argv = entrypoint()
    assert argv[:2] == ["healthledger", "serve"]
    assert flag(argv, "--host") == "0.0.0.0"
    assert flag(argv, "--port") == str(API_PORT)


def test_the_health_check_probes_healthz_on_the_health_port_the_server_opens() -> None:
    health_port = flag(entrypoint(), "--health-port")
    assert health_port != str(API_PORT)
    assert f"'http://127.0.0.1:{health_port}/healthz'" in healthcheck_command()[-1]


def test_the_volumes_hold_the_network_and_the_sqlite_ledger() -> None:
    volumes = json.loads(only("VOLUME").arguments)
    env = container_environment()
    network, ledger = Path(env["HEALTHLEDGER_NETWORK"]), env["HEALTHLEDGER_LEDGER_URL"]
    assert str(network) in volumes
    assert ledger.startswith("sqlite:////")
    assert str(Path(ledger.removeprefix("sqlite:///")).parent) in volumes


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint", path=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install -e '.[test]' brings it)")
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert (result.returncode, result.stdout) == (0, "")


# -- The image's commands, run here with the container's paths under a temporary root ------


def container_environment() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in DOCKERFILE:
        if instruction.keyword == "ENV":
            for assignment in shlex.split(instruction.arguments):
                name, _, value = assignment.partition("=")
                env[name] = value
    return env


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


class Container:
    """The image's environment and entry point, with every absolute path moved under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHLEDGER_")}
        for name, value in container_environment().items():
            self.env[name] = value.replace("/var/lib/", f"{root}/var/lib/")
        self.env["PATH"] = f"{BIN}{os.pathsep}{os.environ['PATH']}"
        for volume in json.loads(only("VOLUME").arguments):
            self.path(volume).mkdir(parents=True)

    def path(self, inside: str) -> Path:
        return self.root / inside.lstrip("/")

    def run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=60)

    def healthy(self, health_port: int) -> bool:
        argv = healthcheck_command()
        assert argv[0] == "python"
        default_port = flag(entrypoint(), "--health-port")
        script = argv[-1].replace(f":{default_port}/", f":{health_port}/")
        return self.run([sys.executable, *argv[1:-1], script]).returncode == 0


@pytest.fixture
def container(tmp_path: Path) -> Container:
    return Container(tmp_path / "container")


def run_init_service(container: Container) -> subprocess.CompletedProcess[str]:
    argv = compose()["services"]["init"]["entrypoint"]
    # Compose turns `$$` into a literal `$` for the container's shell.
    inside = f"{container.root}/var/lib/"
    return container.run([part.replace("$$", "$").replace("/var/lib/", inside) for part in argv])


def test_the_compose_init_service_creates_the_network_once(container: Container) -> None:
    first = run_init_service(container)
    assert first.returncode == 0, first.stderr
    network_toml = Path(container.env["HEALTHLEDGER_NETWORK"]) / "network.toml"
    created = network_toml.read_bytes()
    again = run_init_service(container)
    assert again.returncode == 0, again.stderr
    assert network_toml.read_bytes() == created


def test_the_compose_init_service_gives_the_server_no_private_ca_or_user_key(
    container: Container,
) -> None:
    assert run_init_service(container).returncode == 0
    admin = container.path("/var/lib/healthledger/admin")
    provision.enroll(admin, org="parents", uid="alice", role="parent")
    assert run_init_service(container).returncode == 0  # publishes alice's certificate
    served = Path(container.env["HEALTHLEDGER_NETWORK"])
    keys = sorted(str(path.relative_to(served)) for path in served.rglob("*.key"))
    # The server's TLS key, and the channels' log keys: the server signs checkpoints.
    assert keys == ["log/medical.key", "log/report.key", "tls/server.key"]
    assert (served / "users/parents/alice.pem").exists()
    assert (served / "orgs/parents/crl.pem").read_bytes() == (
        admin / "orgs/parents/crl.pem"
    ).read_bytes()
    assert stat.S_IMODE((served / "tls/server.key").stat().st_mode) == 0o600
    # The channels' key-encryption keys: the server opens sealed values with them.
    keks = sorted(str(path.relative_to(served)) for path in served.rglob("*.kek*"))
    assert keks == ["keys/medical.kek", "keys/report.kek"]
    for kek in keks:
        assert (served / kek).read_bytes() == (admin / kek).read_bytes()
        assert stat.S_IMODE((served / kek).stat().st_mode) == 0o600
    for log_key in ("log/medical.key", "log/report.key", "log/medical.pub", "log/report.pub"):
        assert (served / log_key).read_bytes() == (admin / log_key).read_bytes()
    assert stat.S_IMODE((served / "log/medical.key").stat().st_mode) == 0o600


@contextlib.contextmanager
def serving(container: Container) -> Iterator[tuple[int, int]]:
    """The entry point on reserved loopback ports until it is healthy; yields the API and
    health ports; stopped with SIGTERM."""
    with ReservedPort() as api, ReservedPort() as health:
        # Arguments after the image name are appended to the entry point, as `docker run` does.
        argv = [*entrypoint(), "--host", "127.0.0.1", "--port", str(api.port)]
        argv += ["--health-port", str(health.port)]
        argv[0] = str(BIN / argv[0])
        log = container.root / "serve.log"
        with log.open("wb") as output:
            process = subprocess.Popen(argv, env=container.env, stdout=output, stderr=output)
        try:
            deadline = time.monotonic() + 30
            while not container.healthy(health.port):
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "not healthy in 30 s:\n" + log.read_text()
                time.sleep(0.1)
            yield api.port, health.port
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise


def test_the_entry_point_serves_mtls_and_passes_the_health_check_while_it_runs(
    container: Container,
) -> None:
    assert run_init_service(container).returncode == 0
    net = NetworkFixture(container.path("/var/lib/healthledger/admin"))
    provision.enroll(net.directory, org="parents", uid="alice", role="parent")
    assert run_init_service(container).returncode == 0
    with serving(container) as (api_port, health_port):
        with httpx.Client(verify=net.client_context("alice"), timeout=5) as client:
            assert client.get(f"https://127.0.0.1:{api_port}/readyz").status_code == 200
        assert container.healthy(health_port)
    assert not container.healthy(health_port)
    assert container.path("/var/lib/healthledger/ledger/ledger.db").exists()
    assert not (Path(container.env["HEALTHLEDGER_NETWORK"]) / "ledger.db").exists()


def test_an_empty_ledger_url_lets_network_toml_choose_the_ledgers(container: Container) -> None:
    assert run_init_service(container).returncode == 0
    container.env["HEALTHLEDGER_LEDGER_URL"] = ""
    network = Path(container.env["HEALTHLEDGER_NETWORK"])
    with serving(container) as (_, health_port):
        assert httpx.get(f"http://127.0.0.1:{health_port}/readyz").status_code == 200
    # network.toml's default ledger is sqlite:///ledger.db, relative to the network.
    assert (network / "ledger.db").exists()
    assert not container.path("/var/lib/healthledger/ledger/ledger.db").exists()


# -- docker-compose.yml -----------------------------------------------------------------


def test_compose_runs_healthledger_on_postgresql_with_redis_beside_it() -> None:
    services = compose()["services"]
    assert set(services) == {"init", "healthledger", "postgres", "redis"}
    app = services["healthledger"]
    assert app["build"] == "." and services["init"]["build"] == "."
    assert app["ports"] == [f"127.0.0.1:{API_PORT}:{API_PORT}"]
    assert app["depends_on"] == {
        "init": {"condition": "service_completed_successfully"},
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert "pg_isready" in postgres["healthcheck"]["test"]
    user, db = postgres["environment"]["POSTGRES_USER"], postgres["environment"]["POSTGRES_DB"]
    ledger_url = app["environment"]["HEALTHLEDGER_LEDGER_URL"]
    assert re.fullmatch(
        rf"postgresql://{user}:\$\{{POSTGRES_PASSWORD[^}}]*\}}@postgres:5432/{db}", ledger_url
    )
    redis = services["redis"]
    assert redis["image"].startswith("redis:")
    assert " ".join(redis["command"]).endswith("--appendonly yes --appendfsync always")
    assert "ping" in redis["healthcheck"]["test"]


def test_compose_mounts_the_volumes_the_image_declares() -> None:
    services = compose()["services"]
    declared = json.loads(only("VOLUME").arguments)
    mounts = {v.split(":")[1] for v in services["healthledger"]["volumes"]}
    assert mounts == set(declared)
    network_volume = container_environment()["HEALTHLEDGER_NETWORK"]
    assert f"network:{network_volume}" in services["init"]["volumes"]
    # The server reads its copy read-only and never sees the volume holding the CA keys.
    assert f"network:{network_volume}:ro" in services["healthledger"]["volumes"]
    assert "admin:/var/lib/healthledger/admin" in services["init"]["volumes"]
    assert not any(v.startswith("admin:") for v in services["healthledger"]["volumes"])


def test_the_server_looks_for_the_web_app_where_the_image_puts_it(tmp_path: Path) -> None:
    target = container_environment()["HEALTHLEDGER_WEB_DIST"]
    found = subprocess.run(
        [sys.executable, "-c", "from api.web import WEB_DIST; print(WEB_DIST)"],
        env={**os.environ, "HEALTHLEDGER_WEB_DIST": target},
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert found.stdout.strip() == target
