"""Lossy rows (``--lossy SOURCE``): what re-encoding would save if each series were coded lossy, as far as a named
clinical guideline allows. Each sampled series also goes through a ladder of lossy settings (the matrix's cell, so
PSNR/SSIM/max error are measured as for any lossy row; the DICOM writer sizes the result); the guideline's rule for
the series' modality and region (medpipe/report/clinical_limits.yaml, or ``--limits FILE``) gives its maximum
compression ratio, and a setting counts for the series only when it is "within" that limit, exactly as the report
flags lossy rows. The series' lossy figure is the smallest output among the settings within the limit: the most a
PACS applying that guideline series by series could save. A series with no setting within the limit, or whose best
setting is not smaller than what is stored, stays as stored; so does a series whose modality the guideline does not
cover. The choice is one more "codec" of the measured records, projected by the same estimator and intervals, and
kept in rows of its own flagged ``lossy`` (never summed with the lossless rows)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import MedpipeError
from ..options import did_you_mean
from ..report.clinical import Limits, clinical_flags, load_limits, rule_for

# The default ladder, mild to strong: JPEG-LS near-lossless (.81; |error| <= 1, 2: within the limits file's
# near-lossless bound, the only lossy coding its mammography rules accept), then JPEG XL lossy (.112) from
# near-invisible to libjxl's "visually lossless" and beyond. CT limits are tight against CR on raw bytes (a head CT
# of 3 GE slices: JPEG-LS lossless already 4.2, NEAR=1 6.1, JPEG XL d0.1 9.5, d0.25 14), hence the mild end.
# Effort 7 (libjxl's default): for VarDCT, 9 costs several times the time. HTJ2K has no lossy setting here (the
# codec is reversible only); JPEG 2000's lossy knob is a target PSNR, not a rate, so it is left to --lossy-codecs.
DEFAULT_LADDER = (
    {"codec": "jpegls", "near": 1, "label": "JPEG-LS NEAR=1"},
    {"codec": "jpegls", "near": 2, "label": "JPEG-LS NEAR=2"},
    {"codec": "jpegxl", "distance": 0.1, "effort": 7, "label": "JPEG XL d0.1"},
    {"codec": "jpegxl", "distance": 0.25, "effort": 7, "label": "JPEG XL d0.25"},
    {"codec": "jpegxl", "distance": 0.5, "effort": 7, "label": "JPEG XL d0.5"},
    {"codec": "jpegxl", "distance": 1.0, "effort": 7, "label": "JPEG XL d1"},
    {"codec": "jpegxl", "distance": 2.0, "effort": 7, "label": "JPEG XL d2"},
)


@dataclass
class Guideline:
    """A named source of the clinical limits file (DRG, CAR, ...)."""

    source: str
    limits: Limits

    @property
    def label(self) -> str:
        """The lossy rows' codec column."""
        return f"lossy within {self.source}"

    def rule(self, modality: str, body_part: str) -> tuple[dict | None, str]:
        return rule_for(self.limits, modality, body_part)

    def limit_text(self, rule: dict) -> str:
        """'DRG ct_other 1:8' (or 'near-lossless only')."""
        value = (rule.get("max_cr") or {}).get(self.source)
        what = "near-lossless only" if rule.get("near_lossless_only") else f"1:{value:g}" if value else "no limit"
        return f"{self.source} {rule['id']} {what}"


def open_guideline(source: str, path: Path | str | None = None) -> Guideline:
    """The guideline ``source`` of the limits file (one line naming the file when it is not there)."""
    limits = load_limits(path)
    if source not in limits.sources:
        raise MedpipeError(f"--lossy {source}: no guideline of that name in {limits.path} (it has "
                           f"{', '.join(limits.sources)}){did_you_mean(source, limits.sources)}")
    return Guideline(source, limits)


def verdict(g: Guideline, record: dict, rule: dict, result: dict) -> str:
    """'within', 'beyond' or '' (no limit of this source) for one lossy setting of a series, by the report's own
    flags: CR = raw pixel bytes / codestream bytes over the whole series, max |error| over it."""
    if result.get("status") != "ok" or not result.get("codestream_bytes"):
        return "beyond"
    row = {"status": "ok", "cr": result["raw_bytes"] / result["codestream_bytes"], "lossless": False,
           "exact": False, "max_abs_err": result.get("max_abs_err"), "modality": record.get("modality") or "",
           "body_part": record.get("body_part") or "", "volume": record["series_uid"]}
    (flags,) = clinical_flags([row], g.limits, {"*": rule["id"]})
    return flags.get(f"flag_{g.source}", "")


def choose(g: Guideline, record: dict, labels: list[str]) -> dict:
    """The series' lossy entry: the smallest setting within the limit ("ok"), else a reason it stays as stored."""
    rule, note = g.rule(record.get("modality") or "", record.get("body_part") or "")
    if rule is None:
        return {"status": "no limit", "reason": note}
    out = {"rule": rule["id"], "guideline": g.limit_text(rule), "rule_note": note, "settings": {}}
    within = []
    for label in labels:
        result = (record.get("lossy") or {}).get(label) or {}
        v = verdict(g, record, rule, result)
        out["settings"][label] = {"verdict": v or "no limit", "status": result.get("status"),
                                  "cr": (result["raw_bytes"] / result["codestream_bytes"]
                                         if result.get("codestream_bytes") else None),
                                  "bytes": result.get("bytes"), "max_abs_err": result.get("max_abs_err"),
                                  "psnr_db": result.get("psnr_db")}
        if v == "" and not rule.get("near_lossless_only"):
            return {**out, "status": "no limit", "reason": f"{g.limit_text(rule)}: the guideline gives no value"}
        if v == "within" and result.get("bytes"):
            within.append((result["bytes"], label, result))
    if not within:
        return {**out, "status": "kept", "reason": "no lossy setting within the limit"}
    size, label, best = min(within, key=lambda t: t[0])
    if size >= record["stored_bytes"]:
        return {**out, "status": "kept", "reason": f"{label}, the smallest within the limit, is not smaller than "
                                                   "what is stored"}
    return {**out, **{k: best[k] for k in ("bytes", "codestream_bytes", "encode_s", "decode_s", "raw_bytes")},
            "status": "ok", "setting": label, "cr": best["raw_bytes"] / best["codestream_bytes"],
            "max_abs_err": best.get("max_abs_err"), "psnr_db": best.get("psnr_db"), "ssim": best.get("ssim")}


def with_lossy(g: Guideline, measured: dict[str, dict], labels: list[str]) -> tuple[dict[str, dict], dict]:
    """The measured records with the guideline's choice as one more codec (copies: the store's records stay as
    measured), and per series the choice (for survey.json)."""
    out, choices = {}, {}
    for uid, rec in measured.items():
        if rec.get("status") != "ok":
            out[uid] = rec
            continue
        choice = choose(g, rec, labels)
        choices[uid] = choice
        out[uid] = {**rec, "codecs": {**rec["codecs"], g.label: choice}}
    return out, choices


def held_to(g: Guideline, ladder: tuple, measured: dict[str, dict], console) -> tuple[dict[str, dict], dict]:
    """(records with the choice as a codec, survey.json's ``lossy`` section); what the guideline leaves as stored
    is said once."""
    estimated, choices = with_lossy(g, measured, [s.label for s in ladder])
    for line in notes(g, measured, choices):
        console.print(line, highlight=False, markup=False)
    return estimated, {"guideline": g.source, "name": g.limits.sources[g.source].get("name", g.source),
                       "limits_file": str(g.limits.path), "ladder": [s.describe() for s in ladder],
                       "choices": choices}


def guideline_of(g: Guideline, choices: dict[str, dict], uids: set) -> str:
    """The rules applied to these series, e.g. 'DRG ct_head 1:5; DRG ct_other 1:8' (what the row's flag says)."""
    texts = sorted({c["guideline"] for u, c in choices.items() if u in uids and c.get("guideline")})
    return "; ".join(texts) if texts else f"{g.source}: no limit (counted as stored)"


def notes(g: Guideline, measured: dict[str, dict], choices: dict[str, dict]) -> list[str]:
    """Lines said once: series the guideline does not cover, series no lossy setting could code within it."""
    out = []
    uncovered = [u for u, c in choices.items() if c["status"] == "no limit"]
    if uncovered:
        mods = sorted({measured[u].get("modality") or "?" for u in uncovered})
        out.append(f"lossy rows: {len(uncovered)} measured series of modality {', '.join(mods)} have no {g.source} "
                   f"limit in {g.limits.path.name}: counted as stored in the lossy rows")
    kept = [c for c in choices.values() if c["status"] == "kept"]
    if kept:
        out.append(f"lossy rows: {len(kept)} of {len(choices)} measured series have no lossy setting within the "
                   f"{g.source} limit smaller than stored: counted as stored in the lossy rows (a lossless row may "
                   "save more)")
    return out
