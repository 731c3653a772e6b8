"""Repo pages: a model's, dataset's or space's card page (README rendered, metadata chips, model-index
results, model tree, counts and the like button, "use this model" snippets), and what every repo page
shares: the repo of the URL (404 unless the caller may read it), its header and tabs.

Routes are registered per kind: /{ns}/{name} is a model, /datasets/{ns}/{name} a dataset, /spaces/...
a space. Model routes' namespace never is "datasets" or "spaces" (both reserved names), so a typed URL
is never read as a model's sub-page whatever order the routers are included in."""

# no `from __future__ import annotations`: the per-kind routes are closures whose Annotated dependencies
# FastAPI must see as objects
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session
from starlette.convertors import register_url_convertor

from cove.errors import RepoNotFoundError
from cove.server.auth.service import Principal, get_account
from cove.server.deps import TYPE_PREFIX, Db, Hub, HubDep, find_repo
from cove.server.rawpath import SegmentConvertor
from cove.server.repos.service import card as stored_card
from cove.server.search.service import readable_namespaces
from cove.server.spaces.proxy import page_status
from cove.server.web.markdown import Rendered, RepoLinks, render_markdown, split_card
from cove.server.web.render import page
from cove.server.web.session import WebCaller
from cove.server.web.weights import ModelSize, format_params, model_size
from cove.store import DEFAULT_BRANCH, FileEntry, LikeRow, RepoQuery, RepoRow, RepoStore, list_repo_page

router = APIRouter(include_in_schema=False)

# the README bytes a page reads: the largest card's front matter plus the body it renders
README_READ_BYTES = 1024 * 1024 + 256 * 1024
MAX_CHIPS = 40
MAX_CHILDREN = 20


class ModelNamespaceConvertor(SegmentConvertor):
    """A model repo's namespace in a page URL: any segment but the typed prefixes."""

    regex = r"(?!(?:datasets|spaces)/)[^/]+"


register_url_convertor("modelns", ModelNamespaceConvertor())

KINDS = (("/datasets", "dataset"), ("/spaces", "space"), ("", "model"))
KIND_LABEL = {"model": "Model", "dataset": "Dataset", "space": "Space"}


def add_repo_route(
    target: APIRouter, suffix: str, make: Callable[[str], Callable[..., Any]], name: str
) -> None:
    """Register a page for each repo kind: make(repo_type) builds the endpoint."""
    for prefix, repo_type in KINDS:
        ns = "{namespace:seg}" if prefix else "{namespace:modelns}"
        endpoint = make(repo_type)
        endpoint.__name__ = f"{name}_{repo_type}"
        target.add_api_route(
            f"{prefix}/{ns}/{{name:seg}}{suffix}", endpoint, methods=["GET"], response_class=HTMLResponse
        )


def repo_prefix(repo: RepoRow) -> str:
    return f"/{TYPE_PREFIX[repo.type]}{repo.repo_id}"


def rev_quote(revision: str) -> str:
    return quote(revision, safe="")


# --- the header every repo page shares ---------------------------------------------------------------------


@dataclass
class RepoNav:
    repo: RepoRow
    card: dict[str, Any]
    tab: str
    revision: str
    likes: int
    liked: bool
    can_write: bool
    prefix: str = ""

    def __post_init__(self) -> None:
        self.prefix = repo_prefix(self.repo)

    @property
    def kind(self) -> str:
        return self.repo.type

    @property
    def kind_label(self) -> str:
        return KIND_LABEL[self.repo.type]

    def link(self, kind: str, revision: str | None = None, path: str = "") -> str:
        """/{repo}/{kind}/{revision}/{path}: tree, blob, resolve, commits, commit."""
        return RepoLinks(self.prefix, revision or self.revision).url(kind, path)

    @property
    def tabs(self) -> list[tuple[str, str, str]]:
        """(key, label, url) of the repo's tabs: card, viewer (datasets), files, history."""
        card_label = {"model": "Model card", "dataset": "Dataset card", "space": "App"}[self.kind]
        out = [("card", card_label, self.prefix)]
        if self.kind == "dataset":
            out.append(("viewer", "Viewer", f"{self.prefix}/viewer"))
        out.append(("files", "Files and versions", self.link("tree", self.revision)))
        out.append(("history", "History", self.link("commits", self.revision)))
        if self.can_write:
            out.append(("settings", "Settings", f"{self.prefix}/settings"))
        return out


def open_repo(repo_type: str, namespace: str, name: str, hub: Hub, s: Session, caller: Principal) -> RepoRow:
    """The repo of a page URL when the caller may read it; RepoNotFoundError (a 404 page) otherwise."""
    return find_repo(repo_type, namespace, name, hub, s, caller)


def repo_nav(
    s: Session, caller: Principal, repo: RepoRow, tab: str, revision: str = DEFAULT_BRANCH
) -> RepoNav:
    liked = False
    if caller.name is not None:
        account = get_account(s, caller.name)
        liked = account is not None and s.get(LikeRow, (account.id, repo.id)) is not None
    return RepoNav(
        repo=repo,
        card=stored_card(repo),
        tab=tab,
        revision=revision,
        likes=repo.likes or 0,
        liked=liked,
        can_write=caller.can_write_namespace(repo.namespace),
    )


# --- metadata chips -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chip:
    kind: str  # what it is: task, library, license, language, dataset, base model, tag, ...
    label: str
    href: str | None = None


def scalars(value: Any) -> list[str]:
    """A card field as a list of strings: scalars and lists of scalars; nested values are left out."""
    items = value if isinstance(value, list) else [value]
    return [str(v) for v in items if isinstance(v, (str, int, float)) and not isinstance(v, bool) and str(v)]


_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


def repo_href(prefix: str, repo_id: str) -> str | None:
    """A link to a repo a card names, only for a well-formed id: a card's "//evil.example/x" or
    "javascript:..." never becomes a link."""
    return f"{prefix}/{repo_id}" if _REPO_ID.match(repo_id) else None


def _listing(kind: str, **params: str) -> str:
    path = {"model": "/models", "dataset": "/datasets", "space": "/spaces"}[kind]
    return f"{path}?{urlencode(params)}"


def card_chips(card: dict[str, Any], repo_type: str) -> list[Chip]:
    chips: list[Chip] = []

    def add(kind: str, values: Iterable[str], href: Callable[[str], str | None]) -> None:
        for v in values:
            if len(chips) < MAX_CHIPS:
                chips.append(Chip(kind, v, href(v)))

    if repo_type == "model":
        add("task", scalars(card.get("pipeline_tag")), lambda v: _listing("model", pipeline_tag=v))
        add("library", scalars(card.get("library_name")), lambda v: _listing("model", library=v))
    if repo_type == "dataset":
        add(
            "task",
            scalars(card.get("task_categories")),
            lambda v: _listing("dataset", filter=f"task_categories:{v}"),
        )
        add(
            "size",
            scalars(card.get("size_categories")),
            lambda v: _listing("dataset", filter=f"size_categories:{v}"),
        )
    if repo_type == "space":
        add("sdk", scalars(card.get("sdk")), lambda v: None)
        add("model", scalars(card.get("models")), lambda v: repo_href("", v))
    add("license", scalars(card.get("license")), lambda v: _listing(repo_type, license=v))
    add("language", scalars(card.get("language")), lambda v: _listing(repo_type, language=v))
    add("dataset", scalars(card.get("datasets")), lambda v: repo_href("/datasets", v))
    if repo_type == "model":
        add("base model", scalars(card.get("base_model")), lambda v: repo_href("", v))
    add("tag", scalars(card.get("tags")), lambda v: _listing(repo_type, filter=v))
    return chips


@dataclass(frozen=True)
class ResultRow:
    model: str
    task: str
    dataset: str
    metric: str
    value: str


def model_index_rows(card: dict[str, Any], limit: int = 200) -> list[ResultRow]:
    """The card's model-index results as table rows (malformed entries are skipped, not fatal)."""

    def text(value: Any, *keys: str) -> str:
        if isinstance(value, dict):
            for key in keys:
                if isinstance(value.get(key), (str, int, float)):
                    return str(value[key])
            return ""
        return str(value) if isinstance(value, (str, int, float)) else ""

    rows: list[ResultRow] = []
    index = card.get("model-index")
    for model in index if isinstance(index, list) else []:
        if not isinstance(model, dict):
            continue
        for result in model.get("results") or []:
            if not isinstance(result, dict):
                continue
            task = text(result.get("task"), "name", "type")
            dataset = result.get("dataset")
            ds_name = text(dataset, "name", "type")
            if isinstance(dataset, dict) and dataset.get("split"):
                ds_name += f" ({text(dataset, 'split')})"
            for metric in result.get("metrics") or []:
                if isinstance(metric, dict) and len(rows) < limit:
                    value = metric.get("value")
                    shown = f"{value:.4g}" if isinstance(value, float) else text({"v": value}, "v")
                    rows.append(
                        ResultRow(text(model, "name"), task, ds_name, text(metric, "name", "type"), shown)
                    )
    return rows


# --- model tree ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TreeLink:
    repo_id: str
    href: str | None  # None: not in this hub (or not visible to the caller)


@dataclass
class ModelTree:
    bases: list[TreeLink] = field(default_factory=list)
    relation: str = "fine-tuned"
    children: list[RepoRow] = field(default_factory=list)
    more_children: bool = False


def model_tree(
    store: RepoStore, s: Session, caller: Principal, repo: RepoRow, card: dict[str, Any]
) -> ModelTree:
    """ "Fine-tuned from" (the card's base_model, linked when this hub has it and the caller may read it)
    and "fine-tuned in this hub" (visible models whose card names this one, by the repo_tags index)."""
    tree = ModelTree()
    relation = scalars(card.get("base_model_relation"))
    if relation:
        tree.relation = {"finetune": "fine-tuned", "adapter": "an adapter", "quantized": "quantized"}.get(
            relation[0], relation[0]
        )
    for base in scalars(card.get("base_model"))[:10]:
        href = None
        try:
            row = store.get_repo(s, "model", base)
            if caller.can_read(row):
                href = f"/{row.repo_id}"
        except RepoNotFoundError:
            pass
        tree.bases.append(TreeLink(base, href))
    query = RepoQuery(
        repo_type="model",
        tags=(f"base_model:{repo.repo_id}",),
        readable=readable_namespaces(caller),
        sort="downloads",
        limit=MAX_CHILDREN,
    )
    found = list_repo_page(s, query)
    tree.children = [row for row in found.rows if row.id != repo.id]
    tree.more_children = found.next_cursor is not None
    return tree


# --- "use this model" ---------------------------------------------------------------------------------------

# an example input per task: (what `inputs` is in the inference API, the pipeline call's arguments)
_EXAMPLES: dict[str, Any] = {
    "text-classification": "I like you. I love you.",
    "sentiment-analysis": "I like you. I love you.",
    "token-classification": "My name is Sarah and I live in London.",
    "ner": "My name is Sarah and I live in London.",
    "question-answering": {
        "question": "Where do I live?",
        "context": "My name is Sarah and I live in London.",
    },
    "fill-mask": "Paris is the [MASK] of France.",
    "feature-extraction": "Cove runs offline.",
    "sentence-similarity": {
        "source_sentence": "A man is playing a guitar.",
        "sentences": ["Someone plays an instrument.", "Stocks fell today."],
    },
    "zero-shot-classification": "I have a problem with my phone that needs to be fixed asap!",
    "summarization": "The tower is 324 metres tall, about the same height as an 81-storey building, and the "
    "tallest structure in Paris.",
    "translation": "My name is Sarah and I live in London.",
    "text2text-generation": "Translate English to German: How old are you?",
    "text-generation": "Once upon a time,",
}


def example_input(card: dict[str, Any], task: str) -> Any:
    """The card's first widget example when it has one, else a default for the task."""
    widget = card.get("widget")
    if isinstance(widget, list) and widget and isinstance(widget[0], dict):
        first = widget[0]
        if (
            task == "question-answering"
            and isinstance(first.get("text"), str)
            and isinstance(first.get("context"), str)
        ):
            return {"question": first["text"], "context": first["context"]}
        if isinstance(first.get("text"), str):
            return first["text"]
    if task.startswith("translation"):
        return _EXAMPLES["translation"]
    return _EXAMPLES.get(task, "Hello!")


def _python_call(task: str, example: Any) -> str:
    if task == "question-answering" and isinstance(example, dict):
        return f"pipe(question={json.dumps(example['question'])}, context={json.dumps(example['context'])})"
    if task == "zero-shot-classification":
        return f'pipe({json.dumps(example)}, candidate_labels=["urgent", "not urgent"])'
    if task == "sentence-similarity" and isinstance(example, dict):
        return f"pipe({json.dumps(example['source_sentence'])}, {json.dumps(example['sentences'])})"
    return f"pipe({json.dumps(example)})"


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


@dataclass(frozen=True)
class Snippet:
    key: str
    title: str
    language: str
    code: str


def snippets(repo: RepoRow, card: dict[str, Any], base_url: str) -> list[Snippet]:
    """Code that uses this repo from Cove, transformers, huggingface_hub and curl, pointed at this hub."""
    rid = json.dumps(repo.repo_id)
    token = "\n# a private repo needs a token: export HF_TOKEN=..." if repo.private else ""
    env = f'import os\nos.environ["HF_ENDPOINT"] = {json.dumps(base_url)}  # this hub, before the import{token}\n'
    kind_arg = {"model": "", "dataset": ', repo_type="dataset"', "space": ', repo_type="space"'}[repo.type]
    hub_code = (
        f"{env}from huggingface_hub import snapshot_download\n\nfolder = snapshot_download({rid}{kind_arg})\n"
    )
    cli = f"HF_ENDPOINT={base_url} hf download {repo.repo_id}" + (
        f" --repo-type {repo.type}" if repo.type != "model" else ""
    )
    out: list[Snippet] = []
    if repo.type == "model":
        tasks = scalars(card.get("pipeline_tag"))
        task = tasks[0] if tasks else ""
        if task:
            example = example_input(card, task)
            call = _python_call(task, example)
            cove_code = (
                f"{env}import cove\n\npipe = cove.pipeline({json.dumps(task)}, model={rid})\nprint({call})\n"
            )
            tf_code = f"{env}from transformers import pipeline\n\npipe = pipeline({json.dumps(task)}, model={rid})\nprint({call})\n"
        else:
            example = None
            cove_code = (
                f"{env}import cove\n\ntokenizer = cove.AutoTokenizer.from_pretrained({rid})\n"
                f"model = cove.AutoModel.from_pretrained({rid})\n"
            )
            tf_code = (
                f"{env}from transformers import AutoModel, AutoTokenizer\n\n"
                f"tokenizer = AutoTokenizer.from_pretrained({rid})\nmodel = AutoModel.from_pretrained({rid})\n"
            )
        out.append(Snippet("cove", "Cove", "python", cove_code))
        out.append(Snippet("transformers", "transformers", "python", tf_code))
        out.append(Snippet("huggingface_hub", "huggingface_hub", "python", hub_code + f"\n# or: {cli}\n"))
        if task:
            body = json.dumps({"inputs": example}, ensure_ascii=False)
            auth = ' \\\n  -H "Authorization: Bearer $HF_TOKEN"' if repo.private else ""
            curl = (
                f"curl {base_url}/models/{repo.repo_id} \\\n  -X POST{auth} \\\n"
                f'  -H "Content-Type: application/json" \\\n  -d {_shell_quote(body)}\n'
            )
            out.append(Snippet("curl", "Inference API (curl)", "bash", curl))
    elif repo.type == "dataset":
        out.append(
            Snippet(
                "cove", "Cove", "python", f"{env}import cove\n\nds = cove.load_dataset({rid})\nprint(ds)\n"
            )
        )
        out.append(
            Snippet(
                "datasets",
                "datasets",
                "python",
                f"{env}from datasets import load_dataset\n\nds = load_dataset({rid})\nprint(ds)\n",
            )
        )
        out.append(Snippet("huggingface_hub", "huggingface_hub", "python", hub_code + f"\n# or: {cli}\n"))
    else:
        out.append(Snippet("huggingface_hub", "huggingface_hub", "python", hub_code + f"\n# or: {cli}\n"))
    return out


# --- the card page ------------------------------------------------------------------------------------------


def read_head(store: RepoStore, entry: FileEntry, limit: int) -> bytes:
    """The first limit bytes of a file (all of it when smaller)."""
    return b"".join(store.blobs.iter_range(entry.sha256, 0, min(entry.size, limit)))


def read_readme(store: RepoStore, entry: FileEntry, links: RepoLinks) -> tuple[Rendered, bool]:
    """(the README's body rendered, whether the file was longer than what was read)."""
    head = read_head(store, entry, README_READ_BYTES)
    cut = entry.size > README_READ_BYTES
    text = head.decode("utf-8", "ignore" if cut else "replace")
    _, body = split_card(text)
    rendered = render_markdown(body, links)
    return rendered, cut or rendered.truncated


TOKENIZER_CONFIG_BYTES = 1 << 20  # a tokenizer_config.json past this is not read for the widget's hints


def widget_hints(store: RepoStore, tree: dict[str, FileEntry]) -> dict[str, Any]:
    """What the try-it widget needs from the tokenizer: whether it has a chat template (the widget then
    chats through /v1/chat/completions) and its mask token (fill-mask's default example)."""
    entry = tree.get("tokenizer_config.json")
    config: Any = None
    if entry is not None and entry.size <= TOKENIZER_CONFIG_BYTES:
        try:
            config = json.loads(read_head(store, entry, TOKENIZER_CONFIG_BYTES))
        except (ValueError, OSError):
            config = None
    if not isinstance(config, dict):
        return {"chat": False, "mask_token": None}
    mask = config.get("mask_token")
    if isinstance(mask, dict):  # an AddedToken written out
        mask = mask.get("content")
    return {"chat": bool(config.get("chat_template")), "mask_token": mask if isinstance(mask, str) else None}


def widget_card(card: dict[str, Any]) -> dict[str, Any]:
    """The card's `widget:` examples (a list of mappings) and `inference: parameters:` (a mapping), when
    well formed; the widget renders them as text."""
    examples = card.get("widget")
    inference = card.get("inference")
    parameters = inference.get("parameters") if isinstance(inference, dict) else None
    return {
        "examples": [e for e in examples if isinstance(e, dict)][:20] if isinstance(examples, list) else None,
        "parameters": parameters if isinstance(parameters, dict) else None,
    }


def _card_page(repo_type: str) -> Callable[..., Any]:
    def card_page(namespace: str, name: str, request: Request, hub: HubDep, s: Db, caller: WebCaller) -> Any:
        from cove.server.web import viewer

        store = hub.store
        repo = open_repo(repo_type, namespace, name, hub, s, caller)
        nav = repo_nav(s, caller, repo, "card")
        commit_id = store.resolve(s, repo, DEFAULT_BRANCH)
        tree = store.tree(s, commit_id)
        links = RepoLinks(nav.prefix, DEFAULT_BRANCH)
        readme = tree.get("README.md")
        rendered, readme_cut = read_readme(store, readme, links) if readme is not None else (None, False)
        size: ModelSize | None = model_size(store, tree) if repo_type == "model" else None
        card = nav.card
        tasks = scalars(card.get("pipeline_tag"))
        base_url = str(request.base_url).rstrip("/")
        space = page_status(request.app, repo.repo_id) if repo_type == "space" else None
        return page(
            request,
            "repo/card.html",
            nav=nav,
            card=card,
            readme=rendered,
            readme_cut=readme_cut,
            readme_url=nav.link("blob", DEFAULT_BRANCH, "README.md"),
            chips=card_chips(card, repo_type),
            results=model_index_rows(card),
            tree=model_tree(store, s, caller, repo, card) if repo_type == "model" else None,
            size=size,
            size_label=format_params(size.params) if size else "",
            snippets=snippets(repo, card, base_url),
            task=tasks[0] if tasks else None,
            widget={**widget_hints(store, tree), **widget_card(card)}
            if tasks and repo_type == "model"
            else {},
            viewer=viewer.preview(store, tree, card, None, None)
            if viewer.has_data(repo_type, tree)
            else None,
            file_count=len(tree),
            space=space,
        )

    return card_page


add_repo_route(router, "", _card_page, "repo_page")
