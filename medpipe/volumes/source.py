"""VolumeSource: a small, picklable description of one volume to load (found by :mod:`discover` from headers
alone). ``load()`` reads it; an archive loads one source at a time to keep memory bounded, and a remote worker
re-reads a volume from its source."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..files import safe_component
from .volume import Volume

KINDS = ("dicom", "png_folder", "picture", "nifti", "nrrd", "metaimage", "numpy")


@dataclass
class VolumeSource:
    """What to read for one volume, and the cheap facts a listing shows before any pixel is read."""

    kind: str  # one of KINDS
    paths: list[Path]  # DICOM: the files in slice order; others: the one file (or the PNG folder)
    name: str  # a safe file-name component, unique within one discovery
    options: dict = field(default_factory=dict)  # input options (plain dict; defaults from INPUT_OPTIONS)
    modality: str = ""
    shape: tuple | None = None  # (slices, rows, cols) when the headers tell
    description: str = ""
    label: str = ""  # what messages call it (e.g. "series 3 'T1 SAG' in /data/mr")
    source: Path | None = None  # the folder or file recorded as Volume.source
    member: str = ""  # .npz: the array to read
    events: list[dict] = field(default_factory=list)  # what discovery did (grouped, split, duplicate, ...)
    alternates: dict[Path, list[Path]] = field(default_factory=dict)  # DICOM: other copies of a SOP Instance

    def load(self, errors: list[str] | None = None) -> Volume:
        """Read the pixels. Raises InputError when the volume cannot be read (or is refused as damaged);
        messages about parts left out (``on_damage: drop_slice``) are appended to ``errors``."""
        if self.kind not in KINDS:
            raise InputError(f"{self.label or self.name}: unknown input kind {self.kind!r}")
        source = self.source or (self.paths[0] if len(self.paths) == 1 else self.paths[0].parent)
        if self.kind == "dicom":
            from .dicom_volume import load_dicom_series

            vol = load_dicom_series(self.paths, self.name, source, self.options, alternates=self.alternates,
                                    events=self.events, label=self.label, errors=errors)
        elif self.kind == "png_folder":
            from .pictures import load_png_folder

            vol = load_png_folder(self.paths[0], self.name, self.options)
        elif self.kind == "picture":
            from .pictures import load_picture

            vol = load_picture(self.paths[0], self.name, self.options)
        elif self.kind == "numpy":
            from .research import load_numpy

            vol = load_numpy(self.paths[0], self.name, self.options, self.member)
        else:
            from .research import LOADERS

            vol = LOADERS[self.kind](self.paths[0], self.name, self.options)
        if self.kind != "dicom":
            vol.events = list(self.events) + vol.events
        vol.name = safe_component(self.name or vol.name, "volume")
        vol.origin = self
        return vol
