"""The --shards selector: parsing, canonical text, and hash-range groups."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.errors import ConfigError
from worker.kinesis.selector import (
    ALL_SHARDS,
    HASH_SPACE,
    hash_group,
    parse_selector,
)

SHARD_0 = "shardId-000000000000"
SHARD_1 = "shardId-000000000001"
TOP = HASH_SPACE - 1


@pytest.mark.parametrize("text", [None, "all", " ALL ", "All"])
def test_parse_all_forms_select_everything(text):
    selector = parse_selector(text)

    assert selector == ALL_SHARDS
    assert str(selector) == "all"
    assert selector.matches(SHARD_0, 0)
    assert selector.matches(SHARD_1, str(TOP))


def test_parse_group_keeps_group_and_count():
    selector = parse_selector(" 2/3 ")

    assert (selector.group, selector.groups) == (2, 3)
    assert str(selector) == "2/3"


def test_parse_id_list_is_canonical_whatever_the_order_and_spacing():
    one = parse_selector(f"{SHARD_1}, {SHARD_0}")
    other = parse_selector(f"{SHARD_0},{SHARD_1}")

    assert one == other
    assert str(one) == f"{SHARD_0},{SHARD_1}"
    assert one.matches(SHARD_0, TOP)
    assert not one.matches("shardId-000000000002", 0)


@pytest.mark.parametrize(
    "text",
    ["", "   ", "0/2", "3/2", "1/0", "x", "1/2/3", "-1/2", "a/b",
     "shardId-1", f"{SHARD_0},", f"{SHARD_0},,{SHARD_1}", "1.5/2"],
)
def test_parse_nonsense_is_one_line_config_error(text):
    with pytest.raises(ConfigError) as info:
        parse_selector(text)

    message = str(info.value)
    assert "--shards" in message
    assert "\n" not in message


def test_hash_group_edges_of_two_groups():
    half = HASH_SPACE // 2

    assert hash_group(0, 2) == 1
    assert hash_group(half - 1, 2) == 1
    assert hash_group(half, 2) == 2
    assert hash_group(TOP, 2) == 2


def test_hash_group_accepts_decimal_text_as_stored_in_the_lease_table():
    assert hash_group(str(HASH_SPACE // 4 * 3), 4) == 4


@pytest.mark.parametrize("key", [-1, HASH_SPACE])
def test_hash_group_rejects_keys_outside_the_hash_space(key):
    with pytest.raises(ValueError):
        hash_group(key, 2)


@given(st.integers(0, TOP), st.integers(1, 64))
def test_every_key_is_in_exactly_one_group(key, groups):
    selectors = [parse_selector(f"{g}/{groups}") for g in range(1, groups + 1)]

    owners = [s for s in selectors if s.matches(SHARD_0, key)]

    assert len(owners) == 1


@given(st.integers(0, TOP), st.integers(0, TOP), st.integers(1, 64))
def test_groups_are_contiguous_hash_ranges(a, b, groups):
    # Groups follow key order, so the two halves of a split shard can only
    # land in its group or in neighbouring ones, never scatter.
    low, high = sorted((a, b))

    assert hash_group(low, groups) <= hash_group(high, groups)


@given(st.integers(1, 64), st.data())
def test_group_ranges_are_equal_in_size(groups, data):
    g = data.draw(st.integers(1, groups))
    first = -(-(g - 1) * HASH_SPACE // groups)  # ceil

    assert hash_group(first, groups) == g
    if first > 0:
        assert hash_group(first - 1, groups) == g - 1


def test_group_follows_the_middle_of_the_hash_range():
    # An emulator's 4-shard stream may start its third shard two keys below
    # 2^127; by its starting key it would join group 1 of 2.
    half = 2**127
    third = parse_selector("2/2")

    assert third.matches("shardId-000000000002", half - 2, TOP)
    assert not parse_selector("1/2").matches("shardId-000000000002",
                                             half - 2, TOP)
