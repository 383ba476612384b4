"""Intertwined archives (thesis chapter 4, floor 3): group similar scans, code each group, restore any scan.

- :mod:`.plan`: settings (ARCHIVE_OPTIONS), grouping by metadata then thesis eq. 4.1, frame ordering
- :mod:`.build`: codec and value-mapping choice, coding through the one round trip, writing the folder
- :mod:`.manifest`: the folder's layout and its readers (manifest, order.txt, patients.txt, headers, checksums)
- :mod:`.restore`: verify and extract (only under --out, never half-written)
- :mod:`.compare`: intertwined vs separate encoding (thesis figs 5.10-5.13), lossless and at equal PSNR
"""
from .build import build_archive
from .manifest import ArchiveError, read_manifest
from .plan import ARCHIVE_OPTIONS, ORDERS, Settings, group_volumes, parse_settings, stream_order
from .restore import extract_archive, verify_archive

__all__ = ["ARCHIVE_OPTIONS", "ORDERS", "ArchiveError", "Settings", "build_archive", "extract_archive",
           "group_volumes", "parse_settings", "read_manifest", "stream_order", "verify_archive"]
