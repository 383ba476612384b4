"""Where lossless3d's static model spends its time: ns per voxel of each encode step and of the decode kernel.

    python bench/lossless3d_static.py [--slices N] [--only WORD] [--data DIR]

Per series (the middle N slices, default 32, of the same dev series bench/lossless3d.py reads): the encoder's
steps (least-squares fit, feedback fit, the prediction/token kernel, rANS), the decode kernel alone, and the
whole encode_volume / decode_volume, in CPU nanoseconds per voxel (time.process_time, best of 3, one core).
Every decode is checked exact.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import lossless3d as bench  # noqa: E402
from medpipe.codecs.lossless3d import decode_volume, encode_volume  # noqa: E402
from medpipe.codecs.lossless3d import static as S  # noqa: E402
from medpipe.codecs.lossless3d import static_kernel as K  # noqa: E402
from medpipe.codecs.lossless3d.coder import warm_up  # noqa: E402


def best(fn, n=3) -> float:
    out = []
    for _ in range(n):
        t0 = time.process_time()
        fn()
        out.append(time.process_time() - t0)
    return min(out)


def encode_steps(work: np.ndarray, maxval: int) -> dict:
    n = work.size
    w, thr, shift = S.fit_weights(work)
    feedback = best(lambda: S.fit_feedback(work, maxval, w, thr, shift))  # (fills w's feedback weights)
    tok, ctx = np.empty(n, np.uint8), np.empty(n, np.uint8)
    bits = np.empty(2 * n + 16, np.uint8)
    none8, none64, no_err = np.zeros(1, np.uint8), np.zeros(1, np.int64), np.zeros((1, 1, 1), np.int32)
    counts = np.zeros(K.N_CTX * K.N_TOK, np.int64)

    def kernel():
        counts[:] = 0
        K.run(False, work, maxval, w, S.class_table(thr), shift, none8, none64, tok, ctx, counts, none8, bits, no_err)

    kernel()
    freq = S.normalise(counts.reshape(K.N_CTX, K.N_TOK))
    start = np.zeros_like(freq)
    start[:, 1:] = np.cumsum(freq, 1)[:, :-1]
    out = np.empty(2 * n + 16, np.uint8)
    return {"fit": best(lambda: S.fit_weights(work)), "feedback": feedback,
            "kernel": best(kernel), "rans": best(lambda: K.rans_encode(tok, ctx, freq, start, out))}


def decode_kernel(work: np.ndarray, maxval: int) -> float:
    w, gtab, shift, lut, fs, code, bits = S.read_slab(S.encode_slab(work, maxval))
    out = np.zeros_like(work)
    none8, none64, no_err = np.zeros(1, np.uint8), np.zeros(1, np.int64), np.zeros((1, 1, 1), np.int32)
    seconds = best(lambda: K.run(True, out, maxval, w, gtab, shift, lut, fs, none8, none8, none64, code, bits, no_err))
    if not np.array_equal(out, work):
        raise SystemExit("NOT EXACT: the static decode kernel did not reproduce its input")
    return seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=32)
    ap.add_argument("--only", help="series whose path contains this")
    ap.add_argument("--data", type=Path, default=bench.default_data())
    args = ap.parse_args()
    print(f"one core: {bench.pin_one_core()}; CPU ns per voxel, best of 3")
    warm_up()
    print(f"{'series':<44} {'fit':>5} {'fdbk':>5} {'kern':>5} {'rANS':>5} | {'dec kern':>8} | "
          f"{'encode':>6} {'decode':>6}")
    for rel in bench.TUNED + bench.UNSEEN:
        path = args.data / rel
        if (args.only and args.only not in rel) or not path.exists():
            continue
        vol = bench.load(path)
        mid = max(0, len(vol) // 2 - args.slices // 2)
        vol = np.ascontiguousarray(vol[mid:mid + args.slices])
        work = (vol.astype(np.int32) - int(vol.min()))
        maxval = int(work.max())
        ns = 1e9 / vol.size
        steps = encode_steps(work, maxval)
        data = encode_volume(vol, flags=S.F_STATIC, slabs=1)
        enc = best(lambda: encode_volume(vol, flags=S.F_STATIC, slabs=1))
        dec = best(lambda: decode_volume(data))
        if not np.array_equal(decode_volume(data), vol):
            raise SystemExit(f"NOT EXACT: {rel}")
        print(f"{rel[-44:]:<44} " + " ".join(f"{steps[k] * ns:5.1f}" for k in ("fit", "feedback", "kernel", "rans"))
              + f" | {decode_kernel(work, maxval) * ns:8.1f} | {enc * ns:6.1f} {dec * ns:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
