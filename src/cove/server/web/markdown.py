"""Untrusted Markdown (model and dataset cards, .md files) into safe HTML, in one place.

markdown-it-py renders CommonMark with GitHub's extensions (tables, strikethrough, task lists, alerts,
footnotes, autolinks) and anchors on headings; fenced code is highlighted by pygments; raw HTML is allowed
in, then everything goes through nh3 with an explicit allow-list: no script, style, iframe, object, embed,
form or inline SVG (their content dropped with them), no event handlers or style attributes, URLs only
http(s)/mailto (images also data: PNG/JPEG/GIF/WebP), classes only those the renderer and pygments emit,
ids only plain slugs the page does not use itself. Relative links resolve to the repo's blob pages,
relative images to its resolve URLs, at the revision shown.

Source files shown on blob pages are highlighted here too (pygments escapes what it emits)."""

from __future__ import annotations

import hashlib
import html
import posixpath
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote, unquote

from markupsafe import Markup

from cove.server.web.cache import LRU

MAX_MARKDOWN_CHARS = 128 * 1024  # of a card's body: more is cut (a dense 500 kB card renders in seconds)
MAX_HIGHLIGHT_CHARS = 200_000  # of fenced code per document highlighted; the rest is shown plain
RESERVED_IDS = frozenset({"try-it", "viewer", "content", "main"})  # ids the page's own scripts look up

_ALERTS = ("note", "tip", "important", "warning", "caution")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_SAFE_DATA_IMAGE = re.compile(r"^data:image/(png|jpeg|jpg|gif|webp);base64,[A-Za-z0-9+/=\s]*$", re.IGNORECASE)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.:]{0,99}$")
_DIMENSION = re.compile(r"^\d{1,4}(px|%)?$")
_NUMBER = re.compile(r"^\d{1,4}$")


@dataclass(frozen=True)
class RepoLinks:
    """Where relative links of a file inside a repo point: prefix is the repo's page path
    ("/ns/name", "/datasets/ns/name"), folder the folder of the rendered file."""

    prefix: str
    revision: str
    folder: str = ""

    def url(self, kind: str, path: str) -> str:
        base = f"{self.prefix}/{kind}/{quote(self.revision, safe='')}"
        return f"{base}/{quote(path, safe='/')}" if path else base

    def resolve(self, url: str, kind: str) -> str:
        """A relative URL (path, query, fragment) as a path into the repo at this revision."""
        m = re.match(r"^([^?#]*)(.*)$", url, re.DOTALL)
        assert m is not None
        path, rest = m.group(1), m.group(2)
        if not path:
            return url  # a query or fragment alone stays on this page
        joined = posixpath.normpath(posixpath.join(self.folder, unquote(path)))
        target = "/".join(p for p in joined.split("/") if p not in ("", ".", ".."))  # never above the root
        if path.endswith("/") or not target:
            kind = "tree"
        return self.url(kind, target) + rest


def split_card(text: str) -> tuple[str | None, str]:
    """(the YAML front matter or None, the Markdown body), by the rule the store reads cards with."""
    stripped = text.lstrip("\ufeff")
    lines = stripped.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return None, stripped
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return "".join(lines[1:i]), "".join(lines[i + 1 :])
    return None, stripped


# --- highlighting -----------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _pygments_classes() -> frozenset[str]:
    from pygments.token import STANDARD_TYPES

    return frozenset(c for c in STANDARD_TYPES.values() if c)


def _lexer(lang: str) -> Any:
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        return get_lexer_by_name(lang, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None


def highlight_code(code: str, lang: str) -> str:
    """HTML spans for code in a language (pygments' classes), or the escaped code when it is unknown."""
    lexer = _lexer(lang) if lang and re.fullmatch(r"[\w+#.\-]{1,40}", lang) else None
    if lexer is None:
        return html.escape(code, quote=False)
    from pygments import highlight
    from pygments.formatters import HtmlFormatter

    return highlight(code, lexer, HtmlFormatter(nowrap=True))


def highlight_file(text: str, filename: str) -> Markup | None:
    """A source file as highlighted HTML lines (one string per line, spans closed per line), or None when
    pygments knows no lexer for the file name (the caller shows it plain)."""
    from pygments.lexers import get_lexer_for_filename
    from pygments.util import ClassNotFound

    try:
        lexer = get_lexer_for_filename(filename, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None
    from pygments import highlight
    from pygments.formatters import HtmlFormatter

    # lineanchors gives each line an id (#L-12) for links; the numbers are a separate column
    formatter = HtmlFormatter(linenos="table", lineanchors="L", anchorlinenos=True, wrapcode=True)
    return Markup(highlight(text, lexer, formatter))


# --- rendering --------------------------------------------------------------------------------------------


def _fence(self: Any, tokens: list[Any], idx: int, options: Any, env: dict[str, Any]) -> str:
    token = tokens[idx]
    info = token.info.strip()
    lang = info.split(maxsplit=1)[0] if info else ""
    budget = env.setdefault("highlight_budget", MAX_HIGHLIGHT_CHARS)
    if budget >= len(token.content):
        env["highlight_budget"] = budget - len(token.content)
        body = highlight_code(token.content, lang)
    else:
        body = html.escape(token.content, quote=False)
    return f'<pre class="code"><code>{body}</code></pre>\n'


@lru_cache(maxsize=1)
def _parser() -> Any:
    from markdown_it import MarkdownIt
    from mdit_py_plugins.anchors import anchors_plugin
    from mdit_py_plugins.gfm import gfm_plugin

    md = MarkdownIt("commonmark", {"html": True, "linkify": False, "typographer": False})
    md.use(gfm_plugin)
    md.use(anchors_plugin, min_level=1, max_level=6, permalink=True, permalinkSymbol="#")
    md.add_render_rule("fence", _fence)
    return md


@dataclass(frozen=True)
class Rendered:
    html: Markup
    truncated: bool  # the body was longer than the cap: only its head is rendered
    chars: int  # characters of Markdown rendered


_rendered: LRU[Rendered] = LRU(max_items=256, max_weight=48 * 1024**2, weigh=lambda r: len(r.html) + 200)


def render_markdown(text: str, links: RepoLinks | None, *, max_chars: int = MAX_MARKDOWN_CHARS) -> Rendered:
    """Markdown (no front matter: see split_card) as sanitized HTML; cached by content and links."""
    truncated = len(text) > max_chars
    if truncated:
        cut = text.rfind("\n", 0, max_chars)
        text = text[: cut if cut > 0 else max_chars]
    key = (hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest(), links)
    hit = _rendered.get(key)
    if hit is not None:
        return hit
    raw = _parser().render(text, {})
    return _rendered.put(key, Rendered(Markup(sanitize(raw, links)), truncated, len(text)))


# --- sanitizing -------------------------------------------------------------------------------------------

_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "center", "cite", "code", "col", "colgroup", "dd",
    "del", "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5",
    "h6", "hr", "i", "img", "input", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "rp", "rt", "ruby",
    "s", "samp", "section", "small", "span", "strike", "strong", "sub", "summary", "sup", "table", "tbody",
    "td", "tfoot", "th", "thead", "time", "tr", "tt", "u", "ul", "var", "wbr",
}  # fmt: skip
# removed with everything inside them (a bare tag not in _TAGS is dropped and its text kept)
_CLEAN_CONTENT = {
    "script", "style", "svg", "math", "iframe", "frame", "frameset", "object", "embed", "applet",
    "noscript", "noembed", "noframes", "template", "textarea", "select", "option", "title", "xmp",
    "button", "audio", "video", "canvas", "base", "link", "meta",
}  # fmt: skip
_HEADING = {"id", "align"}
_ATTRIBUTES = {
    "a": {"href", "title", "id"},
    "img": {"src", "alt", "title", "width", "height", "align"},
    "td": {"align", "colspan", "rowspan"},
    "th": {"align", "colspan", "rowspan"},
    "col": {"span"},
    "colgroup": {"span"},
    "ol": {"start"},
    "li": {"id"},
    "details": {"open"},
    "p": {"align"},
    "div": {"align"},
    "abbr": {"title"},
    "time": {"datetime"},
    "input": {"checked"},
    **{f"h{n}": _HEADING for n in range(1, 7)},
}
_FIXED = {"input": {"type": "checkbox", "disabled": ""}}  # a card's inputs are inert task-list boxes
_SAFE_SCHEMES = {"http", "https", "mailto"}
_ALIGN = {"left", "right", "center", "justify"}


@lru_cache(maxsize=1)
def _classes() -> dict[str, set[str]]:
    return {
        "span": set(_pygments_classes()),
        "pre": {"code"},
        "div": {"markdown-alert", *(f"markdown-alert-{a}" for a in _ALERTS)},
        "p": {"markdown-alert-title"},
        "ul": {"contains-task-list"},
        "li": {"task-list-item", "footnote-item"},
        "input": {"task-list-item-checkbox"},
        "section": {"footnotes"},
        "ol": {"footnotes-list"},
        "sup": {"footnote-ref"},
        "a": {"header-anchor", "footnote-backref"},
        "hr": {"footnotes-sep"},
    }


def _url_scheme(value: str) -> str | None:
    # browsers drop tabs and newlines anywhere in a URL and leading spaces/control characters
    compact = re.sub(r"[\t\n\r]", "", value).lstrip("".join(chr(c) for c in range(0x21)))
    m = _SCHEME.match(compact)
    return m.group(1).lower() if m else None


def _filter_url(value: str, kind: str, links: RepoLinks | None) -> str | None:
    value = value.strip()
    scheme = _url_scheme(value)
    if scheme is not None:
        if scheme == "data":
            return value if kind == "resolve" and _SAFE_DATA_IMAGE.match(value) else None
        return value if scheme in _SAFE_SCHEMES else None
    if value.startswith(("#", "/")) or "\\" in value[:2] or links is None:
        return value  # same page, same site, another site (//host), or nothing to resolve against
    return links.resolve(value, kind)


def sanitize(raw_html: str, links: RepoLinks | None = None) -> str:
    """Allow-list sanitizing of rendered Markdown (or any untrusted HTML)."""
    import nh3

    def attribute_filter(tag: str, attr: str, value: str) -> str | None:
        if attr == "href":
            return _filter_url(value, "blob", links)
        if attr == "src":
            return _filter_url(value, "resolve", links)
        if attr == "id":
            ok = _ID.match(value) and value not in RESERVED_IDS and not value.startswith("cove-")
            return value if ok else None
        if attr in ("width", "height"):
            return value if _DIMENSION.match(value.strip()) else None
        if attr == "align":
            return value.lower() if value.lower() in _ALIGN else None
        if attr in ("colspan", "rowspan", "start", "span"):
            return value if _NUMBER.match(value.strip()) else None
        return value

    return nh3.clean(
        raw_html,
        tags=_TAGS,
        clean_content_tags=_CLEAN_CONTENT,
        attributes=_ATTRIBUTES,
        attribute_filter=attribute_filter,
        strip_comments=True,
        link_rel="nofollow noopener noreferrer ugc",
        set_tag_attribute_values=_FIXED,
        url_schemes=_SAFE_SCHEMES | {"data"},  # data: URLs reach the filter, which keeps safe images only
        allowed_classes=_classes(),
    )
