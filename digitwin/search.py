"""JSONPath (RFC 9535) search over the directory, one TD at a time.

The query is evaluated against each TD wrapped in a one-element array and the results
are concatenated in id order. For every query whose first step selects by name,
wildcard, filter or descendants (``$[?@.title=='Lamp']``, ``$..properties``) this equals
evaluating it on the array of all TDs, without holding that array in memory. A first
step that selects by position (``$[0]``, ``$[1:5]``) would need the whole array and is
refused: paging by offset is the listing's job. Inside a filter, ``$`` is the one-TD
array rather than the whole directory.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jsonpath_rfc9535 as jsonpath
from jsonpath_rfc9535.selectors import IndexSelector, SliceSelector

from .errors import BadRequest


def compile_query(query: str) -> jsonpath.JSONPathQuery:
    if not isinstance(query, str) or not query.strip():
        raise BadRequest("a JSONPath query is required")
    try:
        compiled = jsonpath.compile(query)
    except jsonpath.JSONPathError as exc:
        raise BadRequest(f"invalid JSONPath query {query!r}: {exc}") from None
    first = compiled.segments[0] if compiled.segments else None
    if first is not None and any(
        isinstance(selector, IndexSelector | SliceSelector) for selector in first.selectors
    ):
        raise BadRequest(
            f"JSONPath query {query!r} selects Things by position; use a filter "
            "(e.g. $[?@.title=='Lamp']) or page the listing with offset and limit"
        )
    return compiled


def search(query: str, tds: Iterable[dict[str, Any]]) -> list[Any]:
    """The values the query selects, TD by TD in the order given."""
    compiled = compile_query(query)
    found: list[Any] = []
    for td in tds:
        found.extend(node.value for node in compiled.find([td]))
    return found
