"""Strata and the seeded sample: the unit is the series; strata are modality x stored transfer syntax x depth
class. Within a stratum the series are put in UID order and drawn without replacement by a generator seeded from
the survey's seed and the stratum's name, so the same seed draws the same series on every machine and a stratum's
draw does not depend on the others.

- ``fraction`` f: n = ceil(f x N) series of a stratum of N, at least ``MIN_SAMPLE`` (two: a stratum's variance
  needs two); ``per_stratum`` k: n = k (at least two).
- A stratum of ``MIN_SAMPLE`` series or fewer is measured whole: nothing is projected there.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np

from ..errors import MedpipeError

MIN_SAMPLE = 2
STRATA_KEYS = ("modality", "syntax", "bits")


def stratum_of(series, keys=STRATA_KEYS) -> str:
    parts = {"modality": series.modality, "syntax": series.transfer_syntax, "bits": series.bits_class}
    return " | ".join(parts[k] for k in keys)


def strata(series: list, keys=STRATA_KEYS) -> dict[str, list]:
    """Stratum name -> its series in UID order."""
    out: dict[str, list] = {}
    for s in series:
        out.setdefault(stratum_of(s, keys), []).append(s)
    return {k: sorted(v, key=lambda s: s.series_uid) for k, v in sorted(out.items())}


def sample_size(total: int, fraction: float | None, per_stratum: int | None) -> int:
    if total <= MIN_SAMPLE:
        return total
    if per_stratum is not None:
        return min(total, max(MIN_SAMPLE, per_stratum))
    return min(total, max(MIN_SAMPLE, math.ceil((1.0 if fraction is None else fraction) * total - 1e-9)))


def _rng(seed: int, name: str) -> np.random.Generator:
    salt = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    return np.random.default_rng([int(seed), salt])


def draw(groups: dict[str, list], seed: int, fraction: float | None = None, per_stratum: int | None = None
         ) -> dict[str, list[str]]:
    """Stratum -> the series UIDs drawn (sorted)."""
    if fraction is not None and not 0 < fraction <= 1:
        raise MedpipeError(f"--sample {fraction}: give a fraction of the series in (0, 1], e.g. 0.1")
    if per_stratum is not None and per_stratum < 1:
        raise MedpipeError(f"--per-stratum {per_stratum}: give at least 1")
    out = {}
    for name, members in groups.items():
        n = sample_size(len(members), fraction, per_stratum)
        picks = _rng(seed, name).choice(len(members), size=n, replace=False) if n < len(members) else \
            range(len(members))
        out[name] = sorted(members[i].series_uid for i in picks)
    return out
