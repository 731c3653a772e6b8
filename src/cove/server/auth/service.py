"""Users, organisations, tokens, passwords and browser sessions, and the access rules: who may read or write
which repo."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cove.errors import (
    AuthenticationError,
    HubPermissionError,
    HubRequestError,
    RepoExistsError,
    RepoNotFoundError,
)
from cove.store import ROLES, Account, Membership, RepoRow, Token, WebSession, check_name, check_text, utcnow

TOKEN_PREFIX = "cove_"

# top-level paths the site and the APIs own: never a user or organisation name, so /{name} and
# /{namespace}/{repo} never shadow a site page (web/render.py imports it from here)
RESERVED_NAMES = frozenset(
    {
        "api", "models", "datasets", "spaces", "static", "login", "logout", "join", "settings", "new",
        "search", "docs", "v1", "health", "info", "metrics", "generate", "generate_stream", "embed",
        "cove-lfs", "organizations", "pricing", "tasks",
    }
)  # fmt: skip


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
    session: bool = False  # signed in through a browser session (web/session.py), not a token

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
    return principal_for(s, user, token_role=row.role, token_name=row.name)


def principal_for(
    s: Session, user: Account, *, token_role: str, token_name: str, session: bool = False
) -> Principal:
    """The caller a user is, with their org roles, through one token (or a browser session)."""
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
        token_role=token_role,
        token_name=token_name,
        is_admin=user.is_admin,
        orgs=orgs,
        fullname=user.fullname,
        email=user.email,
        session=session,
    )


def get_account(s: Session, name: str) -> Account | None:
    return s.scalar(select(Account).where(Account.name == name))


def check_account_name(name: str) -> str:
    """A user or organisation name: a valid name that no site page owns."""
    check_name(name, "user or organisation name")
    if name.lower() in RESERVED_NAMES:
        raise HubRequestError(
            f"The name {name!r} is reserved: /{name.lower()} is a page of the hub. Choose another name."
        )
    return name


def create_account(
    s: Session,
    name: str,
    kind: str,
    *,
    is_admin: bool = False,
    fullname: str = "",
    password: str | None = None,
) -> Account:
    check_account_name(name)
    if get_account(s, name) is not None:
        raise RepoExistsError(f"The name {name!r} is taken by a user or organisation: choose another.")
    if password is not None and kind != "user":
        raise HubRequestError(f"Only users have passwords: {name!r} is an organisation.")
    row = Account(name=name, kind=kind, is_admin=is_admin, fullname=fullname or name)
    if password is not None:
        row.password_hash = hash_password(password)
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


def list_tokens(s: Session, user: str) -> list[Token]:
    """The user's live tokens, oldest first (their values were shown once and are not stored)."""
    user_row = get_account(s, user)
    if user_row is None:
        return []
    return list(
        s.scalars(
            select(Token)
            .where(Token.user_id == user_row.id, Token.revoked.is_(False))
            .order_by(Token.created_at, Token.id)
        )
    )


def revoke_token_id(s: Session, user: str, token_id: int) -> None:
    """Revoke one of the user's tokens by its row id; another user's token is "not found", like a missing one."""
    user_row = get_account(s, user)
    row = s.get(Token, token_id)
    if user_row is None or row is None or row.user_id != user_row.id or row.revoked:
        raise HubRequestError(f"No live token {token_id} of {user!r}: it may have been revoked already.")
    row.revoked = True
    s.commit()


def check_token_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 96:
        raise HubRequestError("A token needs a name of 1 to 96 characters, e.g. 'laptop' or 'ci'.")
    return check_text(name, "token name")


# --- passwords ------------------------------------------------------------------------------------
#
# scrypt (stdlib; argon2 is not installed) with its cost stored beside each hash, so the cost can rise
# later: a password checked under older parameters is rehashed at the next sign-in. n=2**15, r=8 takes
# 32 MiB and ~0.1 s per check; at most _KDF_SLOTS run at once, so a burst of sign-ins cannot take the
# server's memory.

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
_KDF_SLOTS = threading.BoundedSemaphore(4)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    with _KDF_SLOTS:
        return hashlib.scrypt(
            password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * r * n + (1 << 20), dklen=32
        )


def check_new_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise HubRequestError(f"The password is too short: use at least {MIN_PASSWORD_CHARS} characters.")
    if len(password) > MAX_PASSWORD_CHARS:
        raise HubRequestError(f"The password is too long: use at most {MAX_PASSWORD_CHARS} characters.")
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise HubRequestError("The password holds text that is not valid UTF-8.") from None
    return password


def hash_password(password: str) -> str:
    """'scrypt$n$r$p$salt$hash' (base64 salt and hash) of a new password."""
    check_new_password(password)
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether password matches the stored hash (compared in constant time)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        want = base64.b64decode(digest)
        got = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, UnicodeEncodeError):
        return False
    return hmac.compare_digest(got, want)


def _current_parameters(stored: str) -> bool:
    return stored.startswith(f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}$")


# what an unknown user's sign-in is checked against, so it takes as long as a real one (no timing oracle
# for which names exist)
_DUMMY_HASH = f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${'A' * 24}${'A' * 44}"


def set_password(s: Session, user: str, password: str) -> None:
    """Set (or change) a user's password; every browser session of theirs ends."""
    row = get_account(s, user)
    if row is None or row.kind != "user":
        raise HubRequestError(f"No user named {user!r}: create it with `cove user add {user}`.")
    row.password_hash = hash_password(password)
    s.execute(delete(WebSession).where(WebSession.user_id == row.id))
    s.commit()


def check_password(s: Session, user: str, password: str) -> Account | None:
    """The user when the password is theirs, else None (unknown users, organisations and accounts without a
    password included, after the same amount of work)."""
    row = get_account(s, user) if user else None
    stored = row.password_hash if row is not None and row.kind == "user" else None
    if len(password) > MAX_PASSWORD_CHARS:
        return None
    ok = verify_password(password, stored or _DUMMY_HASH)
    if not ok or row is None or stored is None:
        return None
    if not _current_parameters(stored):
        row.password_hash = hash_password(password)
        s.commit()
    return row


# --- browser sessions -----------------------------------------------------------------------------
#
# The cookie carries a random token; the table stores its sha256, so the database alone yields no live
# cookie. Expired rows are dropped at each sign-in.

SESSION_TOKEN_NAME = "web session"


def create_session(s: Session, user: Account, *, days: float) -> str:
    """A new session for the user; returns the token for the cookie (never stored)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    s.execute(delete(WebSession).where(WebSession.expires_at <= now))
    s.add(
        WebSession(
            id_hash=hash_token(token),
            user_id=user.id,
            created_at=now,
            expires_at=now + dt.timedelta(days=days),
        )
    )
    s.commit()
    return token


def session_principal(s: Session, token: str) -> tuple[Principal, str] | None:
    """(the caller, the session's id hash) of a live session token; None when unknown or expired."""
    row = s.get(WebSession, hash_token(token))
    if row is None or row.expires_at <= utcnow():
        return None
    user = s.get(Account, row.user_id)
    if user is None:
        return None
    principal = principal_for(s, user, token_role="write", token_name=SESSION_TOKEN_NAME, session=True)
    return principal, row.id_hash


def end_session(s: Session, token: str) -> None:
    s.execute(delete(WebSession).where(WebSession.id_hash == hash_token(token)))
    s.commit()


def update_profile(s: Session, user: str, *, fullname: str, email: str | None) -> Account:
    row = get_account(s, user)
    if row is None or row.kind != "user":
        raise HubRequestError(f"No user named {user!r}.")
    fullname = check_text(fullname.strip(), "full name")
    if len(fullname) > 200:
        raise HubRequestError("The full name is too long: use at most 200 characters.")
    if email is not None:
        email = check_text(email.strip(), "email address")
        local, at, domain = email.partition("@")
        if not email:
            email = None
        elif len(email) > 200 or not at or not local or "." not in domain or any(c.isspace() for c in email):
            raise HubRequestError(f"{email!r} is not an email address (name@example.org).")
    row.fullname = fullname or row.name
    row.email = email
    s.commit()
    return row
