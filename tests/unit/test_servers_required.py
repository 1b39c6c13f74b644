"""A test that needs MariaDB or Redis, when the server does not answer: skipped on a developer's
machine, failed under ``EVENTLENS_REQUIRE_SERVICES=1`` (``scripts/test.sh``, so CI) with a
message naming the server and its address.

Runs a small test file in a child pytest with this suite's conftest, pointed at ports nothing
listens on, once with the switch and once without.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"
PROBES = """
import pytest


@pytest.mark.redis
def test_needs_redis():
    pass


@pytest.mark.mariadb
def test_needs_mariadb():
    pass


@pytest.mark.redis(suite_server=False)
def test_closed_redis_port_only():
    pass


def test_needs_neither():
    pass
"""


def child(tmp_path: Path, require: str | None) -> tuple[int, str, dict[str, str]]:
    """Run the probes; return pytest's exit code, its output and the addresses it was given."""
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "test_probe.py").write_text(PROBES)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\naddopts = --strict-markers -p no:cacheprovider\nmarkers =\n"
        "    ray: r\n    redis: r\n    mariadb: m\n    chdb: c\n"
    )
    # free ports: nothing listens there (the probe is refused at once)
    addresses = {"Redis": f"127.0.0.1:{free_port()}", "MariaDB": f"127.0.0.1:{free_port()}"}
    env = {k: v for k, v in os.environ.items() if k not in ("EVENTLENS_REQUIRE_SERVICES", "PYTEST_ADDOPTS")}
    env.update(
        {
            # the conftest imports from this checkout (tests.servers, benchmarks.simcluster)
            "PYTHONPATH": str(CONFTEST.parents[1]),
            "EVENTLENS_TEST_REDIS_URL": f"redis://{addresses['Redis']}/0",
            "EVENTLENS_TEST_MARIADB_URL": f"mysql://root@{addresses['MariaDB']}",
        }
    )
    if require is not None:
        env["EVENTLENS_REQUIRE_SERVICES"] = require
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc.returncode, proc.stdout, addresses


def test_an_unreachable_server_fails_under_the_switch(tmp_path: Path) -> None:
    rc, out, addresses = child(tmp_path, "1")
    assert rc == 1, out
    for name, address in addresses.items():
        assert f"{name} is not reachable at {address}" in out, out
    assert "EVENTLENS_REQUIRE_SERVICES=1, so a test that needs it fails" in out, out
    assert "ERROR test_probe.py::test_needs_redis" in out, out
    assert "ERROR test_probe.py::test_needs_mariadb" in out, out
    # a test marked for the client library only, and an unmarked one, still run
    assert "PASSED test_probe.py::test_closed_redis_port_only" in out, out
    assert "PASSED test_probe.py::test_needs_neither" in out, out
    assert "2 passed, 2 errors" in out.splitlines()[-1], out


@pytest.mark.parametrize("switch", [None, "0"])
def test_an_unreachable_server_skips_without_the_switch(tmp_path: Path, switch: str | None) -> None:
    rc, out, addresses = child(tmp_path, switch)
    assert rc == 0, out
    for name, address in addresses.items():
        assert f"{name} is not reachable at {address}" in out, out
    assert "set EVENTLENS_REQUIRE_SERVICES=1 to fail instead" in out, out
    assert "2 passed, 2 skipped" in out.splitlines()[-1], out
