"""Header rules for DICOM medpipe writes or restores: fitting stored-value attributes to coded values, and the
derived-image rules (PS3.3 C.7.6.1.1.2-5: lossy compression, an offset copy or a grey conversion makes a new
derived instance; a lossless transcode keeps the instance and touches nothing), used by the DICOM writer and by
archive restore alike."""
from __future__ import annotations

from .syntaxes import NotWritable

PAIRED_BODY_PARTS = {"BREAST", "EYE", "EAR", "KIDNEY", "LUNG", "OVARY", "TESTIS", "ADRENAL", "ARM", "UPPERARM",
                     "FOREARM", "ELBOW", "WRIST", "HAND", "FINGER", "THUMB", "SHOULDER", "CLAVICLE", "SCAPULA",
                     "HIP", "LEG", "THIGH", "FEMUR", "KNEE", "TIBIA", "FIBULA", "ANKLE", "FOOT", "TOE", "HEEL",
                     "PATELLA", "EXTREMITY", "ORBIT", "TMJ", "JAW", "PAROTID", "SUBMANDIBULAR", "BREASTIMPLANT"}
MF_TRUE_COLOR_SC = "1.2.840.10008.5.1.4.1.1.7.4"  # Multi-frame True Color Secondary Capture Image Storage
STORED_VALUE_TAGS = ("SmallestImagePixelValue", "LargestImagePixelValue", "SmallestPixelValueInSeries",
                     "LargestPixelValueInSeries", "PixelPaddingValue", "PixelPaddingRangeLimit")
# Type 2 attributes of the Patient, General Study/Series/Equipment/Image modules (present in every image IOD):
# de-identified exports often drop them; adding them empty is conformant and loses nothing (dciodvfy errors).
TYPE2_FILL = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
              "ReferringPhysicianName", "StudyID", "AccessionNumber", "SeriesNumber", "Manufacturer",
              "InstanceNumber")
DROP_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData", "ExtendedOffsetTable",
             "ExtendedOffsetTableLengths", "DataSetTrailingPadding")


def fit_stored_values(ds, volume, dmap, bits_stored: int, bits_allocated: int) -> None:
    """Make ``ds`` describe the coded values (see the module docstring); the identity leaves it untouched."""
    from pydicom.valuerep import DSfloat

    identity = dmap.offset == 0 and dmap.shift == 0
    ds.BitsAllocated = bits_allocated
    if identity and not volume.signed:
        if bits_stored > int(ds.get("BitsStored", bits_stored)):
            ds.BitsStored, ds.HighBit = bits_stored, bits_stored - 1
        return
    if "ModalityLUTSequence" in ds:
        raise NotWritable("no DICOM written: the source maps values with a Modality LUT, which medpipe cannot "
                          "re-map to the coded values")
    centre = (1 << (dmap.shift - 1)) if dmap.shift else 0
    if not identity:
        for item in rescale_holders(ds):
            slope = float(item.get("RescaleSlope", 1) or 1)
            intercept = float(item.get("RescaleIntercept", 0) or 0)
            item.RescaleSlope = DSfloat(_ds_text(slope * (1 << dmap.shift)), auto_format=False)
            item.RescaleIntercept = DSfloat(_ds_text(intercept + slope * (dmap.offset + centre)),
                                            auto_format=False)
            if "RescaleType" not in item and ds.get("Modality") != "CT":
                item.RescaleType = "US"
    ds.PixelRepresentation = 0
    ds.BitsStored, ds.HighBit = bits_stored, bits_stored - 1
    top = (1 << bits_stored) - 1
    for kw in STORED_VALUE_TAGS:
        if kw not in ds:
            continue
        value = ds[kw].value
        if isinstance(value, (bytes, bytearray)) or value is None:
            del ds[kw]
            continue
        new = (int(value) - dmap.offset) >> dmap.shift
        if 0 <= new <= top:
            ds[kw].VR = "US"
            ds[kw].value = new
        else:
            del ds[kw]


def rescale_holders(ds) -> list:
    """Where the rescale lives: enhanced objects' Pixel Value Transformation items (shared and per frame),
    else the data set itself (the attributes are added there when absent)."""
    items = []
    for groups in (ds.get("SharedFunctionalGroupsSequence"), ds.get("PerFrameFunctionalGroupsSequence")):
        for group in groups or []:
            items += list(group.get("PixelValueTransformationSequence") or [])
    return items or [ds]


def _ds_text(v: float) -> str:
    """A Decimal String of at most 16 characters."""
    text = f"{v:.10g}"
    return text if len(text) <= 16 else f"{v:.6g}"


# PS3.16 CID 7202 "Source Image Purposes of Reference" and CID 7203 "Image Derivation" codes (DCM scheme)
UNCOMPRESSED_PREDECESSOR = ("121320", "Uncompressed predecessor")
SOURCE_FOR_PROCESSING = ("121322", "Source image for image processing operation")
LOSSY_COMPRESSION = ("113040", "Lossy Compression")


def _code(value: tuple[str, str]):
    from pydicom.dataset import Dataset

    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value[0], "DCM", value[1]
    return item


def derive(ds, series_uid: str, text: str, label: str, purpose: tuple[str, str],
           derivation: tuple[str, str] | None = None) -> None:
    """Make ``ds`` a new derived instance of its source (PS3.3 C.7.6.1.1.2 Image Type DERIVED, C.7.6.1.1.3
    Derivation Description, C.7.6.1.2 Source Image Sequence): a new SOP Instance UID in series ``series_uid``."""
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    old_class, old_inst = ds.get("SOPClassUID"), ds.get("SOPInstanceUID")
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = series_uid
    image_type = [str(v) for v in _multi(ds.get("ImageType"))] or ["DERIVED", "SECONDARY"]
    image_type[0] = "DERIVED"
    if len(image_type) == 1:
        image_type.append("SECONDARY")
    ds.ImageType = image_type
    prior = str(ds.get("DerivationDescription", "") or "")
    ds.DerivationDescription = (f"{prior}; {text}" if prior else text)[:1024]
    if derivation:
        ds.DerivationCodeSequence = [_code(derivation)]
    if old_class and old_inst:
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = old_class, old_inst
        ref.PurposeOfReferenceCodeSequence = [_code(purpose)]
        ds.SourceImageSequence = [ref]
    desc = str(ds.get("SeriesDescription", "") or "")
    ds.SeriesDescription = (f"{desc} [{label}]" if desc else f"[{label}]")[:64]


def mark_lossy(ds, method: str | None, ratio: float, series_uid: str, label: str) -> None:
    """PS3.3 C.7.6.1.1.5: a lossy compressed image is a new, derived instance."""
    ds.LossyImageCompression = "01"
    ratios = [str(r) for r in _multi(ds.get("LossyImageCompressionRatio"))]
    methods = [str(m) for m in _multi(ds.get("LossyImageCompressionMethod"))]
    ds.LossyImageCompressionRatio = ratios + [_ds_text(round(ratio, 2))]
    # PS3.3 C.7.6.1.1.5.1 defined terms; a method without one is left out rather than mislabelled
    ds.LossyImageCompressionMethod = methods + ([method] if method else [])
    derive(ds, series_uid, f"lossy compressed by medpipe ({label})", label, UNCOMPRESSED_PREDECESSOR,
           LOSSY_COMPRESSION)


def mark_offset_copy(ds, offset: int, series_uid: str, label: str) -> None:
    """The offset copy (``dicom_out: {offset_copy: true}``): stored values minus ``offset``, coded losslessly. The
    values differ from the source's, so it is a new derived instance (the source keeps its UIDs); the modality
    values are unchanged (:func:`fit_stored_values` adjusted the rescale)."""
    derive(ds, series_uid, f"stored values offset by {-offset:+d} for compression by medpipe ({label}); Pixel "
           "Representation, Bits Stored and Rescale Intercept adjusted, modality values unchanged",
           f"{label}, offset copy", SOURCE_FOR_PROCESSING)


def _multi(value) -> list:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return list(value)
    return [value]


def grey_pixel_module(ds) -> None:
    """A colour source coded as luma: the Image Pixel module of the grey image, and why (the caller makes the
    instance derived: :func:`derive` or :func:`mark_lossy`)."""
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    for kw in ("PlanarConfiguration", "RedPaletteColorLookupTableDescriptor", "ICCProfile"):
        if kw in ds:
            del ds[kw]
    prior = str(ds.get("DerivationDescription", "") or "")
    text = "colour converted to grey (BT.601 luma) by medpipe"
    ds.DerivationDescription = (f"{prior}; {text}" if prior else text)[:1024]
