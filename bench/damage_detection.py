"""How often the readers catch a damaged slice, per stored transfer syntax: the damage corpus.

    python bench/damage_detection.py [--series DEV_DATA/ct_head/cq500_ct5] [--n 40] [--seed 1]
                                     [--out bench/measured/damage_detection-2026-12-05]

A real CT slice (and its 4 neighbours, the series check's context) is written in each syntax the readers accept
(native, RLE, JPEG baseline 8-bit, JPEG lossless, JPEG-LS, JPEG 2000, HTJ2K, JPEG XL, Deflated Image Frame). Its
stored bytes are then damaged N times per kind, seeded: ``zero64`` (64 bytes zeroed at a random place), ``flip``
(8 random bits flipped), ``truncate`` (cut at a random point of the second half). Each damaged slice goes through
what the readers do to every file (medpipe.volumes.damage: the format's structure, the decoders, BitsStored, the
neighbour checks), and is counted as

- ``detected``: refused (unreadable, structure, decoder rejection, range or neighbours);
- ``harmless``: decodes to exactly the undamaged values (e.g. bytes after the end of the coded data);
- ``missed``: decodes to other values and nothing noticed.

The detection rate is detected / (detected + missed). Prints a table and writes ``results.csv`` and ``README.md``
to ``--out``.
"""
from __future__ import annotations

import argparse
import copy
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pydicom import uid as pu  # noqa: E402

from medpipe import syntaxes as ts  # noqa: E402
from medpipe.codecs.frames import encode_frame  # noqa: E402
from medpipe.errors import InputError  # noqa: E402
from medpipe.volumes.damage import decode_checked, header_range_problem, series_outliers  # noqa: E402
from medpipe.volumes.dicom import read_dicom  # noqa: E402

EXPLICIT_LE, JPEG_BASELINE = pu.ExplicitVRLittleEndian, pu.JPEGBaseline8Bit
SYNTAXES = {  # name -> transfer syntax UID (pydicom.uid, and the table for those pydicom lacks)
    "native": EXPLICIT_LE, "RLE": pu.RLELossless, "JPEG baseline (8-bit)": JPEG_BASELINE,
    "JPEG lossless SV1": pu.JPEGLosslessSV1, "JPEG-LS lossless": pu.JPEGLSLossless,
    "JPEG 2000 lossless": pu.JPEG2000Lossless, "HTJ2K lossless": pu.HTJ2KLossless,
    "JPEG XL lossless": ts.JPEGXLLossless, "Deflated Image Frame": ts.DeflatedImageFrameCompression,
}
KINDS = ("zero64", "flip", "truncate")
DEV_DATA = next((p for p in ([Path(os.environ["MEDPIPE_DEV_DATA"])] if os.environ.get("MEDPIPE_DEV_DATA") else [])
                 + [ROOT.parent / "shared" / "data", ROOT.parent.parent / "shared" / "data"] if p.is_dir()),
                ROOT.parent / "shared" / "data")
DEFAULT_SERIES = DEV_DATA / "ct_head" / "cq500_ct5"


def slices_of(series: Path, centre: int | None = None) -> tuple[list, list[np.ndarray]]:
    """Five consecutive files of a series (data sets, stored values), the damaged one in the middle."""
    files = sorted(series.glob("*.dcm"))
    at = len(files) // 2 if centre is None else centre
    datasets = [read_dicom(f) for f in files[at - 2:at + 3]]
    return datasets, [ds.pixel_array for ds in datasets]


def as_syntax(ds, values: np.ndarray, uid: str):
    """(data set holding ``values`` in syntax ``uid``, the values it decodes to when undamaged)."""
    from pydicom.encaps import encapsulate

    out = copy.deepcopy(ds)
    bits, signed = int(ds.BitsStored), bool(int(ds.PixelRepresentation))
    if uid == JPEG_BASELINE:  # 8-bit only: the slice windowed to 0..255, as a secondary capture would be
        import imagecodecs

        lo, hi = np.percentile(values, (1, 99))
        values = np.clip((values.astype(np.float64) - lo) * 255 / max(hi - lo, 1), 0, 255).astype(np.uint8)
        out.BitsAllocated, out.BitsStored, out.HighBit, out.PixelRepresentation = 8, 8, 7, 0
        stream = bytes(imagecodecs.jpeg8_encode(values, level=90))
        from medpipe.codecs.frames import strip_jpeg_wrappers

        stream = strip_jpeg_wrappers(stream)
    elif uid != EXPLICIT_LE:
        stream = encode_frame(uid, values, bits, signed)
    out.file_meta.TransferSyntaxUID = uid
    if uid == EXPLICIT_LE:
        out.PixelData = np.ascontiguousarray(values.astype(values.dtype.newbyteorder("<"))).tobytes()
        out["PixelData"].VR = "OW"
    else:
        out.PixelData = encapsulate([stream])
        out["PixelData"].VR = "OB"
    clean = decode_checked(out, Path("clean"), cross_check=False)
    assert not clean.problems, clean.problems
    return out, clean.array


def payload(ds, uid: str) -> bytes:
    if uid == EXPLICIT_LE:
        return bytes(ds.PixelData)
    from pydicom.encaps import generate_frames

    return next(generate_frames(ds.PixelData, number_of_frames=1))


def damaged(ds, uid: str, kind: str, rng: np.random.Generator):
    """A copy of ``ds`` with its one frame's bytes damaged by ``kind``."""
    from pydicom.encaps import encapsulate

    data = bytearray(payload(ds, uid))
    if kind == "zero64":
        at = int(rng.integers(0, len(data) - 64))
        data[at:at + 64] = bytes(64)
    elif kind == "flip":
        for bit in rng.choice(len(data) * 8, 8, replace=False):
            data[bit // 8] ^= 1 << (bit % 8)
    else:
        data = data[:int(rng.integers(len(data) // 2, len(data)))]
    out = copy.deepcopy(ds)  # (a shallow copy of a pydicom data set shares its elements)
    if uid == EXPLICIT_LE:
        out.PixelData = bytes(data)
    else:
        out.PixelData = encapsulate([bytes(data)])
    return out


def judge(ds, clean: np.ndarray, neighbours: list[np.ndarray]) -> tuple[str, str]:
    """('detected' | 'harmless' | 'missed', how) for one damaged slice, as the readers see it."""
    try:
        decoded = decode_checked(ds, Path("damaged"), cross_check=False)
    except InputError as exc:
        return "detected", "unreadable: " + str(exc).split(": ", 1)[-1][:60]
    if decoded.problems:
        return "detected", decoded.decoder + ": " + decoded.problems[0][:60]
    arr = decoded.array
    if arr.shape != clean.shape:
        return "detected", f"shape {arr.shape}"
    problem = header_range_problem(arr, int(ds.BitsStored), bool(int(ds.PixelRepresentation)))
    if problem:
        return "detected", "BitsStored range"
    if np.array_equal(arr, clean):
        return "harmless", ""
    if len(neighbours) == 4 and arr.dtype.kind in "iu":
        stack = np.stack([neighbours[0], neighbours[1], arr, neighbours[2], neighbours[3]])
        if 2 in series_outliers(stack, None):
            return "detected", "neighbours"
    return "missed", f"{int(np.count_nonzero(arr != clean))} values wrong"


def corpus(series: Path, n: int, seed: int, syntaxes=None, kinds=KINDS) -> list[dict]:
    """One row per (syntax, damage kind): counts of detected, harmless, missed, and how detections happened."""
    datasets, values = slices_of(series)
    rows = []
    for name, uid in (syntaxes or SYNTAXES).items():
        rng = np.random.default_rng(seed)
        made = [as_syntax(ds, v, uid) for ds, v in zip(datasets, values)]
        target, clean = made[2]
        neighbours = [m[1] for k, m in enumerate(made) if k != 2]
        for kind in kinds:
            counts = {"detected": 0, "harmless": 0, "missed": 0}
            how: dict[str, int] = {}
            for _ in range(n):
                verdict, why = judge(damaged(target, uid, kind, rng), clean, neighbours)
                counts[verdict] += 1
                if verdict == "detected":
                    key = why.split(":")[0]
                    how[key] = how.get(key, 0) + 1
            changed = counts["detected"] + counts["missed"]
            rows.append({"syntax": name, "uid": uid, "damage": kind, "n": n, **counts,
                         "rate": counts["detected"] / changed if changed else None,
                         "how": "; ".join(f"{k} {v}" for k, v in sorted(how.items(), key=lambda kv: -kv[1]))})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=Path, default=DEFAULT_SERIES)
    ap.add_argument("--n", type=int, default=40, help="damages per syntax and kind")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, help="folder for results.csv and README.md")
    args = ap.parse_args()
    if not args.series.is_dir():
        print(f"{args.series}: not found (set --series to a DICOM series folder)")
        return 2
    t0 = time.perf_counter()
    rows = corpus(args.series, args.n, args.seed)
    seconds = time.perf_counter() - t0
    lines = [f"| syntax | damage | n | detected | harmless | missed | detection rate | detected by |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rate = "-" if r["rate"] is None else f"{100 * r['rate']:.0f} %"
        lines.append(f"| {r['syntax']} | {r['damage']} | {r['n']} | {r['detected']} | {r['harmless']} | "
                     f"{r['missed']} | {rate} | {r['how']} |")
    table = "\n".join(lines)
    print(table)
    print(f"\n{len(rows) * args.n} damaged slices judged in {seconds:.0f} s (shared 2-core machine)")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        with open(args.out / "results.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        (args.out / "README.md").write_text(
            f"# Damage detection per transfer syntax\n\n`python bench/damage_detection.py --series {args.series} "
            f"--n {args.n} --seed {args.seed}`\n\nSlice {len(sorted(args.series.glob('*.dcm'))) // 2} of "
            f"{args.series.name} and its 4 neighbours, written in each syntax; the middle one damaged {args.n} "
            f"times per kind. Rate = detected / (detected + missed); harmless = decodes to the undamaged values."
            f"\n\n{table}\n\n{len(rows) * args.n} damaged slices in {seconds:.0f} s on a shared 2-core machine.\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
