"""The hub's website: server-rendered pages (jinja2, autoescaped) over the same services as the API."""
