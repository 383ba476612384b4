"""The report's pages: report.html (self-contained, figures embedded), summary.md (links the PNGs) and
results_flagged.csv. The pages are Jinja2 templates in templates/ (package data); this module gathers the values
they show. report.html is autoescaped: labels and volume names come from user presets and files."""
from __future__ import annotations

import base64
import functools
import math
from pathlib import Path

import jinja2

from ..files import atomic_write_text
from ..results import COLUMNS, write_csv
from .bd import MIN_OVERLAP
from .clinical import Limits, beyond_counts
from .figures import Figures
from .load import Results


def _f(v, spec=".2f", dash="-"):
    if v is None or v == "":
        return dash
    if isinstance(v, float) and math.isinf(v):
        return "∞"
    try:
        return format(float(v), spec)
    except (TypeError, ValueError):
        return str(v)


SUMMARY_COLS = ["configuration", "CR", "bpv", "PSNR dB", "SSIM", "max err", "enc s", "dec s", "clinical"]


def summary_rows(rows: list[dict], flags: list[dict]) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    for r, f in zip(rows, flags):
        ok = r.get("status") == "ok"
        out.setdefault(r["volume"], []).append([
            r["label"], _f(r["cr"]) if ok else "-", _f(r["bpv"], ".3f") if ok else "-",
            _f(r["psnr_db"]) if ok else "-", _f(r["ssim"], ".5f") if ok else "-",
            _f(r["max_abs_err"], ".0f") if ok else "-",
            _f((r["encode_ms"] or 0) / 1000, ".2f") if ok else "-", _f((r["decode_ms"] or 0) / 1000, ".2f")
            if ok else "-", f["clinical_flag"] if ok else f"{r.get('status')}: {r.get('reason') or ''}"])
    return out


FLAG_CSS = {"within": "ok", "lossless": "ok", "within (near-lossless)": "ok", "beyond": "bad",
            "beyond: near-lossless only": "bad"}


def flag_class(flag: str) -> str:
    """CSS class of a clinical-flag cell: ok, bad, mixed (within one source's limit, beyond another's) or none."""
    return FLAG_CSS.get(flag, "mixed" if flag.startswith("within ") else "")


def bd_body(table: list[dict]) -> list[list[str]]:
    return [[t["volume"], t["curve"] + (" (reference)" if t["curve"] == t["reference"] else ""), str(t["points"]),
             _f(t["bd_rate_psnr"], "+.1f") + (" %" if t["bd_rate_psnr"] is not None else " (no overlap)"),
             _f(t["bd_psnr_db"], "+.2f", "- (no rate overlap)"), _f(t["bd_rate_ssim"], "+.1f") + (" %" if t["bd_rate_ssim"] is not None
                                                                           else ""),
             f"{t['psnr_overlap'][0]:.1f}-{t['psnr_overlap'][1]:.1f}" if t["psnr_overlap"] else "-"]
            for t in table]


BD_HEAD = ["volume", "curve", "points", "BD-rate (PSNR)", "BD-PSNR dB", "BD-rate (SSIM)", "PSNR overlap dB"]
BD_NOTE = ("Bjøntegaard delta: average difference in rate (bits per voxel) at equal quality against the "
           "reference curve, over the quality range both cover (log rate interpolated piecewise-cubically, "
           "PCHIP, as in the revised VCEG/JVET method). Negative BD-rate = fewer bits for the same quality. "
           f"Lossless points are not part of the curves. '-': the curves share less than {MIN_OVERLAP:.0%} of "
           "the shorter one's range.")
FIGURE_SECTIONS = (("rd", "Rate-distortion"), ("pareto", "Lossless: compression against speed"),
                   ("bars", "Per data set and modality"), ("heatmap", "Where compression changed the image"))


@functools.lru_cache(maxsize=1)
def templates() -> jinja2.Environment:
    """The page templates (package data in medpipe/report/templates/); .html ones autoescaped, and a name or
    value the templates do not know is an error, not an empty string."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("medpipe.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.globals["flag_class"] = flag_class
    return env


def page_context(results: Results, figs: Figures, flags: list[dict], limits: Limits, table: list[dict],
                 ref_key: str | None, notes: list[str]) -> dict:
    """Everything both pages show, as plain values: the templates format nothing but what they are given."""
    prov = results.provenance or {}
    preset = (prov.get("preset") or {})
    used_rules = sorted({f["clinical_rule"] for f in flags if f["clinical_rule"]})
    rules = {r["id"]: r for r in limits.rules}
    vinfo = {v["volume"]: v for v in results.volumes}
    summary = [{"name": vol, "rows": body, "source_notes": source_notes(vinfo.get(vol, {})),
                "clinical_note": next((f["clinical_note"] for f, r in zip(flags, results.rows)
                                       if r["volume"] == vol and f["clinical_note"]), "")}
               for vol, body in summary_rows(results.rows, flags).items()]
    return {
        "title": f"medpipe report: {results.folder.name}",
        "run_line": (f"run started {prov.get('started', '?')}, preset {preset.get('path') or '?'}, "
                     f"{len(results.volumes) or len({r['volume'] for r in results.rows})} volume(s), "
                     f"{len(results.rows)} rows; source: {results.source}"),
        "volume_head": ["volume", "modality", "body part", "slices x rows x cols", "bits", "source"],
        "volumes": [[v["volume"], v.get("modality") or "-", v.get("body_part") or "-",
                     " x ".join(map(str, v.get("shape", []))), str(v.get("span_bits", "")), v.get("source", "")]
                    for v in results.volumes],
        "beyond": beyond_counts(flags, limits).summary(),
        "summary_head": SUMMARY_COLS, "summary": summary,
        "reference": ref_key or "", "bd_note": BD_NOTE, "bd_head": BD_HEAD, "bd_rows": bd_body(table),
        "figures": figs.items,
        "limit_head": ["rule", "modality / region", *[limits.sources[s].get("name", s) for s in limits.sources]],
        "limit_rows": [[rules[i]["id"], rules[i].get("name", ""),
                        *[("near-lossless only" if rules[i].get("near_lossless_only") else
                           (f"{v}:1" if (v := (rules[i].get("max_cr") or {}).get(s)) else "-"))
                          for s in limits.sources]] for i in used_rules],
        "limit_sources": [f"{s}: {d.get('name', s)}. {d.get('citation', '')}" for s, d in limits.sources.items()],
        "near_lossless": limits.near_lossless, "limits_path": str(limits.path), "notes": notes,
        "provenance": {"timing": str(prov.get("timing", "")), "metrics": str(prov.get("metrics", "")),
                       "python": str(prov.get("python", "?")), "platform": str(prov.get("platform", "?")),
                       "libraries": ", ".join(f"{k} {v}" for k, v in (prov.get("libraries") or {}).items())},
    }


def write_pages(out: Path, results: Results, opts: dict, figs: Figures, flags: list[dict], limits: Limits,
                table: list[dict], ref_key: str | None, notes: list[str]) -> tuple[Path, Path]:
    """report.html (figures embedded, so the one file can be mailed) and summary.md (linking the PNGs)."""
    context = page_context(results, figs, flags, limits, table, ref_key, notes)
    sections = [{"heading": heading,
                 "figures": [{**it, "png_base64": base64.b64encode((figs.folder / it["file"]).read_bytes()).decode()}
                             for it in figs.items if it["kind"] == kind]}
                for kind, heading in FIGURE_SECTIONS]
    html_path, md_path = out / "report.html", out / "summary.md"
    atomic_write_text(html_path, templates().get_template("report.html").render(
        context, figure_sections=[s for s in sections if s["figures"]]))
    atomic_write_text(md_path, templates().get_template("summary.md").render(context))
    return html_path, md_path


def source_notes(vinfo: dict) -> list[str]:
    """What a report must say about a volume's source: already lossy, colour converted, padding left out."""
    out = []
    if vinfo.get("lossy_source"):
        out.append(f"SOURCE ALREADY LOSSY ({vinfo['lossy_source']}): 'exact' and CR are relative to it")
    if vinfo.get("color"):
        out.append(f"colour: {vinfo['color']}")
    if vinfo.get("padding_count"):
        out.append(f"{vinfo['padding_count']:,} padding voxels (stored {vinfo.get('padding')}) left out of the "
                   "PSNR/SSIM span figures")
    return out


def write_flagged_csv(path: Path, results: Results, flags: list[dict]) -> None:
    extra = list(flags[0]) if flags else []
    write_csv(path, [{**r, **f} for r, f in zip(results.rows, flags)], COLUMNS + extra)
