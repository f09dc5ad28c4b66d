"""The shared retry policy against a real local server: retries, Retry-After, give-ups."""

from __future__ import annotations

import pytest
import requests

from floodwatch.errors import SourceError
from floodwatch.sources._http import RetryPolicy, get_json, retry_after_s
from tests.fakeserver import Reply


def policy(waits: list[float], **kw) -> RetryPolicy:
    """A policy that records its sleeps instead of sleeping."""
    return RetryPolicy(retries=3, backoff_s=1.0, sleep=waits.append, **kw)


def test_5xx_then_success_retries_with_backoff(fake_server):
    fake_server.routes["/v1"] = [Reply(500, "boom"), Reply(502, "bad"), Reply.json('{"ok": 1}')]
    waits: list[float] = []
    doc = get_json(requests.Session(), fake_server.url + "/v1", name="t", policy=policy(waits))
    assert doc == {"ok": 1}
    assert waits == [1.0, 2.0]
    assert len(fake_server.requests) == 3


def test_429_honours_retry_after_and_reports_the_reason(fake_server):
    reason = "Minutely API request limit exceeded. Please try again in one minute."
    limited = Reply.json(f'{{"error": true, "reason": "{reason}"}}', status=429)
    limited.headers["Retry-After"] = "7"
    fake_server.routes["/v1"] = [limited, Reply.json("[]")]
    waits: list[float] = []
    assert (
        get_json(requests.Session(), fake_server.url + "/v1", name="t", policy=policy(waits)) == []
    )
    assert waits == [7.0]


def test_long_retry_after_is_not_waited_for(fake_server):
    fake_server.routes["/v1"] = [Reply(429, "slow down", {"Retry-After": "3600"})]
    waits: list[float] = []
    with pytest.raises(SourceError, match="asked to wait 3600 s") as info:
        get_json(requests.Session(), fake_server.url + "/v1", name="t", policy=policy(waits))
    assert info.value.retryable and waits == []
    assert len(fake_server.requests) == 1


def test_client_errors_are_not_retried(fake_server):
    body = (
        '{"error": true, "reason": "Cannot initialize WeatherVariable from invalid String value x"}'
    )
    fake_server.routes["/v1"] = [Reply(400, body, {"Content-Type": "application/json"})]
    with pytest.raises(SourceError, match="HTTP 400: Cannot initialize") as info:
        get_json(requests.Session(), fake_server.url + "/v1", name="t", policy=policy([]))
    assert not info.value.retryable
    assert len(fake_server.requests) == 1


def test_connection_refused_gives_up_after_the_retries(closed_port):
    waits: list[float] = []
    with pytest.raises(SourceError, match=r"cannot connect .*gave up after 4 tries"):
        get_json(requests.Session(), f"http://127.0.0.1:{closed_port}/v1", name="t",
                 policy=policy(waits))  # fmt: skip
    assert waits == [1.0, 2.0, 4.0]


def test_timeout_and_malformed_bodies(fake_server):
    fake_server.routes["/slow"] = [Reply.json("{}", delay_s=1.0)]
    with pytest.raises(SourceError, match="timed out after 0.2 s"):
        get_json(requests.Session(), fake_server.url + "/slow", name="t", timeout_s=0.2,
                 policy=RetryPolicy(retries=0))  # fmt: skip
    fake_server.routes["/html"] = [
        Reply(200, "<html>Bad gateway</html>", {"Content-Type": "text/html"})
    ]
    with pytest.raises(SourceError, match=r"malformed JSON \(text/html"):
        get_json(requests.Session(), fake_server.url + "/html", name="t")
    fake_server.routes["/cut"] = [Reply.json('{"hourly": {"time": [1, 2, 3]}}', truncate=True)]
    with pytest.raises(SourceError):
        get_json(requests.Session(), fake_server.url + "/cut", name="t",
                 policy=RetryPolicy(retries=0))  # fmt: skip


def test_retry_after_parsing():
    assert retry_after_s("12") == 12.0
    assert retry_after_s(None) is None
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
