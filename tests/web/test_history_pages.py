"""History as HTML: the commit list (paginated, per path), and a commit's page with its diffs: unified
text diffs, key-by-key diffs of config.json and the card's YAML, tensor diffs of safetensors files."""

from __future__ import annotations

import re
from html import unescape

import pytest

from cove.server.web import history as history_module
from tests.web.conftest import safetensors_bytes


@pytest.fixture
def repo(web):
    web.user("ann")
    web.repo(
        "ann/m",
        {
            "README.md": "---\nlicense: mit\ntags: [a]\n---\n# M\n\nFirst text.\n",
            "config.json": '{"hidden_size": 8, "act": "gelu", "rope": {"theta": 10000}}',
        },
        title="Start",
    )
    web.commit("ann/m", add={"notes.txt": "one\ntwo\nthree\n"}, title="Add notes")
    web.commit(
        "ann/m",
        add={
            "config.json": '{"hidden_size": 16, "rope": {"theta": 500000, "scaling": null}, "vocab_size": 100}',
            "README.md": "---\nlicense: apache-2.0\ntags: [a, b]\nbase_model: ann/base\n---\n# M\n\nSecond text.\n",
            "notes.txt": "one\n2\nthree\nfour\n",
        },
        title="Retune",
    )
    return "ann/m"


def titles(html: str) -> list[str]:
    return re.findall(r'<div class="commit-title"><a href="[^"]+">([^<]+)</a>', html)


def test_the_commit_list_is_newest_first(web, repo):
    r = web.get(f"/{repo}/commits/main")
    assert r.status_code == 200
    assert titles(r.text) == ["Retune", "Add notes", "Start", "initial commit"]
    assert "Older" not in r.text


def test_the_commit_list_is_paginated(web, repo, monkeypatch):
    monkeypatch.setattr(history_module, "COMMITS_PER_PAGE", 3)
    first = web.get(f"/{repo}/commits/main").text
    assert titles(first) == ["Retune", "Add notes", "Start"]
    older = re.search(r'<a class="button" href="([^"]+)">Older', first)
    assert older is not None
    second = web.get(unescape(older.group(1))).text
    assert titles(second) == ["initial commit"]
    assert "← Newest" in second and "Older" not in second


def test_history_per_path(web, repo):
    assert titles(web.get(f"/{repo}/commits/main/notes.txt").text) == ["Retune", "Add notes"]
    assert titles(web.get(f"/{repo}/commits/main/config.json").text) == ["Retune", "Start"]


def test_a_per_path_walk_is_bounded(web, repo, monkeypatch):
    monkeypatch.setattr(history_module, "PATH_SCAN_LIMIT", 2)
    html = web.get(f"/{repo}/commits/main/config.json").text
    assert titles(html) == ["Retune"]
    assert "Looked at 2 commits for changes to this path" in html
    nxt = re.search(r'<a class="button" href="([^"]+)">Older', html)
    assert nxt is not None
    assert titles(web.get(unescape(nxt.group(1))).text) == ["Start"]


def test_history_statuses(web, repo):
    assert web.get(f"/{repo}/commits/nope").status_code == 404
    assert web.get(f"/{repo}/commits/main?start=zzz").status_code == 400
    assert web.get(f"/{repo}/commits/main?start={'0' * 40}").status_code == 404
    assert web.get(f"/{repo}/commit/{'0' * 40}").status_code == 404
    assert web.get(f"/{repo}/commits/main/%2E%2E/x").status_code == 400
    web.repo("ann/private", {"a.txt": "x"}, private=True)
    assert web.get("/ann/private/commits/main").status_code == 404
    head = web.get("/ann/private/commits/main", user="ann").text
    sha = re.search(r'href="/ann/private/commit/([0-9a-f]{40})"', head)
    assert sha is not None
    assert web.get(f"/ann/private/commit/{sha.group(1)}").status_code == 404
    assert web.get(f"/ann/private/commit/{sha.group(1)}", user="ann").status_code == 200


def head_commit_page(web, repo: str) -> str:
    html = web.get(f"/{repo}/commits/main").text
    sha = re.search(r'<a class="sha mono" href="(/[^"]+/commit/[0-9a-f]{40})"', html)
    assert sha is not None
    r = web.get(sha.group(1))
    assert r.status_code == 200
    return r.text


def section(html: str, path: str) -> str:
    start = html.index(f'<span class="mono">{path}</span>')
    end = html.find('<section class="file-diff"', start)
    return html[start : end if end > 0 else len(html)]


def test_a_commit_page_shows_a_unified_diff(web, repo):
    html = head_commit_page(web, repo)
    assert "<h2>Retune</h2>" in html
    assert "3 files changed" in html
    notes = section(html, "notes.txt")
    assert "+2 −1" in notes
    assert re.search(
        r'<tr class="del"><td class="ln">2</td><td class="ln"></td><td class="mono"><span class="mark">-</span>two</td>',
        notes,
    )
    assert re.search(
        r'<tr class="add"><td class="ln"></td><td class="ln">2</td><td class="mono"><span class="mark">\+</span>2</td>',
        notes,
    )
    assert '<tr class="add"><td class="ln"></td><td class="ln">4</td>' in notes
    assert "@@ -1,3 +1,4 @@" in notes


def test_config_json_gets_a_key_by_key_diff(web, repo):
    config = unescape(section(head_commit_page(web, repo), "config.json"))
    assert "JSON: 5 keys changed" in config
    expected = [
        ("act", "removed", '"gelu"', ""),
        ("hidden_size", "changed", "8", "16"),
        ("rope.scaling", "added", "", "null"),
        ("rope.theta", "changed", "10000", "500000"),
        ("vocab_size", "added", "", "100"),
    ]
    found = re.findall(
        r'<tr class="key-\w+"><td class="mono">([^<]+)</td><td>(\w+)</td>\s*<td class="mono">([^<]*)</td>\s*<td class="mono">([^<]*)</td></tr>',
        config,
    )
    assert found == expected


def test_the_card_yaml_gets_a_key_by_key_diff(web, repo):
    readme = unescape(section(head_commit_page(web, repo), "README.md"))
    assert "card metadata (YAML): 3 keys changed" in readme
    rows = re.findall(r'<tr class="key-\w+"><td class="mono">([^<]+)</td><td>(\w+)</td>', readme)
    assert rows == [("base_model", "added"), ("license", "changed"), ("tags", "changed")]
    assert '["a", "b"]' in readme
    assert "Second text." in readme  # and the text diff below it


def test_safetensors_changes_are_tensor_diffs(web, repo):
    web.commit(
        repo,
        lfs={
            "model.safetensors": safetensors_bytes(
                {"emb": ("F32", (10, 4)), "head": ("F32", (4, 2)), "norm": ("F32", (4,))}
            )
        },
        title="Weights v1",
    )
    web.commit(
        repo,
        lfs={
            "model.safetensors": safetensors_bytes(
                {
                    "emb": ("F32", (12, 4)),
                    "head": ("F16", (4, 2)),
                    "extra": ("F32", (3,)),
                    "keep": ("F32", (1,)),
                },
                {"v": "2"},
            )
        },
        title="Weights v2",
    )
    html = unescape(section(head_commit_page(web, repo), "model.safetensors"))
    assert "Tensors: 2 added, 1 removed, 2 changed in shape or dtype, 0 same" in html
    assert "Parameters: 52 → 60" in html and "(+8)" in html
    rows = re.findall(
        r'<tr class="key-\w+"><td class="mono">([^<]+)</td><td>(\w+)</td>\s*<td class="mono">([^<]*)</td>\s*<td class="mono">([^<]*)</td></tr>',
        html,
    )
    assert rows == [
        ("emb", "changed", "F32 [10, 4]", "F32 [12, 4]"),
        ("extra", "added", "", "F32 [3]"),
        ("head", "changed", "F32 [4, 2]", "F16 [4, 2]"),
        ("keep", "added", "", "F32 [1]"),
        ("norm", "removed", "F32 [4]", ""),
    ]
    assert "Unified diff" not in html  # weights are never diffed as bytes


def test_removed_and_binary_files_and_the_root_commit(web, repo):
    web.commit(repo, delete=("notes.txt",), add={"blob.bin": bytes(range(256))}, title="Drop notes")
    html = head_commit_page(web, repo)
    notes = section(html, "notes.txt")
    assert "+0 −4" in notes and '<span class="mark">-</span>four' in notes
    assert "Not diffed: binary file." in section(html, "blob.bin")
    history = web.get(f"/{repo}/commits/main").text
    root = re.findall(r'href="(/ann/m/commit/[0-9a-f]{40})"', history)[-1]
    first = web.get(root).text
    assert "the first commit" in first and ".gitattributes" in first


def test_a_large_text_change_is_not_diffed(web, repo, monkeypatch):
    monkeypatch.setattr(history_module, "DIFF_SIDE_BYTES", 10)
    web.commit(repo, add={"notes.txt": "x" * 100}, title="Big notes")
    html = section(head_commit_page(web, repo), "notes.txt")
    assert "Not diffed: too large to diff (100 bytes; the page diffs files up to 10)." in html
