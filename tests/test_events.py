"""The event state machine: hysteresis, receding, closing, forecasts (pure, no database)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from floodwatch.core.depth import COMPOUND, RAIN, TIDE
from floodwatch.core.events import CLOSED, FLOODED, RECEDING, Forecast, Rules, SegmentNow, step

T0 = datetime(2024, 12, 16, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
RULES = Rules(thresholds_m=(0.10, 0.30, 0.50), hysteresis_m=0.03, close_after=HOUR)


def observe(depths: list[float], causes: list[int] | None = None, rules: Rules = RULES):
    """Drive one segment through hourly observed depths; return every recorded change."""
    observed = forecast = None
    recorded = []
    for i, depth in enumerate(depths):
        now = SegmentNow(
            "s1", "u1", T0 + i * HOUR, True, depth, (causes or [TIDE] * len(depths))[i], None
        )
        for change in step(now, observed, forecast, rules):
            state = replace(change.event, id=change.event.id or 1)
            if state.kind == "observed":
                observed = None if state.status == CLOSED else state
            if change.change:
                recorded.append(replace(change, event=state))
    return recorded, observed


def names(changes) -> list[str]:
    """The change names, in order."""
    return [c.change for c in changes]


def test_rising_and_falling_levels_open_escalate_and_close():
    changes, still_open = observe([0.0, 0.12, 0.35, 0.55, 0.32, 0.05, 0.0, 0.0])
    assert names(changes) == [
        "opened", "level_up", "level_up", "level_down", "receding", "closed",
    ]  # fmt: skip
    assert [c.alert for c in changes] == [
        "onset", "level_up", "level_up", "level_down", None, "all_clear",
    ]  # fmt: skip
    closed = changes[-1].event
    assert still_open is None
    assert closed.max_level == 3 and closed.peak_depth_m == 0.55
    assert closed.peak_at == T0 + 3 * HOUR
    # The event ends when the water fell below the threshold, not when it was closed.
    assert closed.closed_at == T0 + 5 * HOUR


def test_depth_hovering_at_a_threshold_does_not_flap():
    hovering = [0.31, 0.29, 0.31, 0.28, 0.30, 0.29]  # around the 0.30 m threshold
    changes, still_open = observe([0.0, *hovering])
    assert names(changes) == ["opened"]  # level 2 held: never below 0.30 - 0.03
    assert still_open.level == 2

    near_first = [0.11, 0.08, 0.12, 0.09, 0.10]  # around 0.10, within the hysteresis
    changes, still_open = observe([0.0, *near_first])
    assert names(changes) == ["opened"] and still_open.status == FLOODED


def test_brief_dip_recedes_and_refloods_the_same_event():
    changes, still_open = observe([0.2, 0.02, 0.2, 0.2])
    assert names(changes) == ["opened", "receding", "reflooded"]
    assert len({c.event.id for c in changes}) == 1
    assert still_open.status == FLOODED


def test_event_closes_only_after_the_minimum_dry_time():
    slow = replace(RULES, close_after=3 * HOUR)
    changes, still_open = observe([0.2, 0.0, 0.0, 0.0], rules=slow)
    assert names(changes) == ["opened", "receding"]
    assert still_open.status == RECEDING
    changes, _ = observe([0.2, 0.0, 0.0, 0.0, 0.0], rules=slow)
    assert names(changes)[-1] == "closed"


def test_cause_is_the_union_of_what_was_seen():
    changes, _ = observe([0.2, 0.25, 0.0, 0.0], causes=[TIDE, RAIN, 0, 0])
    assert changes[-1].event.cause == "compound"
    changes, _ = observe([0.2, 0.0, 0.0], causes=[RAIN, 0, 0])
    assert changes[-1].event.cause == "rain"
    assert COMPOUND == TIDE | RAIN


def fc(onset_h: float, peak_m: float, length_h: float = 3) -> Forecast:
    """A forecast episode starting `onset_h` hours after T0."""
    onset = T0 + onset_h * HOUR
    return Forecast(onset, onset + length_h * HOUR, onset + HOUR, peak_m, TIDE)


def forecast_now(at_h: float, forecast: Forecast | None, depth: float = 0.0) -> SegmentNow:
    """A cycle `at_h` hours after T0 with only a forecast (and maybe an observation)."""
    return SegmentNow("s1", "u1", T0 + at_h * HOUR, depth > 0, depth, TIDE, forecast)


def test_forecast_opens_with_lead_time_and_updates_only_on_material_moves():
    [opened] = step(forecast_now(0, fc(6, 0.20)), None, None, RULES)
    assert opened.alert == "forecast" and opened.event.status == "forecast"
    assert opened.event.expected_onset_at == T0 + 6 * HOUR
    ev = replace(opened.event, id=7)
    assert step(forecast_now(1, fc(6.5, 0.22)), None, ev, RULES) == []  # small moves
    [moved] = step(forecast_now(1, fc(8, 0.22)), None, ev, RULES)
    assert moved.change == "forecast_updated" and moved.alert == "forecast_update"
    [deeper] = step(forecast_now(1, fc(6, 0.35)), None, ev, RULES)
    assert deeper.event.max_level == 2


def test_forecast_coming_true_links_the_observed_event():
    ev = replace(step(forecast_now(0, fc(2, 0.2)), None, None, RULES)[0].event, id=7)
    changes = step(forecast_now(2, fc(2, 0.2), depth=0.15), None, ev, RULES)
    assert [(c.event.kind, c.change) for c in changes] == [
        ("observed", "opened"),
        ("forecast", "confirmed"),
    ]
    assert changes[0].event.forecast_event_id == 7
    assert changes[1].event.status == CLOSED


def test_withdrawn_forecast_is_cancelled_and_a_passed_one_expires():
    ev = replace(step(forecast_now(0, fc(6, 0.2)), None, None, RULES)[0].event, id=7)
    [cancelled] = step(forecast_now(1, None), None, ev, RULES)
    assert cancelled.change == "cancelled" and cancelled.alert == "forecast_cancelled"
    [expired] = step(forecast_now(7, None), None, ev, RULES)
    assert expired.change == "expired" and expired.alert is None


def test_next_tide_after_a_passed_episode_is_a_new_forecast_event():
    ev = replace(step(forecast_now(0, fc(1, 0.2)), None, None, RULES)[0].event, id=7)
    changes = step(forecast_now(5, fc(13, 0.2)), None, ev, RULES)
    assert [c.change for c in changes] == ["expired", "opened"]
    assert changes[1].event.id is None


def test_open_observed_event_holds_without_fresh_observations():
    changes, still_open = observe([0.2])
    stale = SegmentNow("s1", "u1", T0 + 5 * HOUR, False, 0.0, 0, None)
    assert step(stale, still_open, None, RULES) == []
