"""Secret checks: one scrypt run per presented secret and stored hash, shared by concurrent requests."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from eventlens.api import auth as auth_module
from eventlens.api.auth import Authenticator
from eventlens.errors import ClientError
from eventlens.security import hash_secret
from eventlens.storage.metadata import open_metadata


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Authenticator, Any, str, list[str]]:
    store = open_metadata(f"sqlite:///{tmp_path / 'meta.sqlite3'}")
    store.migrate()
    project = store.create_project("p")
    client, secret = store.create_client(project.id, "write")
    assert secret
    calls: list[str] = []
    real = auth_module.verify_secret

    def counting(presented: str, encoded: str | None) -> bool:
        calls.append(presented)
        return real(presented, encoded)

    monkeypatch.setattr(auth_module, "verify_secret", counting)
    return Authenticator(store), client, secret, calls


def headers(client_id: str, secret: str) -> dict[str, str]:
    return {"event-lens-client-id": client_id, "event-lens-client-secret": secret}


def test_a_burst_of_requests_runs_scrypt_once(setup: tuple[Authenticator, Any, str, list[str]]) -> None:
    auth, client, secret, calls = setup

    async def burst() -> list[Any]:
        return await asyncio.gather(
            *(auth.authenticate(headers(client.id, secret), "write") for _ in range(30))
        )

    callers = asyncio.run(burst())
    assert all(c.client.id == client.id for c in callers)
    assert len(calls) == 1
    asyncio.run(auth.authenticate(headers(client.id, secret), "write"))
    assert len(calls) == 1  # verified once, remembered


def test_wrong_secrets_are_refused_every_time(setup: tuple[Authenticator, Any, str, list[str]]) -> None:
    auth, client, _secret, calls = setup

    async def burst() -> list[Any]:
        return await asyncio.gather(
            *(auth.authenticate(headers(client.id, "wrong"), "write") for _ in range(5)),
            return_exceptions=True,
        )

    results = asyncio.run(burst())
    assert all(isinstance(r, ClientError) and r.status == 401 for r in results)
    assert len(calls) == 1  # the concurrent ones shared the run
    with pytest.raises(ClientError):
        asyncio.run(auth.authenticate(headers(client.id, "wrong"), "write"))
    assert len(calls) == 2  # a failure is never remembered


def test_a_changed_stored_hash_is_verified_again(setup: tuple[Authenticator, Any, str, list[str]]) -> None:
    auth, client, secret, calls = setup
    assert asyncio.run(auth._secret_ok(client, secret))
    rotated = client.model_copy(update={"secret_hash": hash_secret("new-secret")})
    assert not asyncio.run(auth._secret_ok(rotated, secret))
    assert asyncio.run(auth._secret_ok(rotated, "new-secret"))
    assert len(calls) == 3


def test_a_rotated_secret_replaces_the_old_one_once_the_cache_rereads(
    setup: tuple[Authenticator, Any, str, list[str]],
) -> None:
    auth, client, secret, _calls = setup
    auth.ttl_s = 0.05  # 30 s in a replica
    asyncio.run(auth.authenticate(headers(client.id, secret), "write"))
    _, new = auth.store.rotate_secret(client.id)
    assert new != secret
    time.sleep(0.1)
    with pytest.raises(ClientError) as refused:
        asyncio.run(auth.authenticate(headers(client.id, secret), "write"))
    assert refused.value.status == 401
    assert asyncio.run(auth.authenticate(headers(client.id, new), "write")).client.id == client.id
