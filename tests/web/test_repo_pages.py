"""Repo pages as HTML: the card rendered and sanitized, metadata chips, model-index, the model tree (and its
privacy), counts, the like button, the snippets, the try-it container, and the statuses."""

from __future__ import annotations

import re
import time
from html import unescape

import pytest

from cove.server.web.markdown import RepoLinks, render_markdown, sanitize, split_card
from tests.web.conftest import safetensors_bytes

CARD = """---
license: apache-2.0
library_name: transformers
pipeline_tag: text-classification
language: [en, fr]
datasets: [ann/reviews]
base_model: google/bert-base
tags: [sentiment, tiny]
model-index:
- name: ann-classifier
  results:
  - task: {type: text-classification, name: Sentiment}
    dataset: {name: Reviews, type: ann/reviews, split: test}
    metrics:
    - {type: accuracy, value: 0.9123, name: Accuracy}
---
# Sentiment classifier

A *tiny* model. See [the usage notes](docs/usage.md#setup) and [the root](../../../etc/passwd).

![a chart](images/chart.png)

| split | accuracy |
|-------|----------|
| test  | 0.91     |

```python
def classify(text):
    return "positive"
```

## Training details
"""


def card_body(html: str) -> str:
    """The rendered README's part of a page."""
    m = re.search(
        r'<div class="markdown card-body">(.*?)</div>\s*(?:<p class="note"|<section class="model-index"|</article>)',
        html,
        re.S,
    )
    assert m is not None, "no rendered card on the page"
    return m.group(1)


@pytest.fixture
def model(web):
    web.user("ann")
    web.repo("ann/classifier", {"README.md": CARD, "config.json": '{"model_type": "bert"}'})
    return "ann/classifier"


def test_the_model_page_renders_the_card(web, model):
    r = web.get(f"/{model}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    body = card_body(r.text)
    assert '<h1 id="sentiment-classifier">Sentiment classifier' in body
    assert 'id="training-details"' in body  # anchors on every heading level
    assert "<em>tiny</em>" in body
    assert "<table>" in body and "<th>accuracy</th>" in body
    assert '<span class="k">def</span>' in body  # fenced code highlighted by pygments
    assert "license:" not in body and "pipeline_tag" not in body  # the front matter is not rendered


def test_relative_links_and_images_resolve_into_the_repo(web, model):
    body = card_body(web.get(f"/{model}").text)
    assert 'href="/ann/classifier/blob/main/docs/usage.md#setup"' in body
    assert 'href="/ann/classifier/blob/main/etc/passwd"' in body  # "../" never climbs out of the repo
    assert 'src="/ann/classifier/resolve/main/images/chart.png"' in body


def test_metadata_chips_link_to_lists_and_repos(web, model):
    html = web.get(f"/{model}").text
    assert 'href="/models?pipeline_tag=text-classification"' in html
    assert 'href="/models?library=transformers"' in html
    assert 'href="/models?license=apache-2.0"' in html
    assert 'href="/models?language=fr"' in html
    assert 'href="/datasets/ann/reviews"' in html
    assert 'href="/google/bert-base"' in html
    assert 'href="/models?filter=sentiment"' in html


def test_model_index_results_are_a_table(web, model):
    html = web.get(f"/{model}").text
    section = html[html.index('<section class="model-index">') :]
    assert '<td>Sentiment</td><td>Reviews (test)</td><td>Accuracy</td><td class="num">0.9123</td>' in section


HOSTILE = """---
license: mit
---
# Hostile card

<script>alert('script')</script>
<img src="x.png" onerror="alert('onerror')">
<a href="javascript:alert('js')">js link</a>
<a href="JaVaScRiPt:alert('js2')">mixed case</a>
<a href="jav&#x09;ascript:alert('tab')">tab inside</a>
[md js](javascript:alert('md'))
<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">data link</a>
<div onclick="alert('click')" onmouseover="alert('over')">hover me</div>
<iframe src="https://evil.example/"></iframe>
<object data="evil.swf"></object><embed src="evil.swf">
<svg onload="alert('svg')"><script>alert('svg script')</script><circle r="5"/></svg>
<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">
<img src="data:image/png;base64,iVBORw0KGgo=" alt="ok png">
<p style="width: expression(alert('css'))">styled</p>
<style>body { background: url("javascript:alert('style')") }</style>
<form action="/settings/tokens" method="post"><input type="password" name="p"><button>steal</button></form>
<h2 id="try-it">clobbers the widget's container</h2>
<a href="vbscript:msgbox(1)">vb</a>
"""


def test_a_hostile_card_renders_inert(web):
    web.user("eve")
    web.repo("eve/hostile", {"README.md": HOSTILE})
    html = web.get("/eve/hostile").text
    body = card_body(html)
    for bad in (
        "<script",
        "<iframe",
        "<object",
        "<embed",
        "<svg",
        "<style",
        "<form",
        "<button",
        "expression(",
    ):
        assert bad not in body.lower(), bad
    assert not re.search(r"\son\w+\s*=", body), "an event handler survived"
    assert not re.search(r"(href|src)\s*=\s*\"\s*(javascript|vbscript|data:text|data:image/svg)", body, re.I)
    assert "style=" not in body
    assert 'id="try-it"' not in body  # page ids are not the card's to take
    assert 'type="password"' not in body
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in body  # safe inline images stay
    assert "hover me" in body and "Hostile card" in body  # the text itself is kept
    # and nothing of it reaches the page outside the card either
    assert "alert(" not in html.replace(body, "")


def test_sanitize_unit_allow_list():
    assert sanitize('<a href="https://x.org" target="_blank">x</a>') == (
        '<a href="https://x.org" rel="nofollow noopener noreferrer ugc">x</a>'
    )
    assert sanitize('<img src="java\nscript:alert(1)">') == "<img>"
    assert sanitize('<span class="k evil">def</span>') == '<span class="k">def</span>'
    box = sanitize('<input type="text" value="x">')
    assert 'type="checkbox"' in box and 'disabled=""' in box and "value" not in box and "text" not in box
    table = sanitize(
        '<table><tr><td align="middle" colspan="2;x">x</td><td align="Center">y</td></tr></table>'
    )
    assert "<td>x</td>" in table and '<td align="center">y</td>' in table


def test_markdown_unit_links_and_truncation():
    links = RepoLinks("/datasets/ann/d", "feature/x", folder="docs")
    html = render_markdown("[a](../README.md) [b](sub/) ![c](img.png) [d](#top) [e](/models)", links).html
    assert 'href="/datasets/ann/d/blob/feature%2Fx/README.md"' in html
    assert 'href="/datasets/ann/d/tree/feature%2Fx/docs/sub"' in html
    assert 'src="/datasets/ann/d/resolve/feature%2Fx/docs/img.png"' in html
    assert 'href="#top"' in html and 'href="/models"' in html
    long = render_markdown("word\n" * 100, None, max_chars=50)
    assert long.truncated and long.chars <= 50
    assert split_card("---\na: 1\n---\nbody\n") == ("a: 1\n", "body\n")
    assert split_card("no front matter") == (None, "no front matter")


def test_a_huge_readme_renders_capped_and_fast(web):
    web.user("ann")
    chunk = "## Section\n\nSome *text* with a [link](x.md) and `code`.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
    huge = "---\nlicense: mit\n---\n" + chunk * (5 * 1024 * 1024 // len(chunk))
    assert len(huge) > 5_000_000
    web.repo("ann/huge", {"README.md": huge})
    start = time.perf_counter()
    r = web.get("/ann/huge")
    first = time.perf_counter() - start
    assert r.status_code == 200
    assert "The README is longer than this page renders" in r.text
    assert len(r.text) < 2_000_000
    assert first < 5.0, first  # the body is cut before rendering (a dense 5 MB card would take a minute)
    start = time.perf_counter()
    web.get("/ann/huge")
    assert time.perf_counter() - start < 1.0  # rendered once, then cached by content


def test_private_and_missing_repos_are_404_pages(web):
    web.user("ann")
    web.user("bob")
    web.repo("ann/secret", {"README.md": "# secret"}, private=True)
    for user in (None, "bob"):
        r = web.get("/ann/secret", user=user)
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("text/html")
        assert "secret</h1>" not in r.text and "<h1>404</h1>" in r.text
    r = web.get("/ann/secret", user="ann")
    assert r.status_code == 200 and '<span class="badge private">private</span>' in r.text
    assert web.get("/ann/nothing").status_code == 404
    assert web.get("/datasets/ann/secret").status_code == 404  # a model is not a dataset


def test_dataset_and_space_pages(web):
    web.user("ann")
    web.repo(
        "ann/reviews",
        {"README.md": "---\nlicense: cc-by-4.0\ntask_categories: [text-classification]\n---\n# Reviews\n"},
        repo_type="dataset",
    )
    web.repo(
        "ann/demo",
        {"README.md": "---\nsdk: gradio\nmodels: [ann/classifier]\n---\n# Demo app\n"},
        repo_type="space",
    )
    r = web.get("/datasets/ann/reviews")
    assert r.status_code == 200
    assert "Dataset card" in r.text and '<h1 id="reviews">Reviews' in r.text
    assert 'href="/datasets?filter=task_categories%3Atext-classification"' in r.text
    assert 'load_dataset("ann/reviews")' in unescape(r.text)
    r = web.get("/spaces/ann/demo")
    assert r.status_code == 200
    assert 'class="space-stage stage-' in r.text  # the runtime's stage (a visit starts its build)
    assert 'href="/ann/classifier"' in r.text and "gradio" in r.text
    assert web.get("/ann/reviews").status_code == 404  # a dataset is not a model


def test_model_tree_links_bases_and_lists_visible_fine_tunes(web):
    web.user("ann")
    web.user("bob")
    web.repo("ann/base", {"README.md": "# Base"})
    web.repo("bob/tuned", {"README.md": "---\nbase_model: ann/base\n---\n# Tuned"})
    web.repo("bob/secret-tune", {"README.md": "---\nbase_model: ann/base\n---\n# Secret"}, private=True)
    web.repo("bob/from-elsewhere", {"README.md": "---\nbase_model: [google/t5-small]\n---\n"})
    page = web.get("/ann/base").text
    tree = page[page.index('<section class="side-box model-tree">') :]
    assert 'href="/bob/tuned"' in tree
    assert "bob/secret-tune" not in page  # a private fine-tune is never shown to others
    assert "bob/secret-tune" not in web.get("/ann/base", user="ann").text
    assert 'href="/bob/secret-tune"' in web.get("/ann/base", user="bob").text
    tuned = web.get("/bob/tuned").text
    assert "is fine-tuned from</p>" in tuned and '<a href="/ann/base">ann/base</a>' in tuned
    elsewhere = web.get("/bob/from-elsewhere").text
    assert 'google/t5-small <span class="muted">(not in this hub)</span>' in elsewhere


def test_a_private_base_model_is_not_linked_for_others(web):
    web.user("ann")
    web.user("bob")
    web.repo("ann/hidden-base", {"README.md": "# x"}, private=True)
    web.repo("bob/child", {"README.md": "---\nbase_model: ann/hidden-base\n---\n"})
    assert '<a href="/ann/hidden-base">' not in web.get("/bob/child").text
    assert '<a href="/ann/hidden-base">' in web.get("/bob/child", user="ann").text


def test_snippets_point_at_this_hub(web, model):
    html = web.get(f"/{model}").text
    assert "os.environ[&#34;HF_ENDPOINT&#34;] = &#34;http://testserver&#34;" in html
    assert "cove.pipeline(&#34;text-classification&#34;, model=&#34;ann/classifier&#34;)" in html
    assert "from transformers import pipeline" in html
    assert "snapshot_download(&#34;ann/classifier&#34;)" in html
    assert "curl http://testserver/models/ann/classifier" in html
    assert "-d &#39;{&#34;inputs&#34;: &#34;I like you. I love you.&#34;}&#39;" in html


def test_widget_examples_and_quotes_in_snippets(web):
    web.user("ann")
    card = '---\npipeline_tag: fill-mask\nwidget:\n- text: "It\'s a [MASK] day."\n---\n'
    web.repo("ann/masker", {"README.md": card})
    html = web.get("/ann/masker").text
    # the example comes from the card's widget, and its quote survives the shell
    assert "-d &#39;{&#34;inputs&#34;: &#34;It&#39;\\&#39;&#39;s a [MASK] day.&#34;}&#39;" in html


def test_try_it_container_only_with_a_pipeline_tag(web, model):
    html = web.get(f"/{model}").text
    assert '<div id="try-it" data-repo="ann/classifier" data-task="text-classification"' in html
    web.repo("ann/plain", {"README.md": "# no task"})
    plain = web.get("/ann/plain").text
    assert 'id="try-it"' not in plain
    assert "AutoModel.from_pretrained(&#34;ann/plain&#34;)" in plain
    assert "curl " not in plain  # no task, no inference example


def test_like_button_for_signed_in_users(web, model):
    anonymous = web.get(f"/{model}").text
    assert 'href="/login?next=/ann/classifier"' in anonymous
    assert 'action="/ann/classifier/like"' not in anonymous
    web.user("bob")
    page = web.get(f"/{model}", user="bob").text
    form = page[page.index('<form action="/ann/classifier/like" method="post"') :]
    form = form[: form.index("</form>")]
    assert '<input type="hidden" name="csrf_token"' in form
    assert 'aria-pressed="false"' in form and "♥ Like<" in form
    web.like("bob", model)
    page = web.get(f"/{model}", user="bob").text
    assert 'aria-pressed="true"' in page and "♥ Liked" in page
    assert '<span class="like-count" title="likes">1</span>' in page


def test_counts_and_model_size_from_safetensors_headers(web):
    web.user("ann")
    web.repo("ann/sized", {"README.md": "# sized"})
    weights = safetensors_bytes({"emb": ("F32", (1000, 64)), "head": ("F16", (64, 10))})
    web.commit("ann/sized", lfs={"model.safetensors": weights})
    with web.store.session() as s:
        row = web.store.get_repo(s, "model", "ann/sized")
        row.downloads = 12345
        s.commit()
    html = web.get("/ann/sized").text
    assert '<span class="stat">64.6k</span> params' in html
    assert "tensor types: F32, F16" in html
    assert '<span class="stat">12.3k</span> downloads' in html


def test_a_repo_without_card_and_an_unparsable_card(web):
    web.user("ann")
    web.repo("ann/bare", {"config.json": "{}"})
    assert "No model card yet." in web.get("/ann/bare").text
    assert "Create a card" in web.get("/ann/bare", user="ann").text
    web.repo("ann/bad-yaml", {"README.md": "---\nlicense: [unclosed\n---\n# Still shown\n"})
    r = web.get("/ann/bad-yaml")
    assert r.status_code == 200 and 'id="still-shown"' in r.text


def test_repo_ids_from_the_card_are_linked_only_when_well_formed(web):
    web.user("eve")
    card = "---\nbase_model: //evil.example/x\ndatasets: ['javascript:alert(1)', ann/good]\n---\n"
    web.repo("eve/links", {"README.md": card})
    html = web.get("/eve/links").text
    assert 'href="//evil.example/x"' not in html and 'href="/datasets/javascript' not in html
    assert 'href="/datasets/ann/good"' in html
    assert "//evil.example/x" in html  # still shown, as text


def test_the_model_page_loads_the_try_it_widget_with_the_cards_examples(web):
    card = (
        "---\npipeline_tag: text-generation\nwidget:\n"
        "  - text: \"<script>alert(1)</script>' onmouseover='x\"\n"
        "    example_title: hostile\ninference:\n  parameters:\n    max_new_tokens: 8\n---\n# chat model\n"
    )
    web.repo(
        "alice/chatty",
        {
            "README.md": card,
            "tokenizer_config.json": '{"chat_template": "{{ messages }}", "mask_token": {"content": "[MASK]"}}',
        },
    )
    page = web.get("/alice/chatty")
    assert page.status_code == 200
    assert '<script type="module" src="/static/widgets.js' in page.text or "/static/widgets.js" in page.text
    assert 'data-chat="true"' in page.text and 'data-mask-token="[MASK]"' in page.text
    assert "<script>alert(1)</script>" not in page.text and "' onmouseover='" not in page.text
    assert "max_new_tokens" in page.text  # the card's inference parameters reach the widget
    # a task the widget does not serve renders no widget; a dataset never gets one
    web.repo("alice/other", {"README.md": "---\npipeline_tag: image-classification\n---\n"})
    assert "/static/widgets.js" not in web.get("/alice/other").text
