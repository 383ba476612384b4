"""Projection with intervals: a separate ratio estimator per stratum, summed over strata.

Within stratum h (N series, n measured, auxiliary a known for every series from the inventory: stored bytes when
the source reports them, else raw pixel bytes), a total of v (bytes after re-encoding, bytes now when unknown,
encode or decode seconds) is projected as T = A x sum(v)/sum(a), A the stratum's auxiliary total. Its variance is
the ratio estimator's linearised variance with the finite-population correction,
V = N^2 (1 - n/N) s^2 / n, e_i = v_i - R a_i (Cochran, Sampling Techniques, 6.9). Two or three series cannot show
a stratum's spread (two JPEG-LS series that happen to re-encode alike give s = 0 and an interval of zero width), so
s^2 is the residual variance shrunk towards a prior spread, s^2 = (k (c R a_mean)^2 + sum (e_i - e_mean)^2) /
(k + n - 1) with c = 5 % (a series' value about R a_i) and k = 2 prior degrees of freedom -- unless the plain
residual variance is larger (then it is used, with n - 1 degrees of freedom): the prior never narrows an interval.
Strata add up; the 95 % interval is T +- t x sqrt(V), t from Student's t with Satterthwaite's degrees of freedom
(a normal quantile would be too narrow). A stratum measured whole has V = 0, so ``--sample 1`` gives intervals of
zero width. Why not the bootstrap: a naive bootstrap ignores the finite-population correction (it gives width at
a full sample) and is unstable with 2-5 series per stratum; the bench (bench/survey_coverage.py) measures how
often this interval holds the full figure.

The saving 1 - Y/X: when X (bytes now) is known it is exact and the interval is Y's; when X is itself projected,
the ratio Q = Y/X is linearised (d_i = e_y,i - Q e_x,i), so the uncertainty of bytes now is carried into it.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np

Z_FALLBACK = 1.959964
PRIOR_CV, PRIOR_DF = 0.05, 2  # the prior spread of a series about its stratum's ratio, and its weight (docstring)


def t_quantile(df: float) -> float:
    if not math.isfinite(df) or df <= 0:
        return Z_FALLBACK
    from scipy.stats import t

    return float(t.ppf(0.975, df))


@dataclass
class Stratum:
    """One stratum's population (auxiliary values of every series) and its measured series."""

    name: str
    modality: str
    aux: dict[str, float]  # series UID -> auxiliary value (every series of the stratum)
    bytes_known: bool  # stored bytes of every series known from the inventory (then bytes now is exact)
    stored: dict[str, float]  # series UID -> stored bytes from the inventory (when known)
    measured: dict[str, dict]  # series UID -> its measurement (survey.measure)

    @property
    def total(self) -> int:
        return len(self.aux)

    @property
    def aux_total(self) -> float:
        return float(sum(self.aux.values()))


@dataclass
class Term:
    """A projected total in one stratum, with the residuals its variance comes from."""

    total: float
    ratio: float
    resid: np.ndarray  # e_i over the measured series
    n: int
    N: int
    typical: float = 0.0  # R x the mean auxiliary of the measured series: a typical series' value
    prior_cv: float = PRIOR_CV  # the prior spread of a series about R a_i, relative (pooled_cv)

    def spread(self, resid: np.ndarray | None = None) -> tuple[float, float]:
        """(s^2, its degrees of freedom): the residual variance, or the one shrunk towards the prior spread when
        that is larger (module docstring)."""
        e = self.resid if resid is None else resid
        ss = float(np.sum((e - e.mean()) ** 2)) if self.n > 1 else 0.0
        shrunk = (PRIOR_DF * (self.prior_cv * self.typical) ** 2 + ss) / (PRIOR_DF + self.n - 1)
        if self.n > 1 and ss / (self.n - 1) >= shrunk:
            return ss / (self.n - 1), self.n - 1
        return shrunk, PRIOR_DF + self.n - 1

    def var(self, resid: np.ndarray | None = None) -> tuple[float, float]:
        """(N^2 (1 - n/N) s^2 / n, degrees of freedom); zero when every series is measured."""
        if self.n >= self.N or self.n < 1:
            return 0.0, 0.0
        s2, df = self.spread(resid)
        return self.N ** 2 * (1 - self.n / self.N) * s2 / self.n, df


def project(st: Stratum, values: dict[str, float], prior_cv: float = PRIOR_CV) -> Term:
    """Ratio-estimated total of ``values`` (measured series only) over the stratum."""
    uids = [u for u in st.measured if u in values]
    v = np.array([values[u] for u in uids], dtype=float)
    a = np.array([st.aux[u] for u in uids], dtype=float)
    if not uids or a.sum() <= 0:
        return Term(math.nan, math.nan, np.zeros(0), 0, st.total)
    r = float(v.sum() / a.sum())
    return Term(st.aux_total * r, r, v - r * a, len(uids), st.total, r * float(a.mean()), prior_cv)


def pooled_cv(strata: list[Stratum], values_of) -> float:
    """How far series differ from their stratum's ratio in this survey: the pooled relative spread of v_i / (R a_i)
    over every stratum with two or more measured series (those measured whole included), never below PRIOR_CV.
    The prior of a stratum where few series were measured (module docstring)."""
    ss, df = 0.0, 0
    for st in strata:
        values = values_of(st)
        uids = [u for u in st.measured if u in values and st.aux[u] > 0]
        if len(uids) < 2:
            continue
        v = np.array([values[u] for u in uids], dtype=float)
        a = np.array([st.aux[u] for u in uids], dtype=float)
        if v.sum() <= 0:
            continue
        rel = v / (a * v.sum() / a.sum()) - 1
        ss += float(np.sum((rel - rel.mean()) ** 2))
        df += len(uids) - 1
    return max(PRIOR_CV, math.sqrt(ss / df)) if df else PRIOR_CV


def bytes_now(st: Stratum, prior_cv: float = PRIOR_CV) -> Term:
    if st.bytes_known:
        n = len(st.measured)
        return Term(float(sum(st.stored.values())), 1.0, np.zeros(n), st.total, st.total)  # exact: no variance
    return project(st, stored_values(st), prior_cv)


def stored_values(st: Stratum) -> dict[str, float]:
    return {u: m["stored_bytes"] for u, m in st.measured.items()}


def codec_values(st: Stratum, label: str, key: str) -> dict[str, float]:
    """Per measured series: ``key`` of codec ``label``; a series the codec could not code stays as stored
    (bytes after = bytes now, no coding time)."""
    out = {}
    for u, m in st.measured.items():
        c = m["codecs"].get(label) or {}
        if c.get("status") == "ok":
            out[u] = c[key]
        else:
            out[u] = m["stored_bytes"] if key == "bytes" else 0.0
    return out


def _sum(terms_vars: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    """(total, variance, Satterthwaite df) of independent stratum totals (value, variance, df)."""
    total = sum(t for t, _, _ in terms_vars)
    var = sum(v for _, v, _ in terms_vars)
    den = sum(v * v / df for _, v, df in terms_vars if v > 0 and df > 0)
    return total, var, (var * var / den) if den > 0 else math.inf


def interval(total: float, var: float, df: float) -> tuple[float, float]:
    half = t_quantile(df) * math.sqrt(var) if var > 0 else 0.0
    return total - half, total + half


def combine(strata: list[Stratum], label: str, studies: dict[str, float], priors: tuple[float, float] = (PRIOR_CV,
            PRIOR_CV)) -> dict:
    """The figures of one (group of strata, codec) row. ``studies``: study UID -> its raw pixel bytes in these
    strata; the typical study is the median one, its decode time the projected decode total in proportion."""
    y_parts, x_parts, d_parts, enc, dec = [], [], [], [], []
    terms = [(st, project(st, codec_values(st, label, "bytes"), priors[0]), bytes_now(st, priors[1]))
             for st in strata]
    Y = sum(t.total for _, t, _ in terms if not math.isnan(t.total))
    X = sum(x.total for _, _, x in terms if not math.isnan(x.total))
    Q = Y / X if X else math.nan
    for st, ty, tx in terms:
        if math.isnan(ty.total):  # nothing measured in this stratum: projected as stored (said in survey.json)
            y_parts.append((tx.total, *tx.var()))
            continue
        y_parts.append((ty.total, *ty.var()))
        x_parts.append((tx.total, *tx.var()))
        d = ty.resid - Q * tx.resid if len(tx.resid) == len(ty.resid) and not st.bytes_known else ty.resid
        d_parts.append((0.0, *ty.var(d)))
        enc.append(project(st, codec_values(st, label, "encode_s")).total)
        dec.append(project(st, codec_values(st, label, "decode_s")).total)
    Y, vy, dfy = _sum(y_parts)
    X, vx, dfx = _sum(x_parts)
    _, vd, dfd = _sum(d_parts)
    lo, hi = interval(Y, vy, dfy)
    xlo, xhi = interval(X, vx, dfx)
    qlo, qhi = interval(Q, vd / X ** 2 if X else 0.0, dfd)
    study_total = sum(studies.values())
    decode_total = sum(x for x in dec if not math.isnan(x))
    typical = statistics.median(studies.values()) if studies else 0.0
    return {**{k: round(v) if math.isfinite(v) else None for k, v in (  # bytes are whole numbers (CSV keeps them)
        ("bytes_now", X), ("bytes_now_low", xlo), ("bytes_now_high", xhi), ("bytes_projected", Y), ("ci_low", lo),
        ("ci_high", hi))},
        "series_total": sum(st.total for st in strata), "series_sampled": sum(len(st.measured) for st in strata),
        "saving": 1 - Q if X else None, "saving_low": 1 - qhi if X else None,
        "saving_high": 1 - qlo if X else None, "ratio": X / Y if Y else None,
        "encode_core_hours": sum(x for x in enc if not math.isnan(x)) / 3600,
        "decode_s_per_study": decode_total * typical / study_total if study_total else None,
        "df": dfy if math.isfinite(dfy) else None,
    }
