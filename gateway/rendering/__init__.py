"""Templates to messages: the Jinja2 sandbox, locales, dates and zones, the template context,
SMS encoding and cost, `templates check` and previews.

Pure functions of data: a protocol reaches a template as plain values, never as a database
row. May import: the top-level `config`, `errors`, `observability`. Never `store`, `api`, `web`.
"""
