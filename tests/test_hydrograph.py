"""Hydrograph PNG: valid, of the requested size, with gaps and missing alarm levels."""

from __future__ import annotations

import io
import math
import struct
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from floodwatch.db.events import EventFilter
from floodwatch.db.models import AlertRow
from floodwatch.messages.hydrograph import (
    ALARM_COLOURS,
    CREST_COLOUR,
    MARGIN_PX,
    NO_DATA_COLOUR,
    NOW_COLOUR,
    OBSERVED_COLOUR,
    PREDICTED_COLOUR,
    RAIN_COLOUR,
    RAIN_MARGIN_RIGHT_PX,
    HydrographData,
    render_hydrograph,
)
from floodwatch.service.charts import alert_hydrographs, event_hydrograph, event_window
from floodwatch.service.cycle import utcnow
from tests import test_web

fw_app, client = test_web.fw_app, test_web.client  # fixtures: a replayed spring tide
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
T0 = datetime(2025, 11, 20, 0, 0, tzinfo=UTC)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _data(**changes) -> HydrographData:
    """Three days of a semi-diurnal tide at TP Cà Mau, observed until now, predicted after."""
    times = [T0 + timedelta(minutes=30 * i) for i in range(144)]
    now = T0 + timedelta(hours=30)
    wave = [0.30 + 0.55 * math.sin(2 * math.pi * i / 50) for i in range(144)]
    values = {
        "station_name": "TP Cà Mau",
        "times": times,
        "observed_m": [w if t <= now else math.nan for w, t in zip(wave, times, strict=True)],
        "predicted_m": [w + 0.02 if i >= 40 else math.nan for i, w in enumerate(wave)],
        "alarm_m": (0.65, 0.75, 0.85),
        "crest_m": 0.80,
        "crest_label": "Đường Phan Ngọc Hiển",
        "now": now,
    }
    values.update(changes)
    return HydrographData(**values)


def _png_size(png: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, after checking the signature."""
    assert png[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", png[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", png[16:24])


@pytest.mark.filterwarnings("error")
def test_png_of_requested_size():
    png = render_hydrograph(_data(), ZONE)
    assert _png_size(png) == (1000, 560)
    with Image.open(io.BytesIO(png)) as image:
        image.verify()
    png = render_hydrograph(_data(), ZONE, width_px=640, height_px=400)
    assert _png_size(png) == (640, 400)


def test_nan_gaps_and_missing_alarms_and_crest():
    data = _data(
        observed_m=[math.nan if 20 <= i < 30 else 0.4 for i in range(144)],
        predicted_m=[math.nan] * 144,
        alarm_m=(None, None, 0.90),  # Phước Long publishes only BĐ III
        crest_m=None,
        crest_label=None,
    )
    assert _png_size(render_hydrograph(data, ZONE)) == (1000, 560)


@pytest.mark.filterwarnings("error")
def test_short_window_with_now_at_the_edge():
    data = _data()
    data = _data(
        times=data.times[:20], observed_m=data.observed_m[:20], predicted_m=data.predicted_m[:20]
    )
    assert _png_size(render_hydrograph(data, ZONE, width_px=640, height_px=400)) == (640, 400)


def test_all_nan_and_no_reference_lines():
    data = _data(
        observed_m=[math.nan] * 144,
        predicted_m=[math.nan] * 144,
        alarm_m=(None, None, None),
        crest_m=None,
        crest_label=None,
    )
    assert _png_size(render_hydrograph(data, ZONE)) == (1000, 560)


def test_mismatched_lengths_rejected():
    with pytest.raises(ValueError, match="TP Cà Mau"):
        render_hydrograph(_data(observed_m=[0.1]), ZONE)


def test_plot_is_not_blank():
    png = render_hydrograph(_data(), ZONE)
    with Image.open(io.BytesIO(png)) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 50


def test_renders_in_threads():
    results: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: results.append(render_hydrograph(_data(), ZONE)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    assert all(_png_size(png) == (1000, 560) for png in results)
    assert len(set(results)) == 1  # threads do not draw into each other's figures


WIDTH, HEIGHT = 1000, 560


def _pixels(png: bytes, colour: str) -> tuple[np.ndarray, np.ndarray]:
    """x and y of the plot-area pixels drawn exactly in `colour` (the legend is outside)."""
    with Image.open(io.BytesIO(png)) as image:
        rgb = np.asarray(image.convert("RGB"))
    target = np.array([int(colour[k : k + 2], 16) for k in (1, 3, 5)])
    mask = (rgb == target).all(axis=-1)
    top, bottom = MARGIN_PX["top"], HEIGHT - MARGIN_PX["bottom"]
    left, right = MARGIN_PX["left"], WIDTH - MARGIN_PX["right"]
    ys, xs = np.nonzero(mask[top:bottom, left:right])
    return xs + left, ys + top


def _x_of(index: int, n: int = 144) -> float:
    """The pixel column of sample `index` (the axis spans the samples exactly)."""
    left, right = MARGIN_PX["left"], WIDTH - MARGIN_PX["right"]
    return left + (right - left) * index / (n - 1)


def test_observed_stops_at_now_and_the_prediction_runs_on():
    png = render_hydrograph(_data(), ZONE)  # now is sample 60; predictions from sample 40
    obs_x, _ = _pixels(png, OBSERVED_COLOUR)
    pred_x, _ = _pixels(png, PREDICTED_COLOUR)
    assert obs_x.size and obs_x.min() <= _x_of(0) + 3
    assert abs(obs_x.max() - _x_of(60)) <= 4
    assert pred_x.max() >= _x_of(143) - 4 and pred_x.min() >= _x_of(40) - 4


def test_a_gap_in_the_observations_is_a_gap_in_the_line():
    observed = [math.nan if 20 <= i < 30 else 0.4 for i in range(144)]
    png = render_hydrograph(_data(observed_m=observed, predicted_m=[math.nan] * 144), ZONE)
    obs_x, _ = _pixels(png, OBSERVED_COLOUR)
    inside_gap = (obs_x > _x_of(20) + 3) & (obs_x < _x_of(29) - 3)
    assert obs_x.size and not inside_gap.any()
    assert (obs_x > _x_of(31)).any() and (obs_x < _x_of(19)).any()
    assert _pixels(png, PREDICTED_COLOUR)[0].size == 0  # no prediction: no dashed line


def test_only_the_configured_alarm_levels_and_crest_are_drawn():
    png = render_hydrograph(_data(alarm_m=(None, None, 0.90), crest_m=None), ZONE)
    assert _pixels(png, ALARM_COLOURS[0])[0].size == 0
    assert _pixels(png, ALARM_COLOURS[1])[0].size == 0
    assert _pixels(png, CREST_COLOUR)[0].size == 0
    xs, ys = _pixels(png, ALARM_COLOURS[2])
    assert xs.max() - xs.min() > 0.9 * (WIDTH - MARGIN_PX["left"] - MARGIN_PX["right"])
    assert ys.max() - ys.min() <= 2  # one horizontal line
    with_all = render_hydrograph(_data(), ZONE)
    levels = [_pixels(with_all, c)[1].mean() for c in ALARM_COLOURS]
    assert levels[0] > levels[1] > levels[2]  # BĐ I lowest on the axis: largest pixel row
    assert _pixels(with_all, CREST_COLOUR)[0].size > 0


def test_nothing_known_draws_no_lines():
    data = _data(observed_m=[math.nan] * 144, predicted_m=[math.nan] * 144)
    png = render_hydrograph(data, ZONE)
    assert _pixels(png, OBSERVED_COLOUR)[0].size == 0
    assert _pixels(png, PREDICTED_COLOUR)[0].size == 0


# --- event charts: the whole event, no "now" once closed, rain bars for rain --------------


def _plot_pixels(png: bytes, colour: str, right_px: int) -> tuple[np.ndarray, np.ndarray]:
    """x and y of the plot-area pixels in `colour`, for a chart with `right_px` on the right."""
    with Image.open(io.BytesIO(png)) as image:
        rgb = np.asarray(image.convert("RGB"))
    width, height = rgb.shape[1], rgb.shape[0]
    target = np.array([int(colour[k : k + 2], 16) for k in (1, 3, 5)])
    mask = (rgb == target).all(axis=-1)
    top, bottom = MARGIN_PX["top"], height - MARGIN_PX["bottom"]
    left, right = MARGIN_PX["left"], width - right_px
    ys, xs = np.nonzero(mask[top:bottom, left:right])
    return xs + left, ys + top


def test_no_now_marker_when_not_shown():
    assert _pixels(render_hydrograph(_data(), ZONE), NOW_COLOUR)[0].size > 0
    png = render_hydrograph(_data(show_now=False), ZONE)
    assert _pixels(png, NOW_COLOUR)[0].size == 0


def _rainy(**changes) -> HydrographData:
    """_data with hourly rain: 12 mm/h for six hours, unknown for three, dry otherwise."""
    hours = [T0 + timedelta(hours=h) for h in range(1, 73)]
    rain = [12.0 if 10 <= h < 16 else math.nan if 40 <= h < 43 else 0.0 for h in range(72)]
    return _data(rain_times=hours, rain_mm=rain, rain_station_name="TP Cà Mau", **changes)


def _x_at(when: datetime, first: datetime, last: datetime, right_px: int) -> float:
    """The pixel column of a time on an axis spanning [first, last]."""
    left, right = MARGIN_PX["left"], WIDTH - right_px
    return left + (right - left) * (when - first) / (last - first)


def test_rain_bars_under_the_lines_and_unknown_hours_marked():
    data = _rainy()
    png = render_hydrograph(data, ZONE)
    assert _png_size(png) == (WIDTH, HEIGHT)
    first, last = data.times[0], data.times[-1]
    xs, ys = _plot_pixels(png, RAIN_COLOUR, RAIN_MARGIN_RIGHT_PX)
    assert xs.size > 100
    # The bars stand where it rained (hours ending 11:00–16:00 UTC of the first day) ...
    lo = _x_at(T0 + timedelta(hours=10), first, last, RAIN_MARGIN_RIGHT_PX)
    hi = _x_at(T0 + timedelta(hours=16), first, last, RAIN_MARGIN_RIGHT_PX)
    assert xs.min() >= lo - 3 and xs.max() <= hi + 3
    # ... in the lower part of the plot, under the level lines.
    assert ys.min() > MARGIN_PX["top"] + 0.5 * (HEIGHT - MARGIN_PX["top"] - MARGIN_PX["bottom"])
    # The three unknown hours are a grey band, not a zero.
    gx, _ = _plot_pixels(png, NO_DATA_COLOUR, RAIN_MARGIN_RIGHT_PX)
    band_lo = _x_at(T0 + timedelta(hours=40), first, last, RAIN_MARGIN_RIGHT_PX)
    band_hi = _x_at(T0 + timedelta(hours=43), first, last, RAIN_MARGIN_RIGHT_PX)
    assert gx.size and gx.min() >= band_lo - 3 and gx.max() <= band_hi + 3
    # Without rain there are no bars and no band.
    plain = render_hydrograph(_data(), ZONE)
    assert _pixels(plain, RAIN_COLOUR)[0].size == 0 and _pixels(plain, NO_DATA_COLOUR)[0].size == 0


def test_rain_lengths_checked():
    with pytest.raises(ValueError, match="rain"):
        render_hydrograph(_data(rain_times=[T0], rain_mm=[1.0, 2.0]), ZONE)


def _closed_event(fw_app, cause: str):
    """A closed observed event of the replayed spring tide with this cause, and its road."""
    ev = next(
        e
        for e in fw_app.store.events.listing(EventFilter(kind="observed", status="closed"))
        if e.cause == cause and e.peak_at is not None
    )
    return ev, fw_app.geodata.segment(ev.segment_id)


def test_closed_event_chart_shows_the_recession_without_now(fw_app, client):
    ev, segment = _closed_event(fw_app, "compound")
    png = client.get(f"/events/{ev.id}/hydrograph.png").content
    assert _png_size(png) == (WIDTH, HEIGHT)
    window = event_window(ev, utcnow())
    first = window.grid.at(0)
    last = window.grid.at(len(window.grid.times_s) - 1)
    assert not window.live and first < ev.opened_at and last > ev.closed_at
    obs_x, _ = _plot_pixels(png, OBSERVED_COLOUR, RAIN_MARGIN_RIGHT_PX)
    right = WIDTH - RAIN_MARGIN_RIGHT_PX
    peak_x = _x_at(ev.peak_at, first, last, RAIN_MARGIN_RIGHT_PX)
    end_x = _x_at(ev.closed_at, first, last, RAIN_MARGIN_RIGHT_PX)
    # The observed line runs from before the rise, past the peak, through the end and on.
    assert obs_x.min() <= MARGIN_PX["left"] + 4
    assert obs_x.max() >= right - 4 and obs_x.max() > end_x > peak_x
    assert ((obs_x > peak_x + 20) & (obs_x < end_x)).any()
    assert _plot_pixels(png, NOW_COLOUR, RAIN_MARGIN_RIGHT_PX)[0].size == 0  # no "Bây giờ"
    # A compound event: the rain of the road's rain station as bars.
    assert _plot_pixels(png, RAIN_COLOUR, RAIN_MARGIN_RIGHT_PX)[0].size > 100


def test_rain_bars_for_rain_and_compound_events_only(fw_app):
    ev, segment = _closed_event(fw_app, "rain")
    for cause in ("rain", "compound"):
        png = event_hydrograph(fw_app, replace(ev, cause=cause), segment, utcnow())
        assert _plot_pixels(png, RAIN_COLOUR, RAIN_MARGIN_RIGHT_PX)[0].size > 100, cause
        assert _plot_pixels(png, NOW_COLOUR, RAIN_MARGIN_RIGHT_PX)[0].size == 0
    tide = event_hydrograph(fw_app, replace(ev, cause="tide"), segment, utcnow())
    assert _pixels(tide, RAIN_COLOUR)[0].size == 0
    assert _pixels(tide, OBSERVED_COLOUR)[0].max() >= WIDTH - MARGIN_PX["right"] - 4


def test_rain_nobody_measured_is_a_gap_not_zero(fw_app):
    ev, segment = _closed_event(fw_app, "rain")
    # Another road's rain station that has no rain stored: every hour is unknown.
    dry = replace(segment, rain_station="song_doc")
    png = event_hydrograph(fw_app, ev, dry, utcnow())
    assert _plot_pixels(png, RAIN_COLOUR, RAIN_MARGIN_RIGHT_PX)[0].size == 0
    band, _ = _plot_pixels(png, NO_DATA_COLOUR, RAIN_MARGIN_RIGHT_PX)
    assert band.size and band.max() - band.min() > 0.8 * (WIDTH - 78 - RAIN_MARGIN_RIGHT_PX)


def test_open_event_chart_marks_now(fw_app):
    ev = next(e for e in fw_app.store.events.listing() if e.status != "closed")
    segment = fw_app.geodata.segment(ev.segment_id)
    now = ev.opened_at + timedelta(hours=2)
    window = event_window(ev, now)
    assert window.live and window.grid.at(0) < ev.opened_at
    png = event_hydrograph(fw_app, ev, segment, now)
    xs, _ = _pixels(png, NOW_COLOUR)  # the "Bây giờ" label, just right of the dotted line
    first, last = window.grid.at(0), window.grid.at(len(window.grid.times_s) - 1)
    now_x = _x_at(now, first, last, MARGIN_PX["right"])
    assert xs.size and now_x <= xs.min() <= now_x + 12


def test_onset_alert_of_a_rain_flood_carries_rain_bars(fw_app):
    causes = {e.id: e.cause for e in fw_app.store.events.listing()}
    with fw_app.store.engine.connect() as conn:
        onsets = [a for a in conn.execute(select(AlertRow)) if "onset" in a.kinds]
    rainy = next(a for a in onsets if any(causes[i] in ("rain", "compound") for i in a.event_ids))
    pictures = alert_hydrographs(fw_app, rainy, rainy.created_at)
    assert pictures and "lượng mưa" in pictures[0][0]
    png = pictures[0][1]
    assert _plot_pixels(png, RAIN_COLOUR, RAIN_MARGIN_RIGHT_PX)[0].size > 20
    assert _plot_pixels(png, NOW_COLOUR, RAIN_MARGIN_RIGHT_PX)[0].size > 0  # live: now marked
