"""Dependencies and small pieces shared by every domain's routes."""

from typing import Annotated

from fastapi import Depends, Query, Request

from nogil_bench.core.config import Settings


def settings_of(request: Request) -> Settings:
    """The app's settings, which `create_app` keeps on its state."""
    settings: Settings = request.app.state.settings
    return settings


async def get_app_settings(request: Request) -> Settings:
    return settings_of(request)


SettingsDep = Annotated[Settings, Depends(get_app_settings)]

# Far past any row count, and far inside the signed 64-bit integers databases take: larger
# offsets are a 422, not an overflow in the database.
MAX_OFFSET = 1_000_000_000

# One page of a newest-first list.
type Limit = Annotated[int, Query(ge=1, le=100)]
type Offset = Annotated[
    int, Query(ge=0, le=MAX_OFFSET, description=f"Items to skip, at most {MAX_OFFSET}.")
]
