"""Flatten nested event properties to dotted string keys, enforcing documented limits."""

from __future__ import annotations

from typing import Any

import orjson

from eventlens.errors import ClientError

# Keys the OpenPanel SDK sends inside properties to mean payload fields; consumed, not stored
# (``__revenue`` goes to the typed revenue column: ``ingest.revenue``).
RESERVED = ("__path", "__referrer", "__title", "__timestamp", "__deviceId", "__ip", "__revenue")


def _scalar(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, int | float):
        return str(v)
    return orjson.dumps(v).decode()


def flatten(props: dict[str, Any], *, max_keys: int, max_key_len: int, max_value_len: int) -> dict[str, str]:
    """``{"a": {"b": [1, 2]}}`` → ``{"a.b.0": "1", "a.b.1": "2"}``; raises ClientError past limits."""
    if len(props) <= max_keys:
        # the common case, flat scalar properties: no stack, one pass of checks
        flat: dict[str, str] = {}
        for k, v in props.items():
            kind = type(v)
            if kind is not str:
                if kind is int:
                    v = str(v)
                elif kind is bool or kind is float or v is None:
                    v = _scalar(v)
                else:
                    break  # nested: the general path below
            if len(k) > max_key_len or len(v) > max_value_len:
                break  # the general path raises the right error
            if k not in RESERVED:
                flat[k] = v
        else:
            return flat
    out: dict[str, str] = {}
    stack: list[tuple[str, Any]] = [(k, v) for k, v in reversed(props.items()) if k not in RESERVED]
    while stack:
        key, value = stack.pop()
        if isinstance(value, dict) and value:
            stack.extend((f"{key}.{k}", v) for k, v in reversed(value.items()))
            continue
        if isinstance(value, list) and value:
            stack.extend((f"{key}.{i}", v) for i, v in reversed(list(enumerate(value))))
            continue
        text = _scalar(value) if not isinstance(value, dict | list) else ""
        if len(key) > max_key_len:
            raise ClientError(
                422,
                "property_key_too_long",
                f"property key {key[:40]!r}… is longer than {max_key_len} characters",
            )
        if len(text) > max_value_len:
            raise ClientError(
                422,
                "property_value_too_long",
                f"property {key!r} has a value longer than {max_value_len} characters",
            )
        out[key] = text
        if len(out) > max_keys:
            raise ClientError(
                422, "too_many_properties", f"more than {max_keys} properties after flattening nested values"
            )
    return out
