"""Validators for what does not change: an `ETag` over the body's canonical JSON, `If-None-Match`
answered with 304 and no body. A catalogue version, an event or a schema never changes (they may
be cached for good); a publication gains `restated_by` when it is restated, so it is revalidated."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

FOREVER = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


def entity_tag(content: Any) -> str:
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return '"' + hashlib.sha256(canonical.encode("utf-8")).hexdigest() + '"'


def _matches(if_none_match: str | None, tag: str) -> bool:
    if not if_none_match:
        return False
    offered = {part.strip().removeprefix("W/") for part in if_none_match.split(",")}
    return "*" in offered or tag in offered


def conditional(request: Request, content: Any, cache_control: str = FOREVER) -> Response:
    """The content with its ETag, or 304 when the client already holds this very version."""
    tag = entity_tag(content)
    headers = {"ETag": tag, "Cache-Control": cache_control}
    if _matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=headers)
    return JSONResponse(content, headers=headers)
