"""CAP 1.2 alerts from the event log, and the Atom feed that carries them.

One CAP `alert` per event change that matters, chained per event by
`references` (OASIS Common Alerting Protocol 1.2):

- `opened` is an `Alert`;
- `level_up`, `level_down`, `reflooded` and `forecast_updated` are `Update`s;
- an observed event's `closed` is the all-clear: an `Update` with
  responseType AllClear and urgency Past (the water was there and is gone);
- a forecast event's `cancelled`, `expired` or `confirmed` is a `Cancel` of its
  earlier alerts (a `confirmed` forecast lives on as the observed event's own
  `Alert`).

Receding, reminders and doubtful-reading notes change nothing a CAP consumer
acts on and make no alert. The road is the `area`: its line buffered by 25 m in
UTM 48N, as a WGS84 polygon. Built with the standard library only (lxml is a
test dependency, used to validate against `CAP-v1.2.xsd` next to this file).
"""

from __future__ import annotations

import io
import logging
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache
from pathlib import Path
from typing import IO
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import shapely
from pyproj import Transformer

from floodwatch.core.events import FORECAST
from floodwatch.core.geo import UTM_48N, Geodata, project_utm
from floodwatch.core.text import CAUSE_VI, Credit, centimetres, local_time
from floodwatch.db.events import EventFilter
from floodwatch.db.store import Store
from floodwatch.errors import ConfigError
from floodwatch.messages.alerts import HEADLINE

logger = logging.getLogger(__name__)

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NS = "http://www.w3.org/2005/Atom"
CAP_MEDIA_TYPE = "application/cap+xml"
SCHEMA_PATH = Path(__file__).with_name("CAP-v1.2.xsd")

STATUSES = ("Actual", "Exercise", "Test")
SENDER_NAME = "Hệ thống cảnh báo ngập đường tỉnh Cà Mau (floodwatch)"
EVENT_VI = "Ngập đường do triều cường/mưa"
ROAD_BUFFER_M = 25.0
MAX_POLYGON_POINTS = 200
EXPECTED_WITHIN = timedelta(hours=6)  # forecast onset sooner than this: urgency Expected

UPDATES = frozenset({"level_up", "level_down", "reflooded", "forecast_updated"})
ENDINGS = frozenset({"closed", "cancelled", "expired", "confirmed"})
CAP_CHANGES = frozenset({"opened"}) | UPDATES | ENDINGS

SEVERITY = {0: "Minor", 1: "Moderate", 2: "Severe", 3: "Extreme"}
# The wording of [levels] names in the shipped config, for callers that pass none.
INSTRUCTION_VI = {
    1: "Ngập nhẹ: xe máy đi chậm được.",
    2: "Ngập nửa bánh xe máy: hạn chế đi lại.",
    3: "Ngập sâu: không nên đi qua, chọn đường khác.",
}
HEADLINE_VI = {
    **HEADLINE,
    "forecast_expired": "HẾT HẠN DỰ BÁO NGẬP",
    "forecast_confirmed": "DỰ BÁO NGẬP ĐÃ XẢY RA",
}
_KIND = {
    "level_up": "level_up",
    "reflooded": "level_up",
    "level_down": "level_down",
    "forecast_updated": "forecast_update",
    "closed": "all_clear",
    "cancelled": "forecast_cancelled",
    "expired": "forecast_expired",
    "confirmed": "forecast_confirmed",
}
_CAP_NAME = re.compile(r"[^\s,<&]+")
# event_change rows keep no forecast window of their own, only the note written
# by floodwatch.events: "Dự báo ngập sau 5 giờ 30 phút: …" when a forecast
# opens, "Cập nhật dự báo: bắt đầu 16/12/2024 18:00, …" (display zone) on update.
_OPENED_LEAD = re.compile(r"Dự báo ngập sau (?:(\d+) giờ)? ?(?:(\d+) phút)?")
_UPDATED_ONSET = re.compile(r"Cập nhật dự báo: bắt đầu (\d\d/\d\d/\d{4} \d\d:\d\d)")


@cache
def _to_wgs84() -> Transformer:
    """The UTM 48N → WGS84 transformer, built once on first use."""
    return Transformer.from_crs(UTM_48N, "EPSG:4326", always_xy=True)


def cap_time(when: datetime, zone: tzinfo) -> str:
    """A CAP time: local wall time with its offset, whole seconds, UTC as `-00:00`."""
    text = when.astimezone(zone).replace(microsecond=0).isoformat()
    return text[:-6] + "-00:00" if text.endswith("+00:00") else text


def road_polygons(
    geometry, buffer_m: float = ROAD_BUFFER_M, max_points: int = MAX_POLYGON_POINTS
) -> list[str]:
    """CAP polygons ("lat,lon …", closed rings) of a WGS84 road line buffered by `buffer_m`.

    A road too winding to stay within `max_points` is simplified by some metres
    and buffered wider by as much, so the area never loses any of the road's band.
    """
    road = project_utm(np.array([geometry], dtype=object))[0]
    widen_m = 0.0
    while True:
        line = road.simplify(widen_m) if widen_m else road
        area = line.buffer(buffer_m + widen_m, quad_segs=4).simplify(0.5)
        parts = list(getattr(area, "geoms", [area]))
        if sum(len(p.exterior.coords) for p in parts) <= max_points:
            break
        widen_m = max(1.0, 2 * widen_m)

    def back(xy: np.ndarray) -> np.ndarray:
        lon, lat = _to_wgs84().transform(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    # Exterior rings only: CAP polygons have no holes, and a road looping round a
    # block may as well warn the block.
    rings = [shapely.transform(part.exterior, back) for part in parts]
    return [" ".join(f"{lat:.6f},{lon:.6f}" for lon, lat in ring.coords) for ring in rings]


def _change_rows(store: Store, since: datetime | None, flt: EventFilter | None):
    """The CAP-relevant changes of events with one at or after `since`, per event in order."""
    return store.stats.cap_changes(since, flt, CAP_CHANGES)


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    """Append a CAP child element (with text) to `parent`."""
    child = ET.SubElement(parent, f"{{{CAP_NS}}}{tag}")
    if text is not None:
        child.text = text
    return child


def _pair(parent: ET.Element, tag: str, name: str, value: object) -> None:
    """Append a valueName/value element (parameter, geocode, eventCode)."""
    element = _sub(parent, tag)
    _sub(element, "valueName", name)
    _sub(element, "value", str(value))


def _onset(row, zone: tzinfo) -> datetime | None:
    """When the water was (observed) or was expected (forecast) as of this change."""
    if row.kind != FORECAST:
        return row.opened_at
    lead = _OPENED_LEAD.match(row.note) if row.change == "opened" else None
    if lead and any(lead.groups()):
        hours, minutes = (int(g or 0) for g in lead.groups())
        return row.at + timedelta(hours=hours, minutes=minutes)
    moved = _UPDATED_ONSET.match(row.note) if row.change == "forecast_updated" else None
    if moved:
        return datetime.strptime(moved.group(1), "%d/%m/%Y %H:%M").replace(tzinfo=zone)
    return row.expected_onset_at  # the event's latest forecast window


def _grading(row, onset: datetime | None) -> tuple[str, str, str, str]:
    """(responseType, urgency, severity, certainty) of one change."""
    forecast = row.kind == FORECAST
    if row.change in ENDINGS:
        if not forecast:  # the all-clear
            return "AllClear", "Past", "Minor", "Observed"
        certainty = {"cancelled": "Unlikely", "confirmed": "Observed"}.get(row.change, "Unknown")
        return "None", "Past", "Minor", certainty
    severity = SEVERITY.get(min(row.level, 3), "Minor")
    if not forecast:
        return ("Avoid" if row.level >= 2 else "Monitor"), "Immediate", severity, "Observed"
    lead = (onset or row.at) - row.at
    urgency = (
        "Immediate"
        if lead <= timedelta(0)
        else ("Expected" if lead <= EXPECTED_WITHIN else "Future")
    )
    return "Prepare", urgency, severity, "Likely"


def _texts(
    row, onset: datetime | None, zone: tzinfo, level_names: Sequence[str]
) -> tuple[str, str, str, str]:
    """(road, headline, description, instruction) in Vietnamese for one change."""
    road = f"{row.name}, {row.ward}" if row.name else row.segment_id
    kind = _KIND.get(row.change) or ("forecast" if row.kind == FORECAST else "onset")
    cause = CAUSE_VI.get(row.cause or "", "")
    because = f", do {cause}" if cause else ""
    if kind == "all_clear":
        detail = (
            f"Đã hết ngập. Sâu nhất {centimetres(row.peak_depth_m)} lúc "
            f"{local_time(row.peak_at, zone)} (mức {row.max_level}){because}."
        )
        instruction = "Đường đi lại được; chú ý mặt đường trơn và hư hỏng sau ngập."
    elif row.change in ENDINGS:
        detail = "Dự báo này không còn hiệu lực."
        instruction = (
            "Theo dõi cảnh báo ngập quan trắc của tuyến đường này."
            if row.change == "confirmed"
            else "Không cần chuẩn bị thêm cho dự báo này."
        )
    else:
        if row.kind == FORECAST:
            detail = (
                f"Dự kiến ngập từ {local_time(onset, zone)}, sâu nhất "
                f"{centimetres(row.depth_m)} (mức {row.level}){because}."
            )
        else:
            detail = (
                f"Đang ngập {centimetres(row.depth_m)} (mức {row.level}){because}, "
                f"từ {local_time(row.opened_at, zone)}."
            )
        names = list(level_names) or [INSTRUCTION_VI[n] for n in sorted(INSTRUCTION_VI)]
        instruction = names[min(row.level, len(names)) - 1] if row.level >= 1 else ""
    headline = f"{HEADLINE_VI[kind]}: {road}"
    return road, headline, f"{road}: {row.note}. {detail}", instruction


def _msg_type(row) -> str:
    """The CAP msgType of one change: Alert, Update or Cancel."""
    if row.change == "opened":
        return "Alert"
    if row.change in ENDINGS and row.kind == FORECAST:
        return "Cancel"
    return "Update"


def _alert_head(
    row, references: list[str], ctx: dict, identifier: str, sent: str, msg_type: str
) -> ET.Element:
    """The `alert` element with its header fields, up to and including `incidents`."""
    alert = ET.Element(f"{{{CAP_NS}}}alert")
    for tag, text in (
        ("identifier", identifier),
        ("sender", ctx["sender"]),
        ("sent", sent),
        ("status", ctx["status"]),
        ("msgType", msg_type),
        ("source", ctx["source"]),  # the data credits (CC BY asks for them), when any
        ("scope", "Public"),
    ):
        if text is not None:
            _sub(alert, tag, text)
    notes = []
    if ctx["status"] != "Actual":
        notes.append("Diễn tập / phát lại dữ liệu: không phải cảnh báo thật.")
    if msg_type == "Cancel":
        notes.append(row.note)
    if notes:
        _sub(alert, "note", " ".join(notes))
    if references:
        _sub(alert, "references", " ".join(references))
    _sub(alert, "incidents", f"{ctx['prefix']}-evt{row.event_id}")
    return alert


def _info_grading(info: ET.Element, row, onset: datetime | None, sent: str, zone: tzinfo) -> None:
    """Append the fixed info fields, the grading and the effective/onset/expires times."""
    response, urgency, severity, certainty = _grading(row, onset)
    _sub(info, "language", "vi-VN")
    _sub(info, "category", "Met")  # CAP's Met includes flooding
    _sub(info, "category", "Transport")  # what it means here: a road to avoid
    _sub(info, "event", EVENT_VI)
    _sub(info, "responseType", response)
    _sub(info, "urgency", urgency)
    _sub(info, "severity", severity)
    _sub(info, "certainty", certainty)
    _sub(info, "effective", sent)
    if onset is not None:
        _sub(info, "onset", cap_time(onset, zone))
    expires = row.expected_end_at if row.kind == FORECAST else None
    if row.change not in ENDINGS and expires is not None and expires > max(row.at, onset or row.at):
        _sub(info, "expires", cap_time(row.expected_end_at, zone))


def _info_parameters(info: ET.Element, row) -> None:
    """Append the floodwatch parameters of one change (those with a value)."""
    for name, value in (
        ("segment_id", row.segment_id),
        ("event_id", row.event_id),
        ("event_kind", row.kind),
        ("level", row.level),
        ("depth_cm", round(row.depth_m * 100)),
        ("cause", row.cause),
        # The event row holds final values: its peak only belongs on the last word.
        *(
            [("max_level", row.max_level), ("peak_depth_cm", round(row.peak_depth_m * 100))]
            if row.change in ENDINGS
            else []
        ),
    ):
        if value is not None:
            _pair(info, "parameter", name, value)


def _info_area(info: ET.Element, row, road: str, ctx: dict) -> None:
    """Append the `area`: the road's name, its buffered polygons and its segment geocode."""
    area = _sub(info, "area")
    _sub(area, "areaDesc", road)
    for polygon in ctx["polygons"](row):
        _sub(area, "polygon", polygon)
    _pair(area, "geocode", "floodwatch_segment", row.segment_id)


def _alert_info(alert: ET.Element, row, sent: str, ctx: dict) -> None:
    """Append the one Vietnamese `info` block of one change to `alert`."""
    zone = ctx["zone"]
    onset = _onset(row, zone)
    road, headline, description, instruction = _texts(row, onset, zone, ctx["level_names"])
    info = _sub(alert, "info")
    _info_grading(info, row, onset, sent, zone)
    _sub(info, "senderName", ctx["sender_name"])
    _sub(info, "headline", headline)
    _sub(info, "description", description)
    if instruction:
        _sub(info, "instruction", instruction)
    if ctx["event_url"]:
        _sub(info, "web", ctx["event_url"].format(event_id=row.event_id))
    _info_parameters(info, row)
    _info_area(info, row, road, ctx)


def _alert(row, references: list[str], ctx: dict) -> tuple[str, str, bytes]:
    """One CAP alert document for one change; returns (identifier, sent, XML bytes)."""
    identifier = f"{ctx['prefix']}-evt{row.event_id}-chg{row.change_id}"
    sent = cap_time(row.at, ctx["zone"])
    alert = _alert_head(row, references, ctx, identifier, sent, _msg_type(row))
    _alert_info(alert, row, sent, ctx)
    ET.indent(alert)
    document = ET.tostring(alert, encoding="utf-8", xml_declaration=True, default_namespace=CAP_NS)
    return identifier, sent, document


def _check_names(status: str, sender: str, identifier_prefix: str) -> None:
    """Raise for a CAP status, sender or identifier prefix CAP does not allow."""
    if status not in STATUSES:
        raise ValueError(f"CAP status must be one of {', '.join(STATUSES)}, got {status!r}")
    for what, name in (("sender", sender), ("identifier prefix", identifier_prefix)):
        if not _CAP_NAME.fullmatch(name):
            raise ConfigError([f"CAP {what} {name!r}: no spaces, commas, '<' or '&' allowed"])


def _road_areas(geodata: Geodata | None):
    """A function giving a change row's road polygons, computed once per segment."""
    polygons: dict[str, list[str]] = {}

    def road_area(row) -> list[str]:
        if row.segment_id not in polygons:
            segment = geodata.segment(row.segment_id) if geodata is not None else None
            geometry = segment.geometry if segment is not None else None
            if geometry is None and row.geometry:
                geometry = shapely.from_geojson(row.geometry)
            polygons[row.segment_id] = road_polygons(geometry) if geometry is not None else []
        return polygons[row.segment_id]

    return road_area


def cap_status(store: Store, configured: str) -> str:
    """`Exercise` for a drill database (`floodwatch drill`), whatever is configured; else
    the configured (or requested) status."""
    return "Exercise" if configured == "Actual" and store.drills.info() is not None else configured


def cap_alerts(
    store: Store,
    geodata: Geodata | None,
    *,
    since: datetime | None,
    status: str,
    sender: str,
    zone: tzinfo,
    flt: EventFilter | None = None,
    level_names: Sequence[str] = (),
    sender_name: str = SENDER_NAME,
    identifier_prefix: str = "floodwatch-camau",
    event_url: str | None = None,
    credits: Sequence[Credit] = (),
) -> list[bytes]:
    """CAP 1.2 alert documents (UTF-8 XML) for the event changes at or after `since`, oldest first.

    Args:
        geodata: segment geometry; without it (or for a segment it lacks) the
            geometry stored in the database is used.
        status: "Actual", or "Exercise" for replays and drills ("Test" also allowed).
        sender: the CAP sender id (no spaces, commas, "<" or "&").
        zone: the zone CAP times and Vietnamese texts are written in.
        flt: only events matching the event log's filter.
        level_names: instructions per level (config `[levels] names`).
        event_url: a template with `{event_id}` for each alert's `web` link.
        credits: whose data the alerts rest on, as the alert's `source` (one line each,
            "; " between).

    Raises:
        ConfigError: for a sender or identifier prefix CAP does not allow.
        ValueError: for a status other than those above.
    """
    _check_names(status, sender, identifier_prefix)
    ctx = {
        "zone": zone,
        "sender": sender,
        "status": status,
        "prefix": identifier_prefix,
        "level_names": level_names,
        "sender_name": sender_name,
        "event_url": event_url,
        "polygons": _road_areas(geodata),
        "source": "; ".join(credit.line() for credit in credits) or None,
    }
    made: list[tuple[datetime, int, bytes]] = []
    history: dict[int, list[str]] = {}
    for row in _change_rows(store, since, flt):
        earlier = history.setdefault(row.event_id, [])
        identifier, sent, document = _alert(row, earlier, ctx)
        earlier.append(f"{sender},{identifier},{sent}")
        if since is None or row.at >= since:
            made.append((row.at, row.change_id, document))
    made.sort(key=lambda item: item[:2])
    logger.info("cap: %d alerts for %d events", len(made), len(history))
    return [document for _, _, document in made]


def _text(element: ET.Element, tag: str) -> str:
    """The text of a CAP child (searched at any depth), or ''."""
    found = element.find(f".//{{{CAP_NS}}}{tag}")
    return found.text or "" if found is not None else ""


def cap_atom(
    alerts: Sequence[bytes | str],
    *,
    title: str = "Cảnh báo ngập đường tỉnh Cà Mau (CAP 1.2)",
    feed_id: str | None = None,
    self_url: str | None = None,
    author: str = SENDER_NAME,
    updated: datetime | None = None,
) -> str:
    """An Atom 1.0 feed with one entry per CAP alert (embedded as the entry content), newest first.

    `updated` defaults to the newest alert's `sent` (or now for an empty feed),
    so the same alerts always give the same feed.
    """
    entries = []
    parsed = [ET.fromstring(a.encode("utf-8") if isinstance(a, str) else a) for a in alerts]
    parsed.sort(key=lambda alert: datetime.fromisoformat(_text(alert, "sent")), reverse=True)
    for alert in parsed:
        sender, identifier, sent = (_text(alert, t) for t in ("sender", "identifier", "sent"))
        status, msg_type = _text(alert, "status"), _text(alert, "msgType")
        exercise = "" if status == "Actual" else f" [{status}]"
        entry_title = f"{msg_type}{exercise}: {_text(alert, 'headline')}"
        entry_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{sender},{identifier}")
        body = ET.tostring(alert, encoding="unicode", default_namespace=CAP_NS)
        entries.append(
            "  <entry>\n"
            f"    <id>urn:uuid:{entry_id}</id>\n"
            f"    <title>{escape(entry_title)}</title>\n"
            f"    <updated>{sent}</updated>\n"
            f"    <summary>{escape(_text(alert, 'description'))}</summary>\n"
            f"    <content type={quoteattr(CAP_MEDIA_TYPE)}>{body}</content>\n"
            "  </entry>\n"
        )
    newest = datetime.fromisoformat(_text(parsed[0], "sent")) if parsed else None
    feed_updated = updated or newest or datetime.now(UTC)
    link = f'  <link rel="self" href={quoteattr(self_url)}/>\n' if self_url else ""
    ident = feed_id or f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'floodwatch-cap:{title}')}"
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<feed xmlns="{ATOM_NS}">\n'
        f"  <id>{escape(ident)}</id>\n"
        f"  <title>{escape(title)}</title>\n"
        f"  <updated>{feed_updated.replace(microsecond=0).isoformat()}</updated>\n"
        f"  <author><name>{escape(author)}</name></author>\n"
        f"{link}{''.join(entries)}</feed>\n"
    )


def write_cap(out: IO, alerts: Sequence[bytes | str], **feed) -> None:
    """Write alerts as a CAP file: exactly one alert as a bare CAP document, else an Atom feed.

    A CAP document holds one `alert` and has no container for several, so the
    common case of one alert stays a plain CAP file any CAP tool reads, and
    zero or several go into the same Atom feed `/api/v1/cap.atom` serves.
    `out` may be a text or a binary stream; keyword arguments go to `cap_atom`.
    """
    if len(alerts) == 1:
        only = alerts[0]
        data = only if isinstance(only, bytes) else only.encode("utf-8")
    else:
        data = cap_atom(alerts, **feed).encode("utf-8")
    if isinstance(out, io.TextIOBase):
        out.write(data.decode("utf-8"))
    else:
        out.write(data)
