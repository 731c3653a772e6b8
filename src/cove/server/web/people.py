"""User and organisation pages, /{name}: their repos (private ones only for callers who may read them),
an organisation's members and a user's organisations. Registered after every other page: /{name} must
never shadow a fixed path."""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException

from cove.server.auth.service import Principal, get_account
from cove.server.deps import Db
from cove.server.search.service import SiteQuery, count_visible, site_page
from cove.server.web.lists import PLURAL, repo_card
from cove.server.web.render import RESERVED_NAMES, page
from cove.server.web.session import WebCaller
from cove.store import REPO_TYPES, Account, Membership

router = APIRouter(include_in_schema=False)

SHOWN = 12  # repos of each type on the page; the rest are a link to the filtered list
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")  # cove.store.check_name's rule


@dataclass(frozen=True)
class Member:
    name: str
    kind: str  # the other side: a user of an org, an org of a user
    role: str


def _members(s: Session, account: Account) -> list[Member]:
    """An organisation's users, or a user's organisations, by name."""
    if account.kind == "org":
        mine, theirs = Membership.org_id, Membership.user_id
    else:
        mine, theirs = Membership.user_id, Membership.org_id
    rows = s.execute(
        select(Account.name, Account.kind, Membership.role)
        .join(Membership, theirs == Account.id)
        .where(mine == account.id)
        .order_by(Account.name)
    )
    return [Member(name, kind, role) for name, kind, role in rows]


def _sees_roles(caller: Principal, account: Account, member: Member) -> bool:
    """Roles are for the organisation's own members (and site admins), not for the world."""
    org = account.name if account.kind == "org" else member.name
    return caller.is_admin or org in caller.orgs or caller.name == account.name


@router.get("/{name}", response_class=HTMLResponse)
def person(request: Request, name: str, s: Db, caller: WebCaller) -> HTMLResponse:
    missing = HTTPException(404, f"No user or organisation named {name!r} on this hub.")
    if name in RESERVED_NAMES or not _NAME.match(name):
        raise missing
    account = get_account(s, name)
    sections = []
    for repo_type in REPO_TYPES:
        count = count_visible(s, caller, repo_type, author=name)
        query = SiteQuery(repo_type=repo_type, filters=(("author", name),))
        rows = site_page(s, caller, query, SHOWN).rows if count else []
        sections.append(
            {
                "type": repo_type,
                "plural": PLURAL[repo_type],
                "count": count,
                "cards": [repo_card(row) for row in rows],
                "all_href": f"/{PLURAL[repo_type]}?author={name}",
            }
        )
    if account is None and not any(section["count"] for section in sections):
        raise missing  # a namespace with repos but no account (imported ones) still has a page
    members = []
    if account is not None:
        members = [
            {"name": m.name, "kind": m.kind, "role": m.role if _sees_roles(caller, account, m) else None}
            for m in _members(s, account)
        ]
    return page(
        request,
        "person.html",
        name=name,
        account=account,
        kind=account.kind if account is not None else "namespace",
        sections=sections,
        members=members,
    )
