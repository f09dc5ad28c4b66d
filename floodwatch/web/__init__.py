"""The operators' web: map, flood log, event and road pages, JSON API (FastAPI + Jinja2)."""
