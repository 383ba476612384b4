"""Grouping (metadata, then thesis eq. 4.1) and frame ordering.

Grouping: the scans of one group are tried together (one video stream, or the same position of each scan as the
channels of one JPEG XL image). Two scans may share a group when their metadata agree (``group_by`` keys; image
size always, since a stream has one frame size) and the transform-domain similarity of key frames at matching relative positions
is small enough: S = sum|T1-T2|^2 / sqrt(sum|T1|^2 sum|T2|^2) <= epsilon (thesis eq. 4.1/4.2), T = the low-frequency
DCT block of a frame in rescaled (HU) values. A scan joins the first group whose every member it matches; one
that matches none is archived alone and the reason is recorded. A group holds at most ``max_group`` scans, so a
build holds at most that many volumes in memory, whatever the number of scans.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


# ---------------------------------------------------------------- metadata

def _float(v) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def scan_meta(vol) -> dict:
    h = vol.headers[0] if vol.headers else {}
    spacing = h.get("PixelSpacing") if hasattr(h, "get") else None
    return {
        "modality": (vol.modality or "").strip().upper(),
        "body_part": (vol.body_part or "").strip().upper(),
        "protocol": (vol.description or "").strip().upper(),
        "size": tuple(vol.shape[1:]),
        "spacing": _float(spacing[0]) if spacing else None,
        "thickness": _float(h.get("SliceThickness")) if hasattr(h, "get") else None,
        "colour": bool(vol.color),
    }


def meta_mismatch(a: dict, b: dict, s) -> str | None:
    """Why two scans' metadata keep them apart, or None."""
    if a.get("colour") != b.get("colour"):  # a colour scan's own JPEG frames, not its grey slices, are archived
        return "one scan is colour (archived from its own JPEG frames), the other grey"
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

def key_dcts(vol, s) -> list[np.ndarray]:
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


@dataclass
class ScanFacts:
    """What grouping needs of a scan, kept while its pixels are not (bounded memory)."""

    name: str
    meta: dict
    dcts: list


def scan_facts(vol, s) -> ScanFacts:
    return ScanFacts(vol.name, scan_meta(vol), key_dcts(vol, s))


def group_volumes(volumes: list, s) -> list[GroupPlan]:
    return group_scans([scan_facts(v, s) for v in volumes], s)


def group_scans(facts: list[ScanFacts], s) -> list[GroupPlan]:
    """Scans -> groups of at most ``s.max_group`` (each plan lists indices into ``facts``)."""
    groups: list[GroupPlan] = []
    refused: list[tuple[int, int, str]] = []  # (scan, member it did not match, why)
    for i, f in enumerate(facts):
        placed = False
        for g in groups:
            if len(g.members) >= s.max_group:
                refused.append((i, g.members[0], f"group of {g.members[0] + 1} is full (max_group {s.max_group})"))
                continue
            why = None
            for j in g.members:
                why = meta_mismatch(facts[j].meta, f.meta, s)
                if why:
                    why = f"metadata: {why}"
                else:
                    sim = scan_similarity(facts[j].dcts, f.dcts)
                    g.similarity[f"{facts[j].name} ~ {f.name}"] = round(sim, 4)
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
            why = [f"vs {facts[b if a == i else a].name}: {w}" for a, b, w in refused if i in (a, b)]
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


def scan_frames(frames: np.ndarray, order: list, scan_index: int, n: int) -> np.ndarray:
    """Frames of one scan, back in slice order, from a stream in ``order`` ((scan, slice) per position)."""
    pos = np.full(n, -1, np.int64)
    for p, (i, k) in enumerate(order):
        if i == scan_index:
            pos[k] = p
    return frames[pos]
