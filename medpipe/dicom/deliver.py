"""After the matrix: the extra per-volume series (``dicom_out.deflated``) and sending the written series to a DICOM
node (``--send AET@HOST:PORT`` or ``dicom_out.send``).

What is sent: every lossless series the run wrote -- the same-instance series of each lossless row, the offset
copies (``_offset/``), the Deflated Image Frame series (``_deflated/``) -- and the lossy (derived) series when
``dicom_out.send_lossy`` is true. Each file goes in its own transfer syntax, negotiated per (SOP class, syntax)
(:mod:`.send`); a refusal is one line naming the syntax and the peer's answer. The run's exit code stays about the
matrix: sending is reported (console and provenance), not a reason to call the benchmark failed.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from .send import Node, parse_node, send_files
from .writer import DICOM_OPTIONS, OFFSET, OFFSET_DIR


def show_written(rows: list[dict], extras: list[dict], console) -> None:
    """One table of the DICOM series written: their size as stored and CR beside the benchmark's own CR (which
    coded offset values for signed data: the difference is what keeping the instance costs or gains)."""
    from rich.table import Table

    from .send import syntax_name

    written = [r for r in rows if r.get("dicom_bytes")]
    if not written and not extras:
        return
    t = Table(title="DICOM output (dicom_cr = raw pixel bytes / pixel data bytes as written; cr = the benchmark's "
              "own)", title_justify="left")
    for col in ("volume", "codec / setting", "transfer syntax", "coding", "dicom bytes", "dicom_cr", "cr"):
        t.add_column(col, justify="right" if col in ("dicom bytes", "dicom_cr", "cr") else "left")
    for r in written:
        t.add_row(r["volume"], r["label"], syntax_name(r["dicom_ts"]), "lossless" if r.get("lossless") else "lossy", f"{r['dicom_bytes']:,}",
                  f"{r['dicom_cr']:.3f}", f"{r['cr']:.3f}")
    for e in extras:
        coding = "lossless, derived (offset copy)" if e["kind"] == OFFSET else "lossless"
        t.add_row(e["volume"], e["label"], syntax_name(e["transfer_syntax"]), coding,
                  f"{e['dicom_bytes']:,}", f"{e['dicom_cr']:.3f}", "-")
    console.print(t)


def send_node(cli_value: str | None, dicom_out: dict | None) -> Node | None:
    """The node to send to: ``--send`` wins over ``dicom_out.send``; None when neither is given. A malformed node
    is a PresetError naming where it came from (checked before the matrix runs)."""
    if cli_value:
        return parse_node(cli_value, "--send")
    if dicom_out and dicom_out.get("send"):
        return parse_node(dicom_out["send"], "dicom_out.send")
    return None


def with_send_defaults(dicom_out: dict | None, node: Node | None) -> dict | None:
    """``--send`` without ``dicom_out`` in the preset: DICOM output on, with its defaults."""
    if dicom_out or node is None:
        return dicom_out
    return {key: option.default for key, option in DICOM_OPTIONS.items()}


def series_to_send(rows: list[dict], extras: list[dict], lossy: bool) -> list[Path]:
    """The written series folders to send (module docstring), each once, in the table's order."""
    folders: list[Path] = []
    for row in rows:
        if row.get("status") != "ok" or not row.get("dicom_dir"):
            continue
        folder = Path(row["dicom_dir"])
        if row.get("lossless") or lossy:
            folders.append(folder)
        copy = folder.parent / OFFSET_DIR / folder.name
        if row.get("lossless") and copy.is_dir():
            folders.append(copy)
    folders += [Path(e["folder"]) for e in extras]
    return [f for f in dict.fromkeys(folders) if f.is_dir()]


def send_outputs(node: Node, rows: list[dict], extras: list[dict], dicom_out: dict, console) -> dict:
    """Send, print one line per outcome, return what provenance records."""
    import pydicom

    folders = series_to_send(rows, extras, dicom_out.get("send_lossy", False))
    files = [p for f in folders for p in sorted(f.iterdir()) if p.is_file() and not p.name.endswith(".part")]
    if not files:
        console.print(f"send to {node}: nothing to send (no series written)", highlight=False)
        return {"node": str(node), "files": 0, "stored": 0, "lines": []}
    console.print(f"sending {len(files)} file(s) of {len(folders)} series to {node} (C-STORE, each in its own "
                  "transfer syntax)", highlight=False)
    instances = Counter(str(pydicom.dcmread(p, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
                            .SOPInstanceUID) for p in files)
    repeated = sum(1 for count in instances.values() if count > 1)
    report = send_files(files, node)
    lines = report.lines()
    if repeated and report.stored:
        lines.append(f"note: {repeated} instance(s) went in more than one transfer syntax (lossless series keep the "
                     "source's SOP Instance UIDs); a PACS keeps one copy of an instance (Orthanc: the first, unless "
                     "OverwriteInstances)")
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)
    return {"node": str(node), "files": len(files), "stored": report.stored, "associations": report.associations,
            "lines": lines}
