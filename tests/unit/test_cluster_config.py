"""cluster.yaml is a valid Ray cluster-launcher config and starts Ray the way Serve needs.

Validation mirrors what ``ray up`` does in ``ray.autoscaler._private.commands._bootstrap_config``
before contacting any host: ``prepare_config`` (for the local provider this runs ``prepare_local``,
which adds the single ``local.cluster.node`` type, then merges ``ray/autoscaler/local/defaults.yaml``)
and then ``validate_config`` (``ray-schema.json`` plus Ray's extra checks). The local provider's
``fillout_available_node_types_resources`` and ``bootstrap_config`` are no-ops, so the node provider
itself is not instantiated (that would create lock and state files under /tmp/ray).

The start commands are also run in bash with fake ``ray`` and ``eventlens`` executables first on
PATH, which record their arguments and environment, so the tests check what the processes really
get rather than how the YAML text happens to look. No Ray cluster is started.
"""

from __future__ import annotations

import copy
import importlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from eventlens.config import Settings

REPO = Path(__file__).resolve().parents[2]
CLUSTER_YAML = REPO / "cluster.yaml"

SERVE_ENV = {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}
PRODUCTION_SETTINGS = (
    "EVENTLENS_CLICKHOUSE_URL",
    "EVENTLENS_METADATA_URL",
    "EVENTLENS_REDIS_URL",
    "EVENTLENS_SHARDS",
)
HEAD_IP = "10.9.8.7"  # what Ray would put in $RAY_HEAD_IP for worker commands

# Records argv (one per line), then "--", then the environment.
FAKE_BIN = """#!/bin/sh
{ printf '%s\\n' "$@"; echo --; env; } > "$CAPTURE_DIR/$(basename "$0")-$1"
"""


def load() -> dict[str, Any]:
    with CLUSTER_YAML.open() as f:
        return yaml.safe_load(f)


def ray_validate(config: dict[str, Any]) -> dict[str, Any]:
    """What `ray up` does to the config before talking to any node; returns the prepared config."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def start_command(commands: list[str]) -> tuple[int, str]:
    found = [(i, c) for i, c in enumerate(commands) if re.search(r"\bray start\b", c)]
    assert len(found) == 1, f"expected exactly one `ray start` command, got {found}"
    return found[0]


def run_captured(command: str, tmp_path: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Run one start command in bash with fake ray/eventlens; return {name-subcommand: (argv, env)}."""
    if shutil.which("bash") is None:
        pytest.skip("bash not available")
    bin_dir, capture, home = tmp_path / "bin", tmp_path / "capture", tmp_path / "home"
    for d in (bin_dir, capture, home / "eventlens"):
        d.mkdir(parents=True, exist_ok=True)
    for name in ("ray", "eventlens"):
        fake = bin_dir / name
        fake.write_text(FAKE_BIN)
        fake.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(home),
        "CAPTURE_DIR": str(capture),
        "RAY_HEAD_IP": HEAD_IP,
    }
    # `wait` so a backgrounded (nohup ... &) process has finished recording before we read.
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", command + "\nwait"],
        check=False,  # the return code is asserted below, with stderr
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    calls = {}
    for f in capture.iterdir():
        argv_text, _, env_text = f.read_text().partition("--\n")
        call_env = dict(line.split("=", 1) for line in env_text.splitlines() if "=" in line)
        calls[f.name] = (argv_text.splitlines(), call_env)
    return calls


def option(argv: list[str], name: str) -> str:
    for i, arg in enumerate(argv):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name:
            return argv[i + 1]
    raise AssertionError(f"{name} not in {argv}")


# --- Ray's own validation ------------------------------------------------------------------------


def test_ray_validates_cluster_yaml() -> None:
    config = load()
    assert config["provider"]["type"] == "local"
    assert config["cluster_name"] == "eventlens"
    assert config["auth"]["ssh_user"]
    assert config["provider"]["head_ip"]
    assert config["provider"]["worker_ips"]

    prepared = ray_validate(config)

    (node_type,) = prepared["available_node_types"].values()
    assert node_type["max_workers"] == config["max_workers"] <= len(config["provider"]["worker_ips"])
    # setup_commands are merged into both head and worker setup by prepare_config.
    for key in ("head_setup_commands", "worker_setup_commands"):
        assert any("pip install -e ." in c for c in prepared[key])


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(
            lambda c: c.update(head_start_commands=["ray start --head"]),
            id="unknown-field",
        ),
        pytest.param(lambda c: c["auth"].update(ssh_password="x"), id="unknown-auth-field"),
        pytest.param(lambda c: c.update(max_workers=-1), id="negative-max-workers"),
    ],
)
def test_ray_rejects_invalid_copy(mutate: Any) -> None:
    config = copy.deepcopy(load())
    mutate(config)
    with pytest.raises(jsonschema.ValidationError):
        ray_validate(config)


def test_file_mounts_exist_relative_to_repo_root() -> None:
    # `ray up cluster.yaml` is run from the repo root; Ray asserts each local path exists.
    for local in load().get("file_mounts", {}).values():
        assert (REPO / local).exists(), local


def checkout_paths_read_by_the_package() -> set[Path]:
    """Module-level paths that modules of ``eventlens`` resolve relative to their own file
    (``Path(__file__).resolve().parents[n] / ...``) and that lie outside the package directory: the
    files the daemon reads from the checkout, which an editable install on a node finds only if the
    checkout's layout is mounted there."""
    package = REPO / "eventlens"
    found: set[Path] = set()
    for source in sorted(package.rglob("*.py")):
        if "parents[" not in source.read_text():
            continue
        module = importlib.import_module(".".join(source.relative_to(REPO).with_suffix("").parts))
        # the paths must be this checkout's, not those of another install of the package
        assert Path(module.__file__ or "").resolve() == source.resolve(), module.__name__
        for value in vars(module).values():
            if isinstance(value, Path) and value.is_relative_to(REPO) and not value.is_relative_to(package):
                found.add(value)
    return found


def test_file_mounts_hold_everything_the_daemon_reads_from_the_checkout() -> None:
    from eventlens.daemon import DEFAULT_CONFIG
    from eventlens.storage.migrations import CLICKHOUSE_DIR, METADATA_DIR

    read = checkout_paths_read_by_the_package()
    assert {DEFAULT_CONFIG, CLICKHOUSE_DIR, METADATA_DIR} <= read
    mounts = {remote: (REPO / local).resolve() for remote, local in load()["file_mounts"].items()}
    for path in sorted(read | {REPO / "eventlens"}):
        assert path.exists(), path
        on_node = [
            f"{remote}/{path.relative_to(local)}".removesuffix("/.")
            for remote, local in mounts.items()
            if path.is_relative_to(local)
        ]
        # the node keeps the checkout's layout, so paths relative to the package still resolve
        assert on_node == [f"~/eventlens/{path.relative_to(REPO)}"], (path, on_node)


# --- what the start commands really do -----------------------------------------------------------


def test_ray_stop_precedes_ray_start() -> None:
    config = load()
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        commands = config[key]
        start_index, _ = start_command(commands)
        assert "ray stop" in [c.strip() for c in commands[:start_index]], key


def test_head_and_workers_start_ray_with_serve_env_on_a_non_default_port(
    tmp_path: Path,
) -> None:
    config = load()
    _, head_cmd = start_command(config["head_start_ray_commands"])
    _, worker_cmd = start_command(config["worker_start_ray_commands"])

    head_argv, head_env = run_captured(head_cmd, tmp_path / "head")["ray-start"]
    worker_argv, worker_env = run_captured(worker_cmd, tmp_path / "worker")["ray-start"]

    for env in (head_env, worker_env):
        for name, value in SERVE_ENV.items():
            assert env.get(name) == value, name

    assert "--head" in head_argv
    gcs_port = int(option(head_argv, "--port"))
    assert gcs_port != 6379  # Redis may own 6379 on the head
    assert option(worker_argv, "--address") == f"{HEAD_IP}:{gcs_port}"

    redis_url = head_env.get("EVENTLENS_REDIS_URL", "")
    assert f":{gcs_port}" not in redis_url


def test_production_settings_are_exported_identically_and_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load()
    _, head_cmd = start_command(config["head_start_ray_commands"])
    _, worker_cmd = start_command(config["worker_start_ray_commands"])
    _, head_env = run_captured(head_cmd, tmp_path / "head")["ray-start"]
    _, worker_env = run_captured(worker_cmd, tmp_path / "worker")["ray-start"]

    def eventlens_env(env: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in env.items() if k.startswith("EVENTLENS_")}

    for name in PRODUCTION_SETTINGS:
        assert name in head_env, name
    # The home directory differs between the two fake nodes, so compare with it neutralised.
    head_settings = {k: v.replace(str(tmp_path / "head"), "~") for k, v in eventlens_env(head_env).items()}
    worker_settings = {
        k: v.replace(str(tmp_path / "worker"), "~") for k, v in eventlens_env(worker_env).items()
    }
    assert head_settings == worker_settings

    # The exported values must be accepted by the settings model that every process builds.
    for key in [k for k in os.environ if k.startswith("EVENTLENS_")]:
        monkeypatch.delenv(key)
    for key, value in eventlens_env(head_env).items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.redis_url and settings.clickhouse_url and settings.metadata_url
    assert not settings.embedded_clickhouse
    assert settings.data_dir.is_absolute()


def test_head_starts_the_daemon_in_the_background_after_ray(tmp_path: Path) -> None:
    commands = load()["head_start_ray_commands"]
    start_index, _ = start_command(commands)
    daemon = [(i, c) for i, c in enumerate(commands) if "eventlens serve" in c]
    assert len(daemon) == 1, daemon
    daemon_index, daemon_cmd = daemon[0]
    assert daemon_index > start_index
    assert "nohup" in daemon_cmd

    calls = run_captured(daemon_cmd, tmp_path)
    argv, env = calls["eventlens-serve"]
    assert option(argv, "--ray-address") == "auto"
    assert option(argv, "--host") == "0.0.0.0"
    assert option(argv, "--port") == "8000"
    for name, value in SERVE_ENV.items():
        assert env.get(name) == value, name
    for name in PRODUCTION_SETTINGS:
        assert name in env, name
    # Backgrounded with its pid recorded, which the first head command uses to stop it on re-run.
    assert (tmp_path / "home" / "eventlens-serve.pid").read_text().strip().isdigit()
