"""The manager graph: every employee has at most one manager, and a chain must never loop.

Sources disagree, files contain typos, and a loop (A reports to B, B to A) would make every
"who is above me" question endless. The planners find loops here, in one pass over the graph,
before anything is applied.
"""
from __future__ import annotations

from collections.abc import Mapping


def on_cycles(graph: Mapping[str, str | None]) -> set[str]:
    """Every node that lies on a loop of the manager graph (each node has at most one manager)."""
    state: dict[str, int] = {}  # 1: on the path being walked, 2: finished
    found: set[str] = set()
    for start in graph:
        if start in state:
            continue
        path: list[str] = []
        node: str | None = start
        while node is not None and node not in state:
            state[node] = 1
            path.append(node)
            node = graph.get(node)
        if node is not None and state[node] == 1:  # walked back into this path: a loop
            found.update(path[path.index(node):])
        for member in path:
            state[member] = 2
    return found


def cycle_from(graph: Mapping[str, str | None], start: str) -> list[str]:
    """The manager chain from *start* back to *start*, if the chain loops through it; else []."""
    path, seen = [start], {start}
    node = graph.get(start)
    while node is not None:
        if node == start:
            return path
        if node in seen:
            return []  # a loop further up, not through start
        seen.add(node)
        path.append(node)
        node = graph.get(node)
    return []
