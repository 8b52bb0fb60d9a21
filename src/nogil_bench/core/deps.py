"""Dependencies and small pieces shared by every domain's routes."""

import uuid
from typing import Annotated

from fastapi import Depends, Query, Request, Response

from nogil_bench.core.config import Settings


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]

# One page of a newest-first list.
type Limit = Annotated[int, Query(ge=1, le=100)]
type Offset = Annotated[int, Query(ge=0)]


def set_location(request: Request, response: Response, created_id: uuid.UUID) -> None:
    """A 202's `Location`: the created item's URL, under the collection that was posted to."""
    response.headers["Location"] = f"{request.url.path.rstrip('/')}/{created_id}"
