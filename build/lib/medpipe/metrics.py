"""Quality metrics (thesis 3.3), each with an explicit peak L = 2^B - 1; never a range guessed from the dtype.

SSIM window (a documented choice): Gaussian, sigma 1.5, 11 x 11 (truncate 3.5), population covariance,
K1 = 0.01, K2 = 0.03, a 5-pixel border excluded from the mean -- Wang et al. 2004, and the same numbers as
``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=L)``. Volume SSIM is the mean over slices of the per-slice MSSIM. Both images are taken relative to
the volume's minimum, so the luminance term sees values in [0, L] as the peak assumes.
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


def ssim(a: np.ndarray, b: np.ndarray, peak_value: float) -> float:
    """MSSIM of one slice: mean local SSIM without the 5-pixel border (whole image if it is too small)."""
    m = ssim_map(a, b, peak_value)
    r = RADIUS
    inner = m[r:-r, r:-r] if min(m.shape) > 2 * r else m
    return float(inner.mean(dtype=np.float64))


@dataclass
class Quality:
    bits: int  # B: PSNR/SSIM peak is 2^B - 1
    mse: float
    psnr_db: float
    ssim: float
    max_abs_err: int
    exact: bool

    def as_dict(self) -> dict:
        return {"bits": self.bits, "mse": self.mse, "psnr_db": self.psnr_db, "ssim": self.ssim,
                "max_abs_err": self.max_abs_err, "exact": self.exact}


def compare(original: np.ndarray, decoded: np.ndarray, bits: int, *, with_ssim: bool = True) -> Quality:
    """All metrics of a decoded volume against the original, slice by slice (bounded memory)."""
    if original.shape != decoded.shape:
        raise ValueError(f"decoded shape {decoded.shape} differs from original {original.shape}")
    L = peak(bits)
    base = int(original.min())
    sq_sum, max_err, ssims = 0.0, 0, []
    exact = True
    for o, d in zip(original, decoded):
        if np.array_equal(o, d):
            ssims.append(1.0)
            continue
        exact = False
        diff = o.astype(np.int64) - d.astype(np.int64)
        sq_sum += float(np.dot(diff.ravel(), diff.ravel()))
        max_err = max(max_err, int(np.abs(diff).max()))
        if with_ssim:
            ssims.append(ssim(o.astype(np.float64) - base, d.astype(np.float64) - base, L))
    mse = sq_sum / original.size
    return Quality(bits=bits, mse=mse, psnr_db=psnr_from_mse(mse, L),
                   ssim=float(np.mean(ssims)) if with_ssim else math.nan, max_abs_err=max_err, exact=exact)
