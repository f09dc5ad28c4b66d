"""One error hierarchy, and the wording of a file that is not UTF-8 text.

The CLI turns these errors into one clear line and exit code 1.
"""

from __future__ import annotations

from pathlib import Path


class FloodwatchError(Exception):
    """Base of every error floodwatch raises on purpose."""


class ConfigError(FloodwatchError):
    """The configuration file is wrong; `problems` holds one line per mistake."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class GeodataError(ConfigError):
    """A segment or station GeoJSON file is wrong; one line per feature problem."""


class InputError(FloodwatchError):
    """A user-supplied data file (CSV, observations) cannot be used at all."""


class SourceError(FloodwatchError):
    """A data source failed; `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = False):
        self.retryable = retryable
        super().__init__(message)


class StorageError(FloodwatchError):
    """The database cannot be opened, migrated or written."""


class DeliveryError(FloodwatchError):
    """An alert could not be delivered."""


def not_utf8(path: Path, exc: UnicodeDecodeError, what: str) -> str:
    """One line saying a file is not UTF-8 text, with the first bad byte and a likely cause."""
    head = exc.object[:64] if isinstance(exc.object, bytes) else b""
    if head[:2] == b"\x1f\x8b":
        hint = "it is gzip-compressed; decompress it first"
    elif head[:2] in (b"\xff\xfe", b"\xfe\xff") or head[1:8:2].count(0) >= 3:
        hint = "it is UTF-16; save it as UTF-8"  # ASCII in UTF-16: every other byte is NUL
    else:
        hint = "save it as UTF-8"
    byte = exc.object[exc.start] if isinstance(exc.object, bytes) else 0
    return f"{path}: {what} is not UTF-8 text (byte 0x{byte:02x} at offset {exc.start}); {hint}"
