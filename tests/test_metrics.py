"""Metrics against independent references: numpy formulas and scikit-image, with an explicit peak."""
from __future__ import annotations

import math

import numpy as np
import pytest

from medpipe import metrics


@pytest.fixture(scope="module")
def distorted(sample_volume):
    """Real slices and the same slices through a real lossy codec (JPEG-LS NEAR=6)."""
    import imagecodecs

    lo = int(sample_volume.pixels.min())
    orig = (sample_volume.pixels[10:13].astype(np.int32) - lo).astype(np.uint16)
    dec = np.stack([imagecodecs.jpegls_decode(imagecodecs.jpegls_encode(s, level=6)) for s in orig])
    return orig, dec


def test_psnr_uses_the_explicit_peak_not_the_dtype(distorted):
    orig, dec = distorted
    q = metrics.compare(orig, dec, bits=12)
    mse = np.mean((orig.astype(np.float64) - dec) ** 2)
    assert q.mse == pytest.approx(mse, rel=1e-12)
    assert q.psnr_db == pytest.approx(10 * math.log10(4095 ** 2 / mse), rel=1e-12)
    # uint16 with a guessed peak of 65535 would be ~24 dB higher: make sure that is not what we report
    assert q.psnr_db < 10 * math.log10(65535 ** 2 / mse) - 20
    assert q.max_abs_err == int(np.abs(orig.astype(int) - dec).max()) and q.max_abs_err <= 6
    assert not q.exact


def test_psnr_matches_scikit_image_with_same_range(distorted):
    from skimage.metrics import peak_signal_noise_ratio

    orig, dec = distorted
    q = metrics.compare(orig, dec, bits=12)
    assert q.psnr_db == pytest.approx(peak_signal_noise_ratio(orig, dec, data_range=4095), abs=1e-9)


def test_ssim_agrees_with_scikit_image(distorted):
    from skimage.metrics import structural_similarity

    orig, dec = distorted
    for o, d in zip(orig, dec):
        ours = metrics.ssim(o.astype(np.float64), d.astype(np.float64), 4095)
        ref = structural_similarity(o.astype(np.float64), d.astype(np.float64), data_range=4095,
                                    gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        assert ours == pytest.approx(ref, abs=1e-4)
        assert ours < 1.0  # a real distortion is seen


def test_identical_volumes_are_exact():
    a = np.arange(2 * 32 * 32, dtype=np.uint16).reshape(2, 32, 32)
    q = metrics.compare(a, a.copy(), bits=11)
    assert q.exact and q.mse == 0 and q.psnr_db == math.inf and q.ssim == 1.0 and q.max_abs_err == 0


def test_signed_input_is_measured_relative_to_its_minimum():
    rng = np.random.default_rng(1)
    a = rng.integers(-1024, 3000, (2, 40, 40)).astype(np.int16)
    b = (a + rng.integers(-3, 4, a.shape)).astype(np.int16)
    q = metrics.compare(a, b, bits=12)
    shifted = metrics.compare((a.astype(np.int32) + 1024).astype(np.uint16),
                              (b.astype(np.int32) + 1024).astype(np.uint16), bits=12)
    assert q.ssim == pytest.approx(shifted.ssim, abs=1e-12) and q.mse == shifted.mse


def test_padding_masked_ssim_is_the_library_map_over_the_signal_only(distorted):
    """Why medpipe keeps its own SSIM: scikit-image has no mask. With padding (a perfectly coded frame of air
    outside the body), ours is scikit-image's SSIM map averaged over the signal pixels only, while the library's
    one figure counts the padding as perfect and says the image is better than it is."""
    from skimage.metrics import structural_similarity

    orig, dec = distorted
    pad_value = 5000  # outside the 12-bit signal, as scanners' padding is
    o, d = orig.copy(), dec.copy()
    pad = orig <= 30  # the air around the head
    o[pad] = d[pad] = pad_value
    assert 0.2 < pad.mean() < 0.8
    q = metrics.compare(o, d, bits=12, padding=(pad_value, pad_value))
    r, ours, whole = metrics.RADIUS, [], []
    base = int(o[~pad].min())  # images taken relative to the signal's minimum, as the peak assumes
    for os_, ds_, ps in zip(o, d, pad):
        a, b = os_.astype(np.float64) - base, ds_.astype(np.float64) - base
        a[ps] = b[ps] = 0.0
        _, smap = structural_similarity(a, b, data_range=4095, gaussian_weights=True, sigma=1.5,
                                        use_sample_covariance=False, full=True)
        ours.append(smap[r:-r, r:-r][~ps[r:-r, r:-r]].mean())
        whole.append(structural_similarity(os_.astype(np.float64), ds_.astype(np.float64), data_range=4095,
                                           gaussian_weights=True, sigma=1.5, use_sample_covariance=False))
    assert q.ssim == pytest.approx(np.mean(ours), abs=1e-9)
    # medpipe without the padding mask gives the library's unmasked figure, which hides part of the loss
    unmasked = metrics.compare(o, d, bits=12)
    assert unmasked.ssim == pytest.approx(np.mean(whole), abs=1e-3)
    # the mask is the declared padding values and nothing else: a padding range the image does not hold masks
    # nothing (not, say, every value outside the 12-bit signal), and gives the unmasked figure
    absent = metrics.compare(o, d, bits=12, padding=(pad_value + 1, pad_value + 1))
    assert absent.ssim == pytest.approx(unmasked.ssim, abs=1e-12)
