"""Bodies of the git-LFS batch API and the signed transfer endpoints."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from cove.server.repos.schemas import Strict


class LfsBatchRequest(Strict):
    operation: str
    # each entry is checked on its own (a bad oid or size is an error for that object, as the LFS spec
    # asks), but an entry that is not an object at all is a 422 for the request
    objects: list[dict[str, Any]] = Field(max_length=10_000)
    transfers: list[str] | None = None
    hash_algo: str | None = None


class LfsAction(BaseModel):
    href: str
    header: dict[str, str]


class LfsObjectError(BaseModel):
    code: int
    message: str


class LfsObjectAnswer(BaseModel):
    oid: str
    size: int
    authenticated: bool | None = None
    actions: dict[str, LfsAction] | None = None
    error: LfsObjectError | None = None


class LfsBatchResponse(BaseModel):
    transfer: Literal["basic"]
    objects: list[LfsObjectAnswer]
    hash_algo: Literal["sha256"]


class LfsVerifyRequest(Strict):
    oid: str | None = None
    size: int | None = Field(default=None, ge=0)


class LfsVerifyResponse(BaseModel):
    ok: bool
