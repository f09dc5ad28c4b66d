"""Write spring_tide_dec2024.csv: a December 2024-like spring tide with a rain burst.

TP Cà Mau water level peaks at exactly 1.07 m at 16/12/2024 18:00 (+07:00);
the high tide before it (about 0.98 m) comes with a 90 mm rain burst. Hourly
observed water level and rainfall at tp_ca_mau, 14/12 00:00 to 18/12 00:00.
Run: python tests/data/replay/make_spring_tide.py
"""

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

ICT = timezone(timedelta(hours=7))
PEAK = datetime(2024, 12, 16, 18, tzinfo=ICT)
PERIOD_H = 12.42
RAIN_MM = {PEAK - timedelta(hours=13): 25.0, PEAK - timedelta(hours=12): 45.0,
           PEAK - timedelta(hours=11): 20.0}  # fmt: skip


def level_m(when: datetime) -> float:
    """Semi-diurnal tide under a spring envelope centred on PEAK."""
    hours = (when - PEAK).total_seconds() / 3600
    envelope = math.exp(-((hours / 36.0) ** 2))
    return 0.30 + 0.77 * envelope * math.cos(2 * math.pi * hours / PERIOD_H)


def main() -> None:
    """Write the CSV beside this script."""
    out = Path(__file__).with_name("spring_tide_dec2024.csv")
    rows = ["time,station,variable,value,kind"]
    when = datetime(2024, 12, 14, tzinfo=ICT)
    while when <= datetime(2024, 12, 18, tzinfo=ICT):
        stamp = when.isoformat()
        rows.append(f"{stamp},tp_ca_mau,water_level,{level_m(when):.3f},observed")
        rows.append(f"{stamp},tp_ca_mau,rainfall,{RAIN_MM.get(when, 0.0):.1f},observed")
        when += timedelta(hours=1)
    out.write_text("\n".join(rows) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
