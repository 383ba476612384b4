#!/usr/bin/env python3
"""Codec defaults by measurement (issue 10): each lossless family's candidate settings on the dev CT series, and
whether shifting narrower data up to a lossy video codec's depth (``fill_depth``) makes one crf one quantiser.

    python bench/codec_defaults.py [--data ../shared/data]          # everything (about 1 h on 2 shared cores)
    python bench/codec_defaults.py --parts lossless --families ffv1 htj2k --slices 8  # a quick look
    python bench/codec_defaults.py --out bench/measured/codec_defaults-DATE   # also keep the table and a CSV

Lossless part: per setting, CR over all volumes (sum of stored bytes / sum of compressed bytes), CR per volume,
and encode / decode speed in MB/s of stored bytes on one core (the codec call alone, timed by medpipe.roundtrip;
settings that finish in under 2 s are timed best of 3). Per-slice codecs run on ``--slices`` slices per volume,
evenly spaced (each slice is coded on its own, so a spread subset keeps the mix of anatomy); FFV1 runs on whole
volumes, because with a keyframe interval above 1 each frame's coding continues from the frames before it.
Every result is checked bit-exact. Part ``whole`` runs each family's chosen default on the whole volumes, so the
families can be ranked on the same data; part ``ffmpeg`` checks FFV1 through medpipe against plain ffmpeg.

Depth-fill part: lossy video rows through the real matrix cell (medpipe.matrix.measure_cell) with ``fill_depth`` off
and on: a 10-bit and a 12-bit copy of the same CT values (v and v << 2), a real 10-bit X-ray, 8-bit ultrasound and
pathology. Timings taken while other work shares the machine are noisy; CR and PSNR are exact.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medpipe.codecs import CodecContext, parse_codec  # noqa: E402
from medpipe.depth import plan_depth  # noqa: E402
from medpipe.files import atomic_write_text  # noqa: E402
from medpipe.matrix import CellSettings, measure_cell  # noqa: E402
from medpipe.results import library_versions, write_csv  # noqa: E402
from medpipe.roundtrip import round_trip  # noqa: E402
from medpipe.volumes import Volume, load_volume  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
DEV_CT = ["ct_head/cq500_ct0", "ct_head/cq500_ct5", "ct_head/philips_phantom_stereotaxis_a",
          "ct_head/ge_dcmqa_human", "ct_chest/acrin_flt_breast_001/series_2_805941"]

PARTS = ("lossless", "whole", "ffmpeg", "depth")
WHOLE = {"ffv1"}  # families measured on whole volumes (inter-frame state)
_G1 = {"g": 1}
CANDIDATES: dict[str, list[dict]] = {
    "ffv1": [
        {"level": 3, "slices": 4, "g": 1, "coder": 1, "context": 1, "label": "old medpipe: -g 1 -slices 4 -context 1"},
        {"level": 3, "slices": 4, "g": 12, "coder": 2, "context": 0,
         "label": "ffmpeg's defaults (= -level 3 -slices 4 -g 12 -context 0)"},
        {"level": 3, "slices": 4, **_G1, "context": 0, "label": "intra -g 1, slices 4, context 0"},
        {"level": 3, "slices": 16, **_G1, "context": 0, "label": "intra -g 1, slices 16, context 0"},
        {"level": 1, **_G1, "context": 0, "label": "level 1 (one slice), -g 1, context 0"},
        {"level": 1, "context": 1, "label": "level 1 (one slice), g whole, context 1"},
        {"level": 3, "slices": 4, "context": 0, "label": "g whole, slices 4, context 0"},
        {"level": 3, "slices": 16, "context": 0, "label": "g whole, slices 16, context 0"},
        {"level": 3, "slices": 16, "g": 30, "context": 1, "label": "-g 30, slices 16, context 1"},
        *[{"level": 3, "slices": s, "context": 1, "label": f"g whole, slices {s}, context 1"}
          for s in (4, 6, 9, 12, 16, 24, 30)],
        {"level": 3, "slices": 16, "context": 1, "coder": 0, "label": "g whole, slices 16, context 1, coder 0"},
    ],
    "jpegxl": [{"effort": e, "label": f"effort {e}"} for e in range(1, 11)],
    "png": [*[{"level": lv, "strategy": "filtered", "label": f"level {lv}, Z_FILTERED"} for lv in (1, 3, 6, 7, 8, 9)],
            *[{"level": lv, "strategy": "default", "label": f"level {lv}, Z_DEFAULT_STRATEGY"} for lv in (1, 6, 9)],
            {"level": 9, "strategy": "rle", "label": "level 9, Z_RLE"},
            {"level": 9, "strategy": "huffman", "label": "level 9, Z_HUFFMAN_ONLY"}],
    "jpeg2000": [{"resolutions": r, "label": f"{r} resolutions"} for r in (3, 4, 5, 6, 7, 8)],
    "htj2k": [{"resolutions": r, "label": f"{r} resolutions"} for r in (3, 4, 5, 6, 7, 8)],
    "jpegls": [{"label": "CharLS defaults (no options exposed)"}],
    "ljpeg": [{"label": "SV1 (DICOM .70; the predictor is what this codec is)"}],
}
# Effort 10 is measured on this many slices per volume only (about 0.2 MB/s); effort 9 beside it on the same ones.
SLOW_SUBSET = {("jpegxl", 10): 4}


def spread(n_total: int, n: int) -> np.ndarray:
    return np.unique(np.linspace(0, n_total - 1, min(n, n_total)).round().astype(int))


def measure(entry: dict, volumes: dict[str, np.ndarray], ctx) -> dict:
    """One candidate on every volume: sizes, times, exactness (raises if not bit-exact)."""
    codec = parse_codec(dict(entry), "bench").codec
    out = {"raw": 0, "size": 0, "enc_ms": 0.0, "dec_ms": 0.0, "per_volume": {}}
    for name, pixels in volumes.items():
        mapping = plan_depth((int(pixels.min()), int(pixels.max())), pixels.dtype, codec.depth())
        rt = round_trip(pixels, codec, mapping, ctx)
        if rt.encode_ms + rt.decode_ms < 2000:  # fast: best of 3 against the noise of a shared machine
            again = round_trip(pixels, codec, mapping, ctx, repeat=2)
            rt.encode_ms, rt.decode_ms = min(rt.encode_ms, again.encode_ms), min(rt.decode_ms, again.decode_ms)
        if rt.codec_mismatches or not np.array_equal(rt.restored, pixels):
            raise SystemExit(f"{entry}: NOT bit-exact on {name}")
        raw = pixels.size * pixels.dtype.itemsize
        out["raw"] += raw
        out["size"] += rt.size
        out["enc_ms"] += rt.encode_ms
        out["dec_ms"] += rt.decode_ms
        out["per_volume"][name] = {"raw": raw, "size": rt.size, "cr": raw / rt.size, "enc_ms": rt.encode_ms,
                                   "dec_ms": rt.decode_ms}
    out["cr"] = out["raw"] / out["size"]
    out["enc_mbs"] = out["raw"] / out["enc_ms"] / 1e3
    out["dec_mbs"] = out["raw"] / out["dec_ms"] / 1e3
    out["is_default"] = parse_codec(dict(entry), "bench").codec.p == parse_codec(
        {"codec": entry["codec"]}, "bench").codec.p
    return out


def per_volume(m: dict) -> str:
    return " ".join(f"{p['cr']:.4f}" for p in m["per_volume"].values())


def lossless_part(vols: dict[str, Volume], families: list[str], n_slices: int, ctx, say, records: list) -> None:
    whole = {k: v.pixels for k, v in vols.items()}
    subset = {k: v.pixels[spread(v.shape[0], n_slices)] for k, v in vols.items()}
    names = list(vols)
    for fam in families:
        on_whole = fam in WHOLE
        data = whole if on_whole else subset
        n = sum(a.shape[0] for a in data.values())
        say(f"\n## {fam}  ({'whole volumes' if on_whole else f'{n_slices} slices per volume, evenly spaced'}: "
            f"{n} slices, {sum(a.nbytes for a in data.values()) / 1e6:.0f} MB)")
        say(f"{'setting':60s} {'CR':>7s} {'enc MB/s':>9s} {'dec MB/s':>9s}  CR per volume ({', '.join(names)})")
        for cand in CANDIDATES[fam]:
            entry = {"codec": fam, **{k: v for k, v in cand.items() if k != "label"}}
            effort = entry.get("effort")
            few = SLOW_SUBSET.get((fam, effort))
            use = {k: a[spread(a.shape[0], few)] for k, a in data.items()} if few else data
            m = measure(entry, use, ctx)
            if few:  # the next-lower effort on the same few slices, for a fair comparison
                ref = measure({**entry, "effort": effort - 1}, use, ctx)
                say(f"{'  (effort ' + str(effort - 1) + ' on the same ' + str(few) + ' slices/volume)':60s} "
                    f"{ref['cr']:7.4f} {ref['enc_mbs']:9.2f} {ref['dec_mbs']:9.2f}")
            mark = "  <- default" if m["is_default"] else ""
            label = cand["label"] + (f" [{few} slices/volume]" if few else "")
            say(f"{label:60s} {m['cr']:7.4f} {m['enc_mbs']:9.2f} {m['dec_mbs']:9.2f}  "
                f"{per_volume(m)}{mark}")
            records.append({"part": "lossless", "family": fam, "setting": label, "params": json.dumps(entry),
                            "data": "whole" if on_whole else f"{few or n_slices} slices/volume",
                            "raw_bytes": m["raw"], "compressed_bytes": m["size"], "cr": round(m["cr"], 5),
                            "encode_mb_s": round(m["enc_mbs"], 2), "decode_mb_s": round(m["dec_mbs"], 2),
                            "is_default": m["is_default"],
                            "cr_per_volume": json.dumps({k: round(p["cr"], 5) for k, p in m["per_volume"].items()})})


def whole_part(vols: dict[str, Volume], families: list[str], ctx, say, records: list) -> None:
    """Each family's default on the whole volumes: the ranking on the same data."""
    data = {k: v.pixels for k, v in vols.items()}
    say(f"\n## chosen defaults on the whole volumes ({sum(a.shape[0] for a in data.values())} slices)")
    say(f"{'codec (defaults)':60s} {'CR':>7s} {'enc MB/s':>9s} {'dec MB/s':>9s}  CR per volume")
    for fam in families:
        m = measure({"codec": fam}, data, ctx)
        say(f"{fam:60s} {m['cr']:7.4f} {m['enc_mbs']:9.2f} {m['dec_mbs']:9.2f}  "
            f"{per_volume(m)}")
        records.append({"part": "whole", "family": fam, "setting": "defaults", "params": json.dumps({"codec": fam}),
                        "data": "whole", "raw_bytes": m["raw"], "compressed_bytes": m["size"], "cr": round(m["cr"], 5),
                        "encode_mb_s": round(m["enc_mbs"], 2), "decode_mb_s": round(m["dec_mbs"], 2),
                        "is_default": True,
                        "cr_per_volume": json.dumps({k: round(p["cr"], 5) for k, p in m["per_volume"].items()})})


def ffmpeg_part(vols: dict[str, Volume], ctx, say, records: list) -> None:
    """FFV1 through medpipe (defaults) against plain ffmpeg given the same options on the same gray16le frames
    (the same binary, through medpipe.ffmpeg): the stream bytes must be the same."""
    from medpipe.files import temp_dir
    from medpipe.codecs.video import iter_frames

    codec = parse_codec({"codec": "ffv1"}, "bench").codec
    say("\n## FFV1 defaults through medpipe vs plain ffmpeg (same options, same frames)")
    for name, vol in vols.items():
        mapping = plan_depth(vol.value_range, vol.pixels.dtype, codec.depth())
        frames = mapping.forward(vol.pixels)
        ours = codec.encode(frames, ctx).nbytes
        n, h, w = frames.shape
        args = codec.encoder_args(0, n)
        with temp_dir() as tmp:
            out = Path(tmp) / "plain.mkv"
            ctx.ffmpeg.run(["-f", "rawvideo", "-pix_fmt", "gray16le", "-s", f"{w}x{h}", "-i", "pipe:0", *args,
                            str(out)], stdin=iter_frames(frames, "gray", 16))
            plain = out.stat().st_size
        say(f"{name:32s} medpipe {ours:>10d} B  plain ffmpeg {plain:>10d} B  CR {frames.nbytes / ours:.4f} vs "
            f"{frames.nbytes / plain:.4f}  (ffmpeg {' '.join(args)})")
        records.append({"part": "ffmpeg_equality", "family": "ffv1", "setting": " ".join(args), "data": name,
                        "raw_bytes": frames.nbytes, "compressed_bytes": ours, "plain_ffmpeg_bytes": plain})


def as_volume(name: str, pixels: np.ndarray, bits: int, modality: str) -> Volume:
    return Volume(name=name, pixels=np.ascontiguousarray(pixels), bits_stored=bits, signed=False,
                  bits_allocated=pixels.dtype.itemsize * 8, source=Path(name), modality=modality)


def depth_cases(vols: dict[str, Volume], data_dir: Path) -> list[tuple[str, Volume, dict]]:
    """(case, volume, codec entry) for the depth-fill part: exact copies at 10 and 12 bits, then real narrow data."""
    x265 = {"codec": "x265", "bits": 12, "chroma": "gray", "preset": "medium"}
    x264 = {"codec": "x264", "bits": 10, "chroma": "gray", "preset": "medium"}
    ct = vols["cq500_ct5"].pixels  # unsigned 12-bit CT; 16 contiguous slices from the middle
    mid = ct.shape[0] // 2
    ten = (ct[mid - 8:mid + 8].astype(np.int32) >> 2).astype(np.uint16)
    cases = [("CT values v (10-bit)", as_volume("ct_10bit", ten, 10, "CT"), {**x265, "crf": 22}),
             ("same values v<<2 (12-bit)", as_volume("ct_12bit", ten << 2, 12, "CT"), {**x265, "crf": 22}),
             ("CT values v>>2 (8-bit)", as_volume("ct_8bit", (ten >> 2).astype(np.uint8), 8, "CT"),
              {**x264, "crf": 22}),
             ("same values <<2 (10-bit)", as_volume("ct_10bit_b", (ten >> 2) << 2, 10, "CT"), {**x264, "crf": 22})]
    for rel, entry in (("xray/RG3_tibia_cr.dcm", {**x265, "crf": 20}),
                       ("us/philips_greyscale_cine.dcm", {**x265, "crf": 22}),
                       ("us/philips_greyscale_cine.dcm", {**x264, "crf": 22}),
                       ("pathology/skimage_ihc.png", {**x264, "crf": 22}),
                       ("pathology/skimage_ihc.png", {**x265, "crf": 22})):
        path = data_dir / rel
        if path.exists():
            v = load_volume(path)  # a PNG picture: colour to grey, as the benchmark runs it
            cases.append((f"{rel} ({v.span_bits}-bit)", v, entry))
    return cases


def depth_part(vols: dict[str, Volume], data_dir: Path, ctx, say, records: list) -> None:
    say("\n## depth fill: lossy video with fill_depth off / on (measure_cell; PSNR at each volume's own peak 2^B-1)")
    say(f"{'data':44s} {'codec':24s} {'fill':>5s} {'mapping':28s} {'CR':>8s} {'PSNR dB':>8s} {'SSIM':>7s}")
    for case, vol, entry in depth_cases(vols, data_dir):
        spec = parse_codec(dict(entry), "bench")
        for fill in (False, True):
            row = measure_cell(vol, spec, ctx, CellSettings(fill_depth=fill)).row.as_dict()
            if row["status"] != "ok":
                say(f"{case:44s} {spec.label:24s} {str(fill):>5s} {row['status']}: {row['reason']}")
                continue
            say(f"{case:44s} {spec.label[:24]:24s} {str(fill):>5s} {row['mapping'][:28]:28s} {row['cr']:8.1f} "
                f"{row['psnr_db']:8.2f} {row['ssim']:7.4f}")
            records.append({"part": "depth_fill", "family": entry["codec"], "setting": spec.label,
                            "params": json.dumps(entry), "data": case, "fill_depth": fill, "mapping": row["mapping"],
                            "raw_bytes": row["raw_bytes"], "compressed_bytes": row["compressed_bytes"],
                            "cr": round(row["cr"], 3), "psnr_db": round(row["psnr_db"], 3),
                            "ssim": round(row["ssim"], 5)})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="*", default=list(CANDIDATES), choices=list(CANDIDATES),
                    help="lossless families measured (parts lossless and whole; default: all)")
    ap.add_argument("--slices", type=int, default=16, help="slices per volume for per-slice codecs (default 16)")
    ap.add_argument("--parts", nargs="*", default=list(PARTS), choices=list(PARTS),
                    help="lossless: every candidate; whole: each family's default on whole volumes; ffmpeg: FFV1 "
                         "through medpipe vs plain ffmpeg; depth: fill_depth off/on (default: all)")
    ap.add_argument("--out", type=Path, help="folder to keep the printed table (NAME.txt) and NAME.csv in")
    ap.add_argument("--name", default="table", help="file name stem under --out (default: table)")
    ap.add_argument("--data", type=Path, default=DATA, help=f"the dev data folder (default {DATA})")
    args = ap.parse_args()
    data_dir = args.data

    missing = [p for p in DEV_CT if not (data_dir / p).exists()]
    if missing:
        print(f"dev data not present under {data_dir}: {', '.join(missing)}", file=sys.stderr)
        return 2
    text = io.StringIO()

    def say(line: str = "") -> None:
        print(line, flush=True)
        text.write(line + "\n")

    ctx = CodecContext(threads=1)
    t0 = time.perf_counter()
    vols = {}
    for rel in DEV_CT:
        vols[Path(rel).name] = load_volume(data_dir / rel)
    libs = {k: v for k, v in library_versions().items() if k in ("imagecodecs", "opencv-python-headless", "numpy")}
    say(f"# codec defaults, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"{ctx.ffmpeg.version.split(' Copyright')[0]}; {', '.join(f'{k} {v}' for k, v in libs.items())}")
    say("dev CT series: " + "; ".join(f"{k} {v.shape[0]}x{v.shape[1]}x{v.shape[2]} {v.pixels.dtype} "
                                      f"{v.span_bits}-bit span" for k, v in vols.items()))
    records: list[dict] = []
    if "lossless" in args.parts:
        lossless_part(vols, args.families, args.slices, ctx, say, records)
    if "whole" in args.parts:
        whole_part(vols, args.families, ctx, say, records)
    if "ffmpeg" in args.parts:
        ffmpeg_part(vols, ctx, say, records)
    if "depth" in args.parts:
        depth_part(vols, data_dir, ctx, say, records)
    say(f"\n({time.perf_counter() - t0:.0f} s)")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / f"{args.name}.txt", text.getvalue())
        write_csv(args.out / f"{args.name}.csv", records, list(dict.fromkeys(k for r in records for k in r)))
        print(f"written: {args.out}/{args.name}.txt, {args.name}.csv")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
