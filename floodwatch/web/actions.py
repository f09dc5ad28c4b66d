"""Login, logout and the operators' writes (notes, acknowledgements, false alarms, silences)."""

from __future__ import annotations

import logging
from datetime import timedelta

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Request
from fastapi.responses import RedirectResponse

from floodwatch.service.cycle import utcnow
from floodwatch.web import auth
from floodwatch.web.context import WebContext, check_csrf, operator, render, safe_next, web
from floodwatch.web.pages import event_or_404

logger = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
MAX_NOTE_CHARS = 2000
MAX_SILENCE_HOURS = 168


def back(target: str) -> RedirectResponse:
    """303 See Other to a page (the browser then GETs it)."""
    return RedirectResponse(target, status_code=303)


@router.get("/login")
def login_form(request: Request, next: str = "/"):
    """The login form."""
    return render(request, "login.html", next=safe_next(next), error=None)


def _wait_vi(seconds: int) -> str:
    """`45 giây`, `3 phút`, `24 giờ`: how long to wait, in Vietnamese."""
    if seconds < 120:
        return f"{seconds} giây"
    if seconds < 2 * 3600:
        return f"{-(-seconds // 60)} phút"
    return f"{-(-seconds // 3600)} giờ"


def _refused(request: Request, next: str, exc: auth.LoginRefused):
    """429 with Retry-After: too many failed logins (the password was not checked)."""
    if exc.locked:
        error = ("Tài khoản này tạm bị khóa vì đăng nhập sai quá nhiều lần. Hãy nhờ quản trị "
                 f"viên mở khóa, hoặc thử lại sau {_wait_vi(exc.retry_after_s)}.")  # fmt: skip
    else:
        error = f"Đăng nhập sai quá nhiều lần. Hãy thử lại sau {_wait_vi(exc.retry_after_s)}."
    response = render(request, "login.html", status_code=429, next=safe_next(next), error=error)
    response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


@router.post("/login")
def login(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    csrf: str = Form(""),
    next: str = Form("/"),
    ctx: WebContext = Depends(web),
):
    """Check the password (unless throttled); on success start a session."""
    check_csrf(request, csrf)
    address = request.client.host if request.client else "unknown"
    try:
        user = auth.log_in_attempt(ctx.app.store, username, password, address, utcnow())
    except auth.LoginRefused as exc:
        # Info, not warning: an attack would fill the journal (the checked failures warn).
        logger.info("web: login for %r from %s refused for %d s (too many failures)",
                    username[:64], address, exc.retry_after_s)  # fmt: skip
        return _refused(request, next, exc)
    if user is None or user.disabled:
        logger.warning("web: failed login for %r from %s%s", username[:64], address,
                       " (disabled)" if user is not None else "")  # fmt: skip
        error = ("Tài khoản này đã bị tắt. Hãy liên hệ quản trị viên." if user is not None
                 else "Sai tên đăng nhập hoặc mật khẩu.")  # fmt: skip
        return render(request, "login.html", status_code=401, next=safe_next(next), error=error)
    auth.log_in(ctx.app.store, request.session, user, utcnow())
    logger.info("web: %s logged in", user.username)
    return back(safe_next(next))


@router.post("/logout")
def logout(request: Request, csrf: str = Form(""), ctx: WebContext = Depends(web)):
    """End the session, in the database too (an old copy of the cookie is then worthless)."""
    check_csrf(request, csrf)
    auth.log_out(ctx.app.store, request.session)
    return back("/")


def _author(user: dict) -> str:
    return user.get("display_name") or user["username"]


@router.post("/events/{event_id}/note")
def add_note(
    request: Request,
    event_id: int,
    text: str = Form(""),
    csrf: str = Form(""),
    user: dict = Depends(operator),
    ctx: WebContext = Depends(web),
):
    """Add an operator note to an event."""
    check_csrf(request, csrf)
    event_or_404(ctx, event_id)
    text = text.strip()[:MAX_NOTE_CHARS]
    if text:
        ctx.app.store.events.add_note(event_id, utcnow(), _author(user), "note", text)
    return back(f"/events/{event_id}#ghi-chu")


@router.post("/events/{event_id}/ack")
def acknowledge(
    request: Request,
    event_id: int,
    text: str = Form(""),
    csrf: str = Form(""),
    user: dict = Depends(operator),
    ctx: WebContext = Depends(web),
):
    """Acknowledge an event (the first acknowledgement is kept on the event)."""
    check_csrf(request, csrf)
    event_or_404(ctx, event_id)
    ctx.app.store.events.add_note(event_id, utcnow(), _author(user), "ack",
                     text.strip()[:MAX_NOTE_CHARS])  # fmt: skip
    logger.info("web: event %d acknowledged by %s", event_id, user["username"])
    return back(f"/events/{event_id}")


@router.post("/events/{event_id}/false-alarm")
def false_alarm(
    request: Request,
    event_id: int,
    value: str = Form("on"),
    text: str = Form(""),
    csrf: str = Form(""),
    user: dict = Depends(operator),
    ctx: WebContext = Depends(web),
):
    """Mark (value=on) or unmark (value=off) an event as a false alarm."""
    check_csrf(request, csrf)
    event_or_404(ctx, event_id)
    kind = "false_alarm_cleared" if value == "off" else "false_alarm"
    ctx.app.store.events.add_note(event_id, utcnow(), _author(user), kind,
                     text.strip()[:MAX_NOTE_CHARS])  # fmt: skip
    logger.info("web: event %d %s by %s", event_id, kind, user["username"])
    return back(f"/events/{event_id}")


@router.post("/silences")
def add_silence(
    request: Request,
    target_kind: str = Form(...),
    target_id: str = Form(...),
    hours: int = Form(...),
    reason: str = Form(""),
    next: str = Form("/"),
    csrf: str = Form(""),
    user: dict = Depends(operator),
    ctx: WebContext = Depends(web),
):
    """Mute alerts of a segment or unit for some hours (they are still logged)."""
    check_csrf(request, csrf)
    segment = ctx.app.geodata.segment(target_id)
    if target_kind == "unit" and segment is not None:  # "its whole unit", from a road page
        target_id = segment.unit
    known = (
        ctx.app.geodata.segment(target_id) is not None
        if target_kind == "segment"
        else target_kind == "unit" and target_id in ctx.app.settings.unit_ids
    )
    if not known:
        raise HTTPException(status_code=400, detail="Không có đoạn đường hoặc đơn vị này.")
    if not 1 <= hours <= MAX_SILENCE_HOURS:
        raise HTTPException(status_code=400, detail="Số giờ tạm tắt phải từ 1 đến 168.")
    now = utcnow()
    muted = ctx.app.store.silences.add(target_kind, target_id, now, now + timedelta(hours=hours),
                                       reason.strip()[:MAX_NOTE_CHARS], _author(user))  # fmt: skip
    logger.info("web: %s %s muted for %d h by %s (silence %d%s)", target_kind, target_id, hours,
                user["username"], muted.id, ", extended" if muted.extended else "")  # fmt: skip
    return back(safe_next(next))


@router.post("/silences/{silence_id}/lift")
def lift_silence(
    request: Request,
    silence_id: int = Path(ge=1, le=2**62),
    next: str = Form("/"),
    csrf: str = Form(""),
    user: dict = Depends(operator),
    ctx: WebContext = Depends(web),
):
    """Lift a silence now ("Bỏ tắt"): the target's alerts are sent again from the next cycle."""
    check_csrf(request, csrf)
    lifted = ctx.app.store.silences.lift(silence_id, utcnow(), _author(user))
    if lifted is None:
        raise HTTPException(
            status_code=404, detail=f"Không có lệnh tạm tắt số {silence_id} đang hiệu lực."
        )
    logger.info("web: silence %d (%s %s) lifted by %s", silence_id, lifted.target_kind,
                lifted.target_id, user["username"])  # fmt: skip
    return back(safe_next(next))
