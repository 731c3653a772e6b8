"""Request and response bodies of the repo routes, as huggingface_hub sends and parses them.

Requests are strict (a "private": "false" string is a 422 naming the field, not a private repo) and ignore
fields Cove does not use (the Hub's clients send Space hardware, resource groups, ...)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class CreateRepoRequest(Strict):
    name: str
    organization: str | None = None
    type: str | None = None
    private: bool | None = None
    visibility: Literal["public", "private"] | None = None
    sdk: str | None = None


class CreateRepoResponse(BaseModel):
    url: str
    name: str
    id: str


class RepoRef(Strict):
    """A repo named by type, name and namespace (the body of /api/repos/delete)."""

    name: str
    organization: str | None = None
    type: str | None = None


class MoveRepoRequest(Strict):
    fromRepo: str
    toRepo: str
    type: str | None = None


class UrlResponse(BaseModel):
    url: str


class RepoSettingsRequest(Strict):
    private: bool | None = None
    visibility: Literal["public", "private"] | None = None
    gated: bool | str | None = None
    discussionsDisabled: bool | None = None


class RepoSettingsResponse(BaseModel):
    private: bool


class CreateBranchRequest(Strict):
    startingPoint: str | None = None


class CreateTagRequest(Strict):
    tag: str
    message: str | None = None


class Empty(BaseModel):
    pass


class PathsInfoRequest(Strict):
    paths: list[str] = Field(max_length=10_000)


class PreuploadFile(Strict):
    path: str
    size: int = Field(default=0, ge=0)
    sample: str | None = None


class PreuploadRequest(Strict):
    files: list[PreuploadFile] = Field(max_length=10_000)


class PreuploadAnswer(BaseModel):
    path: str
    uploadMode: Literal["regular", "lfs"]
    shouldIgnore: bool
    oid: str | None


class PreuploadResponse(BaseModel):
    files: list[PreuploadAnswer]
    commitOid: str


class CommitResponse(BaseModel):
    success: bool
    commitOid: str
    commitUrl: str
    commitMessage: str
    hookOutput: str
    pullRequestUrl: str | None


class ValidateYamlRequest(Strict):
    content: str
    repoType: str | None = None


class YamlProblem(BaseModel):
    message: str


class ValidateYamlResponse(BaseModel):
    errors: list[YamlProblem]
    warnings: list[YamlProblem]


class RefJson(BaseModel):
    name: str
    ref: str
    targetCommit: str


class RefsResponse(BaseModel):
    branches: list[RefJson]
    converts: list[Any]
    tags: list[RefJson]
    pullRequests: list[Any] | None = None
