"""The medpipe Codec for lossless3d: the whole volume is one stream (per_slice = False).

Kept thin on purpose: the coder lives in :mod:`.coder` / :mod:`.model`; numba is imported on first use only,
so a machine without it lists the codec as unavailable instead of failing to import medpipe.codecs.
"""
from __future__ import annotations

from ..base import Codec, Encoded, Param
from .stream import VERSION


class Lossless3D(Codec):
    name = "lossless3d"
    family = "medpipe"
    description = ("medpipe's 3-D lossless coder: in-plane and inter-slice predictors blended by their recent "
                   "errors, context-mixed binary arithmetic coding, 1-16 bits")
    requires = ("numba",)
    install_hint = "numba (pip install numba)"
    per_slice = False
    params = {"slabs": Param(int, None, "independent runs of slices, decodable in parallel (default: 2 from 128 "
                                        "slices up, else 1; each boundary costs about a third of a slice)",
                             range=(1, 4096)),
              "model": Param(str, "full", "full: every model feature; lean: no context mixing (decodes about 1.6 x "
                                          "faster, 2-3 % larger); fast: 2-D blend, one counter per decision (about "
                                          "2.7 x faster, about 17 % larger); static: the encoder fits the "
                                          "predictor and entropy tables, the decoder follows (decodes about 8 x "
                                          "faster than full, about 5 % larger)", ("full", "lean", "fast", "static"))}
    max_bits = 16
    cost = 8.0  # per voxel, about JPEG XL effort 7's encode + decode (bench/lossless3d.py: x0.96 in aggregate)

    def version(self, ctx) -> str:
        import numba

        return f"lossless3d stream v{VERSION} (numba {numba.__version__})"

    def prepare(self, ctx) -> float:
        from .coder import warm_up

        return warm_up()

    def encode(self, frames, ctx) -> Encoded:
        from .coder import MODELS, encode_volume

        slabs = self.p["slabs"] and min(self.p["slabs"], len(frames))
        return Encoded([encode_volume(frames, flags=MODELS[self.p["model"]], slabs=slabs, threads=threads(ctx))],
                       tuple(frames.shape), frames.dtype.str)

    def decode(self, enc: Encoded, ctx):
        from .coder import decode_volume

        return decode_volume(enc.chunks[0], expected_shape=enc.shape, expected_dtype=enc.dtype, threads=threads(ctx))


def threads(ctx) -> int:
    """The run's thread budget for the slabs (the matrix gives every codec call one thread)."""
    return ctx.threads if ctx is not None and getattr(ctx, "threads", 0) > 0 else 1


CODECS = [Lossless3D]
