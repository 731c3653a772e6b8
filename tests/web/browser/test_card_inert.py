"""A hostile card renders inert in a real browser: <script>, javascript: URLs (plain, mixed case, entity
encoded, in Markdown links and images), inline event handlers, <iframe>/<object>/<embed>, SVG with script,
CSS expressions and javascript: in styles, <meta refresh>, <base>, forms, mutation-XSS through <math>/
<noscript>, and the same in the YAML front matter. A probe (`window.__pwned`, set to 0 before any page
script) and a dialog listener prove no script ran; the DOM is checked for what could run later (handlers,
script URLs, foreign scripts). The repo page, the README's blob view and the commit's diff all show it."""

from __future__ import annotations

import pytest

from tests.web.browser.conftest import card, commit_files, needs_page

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the `playwright` Python package is not installed"
)
expect = sync_api.expect

pytestmark = pytest.mark.browser

PWN = "window.__pwned=1"
FRONT_MATTER = f"""
license: "<img src=x onerror={PWN}>"
pipeline_tag: text-classification
language:
- "<script>{PWN}</script>"
tags:
- "javascript:{PWN}"
- "\\"><svg onload={PWN}>"
datasets:
- "<iframe src=javascript:alert(1)>"
base_model: "javascript:alert(1)"
widget:
- text: "<img src=x onerror={PWN}>"
  example_title: "<script>{PWN}</script>"
"""
BODY = f"""# Inert card

Safe marker: CARD-RENDERED

<script>{PWN}</script>
<script src="https://evil.example/x.js"></script>
<img src="x" onerror="{PWN}">
<img src="javascript:{PWN}">
<a href="javascript:{PWN}">click me</a>
<a href="JaVaScRiPt:alert(1)">mixed case</a>
<a href="&#106;avascript:alert(1)">entity encoded</a>
<a href="  javascript:alert(1)">leading spaces</a>
<a href="data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;">data URL</a>

[markdown link](javascript:{PWN}) and ![markdown image](javascript:{PWN}) and <javascript:alert(1)>

[reference link][evil]

[evil]: javascript:alert(1)

<div onmouseover="{PWN}" onclick="alert(1)" id="hover-me">hover me</div>
<input autofocus onfocus="{PWN}">
<details open ontoggle="{PWN}"><summary>toggle</summary>inside</details>
<body onload="{PWN}">
<iframe src="javascript:alert(1)"></iframe>
<iframe srcdoc="<script>parent.__pwned=1</script>"></iframe>
<object data="javascript:alert(1)"></object>
<embed src="javascript:alert(1)">
<svg><script>{PWN}</script><a xlink:href="javascript:alert(1)"><text y="20">svg link</text></a></svg>
<svg onload="{PWN}"><animate onbegin="{PWN}" attributeName="x" dur="1s"/></svg>
<math><mtext><table><mglyph><style><img src=x onerror={PWN}></style></mglyph></table></mtext></math>
<style>body {{ background: url("javascript:{PWN}") }} .x {{ width: expression(alert(1)) }}</style>
<div style="background:url(javascript:{PWN}); width: expression(alert(1))">styled</div>
<meta http-equiv="refresh" content="0;url=javascript:alert(1)">
<base href="javascript:alert(1)//">
<form action="javascript:alert(1)"><button formaction="javascript:alert(1)">submit</button></form>
<link rel="stylesheet" href="javascript:alert(1)">
<video><source onerror="{PWN}"></video>
<noscript><p title="</noscript><img src=x onerror={PWN}>"></noscript>

```html
<script>alert("in code")</script>
```
"""

# what the DOM must not hold anywhere on the page once it rendered
DOM_PROBE = r"""() => {
  const bad = [];
  const scriptUrl = /^\s*(javascript|vbscript|livescript):|^\s*data:text\/html/i;
  for (const node of document.querySelectorAll("*")) {
    for (const attr of node.attributes) {
      const name = attr.name.toLowerCase();
      if (name.startsWith("on")) bad.push(`${node.tagName} ${name}`);
      if (["href", "src", "xlink:href", "action", "formaction", "data", "poster", "background"].includes(name)
          && scriptUrl.test(attr.value)) bad.push(`${node.tagName} ${name}=${attr.value}`);
      if (name === "srcdoc") bad.push(`${node.tagName} srcdoc`);
      if (name === "style" && /expression\s*\(|javascript:/i.test(attr.value)) bad.push(`${node.tagName} style`);
    }
  }
  for (const s of document.querySelectorAll("script")) {
    const src = s.getAttribute("src") || "";
    if (!src.startsWith("/static/")) bad.push(`script ${src || "(inline)"}: ${s.textContent.slice(0, 40)}`);
  }
  for (const tag of ["iframe", "frame", "object", "embed", "base", "meta[http-equiv]"]) {
    for (const node of document.querySelectorAll(tag)) bad.push(`<${node.tagName.toLowerCase()}>`);
  }
  for (const s of document.querySelectorAll("style")) bad.push(`<style> ${s.textContent.slice(0, 40)}`);
  return bad;
}"""


@pytest.fixture(scope="module")
def hostile(live):  # type: ignore[no-untyped-def]
    commit = commit_files(
        live, "alice/hostile", {"README.md": card(FRONT_MATTER, BODY)}, title="A hostile card"
    )
    needs_page(live, "/alice/hostile", "the repo pages (webrepo)")
    return live, commit


def assert_inert(page, dialogs) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_load_state("networkidle")  # every image has loaded or failed: onerror had its chance
    hover = page.locator("#hover-me")
    if hover.count():
        hover.hover()
        hover.click()
    page.keyboard.press("Tab")
    assert page.evaluate("window.__pwned") == 0, "a script in the card ran"
    assert dialogs == [], f"a script in the card opened dialogs: {dialogs}"
    assert page.evaluate(DOM_PROBE) == []


@pytest.mark.parametrize("where", ["repo page", "blob", "commit"])
def test_a_hostile_card_renders_inert(hostile, page, shot, where):
    hub, commit = hostile
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.add_init_script("window.__pwned = 0")
    url = {
        "repo page": "/alice/hostile",
        "blob": "/alice/hostile/blob/main/README.md",
        "commit": f"/alice/hostile/commit/{commit}",
    }[where]
    response = page.goto(url)
    assert response is not None and response.status == 200
    expect(page.locator("main")).to_contain_text("CARD-RENDERED")
    assert page.url == hub.url + url  # no <meta refresh>, no script navigation
    if where == "repo page":
        body = page.locator(".markdown")
        expect(body.locator("h1")).to_contain_text("Inert card")  # plus its anchor link
        # the code block shows its markup as text
        expect(body.locator("pre")).to_contain_text('<script>alert("in code")</script>')
        expect(body).to_contain_text("hover me")
    assert_inert(page, dialogs)
    shot(page, f"hostile-card-{where.replace(' ', '-')}")


def test_the_probes_catch_the_same_card_unsanitized(browser):
    """The card's payloads are live ones: unsanitized, in the same browser, they run and the DOM probe
    flags them (so the test above can fail)."""
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.add_init_script("window.__pwned = 0")
        page.set_content(f"<!doctype html><body>{BODY}</body>")
        page.wait_for_function("window.__pwned === 1", timeout=60_000)
        assert len(page.evaluate(DOM_PROBE)) > 20
    finally:
        ctx.close()
