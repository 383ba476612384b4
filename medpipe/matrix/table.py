"""The terminal table of a run: one rich table per volume, reasons as numbered notes below it."""
from __future__ import annotations

import math


def _fmt(v, spec: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return format(v, spec)


def render_table(rows: list[dict], console=None) -> None:
    """One rich table per volume; reasons (skips, failures, precision notes) as numbered notes below it."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    status_style = {"ok": "[green]ok[/]", "skipped": "[yellow]skipped[/]", "failed": "[bold red]FAILED[/]"}
    for volume in dict.fromkeys(r["volume"] for r in rows):
        vrows = [r for r in rows if r["volume"] == volume]
        first = vrows[0]
        t = Table(title=table_title(volume, first), title_justify="left")
        t.add_column("codec / setting", no_wrap=True)
        for col in ("lossless", "bits", "CR", "bpv", "PSNR dB", "SSIM", "PSNR win", "max err", "enc ms", "dec ms",
                    "status"):
            t.add_column(col, justify="left" if col == "status" else "right", no_wrap=True)
        notes: list[str] = []
        for r in vrows:
            ok = r["status"] == "ok"
            status = status_style[r["status"]]
            if r["reason"]:
                notes.append(r["reason"])
                status += f" [dim]({len(notes)})[/]"
            lossless = ("[green]exact[/]" if r["exact"] else "[bold red]NOT EXACT[/]") if r["lossless"] else "no"
            t.add_row(
                r["label"], lossless if ok else "-",
                f"{r['codec_bits']}/{r['bits']}" if r["codec_bits"] else "-",
                _fmt(r["cr"], ".2f") if ok else "-", _fmt(r["bpv"], ".3f") if ok else "-",
                _fmt(r["psnr_db"], ".2f") if ok else "-", _fmt(r["ssim"], ".5f") if ok else "-",
                _fmt(r.get("psnr_window_db"), ".2f") if ok else "-", _fmt(r["max_abs_err"], "d") if ok else "-", _fmt(r["encode_ms"], ".0f") if ok else "-",
                _fmt(r["decode_ms"], ".0f") if ok else "-", status)
        console.print(t)
        for i, note in enumerate(notes, 1):
            console.print(f"  ({i}) {note}", highlight=False, soft_wrap=True)
    console.print("[dim]bits = depth coded / bits the non-padding stored values span (PSNR and SSIM peak "
                  "2^bits-1, padding left out). PSNR win = PSNR in a fixed window (CT: HU -1024..3071, peak 4095; "
                  "else the declared stored depth), comparable across volumes. lossless = configured lossless end "
                  "to end, 'exact' verified bit-exact by this run. CR = stored bytes / compressed bytes; bpv = bits "
                  "per voxel. ms = codec call only.[/]")


def table_title(volume: str, first: dict) -> str:
    """What a volume's rows share, said where users look: size, span, padding, a lossy source, a colour change."""
    text = (f"{volume}: {first['slices']} x {first['rows']} x {first['cols']}, signal spans {first['bits']} bits, "
            f"{first['raw_bytes'] / 2**20:.1f} MiB stored")
    if first.get("padding_voxels"):
        text += f", {first['padding_voxels']:,} padding voxels left out of PSNR/SSIM"
    if first.get("lossy_source"):
        text += f"\n[bold yellow]SOURCE ALREADY LOSSY[/] ({first['lossy_source']}): 'exact' means equal to it"
    if first.get("color"):
        text += f"\n[yellow]colour[/]: {first['color']}; CR, PSNR and 'exact' refer to the coded planes"
    return text
