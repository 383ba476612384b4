"""Intertwined archives (thesis chapter 4): group similar scans, code each group as one stream, restore any scan.

- :mod:`.plan`: settings, grouping by metadata then thesis eq. 4.1, frame ordering
- :mod:`.mapping`: the recorded, reversible value mapping of a group (offset/shift or a value table)
- :mod:`.store`: build / verify / list / extract of the archive folder
- :mod:`.compare`: intertwined vs separate encoding (thesis figs 5.10-5.13), lossless and at equal PSNR
"""
from .mapping import ValueMap, plan_mapping
from .plan import ORDERS, Settings, group_volumes, parse_settings, stream_order
from .store import ArchiveError, build_archive, extract_archive, read_manifest, verify_archive

__all__ = ["ORDERS", "ArchiveError", "Settings", "ValueMap", "build_archive", "extract_archive", "group_volumes",
           "parse_settings", "plan_mapping", "read_manifest", "stream_order", "verify_archive"]
