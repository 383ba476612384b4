"""survey.html: three figures a reader takes in at a glance (saving per modality and codec with interval bars,
bytes now by stored transfer syntax, saving against re-encode time) and the table, figures embedded."""
from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np

from pydicom import uid as uids

from ..dicom.syntaxes import SYNTAXES
from ..files import atomic_write_text
from ..report.figures import Figures, codec_color, pyplot
from .table import COLUMNS, codec_cell, gb, pct, unit_for

SYNTAX_NAMES = {uids.ImplicitVRLittleEndian: "Implicit VR LE", uids.ExplicitVRLittleEndian: "Explicit VR LE",
                uids.ExplicitVRBigEndian: "Explicit VR BE", uids.JPEGBaseline8Bit: "JPEG Baseline",
                uids.JPEGExtended12Bit: "JPEG Extended", uids.JPEG2000: "JPEG 2000",
                uids.JPEGLSNearLossless: "JPEG-LS near-lossless"}


def syntax_name(uid: str) -> str:
    if uid in SYNTAXES:
        return SYNTAXES[uid].name
    return SYNTAX_NAMES.get(uid, uid)


def saving_figure(figs: Figures, rows: list[dict], codec_of: dict) -> dict:
    plt = pyplot()
    modalities = list(dict.fromkeys(r["modality"] for r in rows))
    labels = list(dict.fromkeys(r["codec"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(modalities) * len(labels) / 2), 4))
    width = 0.8 / max(1, len(labels))
    for j, label in enumerate(labels):
        for i, m in enumerate(modalities):
            r = next((r for r in rows if r["modality"] == m and r["codec"] == label), None)
            if r is None or r["saving"] is None:
                continue
            x = i + (j - (len(labels) - 1) / 2) * width
            s, lo, hi = 100 * r["saving"], 100 * r["saving_low"], 100 * r["saving_high"]
            ax.bar(x, s, width * 0.9, color=codec_color(codec_of.get(label, label)), label=label if i == 0 else None,
                   hatch="//" if r.get("lossy") else None, edgecolor="#333333" if r.get("lossy") else None)
            ax.errorbar(x, s, yerr=[[s - lo], [hi - s]], fmt="none", ecolor="#333333", capsize=3, lw=1)
    ax.set_xticks(range(len(modalities)))
    ax.set_xticklabels(modalities)
    ax.axhline(0, color="#333333", lw=0.8)
    ax.set_ylabel("saving against what is stored now (%)")
    ax.legend(frameon=False, fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return figs.save(fig, "saving", "bars", "Saving per modality and codec", 1,
                     "Bytes saved by re-encoding, per modality and for the whole archive (ALL); whiskers: 95 % "
                     "intervals (zero width where every series was measured). Hatched: lossy rows (--lossy), held to a "
                     "clinical limit, not lossless.")


def syntax_figure(figs: Figures, inventory: list[dict]) -> dict:
    plt = pyplot()
    modalities = sorted({r["modality"] for r in inventory})
    syntaxes = sorted({r["transfer_syntax"] for r in inventory})
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(modalities) + 3), 4))
    bottom = np.zeros(len(modalities))
    cmap = plt.get_cmap("tab10")
    for k, uid in enumerate(syntaxes):
        vals = np.array([sum((r["stored_bytes"] or r["raw_bytes"] or 0) for r in inventory
                             if r["modality"] == m and r["transfer_syntax"] == uid) / 1e9 for m in modalities])
        ax.bar(modalities, vals, bottom=bottom, color=cmap(k % 10), label=syntax_name(uid))
        bottom += vals
    ax.set_ylabel("GB stored now")
    ax.legend(frameon=False, fontsize=8, title="stored transfer syntax")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return figs.save(fig, "bytes_now", "bars", "Bytes now by stored transfer syntax", 1,
                     "What the archive holds now, per modality, by the transfer syntax it is stored in (raw pixel "
                     "bytes where the source reports no sizes).")


def tradeoff_figure(figs: Figures, rows: list[dict], codec_of: dict) -> dict:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in (r for r in rows if r["modality"] == "ALL" and r["saving"] is not None):
        s = 100 * r["saving"]
        ax.errorbar(r["encode_core_hours"], s, yerr=[[s - 100 * r["saving_low"]], [100 * r["saving_high"] - s]],
                    fmt="o", color=codec_color(codec_of.get(r["codec"], r["codec"])), capsize=3)
        ax.annotate(r["codec"], (r["encode_core_hours"], s), xytext=(5, 3), textcoords="offset points", fontsize=8)
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlabel("CPU core-hours to re-encode everything")
    ax.set_ylabel("saving, whole archive (%)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return figs.save(fig, "tradeoff", "scatter", "Saving against re-encode time", 1,
                     "Whole archive: saving (95 % interval) against the projected CPU time to re-encode it.")


def _img(folder: Path, item: dict) -> str:
    data = base64.b64encode((folder / item["file"]).read_bytes()).decode()
    return (f"<figure><img alt='{html.escape(item['title'])}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(item['caption'])}</figcaption></figure>")


def lossy_text(doc: dict) -> str:
    """What the lossy rows are (empty without --lossy)."""
    lossy = doc.get("lossy")
    if not lossy:
        return ""
    ladder = ", ".join(html.escape(c["label"]) for c in lossy["ladder"])
    return (f"<p><b>Lossy rows</b> (shaded, hatched bars): not lossless. Per series the smallest of {ladder} whose "
            f"compression ratio is within the limits of {html.escape(lossy['name'])} ({html.escape(lossy['guideline'])}"
            f", {html.escape(Path(lossy['limits_file']).name)}); kept apart from the lossless totals.</p>")


def write_page(folder: Path, doc: dict) -> Path:
    rows = doc["rows"]
    codec_of = {c["label"]: c["codec"] for c in doc["provenance"]["codecs"]}
    figs = Figures(folder / "figures", 110)
    items = [saving_figure(figs, rows, codec_of), syntax_figure(figs, doc["inventory"]["by_modality_syntax"]),
             tradeoff_figure(figs, rows, codec_of)]
    unit, f = unit_for(rows)
    names = COLUMNS[:4] + [f"{unit} now", f"{unit} after", "95 % interval", "saving", "saving 95 %",
                           "encode core-h", "decode s/study"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in names)
    body = []
    for r in rows:
        cells = [r["modality"], codec_cell(r), r["series_total"], r["series_sampled"], gb(r["bytes_now"], f),
                 gb(r["bytes_projected"], f), f"{gb(r['ci_low'], f)} - {gb(r['ci_high'], f)}", pct(r["saving"]),
                 f"{pct(r['saving_low'])} - {pct(r['saving_high'])}", f"{r['encode_core_hours']:.3f}",
                 "-" if r["decode_s_per_study"] is None else f"{r['decode_s_per_study']:.2f}"]
        body.append(("<tr class='lossy'>" if r.get("lossy") else "<tr>") + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    sources = ", ".join(html.escape(s["source"]) for s in doc["inventory"]["sources"])
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>medpipe survey</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}img{{max-width:100%}}
tr.lossy td{{background:#fbe9f3;font-style:italic}}</style></head><body>
<h1>What re-encoding would save</h1>
<p>Sources: {sources}. Seed {doc['seed']}; sample fraction {doc['fraction']}, per stratum {doc['per_stratum']}.</p>
{''.join(_img(figs.folder, i) for i in items)}
{lossy_text(doc)}
<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>
<h2>How the figures are computed</h2><p>{html.escape(doc['provenance']['method'])}</p>
</body></html>"""
    return atomic_write_text(folder / "survey.html", page)
