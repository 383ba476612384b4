"""Header rules for DICOM medpipe writes or restores: fitting stored-value attributes to coded values, and the
derived-image rules of PS3.3 C.7.6.1.1.5 (lossy compression makes a new instance), used by the DICOM writer and by
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


def mark_lossy(ds, method: str | None, ratio: float, series_uid: str, label: str) -> None:
    """PS3.3 C.7.6.1.1.5: a lossy compressed image is a new, derived instance."""
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    old_class, old_inst = ds.get("SOPClassUID"), ds.get("SOPInstanceUID")
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = series_uid
    ds.LossyImageCompression = "01"
    ratios = [str(r) for r in _multi(ds.get("LossyImageCompressionRatio"))]
    methods = [str(m) for m in _multi(ds.get("LossyImageCompressionMethod"))]
    ds.LossyImageCompressionRatio = ratios + [_ds_text(round(ratio, 2))]
    # PS3.3 C.7.6.1.1.5.1 defined terms; a method without one is left out rather than mislabelled
    ds.LossyImageCompressionMethod = methods + ([method] if method else [])
    image_type = [str(v) for v in _multi(ds.get("ImageType"))] or ["DERIVED", "SECONDARY"]
    image_type[0] = "DERIVED"
    if len(image_type) == 1:
        image_type.append("SECONDARY")
    ds.ImageType = image_type
    text = f"lossy compressed by medpipe ({label})"
    prior = str(ds.get("DerivationDescription", "") or "")
    ds.DerivationDescription = (f"{prior}; {text}" if prior else text)[:1024]
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "113040", "DCM", "Lossy Compression"
    ds.DerivationCodeSequence = [code]
    if old_class and old_inst:
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = old_class, old_inst
        purpose = Dataset()
        purpose.CodeValue, purpose.CodingSchemeDesignator = "121320", "DCM"
        purpose.CodeMeaning = "Uncompressed predecessor"
        ref.PurposeOfReferenceCodeSequence = [purpose]
        ds.SourceImageSequence = [ref]
    desc = str(ds.get("SeriesDescription", "") or "")
    ds.SeriesDescription = (f"{desc} [{label}]" if desc else f"[{label}]")[:64]


def _multi(value) -> list:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return list(value)
    return [value]


def mark_grey_conversion(ds) -> None:
    """A colour source coded as luma: a new derived MONOCHROME2 instance."""
    from pydicom.uid import generate_uid

    ds.SOPInstanceUID = generate_uid()
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    for kw in ("PlanarConfiguration", "RedPaletteColorLookupTableDescriptor", "ICCProfile"):
        if kw in ds:
            del ds[kw]
    image_type = [str(v) for v in _multi(ds.get("ImageType"))] or ["DERIVED", "SECONDARY"]
    image_type[0] = "DERIVED"
    ds.ImageType = image_type if len(image_type) > 1 else image_type + ["SECONDARY"]
    prior = str(ds.get("DerivationDescription", "") or "")
    text = "colour converted to grey (BT.601 luma) by medpipe"
    ds.DerivationDescription = (f"{prior}; {text}" if prior else text)[:1024]
