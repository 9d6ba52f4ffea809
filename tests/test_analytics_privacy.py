"""The minimum-group rule (intranet.analytics.privacy): small groups, differencing, heatmap cells, narrowed filters."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intranet.analytics import privacy
from intranet.settings import Settings


def _sizes(kept: privacy.Kept[tuple[str, int]]) -> dict[str, int]:
    return dict(kept.rows)


def test_the_default_minimum_group_is_five_and_configurable():
    """INTRANET_ANALYTICS_MIN_GROUP defaults to 5 and is read as a typed setting."""
    assert Settings.from_config({}).analytics.min_group == 5
    assert Settings.from_config({"INTRANET_ANALYTICS_MIN_GROUP": "10"}).analytics.min_group == 10


def test_a_minimum_group_of_one_is_refused():
    """A minimum group of 1 would show single people: the setting refuses it."""
    with pytest.raises(Exception, match="INTRANET_ANALYTICS_MIN_GROUP"):
        Settings.from_config({"INTRANET_ANALYTICS_MIN_GROUP": "1"})


def test_groups_of_at_least_k_are_kept_as_they_are():
    """Rows of k or more people are all shown, in their order, with nothing hidden."""
    rows = [("Sales", 12), ("Finance", 5), ("Legal", 7)]
    kept = privacy.keep_groups(rows, size=lambda r: r[1], k=5)
    assert kept.rows == rows and kept.hidden_rows == 0 and kept.hidden_people == 0


def test_a_group_under_k_is_left_out_with_the_next_smallest():
    """One group of 1 is hidden, and so is the smallest other group, so total minus rows reveals no one."""
    rows = [("Sales", 12), ("Finance", 6), ("Legal", 1), ("Ops", 9)]
    kept = privacy.keep_groups(rows, size=lambda r: r[1], k=5)
    assert _sizes(kept) == {"Sales": 12, "Ops": 9}
    assert kept.hidden_rows == 2 and kept.hidden_people == 7


def test_small_groups_that_already_add_up_to_k_need_no_more_hiding():
    """Hidden groups of 2 and 3 people hold 5 together: nothing else is hidden."""
    rows = [("A", 2), ("B", 3), ("C", 8), ("D", 5)]
    kept = privacy.keep_groups(rows, size=lambda r: r[1], k=5)
    assert _sizes(kept) == {"C": 8, "D": 5}
    assert kept.hidden_people == 5


def test_complementary_hiding_takes_the_smallest_first_and_stops_at_k():
    """With k=10 and a hidden group of 3, the 6-person group goes (3+6 < 10), then the 8-person one."""
    rows = [("A", 3), ("B", 20), ("C", 6), ("D", 8), ("E", 30)]
    kept = privacy.keep_groups(rows, size=lambda r: r[1], k=10)
    assert _sizes(kept) == {"B": 20, "E": 30}
    assert kept.hidden_people == 17


def test_a_lone_small_group_hides_everything():
    """When the only other row would reveal the small one, both go."""
    kept = privacy.keep_groups([("A", 6), ("B", 1)], size=lambda r: r[1], k=5)
    assert kept.rows == [] and kept.hidden_people == 7


def test_empty_groups_are_hidden_without_forcing_more():
    """A row about nobody is dropped, but reveals nothing, so no other row is hidden for it."""
    kept = privacy.keep_groups([("A", 0), ("B", 6)], size=lambda r: r[1], k=5)
    assert _sizes(kept) == {"B": 6} and kept.hidden_people == 0


@given(st.lists(st.integers(min_value=0, max_value=40), max_size=12), st.integers(min_value=2, max_value=12))
def test_no_subtraction_reveals_a_group_under_k(sizes, k):
    """Whatever the sizes: every shown row has k+ people, and the total minus the shown rows is 0 or at least k."""
    rows = list(enumerate(sizes))
    kept = privacy.keep_groups(rows, size=lambda r: r[1], k=k)
    assert all(n >= k for _, n in kept.rows)
    rest = sum(sizes) - sum(n for _, n in kept.rows)
    assert rest == kept.hidden_people and (rest == 0 or rest >= k or not kept.rows)
    assert [r for r in rows if r in kept.rows] == kept.rows


def test_each_partition_is_protected_on_its_own():
    """Week by week: a small department is hidden in the week it is small, and a complement in that week only."""
    rows = [("w1", "A", 6), ("w1", "B", 2), ("w1", "C", 9), ("w2", "A", 6), ("w2", "B", 5), ("w2", "C", 9)]
    kept = privacy.keep_groups_by(rows, partition=lambda r: r[0], size=lambda r: r[2], k=5)
    assert kept.rows == [("w1", "C", 9), ("w2", "A", 6), ("w2", "B", 5), ("w2", "C", 9)]
    assert kept.hidden_rows == 2 and kept.hidden_people == 8


def test_heatmap_cells_under_k_readers_are_left_out():
    """A cell read by 4 people is hidden at k=5; cells of 5 and more stay."""
    cells = [{"hour": 8, "readers": 4}, {"hour": 9, "readers": 5}, {"hour": 10, "readers": 30}]
    kept = privacy.keep_cells(cells, readers=lambda c: c["readers"], k=5)
    assert [c["hour"] for c in kept.rows] == [9, 10] and kept.hidden_rows == 1


def test_a_narrowed_filter_shows_only_how_many_people_it_hides():
    """Filters leaving 3 people answer with the count alone; 5 people get the answer."""
    hidden = privacy.guard_population(3, k=5)
    assert hidden is not None and hidden.to_json() == {"hidden": True, "hidden_people": 3, "min_group": 5}
    assert privacy.guard_population(5, k=5) is None
