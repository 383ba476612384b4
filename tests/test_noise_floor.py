"""bench/noise_floor.py's estimator on synthetic volumes whose noise floor is known (no dev data needed)."""
from __future__ import annotations

import sys

import numpy as np

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import noise_floor as nf  # noqa: E402


def test_quantised_gaussian_entropy_is_exact_at_both_ends():
    assert nf.quantised_bits(np.array([0.0]))[0] == 0.0
    assert nf.quantised_bits(np.array([0.05]))[0] < 1e-6  # far below one step: no information
    wide = nf.quantised_bits(np.array([20.0, 100.0]))
    assert np.allclose(wide, 0.5 * np.log2(2 * np.pi * np.e * np.array([20.0, 100.0]) ** 2), atol=1e-4)


def test_innovation_of_a_filtered_white_noise_is_below_its_variance():
    sharp = nf._kernel3(*nf.KERNELS["sharp (high-pass, like B70f)"][:2])
    assert nf.innovation_variance(nf._kernel3(np.ones((1, 1)), None)) == 1.0
    assert 0.5 < nf.innovation_variance(sharp) < 0.95  # unit variance, partly predictable


def test_floor_matches_the_known_answer_on_synthetic_volumes():
    """White and correlated noise, noise level rising to the edge of a body on exact-zero padding: the estimate is
    within 5 % of the true innovation entropy (bench/measured/noise-floor-2026-12-05 has the full-size figures)."""
    for name in ("white", "sharp (high-pass, like B70f)"):
        vol, truth = nf.synthetic(name, shape=(8, 160, 160))
        est = nf.floor(vol, slices=4)
        assert abs(est["bpv"] / truth - 1) < 0.05, (name, est["bpv"], truth)


def test_constant_padding_costs_nothing():
    """A noisy square (36 % of the voxels) on exact-zero padding: the floor is the square's share of the bits."""
    vol = np.zeros((4, 160, 160), dtype=np.uint16)
    vol[:, 32:128, 32:128] = np.round(500 + 6 * np.random.default_rng(0).standard_normal((4, 96, 96)))
    est = nf.floor(vol, slices=4)
    truth = (96 / 160) ** 2 * nf.quantised_bits(np.array([6.0]))[0]
    assert abs(est["bpv"] / truth - 1) < 0.05, (est["bpv"], truth)
