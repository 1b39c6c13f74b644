"""Wire models of the ingest API (docs/API.md), validated with pydantic at the edge."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, field_validator

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode Cc: C0, DEL and C1

ShortStr = Annotated[str, StringConstraints(max_length=256)]
IdStr = Annotated[str, StringConstraints(min_length=1, max_length=256)]
UrlStr = Annotated[str, StringConstraints(max_length=4096)]
# a group (B2B account) id, and how many groups one event or one assignment may name
GroupId = Annotated[str, StringConstraints(min_length=1, max_length=256)]
MAX_GROUPS = 50
GroupIds = Annotated[list[GroupId], Field(max_length=MAX_GROUPS)]


class _Payload(BaseModel):
    # Unknown payload keys are ignored (SDKs add fields over time); wrong types are not.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)


class TrackPayload(_Payload):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    deviceId: IdStr | None = None
    sessionId: IdStr | None = None
    profileId: IdStr | None = None
    path: UrlStr | None = None
    referrer: UrlStr | None = None
    title: Annotated[str, StringConstraints(max_length=1024)] | None = None
    timestamp: str | int | float | None = None
    id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    properties: dict[str, Any] | None = None
    # the ids of the groups the event belongs to (the OpenPanel SDK adds its current groups)
    groups: GroupIds | None = None

    @field_validator("name")
    @classmethod
    def _no_control(cls, v: str) -> str:
        if _CONTROL.search(v):
            raise ValueError("name must not contain control characters")
        return v


class IdentifyPayload(_Payload):
    profileId: IdStr
    firstName: ShortStr | None = None
    lastName: ShortStr | None = None
    email: ShortStr | None = None
    avatar: UrlStr | None = None
    properties: dict[str, Any] | None = None


class IncrementPayload(_Payload):
    profileId: IdStr
    property: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    value: float = Field(default=1, allow_inf_nan=False)


class AliasPayload(_Payload):
    profileId: IdStr
    alias: IdStr


class ReplayPayload(_Payload):
    """A chunk of the web SDK's session recording: rrweb events as a JSON text (``payload``)."""

    chunk_index: int = Field(ge=0, le=1_000_000)
    events_count: int = Field(ge=0, le=1_000_000)
    is_full_snapshot: bool = False
    started_at: str | int
    ended_at: str | int
    payload: str  # its size is checked against the configured limit (Limits.max_replay_bytes)
    deviceId: IdStr | None = None
    sessionId: IdStr | None = None


class GroupPayload(_Payload):
    """``upsertGroup``: a group's id, type, name and properties; what is left out keeps its value."""

    id: GroupId
    type: ShortStr | None = None
    name: ShortStr | None = None
    properties: dict[str, Any] | None = None
    # the SDK's current profile, when it has one: linked to the group like ``assign_group`` does
    profileId: IdStr | None = None


class AssignGroupPayload(_Payload):
    """``setGroup``/``setGroups``: the profile belongs to these groups."""

    groupIds: Annotated[list[GroupId], Field(min_length=1, max_length=MAX_GROUPS)]
    profileId: IdStr


class TrackBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["track"]
    payload: TrackPayload


class IdentifyBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["identify"]
    payload: IdentifyPayload


class IncrementBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["increment", "decrement"]
    payload: IncrementPayload


class AliasBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["alias"]
    payload: AliasPayload


class GroupBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["group"]
    payload: GroupPayload


class AssignGroupBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["assign_group"]
    payload: AssignGroupPayload


class ReplayBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["replay"]
    payload: ReplayPayload


Body = TrackBody | IdentifyBody | IncrementBody | AliasBody | GroupBody | AssignGroupBody | ReplayBody
AnyBody = Annotated[Body, Field(discriminator="type")]
BODY_ADAPTER: TypeAdapter[Body] = TypeAdapter(AnyBody)
EVENT_TYPES = ("track", "identify", "increment", "decrement", "alias", "group", "assign_group", "replay")
