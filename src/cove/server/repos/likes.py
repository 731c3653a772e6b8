"""Likes: one row per (user, repo) in `likes`, and their count in `repos.likes`, changed in the same
transaction, so the count the lists sort by is exact under any concurrency.

A like is an INSERT that the primary key refuses the second time (IntegrityError: already liked, count
unchanged); an unlike is a DELETE whose row count says whether the count goes down. Each write starts a
fresh transaction (on SQLite its first statement takes the write lock, so no stale read snapshot can make
it fail) and is retried while the database is busy. Deleting a repo deletes its likes with it (ON DELETE
CASCADE). Cove has no account deletion; one would have to lower the counts of the repos its likes name.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from cove.errors import AuthenticationError, CommitConflictError, HubPermissionError, RepoNotFoundError
from cove.server.auth.service import Principal, get_account
from cove.store import Account, LikeRow, RepoRow, utcnow


def _liker(s: Session, caller: Principal) -> int:
    """The account id of a caller who may like: a user with a write token or a browser session."""
    if caller.name is None:
        raise AuthenticationError("Liking a repo needs a signed-in user: pass a token or sign in.")
    if caller.token_role != "write":
        raise HubPermissionError(
            f"User {caller.name!r} called with a {caller.token_role} token: liking needs a write token."
        )
    account = get_account(s, caller.name)
    assert account is not None
    return account.id


def _write(s: Session, change: Callable[[], bool]) -> bool:
    for attempt in range(50):
        s.rollback()  # a fresh transaction whose first statement is the write
        try:
            changed = change()
            s.commit()
            return changed
        except OperationalError:  # SQLite busy: another writer holds the lock past the timeout
            s.rollback()
            time.sleep(min(0.5, 0.01 * (attempt + 1)))
    raise CommitConflictError("The hub database is too busy to record the like; retry.")


def like(s: Session, caller: Principal, repo: RepoRow) -> bool:
    """Like a repo the caller can read; whether it was newly liked (liking twice is a no-op)."""
    caller.check_read(repo)
    user_id, repo_pk, repo_id = _liker(s, caller), repo.id, repo.repo_id

    def change() -> bool:
        try:
            s.execute(insert(LikeRow).values(user_id=user_id, repo_id=repo_pk, created_at=utcnow()))
        except IntegrityError:  # liked already (or the repo is gone: checked below)
            s.rollback()
            if s.scalar(select(RepoRow.id).where(RepoRow.id == repo_pk)) is None:
                raise RepoNotFoundError(f"Repo {repo_id!r} was deleted.") from None
            return False
        s.execute(update(RepoRow).where(RepoRow.id == repo_pk).values(likes=RepoRow.likes + 1))
        return True

    return _write(s, change)


def unlike(s: Session, caller: Principal, repo: RepoRow) -> bool:
    """Take back a like; whether there was one."""
    caller.check_read(repo)
    user_id, repo_pk = _liker(s, caller), repo.id

    def change() -> bool:
        gone = s.execute(delete(LikeRow).where(LikeRow.user_id == user_id, LikeRow.repo_id == repo_pk))
        if gone.rowcount != 1:  # type: ignore[attr-defined]
            return False
        s.execute(update(RepoRow).where(RepoRow.id == repo_pk).values(likes=RepoRow.likes - 1))
        return True

    return _write(s, change)


def toggle(s: Session, caller: Principal, repo: RepoRow) -> bool:
    """The like button: like, or unlike when liked; whether the repo is now liked."""
    if has_liked(s, caller, repo):
        unlike(s, caller, repo)
        return False
    like(s, caller, repo)
    return True


def has_liked(s: Session, caller: Principal, repo: RepoRow) -> bool:
    """Whether the caller likes the repo (False for anonymous callers): the like button's state."""
    if caller.name is None:
        return False
    row = s.scalar(
        select(LikeRow.user_id)
        .join(Account, Account.id == LikeRow.user_id)
        .where(Account.name == caller.name, LikeRow.repo_id == repo.id)
    )
    return row is not None


def liked_repos(s: Session, caller: Principal, user: str) -> list[tuple[LikeRow, RepoRow]]:
    """The repos a user likes, newest like first, that the caller may see (private ones stay hidden)."""
    account = get_account(s, user)
    if account is None or account.kind != "user":
        raise RepoNotFoundError(f"No user named {user!r}.")
    rows = s.execute(
        select(LikeRow, RepoRow)
        .join(RepoRow, RepoRow.id == LikeRow.repo_id)
        .where(LikeRow.user_id == account.id)
        .order_by(LikeRow.created_at.desc(), RepoRow.id.desc())
    )
    return [(like_row, repo) for like_row, repo in rows if caller.can_read(repo)]


def likers(s: Session, caller: Principal, repo: RepoRow) -> list[Account]:
    """The users who like a repo the caller can read, in the order they liked it."""
    caller.check_read(repo)
    return list(
        s.scalars(
            select(Account)
            .join(LikeRow, LikeRow.user_id == Account.id)
            .where(LikeRow.repo_id == repo.id)
            .order_by(LikeRow.created_at, Account.id)
        )
    )
