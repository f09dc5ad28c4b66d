"""Operator accounts (salted scrypt hashes in `web_user`), login throttling, server-side
sessions, CSRF tokens and API tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from datetime import UTC, datetime, timedelta

from starlette.requests import Request

from floodwatch.db.logins import ADDRESS_PREFIX, USER_PREFIX, Limit
from floodwatch.db.models import UserRow
from floodwatch.db.store import Store
from floodwatch.errors import FloodwatchError

logger = logging.getLogger(__name__)

# scrypt cost: about 16 MB and a few tens of ms per check; stored with each hash.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES = 16
MIN_PASSWORD_CHARS = 8
SESSION_ID = "sid"
SESSION_CSRF = "csrf"
SESSION_MAX_AGE_S = 12 * 3600  # one shift


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def hash_password(password: str, salt: bytes | None = None) -> str:
    """`scrypt$n$r$p$salt$hash` for a password, with a fresh random salt."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether the password matches a stored hash (constant-time comparison)."""
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
        digest = hashlib.scrypt(
            password.encode("utf-8"), salt=salt, n=int(n), r=int(r), p=int(p),
            dklen=len(expected),
        )  # fmt: skip
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


# Checked when the user does not exist, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = hash_password("", salt=b"\0" * SALT_BYTES)


def add_user(store: Store, username: str, password: str, display_name: str = "") -> bool:
    """Create an operator, or set a new password if the name exists; True when created."""
    username = username.strip()
    if not username or any(ch.isspace() for ch in username):
        raise FloodwatchError("username must be one word without spaces")
    if len(password) < MIN_PASSWORD_CHARS:
        raise FloodwatchError(f"password must have at least {MIN_PASSWORD_CHARS} characters")
    created = store.users.save(username, hash_password(password), display_name, datetime.now(UTC))
    logger.info("web user %s %s", username, "created" if created else "updated")
    return created


def authenticate(store: Store, username: str, password: str) -> UserRow | None:
    """The user if the password is right, else None (never says which part was wrong)."""
    user = store.users.get(username.strip())
    if user is None:
        verify_password(password, _DUMMY_HASH)
        return None
    return user if verify_password(password, user.password_hash) else None


# --- throttling ------------------------------------------------------------------

# Per user name: 5 failures free, then 1 s, 2 s, 4 s… refused; locked out after 10
# consecutive failures for a day, or until `floodwatch user unlock`.
USER_LIMIT = Limit(free=5, base_s=1.0, cap_s=900.0, forget_s=3600.0, lock_after=10,
                   lock_s=24 * 3600.0)  # fmt: skip
# Per address: 20 failures free (an office behind one NAT), then 1 s, 2 s, … up to 15 min.
ADDRESS_LIMIT = Limit(free=20, base_s=1.0, cap_s=900.0, forget_s=3600.0)
MAX_KEY_CHARS = 100


class LoginRefused(Exception):
    """Too many failed logins: refused without checking the password (HTTP 429)."""

    def __init__(self, retry_after_s: int, locked: bool):
        super().__init__(f"login refused for {retry_after_s} s")
        self.retry_after_s, self.locked = retry_after_s, locked


def log_in_attempt(
    store: Store, username: str, password: str, address: str, at: datetime
) -> UserRow | None:
    """`authenticate` behind the throttle: LoginRefused when the user name or the address
    has failed too often (the password is then not checked)."""
    username = username.strip()
    user_key = USER_PREFIX + username[:MAX_KEY_CHARS]
    address_key = ADDRESS_PREFIX + (address or "unknown")[:MAX_KEY_CHARS]
    verdict = store.logins.attempt({user_key: USER_LIMIT, address_key: ADDRESS_LIMIT}, at)
    if not verdict.allowed:
        raise LoginRefused(verdict.retry_after_s, verdict.locked)
    user = authenticate(store, username, password)
    if user is not None:
        store.logins.succeeded(user_key, address_key, ADDRESS_LIMIT)
    return user


# --- sessions --------------------------------------------------------------------


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def csrf_token(session: dict) -> str:
    """This session's CSRF token, made on first use."""
    token = session.get(SESSION_CSRF)
    if not token:
        token = session[SESSION_CSRF] = secrets.token_urlsafe(32)
    return token


def csrf_ok(session: dict, submitted: str | None) -> bool:
    """Whether a submitted form token matches the session's (constant time)."""
    expected = session.get(SESSION_CSRF)
    return bool(expected and submitted) and hmac.compare_digest(
        str(expected).encode(), str(submitted).encode()
    )


def log_in(store: Store, session: dict, user: UserRow, at: datetime) -> None:
    """Start a server-side session for the operator: a random id in the signed cookie
    (its sha256 in the database), with a fresh CSRF token."""
    session_id = secrets.token_urlsafe(32)
    store.users.start_session(user.username, _sha256(session_id), at,
                              at + timedelta(seconds=SESSION_MAX_AGE_S))  # fmt: skip
    session.clear()
    session[SESSION_ID] = session_id
    session[SESSION_CSRF] = secrets.token_urlsafe(32)


def log_out(store: Store, session: dict) -> None:
    """End this session in the database (an old copy of the cookie is then worthless)."""
    session_id = session.get(SESSION_ID)
    if isinstance(session_id, str):
        store.users.end_session(_sha256(session_id))
    session.clear()


def current_user(request: Request, store: Store) -> dict | None:
    """The logged-in operator of this request ({"username", "display_name"}), or None.

    Looked up once per request: the session must still exist in the database and its
    user must exist and not be disabled; a cookie of an ended session is cleared.
    """
    if hasattr(request.state, "operator"):
        return request.state.operator
    found = None
    session_id = request.session.get(SESSION_ID)
    if isinstance(session_id, str):
        row = store.users.session_user(_sha256(session_id), datetime.now(UTC))
        if row is None:
            request.session.clear()
        else:
            found = {"username": row.username, "display_name": row.display_name}
    request.state.operator = found
    return found


# --- API tokens ------------------------------------------------------------------

TOKEN_PREFIX = "fwt_"


class BadToken(Exception):
    """An Authorization header with a token that is unknown, revoked or malformed (401)."""


def new_token() -> tuple[str, str]:
    """A fresh API token (shown once) and the sha256 kept in the database."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, _sha256(token)


def add_token(store: Store, name: str, note: str = "") -> str:
    """Create a named API token; the token itself (only its hash is kept)."""
    name = name.strip()
    if not name or any(ch.isspace() for ch in name) or name.isdigit():
        raise FloodwatchError("token name must be one word without spaces (not a number)")
    token, digest = new_token()
    if store.tokens.add(name, digest, note.strip(), datetime.now(UTC)) is None:
        raise FloodwatchError(f"a token named {name!r} exists: revoke it or pick another name")
    logger.info("api token %s created", name)
    return token


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer …` header; None without the header;
    BadToken for another scheme or an empty token."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise BadToken()
    return token.strip()


def token_ok(store: Store, token: str) -> bool:
    """Whether the token is one of ours and not revoked (compared by sha256)."""
    if len(token) > 200:
        return False
    return store.tokens.use(_sha256(token), datetime.now(UTC)) is not None
