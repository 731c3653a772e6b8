"""The list API's query parameters and answer items (GET /api/models|datasets|spaces), as the Hub names them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ListQuery(BaseModel):
    """What huggingface_hub's list_models/list_datasets/list_spaces send (0.x and 1.x+). Repeated and
    comma-separated values both work for the list parameters; every filter must match. Parameters that
    map to nothing Cove stores (apps, inference, num_parameters, ...) are ignored."""

    model_config = ConfigDict(extra="ignore")

    search: list[str] = Field(
        default=[],
        description="Each: a case-insensitive substring of the repo id, or words the README holds "
        "(every word, as word beginnings)",
    )
    author: str | None = Field(default=None, description="The namespace (user or organisation)")
    filter: list[str] = Field(
        default=[], description="Tags the card yields (tags, pipeline_tag, library_name, license:x, ...)"
    )
    pipeline_tag: str | None = None
    library: list[str] = Field(default=[], description="Same as filter=<library>")
    language: list[str] = Field(default=[], description="Same as filter=<language> (language:x for datasets)")
    license: list[str] = Field(default=[], description="Same as filter=license:<license>")
    dataset: list[str] = Field(default=[], description="Models: same as filter=dataset:<dataset>")
    datasets: list[str] = Field(default=[], description="Spaces: linked to these datasets")
    models: list[str] = Field(default=[], description="Spaces: linked to these models")
    linked: bool = Field(default=False, description="Spaces: only those linked to a model or dataset")
    gated: bool | None = Field(default=None, description="Cove has no gated repos: true lists none")
    sort: str | None = Field(
        default=None, description="lastModified, createdAt, downloads, likes, trendingScore or id"
    )
    direction: str | None = Field(default=None, description="-1 (the default with a sort) or 1")
    limit: int | None = Field(default=None, ge=1, description="Page size (capped by COVE_LIST_PAGE_SIZE)")
    cursor: str | None = Field(default=None, description="From the previous page's Link header")
    full: bool = Field(default=False, description="Add sha, siblings and cardData")
    cardData: bool = False
    config: bool = Field(default=False, description="Models: add config.json's architectures and model_type")
    expand: list[str] = Field(default=[], description="cardData, config, sha and siblings are added")


class Sibling(BaseModel):
    rfilename: str


class RepoSummary(BaseModel):
    """One listed repo (server/repos/service.py summary_json)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    object_id: str = Field(alias="_id")
    id: str
    author: str
    private: bool
    gated: bool
    disabled: bool
    downloads: int
    likes: int
    tags: list[str]
    lastModified: str
    createdAt: str
    sha: str | None = None
    modelId: str | None = None
    pipeline_tag: str | None = None
    library_name: str | None = None
    sdk: str | None = None
    cardData: dict[str, Any] | None = None
    siblings: list[Sibling] | None = None
    config: dict[str, Any] | None = None
