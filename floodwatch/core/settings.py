"""What every settings table shares: strictness, and the physical bounds of the province.

Pure: pydantic only. The config, the sources and the core's own settings (validation
limits) build on it.
"""

from __future__ import annotations

from typing import get_args

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

# Physical bounds shared by the config and the geodata (docs/configuration.md).
# Elevations and water levels, metres on the national datum (Hòn Dấu): the
# province lies within a few metres of sea level; anything outside is a typo
# or a unit mistake (cm, mm, a survey datum off by a constant).
DATUM_MIN_M = -10.0
DATUM_MAX_M = 20.0
# Flood depths and depth thresholds, metres.
MAX_DEPTH_M = 10.0
MAX_INTERVAL_MINUTES = 24 * 60
MAX_STALE_MINUTES = 7 * 24 * 60
MAX_TIMEOUT_S = 300.0
# Error type of `true`/`false` given for a number (config.parse_settings names the key).
BOOL_FOR_NUMBER = "bool_for_number"


class StrictBase(BaseModel):
    """A settings table: unknown keys, NaN, inf and true/false for a number are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, data: object) -> object:
        # pydantic would read `interval_minutes = true` as 1 minute.
        if isinstance(data, dict):
            for name, value in data.items():
                field = cls.model_fields.get(name) if isinstance(name, str) else None
                if (
                    isinstance(value, bool)
                    and field is not None
                    and field.annotation is not bool
                    and bool not in get_args(field.annotation)
                ):
                    # parse_settings adds `key` to the error's location.
                    raise PydanticCustomError(
                        BOOL_FOR_NUMBER, "true/false is not a valid value here", {"key": name}
                    )
        return data
