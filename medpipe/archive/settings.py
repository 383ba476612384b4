"""Archive settings: every key of a preset's ``archive:`` mapping (ARCHIVE_OPTIONS, the one options mechanism)
and the frozen :class:`Settings` a build runs with."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import PresetError
from ..options import Option, check_section, did_you_mean
from .candidates import pick_candidates

ORDERS = ("sequential", "interleave", "similarity")
GROUP_KEYS = ("modality", "body_part", "protocol", "size", "spacing", "thickness")


@dataclass(frozen=True)
class Settings:
    """What a build does; every field is a key of a preset's ``archive:`` mapping."""

    codec: dict = field(default_factory=lambda: {"codec": "auto"})  # a codec entry as in 'codecs:', or auto
    candidates: tuple = ()  # auto: the candidates tried (names from candidates.CANDIDATES); () = all
    effort: int = 7  # JPEG XL encoder effort of every JPEG XL candidate
    max_group: int = 4  # scans per group at most (memory: a build holds one group's volumes)
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


ARCHIVE_OPTIONS: dict[str, Option] = {
    "codec": Option((str, dict), "auto", "'auto' = try every lossless candidate on each group and keep the "
                                         "smallest; or one codec entry, e.g. {codec: x265, crf: 22} (lossy)"),
    "candidates": Option((list, str), [], "auto: the candidates to try (default all), e.g. [jpegxl-dicom, "
                                          "jpegxl-3slices]", item=str),
    "effort": Option(int, 7, "JPEG XL encoder effort of the JPEG XL candidates (1-10; 9 is about 5x slower for "
                             "1-2 per cent fewer bytes)", range=(1, 10)),
    "max_group": Option(int, 4, "scans per group at most (a build holds one group's volumes in memory)",
                        range=(1, 64)),
    "order": Option(str, "sequential", "frame order in the stream", ORDERS),
    "group_by": Option((list, str), list(GROUP_KEYS), "metadata keys scans must share (image size is always "
                                                      "required)", item=str),
    "spacing_tol": Option((int, float), 0.2, "allowed relative pixel-spacing difference (0.2 = 20 %)",
                          range=(0, None)),
    "thickness_tol": Option((int, float), 0.5, "allowed relative slice-thickness difference", range=(0, None)),
    "epsilon": Option((int, float), 0.4, "similarity threshold of thesis eq. 4.2 (S <= epsilon groups two scans)",
                      range=(0, None)),
    "key_frames": Option(list, [0.25, 0.5, 0.75], "relative slice positions (0..1) whose DCTs are compared",
                         item=(int, float)),
    "dct_block": Option(int, 32, "DCT coefficients kept per axis (low frequencies)", range=(1, 512)),
    "value_table": Option(bool, True, "allow a reversible value table to fit wide values into a 12-bit lossless "
                                      "codec"),
    "harmonize": Option(bool, True, "code stored + rescale intercept (when slope is 1), so scans of different "
                                    "scanners share values"),
    "compare": Option(bool, False, "also encode every scan separately and write the comparison results.csv"),
}
SETTING_HELP = {k: o.help for k, o in ARCHIVE_OPTIONS.items()}


def parse_settings(data: dict | None, where: str = "archive") -> Settings:
    """Validate an ``archive:`` mapping against ARCHIVE_OPTIONS (unknown keys get a close match) -> Settings."""
    opts = check_section(data, ARCHIVE_OPTIONS, where)
    codec = opts["codec"]
    codec = {"codec": codec} if isinstance(codec, str) else dict(codec)
    if "codec" not in codec:
        raise PresetError(f"{where}.codec: expected a codec name or a mapping with 'codec', e.g. "
                          "{codec: x265, lossless: true}")
    keys = [opts["group_by"]] if isinstance(opts["group_by"], str) else opts["group_by"]
    for k in keys:
        if k not in GROUP_KEYS:
            raise PresetError(f"{where}.group_by: unknown key '{k}'{did_you_mean(str(k), GROUP_KEYS)}")
    if not opts["key_frames"] or not all(0 <= x <= 1 for x in opts["key_frames"]):
        raise PresetError(f"{where}.key_frames: expected relative positions in 0..1, got {opts['key_frames']!r}")
    names = [opts["candidates"]] if isinstance(opts["candidates"], str) else list(opts["candidates"])
    pick_candidates(names, f"{where}.candidates")
    return Settings(codec=codec, candidates=tuple(names), effort=opts["effort"], max_group=opts["max_group"],
                    order=opts["order"], group_by=tuple(keys), spacing_tol=float(opts["spacing_tol"]),
                    thickness_tol=float(opts["thickness_tol"]), epsilon=float(opts["epsilon"]),
                    key_frames=tuple(float(x) for x in opts["key_frames"]), dct_block=opts["dct_block"],
                    value_table=opts["value_table"], harmonize=opts["harmonize"], compare=opts["compare"])
