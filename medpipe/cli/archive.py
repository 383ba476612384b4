"""``run.py archive build|list|extract|verify``.

    run.py archive build INPUT... --out ARCHIVE [--candidates jpegxl-dicom,jpegxl-3slices] [--effort 9]
                                               [--codec x265:crf=22,preset=slow]   (one codec, e.g. lossy)
    run.py archive list ARCHIVE
    run.py archive extract ARCHIVE --out DIR [--patient ID] [--syntax native|jpegxl|jpegls|htj2k]
    run.py archive verify ARCHIVE [--key PUBLIC] [--require-signature]
    run.py archive keygen PRIVATE [--public PUBLIC]   (build --sign PRIVATE; verify/extract --key PUBLIC)
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..archive.candidates import CANDIDATE_NAMES
from ..archive.dicomfile import OUTPUT_SYNTAXES
from ..archive.settings import GROUP_KEYS, ORDERS, SETTING_HELP, parse_settings
from ..codecs import CodecContext
from ..depth import mapping_from_dict
from ..errors import MedpipeError
from .common import add_pacs_arguments, input_arg, pacs_options, parse_codec_arg


HELP = "build, list, verify or extract a sealed lossless archive"
DESCRIPTION = ("Sealed lossless archives of a collection of scans: each group coded by the smallest of several "
               "candidates, headers stored once plus differences, every file restored bit-exact as DICOM.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="survey, group and code DICOM series into a sealed archive folder")
    b.add_argument("inputs", nargs="+", help="DICOM series folders, multi-frame files, a PACS export folder "
                   "(walked recursively, series assembled as the benchmark does), or a PACS address "
                   "(http(s)://HOST:PORT/ROOT[/studies/UID], dicom://AET@HOST:PORT[/studies/UID])")
    b.add_argument("--out", type=Path, required=True, help="archive folder to create (must not exist)")
    b.add_argument("--codec", default="auto", help=SETTING_HELP["codec"] + "; e.g. ffv1, "
                   "'x265:crf=22,preset=slow' (lossy), 'x265:lossless=true,preset=fast'")
    b.add_argument("--candidates", help=f"auto: comma-separated candidates to try, of {','.join(CANDIDATE_NAMES)} "
                   "(default all)")
    b.add_argument("--effort", type=int, help=SETTING_HELP["effort"] + " (default 7)")
    b.add_argument("--max-group", type=int, help=SETTING_HELP["max_group"] + " (default 4)")
    b.add_argument("--order", choices=ORDERS, default=None, help="frame order (default sequential)")
    b.add_argument("--group-by", help=f"comma-separated metadata keys from {','.join(GROUP_KEYS)}")
    b.add_argument("--epsilon", type=float, help=SETTING_HELP["epsilon"] + " (default 0.4)")
    b.add_argument("--no-value-table", action="store_true", help="never use a value table")
    b.add_argument("--ffmpeg", help="ffmpeg binary")
    add_pacs_arguments(b)
    b.add_argument("--sign", type=Path, metavar="KEY", help="sign the index with this Ed25519 private key (PEM, "
                   "PKCS#8: 'archive keygen' or 'openssl genpkey -algorithm ed25519')")
    k = sub.add_parser("keygen", help="make an Ed25519 key pair (PEM) to sign archives with")
    k.add_argument("private", type=Path, help="private key file to create (keep it secret)")
    k.add_argument("--public", type=Path, help="public key file to create (default: PRIVATE with suffix .pub)")
    s = sub.add_parser("list", help="who is inside, codec, sizes, lossless or not")
    s.add_argument("archive", type=Path)
    x = sub.add_parser("extract", help="write scans back as DICOM series (verified before writing)")
    x.add_argument("archive", type=Path)
    x.add_argument("--out", type=Path, required=True, help="folder to write the series into")
    x.add_argument("--patient", help="only this scan: scan id (s01), series name, PatientID or patient hash")
    x.add_argument("--syntax", choices=list(OUTPUT_SYNTAXES), default="native", help="transfer syntax of the "
                   "restored files: native (uncompressed; an uncompressed original comes back byte-identical), "
                   "or lossless JPEG XL (.110, the archive's own codestreams when it holds them), JPEG-LS (.80), "
                   "HTJ2K (.201)")
    x.add_argument("--ffmpeg", help="ffmpeg binary")
    v = sub.add_parser("verify", help="decode everything and check every checksum")
    v.add_argument("archive", type=Path)
    v.add_argument("--ffmpeg", help="ffmpeg binary")
    for cmd in (x, v):
        cmd.add_argument("--key", type=Path, metavar="PUBLIC", help="check the archive's signature with this "
                         "Ed25519 public key (PEM); refused if it is unsigned or signed otherwise")
        cmd.add_argument("--require-signature", action="store_true", help="refuse an unsigned archive")


def settings_from_args(args) -> dict:
    data: dict = {"codec": parse_codec_arg(args.codec)}
    if args.order:
        data["order"] = args.order
    if args.group_by:
        data["group_by"] = [k.strip() for k in args.group_by.split(",") if k.strip()]
    if args.epsilon is not None:
        data["epsilon"] = args.epsilon
    if args.no_value_table:
        data["value_table"] = False
    if args.candidates:
        data["candidates"] = [c.strip() for c in args.candidates.split(",") if c.strip()]
    if args.effort is not None:
        data["effort"] = args.effort
    if args.max_group is not None:
        data["max_group"] = args.max_group
    return data


def cmd_build(args, console) -> int:
    from ..archive import build_archive
    from ..archive.candidates import make_codec
    from ..archive.presets import archive_sources

    settings = parse_settings(settings_from_args(args), "archive build")
    if settings.codec.get("codec") != "auto":
        make_codec(settings.codec)  # a typo in --codec is reported before the inputs are read
    if args.out.exists():
        raise MedpipeError(f"{args.out}: already exists; choose another --out or remove it first")
    inputs = [input_arg(i) for i in args.inputs]  # retrieved instances are cached beside the archive folder
    options = {"pacs": pacs_options(args, None, args.out.resolve().parent)}
    sources, errors = archive_sources(inputs, console, options)
    if not sources:
        raise MedpipeError("no DICOM series found: " + ("; ".join(errors) or "nothing found"))
    build_archive(sources, args.out, settings, CodecContext(args.ffmpeg), console, sign=args.sign)
    return 1 if errors else 0


def cmd_keygen(args, console) -> int:
    from ..archive.sign import keygen

    public = args.public or args.private.with_suffix(".pub")
    kid = keygen(args.private, public)
    console.print(f"key {kid}: private [bold]{args.private}[/] (keep it secret; archive build --sign), public "
                  f"[bold]{public}[/] (archive verify/extract --key)", highlight=False)
    return 0


def cmd_list(args, console) -> int:
    from rich.table import Table

    from ..archive import open_archive

    m = open_archive(args.archive)  # the seal and the index (verify checks every file)
    t = Table(title=f"{args.archive}  ({'lossless' if m['lossless'] else 'LOSSY'}, created {m['created']})",
              title_justify="left")
    for c in ("group", "candidate kept", "coding", "mapping", "scans", "raw MiB", "stored MiB", "CR", "lossless"):
        t.add_column(c, overflow="fold")
    for g in m["groups"]:
        mapping = mapping_from_dict(g["mapping"]).describe() if g["mapping"] else "stored values"
        t.add_row(g["id"], g["candidate"], g["label"], mapping, str(len(g["scans"])),
                  f"{g['raw_bytes'] / 2**20:.1f}", f"{g['compressed_bytes'] / 2**20:.2f}", f"{g['cr']:.2f}",
                  "[green]yes[/]" if g["lossless"] else "[yellow]no[/]")
    console.print(t)
    t = Table(title="scans", title_justify="left")
    for c in ("scan", "group", "patient", "study date", "series", "description", "slices", "rows x cols", "quality"):
        t.add_column(c, overflow="fold")
    for s in m["scans"]:
        q = s.get("quality") or {}
        qual = "bit-exact" if q.get("exact") else f"PSNR {q.get('psnr_db', 0):.2f} dB, SSIM {q.get('ssim', 0):.4f}"
        t.add_row(s["id"], s["group"], s["patient_id"] or s["patient_hash"], s["study_date"] or "-",
                  s["name"], s["series_description"] or "-", str(s["shape"][0]), f"{s['shape'][1]}x{s['shape'][2]}",
                  qual)
    console.print(t)
    for g in m["groups"]:
        sizes = ", ".join(f"{r['candidate']} {r['bytes']:,}" if r["bytes"] else f"{r['candidate']} {r['status']}"
                          for r in g["candidates"])
        console.print(f"[dim]{g['id']}: {g['why']}; candidates (bytes): {sizes}[/]", highlight=False)
    return 0


def cmd_extract(args, console) -> int:
    from ..archive import extract_archive

    paths = extract_archive(args.archive, args.out, CodecContext(args.ffmpeg), args.patient, console, args.syntax,
                            key=args.key, require_signature=args.require_signature)
    console.print(f"restored {len(paths)} series into [bold]{args.out}[/]")
    return 0


def cmd_verify(args, console) -> int:
    from ..archive import verify_archive

    r = verify_archive(args.archive, CodecContext(args.ffmpeg), console, key=args.key,
                       require_signature=args.require_signature)
    exact = "every slice bit-exact" if not r["jpeg_groups"] else "bit-exact; JPEG-sourced groups: every JPEG frame"
    console.print(f"[green]verified[/]: {r['groups']} group(s), {r['scans']} scan(s) "
                  f"({exact if r['lossless'] else 'lossy archive: streams intact'}) "
                  f"in {r['seconds']:.1f} s")
    return 0


def main(args: argparse.Namespace, console) -> int:
    return {"build": cmd_build, "list": cmd_list, "extract": cmd_extract, "verify": cmd_verify,
            "keygen": cmd_keygen}[args.cmd](
        args, console)
