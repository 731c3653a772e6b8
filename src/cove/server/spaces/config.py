"""A space's configuration: the README's YAML header as Hugging Face reads it (sdk, app_file, sdk_version,
python_version, models, preload_from_hub) plus requirements.txt. Bad values raise SpaceConfigError with
what was wrong and what to do; the runtime shows the message as the space's CONFIG_ERROR."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from cove.store import check_path

SDKS = ("gradio", "static")
UNSUPPORTED_SDKS = ("docker", "streamlit")
_VERSION = re.compile(r"^\d+(\.\d+){0,3}([a-z]+\d*)?$")
_PYTHON = re.compile(r"^3\.\d{1,2}(\.\d{1,2})?$")


class SpaceConfigError(ValueError):
    """The space's README header or files cannot be built: the message says which value and why."""


@dataclass(frozen=True)
class Preload:
    """One preload_from_hub entry: a repo of this hub, optionally some of its files, at a revision."""

    repo_id: str
    files: tuple[str, ...] = ()
    revision: str | None = None


@dataclass(frozen=True)
class SpaceConfig:
    sdk: str
    app_file: str
    sdk_version: str | None = None
    python_version: str | None = None
    models: tuple[str, ...] = ()
    preload: tuple[Preload, ...] = field(default_factory=tuple)


def parse_config(card: dict[str, Any], files: set[str]) -> SpaceConfig:
    """The config of a space whose README header is card and whose tree holds files."""
    if "README.md" not in files:
        raise SpaceConfigError(
            "The space has no README.md: add one with a YAML header naming its sdk (gradio)."
        )
    sdk = card.get("sdk")
    if not sdk:
        raise SpaceConfigError(
            "README.md's YAML header has no 'sdk': add 'sdk: gradio' (or 'sdk: static') between the --- lines."
        )
    if not isinstance(sdk, str) or sdk not in SDKS:
        hint = " Cove runs no Docker or Streamlit spaces." if sdk in UNSUPPORTED_SDKS else ""
        raise SpaceConfigError(f"Unknown sdk {sdk!r} in README.md: use one of {', '.join(SDKS)}.{hint}")
    default_app = "index.html" if sdk == "static" else "app.py"
    app_file = card.get("app_file", default_app)
    if not isinstance(app_file, str) or not app_file:
        raise SpaceConfigError(f"app_file must be a path in the repo, got {app_file!r}.")
    try:
        app_file = check_path(app_file)
    except Exception as exc:  # check_path's message names the path and the rule
        raise SpaceConfigError(f"app_file {app_file!r} is not a path inside the repo: {exc}") from None
    if app_file not in files:
        raise SpaceConfigError(
            f"app_file {app_file!r} is not in the repo: push it, or set app_file to one of its files."
        )
    if sdk == "gradio" and not app_file.endswith(".py"):
        raise SpaceConfigError(f"A gradio space's app_file must be a Python file, got {app_file!r}.")
    sdk_version = _optional_version(card, "sdk_version", _VERSION)
    python_version = _optional_version(card, "python_version", _PYTHON)
    models = card.get("models") or []
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise SpaceConfigError(f"models must be a list of repo ids, got {models!r}.")
    return SpaceConfig(
        sdk=sdk,
        app_file=app_file,
        sdk_version=sdk_version,
        python_version=python_version,
        models=tuple(models),
        preload=parse_preload(card.get("preload_from_hub")),
    )


def _optional_version(card: dict[str, Any], key: str, pattern: re.Pattern[str]) -> str | None:
    value = card.get(key)
    if value is None:
        return None
    text = str(value)  # YAML reads 3.10 as a float: 3.1; HF asks for quotes, so do we
    if isinstance(value, float) and key == "python_version":
        raise SpaceConfigError(
            f'python_version {value!r} reads as a number: quote it, e.g. python_version: "3.11".'
        )
    if not pattern.match(text):
        raise SpaceConfigError(f"{key} {text!r} is not a version number (e.g. 3.11 or 5.0.1).")
    return text


def parse_preload(value: Any) -> tuple[Preload, ...]:
    """preload_from_hub entries: "repo_id", "repo_id file1,file2" or "repo_id file1,file2 revision"."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise SpaceConfigError(
            f"preload_from_hub must be a list of 'repo_id [files] [revision]', got {value!r}."
        )
    out = []
    for item in value:
        if not isinstance(item, str) or not item.split():
            raise SpaceConfigError(f"preload_from_hub entry {item!r} is not 'repo_id [file,...] [revision]'.")
        parts = item.split()
        if len(parts) > 3 or parts[0].count("/") != 1:
            raise SpaceConfigError(f"preload_from_hub entry {item!r} is not 'repo_id [file,...] [revision]'.")
        names = tuple(check_path(p) for p in parts[1].split(",") if p) if len(parts) > 1 else ()
        out.append(Preload(parts[0], names, parts[2] if len(parts) > 2 else None))
    return tuple(out)


def parse_requirements(text: str) -> list[str]:
    """requirements.txt lines, comments and blanks dropped. Options that would reach outside the package
    registries or the repo (-e, -f, --index-url, direct URLs) are refused: pip runs them otherwise."""
    out = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-") or "://" in line or line.startswith((".", "/")):
            raise SpaceConfigError(
                f"requirements.txt line {line!r}: only package requirements (name, version, extras, markers) "
                "are allowed, no pip options, paths or URLs."
            )
        out.append(line)
    return out
