"""Tidal constituents: names across spellings, and their astronomical arguments (pyTMD).

One convention for the whole project: Greenwich phase lags g in degrees, and
    level(t) = Z0 + sum f_k(t) * A_k * cos(V_k(t) + u_k(t) - g_k)
with V (equilibrium argument from Doodson numbers), f and u (node factor and angle)
from pyTMD's `arguments(..., corrections="FES", M1="Doodson")`, brought to
Schureman's (NOAA's, IHO's) arguments where pyTMD differs: Sa is h (pyTMD: h - p')
and M3 carries 180 degrees. See docs/model.md, "Tide conventions".
"""

from __future__ import annotations

from functools import cache

import numpy as np

# Other spellings of a constituent -> the name floodwatch writes (pyTMD's, upper case).
ALIASES = {
    "EP2": "EPS2",
    "LAM2": "LAMBDA2",
    "LDA2": "LAMBDA2",
    "LABDA2": "LAMBDA2",
    "RHO": "RHO1",
    "SGM": "SIGMA1",
    "SIG1": "SIGMA1",
    "ALP1": "ALPHA1",
    "THE1": "THETA1",
    "UPS1": "UPSILON1",
}
# Compound constituents pyTMD does not list: name -> {component: multiple}; V and u add
# with the multiples, f multiplies with their absolute values (Foreman's shallow-water rule).
COMPOUNDS = {"3L2": {"L2": 3, "M2": -2}}
# Schureman (and NOAA, IHO, uptide, hatyan) put 180 degrees in M3's argument; pyTMD does not.
SHIFT_180 = frozenset({"M3"})
_MJD_1970 = 40587.0


def canonical(name: str) -> str:
    """The name floodwatch uses for a constituent spelling (upper case, aliases resolved)."""
    upper = name.strip().upper()
    return ALIASES.get(upper, upper)


@cache
def known(name: str) -> bool:
    """Whether the engine can predict this (canonical) constituent."""
    if name in COMPOUNDS:
        return True
    import pyTMD.constituents

    try:
        pyTMD.constituents.coefficients_table([name.lower()])
    except (ValueError, KeyError):
        return False
    return True


def _arguments(mjd: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(f, V + u in radians) of pyTMD-known constituents, each shaped (times, names)."""
    import pyTMD.astro
    import pyTMD.constituents

    pu, pf, g_deg = pyTMD.constituents.arguments(
        mjd, [n.lower() for n in names], corrections="FES", M1="Doodson"
    )
    arg = np.deg2rad(np.asarray(g_deg, dtype=float)) + pu
    for k, name in enumerate(names):
        if name == "SA":  # Schureman's Sa is h; pyTMD's is Doodson's h - p'
            *_, perihelion = pyTMD.astro.mean_longitudes(mjd, method="ASTRO5")
            arg[:, k] += np.deg2rad(perihelion)
        elif name in SHIFT_180:
            arg[:, k] += np.pi
    return np.asarray(pf, dtype=float), arg


def node_terms(seconds: np.ndarray, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Node factors f and arguments V + u (radians) at epoch seconds: (times, names) arrays."""
    mjd = np.atleast_1d(np.asarray(seconds, dtype=float)) / 86400.0 + _MJD_1970
    parts = sorted({c for name in names for c in COMPOUNDS.get(name, {name: 1})})
    f_all, arg_all = _arguments(mjd, parts)
    index = {name: i for i, name in enumerate(parts)}
    f = np.ones((mjd.size, len(names)))
    arg = np.zeros((mjd.size, len(names)))
    for k, name in enumerate(names):
        for part, times in COMPOUNDS.get(name, {name: 1}).items():
            f[:, k] *= f_all[:, index[part]] ** abs(times)
            arg[:, k] += times * arg_all[:, index[part]]
    return f, arg
