"""A noise floor per dev series: the fewest bits per voxel any causal lossless coder could spend if the image were
anatomy plus (locally scaled) stationary Gaussian noise; compared with lossless3d, JPEG XL e7 and JPEG-LS.

    python bench/noise_floor.py [--validate-only] [--only WORD] [--slices N] [--data DIR] [--bench JSON]

Model: a stored value is round(anatomy + sigma(r) * u(r)), u a stationary Gaussian field with power spectrum S.
The best causal (half-space ordered) linear predictor of u leaves an innovation of variance exp(mean log S)
(Kolmogorov-Szego / Helson-Lowdenslager), so a voxel costs at least the entropy of a quantised Gaussian of std
sigma(r) * kappa, kappa^2 = exp(mean log S) / mean S (the spectral flatness). Noise is the part no predictor knows;
the anatomy can only add bits. Steps:

1. Spectrum shape: patches (8 slices x 32 x 32, and 1 x 32 x 32) where a heavily smoothed copy of the image is
   nearly quadratic (so the choice looks at anatomy, not at the noise), no value clipped at the volume's min or
   max; each slice of a patch minus its quadratic fit, Hann window, periodogram normalised to mean 1, averaged.
   Bins the detrend suppressed (|ky|, |kx| <= 2) take the mean of the next ring. The floor uses the lower of the
   2-D and 3-D flatness (3-D can only be lower, unless anatomy leaks across slices).
2. Local noise level: Immerkaer's mask ([1 -2 1] x [1 -2 1], in-plane) on sampled slices, 1.4826 x MAD per 8 x 8
   block, calibrated to the innovation std with the spectrum: c^2 = exp(mean log S) / mean(|H|^2 S).
3. Bits: per block, the entropy of round(mu + s Z) (min over the offset mu: a lower bound) with
   s^2 = max(sigma_inn^2 - 1/12, 0) (the stored integers' own rounding is not innovation); summed, scaled from
   the sampled slices to the volume; the interval is +-2 standard errors of the per-slice mean.

Runs on the series as bench/lossless3d.py's ``load`` reads them (the codec's input) and reads that run's sizes
from bench/measured/lossless3d-2026-12-05/bench.json. numpy/scipy only; absent data is skipped.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.special import ndtr

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "measured" / "lossless3d-2026-12-05" / "bench.json"
PATCH, PZ, BLOCK, LOW = 32, 8, 8, 2
IMMERKAER_ENERGY = 36.0  # sum of squares of [1 -2 1] x [1 -2 1]: var(g) = 36 sigma^2 for white noise


# ---- entropy of a quantised Gaussian --------------------------------------------------------------------------------

def _quantised_entropy(sigma: float, offset: float) -> float:
    half = int(12 * sigma) + 3
    k = np.arange(-half, half + 1, dtype=np.float64)
    p = ndtr((k + 0.5 - offset) / sigma) - ndtr((k - 0.5 - offset) / sigma)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


_SIG = np.logspace(-3, np.log10(64.0), 700)
_HQ = np.array([min(_quantised_entropy(s, o) for o in np.linspace(0, 0.5, 6)) for s in _SIG])


def quantised_bits(sigma: np.ndarray) -> np.ndarray:
    """Entropy in bits of round(mu + sigma Z), minimised over the offset mu (exact table; closed form above 64)."""
    sigma = np.asarray(sigma, dtype=np.float64)
    out = np.interp(np.log(np.maximum(sigma, 1e-3)), np.log(_SIG), _HQ)
    big = sigma > _SIG[-1]
    out[big] = 0.5 * np.log2(2 * np.pi * np.e * sigma[big] ** 2)
    return np.where(sigma < 1e-3, 0.0, out)


# ---- spectrum shape ------------------------------------------------------------------------------------------------

def immerkaer(img: np.ndarray) -> np.ndarray:
    """[1 -2 1] x [1 -2 1] over the last two axes (valid part): blind to anatomy linear in y or in x."""
    a = img.astype(np.float32)
    d = a[..., :-2, :] - 2 * a[..., 1:-1, :] + a[..., 2:, :]
    return d[..., :-2] - 2 * d[..., 1:-1] + d[..., 2:]


def _quadratic_basis(n: int) -> np.ndarray:
    y, x = np.mgrid[0:n, 0:n].astype(np.float64) / n - 0.5
    basis = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y]).reshape(6, -1).T
    return basis @ np.linalg.pinv(basis)  # projector onto quadratics


def _patches(vol: np.ndarray, pz: int, rng: np.random.Generator, stacks: int = 8, keep: int = 400) -> np.ndarray:
    """(n, pz, 32, 32) float patches where the smoothed image is nearly quadratic and nothing is clipped."""
    nz, ny, nx = vol.shape
    lo, hi = vol.min(), vol.max()
    proj = _quadratic_basis(PATCH)
    starts = np.unique(np.linspace(0, nz - pz, min(stacks, nz - pz + 1)).round().astype(int))
    cand, score = [], []
    for z0 in starts:
        stack = vol[z0:z0 + pz].astype(np.float64)
        smooth = ndimage.gaussian_filter(stack, sigma=(0, 4, 4))
        for y0 in range(0, ny - PATCH + 1, PATCH // 2):
            for x0 in range(0, nx - PATCH + 1, PATCH // 2):
                raw = vol[z0:z0 + pz, y0:y0 + PATCH, x0:x0 + PATCH]
                if (raw == lo).any() or (raw == hi).any():
                    continue
                noise = 1.4826 * np.median(np.abs(immerkaer(raw))) / np.sqrt(IMMERKAER_ENERGY)
                if noise <= 0:
                    continue
                sm = smooth[:, y0:y0 + PATCH, x0:x0 + PATCH].reshape(pz, -1)
                anatomy = np.sqrt(np.mean((sm - sm @ proj.T) ** 2))
                cand.append(stack[:, y0:y0 + PATCH, x0:x0 + PATCH])
                score.append(anatomy / noise)
    if not cand:
        return np.empty((0, pz, PATCH, PATCH))
    score = np.array(score)
    good = np.flatnonzero(score < 0.3)
    if len(good) < 20:
        good = np.argsort(score)[:20]
    good = rng.permutation(good)[:keep]
    return np.stack([cand[i] for i in good])


def periodogram(patches: np.ndarray) -> np.ndarray:
    """Mean of the patches' normalised periodograms (each slice minus its quadratic fit, Hann windowed), shape
    (pz, 32, 32) with frequency 0 at [0, 0, 0]; the bins the detrend suppressed take the next ring's mean."""
    n, pz = patches.shape[:2]
    proj = _quadratic_basis(PATCH)
    flat = patches.reshape(n, pz, -1)
    resid = (flat - flat @ proj.T).reshape(patches.shape)
    w = np.hanning(PATCH + 2)[1:-1]
    win = np.outer(w, w)[None] * (np.hanning(pz + 2)[1:-1][:, None, None] if pz > 1 else 1.0)
    spec = np.abs(np.fft.fftn(resid * win, axes=(1, 2, 3))) ** 2
    k = np.abs(np.fft.fftfreq(PATCH) * PATCH)
    ring = np.maximum.outer(k, k)
    low, next_ring = ring <= LOW, (ring > LOW) & (ring <= LOW + 2)
    spec /= spec[:, :, ~low].mean(axis=(1, 2))[:, None, None, None]  # each patch weighs the same in the shape
    s = spec.mean(axis=0)
    s[:, low] = s[:, next_ring].mean(axis=1)[:, None]
    return s / s.mean()


def immerkaer_gain(shape: tuple) -> np.ndarray:
    """|H|^2 of the Immerkaer mask on a (pz, 32, 32) frequency grid."""
    w = 2 * np.pi * np.fft.fftfreq(shape[-1])
    h1 = (2 - 2 * np.cos(w)) ** 2
    return np.broadcast_to(np.outer(h1, h1)[None], shape)


def spectrum_model(vol: np.ndarray, rng: np.random.Generator) -> dict:
    """Flatness kappa^2 (2-D and 3-D), the calibration c (MAD of Immerkaer's mask -> innovation std)."""
    out = {}
    for name, pz in (("2d", 1), ("3d", PZ)):
        if vol.shape[0] < 2 * pz and pz > 1:
            continue
        p = _patches(vol, pz, rng)
        if len(p) < 4:
            continue
        s = periodogram(p)
        geo = float(np.exp(np.mean(np.log(s))))
        out[name] = {"patches": len(p), "flatness": geo, "c": float(np.sqrt(geo / np.mean(immerkaer_gain(s.shape) * s)))}
    if not out:
        return {}
    best = min(out, key=lambda k: out[k]["c"])
    return {**out, "use": best, "c": out[best]["c"]}


def slice_correlation(vol: np.ndarray, rng: np.random.Generator) -> float:
    """Correlation of Immerkaer-filtered neighbour slices where both are unclipped (0 for one slice)."""
    if vol.shape[0] < 2:
        return 0.0
    zs = rng.choice(vol.shape[0] - 1, size=min(12, vol.shape[0] - 1), replace=False)
    a = immerkaer(vol[zs]).ravel()
    b = immerkaer(vol[zs + 1]).ravel()
    keep = (a != 0) & (b != 0)
    a, b = a[keep], b[keep]
    cut = 3 * 1.4826 * np.median(np.abs(a))  # edges out
    keep = (np.abs(a) < cut) & (np.abs(b) < cut)
    return float(np.corrcoef(a[keep], b[keep])[0, 1]) if keep.sum() > 100 else 0.0


# ---- local noise level and the floor ------------------------------------------------------------------------------

def _blocks(a: np.ndarray) -> np.ndarray:
    by, bx = a.shape[0] // BLOCK, a.shape[1] // BLOCK
    return a[:by * BLOCK, :bx * BLOCK].reshape(by, BLOCK, bx, BLOCK).transpose(0, 2, 1, 3).reshape(by, bx, -1)


def block_sigma(img: np.ndarray, lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """Per 8 x 8 block of one slice: 1.4826 x MAD of Immerkaer's mask over the places whose 3 x 3 holds no value at
    the volume's min or max (padding, clipping), then the median of the 3 x 3 blocks around (a block an edge
    crosses is outvoted by its neighbours); blocks with too few such places take the nearest block's level.
    Returned per voxel (each voxel its block's level), with the mask of voxels that are not flat padding (3 x 3 all
    at the min or all at the max)."""
    ends = ((img == lo) | (img == hi)).astype(np.float32)
    touched = ndimage.maximum_filter(ends, size=3)[1:-1, 1:-1] > 0
    flat = (ndimage.minimum_filter(img, size=3) == ndimage.maximum_filter(img, size=3)) & (ends > 0)
    g, ok = _blocks(immerkaer(img)), ~_blocks(touched)
    gm = np.where(ok, g, np.nan)
    med = np.nanmedian(np.where(ok.sum(axis=2, keepdims=True) > 0, gm, 0), axis=2, keepdims=True)
    sig = 1.4826 * np.nanmedian(np.where(ok, np.abs(gm - med), np.nan), axis=2) if ok.any() else None
    live = ~flat
    if sig is None:
        return np.zeros(img.shape), live
    sig[ok.sum(axis=2) < BLOCK] = np.nan
    sig = ndimage.generic_filter(sig, np.nanmedian, size=3, mode="nearest")
    if np.isnan(sig).all():
        return np.zeros(img.shape), live
    idx = ndimage.distance_transform_edt(np.isnan(sig), return_distances=False, return_indices=True)
    per = np.repeat(np.repeat(sig[tuple(idx)], BLOCK, axis=0), BLOCK, axis=1)  # g's place i is voxel i + 1
    return np.pad(per, [(1, n - 1 - m) for n, m in zip(img.shape, per.shape)], mode="edge"), live


def slice_bits(img: np.ndarray, c: float, lo, hi) -> float:
    """Mean floor bits per voxel of one slice: each block's innovation std, its quantised Gaussian entropy, on the
    block's voxels that are not flat padding."""
    with warnings.catch_warnings():  # all-NaN blocks (padding) are expected; they are filled from neighbours
        warnings.simplefilter("ignore", RuntimeWarning)
        sig, live = block_sigma(img, lo, hi)
    inn2 = (c * sig) ** 2
    return float(quantised_bits(np.sqrt(np.maximum(inn2[live] - 1 / 12, 0))).sum() / img.size)


def floor(vol: np.ndarray, slices: int = 24, seed: int = 0) -> dict:
    """The floor of one volume (z, y, x): bits per voxel with a +-2 standard error interval over sampled slices."""
    rng = np.random.default_rng(seed)
    model = spectrum_model(vol, rng)
    if not model:
        return {}
    zs = np.unique(np.linspace(0, vol.shape[0] - 1, min(slices, vol.shape[0])).round().astype(int))
    lo, hi = vol.min(), vol.max()
    per = np.array([slice_bits(vol[z], model["c"], lo, hi) for z in zs])
    fpc = np.sqrt(max(0.0, 1 - len(zs) / vol.shape[0])) if vol.shape[0] > 1 else 0.0
    err = 2 * per.std(ddof=1) / np.sqrt(len(per)) * fpc if len(per) > 1 else 0.0
    return {"bpv": float(per.mean()), "err": float(err), "model": model, "rho_z": slice_correlation(vol, rng),
            "slices": len(zs)}


# ---- validation on synthetic volumes whose floor is known ---------------------------------------------------------

KERNELS = {  # name: (in-plane kernel, kernel along z or None, white-noise std)
    "white": (np.ones((1, 1)), None, 8.0),
    "sharp (high-pass, like B70f)": (np.array([[0, -.5, 0], [-.5, 3, -.5], [0, -.5, 0]]), None, 8.0),
    "smooth (low-pass, like B40f)": ("gauss0.7", None, 16.0),
    "smooth in-plane and across slices": ("gauss0.7", np.array([.3, 1, .3]), 16.0),
}


def _kernel3(plane, along_z) -> np.ndarray:
    if isinstance(plane, str):
        d = np.zeros((9, 9))
        d[4, 4] = 1
        plane = ndimage.gaussian_filter(d, float(plane[5:]))
    k = plane[None] if along_z is None else along_z[:, None, None] * plane[None]
    return k / np.sqrt((k ** 2).sum())  # unit variance for unit white noise


def innovation_variance(kernel: np.ndarray) -> float:
    """exp(mean log |K|^2) on a fine grid: the innovation variance of kernel * unit white noise."""
    shape = (64 if kernel.shape[0] > 1 else 1, 256, 256)
    return float(np.exp(np.mean(np.log(np.abs(np.fft.fftn(kernel, shape, axes=(0, 1, 2))) ** 2))))


def phantom(shape: tuple, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Smooth anatomy inside an elliptic body on exact-zero padding, and a noise level rising to the edge."""
    nz, ny, nx = shape
    z, y, x = np.mgrid[0:nz, 0:ny, 0:nx].astype(np.float64)
    r2 = ((y - ny / 2) / (0.42 * ny)) ** 2 + ((x - nx / 2) / (0.36 * nx)) ** 2
    body = r2 < 1
    anat = 1000 + 300 * np.sin(x / 23 + z / 9) * np.cos(y / 31)
    for _ in range(6):
        cy, cx, w = rng.uniform(0.3, 0.7) * ny, rng.uniform(0.3, 0.7) * nx, rng.uniform(8, 25)
        anat += rng.uniform(-400, 400) * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * w * w))
    return np.where(body, anat, 0.0), np.where(body, 0.6 + 0.8 * np.minimum(r2, 1), 0.0)


def synthetic(name: str, shape=(48, 256, 256), seed: int = 1, stationary: bool = False) -> tuple[np.ndarray, float]:
    """(volume as integers, true floor in bits per voxel) for one noise kind of KERNELS."""
    rng = np.random.default_rng(seed)
    plane, along_z, std = KERNELS[name]
    k = _kernel3(plane, along_z)
    anat, level = phantom(shape, rng)
    if stationary:
        level = np.ones(shape)
    noise = ndimage.convolve(rng.standard_normal(shape), k, mode="wrap")
    vol = np.where(level > 0, np.round(anat + std * level * noise), 0).astype(np.int32)
    true_inn = std * level * np.sqrt(innovation_variance(k))
    vol -= vol.min()
    return vol.astype(np.uint16), float(quantised_bits(true_inn).mean())


def validate(shape=(48, 256, 256)) -> list[dict]:
    rows = []
    for name in KERNELS:
        for stationary in (True, False):
            vol, truth = synthetic(name, shape, stationary=stationary)
            est = floor(vol)
            rows.append({"noise": name, "level": "uniform, no padding" if stationary else "rising to edge, padding",
                         "truth": truth, "est": est["bpv"], "err": est["err"], "use": est["model"]["use"],
                         "rho_z": est["rho_z"]})
            r = rows[-1]
            print(f"  {name:<36} {r['level']:<24} true {truth:6.3f}  estimate {r['est']:6.3f} +-{r['err']:.3f} "
                  f"bits/voxel ({100 * (r['est'] / truth - 1):+5.1f} %), spectrum {r['use']}, rho_z {r['rho_z']:+.2f}")
    return rows


# ---- the dev series ------------------------------------------------------------------------------------------------

def series_rows(args, sizes: dict) -> dict:
    sys.path.insert(0, str(ROOT / "bench"))
    from lossless3d import TUNED, UNSEEN, load  # noqa: E402 - the codec's own reader and split

    rows = {}
    print(f"\n{'series':<46} {'voxels':>11} {'floor b/v':>13} {'l3d b/v':>7} {'jxl b/v':>7} {'c':>6} "
          f"{'kappa2':>6} {'sp':>2} {'rho_z':>5} {'s':>4}")
    for rel in TUNED + UNSEEN:
        path = args.data / rel
        if (args.only and args.only not in rel) or rel not in sizes:
            continue
        if not path.exists():
            print(f"{rel}: absent, skipped")
            continue
        t0 = time.process_time()
        vol = load(path)
        vol = vol if vol.ndim == 3 else vol[None]
        f = floor(vol, slices=args.slices)
        if not f:
            print(f"{rel}: no patch to estimate a spectrum from, skipped")
            continue
        m, c = f["model"], sizes[rel]["codecs"]
        n = sizes[rel]["voxels"]
        rows[rel] = {**f, "voxels": n, "floor_bytes": f["bpv"] * n / 8, "floor_lo": (f["bpv"] - f["err"]) * n / 8,
                     "floor_hi": (f["bpv"] + f["err"]) * n / 8, **{k: c[k]["bytes"] for k in c}}
        print(f"{rel:<46} {n:>11,} {f['bpv']:6.3f}+-{f['err']:.3f} {8 * c['lossless3d']['bytes'] / n:7.3f} "
              f"{8 * c['jxl e7']['bytes'] / n:7.3f} {m['c']:6.3f} {m[m['use']]['flatness']:6.3f} {m['use']:>2} "
              f"{f['rho_z']:+5.2f} {time.process_time() - t0:4.0f}", flush=True)
    return rows


def table(rows: dict) -> None:
    print(f"\n{'series':<46} {'floor bytes':>12} {'l3d bytes':>11} {'jxl e7':>11} {'jpeg-ls':>11} {'l3d/floor':>9} "
          f"{'CEILING':>8} {'(interval)':>15} {'l3d/jxl':>7} {'excess':>6}")
    for rel, r in rows.items():
        below = r["below"] = [k for k in ("lossless3d", "jxl e7", "jpeg-ls", "htj2k") if r[k] < r["floor_bytes"]]
        print(f"{rel:<46} {r['floor_bytes']:>12,.0f} {r['lossless3d']:>11,} {r['jxl e7']:>11,} {r['jpeg-ls']:>11,} "
              f"{r['lossless3d'] / r['floor_bytes']:9.3f} {r['jxl e7'] / r['floor_bytes']:8.3f} "
              f"({r['jxl e7'] / r['floor_hi']:.3f}-{r['jxl e7'] / r['floor_lo']:.3f}) "
              f"{r['jxl e7'] / r['lossless3d']:7.3f} {100 * (1 - r['floor_bytes'] / r['lossless3d']):5.1f}%"
              + (f"  BELOW THE FLOOR: {', '.join(below)} (the model fails here)" if below else ""))


def aggregate(name: str, rows: dict) -> None:
    """Sums over the series whose floor no codec beat (elsewhere the model is wrong and the floor unknown)."""
    bad = [k for k, r in rows.items() if r["below"]]
    rows = {k: r for k, r in rows.items() if not r["below"]}
    if not rows:
        return
    tot = {k: sum(r[k] for r in rows.values()) for k in ("floor_bytes", "floor_lo", "floor_hi", "lossless3d",
                                                            "jxl e7")}
    print(f"{name:<34} {len(rows):>2} series: JXL/l3d {tot['jxl e7'] / tot['lossless3d']:.4f}, "
          f"CEILING JXL/floor {tot['jxl e7'] / tot['floor_bytes']:.3f} "
          f"({tot['jxl e7'] / tot['floor_hi']:.3f}-{tot['jxl e7'] / tot['floor_lo']:.3f}), "
          f"l3d/floor {tot['lossless3d'] / tot['floor_bytes']:.3f}, l3d excess over floor "
          f"{100 * (1 - tot['floor_bytes'] / tot['lossless3d']):.1f} %" + (f"; left out: {len(bad)}" if bad else ""))


def budget(unseen: list, sizes: dict, rows: dict, ctmr: list) -> None:
    """What the aggregate goal asks of the other unseen series if every CT/MR series were coded at its floor."""
    jxl = sum(sizes[k]["codecs"]["jxl e7"]["bytes"] for k in unseen if k in sizes)
    at_floor = sum(rows[k]["floor_bytes"] for k in ctmr)
    rest = [k for k in unseen if k in sizes and k not in ctmr]
    rj = sum(sizes[k]["codecs"]["jxl e7"]["bytes"] for k in rest)
    rl = sum(sizes[k]["codecs"]["lossless3d"]["bytes"] for k in rest)
    print(f"aggregate goal 1.15 on UNSEEN: at most {jxl / 1.15:,.0f} bytes; the {len(ctmr)} CT/MR series at their floor "
          f"{at_floor:,.0f}; the other {len(rest)} would have to fit {jxl / 1.15 - at_floor:,.0f} = "
          f"x{rj / (jxl / 1.15 - at_floor):.3f} JPEG XL (lossless3d now x{rj / rl:.3f}, {rl:,} bytes)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--validate-only", action="store_true", help="the synthetic checks alone")
    ap.add_argument("--only", help="series whose path contains this")
    ap.add_argument("--slices", type=int, default=24, help="slices sampled per series for the local noise map")
    ap.add_argument("--data", type=Path, default=None, help="the dev data folder (DATA.md)")
    ap.add_argument("--bench", type=Path, default=BENCH, help="bench/lossless3d.py's --json output")
    args = ap.parse_args()
    print("validation: synthetic 48 x 256 x 256 volumes (smooth anatomy, exact-zero padding), known floor")
    validate()
    if args.validate_only:
        return 0
    sys.path.insert(0, str(ROOT / "bench"))
    from lossless3d import UNSEEN, default_data, kind  # noqa: E402

    args.data = args.data or default_data()
    if not args.data.is_dir():
        print(f"dev data absent ({args.data}): series skipped")
        return 0
    sizes = json.loads(args.bench.read_text())["results"]
    rows = series_rows(args, sizes)
    table(rows)
    print()
    unseen = {k: v for k, v in rows.items() if k in UNSEEN}
    aggregate("ALL measured", rows)
    aggregate("UNSEEN (goal 1.15)", unseen)
    ctmr = {k: v for k, v in unseen.items() if kind(k) in ("CT", "MR")}
    aggregate("UNSEEN CT/MR", ctmr)
    budget(UNSEEN, sizes, rows, [k for k, v in ctmr.items() if not v["below"]])
    for rel in ("ct_chest/lung_dx_a0002/series_2_b70f", "mr/rembrandt_hf0990_flair"):
        if rel in rows:
            r = rows[rel]
            print(f"{rel}: CEILING {r['jxl e7'] / r['floor_bytes']:.3f} ({r['jxl e7'] / r['floor_hi']:.3f}-"
                  f"{r['jxl e7'] / r['floor_lo']:.3f}) vs goal 1.05; lossless3d x{r['jxl e7'] / r['lossless3d']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
