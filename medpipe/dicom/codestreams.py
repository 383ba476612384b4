"""The Pixel Data value of encapsulated frames (PS3.5 A.4). The frames themselves are coded by the frame coders,
:mod:`medpipe.codecs.frames`, one per transfer-syntax family of the table (:mod:`medpipe.syntaxes`)."""
from __future__ import annotations


def encapsulate_frames(codestreams: list[bytes], offset_table: str = "basic"
                       ) -> tuple[bytes, bytes | None, bytes | None]:
    """Pixel Data value for `codestreams` (one per frame), per PS3.5 A.4: one fragment per frame (required for
    RLE, A.4.2, and Deflated Image Frame, A.4.13; chosen for the others, where a frame may span fragments), every
    item of even length (one NULL pad byte, after EOI/EOC or the deflate stream), and either a Basic Offset Table
    with one offset per frame ("basic") or an empty one with the Extended Offset Table and its lengths
    ("extended": returned as the values of (7FE0,0001) and (7FE0,0002); A.4: the Basic Offset Table shall then
    be empty), or ("empty") an empty Basic Offset Table, as the video syntaxes require (8.2.5-8.2.8: the whole
    stream is one frame). Returns (value, extended table or None, lengths or None)."""
    from pydicom.encaps import encapsulate, encapsulate_extended

    frames = [bytes(c) for c in codestreams]
    if offset_table == "extended":
        return encapsulate_extended(frames)
    return encapsulate(frames, fragments_per_frame=1, has_bot=offset_table != "empty"), None, None
