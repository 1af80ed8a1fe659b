"""Process capability of one measurement's values: Cpk and Ppk, and the sigmas behind them.

For values ``x1..xn`` in time order, ``LSL``/``USL`` the low and high limits:

- ``mean = sum(x) / n``
- overall sigma (Ppk): the sample standard deviation, ``s = sqrt(sum((x - mean)^2) / (n - 1))``
- within sigma (Cpk): the average moving range over ``d2 = 1.128`` (subgroups of 2,
  consecutive values), ``MR-bar = sum(|x[i] - x[i-1]|, i=2..n) / (n - 1)``,
  ``sigma_within = MR-bar / 1.128``
- ``Cpk = min(USL - mean, mean - LSL) / (3 * sigma_within)``
- ``Ppk = min(USL - mean, mean - LSL) / (3 * s)``

With one limit only, the side that exists is the index (``Cpu`` or ``Cpl``).
An index is None (printed ``n/a``) without limits, with fewer than 2 values,
or when its sigma is 0.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["D2", "Capability", "capability"]

#: The bias constant d2 for moving ranges of 2 consecutive values.
D2 = 1.128


@dataclass(frozen=True)
class Capability:
    """The statistics of one series of values against its limits."""

    n: int
    mean: float | None
    #: Overall sample standard deviation (n - 1): Ppk's sigma.
    sigma_overall: float | None
    #: Average moving range of consecutive values.
    mr_bar: float | None
    #: ``mr_bar / 1.128``: Cpk's sigma.
    sigma_within: float | None
    low: float | None
    high: float | None
    cpk: float | None
    ppk: float | None
    minimum: float | None
    maximum: float | None
    #: Values outside the limits.
    out_of_limits: int


def _index(mean: float, sigma: float | None, low: float | None, high: float | None) -> float | None:
    if sigma is None or sigma <= 0 or (low is None and high is None):
        return None
    sides = [high - mean] if high is not None else []
    sides += [mean - low] if low is not None else []
    return min(sides) / (3 * sigma)


def capability(values: Sequence[float], low: float | None, high: float | None) -> Capability:
    """Cpk and Ppk of ``values`` (time order matters for Cpk) against ``low``/``high``."""
    xs = [float(v) for v in values if math.isfinite(v)]
    n = len(xs)
    outside = sum(1 for x in xs if (low is not None and x < low) or (high is not None and x > high))
    if n == 0:
        return Capability(0, None, None, None, None, low, high, None, None, None, None, outside)
    mean = math.fsum(xs) / n
    sigma = mr_bar = within = None
    if n >= 2:
        sigma = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
        mr_bar = math.fsum(abs(b - a) for a, b in itertools.pairwise(xs)) / (n - 1)
        within = mr_bar / D2
    return Capability(
        n=n,
        mean=mean,
        sigma_overall=sigma,
        mr_bar=mr_bar,
        sigma_within=within,
        low=low,
        high=high,
        cpk=_index(mean, within, low, high),
        ppk=_index(mean, sigma, low, high),
        minimum=min(xs),
        maximum=max(xs),
        out_of_limits=outside,
    )
