"""Pure pieces of the upload path: the preupload decision and the NDJSON line reader."""

from __future__ import annotations

import io

import pytest

from cove.server.files.service import iter_lines, upload_mode
from cove.server.settings import Settings


@pytest.mark.parametrize(
    "data", [b"", b"a", b"a\n", b"a\nb", b"\n\nx\n", b"abc\ndef\nghi", b"x" * 50 + b"\ny"]
)
@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1000])
def test_iter_lines_matches_splitlines(data, chunk):
    assert list(iter_lines(io.BytesIO(data), chunk)) == data.splitlines()


def test_upload_mode_never_sends_xet_capable_clients_to_lfs():
    s = Settings(lfs_threshold_bytes=100, regular_max_bytes=1000)
    ua_new, ua_old = "unknown/None; hf_hub/2.4.0; python/3.11", "unknown/None; hf_hub/1.19.0; python/3.11"
    assert upload_mode(s, 50, ua_new, None) == "regular"  # small: always regular
    assert upload_mode(s, 500, ua_new, None) == "regular"  # >= 1.20 would push "lfs" through Xet
    assert upload_mode(s, 500, ua_old, None) == "lfs"  # < 1.20 negotiates Xet, and Cove answers basic
    assert upload_mode(s, 500, "cove/0.1.0", None) == "lfs"
    assert upload_mode(s, 5000, ua_new, None) == "lfs"  # over the cap: documented HF_HUB_DISABLE_XET=1
    # X-Cove-Upload-Mode: lfs is honoured where the client can follow it; a >= 1.20 client would take
    # "lfs" to Xet, so for it the header counts only with X-Cove-Client-Xet: off (HF_HUB_DISABLE_XET=1)
    assert upload_mode(s, 500, ua_old, "lfs") == "lfs"
    assert upload_mode(s, 500, "git-lfs/3.4", "lfs") == "lfs"
    assert upload_mode(s, 500, ua_new, "lfs") == "regular"
    assert upload_mode(s, 500, ua_new, "lfs", xet_disabled=True) == "lfs"
    assert upload_mode(s, 500, ua_new, "regular") == "regular"
    assert (
        upload_mode(Settings(upload_mode="regular", lfs_threshold_bytes=1), 10**9, ua_old, None) == "regular"
    )
