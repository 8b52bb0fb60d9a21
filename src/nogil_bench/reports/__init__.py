"""Reports a person reads and passes on: one self-contained HTML page per measurement (and per
batch), drawn from Jinja2 templates with autoescaping, for the CLI's `--html` and the service's
`/report` routes alike. A page needs no script and loads nothing from anywhere: its CSS is
inline and its chart and downloads are data: URLs, so it reads offline and prints."""
