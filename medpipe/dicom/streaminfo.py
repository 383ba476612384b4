"""What a codestream says about itself: the main-header facts a validator checks against the DICOM header
(JPEG 2000 / HTJ2K SIZ, COD, TLM, CAP; JPEG and JPEG-LS frame and scan headers; JPEG XL size header, image metadata
and container boxes; RLE header; deflate length), and the items of an encapsulated Pixel Data value (PS3.5 A.4).
Readers only: nothing here encodes or decodes pixels."""
from __future__ import annotations

import struct
import zlib

from ..errors import CodecSkip, DamagedInput
from ..syntaxes import BASELINE_JPEG
from .syntaxes import DEFLATED_IMAGE_FRAME, J2K_FAMILY, JPEG_FAMILY, JXL_FAMILY, RLE_LOSSLESS

# Every syntax whose frames are ISO 10918-1 / 14495-1 codestreams with a frame header to check: the lossless
# processes and JPEG-LS, and the lossy baseline / extended processes (PS3.5 8.2.1, A.4.1).
JPEG_STREAMS = tuple(JPEG_FAMILY) + tuple(BASELINE_JPEG)

PROGRESSIONS = ("LRCP", "RLCP", "RPCL", "PCRL", "CPRL")


def j2k_info(data: bytes) -> dict:
    """Main-header facts of a JPEG 2000 / HTJ2K codestream (ISO 15444-1 Annex A; 15444-15 for CAP)."""
    if data[:2] != b"\xff\x4f":
        raise DamagedInput("not a JPEG 2000 codestream: no SOC marker")
    info = {"format": "J2K", "tlm": False, "cap": False, "tile_parts": 0}
    pos = 2
    while pos + 4 <= len(data):
        marker, length = struct.unpack(">HH", data[pos:pos + 4])
        segment = data[pos + 4:pos + 2 + length]
        if marker == 0xFF51:  # SIZ, A.5.1
            info["rsiz"] = struct.unpack(">H", segment[:2])[0]
            # the image area is Xsiz - XOsiz by Ysiz - YOsiz (A.5.1, B.2): a damaged offset shrinks it too
            xsiz, ysiz, xosiz, yosiz = struct.unpack(">IIII", segment[2:18])
            info["columns"], info["rows"] = xsiz - xosiz, ysiz - yosiz
            count = struct.unpack(">H", segment[34:36])[0]
            if not count or len(segment) < 36 + 3 * count:
                raise DamagedInput(f"JPEG 2000 SIZ damaged: {len(segment)} bytes for {count} component(s)")
            ssiz = [segment[36 + 3 * c] for c in range(count)]
            info.update(components=count, precision=(ssiz[0] & 0x7F) + 1, signed=bool(ssiz[0] & 0x80),
                        ht=bool(info["rsiz"] & 0x4000))
        elif marker == 0xFF52:  # COD, A.6.1
            info.update(progression=PROGRESSIONS[segment[1]] if segment[1] < 5 else segment[1],
                        layers=struct.unpack(">H", segment[2:4])[0], mct=segment[4], levels=segment[5],
                        reversible=segment[9] == 1, ht_blocks=bool(segment[8] & 0x40))
        elif marker == 0xFF55:  # TLM, A.7.1
            info["tlm"] = True
        elif marker == 0xFF50:  # CAP, 15444-15 A.2
            info["cap"] = True
        elif marker == 0xFF90:  # SOT, A.4.2: walk the tile-parts by their Psot lengths
            psot = struct.unpack(">I", segment[2:6])[0]
            info["tile_parts"] += 1
            if psot == 0:
                break
            pos += psot
            continue
        elif marker == 0xFFD9:
            break
        pos += 2 + length
    return info


# SOFn markers (ISO 10918-1 B.1.1.3, Table B.1): C0-CF except DHT (C4), JPG (C8) and DAC (CC); F7 is JPEG-LS SOF55
# (ISO 14495-1 C.2.2). All share one frame header layout: P, Y, X, Nf, then Nf x (Ci, HiVi, Tqi).
SOF_MARKERS = {m: f"SOF{m - 0xFFC0}" for m in range(0xFFC0, 0xFFD0) if m not in (0xFFC4, 0xFFC8, 0xFFCC)}
SOF_MARKERS.update({0xFFC3: "lossless", 0xFFF7: "JPEG-LS"})


def _jpeg_segment(data: bytes, pos: int) -> tuple[int, bytes]:
    """(marker, segment body) of the marker segment at ``pos`` (B.1.1.4: a 2-byte length that counts itself), or
    DamagedInput naming where the header breaks."""
    marker, length = struct.unpack(">HH", data[pos:pos + 4])
    if marker >> 8 != 0xFF or length < 2 or pos + 2 + length > len(data):
        raise DamagedInput(f"JPEG header damaged: marker segment {marker:04X} at byte {pos} (length {length}) is not "
                           f"a marker or runs past the {len(data)}-byte codestream")
    return marker, data[pos + 4:pos + 2 + length]


def jpeg_info(data: bytes) -> dict:
    """Frame and scan header facts of a JPEG (ISO 10918-1 B.2) or JPEG-LS (ISO 14495-1 C.2) codestream; a marker
    segment cut short or shorter than its content raises DamagedInput (one line), never a Python error."""
    if data[:2] != b"\xff\xd8":
        raise DamagedInput("not a JPEG codestream: no SOI marker")
    info: dict = {"app": []}
    pos = 2
    while pos + 4 <= len(data):
        if data[pos:pos + 2] == b"\xff\xff":  # B.1.1.2: fill bytes may precede a marker
            pos += 1
            continue
        marker, segment = _jpeg_segment(data, pos)
        if 0xFFE0 <= marker <= 0xFFEF:
            info["app"].append(marker - 0xFFE0)
        elif marker in SOF_MARKERS:  # B.2.2 frame header
            count = segment[5] if len(segment) >= 6 else 0
            if len(segment) < 6 + 3 * count or not count:
                raise DamagedInput(f"JPEG frame header ({SOF_MARKERS[marker]}) damaged: {len(segment)} bytes for "
                                   f"{count} component(s)")
            precision, rows, columns, count = struct.unpack(">BHHB", segment[:6])
            info.update(process=SOF_MARKERS[marker], precision=precision, rows=rows, columns=columns,
                        components=count)
        elif marker == 0xFFDA:  # B.2.3 SOS: Ns, Ns x (Csj, Tdj/Taj), then Ss Se Ah/Al
            ns = segment[0] if segment else 0
            if len(segment) < 4 + 2 * ns or not ns:
                raise DamagedInput(f"JPEG scan header (SOS) damaged: {len(segment)} bytes for {ns} component(s)")
            ss, se, ahal = segment[1 + 2 * ns:4 + 2 * ns]
            info["entropy_bytes"] = len(data) - (pos + 4 + len(segment))  # the scans after the first SOS
            if info.get("process") == "JPEG-LS":
                info.update(near=ss, interleave=se, point_transform=ahal & 0x0F)
            else:
                info.update(predictor=ss, point_transform=ahal & 0x0F)
            break
        pos += 2 + len(segment) + 2
    return info


class _Bits:
    """ISO 18181-1 bit reader: least significant bit first."""

    def __init__(self, data: bytes):
        self.value, self.pos = int.from_bytes(data, "little"), 0

    def u(self, n: int) -> int:
        v = (self.value >> self.pos) & ((1 << n) - 1)
        self.pos += n
        return v

    def u32(self, *dist) -> int:  # each distribution: an int constant or (bits, offset)
        d = dist[self.u(2)]
        return d if isinstance(d, int) else d[1] + self.u(d[0])


def jxl_boxes(data: bytes) -> dict[str, bytes]:
    """The boxes of a JPEG XL container (ISO 18181-2): type -> payload; the codestream under 'jxlc' (jxlp parts
    joined, their 4-byte index dropped)."""
    boxes: dict[str, bytes] = {}
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        head = 8
        if size == 1:
            size, head = struct.unpack(">Q", data[pos + 8:pos + 16])[0], 16
        end = len(data) if size == 0 else pos + size
        name, payload = kind.decode("latin-1"), data[pos + head:end]
        if name == "jxlp":
            boxes["jxlc"] = boxes.get("jxlc", b"") + payload[4:]
        else:
            boxes[name] = payload
        pos = end
    return boxes


def jxl_info(data: bytes) -> dict:
    """Header facts of a JPEG XL codestream, bare or in its container (ISO 18181-1 D.2 SizeHeader, A.6
    ImageMetadata; ISO 18181-2 boxes and the jxll level box)."""
    info: dict = {"format": "JXL", "container": False, "level": 5}
    if data[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n":
        boxes = jxl_boxes(data)
        data = boxes.get("jxlc", b"")
        info.update(container=True, level=boxes["jxll"][0] if "jxll" in boxes else 5)
    if data[:2] != b"\xff\x0a":
        raise DamagedInput("not a JPEG XL codestream: signature FF0A missing")
    bits = _Bits(data[2:64])
    size = (9, 0), (13, 0), (18, 0), (30, 0)
    ratios = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}

    def size_header():
        small = bits.u(1)
        rows = 8 * (bits.u(5) + 1) if small else bits.u32(*size) + 1
        ratio = bits.u(3)
        if ratio:
            num, den = ratios[ratio]
            return rows, rows * num // den
        return rows, (8 * (bits.u(5) + 1) if small else bits.u32(*size) + 1)

    info["rows"], info["columns"] = size_header()
    if bits.u(1):  # all_default: 8-bit, XYB
        return info | {"precision": 8, "xyb": True}
    if bits.u(1):  # extra_fields
        bits.u(3)  # orientation
        if bits.u(1):
            size_header()  # intrinsic size
        if bits.u(1) or bits.u(1):
            return info  # preview or animation headers: not parsed (medpipe writes neither)
    if bits.u(1):
        return info | {"float": True}
    info["precision"] = bits.u32(8, 10, 12, (6, 1))
    bits.u(1)  # modular_16_bit_buffer_sufficient
    if bits.u32(0, 1, (4, 2), (12, 1)):
        return info | {"extra_channels": True}
    info["xyb"] = bool(bits.u(1))
    if bits.u(1):  # colour encoding all_default: sRGB
        return info | {"colour": "RGB"}
    bits.u(1)  # want_icc
    info["colour"] = {0: "RGB", 1: "grey", 2: "XYB"}.get(bits.u32(0, 1, (4, 2), (6, 18)), "unknown")
    return info


def codestream_info(uid: str, data: bytes) -> dict:
    """Facts a validator checks against the header: precision, signedness, components, progression, markers. A
    header too short for what it announces raises DamagedInput (one line), whatever the format."""
    try:
        return _codestream_info(uid, data)
    except (struct.error, IndexError, ValueError, KeyError, zlib.error) as exc:
        raise DamagedInput(f"codestream header damaged or truncated ({type(exc).__name__}: {exc})") from None


def _codestream_info(uid: str, data: bytes) -> dict:
    if uid in J2K_FAMILY:
        return j2k_info(data)
    if uid in JPEG_STREAMS:
        return jpeg_info(data)
    if uid in JXL_FAMILY:
        return jxl_info(data)
    if uid == RLE_LOSSLESS:  # PS3.5 G.5: 64-byte header, 16 little-endian uint32: segment count, offsets
        header = struct.unpack("<16I", data[:64])
        return {"format": "RLE", "segments": header[0], "offsets": [o for o in header[1:] if o]}
    if uid == DEFLATED_IMAGE_FRAME:
        return {"format": "deflate", "length": len(zlib.decompress(data, -zlib.MAX_WBITS))}
    raise CodecSkip(f"no codestream reader for transfer syntax {uid}")


ITEM, SEQUENCE_DELIMITER = (0xFFFE, 0xE000), (0xFFFE, 0xE0DD)


def read_items(value: bytes) -> list[tuple[int, bytes]]:
    """The items of an encapsulated Pixel Data value (PS3.5 A.4, explicit little endian): (position of the item
    tag, item value) for each, the Basic Offset Table first; stops at the Sequence Delimitation Item."""
    items, pos = [], 0
    while pos + 8 <= len(value):
        group, element, length = struct.unpack("<HHI", value[pos:pos + 8])
        if (group, element) == SEQUENCE_DELIMITER:
            break
        if (group, element) != ITEM:
            raise DamagedInput(f"encapsulated Pixel Data: ({group:04X},{element:04X}) at byte {pos} where an item "
                               "tag (FFFE,E000) should be")
        if pos + 8 + length > len(value):
            raise DamagedInput(f"encapsulated Pixel Data: item at byte {pos} runs past the end")
        items.append((pos, value[pos + 8:pos + 8 + length]))
        pos += 8 + length
    return items
