"""Files and versions as HTML: folder listings (sizes, LFS badges, last commit per entry, the ref switcher),
file pages (text, Markdown, images, binary, large files, safetensors and GGUF headers) and the statuses;
the header readers' bounds."""

from __future__ import annotations

import json
import re
import struct
import time

import pytest

from cove.errors import CheckpointError
from cove.server.web import files as files_module
from cove.server.web.weights import format_params, read_gguf_header, read_safetensors_header
from tests.web.conftest import gguf_bytes, safetensors_bytes


@pytest.fixture
def repo(web):
    web.user("ann")
    web.repo(
        "ann/m",
        {"README.md": "# M\n", "config.json": '{"hidden_size": 8}', "src/train.py": "import os\n"},
        title="First files",
    )
    web.commit("ann/m", add={"config.json": '{"hidden_size": 16}'}, title="Wider model")
    web.commit(
        "ann/m", lfs={"weights/model.safetensors": safetensors_bytes({"w": ("F32", (4, 4))})}, title="Weights"
    )
    return "ann/m"


def rows(html: str) -> dict[str, str]:
    """Each listed entry's table row, by name."""
    out = {}
    for row in re.findall(r'<tr class="(?:dir|file)">(.*?)</tr>', html, re.S):
        name = re.search(r'<a href="[^"]*">([^<]+)</a>', row)
        assert name is not None
        out[name.group(1)] = row
    return out


def test_the_root_folder_lists_entries_with_sizes_badges_and_last_commits(web, repo):
    r = web.get(f"/{repo}/tree/main")
    assert r.status_code == 200
    listed = rows(r.text)
    assert list(listed) == ["src", "weights", ".gitattributes", "README.md", "config.json"]  # folders first
    assert 'href="/ann/m/tree/main/src"' in listed["src"]
    assert 'href="/ann/m/blob/main/config.json"' in listed["config.json"]
    assert "19 B" in listed["config.json"]
    assert "Wider model" in listed["config.json"]  # its last change
    assert "First files" in listed["README.md"] and "First files" in listed["src"]
    assert "Weights" in listed["weights"]
    assert "initial commit" in listed[".gitattributes"]
    assert 'href="/ann/m/resolve/main/config.json?download=true"' in listed["config.json"]
    assert "Weights" in r.text[r.text.index('<div class="head-commit">') :][:400]  # the head commit


def test_subfolders_lfs_badges_and_file_urls_redirect(web, repo):
    listed = rows(web.get(f"/{repo}/tree/main/weights").text)
    assert list(listed) == ["model.safetensors"]
    assert '<span class="badge lfs"' in listed["model.safetensors"]
    r = web.get(f"/{repo}/tree/main/config.json", follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"] == "/ann/m/blob/main/config.json"


def test_last_commit_walk_is_bounded(web, repo, monkeypatch):
    monkeypatch.setattr(files_module, "LAST_COMMIT_WALK", 1)
    listed = rows(web.get(f"/{repo}/tree/main").text)
    assert "Weights" in listed["weights"]
    assert ">older</span>" in listed["config.json"]  # changed two commits back: beyond a walk of one


def test_branch_and_tag_switcher(web, repo):
    with web.store.session() as s:
        row = web.store.get_repo(s, "model", repo)
        web.store.create_ref(s, row, "branch", "feature/x", "main")
        web.store.create_ref(s, row, "tag", "v1.0", "main")
    web.commit(repo, add={"NOTES.md": "on the branch"}, branch="feature/x", title="Branch work")
    html = web.get(f"/{repo}/tree/main/src").text
    menu = html[html.index('<div class="ref-menu">') :]
    assert 'href="/ann/m/tree/feature%2Fx/src"' in menu
    assert 'href="/ann/m/tree/v1.0/src"' in menu
    assert '<a href="/ann/m/tree/main/src" class="current">main</a>' in menu
    branch = web.get("/ann/m/tree/feature%2Fx")
    assert branch.status_code == 200 and "NOTES.md" in rows(branch.text)
    assert "NOTES.md" not in rows(web.get(f"/{repo}/tree/v1.0").text)


def test_statuses(web, repo):
    assert web.get(f"/{repo}/tree/nope").status_code == 404
    assert web.get(f"/{repo}/tree/main/no/such/folder").status_code == 404
    assert web.get(f"/{repo}/blob/main/missing.txt").status_code == 404
    assert web.get(f"/{repo}/blob/nope/config.json").status_code == 404
    assert web.get("/ann/other/tree/main").status_code == 404
    missing = web.get(f"/{repo}/blob/main/missing.txt")
    assert (
        missing.headers["content-type"].startswith("text/html")
        and missing.headers["x-error-code"] == "EntryNotFound"
    )


@pytest.mark.parametrize(
    "url",
    [
        "/ann/m/tree/main/%2E%2E/%2E%2E/etc",
        "/ann/m/blob/main/src/%2E%2E/%2E%2E/x",
        "/ann/m/tree/main/a%5Cb",
    ],
)
def test_path_traversal_is_refused(web, repo, url):
    r = web.get(url)
    assert r.status_code == 400, r.text[:500]
    assert r.headers["content-type"].startswith("text/html")


def test_git_folders_are_refused(web, repo):
    # paths with ".git/" are the git protocol's: their errors stay JSON, as the API's
    r = web.get(f"/{repo}/blob/main/.git/config")
    assert r.status_code == 400 and "'.git' folder" in r.text


def test_private_repo_files_are_404_for_others(web):
    web.user("ann")
    web.user("bob")
    web.repo("ann/hidden", {"a.txt": "secret text"}, private=True)
    for url in ("/ann/hidden/tree/main", "/ann/hidden/blob/main/a.txt"):
        assert web.get(url).status_code == 404
        assert web.get(url, user="bob").status_code == 404
        assert web.get(url, user="ann").status_code == 200


def test_text_files_are_highlighted_and_json_too(web, repo):
    r = web.get(f"/{repo}/blob/main/src/train.py")
    assert r.status_code == 200
    assert '<span class="kn">import</span>' in r.text
    assert 'href="#L-1"' in r.text  # numbered, linkable lines
    assert 'href="/ann/m/commits/main/src/train.py"' in r.text  # the file's history
    config = web.get(f"/{repo}/blob/main/config.json").text
    assert '<span class="nt">"hidden_size"</span><span class="p">:</span>' in config
    assert "Wider model" in config  # its last change


def test_markdown_files_render_and_show_their_source(web):
    web.user("ann")
    web.repo(
        "ann/docs",
        {
            "docs/guide.md": "---\ntitle: Guide\n---\n# Guide\n\nSee [the intro](intro.md).\n<script>x()</script>"
        },
    )
    html = web.get("/ann/docs/blob/main/docs/guide.md").text
    assert '<h1 id="guide">Guide' in html
    assert 'href="/ann/docs/blob/main/docs/intro.md"' in html  # relative to the file's folder
    assert "<script>x()" not in html
    assert "Metadata (YAML front matter)" in html and "title: Guide" in html
    source = web.get("/ann/docs/blob/main/docs/guide.md?plain=1").text
    assert (
        '<h1 id="guide">' not in source
        and "# Guide" in source
        and "&lt;script&gt;x()&lt;/script&gt;" in source
    )


def test_images_binary_and_empty_files(web):
    web.user("ann")
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    web.repo(
        "ann/media",
        {
            "logo.png": png,
            "data.bin": bytes(range(256)) * 100,
            "empty.txt": b"",
            "latin.txt": "café".encode("latin-1"),
        },
    )
    image = web.get("/ann/media/blob/main/logo.png").text
    assert '<img src="/ann/media/resolve/main/logo.png" alt="logo.png">' in image
    binary = web.get("/ann/media/blob/main/data.bin").text
    assert "Binary file of 25.6 kB (25,600 bytes), not shown." in binary
    assert "\\x00" not in binary and "&#0;" not in binary
    assert "This file is empty." in web.get("/ann/media/blob/main/empty.txt").text
    assert "Binary file" in web.get("/ann/media/blob/main/latin.txt").text  # not UTF-8


def test_a_large_text_file_shows_its_head_and_a_download_link(web):
    web.user("ann")
    big = "".join(f"line {i:07d} of a long log\n" for i in range(100_000))  # 2.6 MB
    web.repo("ann/logs", {"train.log": big})
    start = time.perf_counter()
    r = web.get("/ann/logs/blob/main/train.log")
    assert time.perf_counter() - start < 3.0
    assert "Showing the first 524.3 kB of 2.7 MB" in r.text
    assert 'href="/ann/logs/resolve/main/train.log?download=true"' in r.text
    assert "line 0000000 of a long log" in r.text
    assert "line 0099999" not in r.text
    assert len(r.text) < 3_000_000


def test_safetensors_files_show_their_header(web):
    web.user("ann")
    weights = safetensors_bytes(
        {"model.embed.weight": ("F32", (100, 16)), "model.head.bias": ("BF16", (16,))},
        metadata={"format": "pt"},
    )
    web.repo("ann/st", {})
    web.commit("ann/st", lfs={"model.safetensors": weights})
    html = web.get("/ann/st/blob/main/model.safetensors").text
    assert "<strong>1.62k</strong> parameters in 2 tensors" in html
    assert (
        '<td class="mono">model.embed.weight</td><td>F32</td><td class="mono">[100, 16]</td><td class="num">1,600</td>'
        in html
    )
    assert '<td class="mono">model.head.bias</td><td>BF16</td><td class="mono">[16]</td>' in html
    assert "format" in html and "pt" in html  # __metadata__
    assert '<span class="badge lfs"' in html


def test_a_5_gb_checkpoint_does_not_slow_its_pages(web):
    web.user("ann")
    web.repo("ann/big", {"README.md": "# big"})
    head = safetensors_bytes({"huge": ("F32", (1,))})[:-4]  # a header; the data is the sparse rest
    header = json.loads(head[8:])
    header["huge"] = {"dtype": "F32", "shape": [1_250_000_000], "data_offsets": [0, 5_000_000_000]}
    raw = json.dumps(header).encode()
    head = struct.pack("<Q", len(raw)) + raw
    web.huge_lfs("ann/big", "model.safetensors", 8 + len(raw) + 5_000_000_000, head)
    web.huge_lfs("ann/big", "blob.bin", 5_000_000_000, b"\x00\x01binary")
    for url in (
        "/ann/big/blob/main/model.safetensors",
        "/ann/big/blob/main/blob.bin",
        "/ann/big/tree/main",
        "/ann/big",
    ):
        start = time.perf_counter()
        r = web.get(url)
        assert r.status_code == 200
        assert time.perf_counter() - start < 2.0, url
    assert "<strong>1.25B</strong> parameters" in web.get("/ann/big/blob/main/model.safetensors").text
    assert "5.0 GB" in web.get("/ann/big/tree/main").text


def test_a_corrupt_safetensors_file_is_described_not_fatal(web):
    web.user("ann")
    web.repo("ann/broken", {})
    web.commit("ann/broken", lfs={"model.safetensors": struct.pack("<Q", 50) + b"{not json"})
    r = web.get("/ann/broken/blob/main/model.safetensors")
    assert r.status_code == 200
    assert "Corrupt safetensors file: its header claims 50 bytes" in r.text


def test_gguf_files_show_metadata_and_tensors(web, tmp_path):
    web.user("ann")
    web.repo("ann/gg", {})
    web.commit("ann/gg", lfs={"tiny.gguf": gguf_bytes(tmp_path)})
    html = web.get("/ann/gg/blob/main/tiny.gguf").text
    assert "general.architecture" in html and "llama" in html
    assert "llama.context_length" in html and ">128<" in html
    assert "[&#34;tok0&#34;, &#34;tok1&#34;" in html and "(40 string)" in html  # the vocabulary summarized
    assert '<td class="mono">blk.0.attn_q.weight</td><td>F16</td><td class="mono">[8, 8]</td>' in html
    assert "<strong>392</strong> parameters in 3 tensors" in html


# --- the header readers -------------------------------------------------------------------------------------


class CountingReader:
    """A ranged reader over bytes that records what was read."""

    def __init__(self, data: bytes) -> None:
        self.data, self.read_bytes = data, 0

    def __call__(self, start: int, end: int) -> bytes:
        self.read_bytes += end - start
        return self.data[start:end]


def test_safetensors_reader_reads_the_header_only_and_checks_it():
    data = safetensors_bytes({"a": ("F32", (1000, 1000))})
    reader = CountingReader(data)
    header = read_safetensors_header(reader, len(data))
    assert header.total_params == 1_000_000 and reader.read_bytes < 200
    with pytest.raises(CheckpointError, match="over the 10 this page reads"):
        read_safetensors_header(CountingReader(data), len(data), cap=10)
    with pytest.raises(CheckpointError, match="shorter than the 8-byte"):
        read_safetensors_header(CountingReader(b"abc"), 3)
    bad = json.dumps({"t": {"dtype": "F32", "shape": [-1]}}).encode()
    with pytest.raises(CheckpointError, match="non-negative integers"):
        read_safetensors_header(CountingReader(struct.pack("<Q", len(bad)) + bad), 8 + len(bad))


def test_gguf_reader_skips_tensor_data_and_bounds_the_header(tmp_path):
    data = gguf_bytes(tmp_path, vocab=2000)
    reader = CountingReader(data)
    header = read_gguf_header(reader, len(data))
    assert header.version == 3
    assert header.metadata["general.architecture"] == "llama"
    tokens = header.metadata["tokenizer.ggml.tokens"]
    assert tokens.count == 2000 and tokens.head[:2] == ("tok0", "tok1")
    assert [t.name for t in header.tensors] == [
        "token_embd.weight",
        "blk.0.attn_q.weight",
        "output_norm.weight",
    ]
    assert header.tensors[0].shape == (8, 2000)  # GGML order: the fastest dimension first
    assert header.header_bytes < len(data)
    with pytest.raises(CheckpointError, match="larger than the 1,000 bytes"):
        read_gguf_header(CountingReader(data), len(data), cap=1000)
    with pytest.raises(CheckpointError, match="GGUF magic"):
        read_gguf_header(CountingReader(b"GGML" + bytes(100)), 104)
    truncated = data[:300]
    with pytest.raises(CheckpointError, match="runs past the end"):
        read_gguf_header(CountingReader(truncated), len(truncated))


def test_format_params():
    assert [format_params(n) for n in (12, 1_620, 64_640, 110_000_000, 1_250_000_000)] == [
        "12",
        "1.62k",
        "64.6k",
        "110M",
        "1.25B",
    ]
