"""The report's pages: report.html (self-contained, figures embedded), summary.md (links the PNGs) and
results_flagged.csv."""
from __future__ import annotations

import base64
import html
import math
from pathlib import Path

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


def _html_table(head: list[str], body: list[list[str]], flag_col: int | None = None) -> str:
    out = ["<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for row in body:
        cells = []
        for i, c in enumerate(row):
            cls = ""
            if i == flag_col:
                cls = FLAG_CSS.get(c, "mixed" if c.startswith("within ") else "")
            cells.append(f"<td class='{cls}'>{html.escape(str(c))}</td>" if cls else f"<td>{html.escape(str(c))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _md_table(head: list[str], body: list[list[str]]) -> str:
    esc = [[str(c).replace("|", "\\|") for c in row] for row in body]
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] +
                     ["| " + " | ".join(row) + " |" for row in esc])


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


def write_pages(out: Path, results: Results, opts: dict, figs: Figures, flags: list[dict], limits: Limits,
                table: list[dict], ref_key: str | None, notes: list[str]) -> tuple[Path, Path]:
    prov = results.provenance or {}
    preset = (prov.get("preset") or {})
    title = f"medpipe report: {results.folder.name}"
    summary = summary_rows(results.rows, flags)
    used_rules = sorted({f["clinical_rule"] for f in flags if f["clinical_rule"]})
    rules = {r["id"]: r for r in limits.rules}
    limit_body = [[rules[i]["id"], rules[i].get("name", ""),
                   *[("near-lossless only" if rules[i].get("near_lossless_only") else
                      (f"{v}:1" if (v := (rules[i].get("max_cr") or {}).get(s)) else "-"))
                     for s in limits.sources]] for i in used_rules]
    limit_head = ["rule", "modality / region", *[limits.sources[s].get("name", s) for s in limits.sources]]
    src_lines = [f"{s}: {d.get('name', s)}. {d.get('citation', '')}" for s, d in limits.sources.items()]
    run_line = (f"run started {prov.get('started', '?')}, preset {preset.get('path') or '?'}, "
                f"{len(results.volumes) or len({r['volume'] for r in results.rows})} volume(s), "
                f"{len(results.rows)} rows; source: {results.source}")
    vol_head = ["volume", "modality", "body part", "slices x rows x cols", "bits", "source"]
    vol_body = [[v["volume"], v.get("modality") or "-", v.get("body_part") or "-",
                 " x ".join(map(str, v.get("shape", []))), str(v.get("span_bits", "")), v.get("source", "")]
                for v in results.volumes]

    # ---- HTML (self-contained)
    css = ("body{font-family:system-ui,Segoe UI,Arial,sans-serif;margin:2em;max-width:1900px;color:#222}"
           "table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:13px}"
           "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f0f0f0}"
           "td:first-child,th:first-child{text-align:left}td.ok{background:#d9f0e3}td.bad{background:#f9d6c9}"
           "td.mixed{background:#fcefc7}img{max-width:100%;border:1px solid #ddd;margin:0.3em 0}"
           "figure{margin:1em 0}figcaption{font-size:13px;color:#444}.note{color:#8a4b00}")
    h = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
         f"<style>{css}</style></head><body>", f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(run_line)}</p>"]
    if vol_body:
        h += ["<h2>Volumes</h2>", _html_table(vol_head, vol_body)]
    h.append("<h2>Results and clinical flags</h2>")
    h.append("<p>Each lossy row is compared with the maximum compression ratio recommended for its modality and "
             "region (<a href='#limits'>limits below</a>): <b>within</b> / <b>beyond</b> per source. Lossless rows "
             "need no limit. A flag is a guide, not a clinical approval: the reading radiologist decides.</p>")
    h.append(f"<p><b>{html.escape(beyond_counts(flags, limits).summary())}</b> (the count the console shows)</p>")
    vinfo = {v["volume"]: v for v in results.volumes}
    for vol, body in summary.items():
        h += [f"<h3>{html.escape(vol)}</h3>"] + [f"<p class='note'>{html.escape(t)}</p>" for t in
                                                 source_notes(vinfo.get(vol, {}))]
        h.append(_html_table(SUMMARY_COLS, body, flag_col=len(SUMMARY_COLS) - 1))
        for f, r in zip(flags, results.rows):
            if r["volume"] == vol and f["clinical_note"]:
                h.append(f"<p class='note'>{html.escape(f['clinical_note'])}</p>")
                break
    h.append("<h2>Bjøntegaard delta</h2>")
    if table:
        h += [f"<p>Reference: <b>{html.escape(ref_key or '')}</b>. {html.escape(BD_NOTE)}</p>",
              _html_table(BD_HEAD, bd_body(table))]
    else:
        h.append("<p>No curves to compare: a BD table needs configurations that sweep a quality knob (CRF, NEAR, "
                 "J2K rate) with at least two lossy settings each (see presets/headct_rd.yaml).</p>")
    for kind, heading in (("rd", "Rate-distortion"), ("pareto", "Lossless: compression against speed"),
                          ("bars", "Per data set and modality"),
                          ("heatmap", "Where compression changed the image")):
        items = [i for i in figs.items if i["kind"] == kind]
        if not items:
            continue
        h.append(f"<h2>{heading}</h2>")
        for it in items:
            data = base64.b64encode((figs.folder / it["file"]).read_bytes()).decode()
            h.append(f"<figure><img alt='{html.escape(it['title'])}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{html.escape(it['caption'])}</figcaption></figure>")
    h += ["<h2 id='limits'>Clinical limits used</h2>", _html_table(limit_head, limit_body) if limit_body else
          "<p>No lossy row matched a rule.</p>",
          f"<p>Near-lossless: max |error| &le; {limits.near_lossless} stored values. Thresholds from "
          f"<code>{html.escape(str(limits.path))}</code> (editable).</p><ul>"]
    h += [f"<li>{html.escape(s)}</li>" for s in src_lines] + ["</ul>"]
    if notes:
        h += ["<h2>Notes</h2><ul>"] + [f"<li class='note'>{html.escape(n)}</li>" for n in notes] + ["</ul>"]
    h.append(f"<h2>Provenance</h2><p>{html.escape(str(prov.get('timing', '')))}</p>"
             f"<p>{html.escape(str(prov.get('metrics', '')))}</p>"
             f"<p>python {html.escape(str(prov.get('python', '?')))}, {html.escape(str(prov.get('platform', '?')))}"
             f"; libraries: {html.escape(', '.join(f'{k} {v}' for k, v in (prov.get('libraries') or {}).items()))}"
             "</p></body></html>")
    html_path = out / "report.html"
    atomic_write_text(html_path, "\n".join(h))

    # ---- Markdown (links the PNGs)
    m = [f"# {title}", "", run_line, ""]
    m += ["## Results and clinical flags", "", f"**{beyond_counts(flags, limits).summary()}**", ""]
    for vol, body in summary.items():
        m += [f"### {vol}", ""] + [f"*{t}*" for t in source_notes(vinfo.get(vol, {}))]
        m += ["", _md_table(SUMMARY_COLS, body), ""]
    m += ["## Bjøntegaard delta", ""]
    m += ([f"Reference: **{ref_key}**. {BD_NOTE}", "", _md_table(BD_HEAD, bd_body(table)), ""] if table
          else ["No swept curves (no BD table).", ""])
    m += ["## Figures", ""]
    for it in figs.items:
        m += [f"![{it['title']}](figures/{it['file']})", "", f"*{it['caption']}*", ""]
    m += ["## Clinical limits used", ""]
    m += ([_md_table(limit_head, limit_body), ""] if limit_body else [])
    m += [f"- {s}" for s in src_lines] + [f"- thresholds file: `{limits.path}`", ""]
    if notes:
        m += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    md_path = out / "summary.md"
    atomic_write_text(md_path, "\n".join(m))
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
