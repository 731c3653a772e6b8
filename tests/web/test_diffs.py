"""The commit page's diff logic, as functions: unified text diffs, key-by-key mapping diffs, tensor diffs."""

from __future__ import annotations

from cove.server.web.diffs import KeyChange, flatten, key_diff, show_value, tensor_diff, text_diff
from cove.server.web.weights import Tensor, WeightsHeader


def test_text_diff_numbers_lines_and_counts_changes():
    old = "a\nb\nc\nd\ne\nf\ng\nh\n"
    new = "a\nb\nC\nd\ne\nf\ng\nh\ni\n"
    diff = text_diff(old, new, context=1)
    assert (diff.added, diff.removed, diff.truncated) == (2, 1, False)
    shown = [(line.kind, line.text, line.old_no, line.new_no) for line in diff.lines]
    assert shown == [
        ("hunk", "@@ -2,3 +2,3 @@", None, None),
        ("context", "b", 2, 2),
        ("del", "c", 3, None),
        ("add", "C", None, 3),
        ("context", "d", 4, 4),
        ("hunk", "@@ -8,1 +8,2 @@", None, None),
        ("context", "h", 8, 8),
        ("add", "i", None, 9),
    ]


def test_text_diff_of_equal_texts_and_of_a_new_file():
    assert text_diff("same\n", "same\n").unchanged
    added = text_diff("", "x\ny\n")
    assert (added.added, added.removed) == (2, 0)
    assert [line.kind for line in added.lines] == ["hunk", "add", "add"]


def test_text_diff_is_capped():
    old = "".join(f"{i}\n" for i in range(1000))
    new = "".join(f"{i}!\n" for i in range(1000))
    diff = text_diff(old, new, max_lines=50)
    assert len(diff.lines) == 50 and diff.truncated
    assert (diff.added, diff.removed) == (1000, 1000)  # the counts are of the whole diff


def test_flatten_dots_nested_keys_and_indexes_lists_of_mappings():
    value = {
        "a": {"b": {"c": 1}, "empty": {}},
        "tags": ["x", "y"],
        "model-index": [{"name": "m", "results": [{"metrics": [{"value": 0.5}]}]}],
        "odd key": {"x.y": 2},
    }
    assert flatten(value) == {
        "a.b.c": 1,
        "a.empty": {},
        "tags": ["x", "y"],
        "model-index[0].name": "m",
        "model-index[0].results[0].metrics[0].value": 0.5,
        '"odd key"."x.y"': 2,
    }


def test_key_diff_added_removed_changed():
    old = {"hidden_size": 8, "act": "gelu", "rope": {"theta": 10000}, "lr": 1.0, "flag": 1}
    new = {"hidden_size": 16, "rope": {"theta": 10000, "scaling": None}, "lr": 1, "flag": True, "vocab": 5}
    assert key_diff(old, new) == [
        KeyChange("act", "removed", old="gelu"),
        KeyChange("flag", "changed", 1, True),  # True is not 1 in a config
        KeyChange("hidden_size", "changed", 8, 16),
        KeyChange("rope.scaling", "added", new=None),
        KeyChange("vocab", "added", new=5),
    ]  # lr 1.0 -> 1 is the same value
    assert key_diff({}, {}) == []
    assert key_diff(None, {"a": {"b": 1}}) == [KeyChange("a.b", "added", new=1)]
    assert key_diff({"a": {"b": 1}}, {"a": 5}) == [
        KeyChange("a", "added", new=5),
        KeyChange("a.b", "removed", old=1),
    ]


def test_show_value_is_json_and_cut():
    assert show_value("x") == '"x"'
    assert show_value([1, "é"]) == '[1, "é"]'
    assert show_value(None) == "null"
    assert len(show_value("y" * 1000, limit=20)) == 20


def header(*tensors: tuple[str, str, tuple[int, ...]]) -> WeightsHeader:
    return WeightsHeader("safetensors", tuple(Tensor(n, d, s) for n, d, s in tensors))


def test_tensor_diff():
    old = header(
        ("emb", "F32", (10, 4)), ("head", "F32", (4, 2)), ("norm", "F32", (4,)), ("same", "F32", (3, 3))
    )
    new = header(
        ("emb", "F32", (12, 4)), ("head", "BF16", (4, 2)), ("extra", "F32", (3,)), ("same", "F32", (3, 3))
    )
    diff = tensor_diff(old, new)
    assert [(c.name, c.kind) for c in diff.changes] == [
        ("emb", "changed"),
        ("extra", "added"),
        ("head", "changed"),
        ("norm", "removed"),
    ]
    assert (diff.old_params, diff.new_params, diff.param_delta, diff.unchanged) == (61, 68, 7, 1)
    assert (diff.count("added"), diff.count("removed"), diff.count("changed")) == (1, 1, 2)


def test_tensor_diff_of_an_added_or_deleted_file():
    new = header(("w", "F16", (2, 2)))
    assert tensor_diff(None, new).param_delta == 4
    gone = tensor_diff(new, None)
    assert [(c.name, c.kind) for c in gone.changes] == [("w", "removed")] and gone.new_params == 0
