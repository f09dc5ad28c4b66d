"""A fake Telegram Bot API server on 127.0.0.1 for the real python-telegram-bot client.

    with FakeTelegram() as tg:
        bot = Bot(TOKEN, base_url=f"{tg.url}/bot")
        ...
        assert tg.texts(-1001234567890) == ["..."]

PTB POSTs to ``{base_url}{token}/{method}``, url-encoded or multipart (uploads); every value
that is not a string arrives JSON-encoded. Replies are real Bot API envelopes.

What tests use (all thread-safe):

- ``url``, ``token_seen`` (the token taken from the request path), ``with`` starts/stops.
- ``sent``: accepted calls, in arrival order, of every method not named ``get*`` (so
  ``sendMessage``, ``sendPhoto``, ``editMessageText``, ``answerCallbackQuery``, ...);
  ``calls``: every request, failed ones included (``Call.status``). ``messages(chat_id)`` /
  ``texts(chat_id)``: the accepted ``sendMessage``/``sendPhoto`` calls to a chat / their text
  or caption. ``current(chat_id, message_id)``: a message as it is now (after edits).
- Failures (a ``Failure``, see ``ERRORS``): ``fail_next(method, n, error, chat_id=None,
  skip=0)`` (after letting ``skip`` matching calls through),
  ``down(error=502)`` / ``up()`` for every method (``"refused"`` closes the listening socket),
  ``migrate(old, new)``, ``block(chat_id, kind)`` / ``unblock(chat_id)``.
- ``enforce_limits = True``: Telegram's flood limits (``limits``) answered with 429 and an
  integer ``retry_after``; each one is recorded in ``limit_violations``.
- Updates for ``getUpdates``: ``push_update``, ``push_message``, ``push_callback``.

Like Telegram, ``sendMessage``/``editMessageText`` reject text over 4,096 characters (after
entity parsing, in UTF-16 units), captions over 1,024, malformed HTML with ``parse_mode=HTML``
("can't parse entities"), and edits that change nothing ("message is not modified").
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

BOT_USER = {
    "id": 7000000001,
    "is_bot": True,
    "first_name": "Floodwatch Test",
    "username": "floodwatch_test_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}


def envelope(error_code: int, description: str, **parameters: int) -> dict[str, Any]:
    """A Bot API error envelope; `parameters` are its ResponseParameters (retry_after, ...)."""
    body: dict[str, Any] = {"ok": False, "error_code": error_code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


def retry_after_error(seconds: int) -> dict[str, Any]:
    """The 429 flood-control error."""
    return envelope(429, f"Too Many Requests: retry after {seconds}", retry_after=seconds)


def migrated_error(new_chat_id: int) -> dict[str, Any]:
    """The error for a group that became a supergroup."""
    return envelope(
        400,
        "Bad Request: group chat was upgraded to a supergroup chat",
        migrate_to_chat_id=new_chat_id,
    )


def bad_request(description: str) -> dict[str, Any]:
    """A 400 with Telegram's 'Bad Request: ' prefix."""
    return envelope(400, f"Bad Request: {description}")


# Canned errors by name. A `Failure` is one of these names, an envelope dict (served with its
# error_code as HTTP status), an int (that HTTP status with an nginx HTML body), "timeout" (no
# reply for `timeout_s`, then the connection closes; the call is not executed), "slow" (executed
# and recorded, but the reply comes after `timeout_s`), or, for `down()` only, "refused".
ERRORS: dict[str, dict[str, Any]] = {
    "retry_after": retry_after_error(5),
    "kicked": envelope(403, "Forbidden: bot was kicked from the group chat"),
    "blocked": envelope(403, "Forbidden: bot was blocked by the user"),
    "not_found": bad_request("chat not found"),
    "migrated": migrated_error(-1001999999999),
    "parse_entities": bad_request(
        'can\'t parse entities: Unsupported start tag "x" at byte offset 5'
    ),
}
Failure = str | int | dict

NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
# Values kept as strings; every other form value is JSON-decoded when it parses.
TEXT_FIELDS = {"text", "caption", "parse_mode", "callback_query_id", "photo", "url", "data"}
GROUP_TYPES = ("group", "supergroup")


@dataclass
class Limits:
    """Telegram's flood limits, checked for send* methods when `enforce_limits` is on."""

    per_chat_interval_s: float = 1.0  # 1 message per second in one chat
    group_per_minute: int = 20  # 20 messages per minute in one group
    global_per_second: int = 30  # 30 messages per second overall


@dataclass
class LimitViolation:
    """A send refused with 429 because it broke one of the limits."""

    rule: str  # "per_chat" | "group_per_minute" | "global_per_second"
    method: str
    chat_id: int | str | None
    retry_after: int
    at: float


@dataclass
class Call:
    """One request as the server saw it."""

    method: str
    params: dict[str, Any]  # every field, JSON-decoded where it was JSON (chat_id is an int)
    at: float  # time.monotonic() on arrival
    photo: bytes | str | None = None  # uploaded bytes, or a file_id/URL
    status: int | str = 200  # HTTP status answered, or "timeout"
    result: Any = None  # the `result` answered, when ok

    @property
    def chat_id(self) -> int | str | None:
        return self.params.get("chat_id")

    @property
    def text(self) -> str | None:
        """The text, or a photo's caption."""
        return self.params.get("text", self.params.get("caption"))

    @property
    def parse_mode(self) -> str | None:
        return self.params.get("parse_mode")

    @property
    def reply_markup(self) -> dict | None:
        return self.params.get("reply_markup")

    @property
    def message_thread_id(self) -> int | None:
        return self.params.get("message_thread_id")

    @property
    def has_photo(self) -> bool:
        return self.photo is not None

    @property
    def message_id(self) -> int | None:
        """The message sent or edited."""
        if isinstance(self.result, dict) and "message_id" in self.result:
            return self.result["message_id"]
        return self.params.get("message_id")


class _Refusal(Exception):
    """A reply that is an error envelope (raised out of a method implementation)."""

    def __init__(self, body: dict[str, Any]):
        super().__init__(body["description"])
        self.body = body


_HTML_TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler",
    "a", "code", "pre", "blockquote", "tg-emoji",
}  # fmt: skip
_ENTITY = re.compile(r"&(lt|gt|amp|quot|#[0-9]+|#x[0-9a-fA-F]+);")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def parse_html(text: str) -> str:
    """Telegram's HTML parse mode, roughly: the plain text, or _Refusal like Telegram's."""

    def fail(reason: str) -> _Refusal:
        return _Refusal(bad_request(f"can't parse entities: {reason}"))

    plain: list[str] = []
    stack: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "<":
            offset = len(text[:i].encode())
            end = text.find(">", i)
            closing = text.startswith("</", i)
            if end < 0:
                kind = "end" if closing else "start"
                raise fail(f"Unclosed {kind} tag at byte offset {offset}")
            if closing:
                name = text[i + 2 : end].strip().lower()
                if not stack:
                    raise fail(f"Unexpected end tag at byte offset {offset}")
                if name != stack[-1]:
                    raise fail(
                        f'End tag "{name}" doesn\'t match start tag "{stack[-1]}"'
                        f" at byte offset {offset}"
                    )
                stack.pop()
            else:
                name = re.match(r"[^\s/>]*", text[i + 1 : end]).group().lower()
                if name not in _HTML_TAGS:
                    raise fail(f'Unsupported start tag "{name}" at byte offset {offset}')
                stack.append(name)
            i = end + 1
            continue
        match = _ENTITY.match(text, i) if ch == "&" else None
        if match:
            code = match.group(1)
            if code.startswith("#x"):
                plain.append(chr(int(code[2:], 16)))
            elif code.startswith("#"):
                plain.append(chr(int(code[1:])))
            else:
                plain.append(_NAMED[code])
            i = match.end()
            continue
        plain.append(ch)
        i += 1
    if stack:
        raise fail(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(plain)


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _nginx_page(status: int) -> str:
    from http import HTTPStatus

    try:
        title = f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        title = str(status)
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )


class _Server(ThreadingHTTPServer):
    """A listen backlog for many chats sending in the same pass (the default 5 drops connects)."""

    request_queue_size = 128


class FakeTelegram:
    """The fake Bot API. Bound on construction; `with` (or start/stop) runs it."""

    def __init__(self, *, timeout_s: float = 1.5, longpoll_max_s: float = 2.0) -> None:
        self.timeout_s = timeout_s  # how long "timeout"/"slow" hang: beyond the read timeout
        self.longpoll_max_s = longpoll_max_s  # getUpdates waits min(timeout, this)
        self.enforce_limits = False
        self.limits = Limits()
        self.limit_violations: list[LimitViolation] = []
        self.token_seen: str | None = None
        self.sent: list[Call] = []
        self.calls: list[Call] = []
        self.bot_user = dict(BOT_USER)

        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._failures: list[list[Any]] = []  # [method, remaining, error, chat_id, skip]
        self._down: Failure | None = None
        self._broken: dict[int | str, dict[str, Any]] = {}  # chat -> error envelope
        self._chat_types: dict[int | str, str] = {}
        self._last_ids: dict[int | str, int] = {}
        self._messages: dict[tuple[int | str, int], dict[str, Any]] = {}
        self._updates: list[dict[str, Any]] = []
        self._next_update_id = 1
        self._next_query_id = 1
        self._chat_last: dict[int | str, float] = {}
        self._group_sends: dict[int | str, deque[float]] = {}
        self._all_sends: deque[float] = deque()

        self._port = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._bind()

    # -- lifecycle ---------------------------------------------------------------------------

    def _bind(self) -> None:
        self._httpd = _Server(("127.0.0.1", self._port), self._handler_class())
        self._httpd.daemon_threads = True
        self._port = self._httpd.server_address[1]

    def _serve(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def _close(self) -> None:
        if self._httpd is not None:
            if self._thread is not None:
                self._httpd.shutdown()
            self._httpd.server_close()
        self._httpd = self._thread = None

    @property
    def url(self) -> str:
        """Base URL, without a trailing slash; the bot's base_url is f"{url}/bot"."""
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> FakeTelegram:
        self._stopping.clear()
        if self._httpd is None:
            self._bind()
        self._serve()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes hanging and long-polling handlers
        with self._cond:
            self._cond.notify_all()
        self._close()

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what tests drive --------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        n: int = 1,
        error: Failure = "retry_after",
        chat_id: int | None = None,
        skip: int = 0,
    ) -> None:
        """The next `n` calls of `method` (only those to `chat_id`, if given) fail with `error`,
        after `skip` such calls have gone through."""
        with self._cond:
            self._failures.append([method.lower(), n, error, chat_id, skip])

    def down(self, error: Failure = 502) -> None:
        """An outage of every method until `up()`; "refused" stops listening on the port."""
        with self._cond:
            self._down = error
        if error == "refused":
            self._close()

    def up(self) -> None:
        """End the outage (rebinding the same port after "refused")."""
        with self._cond:
            self._down = None
        if self._httpd is None and not self._stopping.is_set():
            self._bind()
            self._serve()

    def migrate(self, old_chat_id: int, new_chat_id: int) -> None:
        """The group became a supergroup: calls to old_chat_id now fail with the migrate error."""
        with self._cond:
            self._broken[old_chat_id] = migrated_error(new_chat_id)
            self._chat_types[new_chat_id] = "supergroup"

    def block(self, chat_id: int, kind: str = "kicked") -> None:
        """Calls to chat_id fail from now on: kind is "kicked", "blocked" or "not_found"."""
        with self._cond:
            self._broken[chat_id] = ERRORS[kind]

    def unblock(self, chat_id: int) -> None:
        with self._cond:
            self._broken.pop(chat_id, None)

    def push_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an Update for getUpdates (update_id assigned if missing); returns it."""
        with self._cond:
            if "update_id" not in update:
                update = {"update_id": self._next_update_id, **update}
            self._next_update_id = max(self._next_update_id, update["update_id"] + 1)
            self._updates.append(update)
            self._cond.notify_all()
        return update

    def push_message(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        *,
        username: str | None = None,
        photo: bool = False,
        chat_type: str = "supergroup",
        message_thread_id: int | None = None,
    ) -> dict[str, Any]:
        """A user's message (a photo with `text` as caption if photo); "/cmd" gets its entity."""
        with self._cond:
            self._chat_types[chat_id] = chat_type
            fields: dict[str, Any] = {"from": self._user(user_id, username)}
            if message_thread_id is not None:
                fields["message_thread_id"] = message_thread_id
                fields["is_topic_message"] = True
            if photo:
                fields["photo"] = self._photo_sizes(f"u{user_id}-{time.monotonic_ns()}", 50_000)
                if text:
                    fields["caption"] = text
            else:
                fields["text"] = text
                if text.startswith("/"):
                    length = _utf16_len(text.split()[0])
                    fields["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
            message = self._new_message(chat_id, fields)
        return self.push_update({"message": message})

    def push_callback(
        self,
        chat_id: int,
        user_id: int,
        message_id: int,
        data: str,
        *,
        username: str | None = None,
    ) -> dict[str, Any]:
        """A press of an inline button with callback `data` on message `message_id`."""
        with self._cond:
            message = self._messages.get((chat_id, message_id)) or {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": self._chat(chat_id),
                "from": self._bot_from(),
                "text": "",
            }
            query = {
                "id": str(self._next_query_id),
                "from": self._user(user_id, username),
                "message": message,
                "chat_instance": str(abs(hash(("chat", chat_id)))),
                "data": data,
            }
            self._next_query_id += 1
        return self.push_update({"callback_query": query})

    def messages(self, chat_id: int) -> list[Call]:
        """Accepted sendMessage/sendPhoto calls to chat_id, in order."""
        with self._cond:
            return [
                c
                for c in self.sent
                if c.method in ("sendMessage", "sendPhoto") and c.chat_id == chat_id
            ]

    def texts(self, chat_id: int) -> list[str | None]:
        """The text (or caption) of each message sent to chat_id."""
        return [c.text for c in self.messages(chat_id)]

    def current(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """A message as it stands now (edits applied), as Bot API JSON."""
        with self._cond:
            return self._messages.get((chat_id, message_id))

    # -- internals ---------------------------------------------------------------------------

    def _user(self, user_id: int, username: str | None) -> dict[str, Any]:
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": username or "User"}
        if username:
            user["username"] = username
        return user

    def _bot_from(self) -> dict[str, Any]:
        keys = ("id", "is_bot", "first_name", "username")
        return {k: self.bot_user[k] for k in keys}

    def _chat(self, chat_id: int | str) -> dict[str, Any]:
        kind = self._chat_types.get(chat_id)
        if kind is None:
            if isinstance(chat_id, str):
                kind = "channel"
            elif chat_id <= -1_000_000_000_000:
                kind = "supergroup"
            else:
                kind = "group" if chat_id < 0 else "private"
        chat: dict[str, Any] = {"id": chat_id, "type": kind}
        if kind == "private":
            chat["first_name"] = f"User {chat_id}"
        else:
            chat["title"] = f"Chat {chat_id}"
        if isinstance(chat_id, str):  # "@channelname"
            chat.update(id=-1000000000001, username=chat_id.lstrip("@"))
        return chat

    def _photo_sizes(self, key: str, size: int) -> list[dict[str, Any]]:
        return [
            {
                "file_id": f"AgAC-{key}-{w}",
                "file_unique_id": f"AQAD-{key}-{w}",
                "width": w,
                "height": h,
                "file_size": max(1, size * w // 1280),
            }
            for w, h in ((90, 60), (320, 213), (1280, 853))
        ]

    def _new_message(self, chat_id: int | str, fields: dict[str, Any]) -> dict[str, Any]:
        message_id = self._last_ids.get(chat_id, 0) + 1
        self._last_ids[chat_id] = message_id
        message = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": self._chat(chat_id),
            **fields,
        }
        self._messages[(chat_id, message_id)] = message
        return message

    def _failure_for(self, method: str, chat_id: Any) -> Failure | None:
        """The injected failure for this call, if any (under the lock)."""
        if self._down is not None:
            return self._down
        for entry in self._failures:
            if entry[0] == method.lower() and entry[3] in (None, chat_id):
                if entry[4] > 0:
                    entry[4] -= 1
                    continue
                entry[1] -= 1
                if entry[1] <= 0:
                    self._failures.remove(entry)
                return entry[2]
        if chat_id in self._broken:
            return self._broken[chat_id]
        return None

    def _check_limits(self, method: str, chat_id: Any, now: float) -> dict[str, Any] | None:
        """A 429 envelope if this send breaks a flood limit (under the lock)."""
        if not (self.enforce_limits and method.startswith("send") and method != "sendChatAction"):
            return None
        group = self._chat(chat_id)["type"] in GROUP_TYPES
        sends = self._group_sends.get(chat_id, deque())
        while sends and sends[0] <= now - 60:
            sends.popleft()
        while self._all_sends and self._all_sends[0] <= now - 1:
            self._all_sends.popleft()
        rule, wait = None, 0.0
        last = self._chat_last.get(chat_id)
        if last is not None and now - last < self.limits.per_chat_interval_s:
            rule, wait = "per_chat", last + self.limits.per_chat_interval_s - now
        elif group and len(sends) >= self.limits.group_per_minute:
            rule, wait = "group_per_minute", sends[-self.limits.group_per_minute] + 60 - now
        elif len(self._all_sends) >= self.limits.global_per_second:
            rule, wait = "global_per_second", self._all_sends[-self.limits.global_per_second] + 1
            wait -= now
        if rule is None:
            return None
        seconds = max(1, math.ceil(wait))
        self.limit_violations.append(LimitViolation(rule, method, chat_id, seconds, now))
        return retry_after_error(seconds)

    def _count_send(self, method: str, chat_id: Any, now: float) -> None:
        if not method.startswith("send") or method == "sendChatAction":
            return
        self._chat_last[chat_id] = now
        self._group_sends.setdefault(chat_id, deque()).append(now)
        self._all_sends.append(now)

    def _message_fields(self, params: dict[str, Any], text_key: str, limit: int) -> dict:
        """Entity-parse and length-check text/caption; the Message fields it yields."""
        text = params.get(text_key)
        fields: dict[str, Any] = {}
        if text is None:
            return fields
        plain = str(text)
        if str(params.get("parse_mode", "")).lower() == "html":
            plain = parse_html(plain)
        if not plain.strip():
            if text_key == "text":
                raise _Refusal(bad_request("message text is empty"))
            return fields
        if _utf16_len(plain) > limit:
            what = "message is too long" if text_key == "text" else "message caption is too long"
            raise _Refusal(bad_request(what))
        fields[text_key] = plain  # like Telegram: the text with the markup parsed out
        return fields

    def _execute(self, method: str, params: dict[str, Any], photo: Any) -> Any:
        """Run one accepted call; returns the result or raises _Refusal (under the lock)."""
        m = method.lower()
        chat_id = params.get("chat_id")
        if m == "getme":
            return dict(self.bot_user)
        if m in ("sendmessage", "sendphoto"):
            if chat_id is None:
                raise _Refusal(bad_request("chat_id is empty"))
            if m == "sendmessage":
                if "text" not in params:
                    raise _Refusal(bad_request("message text is empty"))
                fields = self._message_fields(params, "text", 4096)
            else:
                if photo is None:
                    raise _Refusal(bad_request("there is no photo in the request"))
                fields = self._message_fields(params, "caption", 1024)
                size = len(photo) if isinstance(photo, bytes) else 100_000
                fields["photo"] = self._photo_sizes(f"{chat_id}-{time.monotonic_ns()}", size)
            fields["from"] = self._bot_from()
            if params.get("message_thread_id") is not None:
                fields["message_thread_id"] = params["message_thread_id"]
                fields["is_topic_message"] = True
            if params.get("reply_markup") is not None:
                fields["reply_markup"] = params["reply_markup"]
            return self._new_message(chat_id, fields)
        if m in ("editmessagetext", "editmessagecaption", "editmessagereplymarkup"):
            if params.get("inline_message_id"):
                return True
            old = self._messages.get((chat_id, params.get("message_id")))
            if old is None:
                raise _Refusal(bad_request("message to edit not found"))
            new = dict(old)
            if m == "editmessagetext":
                if "text" not in old:
                    raise _Refusal(bad_request("there is no text in the message to edit"))
                new.update(self._message_fields(params, "text", 4096))
            elif m == "editmessagecaption":
                new.pop("caption", None)
                new.update(self._message_fields(params, "caption", 1024))
            new.pop("reply_markup", None)
            if params.get("reply_markup"):
                new["reply_markup"] = params["reply_markup"]
            if new == old:
                raise _Refusal(bad_request(NOT_MODIFIED))
            new["edit_date"] = int(time.time())
            self._messages[(chat_id, old["message_id"])] = new
            return new
        if m == "getupdates":
            return self._take_updates(params)
        if m == "getmycommands":
            return []
        if m == "getchat":
            return self._chat(chat_id)
        if m in (
            "answercallbackquery", "deletewebhook", "setmycommands", "deletemycommands",
            "sendchataction", "deletemessage", "close", "logout",
        ):  # fmt: skip
            return True
        raise _Refusal(envelope(404, "Not Found"))

    def _take_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """getUpdates: confirm those below `offset`, long-poll up to min(timeout, cap)."""
        offset = params.get("offset")
        if isinstance(offset, int) and offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        limit = params.get("limit") or 100
        timeout = min(float(params.get("timeout") or 0), self.longpoll_max_s)
        deadline = time.monotonic() + timeout
        while not self._updates and not self._stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._cond.wait(left)
        if isinstance(offset, int) and offset < 0:
            return self._updates[offset:][:limit]
        return self._updates[:limit]

    def _handle(self, method: str, params: dict[str, Any], photo: Any) -> tuple[int, Any]:
        """Serve one call: (HTTP status, JSON body | HTML str | "timeout")."""
        now = time.monotonic()
        call = Call(method, params, now, photo)
        with self._cond:
            self.calls.append(call)
            chat_id = params.get("chat_id")
            failure = self._failure_for(method, chat_id)
            if failure is None:
                failure = self._check_limits(method, chat_id, now)
            if failure is not None and failure != "slow":
                if failure in ("timeout", "refused"):
                    call.status = "timeout"
                    return 0, "timeout"
                if isinstance(failure, str):
                    failure = ERRORS[failure]
                if isinstance(failure, int):
                    call.status = failure
                    return failure, _nginx_page(failure)
                call.status = failure["error_code"]
                return failure["error_code"], failure
            try:
                result = self._execute(method, params, photo)
            except _Refusal as refusal:
                call.status = refusal.body["error_code"]
                return call.status, refusal.body
            call.result = result
            self._count_send(method, chat_id, now)
            if not method.lower().startswith("get"):
                self.sent.append(call)
        if failure == "slow":
            self._stopping.wait(self.timeout_s)
        return 200, {"ok": True, "result": result}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                parts = urlsplit(self.path)
                match = re.fullmatch(r"/bot([^/]+)/([A-Za-z]+)", parts.path)
                if match is None:
                    self._reply(404, envelope(404, "Not Found"))
                    return
                server.token_seen = match.group(1)
                params, photo = self._params(parts.query)
                status, body = server._handle(match.group(2), params, photo)
                if body == "timeout":
                    server._stopping.wait(server.timeout_s)
                    self.close_connection = True  # no reply at all
                    return
                self._reply(status, body)

            do_GET = do_POST  # noqa: N815

            def _params(self, query: str) -> tuple[dict[str, Any], Any]:
                raw: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ctype = self.headers.get("Content-Type", "")
                if ctype.startswith("multipart/form-data"):
                    head = f"Content-Type: {ctype}\r\nMIME-Version: 1.0\r\n\r\n".encode()
                    for part in BytesParser().parsebytes(head + body).get_payload():
                        name = part.get_param("name", header="content-disposition")
                        data = part.get_payload(decode=True)
                        if part.get_filename() is None:
                            data = data.decode("utf-8")
                        raw[name] = data
                elif ctype.startswith("application/json"):
                    raw.update(json.loads(body or b"{}"))
                elif body:
                    raw.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
                params: dict[str, Any] = {}
                for name, value in raw.items():
                    if isinstance(value, str) and name not in TEXT_FIELDS:
                        with contextlib.suppress(ValueError):  # "@channel", "HTML", ...
                            value = json.loads(value)
                    params[name] = value
                photo = params.pop("photo", None)
                if isinstance(photo, str) and photo.startswith("attach://"):
                    photo = raw.get(photo.removeprefix("attach://"))
                return params, photo

            def _reply(self, status: int, body: Any) -> None:
                if isinstance(body, str):
                    data, ctype = body.encode(), "text/html"
                else:
                    data, ctype = json.dumps(body, ensure_ascii=False).encode(), "application/json"
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):  # keep test output quiet
                pass

        return Handler
