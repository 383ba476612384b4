"""Clinical flags: each lossy row against the maximum compression ratios recommended for its modality and region
(thresholds in clinical_limits.yaml beside this module, sources cited there). One count, per society, shared by the
console line and the report pages."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MedpipeError
from ..options import did_you_mean
from .load import is_lossless

LIMITS_FILE = Path(__file__).with_name("clinical_limits.yaml")


@dataclass
class Limits:
    path: Path
    sources: dict[str, dict]
    rules: list[dict]
    near_lossless: int


def load_limits(path: Path | str | None = None) -> Limits:
    """The thresholds file (default: clinical_limits.yaml beside this module, so it works when installed)."""
    from ..yamlsafe import load_file

    path = Path(path) if path else LIMITS_FILE
    if not path.is_file():
        raise MedpipeError(f"{path}: clinical limits file not found (report.clinical_limits); copy "
                           f"{LIMITS_FILE} and edit it")
    doc = load_file(path)  # bounded: size, aliases, nesting
    if not isinstance(doc, dict) or not isinstance(doc.get("sources"), dict) or not isinstance(doc.get("rules"), list):
        raise MedpipeError(f"{path}: expected the keys 'sources' (mapping) and 'rules' (list), as in {LIMITS_FILE}")
    sources = doc["sources"]
    for i, rule in enumerate(doc["rules"]):
        where = f"{path}: rules[{i}]"
        if not isinstance(rule, dict) or not rule.get("id") or not isinstance(rule.get("modalities"), list):
            raise MedpipeError(f"{where}: each rule needs 'id' and 'modalities' (a list), e.g. "
                               "{id: ct_head, modalities: [CT], max_cr: {DRG: 5}}")
        for src, value in (rule.get("max_cr") or {}).items():
            if src not in sources:
                raise MedpipeError(f"{where}.max_cr: source '{src}' is not in 'sources'{did_you_mean(src, sources)}")
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise MedpipeError(f"{where}.max_cr.{src}: expected a positive number or null, got {value!r}")
    near = doc.get("near_lossless", 2)
    if isinstance(near, bool) or not isinstance(near, int) or near < 0:
        raise MedpipeError(f"{path}: near_lossless: expected a maximum absolute error >= 0, got {near!r}")
    return Limits(path, sources, doc["rules"], near)


def _strictest(limits: Limits, rules: list[dict]) -> dict:
    def key(rule):
        vals = [v for v in (rule.get("max_cr") or {}).values() if v]
        return (not rule.get("near_lossless_only"), min(vals) if vals else math.inf)
    return min(rules, key=key)


def rule_for(limits: Limits, modality: str, body_part: str, override: str | None = None):
    """(rule or None, note). Unknown region -> the strictest rule of the modality, said in the note."""
    if override:
        for rule in limits.rules:
            if rule["id"] == override:
                return rule, f"region set in the report options: {override}"
        ids = [r["id"] for r in limits.rules]
        raise MedpipeError(f"report.regions: unknown rule '{override}'{did_you_mean(override, ids)}")
    mod = (modality or "").upper()
    candidates = [r for r in limits.rules if mod in [str(m).upper() for m in r["modalities"]]]
    if not candidates:
        return None, f"no limit listed for modality '{modality or '?'}'"
    if not (body_part or "").strip() and any(r.get("body_parts") for r in candidates):
        rule = _strictest(limits, candidates)
        return rule, (f"BodyPartExamined missing: strictest {mod} limit applied ({rule['id']}); set "
                      "report.regions to choose")
    part = body_part.upper()
    for rule in candidates:
        parts = [str(p).upper() for p in rule.get("body_parts") or []]
        if not parts or any(p in part for p in parts):
            return rule, ""
    rule = _strictest(limits, candidates)
    return rule, f"region '{body_part}' not listed: strictest {mod} limit applied ({rule['id']})"


def clinical_flags(rows: list[dict], limits: Limits, regions: dict | None = None) -> list[dict]:
    """One dict per row: rule, limit per source, verdict per source and overall ('within', 'beyond', ...)."""
    regions = regions or {}
    out = []
    for r in rows:
        f: dict[str, Any] = {"clinical_rule": "", "clinical_flag": "", "clinical_note": ""}
        for src in limits.sources:
            f[f"max_cr_{src}"] = None
            f[f"flag_{src}"] = ""
        if r.get("status") != "ok" or r.get("cr") in (None, ""):
            out.append(f)
            continue
        if is_lossless(r):
            f["clinical_flag"] = "lossless"
            out.append(f)
            continue
        override = regions.get(r["volume"]) or regions.get("*")
        rule, note = rule_for(limits, r.get("modality") or "", r.get("body_part") or "", override)
        f["clinical_note"] = note
        if rule is None:
            f["clinical_flag"] = "no limit"
            out.append(f)
            continue
        f["clinical_rule"] = rule["id"]
        cr = float(r["cr"])
        near = r.get("max_abs_err") is not None and r["max_abs_err"] != "" and \
            int(r["max_abs_err"]) <= limits.near_lossless
        verdicts = []
        for src, limit in (rule.get("max_cr") or {}).items():
            f[f"max_cr_{src}"] = limit
            if rule.get("near_lossless_only"):
                v = "within" if near else "beyond"
            elif limit is None:
                continue
            else:
                v = "within" if cr <= float(limit) else "beyond"
            f[f"flag_{src}"] = v
            verdicts.append((src, v))
        if rule.get("near_lossless_only"):
            f["clinical_flag"] = "within (near-lossless)" if near else "beyond: near-lossless only"
        elif not verdicts:
            f["clinical_flag"] = "no limit"
        elif all(v == "within" for _, v in verdicts):
            f["clinical_flag"] = "within"
        elif all(v == "beyond" for _, v in verdicts):
            f["clinical_flag"] = "beyond"
        else:
            f["clinical_flag"] = "within " + ", ".join(s for s, v in verdicts if v == "within") + \
                                 "; beyond " + ", ".join(s for s, v in verdicts if v == "beyond")
        out.append(f)
    return out


@dataclass
class BeyondCounts:
    """Lossy rows beyond each society's limit: the one count the console line and the report pages both show."""

    lossy: int
    per_source: dict[str, int]
    names: dict[str, str]

    def summary(self) -> str:
        if not self.lossy:
            return "no lossy row to flag"
        parts = [f"{n} ({self.names.get(s, s)})" for s, n in self.per_source.items()]
        return f"of {self.lossy} lossy row(s), beyond a clinical limit: " + ", ".join(parts)


def beyond_counts(flags: list[dict], limits: Limits) -> BeyondCounts:
    lossy = [f for f in flags if f["clinical_flag"] not in ("", "lossless")]
    per = {s: sum(1 for f in lossy if f.get(f"flag_{s}") == "beyond") for s in limits.sources}
    return BeyondCounts(len(lossy), per, {s: d.get("short", d.get("name", s)) for s, d in limits.sources.items()})
