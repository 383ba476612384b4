"""The survey's columns, how its figures are computed (one text for survey.json and the page), number formats,
and the console table."""
from __future__ import annotations

import math

COLUMNS = ["modality", "codec", "series_total", "series_sampled", "bytes_now", "bytes_now_low", "bytes_now_high",
           "bytes_projected", "ci_low", "ci_high", "saving", "saving_low", "saving_high", "ratio",
           "encode_core_hours", "decode_s_per_study", "df", "lossy", "guideline"]

METHOD = ("Per stratum (modality x stored transfer syntax x depth class) a ratio estimator: total = auxiliary total "
          "x sum(measured)/sum(auxiliary), the auxiliary being stored bytes (or raw pixel bytes when the source does "
          "not report sizes). 95 % interval: the ratio estimator's linearised variance with the finite-population "
          "correction, strata summed, Student's t with Satterthwaite's degrees of freedom; zero width where every "
          "series is measured. bytes_now/bytes_projected: whole DICOM files (headers + encapsulated pixel data) "
          "as the DICOM writer makes them; lossless3d has no transfer syntax: codestream + the stored headers. "
          "encode_core_hours: the codec call's time on one thread, projected to every series. decode_s_per_study: "
          "projected decode time in proportion to the median study's raw pixel bytes. Rows flagged lossy (--lossy "
          "GUIDELINE): per measured series the smallest DICOM output among the lossy settings whose compression ratio "
          "(raw pixel bytes / codestream bytes) is within the guideline's limit for the series' modality and region "
          "(the series as stored when none is, when none is smaller, or when the guideline has no limit for it), "
          "projected by the same estimator; its encode and decode times are the chosen setting's. Lossy rows are "
          "never part of a lossless row's total.")


UNITS = (("TB", 1e12), ("GB", 1e9), ("MB", 1e6))


def unit_for(rows: list[dict]) -> tuple[str, float]:
    """The largest decimal unit in which the biggest figure is at least 1."""
    top = max((r["bytes_now"] or 0 for r in rows), default=0)
    return next(((n, f) for n, f in UNITS if top >= f), UNITS[-1])


def gb(v, factor: float = 1e9) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v / factor:,.3f}"


def pct(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f} %"


def codec_cell(r: dict) -> str:
    """The codec column: a lossy row says so, with the limit it was held to."""
    return f"{r['codec']} [LOSSY: {r['guideline']}]" if r.get("lossy") else r["codec"]


def render(rows: list[dict], console) -> None:
    from rich.table import Table

    unit, f = unit_for(rows)
    t = Table(title=f"What re-encoding would save ({unit} = {f:.0e} bytes; 95 % intervals; series: measured/all)")
    for head in ("modality", "codec", "series", f"{unit} now", f"{unit} after", "95 % interval", "saving",
                 "saving 95 %", "encode core-h", "decode s/study"):
        t.add_column(head, justify="left" if head in ("modality", "codec") else "right")
    for r in rows:
        t.add_row(r["modality"], codec_cell(r), f"{r['series_sampled']}/{r['series_total']}", gb(r["bytes_now"], f),
                  gb(r["bytes_projected"], f), f"{gb(r['ci_low'], f)}-{gb(r['ci_high'], f)}", pct(r["saving"]),
                  f"{pct(r['saving_low'])}-{pct(r['saving_high'])}", f"{r['encode_core_hours']:.3f}",
                  "-" if r["decode_s_per_study"] is None else f"{r['decode_s_per_study']:.2f}",
                  end_section=r is rows[-1] or rows[rows.index(r) + 1]["modality"] != r["modality"],
                  style="magenta" if r.get("lossy") else None)
    console.print(t)
