"""A project's goals over HTTP, for its ``root`` clients, and the goals the insight routes read.

- ``GET /projects/{projectId}/goals``: ``{"goals": [...]}``, oldest first;
- ``POST /projects/{projectId}/goals``: a JSON body ``{"name", "path"}`` or ``{"name", "event",
  "property"?: {"key", "value"}}`` (``eventlens.goals.GoalSpec``); 201 with the goal; 400 naming
  the field on bad input, 409 when the project already has a goal of that name;
- ``DELETE /projects/{projectId}/goals/{goalId}``: 200 with the removed goal, 404 if unknown.

Insight routes read the goals through ``GoalsLoader``: per replica, cached for ``ttl_s`` seconds
(like clients in ``Authenticator``); a change made through this replica's API is seen at once,
through another replica or the CLI within ``ttl_s``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from fastapi import FastAPI, Request
from pydantic import ValidationError
from starlette.responses import Response

from eventlens.api.errors import json_response
from eventlens.errors import ClientError, DependencyUnavailable, pydantic_details, validation_message
from eventlens.goals import Goal, GoalSpec
from eventlens.outage import outage_as
from eventlens.storage.metadata import MetadataStore

MAX_BODY = 16 * 1024


class GoalsLoader:
    def __init__(self, store: MetadataStore, ttl_s: float = 10.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._goals: dict[str, tuple[float, list[Goal]]] = {}

    async def get(self, project_id: str) -> list[Goal]:
        now = time.monotonic()
        hit = self._goals.get(project_id)
        if hit and hit[0] > now:
            return hit[1]
        with outage_as("metadata"):
            goals = await asyncio.to_thread(self.store.list_goals, project_id)
        if len(self._goals) > 10_000:
            self._goals.clear()
        self._goals[project_id] = (now + self.ttl_s, goals)
        return goals

    def forget(self, project_id: str) -> None:
        self._goals.pop(project_id, None)


async def _body(request: Request) -> Any:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise ClientError(413, "body_too_large", f"a goal's JSON body is at most {MAX_BODY} bytes")
        chunks.append(chunk)
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        raise ClientError(
            400, "invalid_json", f"the body is not valid JSON ({exc.msg} at character {exc.pos})"[:160]
        ) from None


def _spec(body: Any) -> GoalSpec:
    try:
        return GoalSpec.model_validate(body)
    except ValidationError as exc:
        details = pydantic_details(exc)
        raise ClientError(400, "invalid_goal", validation_message(details, "invalid goal"), details) from None


def register_goals(app: FastAPI, auth: Any, loader: GoalsLoader | None) -> None:
    """The three routes; ``loader`` None (an app built over test doubles) answers 503."""

    def store() -> MetadataStore:
        if loader is None:
            raise DependencyUnavailable("metadata")
        return loader.store

    async def metadata(call: Any, *args: Any) -> Any:
        with outage_as("metadata"):
            return await asyncio.to_thread(call, *args)

    @app.get("/projects/{project_id}/goals")
    async def list_goals(project_id: str, request: Request) -> Response:
        await auth.authenticate(request.headers, "root", project_id)
        goals = await metadata(store().list_goals, project_id)
        return json_response({"goals": [g.public() for g in goals]})

    @app.post("/projects/{project_id}/goals")
    async def create_goal(project_id: str, request: Request) -> Response:
        await auth.authenticate(request.headers, "root", project_id)
        spec = _spec(await _body(request))
        try:
            goal = await metadata(store().create_goal, project_id, spec)
        except ValueError as exc:
            status, code = (409, "goal_exists") if "already has a goal" in str(exc) else (400, "invalid_goal")
            raise ClientError(status, code, str(exc)[:300]) from None
        if loader is not None:
            loader.forget(project_id)
        return json_response(goal.public(), 201)

    @app.delete("/projects/{project_id}/goals/{goal_id}")
    async def delete_goal(project_id: str, goal_id: str, request: Request) -> Response:
        await auth.authenticate(request.headers, "root", project_id)
        goal = None
        if len(goal_id) <= 64:
            goal = await metadata(store().delete_goal, project_id, goal_id)
        if goal is None:
            raise ClientError(404, "unknown_goal", f"the project has no goal {goal_id[:64]!r}")
        if loader is not None:
            loader.forget(project_id)
        return json_response({"deleted": goal.public()})
