"""Quality metrics (thesis 3.3), each with an explicit, documented peak; never a range guessed from the dtype.

Two figures of each kind, defined once here (and in the README and provenance):

- **Span figures** (``psnr_db``, ``ssim``): peak L = 2^B - 1, B = the bits the volume's *signal* spans: its stored
  values minus those equal to PixelPaddingValue (or inside PixelPaddingRangeLimit). Padding voxels are left out of
  B and of MSE/PSNR/SSIM -- a coded-perfectly padding would dilute the error, and -2000 padding plus a few metal
  voxels would inflate B -- but every voxel, padding included, is restored and checked for exactness and max
  error.
- **Window figures** (``psnr_window_db``, ``ssim_window``): both images clipped to a fixed window per modality,
  peak = the window's width, so volumes compare whatever their content: CT -> HU -1024..3071 (peak 4095 HU,
  applied through the rescale slope/intercept); every other modality -> the stored depth the header declares,
  0..2^BitsStored-1 (signed: -2^(b-1)..2^(b-1)-1), peak 2^BitsStored - 1.

SSIM window (a documented choice): Gaussian, sigma 1.5, 11 x 11 (truncate 3.5), population covariance,
K1 = 0.01, K2 = 0.03, a 5-pixel border excluded from the mean -- Wang et al. 2004, and the same numbers as
``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=L)`` when there is no padding. Volume SSIM is the mean over slices of the per-slice MSSIM; with padding,
padding pixels are set to the signal minimum in both images and left out of the mean. Images are taken relative to
the signal's minimum, so the luminance term sees values in [0, L] as the peak assumes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

K1, K2, SIGMA, RADIUS = 0.01, 0.03, 1.5, 5  # radius = int(3.5 * 1.5 + 0.5), window 11 x 11


def peak(bits: int) -> int:
    return (1 << bits) - 1


def psnr_from_mse(mse: float, peak_value: float) -> float:
    return math.inf if mse == 0 else 10.0 * math.log10(peak_value ** 2 / mse)


def _blur(img: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(img, (2 * RADIUS + 1, 2 * RADIUS + 1), SIGMA, borderType=cv2.BORDER_REFLECT)


def ssim_map(a: np.ndarray, b: np.ndarray, peak_value: float) -> np.ndarray:
    """Local SSIM of two 2-D images (float64), same size as the input; borders are not yet excluded."""
    a = a.astype(np.float64, copy=False)
    b = b.astype(np.float64, copy=False)
    c1, c2 = (K1 * peak_value) ** 2, (K2 * peak_value) ** 2
    mu_a, mu_b = _blur(a), _blur(b)
    aa, bb, ab = _blur(a * a), _blur(b * b), _blur(a * b)
    var_a, var_b, cov = aa - mu_a * mu_a, bb - mu_b * mu_b, ab - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    return num / den


# Kept over skimage's structural_similarity, which has no mask: a perfectly coded padding would inflate it (proved by
# tests/test_metrics.py::test_padding_masked_ssim_is_the_library_map_over_the_signal_only).
def ssim(a: np.ndarray, b: np.ndarray, peak_value: float, keep: np.ndarray | None = None) -> float:
    """MSSIM of one slice: mean local SSIM without the 5-pixel border (whole image if it is too small), over the
    pixels ``keep`` marks (all when None)."""
    m = ssim_map(a, b, peak_value)
    r = RADIUS
    inner = (slice(r, -r), slice(r, -r)) if min(m.shape) > 2 * r else (slice(None), slice(None))
    if keep is None:
        return float(m[inner].mean(dtype=np.float64))
    k = keep[inner]
    return float(m[inner][k].mean(dtype=np.float64)) if k.any() else math.nan


CT_WINDOW_HU = (-1024, 3071)  # the fixed CT window: 12 bits of HU from air up, peak 4095


def fixed_window(modality: str, slope: float, intercept: float, bits_stored: int, signed: bool
                 ) -> tuple[float, float, float, str]:
    """(lo, hi, peak, label) of the fixed window in STORED units for a volume (see the module docstring)."""
    if (modality or "").upper() == "CT" and slope:
        lo, hi = ((v - intercept) / slope for v in CT_WINDOW_HU)
        lo, hi = min(lo, hi), max(lo, hi)
        return lo, hi, (CT_WINDOW_HU[1] - CT_WINDOW_HU[0]) / abs(slope), "HU -1024..3071"
    b = max(1, int(bits_stored))
    lo, hi = (-(1 << (b - 1)), (1 << (b - 1)) - 1) if signed else (0, (1 << b) - 1)
    return lo, hi, float((1 << b) - 1), f"stored {lo}..{hi}"


@dataclass
class Quality:
    bits: int  # B: the span figures' peak is 2^B - 1
    mse: float
    psnr_db: float
    ssim: float
    max_abs_err: int
    exact: bool
    padding_voxels: int = 0  # left out of B, MSE, PSNR and SSIM (still checked for exactness)
    window: str = ""
    psnr_window_db: float = math.nan
    ssim_window: float = math.nan

    def as_dict(self) -> dict:
        return {"bits": self.bits, "peak": peak(self.bits), "mse": self.mse, "psnr_db": self.psnr_db,
                "ssim": self.ssim, "max_abs_err": self.max_abs_err, "exact": self.exact,
                "padding_voxels": self.padding_voxels, "window": self.window,
                "psnr_window_db": self.psnr_window_db, "ssim_window": self.ssim_window}


def compare(original: np.ndarray, decoded: np.ndarray, bits: int, *, with_ssim: bool = True,
            padding: tuple[int, int] | None = None, window: tuple[float, float, float, str] | None = None,
            base: int | None = None) -> Quality:
    """All metrics of a decoded volume against the original, slice by slice (bounded memory).

    ``bits``: B of the span figures (the signal's span); ``padding``: inclusive range of stored padding values;
    ``window``: (lo, hi, peak, label) of the fixed-window figures in stored units (:func:`fixed_window`);
    ``base``: the signal's minimum (computed when not given)."""
    if original.shape != decoded.shape:
        raise ValueError(f"decoded shape {decoded.shape} differs from original {original.shape}")
    L = peak(bits)
    if base is None:
        base = signal_min(original, padding)
    sq_sum = wsq_sum = 0.0
    counted = padded = max_err = 0
    ssims, wssims = [], []
    exact = True
    for o, d in zip(original, decoded):
        pad = ((o >= padding[0]) & (o <= padding[1])) if padding is not None else None
        keep = ~pad if pad is not None else None
        n_keep = int(np.count_nonzero(keep)) if keep is not None else o.size
        padded += o.size - n_keep
        counted += n_keep
        if np.array_equal(o, d):
            if n_keep:
                ssims.append(1.0)
                wssims.append(1.0)
            continue
        exact = False
        diff = o.astype(np.int64) - d.astype(np.int64)
        max_err = max(max_err, int(np.abs(diff).max()))
        dk = diff[keep] if keep is not None else diff.ravel()
        sq_sum += float(np.dot(dk, dk))
        if window is not None:
            wd = np.clip(o, window[0], window[1]) - np.clip(d, window[0], window[1])
            wd = wd[keep] if keep is not None else wd.ravel()
            wsq_sum += float(np.dot(wd, wd))
        if with_ssim and n_keep:
            ssims.append(_slice_ssim(o, d, pad, base, L))
            if window is not None:
                wo = np.clip(o.astype(np.float64), window[0], window[1])
                wdd = np.clip(d.astype(np.float64), window[0], window[1])
                wssims.append(_slice_ssim(wo, wdd, pad, window[0], window[2]))
    mse = sq_sum / counted if counted else 0.0
    q = Quality(bits=bits, mse=mse, psnr_db=psnr_from_mse(mse, L),
                ssim=_mean(ssims) if with_ssim else math.nan, max_abs_err=max_err, exact=exact,
                padding_voxels=padded)
    if window is not None:
        q.window = window[3]
        q.psnr_window_db = psnr_from_mse(wsq_sum / counted if counted else 0.0, window[2])
        q.ssim_window = _mean(wssims) if with_ssim else math.nan
    return q


def signal_min(original: np.ndarray, padding: tuple[int, int] | None) -> int:
    """Smallest stored value that is not padding (the smallest value when every voxel is padding)."""
    if padding is None:
        return int(original.min())
    mins = [int(sl[(sl < padding[0]) | (sl > padding[1])].min()) for sl in original
            if ((sl < padding[0]) | (sl > padding[1])).any()]
    return min(mins) if mins else int(original.min())


def _slice_ssim(o, d, pad, base, L) -> float:
    """SSIM of one slice relative to ``base``; padding pixels set to ``base`` in both and left out of the mean."""
    a = o.astype(np.float64) - base
    b = d.astype(np.float64) - base
    if pad is not None and pad.any():
        a[pad] = 0.0
        b[pad] = 0.0
        return ssim(a, b, L, keep=~pad)
    return ssim(a, b, L)


def _mean(values: list[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return float(np.mean(vals)) if vals else math.nan
