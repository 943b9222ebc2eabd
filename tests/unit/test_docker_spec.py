"""The Docker stack stays in step with what it packages.

``Dockerfile``, ``.dockerignore``, ``docker-compose.yaml`` and ``.env.example`` are checked
against ``requirements.txt``, the Makefile, ``skiff.config``, the docs and the installed
Airflow: commands parse with Airflow's and Skiff's own CLI parsers, health checks hit real
routes, shell steps pass ``bash -n``, every variable is one something reads. No Docker daemon
is needed; ``docker compose config`` runs too where the Compose plugin is installed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from dockerfiles import dockerfile_instructions
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from skiff import config as skiff_config

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_HOME = PurePosixPath("/opt/airflow")  # the official image's AIRFLOW_HOME and WORKDIR

SERVICES = {
    "postgres", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
    "airflow-triggerer", "airflow-init", "model-server", "redis", "airflow-worker",
    "collector", "shoppers",
}
CELERY_PROFILE = {"redis", "airflow-worker"}
#: Services of the skiff command, not Airflow's (no Airflow logs or secrets).
SKIFF_SERVICES = {"model-server", "collector", "shoppers"}

#: Variables neither Skiff nor Airflow's config reads, each with who does.
STACK_VARIABLES = {
    "AIRFLOW_IMAGE_NAME": "docker-compose.yaml: the image to build and run",
    "AIRFLOW_UID": "docker-compose.yaml: the containers' user id (as in Airflow's compose file)",
    "_AIRFLOW_WWW_USER_USERNAME": "airflow-init: the UI's admin user",
    "_AIRFLOW_WWW_USER_PASSWORD": "airflow-init: the UI's admin password",
    "POSTGRES_USER": "the postgres image",
    "POSTGRES_PASSWORD": "the postgres image",
    "POSTGRES_DB": "the postgres image",
    "CONNECTION_CHECK_MAX_COUNT": "Airflow image's entrypoint: 0 skips the wait for the DB",
    "DUMB_INIT_SETSID": "Airflow image's entrypoint: warm shutdown of Celery workers",
    "WANDB_API_KEY": "wandb, with WANDB_MODE=online (docs/training.md)",
    "HOSTNAME": "the container's shell (health checks)",
}
#: Options of the Celery provider, which Airflow's image ships but the test venv does not.
CELERY_OPTIONS = {"AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__CELERY__RESULT_BACKEND"}

_INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}")
_CONTAINER_VAR = re.compile(r"\$\$\{?(\w+)")


# ------------------------------------------------------------------------------ file readers

def _interpolate(text: str) -> str:
    """Compose's interpolation with an empty environment: defaults, and ``$$`` for ``$``."""
    return _INTERPOLATION.sub(lambda m: "$" if m[0] == "$$" else (m["default"] or ""), text)


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in _strings(key) + _strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return [node] if isinstance(node, str) else []


@cache
def _compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _service_env(name: str) -> dict[str, str]:
    return {key: str(value) for key, value in _services()[name].get("environment", {}).items()}


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


def _healthcheck_argv(name: str) -> list[str]:
    test = _services()[name]["healthcheck"]["test"]
    kind, *rest = test
    argv = shlex.split(_interpolate(rest[0])) if kind == "CMD-SHELL" else list(rest)
    return [_interpolate(arg) for arg in argv]


def _interpolated_defaults() -> dict[str, set[str]]:
    """Every ``${NAME:-default}`` of the compose file: the defaults each name is given."""
    defaults: dict[str, set[str]] = {}
    for text in _strings(_compose()):
        for match in _INTERPOLATION.finditer(text):
            if match["name"]:
                defaults.setdefault(match["name"], set()).add(match["default"] or "")
    return defaults


def _compose_names() -> set[str]:
    """Every variable the compose file sets in a container or reads from .env or the shell."""
    names = set(_interpolated_defaults())
    for service in _services().values():
        names |= set(service.get("environment", {}))
    for text in _strings(_compose()):
        names |= set(_CONTAINER_VAR.findall(text))
    return names


@cache
def _dockerfile() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs of the Airflow image's Dockerfile."""
    return dockerfile_instructions(REPO / "Dockerfile")


def _dockerfile_args(keyword: str) -> list[str]:
    return [args for kw, args in _dockerfile() if kw == keyword]


def _dockerfile_defaults() -> dict[str, str]:
    """Values of the Dockerfile's ``ARG name=value`` and ``ENV name=value`` lines."""
    return dict(arg.split("=", 1) for kw in ("ARG", "ENV") for arg in _dockerfile_args(kw)
                if "=" in arg)


def _copies() -> dict[str, PurePosixPath]:
    """Build-context path -> image path of every ``COPY`` (sources into a directory)."""
    copies = {}
    for args in _dockerfile_args("COPY"):
        *sources, dest = [a for a in shlex.split(args) if not a.startswith("--")]
        target = PurePosixPath(dest)
        for source in sources:
            copies[source] = target / source if dest.endswith("/") else target
    return copies


def _requirements() -> dict[str, Requirement]:
    lines = (REPO / "requirements.txt").read_text().splitlines()
    reqs = [Requirement(line.split("#")[0]) for line in lines if line.split("#")[0].strip()]
    return {req.name: req for req in reqs}


def _env_example() -> dict[str, str]:
    """``NAME=value`` assignments of .env.example, commented out or not."""
    text = (REPO / ".env.example").read_text()
    return dict(re.findall(r"^#? ?([A-Z_][A-Z0-9_]*)=(.*)$", text, re.M))


def _doc(page: str) -> str:
    """A page of the documentation, ``docs/<page>``."""
    return (REPO / "docs" / page).read_text()


def _config_table() -> dict[str, str]:
    """The configuration page's variable tables: variable -> its default cell."""
    return dict(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \| (.*?) \| .* \|$", _doc("configuration.md"),
                           re.M))


def _table_default(cell: str) -> str:
    """The default a README cell states: its literal (`` `x` ``, maybe a remark), else empty."""
    literal = re.fullmatch(r"`([^`]*)`(\s*\(.*\))?", cell)
    return literal[1] if literal else ""


def _settings() -> dict[str, str]:
    """Every variable skiff.config reads, with its default as text (the source of truth)."""
    return {setting.env: setting.default for setting in skiff_config.settings()}


def _readme_connections() -> set[str]:
    table = _doc("configuration.md").split("| Airflow connection |", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"^\| `(\w+)` \|", table, re.M))


def _docker_section() -> str:
    match = re.search(r"^## Docker\n(.*?)(?=^## |\Z)", _doc("operations.md"), re.M | re.S)
    assert match, "docs/operations.md has no '## Docker' section"
    return match[1]


@cache
def _airflow_config_spec() -> dict[str, Any]:
    """Airflow's ``config.yml``: every option of Airflow core, with its default."""
    import airflow

    return yaml.safe_load((Path(airflow.__file__).parent / "config_templates"
                           / "config.yml").read_text())


@cache
def _airflow_options() -> tuple[dict[str, tuple[str, str]], set[tuple[str, str]]]:
    """Airflow's own options by environment variable name, and the sensitive ones."""
    options, sensitive = {}, set()
    for section, body in _airflow_config_spec().items():
        for key, option in body["options"].items():
            options[f"AIRFLOW__{section.upper()}__{key.upper()}"] = (section, key)
            if option.get("sensitive"):
                sensitive.add((section, key))
    return options, sensitive


@cache
def _airflow_parser():
    from airflow.cli.cli_parser import get_parser

    return get_parser()


def _assert_airflow_command(argv: list[str], where: str) -> None:
    try:
        _airflow_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"{where}: `airflow {' '.join(argv)}` is not a command of Airflow's CLI")


def _assert_skiff_command(argv: list[str], where: str) -> None:
    from skiff.cli import build_parser

    try:
        build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"{where}: `skiff {' '.join(argv)}` is not a command of Skiff's CLI")


def _init_script() -> str:
    init = _services()["airflow-init"]
    assert init["entrypoint"] == "/bin/bash" and _command(init)[0] == "-c"
    return _interpolate(_command(init)[1])


def _python_snippets(script: str) -> list[str]:
    return re.findall(r"python -c '([^']*)'", script)


def _container_path(readme_default: str) -> str:
    """A README default as seen inside the containers (``$SKIFF_HOME``, repo-relative paths)."""
    value = readme_default.replace("$SKIFF_HOME", _dockerfile_defaults()["SKIFF_HOME"])
    return str(AIRFLOW_HOME / value) if value.startswith("include/") else value


# ------------------------------------------------------------------------------ Dockerfile

def test_image_is_the_official_airflow_image_of_the_pinned_version() -> None:
    args = _dockerfile_defaults()
    assert _dockerfile_args("FROM") == ["apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}"]
    airflow = _requirements()["apache-airflow"]
    assert str(airflow.specifier) == f"=={args['AIRFLOW_VERSION']}", (
        f"Dockerfile AIRFLOW_VERSION={args['AIRFLOW_VERSION']} but requirements.txt pins {airflow}"
    )
    requires_python = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "requires-python"]
    assert SpecifierSet(requires_python).contains(f"{args['PYTHON_VERSION']}.0"), (
        f"the image's Python {args['PYTHON_VERSION']} is outside requires-python {requires_python}"
    )


def test_requirements_install_with_airflow_held_at_its_pin() -> None:
    unpinned = [str(r) for r in _requirements().values() if not str(r.specifier).startswith("==")]
    assert not unpinned, f"the image build is only reproducible with == pins: {unpinned}"
    requirements = _copies()["requirements.txt"]
    installs = [run for run in _dockerfile_args("RUN") if f"-r {requirements}" in run]
    assert len(installs) == 1, f"no RUN installs {requirements}"
    assert re.search(r'pip install .*"apache-airflow==\$\{AIRFLOW_VERSION\}"', installs[0])


def test_code_lands_where_airflow_and_skiff_config_look_for_it() -> None:
    copies = _copies()
    assert copies["dags"] == AIRFLOW_HOME / "dags"  # Airflow's default dags_folder
    assert copies["plugins"] == AIRFLOW_HOME / "plugins"  # and plugins_folder
    # skiff.config finds include/ from its own file: the repo's layout must hold in the image.
    config_in_repo = Path(skiff_config.__file__).resolve().relative_to(skiff_config.REPO_ROOT)
    config_in_image = copies["include"] / config_in_repo.relative_to("include")
    image_root = config_in_image.parents[len(config_in_repo.parts) - 1]
    assert copies["pyproject.toml"].parent == image_root
    # ... and so the package is installed editable from there, not copied into site-packages.
    assert any(f"pip install --no-cache-dir --no-deps -e {image_root}" in run
               for run in _dockerfile_args("RUN")), "the skiff package is not installed editable"


def test_dbt_manifest_is_built_like_make_install_builds_it() -> None:
    def parse_flags(command: str) -> set[str]:
        argv = shlex.split(command.split("dbt parse", 1)[1].split("&&")[0])
        pairs = zip(argv, [*argv[1:], ""])
        return {f"{flag} {value}" if not value.startswith("-") else flag
                for flag, value in pairs if flag.startswith("-") and flag != "--log-path"}

    workdir, runs = None, []
    for keyword, args in _dockerfile():
        workdir = args if keyword == "WORKDIR" else workdir
        if keyword == "RUN" and "dbt parse" in args:
            runs.append((workdir, args))
    ((workdir_of_parse, run),) = runs
    make_rule = re.search(r"^\t(cd .*dbt parse.*)$", (REPO / "Makefile").read_text(), re.M)[1]
    assert parse_flags(run) == parse_flags(make_rule)
    project_in_image = AIRFLOW_HOME / skiff_config.DbtConfig().project_dir.relative_to(
        skiff_config.REPO_ROOT)
    assert workdir_of_parse == str(project_in_image), "dbt parse must run in the dbt project"
    assert "--target-path" not in run, "Cosmos reads the manifest from the default target/"
    assert workdir == str(AIRFLOW_HOME), "the image must end in the official image's WORKDIR"


def test_dockerfile_shell_steps_parse() -> None:
    for run in _dockerfile_args("RUN"):
        done = subprocess.run(["bash", "-n", "-c", run], capture_output=True, text=True)
        assert done.returncode == 0, f"RUN {run}\n{done.stderr}"


def test_build_context_admits_only_what_the_dockerfile_copies() -> None:
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "*", ".dockerignore must exclude everything first"
    admitted = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert admitted == set(_copies()), "admit exactly the Dockerfile's COPY sources"
    secrets = [path for path in admitted if re.search(r"(^|/)\.(env|aws)|\.pem$|id_rsa", path)]
    assert not secrets
    assert ".env" in (REPO / ".gitignore").read_text().split()


# ------------------------------------------------------------------------------ compose

def test_services_and_the_celery_profile() -> None:
    services = _services()
    assert set(services) == SERVICES
    profiled = {name for name, service in services.items() if service.get("profiles")}
    assert profiled == CELERY_PROFILE
    assert all(services[name]["profiles"] == ["celery"] for name in CELERY_PROFILE)
    # airflow-init runs once; the shoppers are a client, with nothing to ask
    missing = [name for name in SERVICES - {"airflow-init", "shoppers"}
               if "healthcheck" not in services[name]]
    assert not missing, f"services without a health check: {missing}"
    assert "redis" in services["airflow-worker"]["depends_on"]


def test_every_image_service_runs_the_dockerfile_image_with_the_env_files() -> None:
    image_services = {name for name, service in _services().items() if "build" in service}
    assert image_services == SERVICES - {"postgres", "redis"}
    for name in image_services:
        service = _services()[name]
        assert service["build"] == "." and service["image"] == _services()["model-server"]["image"]
        assert service["env_file"] == [{"path": "skiff.env", "required": True},
                                       {"path": ".env", "required": False}], name


def test_local_executor_by_default_and_backends_are_services() -> None:
    env = {key: _interpolate(value) for key, value in _service_env("airflow-scheduler").items()}
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    hosts = {key: urllib.parse.urlsplit(env[key]).hostname
             for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND",
                         "AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL")}
    assert hosts == {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgres",
                     "AIRFLOW__CELERY__RESULT_BACKEND": "postgres",
                     "AIRFLOW__CELERY__BROKER_URL": "redis",
                     "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "airflow-apiserver"}


@pytest.mark.parametrize("name", sorted(SERVICES - {"postgres", "redis", "airflow-init"}
                                       - SKIFF_SERVICES))
def test_airflow_service_commands_and_health_checks_are_airflow_commands(name: str) -> None:
    command = _command(_services()[name])
    if command[0] == "celery":
        pytest.importorskip("airflow.providers.celery", reason="the Celery provider ships in "
                            "Airflow's image, not in this venv")
    _assert_airflow_command(command, f"service {name}")
    health = _healthcheck_argv(name)
    if health[0] == "airflow":
        _assert_airflow_command(health[1:], f"health check of {name}")


def test_health_check_routes_exist() -> None:
    import airflow

    api_spec = (Path(airflow.__file__).parent / "api_fastapi" / "core_api" / "openapi"
                / "v2-rest-api-generated.yaml")
    api_url = urllib.parse.urlsplit(_healthcheck_argv("airflow-apiserver")[-1])
    assert api_url.path in yaml.safe_load(api_spec.read_text())["paths"]
    api_port = _airflow_config_spec()["api"]["options"]["port"]["default"]
    execution_api = _service_env("airflow-scheduler")["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
    assert api_url.port == urllib.parse.urlsplit(execution_api).port == int(api_port)
    assert _published("airflow-apiserver") == {api_port: api_port}
    assert _service_env("airflow-scheduler")["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"
    port = _airflow_config_spec()["scheduler"]["options"]["scheduler_health_check_server_port"]
    scheduler_url = f"http://localhost:{port['default']}/health"
    assert _healthcheck_argv("airflow-scheduler")[-1] == scheduler_url


def test_init_script_migrates_creates_the_user_and_keeps_the_secrets() -> None:
    script = _init_script()
    done = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for line in script.splitlines():
        words = shlex.split(line) if line.strip() else []
        if words[:2] == ["/entrypoint", "airflow"]:
            _assert_airflow_command(words[2:], "airflow-init")
        elif words[:1] == ["skiff"]:
            _assert_skiff_command(words[1:], "airflow-init")
    assert "/entrypoint airflow db migrate" in script
    # Every secret an Airflow container reads through a command is a file airflow-init writes,
    # in the volume mounted as /opt/airflow/config, for an option Airflow lets a command set.
    options, sensitive = _airflow_options()
    assert "cd /opt/airflow/config" in script
    assert "airflow-config:/opt/airflow/config" in _services()["airflow-scheduler"]["volumes"]
    for key, value in _service_env("airflow-scheduler").items():
        if key.endswith("_CMD"):
            assert options[key.removesuffix("_CMD")] in sensitive, f"{key}: not a secret option"
            path = PurePosixPath(value.removeprefix("cat "))
            assert path.parent == PurePosixPath("/opt/airflow/config")
            assert re.search(rf"> {re.escape(path.name)}$", script, re.M), (
                f"airflow-init does not write {path}")


def test_init_snippets_write_what_airflow_reads(tmp_path: Path) -> None:
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
    from cryptography.fernet import Fernet

    snippets = _python_snippets(_init_script())
    env = {**os.environ, "_AIRFLOW_WWW_USER_USERNAME": "ada", "_AIRFLOW_WWW_USER_PASSWORD": "pw"}

    def run(code: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", code], env={**env, **extra},
                              capture_output=True, text=True)

    (fernet,) = [code for code in snippets if "Fernet" in code]
    Fernet(run(fernet).stdout.strip().encode())  # a valid key
    # the model server's control-plane token: one the server takes
    from skiff.serve import control_token

    token_file = tmp_path / "serve_token"
    (serve,) = [code for code in snippets if "token_urlsafe(32)" in code]
    token_file.write_text(run(serve).stdout)
    config = skiff_config.ServingConfig(token_file=token_file)
    assert control_token(config, create=False) == token_file.read_text().strip()
    (users,) = [code for code in snippets if "_AIRFLOW_WWW_USER" in code]
    passwords = tmp_path / "passwords.json"
    passwords.write_text(run(users).stdout)
    with passwords.open() as stream:
        assert SimpleAuthManager._get_passwords(stream) == {"ada": "pw"}
    # The user airflow-init writes is the one the api-server knows, as an admin.
    assert _service_env("airflow-apiserver")["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == (
        _service_env("airflow-init")["_AIRFLOW_WWW_USER_USERNAME"] + ":admin")


def test_volumes_are_shared_where_they_must_be() -> None:
    skiff_home = _dockerfile_defaults()["SKIFF_HOME"]
    for name, service in _services().items():
        if "build" not in service:
            continue
        assert _service_env(name)["SKIFF_HOME"] == skiff_home, name
        assert f"skiff-home:{skiff_home}" in service["volumes"], name
        if name not in SKIFF_SERVICES:  # Airflow's components: task logs and the shared secrets
            assert {f"airflow-logs:{AIRFLOW_HOME}/logs", f"airflow-config:{AIRFLOW_HOME}/config"
                    } <= set(service["volumes"]), name


def test_model_server_runs_skiff_serve_reachable_from_airflow() -> None:
    server = _services()["model-server"]
    shell, flag, line = _command(server)
    assert (shell, flag) == ("bash", "-c")
    exec_, program, *argv = shlex.split(line)
    assert (exec_, program) == ("exec", "skiff")
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["skiff"] == "skiff.cli:main"
    _assert_skiff_command(argv, "model-server")
    # Airflow's containers deploy to it by service name; it listens on every interface of its
    # container, the data plane published on 127.0.0.1, the control plane not at all.
    airflow, server = _service_env("airflow-scheduler"), _service_env("model-server")
    assert airflow["SKIFF_SERVE_HOST"] == airflow["SKIFF_SERVE_CONTROL_HOST"] == "model-server"
    assert server["SKIFF_SERVE_HOST"] == server["SKIFF_SERVE_CONTROL_HOST"] == "0.0.0.0"
    defaults = skiff_config.ServingConfig()
    published = _published("model-server")
    assert published == {"8081": str(defaults.port), str(defaults.api_port): str(defaults.api_port)}
    assert "8080" not in published, "host port 8080 is the UI's"
    assert str(defaults.control_port) not in published.values(), "the control plane is published"
    # Both ends read the control-plane token airflow-init writes once into airflow-config.
    token = PurePosixPath(airflow["SKIFF_SERVE_TOKEN_FILE"])
    assert server["SKIFF_SERVE_TOKEN_FILE"] == str(token)
    assert token.parent == PurePosixPath("/opt/airflow/config")
    assert re.search(rf"^\[\[ -s {token.name} \]\] \|\| python -c .*secrets.* > {token.name}$",
                     _init_script(), re.M)
    assert "airflow-config:/opt/airflow/config:ro" in _services()["model-server"]["volumes"]
    assert _services()["model-server"]["depends_on"]["airflow-init"]["condition"] == (
        "service_completed_successfully")


def _published(name: str) -> dict[str, str]:
    """A service's published ports, host port to container port; each on 127.0.0.1 only."""
    published = {}
    for port in _services()[name].get("ports", []):
        address, host, container = _interpolate(port).split(":")
        assert address == "127.0.0.1", f"{name} publishes {port} on every interface"
        published[host] = container
    return published


def test_every_published_port_listens_on_this_machine_only() -> None:
    for name in _services():
        _published(name)


def test_collector_and_shoppers_run_the_live_data_path() -> None:
    """The collector listens inside its container, published on 127.0.0.1; the shoppers post to
    it by service name, from where airflow-init's `skiff init` history ends."""
    commands = {}
    for name in ("collector", "shoppers"):
        shell, flag, line = _command(_services()[name])
        exec_, program, *argv = shlex.split(line)
        assert (shell, flag, exec_, program) == ("bash", "-c", "exec", "skiff"), name
        _assert_skiff_command(argv, name)
        commands[name] = argv
    assert commands == {"collector": ["collect"], "shoppers": ["emit", "--after-history"]}
    assert "skiff -q init" in _init_script()
    port = str(skiff_config.CollectConfig().port)
    assert _published("collector") == {port: port}
    assert _service_env("collector")["SKIFF_COLLECT_HOST"] == "0.0.0.0"
    url = urllib.parse.urlsplit(_interpolate(_service_env("shoppers")["SKIFF_COLLECT_URL"]))
    assert (url.hostname, str(url.port), url.path) == ("collector", port, "/collect")
    assert _healthcheck_argv("collector")[-1] == f"http://localhost:{port}/health"
    depends = _services()["shoppers"]["depends_on"]
    assert depends["collector"]["condition"] == "service_healthy"
    assert _services()["collector"]["depends_on"]["airflow-init"]["condition"] == (
        "service_completed_successfully")


def test_model_server_health_check_answers_before_any_deploy(tmp_path: Path) -> None:
    from skiff.serve import EndpointStore
    from skiff_api.local_stack import LocalStack

    url = urllib.parse.urlsplit(_healthcheck_argv("model-server")[-1])
    assert url.port == skiff_config.ServingConfig().port
    config = skiff_config.ServingConfig(host="127.0.0.1", tf_threads=0,
                                        token_file=tmp_path / "token")
    stack = LocalStack.build(config, store=EndpointStore(tmp_path), port=0, api_port=0,
                             control_port=0).start()
    try:
        with urllib.request.urlopen(f"{stack.urls['models']}{url.path}", timeout=5) as answer:
            assert answer.status == 200
    except urllib.error.HTTPError as error:
        pytest.fail(f"the model-server health check gets {error.code} from {url.path}")
    finally:
        stack.close()


# ------------------------------------------------------------------------------ variables

def test_every_config_variable_is_documented_and_in_env_example() -> None:
    read, table = _settings(), _config_table()
    assert len(read) > 50, "skiff.config.settings() lost its settings"
    assert set(read) - set(table) == set(), "in skiff.config.settings(), not in README's table"
    wrong = {name: (table[name], default) for name, default in read.items()
             if _table_default(table[name]) != default}
    assert not wrong, f"README's default cell vs skiff.config.settings(): {wrong}"
    assert set(read) - set(_env_example()) == set(), "in skiff.config but missing from .env.example"
    assert set(table) - set(_env_example()) == set(), "in README's table, not in .env.example"
    assert set(_interpolated_defaults()) - set(_env_example()) == set(), (
        "docker-compose.yaml reads these from .env, but .env.example does not list them"
    )


def test_compose_and_env_example_name_only_known_variables() -> None:
    options, sensitive = _airflow_options()
    skiff_env = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", (REPO / "skiff.env").read_text(), re.M))
    connections = {f"AIRFLOW_CONN_{conn.upper()}" for conn in _readme_connections()}

    def known(name: str) -> bool:
        if name.endswith("_CMD") and name.removesuffix("_CMD") in options:
            return options[name.removesuffix("_CMD")] in sensitive
        return (name in _settings() or name in _config_table() or name in skiff_env
                or name in options
                or name in CELERY_OPTIONS or name in connections or name in STACK_VARIABLES)

    unknown = sorted(name for name in _compose_names() | set(_env_example()) if not known(name))
    assert not unknown, f"variables nothing reads (typo, or document them): {unknown}"


def test_env_example_is_the_defaults_commented_out() -> None:
    text = (REPO / ".env.example").read_text()
    active = re.findall(r"^([A-Z_][A-Z0-9_]*)=", text, re.M)
    assert not active, f"`cp .env.example .env` must change nothing: {active} are set"
    fixed = {key: value for key, value in _service_env("airflow-scheduler").items()
             if "$" not in value}
    compose_defaults = _interpolated_defaults()
    wrong = {}
    for name, value in _env_example().items():
        expected = set()
        if name in fixed:
            expected.add(fixed[name])
        elif name in _settings():
            expected.add(_container_path(_settings()[name]))
        elif name in _config_table():  # not Skiff's: AIRFLOW_PORT, WANDB_*
            expected.add(_container_path(_table_default(_config_table()[name])))
        if name in compose_defaults:
            expected |= compose_defaults[name]
        if expected and expected != {value}:
            wrong[name] = (value, expected)
    assert not wrong, f".env.example value vs the default (skiff.config, README, compose): {wrong}"


# ------------------------------------------------------------------------------ docs

def test_readme_docker_section_matches_the_compose_file() -> None:
    section = _docker_section()
    published = {host for name in _services() for host in _published(name)}
    ports = set(re.findall(r"http://localhost:(\d+)", section))
    assert ports and ports <= published, f"the docs name unpublished ports {ports - published}"
    assert {"8080", "8081"} <= ports, "the docs must say where the UI and the model server are"
    named = set(re.findall(r"`((?:airflow|model|skiff)-[a-z-]+|postgres|redis)`", section))
    declared = set(_services()) | set(_compose()["volumes"])
    assert named - declared == set(), "the docs name services or volumes the compose file lacks"
    for phrase in ("docker compose up", "--profile celery", ".env.example", "AIRFLOW_CONN_"):
        assert phrase in section, f"the docs' Docker section does not mention {phrase}"


# ------------------------------------------------------------------------------ docker CLI

def _compose_plugin() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _compose_plugin(), reason="the docker compose plugin is not installed")
@pytest.mark.parametrize("profile", [[], ["--profile", "celery"]], ids=["local", "celery"])
def test_docker_compose_config_parses(profile: list[str]) -> None:
    done = subprocess.run(["docker", "compose", *profile, "config", "--format", "json"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    services = set(json.loads(done.stdout)["services"])
    assert services == (SERVICES if profile else SERVICES - CELERY_PROFILE)
