"""The minimum-group rule: the one place analytics decides what may be shown.

Every analytics answer (API, chart, table, CSV, hover text, the JSON behind a chart) passes its
rows through here before it leaves the service layer, so there is exactly one implementation
of the rule (k = ``INTRANET_ANALYTICS_MIN_GROUP``, default 5, as Viva Insights and Glint use):

* **Groups** (:func:`keep_groups`): a row about a group of fewer than k people is left out.
  When the rows left out add up to between 1 and k-1 people, more rows are left out, the
  smallest first, so that subtracting the shown rows from a shown total cannot reveal a group
  smaller than k (complementary suppression, as Glint does against differencing).
* **Cells** (:func:`keep_cells`): a heatmap cell read by fewer than k distinct people is left out.
* **Narrowed filters** (:func:`guard_population`): when the filters leave fewer than k people,
  the answer is nothing but the number of people hidden.

Headcounts of an audience are directory facts, not reading data, and are exact; the rule is
about what people did (read, reached, reading times).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

@dataclasses.dataclass(frozen=True)
class Kept(Generic[T]):
    """The rows that may be shown, and how much was left out (never which rows)."""

    rows: list[T]
    hidden_rows: int
    hidden_people: int


@dataclasses.dataclass(frozen=True)
class Hidden:
    """What a filter that leaves fewer than k people shows instead of its answer."""

    hidden_people: int
    min_group: int

    def to_json(self) -> dict[str, Any]:
        return {"hidden": True, "hidden_people": self.hidden_people, "min_group": self.min_group}


def _check(k: int) -> None:
    if k < 1:
        raise ValueError(f"the minimum group size must be at least 1, not {k}")


def keep_groups(rows: Iterable[T], *, size: Callable[[T], int], k: int) -> Kept[T]:
    """The rows of one breakdown that may be shown beside its total.

    *rows* must partition the population of the total shown next to them (one row per
    department, including the row for "unknown"), and *size* gives the number of distinct
    people a row is about: for a per-post row, the larger of its audience and the people it
    reached (a lower bound of their union, so a row is never kept on a size it does not have).

    Rows under *k* people are left out; when those add up to between 1 and k-1 people, the
    smallest remaining rows are left out too until the hidden rows hold at least *k* people
    (or nothing is left). Kept rows keep their order.
    """
    _check(k)
    rows = list(rows)
    sizes = [size(row) for row in rows]
    hidden = {i for i, n in enumerate(sizes) if n < k}
    hidden_people = sum(sizes[i] for i in hidden)
    if 0 < hidden_people < k:
        # Smallest first; ties by position, so the same input always hides the same rows.
        for i in sorted((i for i in range(len(rows)) if i not in hidden), key=lambda i: (sizes[i], i)):
            hidden.add(i)
            hidden_people += sizes[i]
            if hidden_people >= k:
                break
    return Kept(rows=[row for i, row in enumerate(rows) if i not in hidden], hidden_rows=len(hidden),
                hidden_people=hidden_people)


def keep_groups_by(rows: Iterable[T], *, partition: Callable[[T], Hashable], size: Callable[[T], int],
                   k: int) -> Kept[T]:
    """:func:`keep_groups` applied separately to each partition (e.g. each week of a time series).

    Each partition is one breakdown with its own total (the week's department rows sum to the
    week's total), so differencing is prevented within each. Kept rows keep their order.
    """
    groups: dict[Hashable, list[tuple[int, T]]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(partition(row), []).append((i, row))
    kept: list[tuple[int, T]] = []
    hidden_rows = hidden_people = 0
    for members in groups.values():
        result = keep_groups(members, size=lambda pair: size(pair[1]), k=k)
        kept.extend(result.rows)
        hidden_rows += result.hidden_rows
        hidden_people += result.hidden_people
    kept.sort(key=lambda pair: pair[0])
    return Kept(rows=[row for _, row in kept], hidden_rows=hidden_rows, hidden_people=hidden_people)


def keep_cells(cells: Iterable[T], *, readers: Callable[[T], int], k: int) -> Kept[T]:
    """The cells of a heatmap read by at least *k* distinct people.

    A reader appears in many cells, so cells are no partition and no total is derived from
    them; show no total beside the heatmap other than one summed from the kept cells.
    ``hidden_people`` is left at 0 (the hidden cells' readers overlap and are not counted).
    """
    _check(k)
    cells = list(cells)
    kept = [cell for cell in cells if readers(cell) >= k]
    return Kept(rows=kept, hidden_rows=len(cells) - len(kept), hidden_people=0)


def guard_population(people: int, *, k: int) -> Hidden | None:
    """``Hidden`` when the filters leave fewer than *k* people (show only that), else None.

    *people* is the number of distinct people the filtered answer describes (for a reading
    chart, everyone the filters select, readers or not).
    """
    _check(k)
    return Hidden(hidden_people=people, min_group=k) if people < k else None
