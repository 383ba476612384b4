"""Shared test fixtures: the shipped sample, the dev data (skipped cleanly when ../shared is absent)."""
from __future__ import annotations

from pathlib import Path

import os

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "ct_head_ge_dcmqa"
# MEDPIPE_DEV_DATA, else ../shared/data beside the checkout (a worktree under /work/wt/<name> finds the one two
# levels up)
SHARED_DATA = (Path(os.environ["MEDPIPE_DEV_DATA"]) if os.environ.get("MEDPIPE_DEV_DATA") else
               next((p / "shared" / "data" for p in ROOT.parents if (p / "shared" / "data").is_dir()),
                    ROOT.parent / "shared" / "data"))


def shared(rel: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / rel
    if not path.exists():
        pytest.skip(f"dev data not present: {path} (tests on ../shared/data run only where it exists)")
    return path


@pytest.fixture(scope="session")
def sample_volume():
    from medpipe.volumes import load_volume

    return load_volume(SAMPLE)


@pytest.fixture(scope="session")
def ctx():
    from medpipe.codecs import CodecContext

    return CodecContext()
