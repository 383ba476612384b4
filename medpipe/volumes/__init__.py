"""Readers of volumes (floor 1): DICOM series and multi-frame objects, PNG slice folders and pictures, NIfTI,
NRRD, MetaImage and NumPy -> :class:`Volume`. Imports medpipe.errors/files/options and reader libraries only,
never a codec.

    volume.py        the Volume type (padding, signal range, events, spacing, lossy source, colour)
    input_options.py INPUT_OPTIONS: the input options as data
    dicom.py         read a DICOM file, decode its pixels, the facts its header holds
    damage.py        damaged compressed input: decoder verdicts, cross-check, header and series checks
    series.py        which DICOM files make one volume, in which order (headers only)
    dicom_volume.py  the files of one series -> Volume
    research.py      NIfTI, NRRD, MetaImage, NumPy (+ JSON sidecar)
    pictures.py      PNG slice folders, PNG/JPEG/TIFF/SVS pictures, dump_png
    colour.py        colour -> grey (or component planes)
    discover.py      walk an input path, recognise every file, build VolumeSources
    source.py        VolumeSource (picklable; .load() -> Volume)
    load.py          discover_inputs, load_inputs, load_volume
"""
from .dicom import decode_pixels, read_dicom
from .input_options import INPUT_OPTIONS, input_settings
from .load import discover_inputs, load_dicom_files, load_inputs, load_source, load_volume
from .pictures import PNG_SIDECAR, dump_png, load_png_folder, load_picture
from .source import VolumeSource
from .volume import Volume

__all__ = ["Volume", "VolumeSource", "discover_inputs", "load_inputs", "load_volume", "dump_png", "read_dicom",
           "decode_pixels", "INPUT_OPTIONS", "input_settings", "load_source", "load_dicom_files", "PNG_SIDECAR",
           "load_png_folder", "load_picture"]
