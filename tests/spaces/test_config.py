"""A space's README header and requirements as the runtime reads them, the build plan it makes, and the
bubblewrap command line (no processes started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cove.server.spaces.build import BuildError, hub_gradio_version, plan_build
from cove.server.spaces.config import (
    Preload,
    SpaceConfigError,
    parse_config,
    parse_preload,
    parse_requirements,
)
from cove.server.spaces.sandbox import Sandbox, hub_import_paths


def test_a_gradio_space_config():
    card = {
        "sdk": "gradio",
        "app_file": "src/main.py",
        "sdk_version": "6.31.0",
        "python_version": "3.11",
        "models": ["alice/m"],
        "preload_from_hub": ["alice/m config.json,model.safetensors v1", "bob/d"],
    }
    config = parse_config(card, {"README.md", "src/main.py"})
    assert (config.sdk, config.app_file, config.sdk_version, config.python_version) == (
        "gradio",
        "src/main.py",
        "6.31.0",
        "3.11",
    )
    assert config.models == ("alice/m",)
    assert config.preload == (
        Preload("alice/m", ("config.json", "model.safetensors"), "v1"),
        Preload("bob/d"),
    )
    assert parse_config({"sdk": "static"}, {"README.md", "index.html"}).app_file == "index.html"


@pytest.mark.parametrize(
    ("card", "files", "words"),
    [
        ({}, {"README.md"}, "no 'sdk'"),
        ({"sdk": "docker"}, {"README.md"}, "Unknown sdk 'docker'"),
        ({"sdk": "gradio", "app_file": "../x.py"}, {"README.md"}, "not a path inside the repo"),
        ({"sdk": "gradio", "app_file": "/etc/passwd"}, {"README.md"}, "not a path inside the repo"),
        ({"sdk": "gradio"}, {"README.md"}, "'app.py' is not in the repo"),
        ({"sdk": "gradio", "app_file": "a.txt"}, {"README.md", "a.txt"}, "must be a Python file"),
        ({"sdk": "gradio", "python_version": 3.10}, {"README.md", "app.py"}, "quote it"),
        ({"sdk": "gradio", "sdk_version": "latest"}, {"README.md", "app.py"}, "not a version number"),
        ({"sdk": "gradio", "models": "alice/m"}, {"README.md", "app.py"}, "list of repo ids"),
        ({"sdk": "gradio", "preload_from_hub": ["nope"]}, {"README.md", "app.py"}, "'repo_id [file,...]"),
        ({"sdk": "gradio"}, {"app.py"}, "no README.md"),
    ],
)
def test_bad_configs_say_what_is_wrong(card, files, words):
    with pytest.raises(SpaceConfigError) as info:
        parse_config(card, files)
    assert words in str(info.value)


def test_requirements_are_package_lines_only():
    text = "# pinned\nnumpy>=1.26  # arrays\n\nrequests[socks]==2.32.3; python_version >= '3.8'\n"
    assert parse_requirements(text) == ["numpy>=1.26", "requests[socks]==2.32.3; python_version >= '3.8'"]
    for line in (
        "-e .",
        "--index-url https://evil/simple",
        "git+https://x/y",
        "./local",
        "pkg @ https://x/y.whl",
    ):
        with pytest.raises(SpaceConfigError, match="only package requirements"):
            parse_requirements(line)
    assert parse_preload(None) == ()


def test_the_build_plan_layers_over_the_hub_when_it_can():
    config = parse_config({"sdk": "gradio"}, {"README.md", "app.py"})
    plan = plan_build(config, "")
    assert plan.layered and plan.packages == []
    same = parse_config({"sdk": "gradio", "sdk_version": hub_gradio_version()}, {"README.md", "app.py"})
    assert plan_build(same, None).packages == []
    other = parse_config({"sdk": "gradio", "sdk_version": "4.44.1"}, {"README.md", "app.py"})
    with_req = plan_build(other, "numpy\n")
    assert with_req.packages == ["gradio==4.44.1", "numpy"] and with_req.key != plan.key
    with pytest.raises(BuildError, match=r"python_version 3\.2 is not available"):
        plan_build(parse_config({"sdk": "gradio", "python_version": "3.2"}, {"README.md", "app.py"}), None)


def test_the_sandbox_binds_nothing_private(tmp_path: Path):
    data = tmp_path / "data"
    space = data / "spaces" / "7"
    for sub in ("app", "run", "etc", "venv"):
        (space / sub).mkdir(parents=True)
    box = Sandbox(
        app_dir=space / "app",
        run_dir=space / "run",
        etc_dir=space / "etc",
        read_only=hub_import_paths([data]),
        venv=space / "venv",
        uid=200_007,
        limits={"RLIMIT_NPROC": 64},
    )
    argv = box.argv("serve", ["/opt/venv/bin/python", "app.py"], {"A": "b"})
    sources = {argv[i + 1] for i, arg in enumerate(argv) if arg in ("--bind", "--ro-bind")}
    assert "/etc/shadow" not in sources and "/etc" not in sources and "/" not in sources
    assert str(data) not in sources and str(data / "hub.sqlite") not in sources
    private = {s for s in sources if s.startswith(str(data))}
    expected = {str(space / sub) for sub in ("app", "run", "venv")}
    assert private == expected | {str(space / "etc" / "passwd"), str(space / "etc" / "group")}
    assert "--unshare-net" in argv and "--die-with-parent" in argv
    assert "user:x:200007:200007" in (space / "etc" / "passwd").read_text()
