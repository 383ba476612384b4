"""Archive settings, grouping (metadata, then thesis eq. 4.1) and frame ordering.

Grouping: two scans may share a stream when their metadata agree (``group_by`` keys; image size always, since a
video stream has one frame size) and the transform-domain similarity of key frames at matching relative positions
is small enough: S = sum|T1-T2|^2 / sqrt(sum|T1|^2 sum|T2|^2) <= epsilon (thesis eq. 4.1/4.2), T = the low-frequency
DCT block of a frame in rescaled (HU) values. A scan joins the first group whose every member it matches; one
that matches none is archived alone and the reason is recorded.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from ..errors import PresetError
from ..options import did_you_mean
from ..volumes import Volume

ORDERS = ("sequential", "interleave", "similarity")
GROUP_KEYS = ("modality", "body_part", "protocol", "size", "spacing", "thickness")


@dataclass(frozen=True)
class Settings:
    """What a build does; every field is a key of a preset's ``archive:`` mapping."""

    codec: dict = field(default_factory=lambda: {"codec": "auto"})  # a codec entry as in 'codecs:', or auto
    order: str = "sequential"
    group_by: tuple = GROUP_KEYS
    spacing_tol: float = 0.2  # relative difference of pixel spacing allowed within a group
    thickness_tol: float = 0.5  # relative difference of slice thickness allowed within a group
    epsilon: float = 0.4  # eq. 4.2 threshold on S (0 = identical key frames; the phantom pair: 0.35)
    key_frames: tuple = (0.25, 0.5, 0.75)  # relative slice positions compared
    dct_block: int = 32  # low-frequency DCT coefficients kept per axis
    value_table: bool = True  # allow a reversible value table when values are wider than the codec
    harmonize: bool = True  # code rescaled values (stored + integer intercept) so scanners agree on tissue
    compare: bool = False  # preset runs: also encode each group's scans separately and write results.csv


SETTING_HELP = {
    "codec": "codec entry, e.g. {codec: x265, lossless: true} or {codec: ffv1}; 'auto' = lossless x265 12-bit "
             "when values fit (with a value table if needed), else FFV1",
    "order": f"frame order in the stream: {', '.join(ORDERS)}",
    "group_by": f"metadata keys scans must share: {', '.join(GROUP_KEYS)} (image size is always required)",
    "spacing_tol": "allowed relative pixel-spacing difference (0.2 = 20 %)",
    "thickness_tol": "allowed relative slice-thickness difference",
    "epsilon": "similarity threshold of thesis eq. 4.2 (S <= epsilon groups two scans)",
    "key_frames": "relative slice positions (0..1) whose DCTs are compared",
    "dct_block": "DCT coefficients kept per axis (low frequencies)",
    "value_table": "allow a reversible value table to fit wide values into a 12-bit lossless codec",
    "harmonize": "code stored + rescale intercept (when slope is 1), so scans of different scanners share values",
    "compare": "also encode every scan separately and write the comparison results.csv",
}


def parse_settings(data: dict | None, where: str = "archive") -> Settings:
    """Validate an ``archive:`` mapping (unknown keys get a close match) -> Settings."""
    data = dict(data or {})
    names = {f.name for f in fields(Settings)}
    for key in data:
        if key not in names:
            raise PresetError(f"{where}: unknown key '{key}'{did_you_mean(str(key), names)}")
    kw: dict = {}
    if "codec" in data:
        codec = data["codec"]
        codec = {"codec": codec} if isinstance(codec, str) else codec
        if not isinstance(codec, dict) or "codec" not in codec:
            raise PresetError(f"{where}.codec: expected a codec name or a mapping with 'codec', e.g. "
                              "{codec: x265, lossless: true}")
        kw["codec"] = dict(codec)
    if "order" in data:
        if data["order"] not in ORDERS:
            raise PresetError(f"{where}.order: {data['order']!r} is not a known order"
                              f"{did_you_mean(str(data['order']), ORDERS)}")
        kw["order"] = data["order"]
    if "group_by" in data:
        keys = data["group_by"]
        keys = [keys] if isinstance(keys, str) else keys
        if not isinstance(keys, list):
            raise PresetError(f"{where}.group_by: expected a list of keys from {list(GROUP_KEYS)}")
        for k in keys:
            if k not in GROUP_KEYS:
                raise PresetError(f"{where}.group_by: unknown key '{k}'{did_you_mean(str(k), GROUP_KEYS)}")
        kw["group_by"] = tuple(keys)
    for key in ("spacing_tol", "thickness_tol", "epsilon"):
        if key in data:
            v = data[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise PresetError(f"{where}.{key}: expected a number >= 0, got {v!r}")
            kw[key] = float(v)
    if "key_frames" in data:
        v = data["key_frames"]
        if not isinstance(v, list) or not v or not all(isinstance(x, (int, float)) and 0 <= x <= 1 for x in v):
            raise PresetError(f"{where}.key_frames: expected a list of relative positions in 0..1, got {v!r}")
        kw["key_frames"] = tuple(float(x) for x in v)
    if "dct_block" in data:
        v = data["dct_block"]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise PresetError(f"{where}.dct_block: expected a positive integer, got {v!r}")
        kw["dct_block"] = v
    for key in ("value_table", "harmonize", "compare"):
        if key in data:
            if not isinstance(data[key], bool):
                raise PresetError(f"{where}.{key}: expected true/false, got {data[key]!r}")
            kw[key] = data[key]
    return Settings(**kw)


# ---------------------------------------------------------------- metadata

def _float(v) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def scan_meta(vol: Volume) -> dict:
    h = vol.headers[0] if vol.headers else {}
    spacing = h.get("PixelSpacing") if hasattr(h, "get") else None
    return {
        "modality": (vol.modality or "").strip().upper(),
        "body_part": (vol.body_part or "").strip().upper(),
        "protocol": (vol.description or "").strip().upper(),
        "size": tuple(vol.shape[1:]),
        "spacing": _float(spacing[0]) if spacing else None,
        "thickness": _float(h.get("SliceThickness")) if hasattr(h, "get") else None,
    }


def meta_mismatch(a: dict, b: dict, s: Settings) -> str | None:
    """Why two scans' metadata keep them apart, or None."""
    if a["size"] != b["size"]:
        return f"image size {a['size'][0]}x{a['size'][1]} vs {b['size'][0]}x{b['size'][1]}"
    for key in s.group_by:
        if key in ("size",):
            continue
        x, y = a[key], b[key]
        if key in ("spacing", "thickness"):
            tol = s.spacing_tol if key == "spacing" else s.thickness_tol
            if x is None or y is None:
                if x != y:
                    return f"{key} known for one scan only"
                continue
            if abs(x - y) > tol * max(x, y):
                return f"{key} {x:g} vs {y:g} (tolerance {tol:.0%})"
        elif x != y:
            return f"{key} {x or '(empty)'!r} vs {y or '(empty)'!r}"
    return None


# ---------------------------------------------------------------- eq. 4.1

def key_dcts(vol: Volume, s: Settings) -> list[np.ndarray]:
    """Low-frequency DCT blocks of the key frames, in rescaled values (HU for CT)."""
    import cv2

    n = vol.shape[0]
    out = []
    for p in s.key_frames:
        i = min(n - 1, int(p * n))
        f = vol.pixels[i].astype(np.float32) * vol.rescale_slope + vol.rescale_intercept
        if f.shape[0] % 2 or f.shape[1] % 2:  # cv2.dct wants even sizes
            f = np.pad(f, ((0, f.shape[0] % 2), (0, f.shape[1] % 2)), mode="edge")
        out.append(cv2.dct(f)[: s.dct_block, : s.dct_block].astype(np.float64))
    return out


def similarity(t1: np.ndarray, t2: np.ndarray) -> float:
    """Thesis eq. 4.1."""
    den = np.sqrt(np.sum(t1 ** 2) * np.sum(t2 ** 2))
    return float(np.sum((t1 - t2) ** 2) / den) if den else (0.0 if np.array_equal(t1, t2) else float("inf"))


def scan_similarity(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Mean S over the key frames."""
    return float(np.mean([similarity(x, y) for x, y in zip(a, b)]))


@dataclass
class GroupPlan:
    members: list[int]  # indices into the volume list
    why: str  # how it was formed, or why a scan is alone
    similarity: dict = field(default_factory=dict)  # "i-j" -> S


def group_volumes(volumes: list[Volume], s: Settings) -> list[GroupPlan]:
    metas = [scan_meta(v) for v in volumes]
    dcts = [key_dcts(v, s) for v in volumes]
    groups: list[GroupPlan] = []
    refused: list[tuple[int, int, str]] = []  # (scan, member it did not match, why)
    for i in range(len(volumes)):
        placed = False
        for g in groups:
            why = None
            for j in g.members:
                why = meta_mismatch(metas[j], metas[i], s)
                if why:
                    why = f"metadata: {why}"
                else:
                    sim = scan_similarity(dcts[j], dcts[i])
                    g.similarity[f"{volumes[j].name} ~ {volumes[i].name}"] = round(sim, 4)
                    if sim > s.epsilon:
                        why = f"S = {sim:.3f} > epsilon {s.epsilon:g} (eq. 4.1)"
                if why:
                    refused.append((i, j, why))
                    break
            if why is None:
                g.members.append(i)
                placed = True
                break
        if not placed:
            groups.append(GroupPlan([i], ""))
    for g in groups:
        if len(g.members) == 1:
            i = g.members[0]
            why = [f"vs {volumes[b if a == i else a].name}: {w}" for a, b, w in refused if i in (a, b)]
            g.why = "archived alone: " + ("; ".join(why) if why else "no other scan to group with")
        else:
            sims = list(g.similarity.values())
            g.why = (f"metadata ({', '.join(s.group_by)}) agree; S {min(sims):.3f}..{max(sims):.3f} <= epsilon "
                     f"{s.epsilon:g}")
    return groups


# ---------------------------------------------------------------- ordering

def stream_order(counts: list[int], how: str, thumbs: list[np.ndarray] | None = None) -> list[tuple[int, int]]:
    """(scan index, slice index) for each stream position.

    sequential: scan after scan. interleave: slices sorted by relative position (k + 0.5) / n, so slice k of every
    scan sits together. similarity: greedy nearest-neighbour tour over frame thumbnails, starting at the first
    frame of the first scan.
    """
    frames = [(i, k) for i, n in enumerate(counts) for k in range(n)]
    if how == "sequential":
        return frames
    if how == "interleave":
        return sorted(frames, key=lambda f: ((f[1] + 0.5) / counts[f[0]], f[0]))
    if how == "similarity":
        if thumbs is None:
            raise ValueError("similarity ordering needs thumbnails")
        x = np.concatenate([t.reshape(t.shape[0], -1) for t in thumbs]).astype(np.float64)
        sq = (x * x).sum(1)
        d = sq[:, None] + sq[None, :] - 2 * x @ x.T
        n = len(frames)
        visited = np.zeros(n, bool)
        cur, tour = 0, [0]
        visited[0] = True
        for _ in range(n - 1):
            row = np.where(visited, np.inf, d[cur])
            cur = int(np.argmin(row))
            visited[cur] = True
            tour.append(cur)
        return [frames[t] for t in tour]
    raise ValueError(f"unknown order {how!r}")


def thumbnails(coded: np.ndarray, size: int = 32) -> np.ndarray:
    """Area-averaged small copies of each frame, for the similarity tour."""
    import cv2

    return np.stack([cv2.resize(f.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA) for f in coded])
