"""Write dec2024.csv: a province-wide drill on the December 2024 spring tide.

Hourly observed water level and rainfall, 14/12/2024 00:00 to 18/12/2024 00:00
(+07:00), at every station the shipped segments (geodata/segments.geojson) use:

- TP Cà Mau (level, rain): the rows of tests/data/replay/spring_tide_dec2024.csv,
  peak 1.07 m at 16/12 18:00 (BĐ III 0.85 m), a 90 mm burst in the morning before it.
  Floods the city streets of four units (An Xuyên, Tân Thành, Lý Văn Lâm, Sở Xây dựng).
- Phước Long (level): the same tide damped and two hours later, peak 1.12 m
  (BĐ III 0.90 m); with
- Giá Rai (rain): 140 mm over four hours on the evening of 16/12, floods the three
  QL1 sections (ql1_quan_ly), over 30 cm at Láng Tròn.
- Sông Đốc (level, rain): the Gulf of Thailand's diurnal tide, peak 1.07 m
  (the Dec 2024 record; BĐ III 0.95 m) at 16/12 16:00, showers in the afternoon;
  floods the road along the Ông Đốc river (ubnd_song_doc).
- Năm Căn (level): the East Sea's semi-diurnal spring tide, peak 1.71 m (the
  Dec 2024 record; BĐ III 1.60 m) at 16/12 15:00; floods the road along the
  Cửa Lớn river (ubnd_nam_can).

The shapes are made up (a cosine tide under a spring envelope), the peaks are
those of the province's December 2024 bulletin. Run from the repository root:
    python drills/make_dec2024.py            # (re)write drills/dec2024.csv
    python drills/make_dec2024.py --check    # exit 1 if the file differs
"""

import math
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

ICT = timezone(timedelta(hours=7))
START, END = datetime(2024, 12, 14, tzinfo=ICT), datetime(2024, 12, 18, tzinfo=ICT)
PEAK = datetime(2024, 12, 16, 18, tzinfo=ICT)  # TP Cà Mau's peak
SEMI_DIURNAL_H, DIURNAL_H = 12.42, 24.84


def tide_m(when: datetime, peak: datetime, mean_m: float, peak_m: float, period_h: float) -> float:
    """A tide under a spring envelope, reaching `peak_m` at `peak`."""
    hours = (when - peak).total_seconds() / 3600
    envelope = math.exp(-((hours / 36.0) ** 2))
    return mean_m + (peak_m - mean_m) * envelope * math.cos(2 * math.pi * hours / period_h)


def burst(*mm: float, first: datetime) -> dict[datetime, float]:
    """Hourly rain totals from `first` on."""
    return {first + timedelta(hours=k): value for k, value in enumerate(mm)}


# station -> (mean level m, peak level m, peak time, period h); None: no level gauge.
LEVELS = {
    "tp_ca_mau": (0.30, 1.07, PEAK, SEMI_DIURNAL_H),
    "phuoc_long": (0.35, 1.12, PEAK + timedelta(hours=2), SEMI_DIURNAL_H),
    "song_doc": (0.26, 1.07, datetime(2024, 12, 16, 16, tzinfo=ICT), DIURNAL_H),
    "nam_can": (0.46, 1.71, datetime(2024, 12, 16, 15, tzinfo=ICT), SEMI_DIURNAL_H),
}
# station -> rain in the hour ending at each time (0 elsewhere).
RAIN = {
    "tp_ca_mau": burst(25.0, 45.0, 20.0, first=PEAK - timedelta(hours=13)),
    "gia_rai": burst(30.0, 55.0, 40.0, 15.0, first=datetime(2024, 12, 16, 17, tzinfo=ICT)),
    "song_doc": burst(12.0, 20.0, 8.0, first=datetime(2024, 12, 16, 14, tzinfo=ICT)),
}
ORDER = ("tp_ca_mau", "phuoc_long", "gia_rai", "song_doc", "nam_can")


def rows() -> list[str]:
    """The CSV lines, header first, in time then station order."""
    out = ["time,station,variable,value,kind"]
    when = START
    while when <= END:
        stamp = when.isoformat()
        for station in ORDER:
            if station in LEVELS:
                level = _level(station, when)
                out.append(f"{stamp},{station},water_level,{level:.3f},observed")
            if station in RAIN:
                out.append(
                    f"{stamp},{station},rainfall,{RAIN[station].get(when, 0.0):.1f},observed"
                )
        when += timedelta(hours=1)
    return out


def _level(station: str, when: datetime) -> float:
    """A station's level at `when`."""
    mean_m, peak_m, peak, period_h = LEVELS[station]
    return tide_m(when, peak, mean_m, peak_m, period_h)


def main() -> None:
    """Write the CSV beside this script (`--check`: exit 1 if the file differs)."""
    out = Path(__file__).with_name("dec2024.csv")
    text = "\n".join(rows()) + "\n"
    if "--check" in sys.argv[1:]:
        if out.read_text(encoding="utf-8") != text:
            sys.exit(f"{out} differs from what {Path(__file__).name} writes")
        return
    out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
