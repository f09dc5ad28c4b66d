"""Hydrograph PNG: valid, of the requested size, with gaps and missing alarm levels."""

from __future__ import annotations

import io
import math
import struct
import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from floodwatch.messages.hydrograph import HydrographData, render_hydrograph

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


def test_renders_fast_and_in_threads():
    render_hydrograph(_data(), ZONE)  # warm the font cache
    started = time.perf_counter()
    render_hydrograph(_data(), ZONE)
    assert time.perf_counter() - started < 2.0  # ~0.2 s normally; slack for slow CI

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
