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
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jsonpath_rfc9535 as jsonpath
from jsonpath_rfc9535.segments import JSONPathChildSegment, JSONPathRecursiveDescentSegment
from jsonpath_rfc9535.selectors import IndexSelector, SliceSelector

from .errors import BadRequest


def compile_query(query: str) -> jsonpath.JSONPathQuery:
    if not isinstance(query, str) or not query.strip():
        raise BadRequest("a JSONPath query is required")
    try:
        compiled = jsonpath.compile(query)
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


_EACH = jsonpath.compile("$[*]").segments[0]


def search(query: str, tds: Iterable[dict[str, Any]]) -> list[Any]:
    """The values the query selects from the array of ``tds``, reading them once."""
    compiled = compile_query(query)
    env, first, rest = compiled.env, compiled.segments[0], compiled.segments[1:]
    # The first step on the array: each selector's results over all TDs form one block.
    parts = [
        jsonpath.JSONPathQuery(
            env=env,
            segments=(JSONPathChildSegment(env=env, token=first.token, selectors=(s,)), *rest),
        )
        for s in first.selectors
    ]
    # ".." then goes on below the array: each TD and everything in it, TD by TD.
    below = None
    if isinstance(first, JSONPathRecursiveDescentSegment):
        below = jsonpath.JSONPathQuery(env=env, segments=(_EACH, *compiled.segments))
    blocks: list[list[Any]] = [[] for _ in parts]
    found_below: list[Any] = []
    for td in tds:
        wrapped = [td]
        for block, part in zip(blocks, parts, strict=True):
            block.extend(node.value for node in part.find(wrapped))
        if below is not None:
            found_below.extend(node.value for node in below.find(wrapped))
    return [value for block in blocks for value in block] + found_below
