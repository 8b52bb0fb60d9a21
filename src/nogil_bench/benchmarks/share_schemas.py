import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class ShareLinkPublic(BaseModel):
    """A live link to a benchmark's report. Its URL cannot be shown again: only the SHA-256 of
    its token is stored, so the URL is given once, when the link is made. Lost it? Revoke this
    link and make a new one."""

    id: uuid.UUID = Field(description="Revoke it with DELETE .../share/{id}.")
    created_at: datetime


class ShareLinkCreated(ShareLinkPublic):
    """A new link: its URL is shown this once."""

    url: str = Field(
        description="Anyone holding it reads the benchmark's report, without logging in, until "
        "it is revoked. Shown this once: only the SHA-256 of its token is stored.",
        examples=[
            "https://bench.example.com/api/v1/shared/3q2-7wEb3yiR6yW4tr5pFu8nQ0ZDq2Sx1bJm4aUwNlE"
        ],
    )


class ShareLinksPublic(BaseModel):
    data: list[ShareLinkPublic]
    count: int = Field(description="The benchmark's live links in all pages.")
