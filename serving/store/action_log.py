"""The action log (痕迹化): append-only, each entry chained to the previous by SHA-256.

``hash = sha256(prev_hash || canonical JSON of (seq, at, actor, role, action, case_id,
run_id, reason, detail))``; the first entry's ``prev_hash`` is 64 zeros (:data:`GENESIS`) and
``seq`` counts from 1 without gaps. The canonical JSON (:func:`canonical`) has sorted keys, no
spaces, UTF-8 text, instants as UTC ISO strings with microseconds (``...T08:00:00.000000Z``)
and floats as Python's shortest round-trip ``repr``; ``detail`` is normalised to plain JSON
before it is stored, so the hash of an entry is the same when read back from SQLite or
PostgreSQL.

:func:`append` serialises writers: it first updates the one row of ``action_log_head`` (the
count and hash of the last entry). On PostgreSQL that is a row lock held to the end of the
transaction (a concurrent append waits, then reads the new head); on SQLite it is the first
write of the transaction, which takes the database's write lock.

:func:`verify` recomputes the chain and reports the first entry that was

* ``edited``: its hash does not match its content (any column changed in place);
* ``deleted``: a gap in ``seq`` (an entry taken out of the middle), or the log ends before the
  head row says it does (the tail cut off);
* ``inserted``: its ``prev_hash`` is not the previous entry's hash although its own hash is
  right (a forged entry with a recomputed hash, or an entry rewritten and re-hashed so that the
  next one no longer follows it), or entries after the head row's count (appended without
  :func:`append`).

What a chain cannot detect: someone who can write the database can cut off the tail *and*
rewrite the head row, or rewrite every entry after a point with recomputed hashes. Only an
external anchor defeats that: :func:`verify` returns the head (``head_seq``, ``head_hash``);
write it down elsewhere (a report, a signed mail, another system) and pass it back as
``anchor=(seq, hash)``: the entry ``seq`` must still exist with that hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .models import Action, ActionLogHead

__all__ = [
    "GENESIS",
    "SYSTEM",
    "Actor",
    "Entry",
    "VerifyResult",
    "append",
    "append_many",
    "canonical",
    "entry_hash",
    "history",
    "verify",
]

GENESIS = "0" * 64
HEAD_ID = 1


@dataclass(frozen=True)
class Actor:
    """Who acts: a user name and role (``system`` for scoring runs started from the CLI)."""

    name: str
    role: str  # admin / analyst / selector / system
    unit_id: str | None = None


#: the actor of commands run by an operator at the console (scoring runs, ``users add``)
SYSTEM = Actor("system", "system")


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of :func:`verify`.

    ``entries``: entries checked; ``first_bad_seq``/``problem``: the first bad entry and what
    happened to it (``edited``, ``inserted``, ``deleted``; ``""`` when ok); ``message``: one
    line for people; ``head_seq``/``head_hash``: the last entry of the log as read (write them
    down elsewhere to detect a later truncation).
    """

    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str = ""  # "edited", "inserted", "deleted", or "" when ok
    head_seq: int = 0
    head_hash: str = GENESIS
    message: str = ""


def _instant(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _plain(value: Any, where: str = "detail") -> Any:
    """``value`` as plain JSON types (dict with str keys, list, str, int, float, bool, None)."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value!r} is not a finite number")
        return value
    if isinstance(value, dt.datetime):
        return _instant(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(items)]
    raise ValueError(f"{where}: cannot store a {type(value).__name__} in the action log")


def canonical(
    *,
    seq: int,
    at: dt.datetime,
    actor: str,
    role: str,
    action: str,
    case_id: str | None,
    run_id: str | None,
    reason: str,
    detail: Mapping[str, Any],
) -> str:
    """The canonical JSON text of an entry's content (what its hash covers)."""
    body = {
        "seq": seq,
        "at": _instant(at),
        "actor": actor,
        "role": role,
        "action": action,
        "case_id": case_id,
        "run_id": run_id,
        "reason": reason,
        "detail": _plain(detail),
    }
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def entry_hash(prev_hash: str, content: str) -> str:
    """``sha256(prev_hash || content)`` as 64 hex digits."""
    return hashlib.sha256((prev_hash + content).encode("utf-8")).hexdigest()


def _content_of(row: Action) -> str:
    return canonical(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        role=row.role,
        action=row.action,
        case_id=row.case_id,
        run_id=row.run_id,
        reason=row.reason or "",
        detail=row.detail or {},
    )


@dataclass(frozen=True)
class Entry:
    """One entry for :func:`append_many` (the keyword arguments of :func:`append`)."""

    action: str
    case_id: str | None = None
    run_id: str | None = None
    reason: str = ""
    detail: dict[str, Any] | None = None


def _lock_head(session: Session) -> tuple[int, str]:
    """Lock the head (a row lock on PostgreSQL, the write lock on SQLite): its seq and hash."""
    session.flush()  # the caller's pending changes first, so the lock comes after them
    locked = session.execute(
        update(ActionLogHead).where(ActionLogHead.id == HEAD_ID).values(seq=ActionLogHead.seq)
    )
    if locked.rowcount != 1:  # type: ignore[attr-defined]
        raise RuntimeError("the action log has no head row: run the store's migrations")
    seq, digest = session.execute(
        select(ActionLogHead.seq, ActionLogHead.hash).where(ActionLogHead.id == HEAD_ID)
    ).one()
    return int(seq), str(digest)


def _chain(
    actor: Actor, entries: list[Entry], when: dt.datetime, seq: int, prev: str
) -> list[dict[str, Any]]:
    """The rows of ``entries`` chained after (seq, prev): column values of :class:`Action`."""
    rows: list[dict[str, Any]] = []
    for e in entries:
        seq += 1
        plain_detail = _plain(e.detail or {})
        content = canonical(
            seq=seq,
            at=when,
            actor=actor.name,
            role=actor.role,
            action=e.action,
            case_id=e.case_id,
            run_id=e.run_id,
            reason=e.reason,
            detail=plain_detail,
        )
        digest = entry_hash(prev, content)
        rows.append(
            {
                "seq": seq,
                "at": when,
                "actor": actor.name,
                "role": actor.role,
                "action": e.action,
                "case_id": e.case_id,
                "run_id": e.run_id,
                "reason": e.reason,
                "detail": plain_detail,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    return rows


def _move_head(session: Session, row: dict[str, Any]) -> None:
    session.execute(
        update(ActionLogHead)
        .where(ActionLogHead.id == HEAD_ID)
        .values(seq=row["seq"], hash=row["hash"])
    )


def append(
    session: Session,
    actor: Actor,
    action: str,
    *,
    case_id: str | None = None,
    run_id: str | None = None,
    reason: str = "",
    detail: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> Action:
    """Append one entry in the caller's transaction (serialised: the head row is locked).

    ``at``: the instant (default now, UTC; stored to the microsecond). ``detail`` must be
    JSON-like (dates become ISO strings, tuples lists; NaN and infinities are refused with
    ValueError). Nothing is committed: the entry lands with the caller's other changes or not
    at all.
    """
    entry = Entry(action, case_id=case_id, run_id=run_id, reason=reason, detail=detail)
    when = (at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    _plain(entry.detail or {})  # refuse a bad detail before taking the lock
    seq, head = _lock_head(session)
    (row,) = _chain(actor, [entry], when, seq, head)
    action_row = Action(**row)
    session.add(action_row)
    _move_head(session, row)
    session.flush()
    return action_row


def append_many(
    session: Session, actor: Actor, entries: list[Entry], *, at: dt.datetime | None = None
) -> int:
    """Append many entries of one actor at once (a scoring run's cases): the head is locked
    once, the chain computed in memory and the rows inserted in bulk; the same entries and
    hashes as that many :func:`append` calls. Returns the last seq."""
    from sqlalchemy import insert

    when = (at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    seq, head = _lock_head(session)
    rows = _chain(actor, entries, when, seq, head)
    if not rows:
        return seq
    for i in range(0, len(rows), 5000):
        session.execute(insert(Action), rows[i : i + 5000])
    _move_head(session, rows[-1])
    return int(rows[-1]["seq"])


def history(session: Session, case_id: str) -> list[Action]:
    """The entries about one case, oldest first (no visibility check: see cases.get_case)."""
    return list(
        session.scalars(select(Action).where(Action.case_id == case_id).order_by(Action.seq))
    )


def _broken(
    entries: int, seq: int, problem: str, message: str, last: tuple[int, str]
) -> VerifyResult:
    return VerifyResult(
        ok=False,
        entries=entries,
        first_bad_seq=seq,
        problem=problem,
        head_seq=last[0],
        head_hash=last[1],
        message=message,
    )


def verify(session: Session, *, anchor: tuple[int, str] | None = None) -> VerifyResult:
    """Recompute the chain from the first entry; the first problem found is reported.

    ``anchor``: an externally recorded ``(seq, hash)`` of an earlier head; the entry ``seq``
    must exist and carry that hash (detects a truncated tail even with the head row rewritten).
    """
    expected_seq = 1
    prev = GENESIS
    checked = 0
    anchor_seen = anchor is None
    rows = session.execute(select(Action).order_by(Action.seq).execution_options(yield_per=1000))
    try:
        for row in rows.scalars():
            last = (expected_seq - 1, prev)
            if row.seq > expected_seq:
                return _broken(
                    checked,
                    expected_seq,
                    "deleted",
                    f"entry {expected_seq} is missing (the log goes from {expected_seq - 1} "
                    f"to {row.seq}): deleted",
                    last,
                )
            if entry_hash(row.prev_hash, _content_of(row)) != row.hash:
                return _broken(
                    checked,
                    row.seq,
                    "edited",
                    f"entry {row.seq} ({row.action} by {row.actor}) does not match its hash: edited",
                    last,
                )
            if row.prev_hash != prev:
                return _broken(
                    checked,
                    row.seq,
                    "inserted",
                    f"entry {row.seq} ({row.action} by {row.actor}) does not follow entry "
                    f"{row.seq - 1}: inserted (or entry {row.seq - 1} was rewritten and re-hashed)",
                    last,
                )
            if anchor is not None and row.seq == anchor[0]:
                if row.hash != anchor[1]:
                    return _broken(
                        checked,
                        row.seq,
                        "edited",
                        f"entry {row.seq} does not carry the anchored hash {anchor[1][:12]}...: "
                        "the log was rewritten from here",
                        last,
                    )
                anchor_seen = True
            checked += 1
            prev = row.hash
            expected_seq = row.seq + 1
    finally:
        rows.close()  # a server-side cursor on PostgreSQL
    last_seq = expected_seq - 1
    last = (last_seq, prev)
    head = session.execute(
        select(ActionLogHead.seq, ActionLogHead.hash).where(ActionLogHead.id == HEAD_ID)
    ).one_or_none()
    if head is not None:
        head_seq, head_hash = head
        if head_seq > last_seq:
            return _broken(
                checked,
                last_seq + 1,
                "deleted",
                f"the log ends at entry {last_seq} but had {head_seq} entries: "
                f"entries {last_seq + 1}..{head_seq} deleted",
                last,
            )
        if head_seq < last_seq:
            return _broken(
                checked,
                head_seq + 1,
                "inserted",
                f"entries {head_seq + 1}..{last_seq} were added without the log's head: inserted",
                last,
            )
        if head_hash != prev:
            return _broken(
                checked,
                last_seq,
                "edited",
                f"entry {last_seq} is not the entry the log's head names: edited",
                last,
            )
    if not anchor_seen:
        assert anchor is not None
        return _broken(
            checked,
            last_seq + 1,
            "deleted",
            f"the anchored entry {anchor[0]} is gone (the log ends at {last_seq}): "
            "the tail was deleted",
            last,
        )
    return VerifyResult(
        ok=True,
        entries=checked,
        head_seq=last_seq,
        head_hash=prev,
        message=f"{checked} entries verified; head {last_seq} {prev}",
    )
