"""Archives (floor 3): the smallest sealed lossless store of a collection of scans, restored bit-exact as DICOM.

- :mod:`.settings`: ARCHIVE_OPTIONS and Settings (what a build does)
- :mod:`.plan`: grouping by metadata then thesis eq. 4.1, frame ordering
- :mod:`.candidates`: the codings tried on each group (a list of data), trying them, choosing the smallest
- :mod:`.headers`: the compact header store (every original header byte, stored once plus differences, xz)
- :mod:`.index`: the sealed index (SEAL, index.json, names, every file's checksum, order.txt, patients.txt)
- :mod:`.dicomfile`: restored DICOM files (native, encapsulated JPEG XL / JPEG-LS / HTJ2K, lossy derived)
- :mod:`.build`: survey, group, try candidates, write, seal, verify
- :mod:`.verify` / :mod:`.extract`: every check, then restore only under --out, never half-written
- :mod:`.compare`: intertwined vs separate encoding (thesis figs 5.10-5.13), lossless and at equal PSNR
- :mod:`.presets`: an archive preset's run (the runner calls it)
"""
from .build import build_archive
from .candidates import CANDIDATE_NAMES, CANDIDATES, Candidate
from .extract import extract_archive
from .index import ArchiveError, open_archive
from .plan import group_volumes, stream_order
from .settings import ARCHIVE_OPTIONS, ORDERS, Settings, parse_settings
from .verify import verify_archive

__all__ = ["ARCHIVE_OPTIONS", "CANDIDATES", "CANDIDATE_NAMES", "Candidate", "ORDERS", "ArchiveError", "Settings",
           "build_archive", "extract_archive", "group_volumes", "open_archive", "parse_settings", "stream_order",
           "verify_archive"]
