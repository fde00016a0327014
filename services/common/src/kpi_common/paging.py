"""How every growing list pages: `after` (a sequence cursor) and `limit` in the query, items in
sequence order, and a `Link: <…>; rel="next"` header while more may follow. The event feed also
carries the cursor in its body (`next_after`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, TypeVar

from fastapi import Query, Request, Response

from kpi_common.as_of import LARGEST_SEQUENCE

T = TypeVar("T")
AfterQuery = Annotated[
    int, Query(ge=0, le=LARGEST_SEQUENCE, description="Only items after this cursor (the last `sequence` you hold)")
]
LimitQuery = Annotated[int, Query(ge=1, le=1000, description="At most this many items")]


def page_of(items: Sequence[T], after: int, limit: int, cursor: Callable[[T], int]) -> tuple[list[T], bool]:
    """The items after the cursor, in cursor order, at most `limit`; and whether more follow."""
    later = sorted((item for item in items if cursor(item) > after), key=cursor)
    return later[:limit], len(later) > limit


def link_next(request: Request, response: Response, next_after: int) -> None:
    url = request.url.include_query_params(after=next_after)
    response.headers["Link"] = f'<{url}>; rel="next"'
