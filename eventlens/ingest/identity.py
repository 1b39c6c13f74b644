"""Cookieless device ids, and the salt-free key that routes a cookieless visitor."""

from __future__ import annotations

import hashlib


def device_hash(project_id: str, ip: str, user_agent: str, salt: str) -> str:
    """Same visitor, same day, same id; unlinkable across days once the salt is gone."""
    h = hashlib.blake2b(digest_size=16, key=salt.encode()[:64])
    h.update(project_id.encode())
    h.update(b"\x00")
    h.update(ip.encode())
    h.update(b"\x00")
    h.update(user_agent.encode())
    return h.hexdigest()


def visitor_key(ip: str, user_agent: str) -> str:
    """Salt-free routing key of a cookieless visitor: used to pick a shard, never stored."""
    return hashlib.blake2b(f"{ip}\x00{user_agent}".encode(), digest_size=8).hexdigest()


def cookieless(project_id: str, ip: str, user_agent: str, salts: tuple[str, str]) -> tuple[str, str, str]:
    """What ingest derives for a visitor that sends no device id (``pipeline.put_device``): the
    device id under the current salt, under the previous one (``""`` without one), and the
    routing key of the shard that owns the visitor's sessions."""
    salt, prev_salt = salts
    prev = device_hash(project_id, ip, user_agent, prev_salt) if prev_salt else ""
    return device_hash(project_id, ip, user_agent, salt), prev, "anon:" + visitor_key(ip, user_agent)
