"""An HTML page read as a browser would see it, for specifying what a report page shows."""

from html.parser import HTMLParser


class Page(HTMLParser):
    """What a browser would see: the tags with their attributes, and the text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def words(self) -> str:
        return " ".join(" ".join(self.text).split())

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]

    def links(self) -> list[str]:
        """Every address the page would load or link to."""
        return [
            str(attrs[name]) for _, attrs in self.tags for name in ("src", "href") if name in attrs
        ]
