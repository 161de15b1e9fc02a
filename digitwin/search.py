"""JSONPath (RFC 9535) search over the directory, one TD at a time.

The query is evaluated against each TD wrapped in a one-element array, in id order. For
every query whose first step selects by name, wildcard, filter or descendants
(``$[?@.title=='Lamp']``, ``$..properties``) the results equal evaluating it on the
array of all TDs, without holding that array in memory: what the first step selects
from the array itself comes first, one block per selector, then (for ``..``) what it
selects below each TD. A first step that selects by position (``$[0]``, ``$[1:5]``)
would need the whole array and is refused, as is a bare ``$``: paging by offset is the
listing's job.
Inside a filter, ``$`` is the one-TD array rather than the whole directory.

A query's cost is bounded: descendant segments multiply (``$..*..*..*`` visits every
node below every node below every node), so a search that visits more than
``max_nodes`` nodes or runs longer than ``max_seconds`` is stopped and refused with
``QueryTooCostly`` (422, naming the limit). Nodes are counted where the evaluation
makes them: between the query's steps, for each node a descendant segment visits (also
inside filters) and for each node a wildcard or filter selector looks into.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import jsonpath_rfc9535 as jsonpath
from jsonpath_rfc9535.node import JSONPathNode
from jsonpath_rfc9535.segments import JSONPathChildSegment, JSONPathRecursiveDescentSegment
from jsonpath_rfc9535.selectors import IndexSelector, SliceSelector

from vocabulary.problems import BadRequest, Problem, problem_title

# A filter on the TDs counts a node or two per TD, a named descent ($..properties)
# about a hundred; a few descendant segments in a row ($..*..*) reach the limit within
# a hundred TDs. The search runs on the event loop, so the time limit bounds how long
# it holds the loop, whatever it spends the time on (reading TDs, a regex).
MAX_NODES = 100_000
MAX_SECONDS = 2.0  # a backstop for directories so big that reading them takes long
_CLOCK_EVERY = 1024  # nodes between two looks at the clock


class QueryTooCostly(Problem):
    """The search went over a limit; ``limit`` names it (max_search_nodes or
    max_search_seconds)."""

    status = 422
    title = problem_title(422)

    def __init__(self, query: str, limit: str, what: str) -> None:
        super().__init__(
            f"the JSONPath query {query!r} is too costly: it {what} (the hub's limit, "
            f"{limit}); select fewer nodes, e.g. a filter on the TDs ($[?@.title=='Lamp']) "
            "or a path ($[*].properties) rather than repeated descendant segments (..)",
            limit=limit,
        )


class _Meter:
    """Counts the nodes of one search and watches its clock."""

    def __init__(self, query: str, max_nodes: int, max_seconds: float) -> None:
        self.query = query
        self.max_nodes = max_nodes
        self.max_seconds = max_seconds
        self.nodes = 0
        self.started = time.monotonic()
        self._next_look = _CLOCK_EVERY

    def count(self) -> None:
        self.nodes += 1
        if self.nodes > self.max_nodes:
            raise QueryTooCostly(
                self.query, "max_search_nodes", f"visits more than {self.max_nodes} nodes"
            )
        if self.nodes >= self._next_look:
            self._next_look += _CLOCK_EVERY
            self.check_clock()

    def check_clock(self) -> None:
        if time.monotonic() - self.started > self.max_seconds:
            raise QueryTooCostly(
                self.query, "max_search_seconds", f"takes more than {self.max_seconds} s"
            )


class _MeteredEnvironment(jsonpath.JSONPathEnvironment):
    """The library's environment, read by its descendant segment for every node it
    visits (``max_recursion_depth``) and by the wildcard and filter selectors for every
    node they look into (``nondeterministic``): each read counts one node."""

    def __init__(self, meter: _Meter) -> None:
        self.meter = meter
        super().__init__()

    # The library's settings are plain attributes; read-only properties are the hook
    # (nothing writes them), which mypy cannot tell from a broken override.
    @property
    def max_recursion_depth(self) -> int:  # type: ignore[override]
        self.meter.count()
        return jsonpath.JSONPathEnvironment.max_recursion_depth

    @property
    def nondeterministic(self) -> bool:  # type: ignore[override]
        self.meter.count()
        return False


def compile_query(
    query: str, env: jsonpath.JSONPathEnvironment | None = None
) -> jsonpath.JSONPathQuery:
    if not isinstance(query, str) or not query.strip():
        raise BadRequest("a JSONPath query is required")
    try:
        compiled = (env or jsonpath.DEFAULT_ENV).compile(query)
    except jsonpath.JSONPathError as exc:
        raise BadRequest(f"invalid JSONPath query {query!r}: {exc}") from None
    if not compiled.segments:
        raise BadRequest(
            "the JSONPath query $ selects the whole directory at once; list the Things "
            "with offset and limit instead"
        )
    first = compiled.segments[0]
    if any(isinstance(selector, IndexSelector | SliceSelector) for selector in first.selectors):
        raise BadRequest(
            f"JSONPath query {query!r} selects Things by position; use a filter "
            "(e.g. $[?@.title=='Lamp']) or page the listing with offset and limit"
        )
    return compiled


def search(
    query: str,
    tds: Iterable[dict[str, Any]],
    *,
    max_nodes: int = MAX_NODES,
    max_seconds: float = MAX_SECONDS,
) -> list[Any]:
    """The values the query selects from the array of ``tds``, reading them once.
    Raises BadRequest for a query it cannot run, QueryTooCostly past a limit."""
    meter = _Meter(query, max_nodes, max_seconds)
    env = _MeteredEnvironment(meter)
    compiled = compile_query(query, env)
    first, rest = compiled.segments[0], compiled.segments[1:]
    # The first step on the array: each selector's results over all TDs form one block.
    parts = [
        (JSONPathChildSegment(env=env, token=first.token, selectors=(s,)), *rest)
        for s in first.selectors
    ]
    # ".." then goes on below the array: each TD and everything in it, TD by TD.
    below = None
    if isinstance(first, JSONPathRecursiveDescentSegment):
        each = env.compile("$[*]").segments[0]
        below = (each, *compiled.segments)
    blocks: list[list[Any]] = [[] for _ in parts]
    found_below: list[Any] = []
    for td in tds:
        meter.check_clock()  # reading a TD costs time, not nodes
        wrapped = [td]
        for block, part in zip(blocks, parts, strict=True):
            block.extend(node.value for node in _evaluate(part, wrapped, meter))
        if below is not None:
            found_below.extend(node.value for node in _evaluate(below, wrapped, meter))
    return [value for block in blocks for value in block] + found_below


def _evaluate(segments: Iterable[Any], value: Any, meter: _Meter) -> Iterator[JSONPathNode]:
    """What ``JSONPathQuery.finditer`` does, counting the nodes between the steps."""
    nodes: Iterable[JSONPathNode] = [
        JSONPathNode(value=value, location=(), parent=None, root=value)
    ]
    for segment in segments:
        nodes = _counted(segment.resolve(nodes), meter)
    return iter(nodes)


def _counted(nodes: Iterable[JSONPathNode], meter: _Meter) -> Iterator[JSONPathNode]:
    for node in nodes:
        meter.count()
        yield node
