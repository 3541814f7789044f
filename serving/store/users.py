"""API users: a role, a unit, and a token of which only a hash is stored.

Tokens are ``secrets.token_urlsafe(32)`` (256 bits): printed once by ``taxrisk users add``.
The store keeps ``sha256(token)`` hex (a fast hash is right for a random 256-bit secret, as
for API keys; there is nothing to brute-force); :func:`authenticate` compares with
``hmac.compare_digest``. Roles: admin, analyst, selector (a selector has a unit).

Adding and revoking users are logged in the action log (``user.added``, ``user.revoked``) in the
caller's transaction; the token never is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import UserError
from . import action_log
from .action_log import SYSTEM, Actor
from .models import Unit, User

__all__ = [
    "ROLES",
    "actor_for",
    "add_user",
    "authenticate",
    "get_user",
    "hash_token",
    "list_users",
    "revoke_user",
]

ROLES = ("admin", "analyst", "selector")
NAME_MAX = 100


def hash_token(token: str) -> str:
    """``sha256(token)`` as 64 hex digits (what the ``users`` table stores)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def actor_for(user: User) -> Actor:
    """The :class:`Actor` a user acts as (name, role, unit)."""
    return Actor(user.name, user.role, user.unit_id)


def add_user(
    session: Session,
    name: str,
    role: str,
    unit_id: str | None = None,
    *,
    actor: Actor = SYSTEM,
) -> tuple[User, str]:
    """Create a user; returns it and its token (shown once). Logged in the action log.

    :class:`UserError` for an empty or too long name, a duplicate name, an unknown role, a
    selector without a unit, or a unit not in the ``units`` table. ``actor``: who adds it
    (default ``system``: an operator at the console).
    """
    name = name.strip()
    if not name or len(name) > NAME_MAX:
        raise UserError(f"a user name needs 1 to {NAME_MAX} characters, got {name!r}")
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
    if role == "selector" and not unit_id:
        raise UserError(f"selector {name!r} needs a unit (--unit UNIT)")
    if unit_id is not None and session.get(Unit, unit_id) is None:
        raise UserError(f"unknown unit {unit_id!r} for user {name!r}: not in the units table")
    if session.scalar(select(User.user_id).where(User.name == name)) is not None:
        raise UserError(f"a user named {name!r} already exists")
    token = secrets.token_urlsafe(32)
    user = User(
        name=name,
        role=role,
        unit_id=unit_id,
        token_hash=hash_token(token),
        created_at=dt.datetime.now(dt.UTC),
    )
    session.add(user)
    session.flush()
    action_log.append(
        session,
        actor,
        "user.added",
        detail={"user": name, "role": role, "unit_id": unit_id},
    )
    return user, token


def authenticate(session: Session, token: str) -> User | None:
    """The active (not revoked) user holding ``token``, or None."""
    if not token:
        return None
    digest = hash_token(token)
    user = session.scalar(select(User).where(User.token_hash == digest))
    if user is None or not hmac.compare_digest(user.token_hash, digest):
        return None
    if user.revoked_at is not None:
        return None
    return user


def get_user(session: Session, name: str) -> User:
    """The user called ``name`` (revoked ones too), or :class:`UserError`."""
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise UserError(f"no user named {name!r}")
    return user


def list_users(session: Session) -> list[User]:
    """Every user, revoked ones included, by name."""
    return list(session.scalars(select(User).order_by(User.name)))


def revoke_user(session: Session, name: str, *, actor: Actor = SYSTEM) -> User:
    """Revoke a user's token (the row stays, for the log's sake); logged.

    :class:`UserError` for an unknown or already revoked user.
    """
    user = get_user(session, name)
    if user.revoked_at is not None:
        raise UserError(f"user {name!r} was already revoked at {user.revoked_at.isoformat()}")
    user.revoked_at = dt.datetime.now(dt.UTC)
    session.flush()
    action_log.append(session, actor, "user.revoked", detail={"user": name})
    return user
