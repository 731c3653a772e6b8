"""What the store refuses at the door: git folders at any depth, control characters and lone surrogates in
paths and cards, oversized cards, trees that could not be written to a disk; and the card of a commit is
parsed before the database write lock is taken."""

from __future__ import annotations

import json
import threading
import time

import pytest

from cove.errors import CardTooLargeError, HubRequestError, InvalidCardError
from cove.store import CommitOp, RepoStore, check_path, check_text
from cove.store import repos as repos_mod


@pytest.fixture
def store(tmp_path):
    st = RepoStore(tmp_path)
    st.create_tables()
    return st


def _add(store, path, data):
    return CommitOp("add", path, store.store_regular(data, path))


@pytest.mark.parametrize(
    "bad",
    [
        "src/.git/config",  # a nested .git with core.fsmonitor ran a command on `git status`
        "a/b/.git/hooks/post-checkout",
        ".GIT/config",
        "x/.Git/HEAD",
        "x/.git./config",  # Windows drops trailing dots and spaces
        "x/.git /config",
        "x/GIT~1/config",  # and knows the 8.3 short name
        ".git",
        "a/.git",
    ],
)
def test_git_folders_are_refused_at_any_depth_in_any_case(bad):
    with pytest.raises(HubRequestError, match=r"\.git"):
        check_path(bad)


@pytest.mark.parametrize(
    "good", [".gitattributes", "a/.gitignore", "docs/.github/x.md", "git/x", "a.git.b/c"]
)
def test_names_that_only_look_like_git_are_fine(good):
    assert check_path(good) == good


@pytest.mark.parametrize(
    "bad", ["a\nb.txt", "a\rb", "tab\there", "bell\x07", "del\x7f", "c1\x85", "s\udc80.txt"]
)
def test_control_characters_and_surrogates_in_paths_are_refused(bad):
    with pytest.raises(HubRequestError):
        check_path(bad)


def test_check_text_allows_line_breaks_only_when_multiline():
    assert check_text("two\nlines\tand tab", "text", multiline=True)
    with pytest.raises(HubRequestError):
        check_text("two\nlines", "text")
    with pytest.raises(HubRequestError, match="surrogate"):
        check_text("x\udc80", "text", multiline=True)


def test_a_commit_with_a_nested_git_folder_leaves_the_repo_unchanged(store):
    with store.session() as s:
        repo = store.create_repo(s, "model", "u/r", author="u")
        head = store.resolve(s, repo, "main")
        with pytest.raises(HubRequestError):
            store.commit(
                s, repo, [_add(store, "src/.git/config", b"[core]\nfsmonitor = x\n")], title="t", author="u"
            )
        assert store.resolve(s, repo, "main") == head


@pytest.fixture(params=["libyaml", "python"])
def yaml_loader(request, monkeypatch):
    """Both YAML loaders: libyaml refuses some escapes itself; pure-Python PyYAML decodes them."""
    monkeypatch.setattr(repos_mod, "_cards", repos_mod._CardCache())  # parsed cards are cached by content
    if request.param == "python":
        import yaml

        monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    return request.param


@pytest.mark.parametrize(
    "yaml_value",
    [
        '"\\udc80"',  # a YAML escape makes a lone surrogate: it broke GET /api/models for everyone
        '"bell\\a"',
        '"nul\\0"',
        '"esc\\e"',
    ],
)
def test_cards_with_text_that_cannot_be_sent_never_reach_the_listing(store, yaml_loader, yaml_value):
    readme = f"---\ntags:\n- ok\n- {yaml_value}\n---\n# card\n".encode()
    with store.session() as s:
        repo = store.create_repo(s, "model", "u/card", author="u")
        head = store.resolve(s, repo, "main")
        try:
            store.commit(s, repo, [_add(store, "README.md", readme)], title="card", author="u")
        except InvalidCardError as exc:  # refused: the repo is unchanged
            assert "front matter" in str(exc)
            assert store.resolve(s, repo, "main") == head
        else:  # only a YAML syntax error gets here (libyaml refuses the escape): kept as a file, no card
            assert yaml_loader == "libyaml" and json.loads(repo.card_json) == {}
        s.refresh(repo)
        json.dumps(json.loads(repo.card_json), ensure_ascii=False).encode("utf-8")  # always sendable


def test_surrogate_in_a_card_key_is_refused(yaml_loader):
    from cove.store import card_from_readme

    with pytest.raises(HubRequestError):
        card_from_readme('---\n"k\\udc80": 1\n---\n')
    with pytest.raises(InvalidCardError, match="control character"):
        card_from_readme('---\n"k\\x01": 1\n---\n')


def test_multiline_card_text_is_kept(store):
    from cove.store import card_from_readme

    card = card_from_readme("---\ndescription: |\n  line one\n  line two\n---\n")
    assert card["description"].startswith("line one\nline two")


def test_card_yaml_over_the_cap_is_refused_and_a_large_readme_body_is_fine(store):
    from cove.store.cards import MAX_CARD_YAML_BYTES

    big_yaml = "---\n" + "".join(f"k{i}: {'v' * 40}\n" for i in range(MAX_CARD_YAML_BYTES // 40)) + "---\n"
    # a README of 5 MB whose front matter is small: parsed, only its head is read
    body = ("word " * 1_000_000).encode()
    with store.session() as s:
        repo = store.create_repo(s, "model", "u/big", author="u")
        with pytest.raises(CardTooLargeError, match="cap"):
            store.commit(s, repo, [_add(store, "README.md", big_yaml.encode())], title="big", author="u")
        # an opening '---' that never closes within the cap, in a README larger than the cap
        unclosed = b"---\nlicense: mit\n" + body
        with pytest.raises(CardTooLargeError, match="does not end"):
            store.commit(s, repo, [_add(store, "README.md", unclosed)], title="open", author="u")
        start = time.monotonic()
        readme = b"---\nlicense: mit\ntags: [a, b]\n---\n" + body
        store.commit(s, repo, [_add(store, "README.md", readme)], title="ok", author="u")
        assert json.loads(repo.card_json) == {"license": "mit", "tags": ["a", "b"]}
        assert time.monotonic() - start < 30  # generous: the point is that the body is not parsed


def test_the_largest_accepted_card_parses_quickly():
    """The size cap is what bounds a card's parse time (yaml cannot be interrupted midway)."""
    from cove.store import card_from_readme
    from cove.store.cards import MAX_CARD_YAML_BYTES

    lines, size = [], 0
    while size < MAX_CARD_YAML_BYTES - 100:
        line = f"- item {len(lines)}\n"
        lines.append(line)
        size += len(line)
    start = time.process_time()
    card = card_from_readme("---\nlist:\n" + "".join(lines) + "---\n")
    assert len(card["list"]) == len(lines)
    assert time.process_time() - start < 10  # about 0.3 s with libyaml; 10 s only fails on a broken path


def test_a_file_cannot_sit_where_a_folder_is_or_under_a_file(store):
    with store.session() as s:
        repo = store.create_repo(s, "model", "u/tree", author="u")
        store.commit(s, repo, [_add(store, "f", b"file"), _add(store, "d/x", b"x")], title="t", author="u")
        head = store.resolve(s, repo, "main")
        for ops in (
            [_add(store, "f/g", b"under a file")],
            [_add(store, "d", b"over a folder")],
            [CommitOp("copy", "d", src_path="f")],  # copyFile onto a folder path
            [CommitOp("copy", "f/h", src_path="d/x")],  # copyFile under a file
            [_add(store, "n", b"1"), _add(store, "n/m", b"2")],  # both in one commit
        ):
            with pytest.raises(HubRequestError, match="Cannot write file"):
                store.commit(s, repo, ops, title="bad", author="u")
            assert store.resolve(s, repo, "main") == head
        with pytest.raises(HubRequestError, match="srcPath"):
            store.commit(s, repo, [CommitOp("copy", "c")], title="bad", author="u")
        # replacing a file by itself, and deleting a file then writing a folder there, are fine
        store.commit(
            s, repo, [CommitOp("delete", "f"), _add(store, "f/g", b"now a folder")], title="ok", author="u"
        )
        assert "f/g" in store.tree(s, store.resolve(s, repo, "main"))


def test_the_card_is_parsed_before_the_write_lock_is_taken(store, monkeypatch):
    """A slow card parse must not hold SQLite's write lock: another writer gets through meanwhile."""
    parsing, other_done = threading.Event(), threading.Event()
    real = repos_mod.card_from_readme_bounded
    overlapped: list[bool] = []

    def slow_parse(text, **kwargs):  # type: ignore[no-untyped-def]
        parsing.set()
        # before the fix the other writer waited on the write lock held here, so this timed out
        overlapped.append(other_done.wait(timeout=20))
        return real(text, **kwargs)

    monkeypatch.setattr(repos_mod, "card_from_readme_bounded", slow_parse)
    errors: list[BaseException] = []

    def committer() -> None:
        try:
            with store.session() as s:
                repo = store.get_repo(s, "model", "u/slow")
                store.commit(
                    s, repo, [_add(store, "README.md", b"---\nlicense: mit\n---\n")], title="c", author="u"
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with store.session() as s:
        store.create_repo(s, "model", "u/slow", author="u")
    thread = threading.Thread(target=committer)
    thread.start()
    assert parsing.wait(timeout=20)
    with store.session() as s:
        store.create_repo(s, "model", "u/other", author="u")  # a write while the card is being parsed
    other_done.set()
    thread.join(timeout=60)
    assert not errors and not thread.is_alive()
    assert overlapped == [True]
    with store.session() as s:
        assert json.loads(store.get_repo(s, "model", "u/slow").card_json) == {"license": "mit"}


def test_a_large_card_is_parsed_in_a_child_process_with_a_time_limit(tmp_path, monkeypatch):
    """A card over 64 KB is parsed out of process (no GIL shared with the server) and stopped past the
    store's card_timeout; a commit that brings it then leaves the repo unchanged."""
    from cove.store import cards

    monkeypatch.setattr(repos_mod, "_cards", repos_mod._CardCache())
    yaml_text = "".join(f"key{i}: value {i}\n" for i in range(8000))  # about 130 KB
    assert len(yaml_text) > cards.IN_PROCESS_MAX_CHARS
    spawned: list[object] = []
    real_run = cards.subprocess.run
    monkeypatch.setattr(cards.subprocess, "run", lambda *a, **k: spawned.append(a) or real_run(*a, **k))
    assert cards.parse_yaml_bounded(yaml_text) == cards.parse_yaml(yaml_text)
    assert len(spawned) == 1
    with pytest.raises(InvalidCardError, match="control character"):  # errors come back with their kind
        cards.parse_yaml_bounded(yaml_text + 'bad: "\\x01"\n')
    slow = RepoStore(tmp_path, card_timeout=0.01)  # less than the child takes to start
    slow.create_tables()
    with slow.session() as s:
        repo = slow.create_repo(s, "model", "u/slow", author="u")
        head = slow.resolve(s, repo, "main")
        readme = f"---\n{yaml_text}---\n# card\n".encode()
        with pytest.raises(CardTooLargeError, match="took longer"):
            slow.commit(s, repo, [_add(slow, "README.md", readme)], title="t", author="u")
        assert slow.resolve(s, repo, "main") == head
