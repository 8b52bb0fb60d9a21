"""How the service sends a report page: as HTML that may run no script and load nothing from
any other place, whatever a user-given string on it might try."""

from fastapi import Response

# No script, no remote load of any kind: only the page's own inline CSS and data: images; and
# what default-src does not cover: no framing by another site, no <base>, no form posts.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def html_response(body: str, *, shared: bool, status_code: int = 200) -> Response:
    """A page of ours. A shared page also tells the browser to send no Referer onwards, so its
    link (the token is the credential) never leaks to a site the reader visits next."""
    headers = {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }
    if shared:
        headers["Referrer-Policy"] = "no-referrer"
    return Response(
        body, status_code=status_code, media_type="text/html; charset=utf-8", headers=headers
    )
