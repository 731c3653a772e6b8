"""The dataset viewer as HTML: first rows, column types and row counts per config and split, for CSV, JSON
Lines and Parquet datasets, read through cove.data streaming within bounded bytes and time."""

from __future__ import annotations

import io
import json
import re
import time
from html import unescape

import pytest

from cove.server.web import viewer as viewer_module


def columns(html: str) -> list[tuple[str, str]]:
    found = re.findall(r'<span class="col-name">([^<]*)</span><span class="col-type">([^<]*)</span>', html)
    return [(unescape(name), unescape(kind)) for name, kind in found]


def cells(html: str) -> list[list[str]]:
    table = html[html.index('<div class="viewer-table">') :]
    table = table[table.index("<tbody>") :]
    table = table[: table.index("</table>")]
    return [
        re.findall(r"<td class=\"cell-\w+\">([^<]*)</td>", row)
        for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)
    ]


def count_line(html: str) -> str:
    m = re.search(r'<p class="viewer-count">(.*?)</p>', html, re.S)
    assert m is not None
    return " ".join(unescape(re.sub(r"<[^>]+>", "", m.group(1))).split())


def parquet_bytes(table) -> bytes:  # type: ignore[no-untyped-def]
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=1000)
    return buf.getvalue()


@pytest.fixture
def csv_dataset(web):
    web.user("ann")
    train = "text,label\n" + "".join(f"review {i},{i % 2}\n" for i in range(150))
    test = "text,label\n" + "".join(f"test review {i},{i % 3}\n" for i in range(7))
    web.repo(
        "ann/reviews",
        {"README.md": "# Reviews\n", "data/train.csv": train, "data/test.csv": test},
        repo_type="dataset",
    )
    return "ann/reviews"


def test_the_viewer_shows_rows_types_and_exact_counts_of_a_csv_dataset(web, csv_dataset):
    r = web.get(f"/datasets/{csv_dataset}/viewer")
    assert r.status_code == 200
    assert columns(r.text) == [("text", "string"), ("label", "int64")]
    rows = cells(r.text)
    assert len(rows) == 100  # the viewer's page of rows
    assert rows[0] == ["review 0", "0"] and rows[99] == ["review 99", "1"]
    assert count_line(r.text) == "150 rows"
    assert 'href="/datasets/ann/reviews/viewer/default/test"' in r.text
    test = web.get(f"/datasets/{csv_dataset}/viewer/default/test").text
    assert count_line(test) == "7 rows" and cells(test)[6] == ["test review 6", "0"]


def test_the_dataset_page_shows_the_first_rows(web, csv_dataset):
    html = web.get(f"/datasets/{csv_dataset}").text
    assert len(cells(html)) == 10
    assert "showing 10 of the first 100" in count_line(html)
    assert 'href="/datasets/ann/reviews/viewer/default/train">open the viewer</a>' in html
    assert '<h1 id="reviews">Reviews' in html  # and the card below


def test_json_lines_cells_nulls_nested_values_and_long_text(web):
    web.user("ann")
    lines = [
        {"id": 1, "text": "short", "tags": ["a", "b"], "meta": {"source": "web"}, "score": 0.5},
        {"id": 2, "text": "x" * 1000, "tags": [], "meta": {"source": "<b>book</b>"}, "score": None},
    ]
    web.repo(
        "ann/jsonl", {"train.jsonl": "\n".join(json.dumps(x) for x in lines) + "\n"}, repo_type="dataset"
    )
    html = web.get("/datasets/ann/jsonl/viewer").text
    assert columns(html) == [
        ("id", "int64"),
        ("text", "string"),
        ("tags", "list<string>"),
        ("meta", "struct"),
        ("score", "float64"),
    ]
    first, second = cells(html)
    assert first == ["1", "short", "[&#34;a&#34;, &#34;b&#34;]", "{&#34;source&#34;: &#34;web&#34;}", "0.5"]
    assert second[1] == "x" * 300 + "…"
    assert "&lt;b&gt;book&lt;/b&gt;" in second[3]  # cells are escaped
    assert '<td class="cell-null">null</td>' in html
    assert "Column types inferred from the values shown." in html


def test_parquet_types_come_from_the_schema_and_counts_from_the_metadata(web):
    import pyarrow as pa

    web.user("ann")
    n = 5000
    table = pa.table(
        {
            "idx": pa.array(range(n), pa.int32()),
            "word": [f"w{i}" for i in range(n)],
            "vec": [[float(i)] * 2 for i in range(n)],
        }
    )
    web.repo("ann/pq", {}, repo_type="dataset")
    web.commit("ann/pq", lfs={"data/train-00000-of-00001.parquet": parquet_bytes(table)}, repo_type="dataset")
    html = web.get("/datasets/ann/pq/viewer").text
    assert columns(html) == [("idx", "int32"), ("word", "string"), ("vec", "list<float64>")]
    assert count_line(html) == "5,000 rows"
    assert cells(html)[3] == ["3", "w3", "[3.0, 3.0]"]
    assert "inferred" not in html


def test_configs_from_the_card_and_counts_from_dataset_info(web):
    web.user("ann")
    card = """---
configs:
- config_name: en
  data_files:
  - {split: train, path: en/train.csv}
  - {split: validation, path: en/dev.csv}
- config_name: fr
  data_files: fr/*.csv
dataset_info:
- config_name: en
  splits:
  - {name: train, num_examples: 2}
---
# Two languages
"""
    web.repo(
        "ann/multi",
        {
            "README.md": card,
            "en/train.csv": "t\nhello\nworld\n",
            "en/dev.csv": "t\nhi\n",
            "fr/all.csv": "t\nbonjour\n",
        },
        repo_type="dataset",
    )
    html = web.get("/datasets/ann/multi/viewer").text
    assert 'href="/datasets/ann/multi/viewer?config=fr">fr</a>' in html
    splits = re.findall(r'<a class="chip( active)?" href="/datasets/ann/multi/viewer/en/(\w+)">\2</a>', html)
    assert splits == [(" active", "train"), ("", "validation")]
    assert count_line(html) == "2 rows (from the card's dataset_info)"
    assert cells(web.get("/datasets/ann/multi/viewer/en/validation").text) == [["hi"]]
    fr = web.get("/datasets/ann/multi/viewer?config=fr").text
    assert cells(fr) == [["bonjour"]] and count_line(fr) == "1 row"
    assert cells(web.get("/datasets/ann/multi/viewer/fr/train").text) == [["bonjour"]]
    assert web.get("/datasets/ann/multi/viewer?config=zz").status_code == 404
    assert web.get("/datasets/ann/multi/viewer/de/train").status_code == 404
    assert web.get("/datasets/ann/multi/viewer/en/test").status_code == 404


def test_a_large_csv_is_sampled_and_its_count_estimated(web, monkeypatch):
    monkeypatch.setattr(viewer_module, "COUNT_SECONDS", 60.0)  # count the whole sample, however busy the box
    web.user("ann")
    rows = 120_000
    big = "id,text\n" + "".join(f"{i},some text for row {i:06d}\n" for i in range(rows))  # ~3.5 MB
    assert len(big) > 3 * viewer_module.HEAD_BYTES
    web.repo("ann/big", {"train.csv": big}, repo_type="dataset")
    start = time.perf_counter()
    html = web.get("/datasets/ann/big/viewer").text
    assert time.perf_counter() - start < 5.0
    assert cells(html)[0] == ["0", "some text for row 000000"]
    line = count_line(html)
    assert line.startswith("≈ ") and line.endswith("rows (estimated from the sampled bytes)")
    estimate = int(line.split()[1].replace(",", ""))
    assert abs(estimate - rows) < rows * 0.05
    assert "1 large file(s) sampled: the viewer reads the first 1 MB of each." in html
    folder = next((web.data_dir / "web-viewer").iterdir())
    assert (folder / "train.csv").stat().st_size <= viewer_module.HEAD_BYTES  # only the head was copied


def test_files_the_viewer_cannot_sample_are_named(web):
    web.user("ann")
    array = json.dumps([{"n": i, "pad": "p" * 50} for i in range(30_000)])
    assert len(array) > viewer_module.HEAD_BYTES
    web.repo("ann/arr", {"a.json": array, "b.jsonl": '{"n": 1}\n'}, repo_type="dataset")
    html = unescape(web.get("/datasets/ann/arr/viewer").text)
    assert "a.json: a JSON array over 1,048,576 bytes cannot be sampled" in html
    assert cells(html) == [["1"]]


def test_reading_stops_at_its_time_limit(web, monkeypatch):
    monkeypatch.setattr(viewer_module, "READ_SECONDS", 0.0)
    web.user("ann")
    web.repo("ann/slow", {"train.csv": "a\n1\n2\n3\n"}, repo_type="dataset")
    html = web.get("/datasets/ann/slow/viewer").text
    assert "Reading stopped after 0 s" in html
    assert count_line(html).startswith("at least 0 rows")


def test_unreadable_data_is_a_message_not_an_error(web):
    web.user("ann")
    web.repo("ann/broken", {"train.jsonl": '{"a": 1}\n{"a": \n'}, repo_type="dataset")
    r = web.get("/datasets/ann/broken/viewer")
    assert r.status_code == 200
    assert "The viewer could not read this dataset:" in r.text
    web.repo("ann/nodata", {"README.md": "# only a card"}, repo_type="dataset")
    assert "No data files the viewer can read" in web.get("/datasets/ann/nodata/viewer").text


def test_viewer_statuses(web, csv_dataset):
    web.user("bob")
    web.repo("ann/private-data", {"train.csv": "a\n1\n"}, repo_type="dataset", private=True)
    assert web.get("/datasets/ann/private-data/viewer").status_code == 404
    assert web.get("/datasets/ann/private-data/viewer", user="bob").status_code == 404
    assert web.get("/datasets/ann/private-data").status_code == 404
    owner = web.get("/datasets/ann/private-data/viewer", user="ann")
    assert owner.status_code == 200 and cells(owner.text) == [["1"]]
    assert web.get("/datasets/ann/none/viewer").status_code == 404
    web.repo("ann/a-model", {"README.md": "# m"})
    assert web.get("/ann/a-model/viewer").status_code == 404  # models have no viewer
