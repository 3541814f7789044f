"""Errors of the serving layer (scoring, dispatch, the case store, the API's services).

Hierarchy::

    TaxriskError (taxrisk.errors)
    └── ServingError                 base of every serving failure
        ├── ServingConfigError       serving/config.toml or an override is malformed
        ├── ScoringError             a model cannot score a matrix, or no run can be made
        ├── NoChampion               no model version holds the alias champion
        ├── CaseNotFound             no such case (or not visible to the user: same message)
        ├── RunNotFound              no such scoring run
        ├── InvalidTransition        the case's state does not allow the action (HTTP 409)
        ├── InvalidFeedback          feedback breaks a rule (HTTP 422)
        ├── ApprovalRequired         a second person must approve (HTTP 409)
        ├── Forbidden                outside the user's rights (HTTP 403)
        ├── UserError                users add/revoke: unknown role, duplicate name, ...
        └── ChainBroken              the action log does not verify

The CLI prints ``str(error)`` on one line; the API maps each class to a status with
``detail`` = ``str(error)``.
"""

from __future__ import annotations

from taxrisk.errors import TaxriskError

__all__ = [
    "ApprovalRequired",
    "CaseNotFound",
    "ChainBroken",
    "Forbidden",
    "InvalidFeedback",
    "InvalidTransition",
    "NoChampion",
    "RunNotFound",
    "ScoringError",
    "ServingError",
    "UserError",
]


class ServingError(TaxriskError):
    """Base class of the serving layer's expected failures."""


class ScoringError(ServingError):
    """A model cannot score a matrix (wrong columns, unreadable model), or a run cannot start."""


class NoChampion(ScoringError):
    """No registered model version holds the alias ``champion``."""


class CaseNotFound(ServingError):
    """No such case, or one the user may not see (the message is the same: nothing leaks)."""


class RunNotFound(ServingError):
    """No such scoring run."""


class InvalidTransition(ServingError):
    """The case's state does not allow this action."""


class InvalidFeedback(ServingError):
    """Feedback breaks a rule (negative money, unknown outcome or measure, ...)."""


class ApprovalRequired(ServingError):
    """The action needs a second person's approval (集体审议)."""


class Forbidden(ServingError):
    """The action is outside the user's rights."""


class UserError(ServingError):
    """A user cannot be created or changed (unknown role, duplicate name, unknown unit...)."""


class ChainBroken(ServingError):
    """The action log does not verify: an entry was edited, inserted or deleted."""

    def __init__(self, message: str, seq: int | None = None) -> None:
        self.seq = seq
        super().__init__(message)
