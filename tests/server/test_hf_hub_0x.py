"""The acceptance walk with the last huggingface_hub 0.x release, which lives in a second venv.

By default it runs the 0.x client that scripts/setup.sh keeps in the virtualenv's side folder
(ref-transformers4, with transformers 4.57.6) through PYTHONPATH; COVE_HF0_PYTHON may name another venv's python
instead (scripts/make_hf0_venv.sh creates one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.server

HF0_PYTHON = os.environ.get("COVE_HF0_PYTHON")
SIDE_FOLDER = Path(sys.prefix) / "ref-transformers4"
if not HF0_PYTHON and (SIDE_FOLDER / "huggingface_hub").is_dir():
    HF0_PYTHON, HF0_PATH = sys.executable, str(SIDE_FOLDER)
else:
    HF0_PATH = None

SCRIPT = r"""
import hashlib, json, os, sys, tempfile
from pathlib import Path
import huggingface_hub
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.utils import EntryNotFoundError, RepositoryNotFoundError

url, token = sys.argv[1], sys.argv[2]
api = HfApi(endpoint=url, token=token)
out = {"version": huggingface_hub.__version__, "whoami": api.whoami()["name"]}
try:
    HfApi(endpoint=url, token="cove_bad").whoami()
except Exception as exc:  # 0.x re-raises a requests HTTPError here
    out["bad_token"] = exc.response.status_code
api.create_repo("alice/hf0", private=True)
api.create_repo("alice/hf0", private=True, exist_ok=True)
tmp = Path(tempfile.mkdtemp())
(tmp / "up").mkdir()
(tmp / "up" / "README.md").write_text("---\nlicense: mit\npipeline_tag: fill-mask\n---\n")
(tmp / "up" / "config.json").write_text("{}")
big = os.urandom(4096)
(tmp / "up" / "model.safetensors").write_bytes(big)
api.upload_folder(repo_id="alice/hf0", folder_path=tmp / "up")
(entry,) = api.get_paths_info("alice/hf0", ["model.safetensors"])
out["lfs_sha_ok"] = entry.lfs is not None and entry.lfs.sha256 == hashlib.sha256(big).hexdigest()
c1 = api.upload_file(path_or_fileobj=b"one", path_in_repo="f.txt", repo_id="alice/hf0").oid
api.create_tag("alice/hf0", tag="v1")
api.create_branch("alice/hf0", branch="dev/1")
api.upload_file(path_or_fileobj=b"two", path_in_repo="f.txt", repo_id="alice/hf0")
api.delete_file("config.json", repo_id="alice/hf0")
refs = api.list_repo_refs("alice/hf0")
out["branches"] = sorted(b.name for b in refs.branches)
out["tags"] = sorted(t.name for t in refs.tags)
out["n_commits"] = len(api.list_repo_commits("alice/hf0"))
cache = tmp / "cache"
read = lambda rev: Path(hf_hub_download("alice/hf0", "f.txt", revision=rev, endpoint=url, token=token,
                                        cache_dir=cache)).read_text()
out["by_rev"] = [read("main"), read("v1"), read(c1), read("dev/1")]
big_path = hf_hub_download("alice/hf0", "model.safetensors", endpoint=url, token=token, cache_dir=cache)
out["big_ok"] = Path(big_path).read_bytes() == big
snap = snapshot_download("alice/hf0", endpoint=url, token=token, cache_dir=tmp / "snap")
out["snapshot"] = sorted(p.name for p in Path(snap).iterdir())
out["listed"] = [m.id for m in api.list_models(filter="fill-mask", author="alice", search="hf0")]
out["card_license"] = api.model_info("alice/hf0").card_data["license"]
try:
    HfApi(endpoint=url, token=False).model_info("alice/hf0")
except RepositoryNotFoundError:
    out["anon_private"] = "RepositoryNotFound"
try:
    hf_hub_download("alice/hf0", "missing.txt", endpoint=url, token=token, cache_dir=cache)
except EntryNotFoundError:
    out["missing"] = "EntryNotFound"
print(json.dumps(out))
"""


@pytest.mark.skipif(
    not HF0_PYTHON, reason="no huggingface_hub 0.x: run scripts/setup.sh, or set COVE_HF0_PYTHON"
)
def test_hf_hub_0x_acceptance(hub, tmp_path):
    # 0.x parses commit URLs against HF_ENDPOINT, so it must be set, as users of a private hub do anyway
    env = {
        **os.environ,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HOME": str(tmp_path / "home"),
        "HF_ENDPOINT": hub.url,
    }
    if HF0_PATH:
        env["PYTHONPATH"] = HF0_PATH
    proc = subprocess.run(
        [str(HF0_PYTHON), "-c", SCRIPT, hub.url, hub.tokens["alice"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["version"].startswith("0.")
    assert got["whoami"] == "alice" and got["bad_token"] == 401
    assert got["lfs_sha_ok"] is True  # a 0.x client takes the LFS path for large files
    assert got["branches"] == ["dev/1", "main"] and got["tags"] == ["v1"]
    assert got["n_commits"] == 5  # initial, folder, one, two, delete
    assert got["by_rev"] == ["two", "one", "one", "one"]
    assert got["big_ok"] is True
    assert got["snapshot"] == [".gitattributes", "README.md", "f.txt", "model.safetensors"]
    assert got["listed"] == ["alice/hf0"] and got["card_license"] == "mit"
    assert got["anon_private"] == "RepositoryNotFound" and got["missing"] == "EntryNotFound"
