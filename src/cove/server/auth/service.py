"""Users, organisations, tokens and the access rules: who may read or write which repo."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from cove.errors import (
    AuthenticationError,
    HubPermissionError,
    HubRequestError,
    RepoExistsError,
    RepoNotFoundError,
)
from cove.store import ROLES, Account, Membership, RepoRow, Token, check_name

TOKEN_PREFIX = "cove_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Principal:
    """Who is calling: anonymous (name None) or a user through one token."""

    name: str | None = None
    token_role: str = "read"
    token_name: str = ""
    is_admin: bool = False
    orgs: dict[str, str] = field(default_factory=dict)  # org name -> role
    fullname: str = ""
    email: str | None = None

    def can_read(self, repo: RepoRow) -> bool:
        if not repo.private:
            return True
        if self.name is None:
            return False
        return self.is_admin or repo.namespace == self.name or repo.namespace in self.orgs

    def can_write_namespace(self, namespace: str) -> bool:
        if self.name is None or self.token_role != "write":
            return False
        if self.is_admin or namespace == self.name:
            return True
        return self.orgs.get(namespace) in ("write", "admin")

    def check_read(self, repo: RepoRow) -> None:
        if not self.can_read(repo):  # never "forbidden": private repos do not exist for this caller
            raise RepoNotFoundError(
                f"{repo.type.capitalize()} repo {repo.repo_id!r} not found: check the name and type, "
                "and pass a token if it is private."
            )

    def check_write(self, repo: RepoRow) -> None:
        self.check_read(repo)
        if not self.can_write_namespace(repo.namespace):
            who = (
                "anonymous callers"
                if self.name is None
                else f"user {self.name!r} with a {self.token_role} token"
            )
            raise HubPermissionError(
                f"{who} may not write to {repo.repo_id!r}: use a write token of its owner or of a member "
                "with the write or admin role."
            )

    def check_admin(self, repo: RepoRow) -> None:
        """Deleting, moving or changing the visibility of a repo: its owner, an org admin or a site admin."""
        self.check_write(repo)
        if not (self.is_admin or repo.namespace == self.name or self.orgs.get(repo.namespace) == "admin"):
            raise HubPermissionError(
                f"Only admins of {repo.namespace!r} may delete, move or change the visibility of {repo.repo_id!r}: "
                "ask an org admin (cove org member add ORG USER --role admin)."
            )


def authenticate(s: Session, authorization: str | None) -> Principal:
    if not authorization:
        return Principal()
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("Invalid credentials in Authorization header")
    row = s.scalar(
        select(Token).where(Token.token_hash == hash_token(token.strip()), Token.revoked.is_(False))
    )
    if row is None:
        raise AuthenticationError("Invalid credentials in Authorization header")
    user = s.get(Account, row.user_id)
    assert user is not None
    orgs = {
        org.name: m.role
        for m, org in s.execute(
            select(Membership, Account)
            .join(Account, Account.id == Membership.org_id)
            .where(Membership.user_id == user.id)
        )
    }
    return Principal(
        name=user.name,
        token_role=row.role,
        token_name=row.name,
        is_admin=user.is_admin,
        orgs=orgs,
        fullname=user.fullname,
        email=user.email,
    )


def get_account(s: Session, name: str) -> Account | None:
    return s.scalar(select(Account).where(Account.name == name))


def create_account(
    s: Session, name: str, kind: str, *, is_admin: bool = False, fullname: str = ""
) -> Account:
    check_name(name, "user or organisation name")
    if get_account(s, name) is not None:
        raise RepoExistsError(f"The name {name!r} is taken by a user or organisation: choose another.")
    row = Account(name=name, kind=kind, is_admin=is_admin, fullname=fullname or name)
    s.add(row)
    s.commit()
    return row


def add_member(s: Session, org: str, user: str, role: str) -> None:
    if role not in ROLES:
        raise HubRequestError(f"Unknown role {role!r}: use one of {', '.join(ROLES)}.")
    org_row, user_row = get_account(s, org), get_account(s, user)
    if org_row is None or org_row.kind != "org":
        raise HubRequestError(f"No organisation named {org!r}: create it with `cove org add {org}`.")
    if user_row is None or user_row.kind != "user":
        raise HubRequestError(f"No user named {user!r}: create it with `cove user add {user}`.")
    existing = s.scalar(
        select(Membership).where(Membership.org_id == org_row.id, Membership.user_id == user_row.id)
    )
    if existing is not None:
        existing.role = role
    else:
        s.add(Membership(org_id=org_row.id, user_id=user_row.id, role=role))
    s.commit()


def create_token(s: Session, user: str, *, name: str = "default", role: str = "write") -> str:
    """A new token for the user; only its hash is stored, so this is the one time it is seen."""
    if role not in ("read", "write"):
        raise HubRequestError(f"Unknown token role {role!r}: use 'read' or 'write'.")
    user_row = get_account(s, user)
    if user_row is None or user_row.kind != "user":
        raise HubRequestError(f"No user named {user!r}: create it with `cove user add {user}`.")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    s.add(Token(user_id=user_row.id, name=name, token_hash=hash_token(token), role=role))
    s.commit()
    return token


def revoke_token(s: Session, token_or_name: str, *, user: str | None = None) -> int:
    """Revoke a token given by its value, or all tokens with that name of the given user; returns how many."""
    rows = list(s.scalars(select(Token).where(Token.token_hash == hash_token(token_or_name))))
    if not rows and user is not None:
        user_row = get_account(s, user)
        if user_row is not None:
            rows = list(
                s.scalars(select(Token).where(Token.user_id == user_row.id, Token.name == token_or_name))
            )
    for row in rows:
        row.revoked = True
    s.commit()
    return len(rows)
