"""Who may do what: the roles of a shared dashboard, checked where an action is taken.

A page hides or disables what a role may not do, but the check that counts is here, called by the
code that writes (seqcopy.ui's actions and the store's callers), so a crafted session state or URL
is refused in the server too. Roles, weakest first:

- viewer: reads every page and figure; writes nothing;
- launcher: queues runs, and cancels, deletes, retags, forks or continues the runs they queued;
- admin: everything, on every run.

With no sign-in configured the dashboard is one local user, who is admin (``LOCAL_ADMIN``).
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from enum import StrEnum

from seqcopy.errors import InputError


class Role(StrEnum):
    """A user's role, weakest first."""

    VIEWER = "viewer"
    LAUNCHER = "launcher"
    ADMIN = "admin"


class Action(StrEnum):
    """What a user may be allowed to do to the store."""

    QUEUE = "queue"  # a run, a grid, a search or a frontier study
    CANCEL = "cancel"
    DELETE = "delete"
    RETAG = "retag"
    FORK = "fork"
    CONTINUE = "continue"
    WORKERS = "workers"  # start, stop or restart the dashboard's own worker


# The actions on one existing run, which a launcher may take on their own runs only.
ON_A_RUN = frozenset({Action.CANCEL, Action.DELETE, Action.RETAG, Action.FORK, Action.CONTINUE})


class AccessDenied(InputError, PermissionError):
    """The user's role does not allow the action: said in one line, nothing written."""


@dataclass(frozen=True)
class Principal:
    """A user as the dashboard knows them: the name runs record as submitted_by, and a role."""

    name: str
    role: Role

    @property
    def writes(self) -> bool:
        """Whether the role may write anything at all (a viewer's store opens read-only)."""
        return self.role != Role.VIEWER


def os_user() -> str:
    """The operating-system user of this process: who the command line and workers queue as."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container's uid with no passwd entry and no $USER
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


LOCAL_ADMIN = Principal(name=os_user(), role=Role.ADMIN)


def why_not(principal: Principal, action: Action, owner: str | None = None) -> str | None:
    """Why ``principal`` may not take ``action`` (on a run queued by ``owner``), or None when they
    may: one line, as the page shows it beside a disabled control and as AccessDenied says it."""
    if principal.role == Role.ADMIN:
        return None
    if principal.role == Role.VIEWER:
        return f"{principal.name} is a viewer: viewers may look at every run but not {action} one"
    if action == Action.WORKERS:
        return f"only an admin may start or stop the dashboard's worker ({principal.name} is a launcher)"
    if action in ON_A_RUN and owner != principal.name:
        whose = f"{owner}'s" if owner else "an unknown user's"
        return f"a launcher may {action} only the runs they queued, and this is {whose}"
    return None


def require(principal: Principal, action: Action, owner: str | None = None) -> None:
    """AccessDenied unless ``principal`` may take ``action`` (on a run queued by ``owner``)."""
    reason = why_not(principal, action, owner)
    if reason is not None:
        raise AccessDenied(reason)
