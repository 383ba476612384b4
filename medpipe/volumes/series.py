"""Series as a radiologist sees them: which DICOM image files make one volume, in which order (headers only).

1. Files are grouped by StudyInstanceUID + SeriesInstanceUID. Files without SeriesInstanceUID are grouped by
   study, SeriesNumber, frame of reference, orientation and size (both study and SeriesNumber must be present;
   otherwise a file stands alone). A multi-frame file is a volume by itself.
2. Copies of one SOP Instance (e.g. the same image in two transfer syntaxes) are one slice: the uncompressed or
   lossless copy is read, the others are kept as alternates should it fail to decode.
3. A series that mixes image sizes, sample layouts or orientations is split.
4. A series holding several acquisitions is split by AcquisitionNumber (or temporal position, echo, trigger time)
   when positions repeat and that attribute explains the repeats (each of its values a stack of 2 or more slices
   without repeats), or when the acquisitions' positions interleave.
5. Positions closer than ``duplicate_tolerance`` x the slice spacing are the same slice: the first (by
   InstanceNumber, then file name) is kept, the others left out.
6. Slices are ordered along the slice normal; without positions by InstanceNumber, else by file name.

Every grouping, split and drop is an event ({"kind", "message"}): printed once and kept in results.json.
"""
from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ..syntaxes import NATIVE, TABLE
from .dicom import orientation, slice_position, transfer_syntax
from .structure import rows_held

SPLIT_ATTRIBUTES = ("AcquisitionNumber", "TemporalPositionIdentifier", "EchoNumbers", "TriggerTime")
ORIENTATION_TOLERANCE = 1e-3  # direction cosines closer than this are one orientation
MIN_POSITION_STEP = 1e-4  # mm: positions closer than this are equal whatever the tolerance
NATIVE_FIRST = NATIVE
LOSSLESS_COMPRESSED = tuple(u for u, r in TABLE.items() if r.encapsulated and r.lossless is True)


def natural_key(name: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def int_or_none(value) -> int | None:
    """An IS/US value as int; None for absent, empty or malformed values (real files carry all three)."""
    try:
        return int(str(value).strip()) if value is not None and str(value).strip() != "" else None
    except (TypeError, ValueError):
        try:
            return int(float(str(value)))
        except (TypeError, ValueError):
            return None


@dataclass(eq=False)
class Member:
    """One image file of a series: its path and header (pixel data deferred)."""

    path: Path
    ds: object

    @cached_property
    def position(self) -> float | None:
        return slice_position(self.ds)

    @cached_property
    def instance(self) -> int | None:
        return int_or_none(self.ds.get("InstanceNumber"))

    @property
    def frames(self) -> int:
        return int_or_none(self.ds.get("NumberOfFrames")) or 1

    def order_key(self):
        return (self.instance if self.instance is not None else 1 << 40, natural_key(str(self.path)))


@dataclass
class Group:
    """The files of one volume, in slice order, and what was done to make it."""

    members: list[Member]
    label: str
    events: list[dict] = field(default_factory=list)
    alternates: dict[Path, list[Path]] = field(default_factory=dict)  # kept file -> other copies of its SOP

    @property
    def paths(self) -> list[Path]:
        return [m.path for m in self.members]

    @property
    def first(self):
        return self.members[0].ds


def event(kind: str, message: str) -> dict:
    return {"kind": kind, "message": message}


def series_label(ds, paths: list[Path]) -> str:
    folder = os.path.commonpath([str(p.parent) for p in paths]) if paths else "?"
    number = ds.get("SeriesNumber", "")
    desc = str(ds.get("SeriesDescription", "") or "").strip()
    name = f"series {number}" if number not in ("", None) else "series"
    return f"{name}{f' {desc!r}' if desc else ''} in {folder}"


def series_key(member: Member) -> tuple:
    """What puts a file in a series (rule 1)."""
    ds = member.ds
    study = str(ds.get("StudyInstanceUID", "") or "")
    if member.frames > 1:
        return ("multiframe", str(ds.get("SOPInstanceUID", "") or member.path))
    series = str(ds.get("SeriesInstanceUID", "") or "")
    if series:
        return ("series", study, series)
    number = int_or_none(ds.get("SeriesNumber"))
    if study and number is not None:
        iop = orientation(ds)
        return ("no-series-uid", study, number, str(ds.get("FrameOfReferenceUID", "") or ""),
                tuple(round(v, 2) for v in iop) if iop else None, int_or_none(ds.get("Rows")),
                int_or_none(ds.get("Columns")))
    return ("alone", str(member.path))


def assemble(members: list[Member], tolerance: float = 0.1) -> list[Group]:
    """Image files -> volumes (rules 1-6), in a stable order."""
    buckets: dict[tuple, list[Member]] = defaultdict(list)
    for m in sorted(members, key=lambda m: natural_key(str(m.path))):
        buckets[series_key(m)].append(m)
    groups: list[Group] = []
    for key, bucket in buckets.items():
        label = series_label(bucket[0].ds, [m.path for m in bucket])
        events = []
        if key[0] == "no-series-uid" and len(bucket) > 1:
            events.append(event("grouped", f"{label}: {len(bucket)} files without SeriesInstanceUID grouped into "
                                           f"one series (same study, SeriesNumber {key[2]}, frame of reference, "
                                           "orientation and size)"))
        bucket, alternates, copy_events = merge_copies(bucket, label)
        events += copy_events
        for part, part_events in split_series(bucket, label, tolerance):
            kept, drop_events = drop_duplicates(part, label, tolerance)
            ordered, sort_event = order_slices(kept, label)
            group = Group(ordered, label, events + part_events + drop_events + ([sort_event] if sort_event else []))
            group.alternates = {m.path: alternates[m.path] for m in ordered if m.path in alternates}
            groups.append(group)
    return groups


def _copy_rank(m: Member):
    ts = transfer_syntax(m.ds)
    rank = 0 if ts in NATIVE_FIRST else 1 if ts in LOSSLESS_COMPRESSED else 2
    return rank, natural_key(str(m.path))


def merge_copies(members: list[Member], label: str) -> tuple[list[Member], dict[Path, list[Path]], list[dict]]:
    """Rule 2: one slice per SOP Instance UID; returns (kept, {kept path: other copies}, events)."""
    by_sop: dict[str, list[Member]] = defaultdict(list)
    for m in members:
        by_sop[str(m.ds.get("SOPInstanceUID", "") or f"no-uid:{m.path}")].append(m)
    kept, alternates, events = [], {}, []
    for uid, copies in by_sop.items():
        copies = sorted(copies, key=_copy_rank)
        kept.append(copies[0])
        if len(copies) > 1:
            alternates[copies[0].path] = [c.path for c in copies[1:]]
            others = ", ".join(f"{c.path.name} ({transfer_syntax(c.ds) or '?'})" for c in copies[1:])
            events.append(event("duplicate", f"{label}: {len(copies)} files hold one SOP Instance ({uid}): one "
                                             f"slice, read from {copies[0].path.name} "
                                             f"({transfer_syntax(copies[0].ds) or '?'}); copies: {others}"))
    kept.sort(key=lambda m: natural_key(str(m.path)))
    return kept, alternates, events


def _geometry(m: Member) -> tuple:
    ds = m.ds
    held = rows_held(ds)  # a Rows that contradicts the Pixel Data: grouped by what the data holds, named damaged
    return (held or int_or_none(ds.get("Rows")), int_or_none(ds.get("Columns")), int_or_none(ds.get("SamplesPerPixel")) or 1,
            int_or_none(ds.get("BitsAllocated")), int_or_none(ds.get("PixelRepresentation")) or 0)


def _describe_geometry(geom: tuple, iop) -> str:
    rows, cols, spp, bits, rep = geom
    text = f"{rows}x{cols}" + (f"x{spp}" if spp > 1 else "") + f" {bits}-bit" + (" signed" if rep else "")
    return text + (f" orientation {[round(v, 3) for v in iop]}" if iop else "")


def split_geometry(members: list[Member]) -> list[tuple[tuple, list | None, list[Member]]]:
    """Rule 3: (size/layout, orientation, members) per stackable geometry; orientations equal within 1e-3."""
    parts: list[tuple[tuple, list | None, list[Member]]] = []
    for m in members:
        geom, iop = _geometry(m), orientation(m.ds)
        for g, o, ms in parts:
            if g == geom and ((o is None and iop is None) or (o is not None and iop is not None and
                                                              max(abs(a - b) for a, b in zip(o, iop))
                                                              < ORIENTATION_TOLERANCE)):
                ms.append(m)
                break
        else:
            parts.append((geom, iop, [m]))
    return parts


def slice_spacing(positions: list[float]) -> float | None:
    """The typical step between distinct positions: the median of the gaps that are not (near-)repeats, i.e.
    larger than 1/1000 of the extent (so three acquisitions at the same positions do not make it 0)."""
    ps = sorted(positions)
    if len(ps) < 2:
        return None
    extent = ps[-1] - ps[0]
    gaps = [b - a for a, b in zip(ps, ps[1:]) if b - a > max(MIN_POSITION_STEP, 1e-3 * extent)]
    return float(np.median(gaps)) if gaps else None


def _same_position_limit(positions: list[float], tolerance: float) -> float:
    spacing = slice_spacing(positions)
    return max(MIN_POSITION_STEP, tolerance * spacing) if spacing else MIN_POSITION_STEP


def _has_repeats(positions: list[float], limit: float) -> bool:
    ps = sorted(positions)
    return any(b - a < limit for a, b in zip(ps, ps[1:]))


def _split_by(members: list[Member], attr: str) -> dict[str, list[Member]]:
    parts: dict[str, list[Member]] = defaultdict(list)
    for m in members:
        parts[str(m.ds.get(attr, "") if m.ds.get(attr, "") is not None else "")].append(m)
    return dict(sorted(parts.items(), key=lambda kv: natural_key(kv[0])))


def _interleaved(parts: dict[str, list[Member]], limit: float) -> bool:
    spans = [(min(m.position for m in ms), max(m.position for m in ms)) for ms in parts.values()]
    return any(max(a[0], b[0]) < min(a[1], b[1]) - limit for i, a in enumerate(spans) for b in spans[i + 1:])


def split_series(members: list[Member], label: str, tolerance: float) -> list[tuple[list[Member], list[dict]]]:
    """Rules 3 and 4: stackable parts of one series, each with the events that made it.

    Single slices that each have their own orientation but the same size (a rotating projection, a 3-plane
    localizer) stay one stack in InstanceNumber order: split, each would be a 1-slice volume.
    """
    if len(members) < 2 or members[0].frames > 1:
        return [(members, [])]
    by_geom: dict[tuple, list[tuple[list | None, list[Member]]]] = defaultdict(list)
    for g, o, ms in split_geometry(members):
        by_geom[g].append((o, ms))
    parts: list[tuple[str, list[Member]]] = []
    events: list[dict] = []
    for g, plist in by_geom.items():
        if len(plist) > 1 and all(len(ms) == 1 for _, ms in plist):
            parts.append((f"{_describe_geometry(g, None)} in {len(plist)} orientations x1", [ms[0] for _, ms in plist]))
            events.append(event("grouped", f"{label}: {len(plist)} single slices, each in its own orientation "
                                           "(projections or localizers), kept as one stack in InstanceNumber order"))
        else:
            parts += [(f"{_describe_geometry(g, o)} x{len(ms)}", ms) for o, ms in plist]
    if len(parts) > 1:
        kinds = ", ".join(text for text, _ in parts)
        events.insert(0, event("split", f"{label}: slices differ in size/orientation ({kinds}); split into "
                                        f"{len(parts)} volumes"))
    out = []
    for _, part in parts:
        for sub, sub_events in split_acquisitions(part, label, tolerance):
            out.append((sub, events + sub_events))
    return out


def one_orientation(members: list[Member]) -> bool:
    """True when every slice has the same (known) orientation, so positions along one normal order them."""
    first = orientation(members[0].ds)
    if first is None:
        return False
    for m in members[1:]:
        iop = orientation(m.ds)
        if iop is None or max(abs(a - b) for a, b in zip(first, iop)) >= ORIENTATION_TOLERANCE:
            return False
    return True


def split_acquisitions(members: list[Member], label: str, tolerance: float) -> list[tuple[list[Member], list]]:
    """Rule 4: several acquisitions (or time points, echoes, phases) in one series become one volume each when
    their positions repeat, or (acquisitions) interleave."""
    if len(members) < 2 or any(m.position is None for m in members) or not one_orientation(members):
        return [(members, [])]
    positions = [m.position for m in members]
    limit = _same_position_limit(positions, tolerance)  # type: ignore[arg-type]
    repeats = _has_repeats(positions, limit)  # type: ignore[arg-type]
    # an attribute explains the repeats when every one of its values is a stack of its own: at least 2 slices,
    # no repeat inside (per-rotation AcquisitionNumbers of axial CT give 1-slice parts: not an explanation)
    candidates = [(attr, _split_by(members, attr)) for attr in SPLIT_ATTRIBUTES]
    candidates = [(attr, parts) for attr, parts in candidates
                  if len(parts) > 1 and all(len(ms) > 1 for ms in parts.values())]
    chosen = None
    if repeats:
        chosen = next(((a, p) for a, p in candidates
                       if all(not _has_repeats([m.position for m in ms], limit) for ms in p.values())),  # type: ignore
                      None)
    elif candidates and candidates[0][0] == "AcquisitionNumber" and _interleaved(candidates[0][1], limit):
        chosen = candidates[0]
    if chosen is None:
        return [(members, [])]
    attr, parts = chosen
    sizes = ", ".join(f"{attr} {k or '(none)'}: {len(v)}" for k, v in parts.items())
    msg = (f"{label}: slice positions {'repeat' if repeats else 'interleave'} across {len(parts)} values of "
           f"{attr}; split into {len(parts)} volumes ({sizes})")
    said = event("split", msg)  # one event shared by the parts: printed once, kept by each volume
    return [(ms, [said]) for ms in parts.values()]


def drop_duplicates(members: list[Member], label: str, tolerance: float) -> tuple[list[Member], list[dict]]:
    """Rule 5: at positions closer than tolerance x spacing keep the first slice (InstanceNumber, file name)."""
    if len(members) < 2 or any(m.position is None for m in members) or members[0].frames > 1 \
            or not one_orientation(members):
        return members, []
    positions = [m.position for m in members]
    spacing = slice_spacing(positions)  # type: ignore[arg-type]
    limit = _same_position_limit(positions, tolerance)  # type: ignore[arg-type]
    by_position = sorted(members, key=lambda m: (m.position, m.order_key()))
    clusters: list[list[Member]] = []
    for m in by_position:
        if clusters and m.position - clusters[-1][0].position < limit:  # type: ignore[operator]
            clusters[-1].append(m)
        else:
            clusters.append([m])
    kept, events = [], []
    for cluster in clusters:
        cluster.sort(key=Member.order_key)
        kept.append(cluster[0])
        for m in cluster[1:]:
            gap = abs(m.position - cluster[0].position)  # type: ignore[operator]
            why = (f"{gap:.3g} mm apart, under {tolerance:g} x the {spacing:.3g} mm slice spacing" if spacing
                   else f"{gap:.3g} mm apart")
            events.append(event("dropped", f"{m.path}: same slice position as {cluster[0].path.name} ({why}) in "
                                           f"{label}; left out as a duplicate"))
    return kept, events


def order_slices(members: list[Member], label: str) -> tuple[list[Member], dict | None]:
    """Rule 6: along the slice normal; InstanceNumber, then file name, when positions are missing."""
    if len(members) < 2:
        return members, None
    if all(m.position is not None for m in members) and one_orientation(members):
        return sorted(members, key=lambda m: (m.position, m.order_key())), None
    missing = sum(m.position is None for m in members)
    if not missing and all(m.instance is not None for m in members):  # several orientations: said when grouped
        return sorted(members, key=Member.order_key), None
    if all(m.instance is not None for m in members):
        return (sorted(members, key=Member.order_key),
                event("sorted", f"{label}: {missing} of {len(members)} slices have no ImagePositionPatient/"
                                "ImageOrientationPatient; ordered by InstanceNumber"))
    return (sorted(members, key=lambda m: natural_key(str(m.path))),
            event("sorted", f"{label}: slices have neither positions nor InstanceNumber on every file; ordered "
                            "by file name"))


def sort_slices(headers: list, paths: list[Path]) -> list[int]:
    """Indices of ``headers`` in slice order (rule 6), for callers that hold headers of one series."""
    members = [Member(p, ds) for p, ds in zip(paths, headers)]
    ordered, _ = order_slices(members, "")
    index = {id(m): i for i, m in enumerate(members)}
    return [index[id(m)] for m in ordered]
