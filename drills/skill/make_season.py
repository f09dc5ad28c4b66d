"""Write season.csv: a synthetic October 2025 whose warning scores can be worked by hand.

One gauge (`tram_thu`, water level and rain, hourly), two roads: A (crest
1.00 m, unit `phuong_a`) and B (crest 1.20 m, unit `phuong_b`); levels at 0.10,
0.30 and 0.50 m of depth. The astronomical tide (0.45 ± 0.25 m, period
12.42 h) never reaches a road. Each scenario below puts a bump on one day,
16:00–20:00 local: 0.95 m at 15:00, the bump's value P at 16:00, P+1 cm,
P+2 cm (the peak, 18:00), P+1 cm, P at 20:00, 0.90 m at 21:00. Forecasts are
issued daily at 06:00 for the next 48 hours, hourly: the astronomical tide
plus the forecast bump, and no rain.

| day | scenario | observed P | forecast P |
|---|---|---|---|
| 3 | warned a day and a half ahead | 1.22 | 1.22 (from day 2's issue) |
| 7 | deeper than forecast | 1.56 | 1.45 |
| 11 | surge nobody forecast | 1.22 | none |
| 15 | negative surge: forecast, stayed dry | none | 1.36 |
| 19 | rain burst, 60 mm an hour 14:00–16:00, not forecast | none | none |
| 23 | gauge silent 12:00–23:00 during a forecast flood | (missing) | 1.22 |
| 27 | forecast late: only day 27's issue has it | 1.22 | 1.22 (day 27 only) |
| 31 | forecast after the last observation | — | 1.22 (day 30's issue) |

The expected scores are worked out in drills/skill/README.md and checked by
tests/test_backtest.py. Run: python drills/skill/make_season.py
"""

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

ICT = timezone(timedelta(hours=7))
START = datetime(2025, 10, 1, tzinfo=ICT)
LAST_OBSERVATION = datetime(2025, 10, 31, tzinfo=ICT)
STATION = "tram_thu"
OBSERVED = {3: 1.22, 7: 1.56, 11: 1.22, 23: 1.22, 27: 1.22}
FORECAST = {3: 1.22, 7: 1.45, 15: 1.36, 23: 1.22, 27: 1.22, 31: 1.22}
FORECAST_FROM_ISSUE_DAY = {27: 27}  # day 27's bump is only in issues from day 27 on
RAIN_DAY, RAIN_HOURS, RAIN_MM = 19, (14, 15, 16), 60.0
SILENT_DAY, SILENT_HOURS = 23, range(12, 24)
ISSUE_HOUR, ISSUE_HOURS = 6, 48


def astronomical(when: datetime) -> float:
    """The tide nobody worries about."""
    hours = (when - START).total_seconds() / 3600
    return 0.45 + 0.25 * math.cos(2 * math.pi * hours / 12.42)


def bump(when: datetime, peak: float | None) -> float | None:
    """The scenario's level at this hour, or None outside its 15:00–21:00."""
    if peak is None:
        return None
    shape = {15: 0.95, 16: peak, 17: peak + 0.01, 18: peak + 0.02, 19: peak + 0.01,
             20: peak, 21: 0.90}  # fmt: skip
    return shape.get(when.hour)


def observed_level(when: datetime) -> float | None:
    """The gauge's reading, or None while it is silent."""
    if when.day == SILENT_DAY and when.hour in SILENT_HOURS:
        return None
    value = bump(when, OBSERVED.get(when.day))
    return astronomical(when) if value is None else value


def forecast_level(when: datetime, issued: datetime) -> float:
    """What the issue of `issued` predicted for `when`."""
    from_day = FORECAST_FROM_ISSUE_DAY.get(when.day, 0)
    peak = FORECAST.get(when.day) if issued.day >= from_day else None
    value = bump(when, peak)
    return astronomical(when) if value is None else value


def rows() -> list[str]:
    """Every observation, then every forecast issue."""
    out = ["time,station,variable,value,kind,issued"]
    when = START
    while when <= LAST_OBSERVATION:
        rain = RAIN_MM if when.day == RAIN_DAY and when.hour in RAIN_HOURS else 0.0
        if (level := observed_level(when)) is not None:
            out.append(f"{when.isoformat()},{STATION},water_level,{level:.3f},observed,")
        out.append(f"{when.isoformat()},{STATION},rainfall,{rain:.1f},observed,")
        when += timedelta(hours=1)
    issued = START.replace(hour=ISSUE_HOUR)
    while issued < LAST_OBSERVATION:
        for step in range(ISSUE_HOURS + 1):
            when = issued + timedelta(hours=step)
            stamp, made = when.isoformat(), issued.isoformat()
            level = forecast_level(when, issued)
            out.append(f"{stamp},{STATION},water_level,{level:.3f},forecast,{made}")
            out.append(f"{stamp},{STATION},rainfall,0.0,forecast,{made}")
        issued += timedelta(days=1)
    return out


def main() -> None:
    """Write the CSV beside this script."""
    Path(__file__).with_name("season.csv").write_text("\n".join(rows()) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
