"""Dependencies and small pieces shared by every domain's routes."""

from typing import Annotated

from fastapi import Depends, Query, Request

from nogil_bench.core.config import Settings


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]

# One page of a newest-first list.
type Limit = Annotated[int, Query(ge=1, le=100)]
type Offset = Annotated[int, Query(ge=0)]
