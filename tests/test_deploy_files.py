"""The deployment files agree with the code: settings, metrics, modules, services and commands.

Docker is not needed: every file is parsed and checked against what pewproc really exposes
(`pewproc.settings`, `pewproc.ops.metrics`, the click commands), so a renamed setting, metric or
command fails here instead of in production.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
from prometheus_client import generate_latest

from pewproc.ops.cli import main as cli_main
from pewproc.ops.metrics import Metrics
from pewproc.settings import Settings, settings_fields

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
PROMETHEUS = DOCKER / "prometheus" / "prometheus.yml"
ALERTS = DOCKER / "prometheus" / "alerts.yml"
GRAFANA = DOCKER / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "pewproc.json"
KOMODO = ROOT / "komodo" / "stack.toml"
DOCS = [ROOT / "docs" / name for name in ("deployment.md", "operations.md", "architecture.md")]
COMMAND_DOCS = [*DOCS, ROOT / "komodo" / "README.md"]

SETTINGS_ENV = {f.metadata["env"] for f in settings_fields()}
SHUTDOWN_DEFAULT = next(
    f.default for f in settings_fields() if f.metadata["env"] == "SHUTDOWN_TIMEOUT_SECONDS"
)

# Series Prometheus itself adds to every target; allowed in alert rules.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}

# Subcommands a colleague is adding, with the options their documented syntax uses; once they
# exist in the CLI they are checked against the real command instead.
PENDING_COMMANDS: dict[tuple[str, ...], set[str] | None] = {
    ("queue", "stats"): set(),
    ("dlq", "list"): {"--limit"},
    ("dlq", "replay"): {"--reason", "--match-id", "--all"},
    ("bench",): None,  # options documented in docs/performance.md
}


# Helpers


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


def pewproc_services(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services that run pewproc's image (built from docker/Dockerfile)."""
    found = {}
    for name, service in doc["services"].items():
        build = service.get("build") or {}
        dockerfile = build.get("dockerfile", "") if isinstance(build, dict) else ""
        if dockerfile.endswith("docker/Dockerfile") or "pewproc" in str(service.get("image", "")):
            found[name] = service
    return found


def komodo_stack() -> dict[str, Any]:
    stacks = tomllib.loads(KOMODO.read_text(encoding="utf-8"))["stack"]
    assert len(stacks) == 1
    return stacks[0]


def komodo_compose() -> dict[str, Any]:
    return yaml.safe_load(komodo_stack()["config"]["file_contents"])


def dotenv(text: str) -> dict[str, str]:
    """KEY=VALUE lines, as Komodo writes them to the stack's .env (no quoting used)."""
    pairs = [line.split("=", 1) for line in text.splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    return {key.strip(): value for key, value in pairs}


def exposed_metric_names() -> set[str]:
    """Every sample name pewproc's registry can expose, labelled children or not."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "gauge": ("",),
    }
    names = set()
    for family in Metrics().registry.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_IDENTIFIER = re.compile(r"(?<![\w.$])([A-Za-z_:][\w:]*)(\s*\()?")
_PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan",
}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: not functions, keywords, labels or Grafana vars."""
    text = "\n".join(line.split("#", 1)[0] for line in expr.splitlines())
    text = _STRING.sub('""', text)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if not call and name.lower() not in _PROMQL_KEYWORDS:
            names.add(name)
    return names


def fenced_blocks(path: Path, languages: set[str]) -> list[str]:
    blocks = re.findall(r"^[ \t]*```([\w-]*)[^\n]*\n(.*?)^[ \t]*```",
                        path.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)
    return [body for lang, body in blocks if lang.lower() in languages]


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            exprs.extend(t["expr"] for t in panel.get("targets", []) if t.get("expr"))
            walk(panel.get("panels", []))

    walk(board["panels"])
    return exprs


def alert_exprs() -> list[str]:
    return [rule["expr"] for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines, current = [], ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    out = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def mount_target(volume: str) -> str:
    """Target of a short-syntax volume, `${VAR:-default}` sources included."""
    rest, _, last = volume.rpartition(":")
    if last in {"ro", "rw", "z", "Z"} or "," in last:
        rest, _, last = rest.rpartition(":")
    return last


def seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", value):
        total += float(number) * units[unit]
    return total


def memory_bytes(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kKmMgG]?)[bB]?", str(value)).groups()
    return int(float(number) * 1024 ** " KMG".index(unit.upper() or " "))


# The helpers themselves


def test_promql_parser_finds_metrics_and_ignores_the_rest() -> None:
    expr = ('histogram_quantile(0.95, sum by (le, stage) (rate(pewproc_stage_duration_seconds_'
            'bucket{instance=~"$instance", stage!="total"}[$__rate_interval]))) / on() '
            'group_left max(pewproc_pool_size) offset 5m > 1e3 and time() - up')
    assert promql_metric_names(expr) == {
        "pewproc_stage_duration_seconds_bucket", "pewproc_pool_size", "up",
    }


def test_metric_name_set_covers_what_the_registry_exposes() -> None:
    metrics = Metrics()
    metrics.messages.labels("completed").inc()
    metrics.stage_duration.labels("parse").observe(0.1)
    exposed = {
        line.split("{")[0].split(" ")[0]
        for line in generate_latest(metrics.registry).decode().splitlines()
        if line and not line.startswith("#")
    }
    assert exposed <= exposed_metric_names()
    assert "queue_messages_processed_total" in exposed_metric_names()
    assert "queue_messages_processed" not in exposed_metric_names()  # not a series


# Compose


def test_compose_depends_on_names_existing_services_and_valid_conditions() -> None:
    services = compose()["services"]
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        for target, spec in (depends.items() if isinstance(depends, dict)
                             else ((d, {}) for d in depends)):
            assert target in services, f"{name} depends on unknown service {target}"
            assert spec.get("condition", "service_started") in {
                "service_started", "service_healthy", "service_completed_successfully"}
            if spec.get("condition") == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
            if not service.get("profiles"):
                assert not services[target].get("profiles"), (
                    f"{name} runs in every profile but depends on {target}, which does not")


def test_compose_has_broker_database_and_two_workers() -> None:
    services = compose()["services"]
    assert re.match(r"rabbitmq:3\.(1[0-9])", services["rabbitmq"]["image"])
    assert "management" in services["rabbitmq"]["image"]
    assert services["postgres"]["image"].startswith("postgres:15")
    assert set(pewproc_services(compose())) == {"pewproc-worker-1", "pewproc-worker-2"}
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]


def test_compose_pewproc_environment_uses_real_settings_only() -> None:
    worker_ids = []
    for name, service in pewproc_services(compose()).items():
        env = service["environment"]
        assert isinstance(env, dict), f"{name}: use the mapping form of environment"
        unknown = set(env) - SETTINGS_ENV
        assert not unknown, f"{name} sets variables pewproc does not read: {sorted(unknown)}"
        for required in ("WORKER_ID", "WORKER_POOL_SIZE", "ENVIRONMENT", "RABBITMQ_HOST",
                         "POSTGRES_HOST", "TELEMETRY_ROOT", "METRICS_ADDR"):
            assert required in env, f"{name} does not set {required}"
        assert str(env["WORKER_POOL_SIZE"]) == "2"
        assert env["METRICS_ADDR"] == "0.0.0.0"
        worker_ids.append(env["WORKER_ID"])
    assert len(set(worker_ids)) == len(worker_ids), "WORKER_ID must differ per worker"


# Prometheus and Grafana


def test_prometheus_scrapes_every_worker_on_its_metrics_port() -> None:
    config = load_yaml(PROMETHEUS)
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"]
               for t in sc["targets"]}
    expected = {f"{name}:{service['environment']['METRICS_PORT']}"
                for name, service in pewproc_services(compose()).items()}
    assert targets == expected
    mounted = compose()["services"]["prometheus"]["volumes"]
    for rule_file in config["rule_files"]:
        assert any(mount_target(v) == rule_file for v in mounted), f"{rule_file} not mounted"


def test_grafana_provisioning_matches_compose_mounts_and_dashboard() -> None:
    datasources = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yaml")
    uids = {d["uid"] for d in datasources["datasources"]}
    providers = load_yaml(GRAFANA / "provisioning" / "dashboards" / "pewproc.yaml")["providers"]
    grafana_mounts = {mount_target(v) for v in compose()["services"]["grafana"]["volumes"]}
    assert "/etc/grafana/provisioning" in grafana_mounts
    for provider in providers:
        assert provider["options"]["path"] in grafana_mounts

    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    used = {p["datasource"]["uid"] for p in board["panels"] if "datasource" in p}
    assert used <= uids


def test_dashboard_covers_the_required_views() -> None:
    names = set().union(*(promql_metric_names(e) for e in dashboard_exprs()))
    for required in (
        "queue_messages_processed_total", "pewproc_stage_duration_seconds_bucket",
        "queue_processing_duration_seconds_bucket", "pewproc_queue_messages",
        "worker_errors_total", "pewproc_dead_letters_total", "pewproc_in_flight_tasks",
        "pewproc_pool_size", "pewproc_child_restarts_total", "pewproc_broker_reconnects_total",
        "pewproc_last_success_timestamp_seconds",
    ):
        assert required in names, f"the dashboard does not show {required}"


# promtool: the alerts' unit tests and every dashboard expression, parsed by Prometheus itself

ALERT_TESTS = DOCKER / "prometheus" / "alerts_test.yml"
# Grafana's variables, replaced by values of the same kind so that promtool can parse the query.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h",
                     "$instance": ".*"}


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        reason = "promtool not installed (Debian: apt-get install prometheus; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI must run these, not skip them
        pytest.skip(reason)
    return path


def run_promtool(promtool: str, *args: str) -> str:
    result = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_every_alert_has_a_healthy_and_a_firing_unit_test() -> None:
    cases: dict[str, set[str]] = {}
    for test in load_yaml(ALERT_TESTS)["tests"]:
        for case in test["alert_rule_test"]:
            kind = "firing" if case.get("exp_alerts") else "healthy"
            cases.setdefault(case["alertname"], set()).add(kind)
    alerts = {rule["alert"] for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]}
    assert set(cases) == alerts
    for alert, kinds in cases.items():
        assert kinds == {"healthy", "firing"}, f"{alert} lacks a {({'healthy', 'firing'} - kinds)}"


def test_alert_unit_tests_pass_in_promtool(promtool: str) -> None:
    assert "SUCCESS" in run_promtool(promtool, "test", "rules", str(ALERT_TESTS))


def test_alerts_and_prometheus_config_pass_promtool_checks(promtool: str, tmp_path: Path) -> None:
    assert "SUCCESS: 12 rules found" in run_promtool(promtool, "check", "rules", str(ALERTS))
    config = load_yaml(PROMETHEUS)
    config["rule_files"] = [str(ALERTS)]  # the container's path, as seen from here
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    run_promtool(promtool, "check", "config", str(tmp_path / "prometheus.yml"))


def test_every_dashboard_expression_parses_in_promtool(promtool: str, tmp_path: Path) -> None:
    """Each expression becomes a recording rule: `check rules` parses every one of them."""
    rules = []
    for number, expr in enumerate(dashboard_exprs()):
        for variable, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"a Grafana variable promtool cannot parse in {expr!r}"
        rules.append({"record": f"pewproc:dashboard_panel_{number}", "expr": expr})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = run_promtool(promtool, "check", "rules", str(path))
    assert f"SUCCESS: {len(rules)} rules found" in out


def test_known_label_values_are_exported_at_zero_before_any_event() -> None:
    """Prometheus' advice for labelled counters: a series that appears with its first event
    hides that event from increase(), which is how the first dead letter went unnoticed."""
    text = generate_latest(Metrics().registry).decode()
    exhausted = "retries_exhausted:database_unavailable"
    for sample in ('pewproc_dead_letters_total{reason="invalid_message"} 0.0',
                   f'pewproc_dead_letters_total{{reason="{exhausted}"}} 0.0',
                   'worker_errors_total{reason="file_missing"} 0.0',
                   'worker_errors_total{reason="database_schema"} 0.0',
                   'pewproc_copy_fallbacks_total{kind="rejected"} 0.0',
                   'pewproc_child_restarts_total{reason="pool_stalled"} 0.0',
                   'queue_messages_processed_total{outcome="dead_lettered"} 0.0',
                   'pewproc_child_restarts_total{reason="child_lost"} 0.0',
                   'telemetry_processed_total{status="failed"} 0.0'):
        assert sample in text


WORK_QUEUE_SELECTOR = 'queue!~".*[.](dlq|retry[.][0-9]+s)"'


def test_work_queue_panels_and_alerts_exclude_retry_queues_and_the_dlq() -> None:
    exprs = [e for e in (*dashboard_exprs(), *alert_exprs())
             if "pewproc_queue_consumers" in e or "pewproc_queue_messages" in e]
    for expr in exprs:
        for selector in re.findall(r"pewproc_queue_(?:consumers|messages)(\{[^}]*\})?", expr):
            assert "queue" not in selector or WORK_QUEUE_SELECTOR in selector or (
                'queue=~".*[.]dlq"' in selector), f"ambiguous queue selector in {expr!r}"


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_promql_in_deploy_files_names_existing_metrics(source: str) -> None:
    exprs = dashboard_exprs() if source == "dashboard" else alert_exprs()
    assert exprs
    known = exposed_metric_names() | (PROMETHEUS_SERIES if source == "alerts" else set())
    for expr in exprs:
        names = promql_metric_names(expr)
        assert names, f"no metric found in {expr!r}"
        assert names <= known, f"unknown metrics {sorted(names - known)} in {expr!r}"

    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    for variable in board["templating"]["list"]:
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else ""
        match = re.fullmatch(r"label_values\((\w+),\s*\w+\)", query)
        if match:
            assert match.group(1) in exposed_metric_names()


@pytest.mark.parametrize("doc", ["operations.md", "deployment.md"])
def test_promql_in_docs_names_existing_metrics(doc: str) -> None:
    path = ROOT / "docs" / doc
    blocks = fenced_blocks(path, {"promql"})
    if doc == "operations.md":
        assert len(blocks) >= 7, "the runbook's alerts are missing"
    known = exposed_metric_names() | PROMETHEUS_SERIES
    for block in blocks:
        names = promql_metric_names(block)
        assert names, f"no metric in {doc} block {block!r}"
        assert names <= known, f"{doc}: unknown metrics {sorted(names - known)} in {block!r}"


# Dockerfile


def test_dockerfile_runs_an_existing_module_as_non_root_with_a_healthcheck() -> None:
    instructions = dockerfile_instructions()
    cmd = json.loads([args for kw, args in instructions if kw == "CMD"][-1])
    assert cmd[:2] == ["python", "-m"]
    assert importlib.util.find_spec(cmd[2]) is not None, f"no module {cmd[2]}"

    healthcheck = [args for kw, args in instructions if kw == "HEALTHCHECK"][-1]
    assert "/healthz" in healthcheck and "curl" not in healthcheck

    users = [args for kw, args in instructions if kw == "USER"]
    assert users, "the image must set a USER"
    assert users[-1].split(":")[0] not in {"root", "0"}
    keywords = [kw for kw, _ in instructions]
    assert keywords.index("USER") < len(keywords) - 1 - keywords[::-1].index("CMD")

    env = " ".join(args for kw, args in instructions if kw == "ENV")
    assert "METRICS_ADDR=0.0.0.0" in env
    assert "TELEMETRY_ROOT=/data/telemetry" in env
    settings_in_env = {m for m in re.findall(r"\b([A-Z][A-Z0-9_]*)=", env)
                       if not m.startswith(("PYTHON", "PATH", "PIP"))}
    assert settings_in_env <= SETTINGS_ENV
    assert any(kw == "EXPOSE" and "9093" in args.split() for kw, args in instructions)
    assert next(args for kw, args in instructions if kw == "FROM").endswith("AS build")
    assert "python:3.11-slim" in DOCKERFILE.read_text(encoding="utf-8")


def test_dependencies_are_installed_in_a_layer_before_the_code() -> None:
    """A change to pewproc/ must not reinstall every dependency."""
    instructions = dockerfile_instructions()
    stages = [i for i, (kw, _) in enumerate(instructions) if kw == "FROM"]
    build = instructions[stages[0]:stages[1]]
    copy_code = next(i for i, (kw, args) in enumerate(build)
                     if kw == "COPY" and args.split()[0] == "pewproc")
    before, after = build[:copy_code], build[copy_code + 1:]
    assert any(kw == "RUN" and "pip install ." in args and "--no-deps" not in args
               for kw, args in before), "dependencies are not installed before the code"
    assert not any(kw == "COPY" and "pewproc" in args.split()[:-1] for kw, args in before)
    assert [args for kw, args in after if kw == "RUN"] == [
        "/opt/pewproc/bin/pip install --no-deps ."]


def test_apt_packages_are_pinned_and_postgres_health_is_checked_over_tcp() -> None:
    for keyword, args in dockerfile_instructions():
        if keyword == "RUN" and "apt-get install" in args:
            packages = [w for w in args.split("apt-get install", 1)[1].split("&&")[0].split()
                        if not w.startswith("-")]
            assert packages and all("=" in p for p in packages), f"unpinned: {packages}"
    test = compose()["services"]["postgres"]["healthcheck"]["test"]
    assert "pg_isready -h 127.0.0.1 " in " ".join(test)


def test_dockerignore_keeps_what_the_build_copies() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv"} <= ignored
    assert not ignored & {"pewproc", "pyproject.toml", "setup.cfg", "README.md", "*"}


# Komodo


@pytest.fixture(scope="module")
def komodo_schema(shared_file: Callable[[str], Path]) -> dict[str, Any]:
    return json.loads(shared_file("komodo/resources.schema.json").read_text())


@pytest.fixture(scope="module")
def compose_spec(shared_file: Callable[[str], Path]) -> dict[str, Any]:
    return json.loads(shared_file("komodo/compose-spec.json").read_text())


def test_komodo_stack_validates_against_komodos_own_schema(komodo_schema: dict[str, Any]) -> None:
    jsonschema.validate(tomllib.loads(KOMODO.read_text(encoding="utf-8")), komodo_schema)
    with pytest.raises(jsonschema.ValidationError, match="is not of type 'array'"):
        jsonschema.validate({"stack": {"name": "pewproc-prod"}}, komodo_schema)  # the old shape


def test_komodo_stack_names_a_server_and_carries_its_compose_file() -> None:
    """Komodo ignores unknown keys: a stack without these validates and deploys nothing."""
    stack = komodo_stack()
    assert stack["name"] and stack["tags"]
    config = stack["config"]
    assert config["server"] and config["project_name"]
    assert config["file_contents"].strip(), "the compose source is file_contents"
    assert not config.get("repo") and not config.get("files_on_host")


def test_compose_files_validate_against_the_compose_spec(compose_spec: dict[str, Any]) -> None:
    # The spec names draft-07 by a URL jsonschema does not recognise; say it directly.
    validator = jsonschema.Draft7Validator(compose_spec)
    validator.validate(komodo_compose())
    validator.validate(compose())


def test_komodo_environment_holds_only_valid_pewproc_settings(tmp_path: Path) -> None:
    env = dotenv(komodo_stack()["config"]["environment"])
    unknown = set(env) - SETTINGS_ENV
    assert not unknown, f"the stack's environment sets unknown variables {sorted(unknown)}"
    for secret in ("RABBITMQ_PASSWORD", "POSTGRES_PASSWORD"):
        assert re.fullmatch(r"\[\[PEWPROC_[A-Z_]+\]\]", env[secret]), f"{secret}: use a variable"
    assert env["PROCESSING_MODE"] == "parallel" and env["ENVIRONMENT"] == "production"
    # Every value is one the worker accepts (the mount target stands in for a local folder).
    Settings.from_env({**env, "TELEMETRY_ROOT": str(tmp_path)})
    assert env["TELEMETRY_ROOT"] == "/data/telemetry"


def test_komodo_workers_read_the_environment_and_only_name_settings() -> None:
    doc = komodo_compose()
    env_keys = set(dotenv(komodo_stack()["config"]["environment"]))
    workers = pewproc_services(doc)
    assert set(workers) == {"pewproc-prod-worker-1", "pewproc-prod-worker-2"}
    ids = []
    for name, service in workers.items():
        assert service["env_file"] == ".env", f"{name} must read the stack's environment"
        assert set(service["environment"]) <= SETTINGS_ENV
        ids.append(service["environment"]["WORKER_ID"])
    assert len(set(ids)) == 2
    interpolated = set(re.findall(r"\$\{(\w+)", komodo_stack()["config"]["file_contents"]))
    assert interpolated <= env_keys


def workers(source: str) -> Iterator[tuple[str, dict[str, Any], dict[str, str]]]:
    """(name, service, the settings it gets) of each worker of docker/compose.yaml or of the
    compose file in komodo/stack.toml, whose settings are mostly in the stack's environment."""
    if source == "compose":
        services, shared_env = pewproc_services(compose()), {}
    else:
        services = pewproc_services(komodo_compose())
        shared_env = dotenv(komodo_stack()["config"]["environment"])
    for name, service in services.items():
        yield name, service, {**shared_env, **service["environment"]}


@pytest.mark.parametrize("source", ["compose", "komodo"])
def test_workers_have_limits_healthchecks_mounts_and_grace(source: str) -> None:
    for name, service, env in workers(source):
        resources = service["deploy"]["resources"]
        limits, reservations = resources["limits"], resources["reservations"]
        assert float(limits["cpus"]) == 2 and memory_bytes(limits["memory"]) == 2 * 1024**3
        assert float(reservations["cpus"]) == 1
        assert memory_bytes(reservations["memory"]) == 1024**3
        assert int(env["WORKER_POOL_SIZE"]) <= float(limits["cpus"])

        test = service["healthcheck"]["test"]
        assert "/healthz" in " ".join(test if isinstance(test, list) else [test])

        mounts = [v for v in service["volumes"] if isinstance(v, str)]
        assert any(mount_target(v) == env["TELEMETRY_ROOT"] and v.endswith(":ro")
                   for v in mounts), f"{name}: telemetry must be mounted read-only"

        shutdown = float(env.get("SHUTDOWN_TIMEOUT_SECONDS", SHUTDOWN_DEFAULT))
        assert seconds(service["stop_grace_period"]) > shutdown, (
            f"{name}: stop_grace_period must exceed SHUTDOWN_TIMEOUT_SECONDS")
        assert service["command"] == ["python", "-m", "pewproc.parallel_worker"]


def test_deployment_doc_states_the_max_json_bytes_default_of_settings() -> None:
    text = " ".join((ROOT / "docs" / "deployment.md").read_text().split())
    stated = re.search(r"default `MAX_JSON_BYTES` in settings\.py is ([\d,]+)", text)
    default = next(f.default for f in settings_fields() if f.metadata["env"] == "MAX_JSON_BYTES")
    assert stated and int(stated.group(1).replace(",", "")) == default


# Peak memory of a child per byte of JSON it accepts, and of the worker's own process: bench's
# figures in docs/performance.md (a long-lived child peaks at about 300 MiB for 27 MB of JSON,
# baseline included; the parent about 45 MiB). A fifth of the limit stays free.
PEAK_BYTES_PER_JSON_BYTE = 12
PARENT_BYTES = 45 * 1024**2
HEADROOM = 0.8


@pytest.mark.parametrize("source", ["compose", "komodo"])
def test_the_largest_accepted_matches_fit_the_memory_limit(source: str) -> None:
    for name, service, env in workers(source):
        assert "MAX_JSON_BYTES" in env, f"{name}: set MAX_JSON_BYTES for its memory limit"
        peak = (int(env["WORKER_POOL_SIZE"]) * PEAK_BYTES_PER_JSON_BYTE
                * int(env["MAX_JSON_BYTES"]) + PARENT_BYTES)
        limit = memory_bytes(service["deploy"]["resources"]["limits"]["memory"])
        assert peak <= HEADROOM * limit, f"{name}: {peak / 2**30:.2f} GiB at peak"


# Commands in the docs


def _command_paths() -> dict[tuple[str, ...], set[str]]:
    """Every existing subcommand path and its option names."""
    found: dict[tuple[str, ...], set[str]] = {}

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, (*path, name))
        else:
            found[path] = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)
                           if opt.startswith("-")} | {"--help", "-h"}

    walk(cli_main, ())
    return found


_INVOCATION = re.compile(r"(?:^|[\s;&|(/])(?:python3? -m )?pewproc\s+([a-z].*)")


def _inline_code(path: Path) -> list[str]:
    """Code spans in the prose, fenced blocks removed."""
    text = re.sub(r"^[ \t]*```.*?^[ \t]*```", "", path.read_text(encoding="utf-8"),
                  flags=re.MULTILINE | re.DOTALL)
    return re.findall(r"`([^`\n]+)`", text)


def _documented_invocations() -> list[tuple[Path, list[str]]]:
    found = []
    for path in COMMAND_DOCS:
        snippets = [*fenced_blocks(path, {"bash", "sh", "shell", "console"}), *_inline_code(path)]
        for block in snippets:
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #", 1)[0].strip()
                if line.startswith("#"):
                    continue
                for match in _INVOCATION.finditer(line):
                    try:
                        words = shlex.split(match.group(1))
                    except ValueError:
                        words = match.group(1).split()
                    found.append((path, words))
    return found


def test_docs_only_show_commands_that_exist() -> None:
    commands = _command_paths()
    invocations = _documented_invocations()
    assert len(invocations) >= 12
    known = {**PENDING_COMMANDS, **commands}
    for path, words in invocations:
        matches = [p for p in known if tuple(words[: len(p)]) == p]
        assert matches, f"{path.name}: unknown command pewproc {' '.join(words)}"
        command = max(matches, key=len)
        options = known[command]
        if options is None:
            continue
        used = {w.split("=", 1)[0] for w in words[len(command):] if w.startswith("-")}
        assert used <= options, (
            f"{path.name}: pewproc {' '.join(command)} has no option {sorted(used - options)}")
