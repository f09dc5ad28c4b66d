"""Operator accounts (salted scrypt hashes in `web_user`), sessions and CSRF tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from datetime import UTC, datetime

from floodwatch.db.models import UserRow
from floodwatch.db.store import Store
from floodwatch.errors import FloodwatchError

logger = logging.getLogger(__name__)

# scrypt cost: about 16 MB and a few tens of ms per check; stored with each hash.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES = 16
MIN_PASSWORD_CHARS = 8
SESSION_USER = "user"
SESSION_CSRF = "csrf"


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


def session_user(session: dict) -> dict | None:
    """The logged-in operator: {"username", "display_name"}, or None."""
    user = session.get(SESSION_USER)
    return user if isinstance(user, dict) and user.get("username") else None


def log_in(session: dict, user: UserRow) -> None:
    """Put the operator in the session, with a fresh CSRF token."""
    session.clear()
    session[SESSION_USER] = {"username": user.username, "display_name": user.display_name}
    session[SESSION_CSRF] = secrets.token_urlsafe(32)
