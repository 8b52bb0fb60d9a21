"""Dependencies and small pieces shared by every domain's routes."""

import uuid
from typing import Annotated

from fastapi import Depends, Query, Request, Response

from nogil_bench.core.config import Settings


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]

# Far past any row count, and far inside the signed 64-bit integers databases take: larger
# offsets are a 422, not an overflow in the database.
MAX_OFFSET = 1_000_000_000

# One page of a newest-first list.
type Limit = Annotated[int, Query(ge=1, le=100)]
type Offset = Annotated[
    int, Query(ge=0, le=MAX_OFFSET, description=f"Items to skip, at most {MAX_OFFSET}.")
]


def set_location(request: Request, response: Response, created_id: uuid.UUID) -> None:
    """A 202's `Location`: the created item's URL, under the collection that was posted to."""
    response.headers["Location"] = f"{request.url.path.rstrip('/')}/{created_id}"
