"""Hydrograph PNG: valid, of the requested size, with gaps and missing alarm levels."""

from __future__ import annotations

import io
import math
import struct
import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from PIL import Image

from floodwatch.messages.hydrograph import (
    ALARM_COLOURS,
    CREST_COLOUR,
    MARGIN_PX,
    OBSERVED_COLOUR,
    PREDICTED_COLOUR,
    HydrographData,
    render_hydrograph,
)

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
