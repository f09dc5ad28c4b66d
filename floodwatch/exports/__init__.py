"""Exports for planners and other systems: event and statistics tables (CSV, XLSX,
JSON), GeoJSON, CAP 1.2. May import `db`, `messages`, the core and the config."""
