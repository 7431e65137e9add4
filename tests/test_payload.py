"""Reading a page item by item: the same items as json.loads, and poison costs one item only."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.payload import PayloadError, _skip_value, parse_document, parse_page

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(JSON_VALUES, st.sampled_from(["", " ", "\n\t"]))
def test_skipping_a_value_ends_exactly_where_it_ends(value: Any, space: str) -> None:
    """The bracket walker finds the end of any JSON value, strings with brackets included."""
    text = json.dumps(value, indent=1 if space else None)
    assert _skip_value(text + space + ', "next"', 0) == len(text)


@given(st.lists(JSON_VALUES, max_size=6), st.booleans())
def test_a_page_read_item_by_item_has_the_items_json_loads_has(
    items: list[Any], has_more: bool
) -> None:
    """Walked item by item (the page is longer than the item limit), nothing is lost."""
    body = {"object": "list", "data": items, "has_more": has_more, "pad": "x" * 64}
    data = json.dumps(body).encode()
    largest = max((len(json.dumps(item)) for item in items), default=1)
    page = parse_page(data, max_item_bytes=largest)
    assert [item.value for item in page.items] == items
    assert all(item.error is None for item in page.items)
    assert page.has_more is has_more


def test_poison_costs_one_item_and_the_cursor_still_moves() -> None:
    """Deep nesting, a too-long number and an oversized item are each an item's error."""
    deep = "[" * 50_000 + "]" * 50_000
    long_number = "9" * 5000
    big = "y" * 500
    data = (
        '{"data": [{"id": "a"}, {"id": "deep", "x": '
        + deep
        + '}, {"id": "long", "n": '
        + long_number
        + '}, {"id": "big", "s": "'
        + big
        + '"}, {"id": "b"}], '
        '"has_more": true, "last_id": "b", "junk": ' + deep + "}"
    ).encode()
    page = parse_page(data, max_item_bytes=200)
    assert [(i.id, i.error) for i in page.items] == [
        ("a", None),
        ("deep", "JSON nested too deep"),
        ("long", "a number too long to read"),
        ("big", "larger than 200 bytes"),
        ("b", None),
    ]
    assert page.has_more is True and page.last_id == "b"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"<html>oops</html>", "not JSON"),
        (b"[1, 2]", "no data list"),
        (b'{"data": {"a": 1}}', "no data list"),
        (b'{"object": "list"}', "no data list"),
        (b'{"data": [1, 2', "not JSON"),
        (b'{"data": [1, 2]} trailing', "text after"),
        (b"\xff\xfe\xfa", "not UTF-8"),
    ],
)
def test_a_page_that_cannot_be_read_says_why(data: bytes, why: str) -> None:
    """A body that is not a page at all raises PayloadError in a few words."""
    with pytest.raises(PayloadError, match=why):
        parse_page(data, max_item_bytes=4)


def test_a_whole_document_is_refused_when_too_large_deep_or_long() -> None:
    """parse_document refuses each kind of poison with a short reason."""
    assert parse_document(b'{"id": "x"}') == {"id": "x"}
    with pytest.raises(PayloadError, match="larger than 4 bytes"):
        parse_document(b'{"id": "x"}', max_bytes=4)
    with pytest.raises(PayloadError, match="nested too deep"):
        parse_document(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(PayloadError, match="number too long"):
        parse_document(b"1" * 5000)
