"""The one HTTP retry policy every network source shares.

Retries timeouts, connection errors, 5xx and 429 with exponential backoff,
honouring `Retry-After`; logs before each sleep. A wait longer than the policy
allows is not taken: the poll fails as retryable and the source tries again at
its next interval, so an outage never turns into a retry storm.
"""

from __future__ import annotations

import email.utils
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import Field

from floodwatch.core.settings import MAX_TIMEOUT_S, StrictBase
from floodwatch.errors import SourceError

if TYPE_CHECKING:
    import requests

logger = logging.getLogger(__name__)


class HttpSettings(StrictBase):
    """The one retry policy every HTTP source shares."""

    retries: int = Field(2, ge=0, le=10)
    backoff_s: float = Field(1.0, ge=0, le=MAX_TIMEOUT_S)
    max_backoff_s: float = Field(60.0, ge=0, le=3600)
    # A Retry-After longer than this is not waited for: the poll fails and the
    # source waits for its next interval (no retry storm).
    max_retry_after_s: float = Field(120.0, ge=0, le=3600)
    user_agent: str = "floodwatch (Cà Mau flood alerts)"


_QUERY = re.compile(r"\?[^\s\"]*")


class _NoQueryStrings(logging.Filter):
    """Drop query strings from urllib3's debug lines: they may carry an API key."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(
                _QUERY.sub("?…", a) if isinstance(a, str) else a for a in record.args
            )
        record.msg = _QUERY.sub("?…", str(record.msg)) if "?" in str(record.msg) else record.msg
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_NoQueryStrings())


@dataclass
class RetryPolicy:
    """How often and how long to retry; `sleep` is swappable for tests of the timing."""

    retries: int = 2
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    max_retry_after_s: float = 120.0
    user_agent: str = "floodwatch"
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def from_settings(cls, http: HttpSettings) -> RetryPolicy:
        """The policy of the `[http]` settings."""
        return cls(
            retries=http.retries,
            backoff_s=http.backoff_s,
            max_backoff_s=http.max_backoff_s,
            max_retry_after_s=http.max_retry_after_s,
            user_agent=http.user_agent,
        )

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        return min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))


def retry_after_s(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _describe(response: requests.Response) -> str:
    """A short, log-safe description of an error response (no headers, no secrets)."""
    text = response.text[:200].strip().replace("\n", " ")
    kind = response.headers.get("Content-Type", "").split(";")[0]
    if kind == "application/json":
        try:
            body = response.json()
            if isinstance(body, dict) and body.get("reason"):
                text = str(body["reason"])
        except ValueError:
            pass
    elif kind == "text/html":
        text = "an HTML page"
    return f"HTTP {response.status_code}: {text}"


def _send(
    session: requests.Session,
    url: str,
    params: dict | None,
    headers: dict,
    timeout_s: float,
    form: dict | None,
) -> requests.Response:
    """One GET, or a POST of `form` as a form when given."""
    if form is None:
        return session.get(url, params=params, headers=headers, timeout=timeout_s)
    return session.post(url, params=params, data=form, headers=headers, timeout=timeout_s)


def _read_json(response: requests.Response, name: str, where: str) -> object:
    """The JSON document of a successful response; SourceError when it cannot be read."""
    try:
        return response.json()
    except RecursionError:  # nested thousands deep: hostile or broken
        raise SourceError(f"{name}: {where} sent JSON nested too deeply to read") from None
    except ValueError:
        kind = response.headers.get("Content-Type", "?").split(";")[0]
        raise SourceError(
            f"{name}: {where} sent malformed JSON ({kind}, {len(response.content)} bytes)"
        ) from None


def _attempt(
    session: requests.Session,
    url: str,
    *,
    name: str,
    where: str,
    params: dict | None,
    headers: dict,
    timeout_s: float,
    form: dict | None,
) -> tuple[object, str | None, float | None]:
    """One try: (document, None, None), or (None, problem, Retry-After seconds) to retry.

    SourceError for a failure that no retry can mend.
    """
    import requests

    try:
        response = _send(session, url, params, headers, timeout_s, form)
    except requests.Timeout:
        return None, f"timed out after {timeout_s:g} s", None
    except requests.ConnectionError as exc:
        return None, f"cannot connect ({type(exc).__name__})", None
    except requests.exceptions.ChunkedEncodingError:
        return None, "the reply was cut short", None
    except requests.RequestException as exc:
        raise SourceError(f"{name}: request failed: {type(exc).__name__}") from None
    if response.ok:
        return _read_json(response, name, where), None, None
    problem = _describe(response)
    if response.status_code == 429:
        return None, problem, retry_after_s(response.headers.get("Retry-After"))
    if response.status_code < 500:
        raise SourceError(f"{name}: {where}: {problem}", retryable=False)
    return None, problem, None


def get_json(
    session: requests.Session,
    url: str,
    *,
    name: str,
    params: dict | None = None,
    headers: dict | None = None,
    timeout_s: float = 20.0,
    policy: RetryPolicy | None = None,
    form: dict | None = None,
) -> object:
    """GET a JSON document (POST `form` as a form when given) with the retry policy;
    SourceError once retries are spent.

    `name` prefixes every log line; URLs are logged without their query string
    so an API key in it never reaches the logs.
    """
    policy = policy or RetryPolicy()
    where = url.split("?")[0]
    headers = {"User-Agent": policy.user_agent, **(headers or {})}
    attempt = 0
    while True:
        attempt += 1
        doc, problem, wait = _attempt(
            session, url, name=name, where=where, params=params, headers=headers,
            timeout_s=timeout_s, form=form,
        )  # fmt: skip
        if problem is None:
            return doc
        if attempt > policy.retries:
            raise SourceError(f"{name}: {where}: {problem} (gave up after {attempt} tries)",
                              retryable=True)  # fmt: skip
        wait = policy.backoff(attempt) if wait is None else wait
        if wait > policy.max_retry_after_s:
            raise SourceError(
                f"{name}: {where}: {problem}; asked to wait {wait:.0f} s, trying next interval",
                retryable=True,
            )
        logger.warning("%s: %s: %s; retry %d/%d in %.1f s", name, where, problem, attempt,
                       policy.retries, wait)  # fmt: skip
        policy.sleep(wait)
