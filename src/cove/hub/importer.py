"""Bring models and datasets already on this machine into a hub: ``cove import PATH``.

PATH is one of:

- a huggingface_hub cache (``~/.cache/huggingface/hub``: ``models--org--name/{blobs,refs,snapshots}``,
  ``datasets--...``, ``spaces--...``), or one repo folder of it: every repo and every revision in it. Each
  snapshot becomes one commit holding exactly its files; the cache's commit hash is kept as the tag
  ``hf-<hash>`` and in the commit message, and every ref the cache recorded (``refs/main``, ``refs/v1.0``,
  ``refs/refs/pr/1``) becomes a branch of that name (``pr/1`` for pull requests) at that commit. Blobs keep
  their kind: a file the origin stored in LFS (its blob is named by its sha256) is stored in LFS, a regular
  file (named by its git sha1) as a regular file, so the hub serves the origin's ETags. Every blob is
  checked against its name while it is copied; a revision with a missing, damaged or partly downloaded
  file is skipped and reported, and nothing of it is committed. Importing again adds what is new.
- a model or dataset folder (the HF layout; a ``huggingface_hub`` ``local_dir`` download too, whose
  recorded commit is kept the same way): one commit of its files to ``--repo-id``.
- a single ``.safetensors`` or ``.gguf`` file: a repo holding that file.

The target is the embedded hub (the data dir's store, written directly, as push_to_hub does with no
endpoint) or a running hub over HTTP (``endpoint``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import quote

from cove.errors import BlobMismatchError, HubRequestError, MissingFileError, RepoNotFoundError

CACHE_PREFIXES = {"models": "model", "datasets": "dataset", "spaces": "space"}
TAG_PREFIX = "hf-"  # the tag keeping a cache commit's hash: hf-<40 hex>
DEFAULT_NAMESPACE = "hf"
REGULAR_MAX_BYTES = 10 * 1024**2  # files with no known origin above this go to LFS (as push_to_hub does)
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20
_CLOCK_SLACK_S = 2.0

# the organisations the Hugging Face Hub moved its early un-namespaced repos to (it redirects the old
# names): a cache's models--gpt2 is imported as openai-community/gpt2
LEGACY_NAMESPACES: tuple[tuple[str, str, str], ...] = (
    (
        "model",
        r"gpt2(-medium|-large|-xl)?|openai-gpt|roberta-(base|large)-openai-detector",
        "openai-community",
    ),
    ("model", r"distil(bert|gpt2|roberta)(-.*)?", "distilbert"),
    ("model", r"bert-.*", "google-bert"),
    ("model", r"(roberta|xlm-roberta|xlm-mlm|xlm-clm)-.*", "FacebookAI"),
    ("model", r"t5-(small|base|large|3b|11b)", "google-t5"),
    ("model", r"albert-.*", "albert"),
    ("model", r"xlnet-.*", "xlnet"),
    ("dataset", r"glue", "nyu-mll"),
    ("dataset", r"squad(_v2)?", "rajpurkar"),
    ("dataset", r"imdb|sst2", "stanfordnlp"),
    ("dataset", r"conll2003", "eriktks"),
    ("dataset", r"wikitext", "Salesforce"),
    ("dataset", r"cnn_dailymail", "abisee"),
    ("dataset", r"ag_news", "fancyzhx"),
    ("dataset", r"emotion", "dair-ai"),
)

# what makes a folder a model: its config, weights or tokenizer
_MODEL_MARKERS = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "modules.json",
    "model_index.json",
)
_WEIGHT_SUFFIXES = (".safetensors", ".gguf", ".bin", ".pt", ".pth", ".onnx", ".h5", ".msgpack", ".ckpt")
_DATA_SUFFIXES = (
    ".csv",
    ".tsv",
    ".json",
    ".jsonl",
    ".parquet",
    ".arrow",
    ".txt",
    ".zip",
    ".gz",
    ".zst",
    ".tar",
)

Log = Callable[[str], None]


# --- results ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportedRevision:
    repo_type: str
    repo_id: str
    source: str  # the cache commit hash, or the imported path
    refs: tuple[str, ...]  # the branches it is on in the hub
    commit: str  # the hub commit
    files: int
    size: int
    missing: tuple[str, ...] = ()  # files of the revision the cache never downloaded (allow_patterns)


@dataclass(frozen=True)
class SkippedRevision:
    repo_type: str
    repo_id: str
    source: str
    reason: str


@dataclass
class ImportReport:
    imported: list[ImportedRevision] = field(default_factory=list)
    unchanged: list[ImportedRevision] = field(default_factory=list)  # already in the hub
    skipped: list[SkippedRevision] = field(default_factory=list)

    def summary(self) -> str:
        repos = {(r.repo_type, r.repo_id) for r in [*self.imported, *self.unchanged]}
        return (
            f"{len(self.imported)} revision(s) imported, {len(self.unchanged)} already there, "
            f"{len(self.skipped)} skipped, in {len(repos)} repo(s)"
        )


class RevisionProblem(Exception):
    """A revision that cannot be imported whole; it is skipped with this reason."""


# --- what PATH is -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceFile:
    path_in_repo: str
    path: Path  # the bytes (a cache blob, or the file itself)
    size: int
    etag: str | None  # the cache blob's name: sha256 for LFS files, git sha1 for regular ones


def is_cache_repo(folder: Path) -> bool:
    prefix, sep, rest = folder.name.partition("--")
    return bool(sep and rest) and prefix in CACHE_PREFIXES and (folder / "snapshots").is_dir()


def is_cache(folder: Path) -> bool:
    try:
        return any(child.is_dir() and is_cache_repo(child) for child in folder.iterdir())
    except OSError:
        return False


def cache_repo_id(folder_name: str, namespace: str = DEFAULT_NAMESPACE) -> tuple[str, str]:
    """(repo type, repo id) of a cache folder name: models--org--name -> ("model", "org/name"); a name
    without an organisation gets the one the Hugging Face Hub moved it to, else ``namespace``."""
    from cove.store import split_repo_id

    prefix, _, rest = folder_name.partition("--")
    repo_type = CACHE_PREFIXES[prefix]
    parts = rest.split("--")
    if len(parts) == 1:
        repo_id = f"{legacy_namespace(repo_type, parts[0]) or namespace}/{parts[0]}"
    elif len(parts) == 2:
        repo_id = "/".join(parts)
    else:
        raise HubRequestError(
            f"{folder_name}: the repo name is ambiguous (more than one '--' after the organisation)."
        )
    split_repo_id(repo_id)  # a name the hub accepts
    return repo_type, repo_id


def legacy_namespace(repo_type: str, name: str) -> str | None:
    for kind, pattern, namespace in LEGACY_NAMESPACES:
        if kind == repo_type and re.fullmatch(pattern, name):
            return namespace
    return None


def _walk(folder: Path) -> Iterator[Path]:
    """Files under folder, without .git/ and huggingface_hub's .cache/huggingface/ bookkeeping."""
    for root, dirs, names in os.walk(folder):
        here = Path(root)
        rel = here.relative_to(folder).as_posix()
        dirs[:] = sorted(
            d for d in dirs if d != ".git" and not (d == ".cache" and (here / d / "huggingface").is_dir())
        )
        for name in sorted(names):
            if rel == "." and name == ".git":
                continue
            yield here / name


def folder_files(folder: Path) -> list[SourceFile]:
    from cove.store import check_path

    files = []
    for path in _walk(folder):
        rel = path.relative_to(folder).as_posix()
        check_path(rel)
        if not path.is_file():
            raise HubRequestError(f"{path} is not a readable file (a broken link?): fix or remove it.")
        files.append(SourceFile(rel, path, path.stat().st_size, None))
    return files


def check_folder(folder: Path, repo_type: str, files: list[SourceFile]) -> None:
    names = {f.path_in_repo for f in files}
    if repo_type == "model":
        looks = any(n in names for n in _MODEL_MARKERS) or any(n.endswith(_WEIGHT_SUFFIXES) for n in names)
        what = "config.json, weights (.safetensors, .gguf, .bin) or tokenizer files"
    elif repo_type == "dataset":
        looks = "README.md" in names or any(n.endswith(_DATA_SUFFIXES) for n in names)
        what = "data files (.csv, .json, .jsonl, .parquet, .arrow, .txt) or a README.md"
    else:
        looks, what = bool(names), "files"
    if not looks:
        raise HubRequestError(
            f"{folder} is neither a {repo_type} folder (no {what}), a .safetensors/.gguf file nor a "
            "huggingface_hub cache (models--org--name folders with blobs/refs/snapshots): nothing to import."
        )


def check_single_file(path: Path) -> None:
    """A .safetensors or .gguf file whose header says it is one."""
    with path.open("rb") as f:
        head = f.read(8)
        if path.suffix == ".gguf":
            if head[:4] != b"GGUF":
                raise HubRequestError(f"{path} is not a GGUF file (it does not start with the GGUF magic).")
            return
        if len(head) < 8:
            raise HubRequestError(
                f"{path} is not a safetensors file (shorter than its 8-byte header length)."
            )
        length = int.from_bytes(head, "little")
        if length > min(path.stat().st_size - 8, 100 * 1024**2):
            raise HubRequestError(f"{path} is not a safetensors file (its header length is {length} bytes).")
        try:
            header = json.loads(f.read(length))
        except ValueError as exc:
            raise HubRequestError(
                f"{path} is not a safetensors file (its JSON header does not parse)."
            ) from exc
    if not isinstance(header, dict):
        raise HubRequestError(f"{path} is not a safetensors file (its header is not a JSON object).")


def local_dir_commit(folder: Path) -> str | None:
    """The commit a huggingface_hub local_dir download recorded (.cache/huggingface/download/*.metadata,
    first line), when all its files agree on one."""
    meta = folder / ".cache" / "huggingface" / "download"
    commits = set()
    for path in meta.rglob("*.metadata") if meta.is_dir() else []:
        try:
            first = path.read_text(encoding="utf-8").splitlines()[0].strip()
        except (OSError, IndexError, UnicodeDecodeError):
            return None
        commits.add(first)
    if len(commits) == 1 and _HEX40.match(next(iter(commits))):
        return commits.pop()
    return None


# --- the cache --------------------------------------------------------------------------------------


@dataclass
class CacheRevision:
    commit: str
    folder: Path
    refs: list[str] = field(default_factory=list)  # the cache's ref names pointing at it
    files: list[SourceFile] = field(default_factory=list)
    problem: str | None = None
    activity: float = 0.0  # the newest entry's mtime: when this snapshot was last written to
    listing: dict[str, str] | None = None  # path -> blob name, from huggingface_hub's trees/<commit>.json
    missing: list[str] = field(default_factory=list)  # listed files the snapshot does not hold


def read_tree_listing(repo_folder: Path, commit: str) -> dict[str, str] | None:
    """The revision's full file list as huggingface_hub (>= 1.x) caches it in trees/<commit>.json:
    path -> the blob name the file has in the cache (its LFS sha256, else its git sha1)."""
    path = repo_folder / "trees" / f"{commit}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format_version") != 1:
            return None
        return {name: str(info.get("lfs_sha256") or info["blob_id"]) for name, info in data["files"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # absent (older huggingface_hub) or unreadable: the snapshot is all there is


def read_refs(repo_folder: Path) -> dict[str, str]:
    """refs/<name> -> commit; names may hold slashes (refs/refs/pr/1 is the ref "refs/pr/1")."""
    refs_dir = repo_folder / "refs"
    out: dict[str, str] = {}
    for path in sorted(refs_dir.rglob("*")) if refs_dir.is_dir() else []:
        if path.is_file():
            out[path.relative_to(refs_dir).as_posix()] = path.read_text(encoding="utf-8").strip()
    return out


def branch_name(ref: str) -> str | None:
    """The hub branch for a cache ref: the same name, pr/N for refs/pr/N; None when the hub refuses it."""
    from cove.store import check_ref_name

    name = "pr/" + ref[len("refs/pr/") :] if ref.startswith("refs/pr/") else ref
    try:
        return check_ref_name(name)
    except HubRequestError:
        return None


def scan_revision(repo_folder: Path, snapshot: Path) -> CacheRevision:
    """A snapshot's files (each link followed to its blob), or the reason it cannot be imported whole."""
    from cove.store import check_path

    revision = CacheRevision(snapshot.name, snapshot)
    blobs = (repo_folder / "blobs").resolve()
    latest = snapshot.lstat().st_mtime
    for root, dirs, names in os.walk(snapshot):
        here = Path(root)
        for name in [*dirs, *names]:
            entry = here / name
            rel = entry.relative_to(snapshot).as_posix()
            latest = max(latest, entry.lstat().st_mtime)
            if name in dirs:
                if entry.is_symlink():
                    revision.problem = f"{rel} is a link to a folder, which huggingface_hub never writes"
                    return revision
                continue
            try:
                check_path(rel)
            except HubRequestError as exc:
                revision.problem = str(exc)
                return revision
            if entry.is_symlink():
                target = (entry.parent / os.readlink(entry)).resolve()
                if target.parent != blobs:
                    revision.problem = f"{rel} links outside the repo's blobs/ folder ({target})"
                    return revision
                if not target.is_file():
                    revision.problem = f"{rel} links to blobs/{target.name}, which is missing"
                    return revision
                revision.files.append(SourceFile(rel, target, target.stat().st_size, target.name))
            elif entry.is_file():  # filesystems without links hold copies
                revision.files.append(SourceFile(rel, entry, entry.stat().st_size, None))
            else:
                revision.problem = f"{rel} is not a file"
                return revision
    revision.activity = latest
    if not revision.files:
        revision.problem = "the snapshot holds no files"
    return revision


def scan_cache_repo(repo_folder: Path) -> list[CacheRevision]:
    """Every snapshot of one cache repo, oldest first, with its refs and any problem found."""
    refs = read_refs(repo_folder)
    revisions = []
    for snapshot in sorted((repo_folder / "snapshots").iterdir()):
        if not snapshot.is_dir():
            continue
        revision = scan_revision(repo_folder, snapshot)
        if not _HEX40.match(snapshot.name):
            revision.problem = f"snapshots/{snapshot.name} is not named by a commit hash"
        revision.refs = sorted(name for name, commit in refs.items() if commit == snapshot.name)
        revisions.append(revision)
    for revision in revisions:
        revision.listing = read_tree_listing(repo_folder, revision.commit)
        if revision.listing is None or revision.problem:
            continue
        present = {f.path_in_repo: f for f in revision.files}
        for path, blob in present.items():
            expected = revision.listing.get(path)
            if expected is not None and blob.etag is not None and blob.etag != expected:
                revision.problem = (
                    f"{path} links to blobs/{blob.etag}, but the revision's file list says {expected}"
                )
        revision.missing = sorted(set(revision.listing) - set(present))
    # a partial blob (<etag>.incomplete, or <etag>.<id>.incomplete) belongs to the download that was
    # writing it: the revision whose file list names that blob among the files it lacks, else (no file
    # lists) the snapshot written to most recently before the partial file was
    for partial in sorted((repo_folder / "blobs").glob("*.incomplete")):
        etag = partial.name.split(".")[0]
        victims = [
            r
            for r in revisions
            if r.listing is not None and any(r.listing[path] == etag for path in r.missing)
        ]
        if not victims:
            when = partial.stat().st_mtime + _CLOCK_SLACK_S
            candidates = [r for r in revisions if r.activity <= when and r.listing is None]
            victims = [max(candidates, key=lambda r: r.activity)] if candidates else []
        for victim in victims:
            victim.problem = victim.problem or (
                f"blobs/{partial.name} is a partly downloaded file of this revision (the download was "
                "interrupted): finish it (e.g. huggingface_hub.snapshot_download) and import again"
            )
    revisions.sort(key=lambda r: (r.activity, r.commit))
    return revisions


# --- where the files go -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Staged:
    """A file ready to commit: its bytes are in the target's store (local) or checked and waiting (remote)."""

    path_in_repo: str
    source: Path
    size: int
    sha256: str | None
    oid: str | None  # git sha1 (regular files)
    lfs: bool


class Target(Protocol):
    def ensure_repo(self, repo_type: str, repo_id: str, private: bool) -> None: ...
    def refs(self, repo_type: str, repo_id: str) -> tuple[dict[str, str], dict[str, str]]: ...
    def files(self, repo_type: str, repo_id: str, branch: str) -> set[str]: ...
    def put(self, file: SourceFile, progress: Any) -> Staged: ...
    def commit(
        self,
        repo_type: str,
        repo_id: str,
        branch: str,
        staged: list[Staged],
        deletions: list[str],
        title: str,
        message: str,
    ) -> str: ...
    def create_ref(
        self, repo_type: str, repo_id: str, kind: str, name: str, commit: str, message: str
    ) -> None: ...
    def delete_branch(self, repo_type: str, repo_id: str, name: str) -> None: ...
    def close(self) -> None: ...


class _Reader:
    """A file read for storing that also feeds hashes and the progress bar."""

    def __init__(self, f: BinaryIO, progress: Any, sha1: Any = None) -> None:
        self.f, self.progress, self.sha1 = f, progress, sha1

    def read(self, n: int = -1) -> bytes:
        chunk = self.f.read(n)
        if self.sha1 is not None:
            self.sha1.update(chunk)
        self.progress.update(len(chunk))
        return chunk


def _is_lfs(file: SourceFile) -> bool:
    if file.etag is not None and (_HEX64.match(file.etag) or _HEX40.match(file.etag)):
        return bool(_HEX64.match(file.etag))  # the origin's choice
    return file.size > REGULAR_MAX_BYTES


def _damaged(file: SourceFile, got: str) -> RevisionProblem:
    return RevisionProblem(
        f"{file.path_in_repo}: blobs/{file.etag} holds bytes that hash to {got}, not to its name (a damaged "
        "or partly written file): download it again"
    )


def _git_sha1(size: int) -> Any:
    digest = hashlib.sha1()
    digest.update(b"blob %d\0" % size)
    return digest


class LocalTarget:
    """The embedded hub: the data dir's store, written directly (no server needed)."""

    def __init__(self, root: Path) -> None:
        from cove.store import RepoStore

        self.store = RepoStore(root)
        self.store.create_tables()
        self.author = os.environ.get("USER") or "cove"

    def close(self) -> None:
        self.store.engine.dispose()

    def _repo(self, s: Any, repo_type: str, repo_id: str) -> Any:
        return self.store.get_repo(s, repo_type, repo_id)

    def ensure_repo(self, repo_type: str, repo_id: str, private: bool) -> None:
        with self.store.session() as s:
            try:
                self._repo(s, repo_type, repo_id)
            except RepoNotFoundError:
                self.store.create_repo(s, repo_type, repo_id, private=private, author=self.author)

    def refs(self, repo_type: str, repo_id: str) -> tuple[dict[str, str], dict[str, str]]:
        with self.store.session() as s:
            rows = self.store.refs(s, self._repo(s, repo_type, repo_id))
        branches = {r.name: r.commit_id for r in rows if r.kind == "branch"}
        return branches, {r.name: r.commit_id for r in rows if r.kind == "tag"}

    def files(self, repo_type: str, repo_id: str, branch: str) -> set[str]:
        with self.store.session() as s:
            repo = self._repo(s, repo_type, repo_id)
            return set(self.store.tree(s, self.store.resolve(s, repo, branch)))

    def put(self, file: SourceFile, progress: Any) -> Staged:
        from cove.store import git_blob_oid

        blobs = self.store.blobs
        if _is_lfs(file):
            expected = file.etag if file.etag and _HEX64.match(file.etag) else None
            if expected and blobs.exists(expected) and blobs.size(expected) == file.size:
                progress.update(file.size)  # the store verified these bytes when it took them
                return Staged(file.path_in_repo, file.path, file.size, expected, None, True)
            with file.path.open("rb") as f:
                try:
                    sha, size = blobs.put_stream(_Reader(f, progress), expected_sha256=expected)  # type: ignore[arg-type]
                except BlobMismatchError as exc:
                    raise _damaged(file, "another sha256") from exc
            return Staged(file.path_in_repo, file.path, size, sha, None, True)
        data = file.path.read_bytes()
        progress.update(len(data))
        oid = git_blob_oid(data)
        if file.etag and _HEX40.match(file.etag) and oid != file.etag:
            raise _damaged(file, f"git sha1 {oid}")
        sha = blobs.put_bytes(data)
        return Staged(file.path_in_repo, file.path, len(data), sha, oid, False)

    def commit(
        self,
        repo_type: str,
        repo_id: str,
        branch: str,
        staged: list[Staged],
        deletions: list[str],
        title: str,
        message: str,
    ) -> str:
        from cove.store import CommitOp, FileEntry

        with self.store.session() as s:
            repo = self._repo(s, repo_type, repo_id)
            ops = [CommitOp("delete", path) for path in deletions]
            for f in staged:
                assert f.sha256 is not None
                if f.lfs:
                    self.store.link_lfs(s, repo.id, f.sha256)
                    entry = self.store.lfs_entry(f.path_in_repo, f.sha256, f.size)
                else:
                    assert f.oid is not None
                    entry = FileEntry(path=f.path_in_repo, oid=f.oid, size=f.size, sha256=f.sha256, lfs=False)
                ops.append(CommitOp("add", f.path_in_repo, entry))
            return self.store.commit(
                s, repo, ops, title=title, message=message, author=self.author, branch=branch
            )

    def create_ref(
        self, repo_type: str, repo_id: str, kind: str, name: str, commit: str, message: str
    ) -> None:
        with self.store.session() as s:
            self.store.create_ref(s, self._repo(s, repo_type, repo_id), kind, name, commit, message=message)

    def delete_branch(self, repo_type: str, repo_id: str, name: str) -> None:
        with self.store.session() as s:
            self.store.delete_ref(s, self._repo(s, repo_type, repo_id), "branch", name)


class RemoteTarget:
    """A running hub, over the Hugging Face Hub HTTP API (Cove's server, or another)."""

    def __init__(self, endpoint: str, token: str | None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.token = token

    def close(self) -> None:
        pass

    def _api(self, repo_type: str, repo_id: str) -> str:
        return f"{self.endpoint}/api/{repo_type}s/{repo_id}"

    def _request(self, method: str, url: str, what: str, **kwargs: Any) -> Any:
        from cove.hub import client

        with client._client() as http:
            response = http.request(method, url, headers=client._headers(self.token), **kwargs)
        client._raise_for_status(response, what)
        return response

    def ensure_repo(self, repo_type: str, repo_id: str, private: bool) -> None:
        from cove.hub import client

        client.create_repo(
            repo_id,
            token=self.token,
            repo_type=repo_type,
            private=private,
            exist_ok=True,
            endpoint=self.endpoint,
        )

    def refs(self, repo_type: str, repo_id: str) -> tuple[dict[str, str], dict[str, str]]:
        body = self._request("GET", f"{self._api(repo_type, repo_id)}/refs", f"refs of {repo_id}").json()
        branches = {b["name"]: b["targetCommit"] for b in body.get("branches", [])}
        return branches, {t["name"]: t["targetCommit"] for t in body.get("tags", [])}

    def files(self, repo_type: str, repo_id: str, branch: str) -> set[str]:
        from cove.hub import client

        info = client.repo_info(
            repo_id, revision=branch, repo_type=repo_type, token=self.token, endpoint=self.endpoint
        )
        return {s["rfilename"] for s in info.get("siblings", [])}

    def put(self, file: SourceFile, progress: Any) -> Staged:
        """Check the bytes against the blob's name now; they are uploaded with the commit."""
        lfs = bool(file.etag and _HEX64.match(file.etag))
        sha256, sha1 = hashlib.sha256(), _git_sha1(file.size)
        with file.path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                sha256.update(chunk)
                sha1.update(chunk)
                progress.update(len(chunk))
        if file.etag and _HEX64.match(file.etag) and sha256.hexdigest() != file.etag:
            raise _damaged(file, f"sha256 {sha256.hexdigest()}")
        if file.etag and _HEX40.match(file.etag) and sha1.hexdigest() != file.etag:
            raise _damaged(file, f"git sha1 {sha1.hexdigest()}")
        return Staged(file.path_in_repo, file.path, file.size, sha256.hexdigest(), sha1.hexdigest(), lfs)

    def commit(
        self,
        repo_type: str,
        repo_id: str,
        branch: str,
        staged: list[Staged],
        deletions: list[str],
        title: str,
        message: str,
    ) -> str:
        """One NDJSON commit of adds and deletions (the hub decides regular or LFS per file in preupload)."""
        from cove.hub import client

        api, rev = self._api(repo_type, repo_id), quote(branch, safe="")
        headers = client._headers(self.token)
        with client._client(timeout=600.0) as http:
            modes: dict[str, str] = {}
            for i in range(0, len(staged), 256):
                payload = {
                    "files": [
                        {
                            "path": f.path_in_repo,
                            "size": f.size,
                            "sample": base64.b64encode(client._head(f.source)).decode(),
                        }
                        for f in staged[i : i + 256]
                    ]
                }
                r = http.post(f"{api}/preupload/{rev}", json=payload, headers=headers)
                client._raise_for_status(r, f"preupload to {repo_id}")
                modes.update({f["path"]: f["uploadMode"] for f in r.json()["files"]})
            lines: list[dict[str, Any]] = [
                {"key": "header", "value": {"summary": title, "description": message}}
            ]
            lfs = [
                (f.path_in_repo, f.source, str(f.sha256))
                for f in staged
                if modes.get(f.path_in_repo) == "lfs" and f.size
            ]
            for f in staged:
                if modes.get(f.path_in_repo) == "lfs" and f.size:
                    value = {"path": f.path_in_repo, "algo": "sha256", "oid": f.sha256, "size": f.size}
                    lines.append({"key": "lfsFile", "value": value})
                else:
                    content = base64.b64encode(f.source.read_bytes()).decode()
                    lines.append(
                        {
                            "key": "file",
                            "value": {"path": f.path_in_repo, "encoding": "base64", "content": content},
                        }
                    )
            lines += [{"key": "deletedFile", "value": {"path": path}} for path in deletions]
            if lfs:
                sizes = {f.path_in_repo: f.size for f in staged}
                client._upload_lfs(http, self.endpoint, repo_type, repo_id, branch, headers, lfs, sizes)
            body = "\n".join(json.dumps(line) for line in lines).encode()
            r = http.post(
                f"{api}/commit/{rev}",
                content=body,
                headers={**headers, "Content-Type": "application/x-ndjson"},
            )
            client._raise_for_status(r, f"commit to {repo_id}")
            return str(r.json()["commitOid"])

    def create_ref(
        self, repo_type: str, repo_id: str, kind: str, name: str, commit: str, message: str
    ) -> None:
        api = self._api(repo_type, repo_id)
        if kind == "branch":
            self._request(
                "POST", f"{api}/branch/{quote(name)}", f"branch {name}", json={"startingPoint": commit}
            )
        else:
            body = {"tag": name, "message": message}
            self._request("POST", f"{api}/tag/{quote(commit, safe='')}", f"tag {name}", json=body)

    def delete_branch(self, repo_type: str, repo_id: str, name: str) -> None:
        self._request("DELETE", f"{self._api(repo_type, repo_id)}/branch/{quote(name)}", f"branch {name}")


# --- importing --------------------------------------------------------------------------------------


class _Importer:
    def __init__(self, target: Target, *, private: bool, log: Log, progress: bool) -> None:
        self.target = target
        self.private = private
        self.log = log
        self.progress = progress
        self.report = ImportReport()

    def _bar(self, total: int, desc: str) -> Any:
        from tqdm.auto import tqdm

        disable = os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS", "").upper() in ("1", "TRUE") or None
        return tqdm(
            total=total, unit="B", unit_scale=True, desc=desc, disable=True if not self.progress else disable
        )

    def _stage(self, files: list[SourceFile], desc: str) -> list[Staged]:
        with self._bar(sum(f.size for f in files), desc) as bar:
            return [self.target.put(f, bar) for f in files]

    def _commit_tree(
        self,
        repo_type: str,
        repo_id: str,
        branch: str,
        staged: list[Staged],
        title: str,
        message: str,
        *,
        replace: bool,
    ) -> str:
        keep = {f.path_in_repo for f in staged} | {".gitattributes"}
        current = self.target.files(repo_type, repo_id, branch) if replace else set()
        deletions = sorted(current - keep)
        return self.target.commit(repo_type, repo_id, branch, staged, deletions, title, message)

    # -- a cache ---------------------------------------------------------------------------------------

    def cache_repo(
        self, folder: Path, namespace: str, only: str | None, repo_type_filter: str | None
    ) -> None:
        try:
            repo_type, repo_id = cache_repo_id(folder.name, namespace)
        except HubRequestError as exc:
            self.report.skipped.append(SkippedRevision("?", folder.name, folder.name, str(exc)))
            self.log(f"skipped {folder.name}: {exc}")
            return
        if (only and only != repo_id) or (repo_type_filter and repo_type_filter != repo_type):
            return
        revisions = scan_cache_repo(folder)
        refs = read_refs(folder)
        snapshots = {r.commit for r in revisions}
        for ref, commit in sorted(refs.items()):
            if commit not in snapshots:
                reason = f"ref {ref!r} points at {commit}, which has no snapshot folder (no file of it was downloaded)"
                self.report.skipped.append(SkippedRevision(repo_type, repo_id, commit, reason))
                self.log(f"skipped {repo_type} {repo_id}@{commit[:12]}: {reason}")
        for revision in revisions:
            if revision.problem:
                self._skip(repo_type, repo_id, revision.commit, revision.problem)
        good = [r for r in revisions if not r.problem]
        if not good:
            return
        self.log(f"{repo_type} {repo_id} ({folder.name}): {len(good)} revision(s)")
        self.target.ensure_repo(repo_type, repo_id, self.private)
        for revision in good:
            try:
                self._cache_revision(repo_type, repo_id, revision)
            except RevisionProblem as exc:
                self._skip(repo_type, repo_id, revision.commit, str(exc))

    def _skip(self, repo_type: str, repo_id: str, source: str, reason: str) -> None:
        self.report.skipped.append(SkippedRevision(repo_type, repo_id, source, reason))
        self.log(f"skipped {repo_type} {repo_id}@{source[:12]}: {reason}")

    def _cache_revision(self, repo_type: str, repo_id: str, revision: CacheRevision) -> None:
        branches, tags = self.target.refs(repo_type, repo_id)
        tag = TAG_PREFIX + revision.commit
        names: list[str] = []
        for ref in revision.refs:
            name = branch_name(ref)
            if name is None:
                self.log(
                    f"{repo_id}: ref {ref!r} is not a branch name the hub takes; it is kept in the commit message"
                )
            elif name not in names:
                names.append(name)
        size = sum(f.size for f in revision.files)
        if tag in tags:  # imported before: only the branches it lacks
            for name in names:
                if name not in branches:
                    self.target.create_ref(repo_type, repo_id, "branch", name, tags[tag], "")
            done = ImportedRevision(
                repo_type, repo_id, revision.commit, tuple(names), tags[tag], len(revision.files), size
            )
            self.report.unchanged.append(done)
            self.log(f"  {revision.commit[:12]} already imported ({', '.join(names) or tag})")
            return
        staged = self._stage(revision.files, f"{repo_id}@{revision.commit[:8]}")
        title = f"Import {repo_id} at {revision.commit[:12]} from a huggingface_hub cache"
        message = (
            f"huggingface_hub commit: {revision.commit}\n"
            f"refs in the cache: {', '.join(revision.refs) or '(none: it was downloaded by commit hash)'}"
        )
        if revision.missing:  # a download that asked for some files only (allow_patterns, hf_hub_download)
            shown = ", ".join(revision.missing[:20]) + (", ..." if len(revision.missing) > 20 else "")
            message += f"\nfiles of the revision that were never downloaded, so not imported: {shown}"
        temporary = None if names else f"hf-import-{revision.commit[:12]}"
        home = "main" if "main" in names else (names[0] if names else str(temporary))
        if home not in branches:
            self.target.create_ref(repo_type, repo_id, "branch", home, branches["main"], "")
        commit = self._commit_tree(repo_type, repo_id, home, staged, title, message, replace=True)
        self.target.create_ref(
            repo_type, repo_id, "tag", tag, commit, f"huggingface_hub commit {revision.commit}"
        )
        for name in names:
            if name == home:
                continue
            if name in branches:  # the ref moved since an earlier import: the branch follows
                self._commit_tree(repo_type, repo_id, name, staged, title, message, replace=True)
            else:
                self.target.create_ref(repo_type, repo_id, "branch", name, commit, "")
        if temporary is not None:
            self.target.delete_branch(repo_type, repo_id, temporary)
        missing = tuple(revision.missing)
        done = ImportedRevision(
            repo_type, repo_id, revision.commit, tuple(names), commit, len(staged), size, missing
        )
        self.report.imported.append(done)
        where = ", ".join(names) if names else f"tag {tag}"
        count = f"{len(staged)} of {len(staged) + len(missing)} files" if missing else f"{len(staged)} files"
        self.log(f"  {revision.commit[:12]} -> {where} ({count}, {_human(size)})")

    # -- a folder or a file ----------------------------------------------------------------------------

    def files(
        self, repo_type: str, repo_id: str, files: list[SourceFile], source: str, commit: str | None
    ) -> None:
        self.target.ensure_repo(repo_type, repo_id, self.private)
        _, tags = self.target.refs(repo_type, repo_id)
        staged = self._stage(files, repo_id)
        title = f"Import {Path(source).name} with cove import"
        message = f"huggingface_hub commit: {commit}" if commit else ""
        hub_commit = self._commit_tree(repo_type, repo_id, "main", staged, title, message, replace=False)
        if commit and TAG_PREFIX + commit not in tags:
            self.target.create_ref(
                repo_type, repo_id, "tag", TAG_PREFIX + commit, hub_commit, f"huggingface_hub commit {commit}"
            )
        size = sum(f.size for f in files)
        self.report.imported.append(
            ImportedRevision(repo_type, repo_id, source, ("main",), hub_commit, len(files), size)
        )
        self.log(f"{repo_type} {repo_id}: {len(files)} files ({_human(size)}) -> main@{hub_commit[:12]}")


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover


def import_path(
    path: str | os.PathLike[str],
    *,
    repo_id: str | None = None,
    repo_type: str | None = None,
    private: bool = False,
    endpoint: str | None = None,
    token: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    log: Log | None = None,
    progress: bool = True,
) -> ImportReport:
    """Import a huggingface_hub cache (or one repo of it), a model/dataset folder, or a .safetensors/.gguf
    file into the hub at ``endpoint``, else the embedded hub of ``data_dir`` ($COVE_DATA_DIR, ~/.cove).

    With a cache, ``repo_id``/``repo_type`` pick one repo or one type out of it; a folder or file needs
    ``repo_id``. Revisions that cannot be imported whole are skipped and listed in the report.
    """
    from cove.store import check_repo_type, split_repo_id

    source = Path(path).expanduser()
    if repo_type is not None:
        check_repo_type(repo_type)
    if repo_id is not None:
        split_repo_id(repo_id)
    if not source.exists():
        raise MissingFileError(
            f"{source} does not exist: pass a model folder, a .safetensors/.gguf file or a cache."
        )
    if endpoint:
        target: Target = RemoteTarget(endpoint, token)
    else:
        from cove.hub.local import data_dir as default_data_dir

        target = LocalTarget(Path(data_dir).expanduser() if data_dir else default_data_dir())
    importer = _Importer(target, private=private, log=log or (lambda _: None), progress=progress)
    try:
        if source.is_dir() and (is_cache_repo(source) or is_cache(source)):
            folders = (
                [source] if is_cache_repo(source) else sorted(c for c in source.iterdir() if is_cache_repo(c))
            )
            for folder in folders:
                importer.cache_repo(folder, namespace, repo_id, repo_type)
            seen = {r.repo_id for r in [*importer.report.imported, *importer.report.unchanged]}
            seen |= {r.repo_id for r in importer.report.skipped}
            if repo_id and repo_id not in seen:
                raise HubRequestError(
                    f"The cache at {source} holds no repo {repo_id!r}: drop --repo-id to import all of it."
                )
            return importer.report
        if repo_id is None:
            raise HubRequestError(
                f"{source} is a {'folder' if source.is_dir() else 'file'}: pass --repo-id namespace/name for the "
                "repo to create (only a huggingface_hub cache names its repos itself)."
            )
        kind = repo_type or "model"
        if source.is_dir():
            files = folder_files(source)
            check_folder(source, kind, files)
            importer.files(kind, repo_id, files, str(source), local_dir_commit(source))
        elif source.suffix in (".safetensors", ".gguf"):
            check_single_file(source)
            importer.files(
                kind,
                repo_id,
                [SourceFile(source.name, source, source.stat().st_size, None)],
                str(source),
                None,
            )
        else:
            raise HubRequestError(
                f"{source} is neither a model folder, a .safetensors/.gguf file nor a huggingface_hub cache: "
                "pass one of those."
            )
    finally:
        target.close()
    return importer.report
