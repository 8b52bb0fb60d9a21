"""The one Jinja2 environment every page is drawn with: templates from this package's
`templates/` folder, every value escaped unless a template is told otherwise (none is), and
undefined names an error rather than an empty string."""

import base64
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


@cache
def environment() -> Environment:
    return Environment(
        loader=PackageLoader("nogil_bench.reports", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def data_url(content: bytes, media_type: str) -> str:
    """Content inlined as a data: URL: the page's chart and downloads load from nowhere else
    (the pages' Content-Security-Policy allows data: images and nothing remote)."""
    return f"data:{media_type};base64,{base64.b64encode(content).decode('ascii')}"
