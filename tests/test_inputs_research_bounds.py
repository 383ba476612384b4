"""Hostile research inputs found by fuzzing: decompression bombs (.npz, .nii.gz, NRRD gzip, MetaImage zlib),
headers claiming more than is free, data files outside the header's folder or on /dev/zero, a huge NRRD line skip,
FIFOs and device links in an input folder. Each must give one line naming the file, in bounded memory and time,
while the other inputs of the run go on. Loading runs in a child process under an address-space cap (Linux), so a
reader that allocates what a bomb claims fails there instead of taking the machine."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

CAP = 2 * 2**30  # address space for the child: numpy + readers fit; every bomb here inflates beyond it
CHILD = """
import json, resource, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
from rich.console import Console
from medpipe.volumes import load_inputs
vols, errors = load_inputs([Path(sys.argv[1])], Console(file=open("/dev/null", "w")))
print(json.dumps({{"volumes": [[v.name, list(v.shape)] for v in vols], "errors": errors}}))
"""

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /dev/zero: Linux")


def load_capped(folder: Path, timeout: float = 90) -> dict:
    """load_inputs on ``folder`` in a child under CAP bytes of address space; its volumes and error lines."""
    done = subprocess.run([sys.executable, "-c", CHILD.format(cap=CAP), str(folder)], capture_output=True,
                          text=True, timeout=timeout, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def zeros_deflated(mib: int, wbits: int) -> bytes:
    """A deflate/zlib/gzip stream of ``mib`` MiB of zeros, built in milliseconds: after a full flush the compressor
    emits the same bytes for the same input, so one flushed MiB is repeated (the trailer's check value is wrong;
    a bounded reader stops long before it)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, wbits)
    first = comp.compress(bytes(2**20)) + comp.flush(zlib.Z_FULL_FLUSH)
    unit = comp.compress(bytes(2**20)) + comp.flush(zlib.Z_FULL_FLUSH)
    return first + unit * (mib - 1) + comp.flush()


def good_npy(folder: Path) -> Path:
    """A small readable volume beside the bad one: the run goes on with it."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "good.npy", np.arange(2 * 3 * 4, dtype=np.uint16).reshape(2, 3, 4))
    (folder / "good.json").write_text("{}")
    return folder / "good.npy"


def one_line(result: dict, name: str, text: str) -> str:
    """The one error line naming ``name`` (and saying ``text``); the good volume was loaded."""
    lines = [e for e in result["errors"] if name in e]
    assert len(lines) == 1, result["errors"]
    assert text in lines[0] and "\n" not in lines[0] and "medpipe bug" not in lines[0], lines[0]
    assert ["good", [2, 3, 4]] in result["volumes"], result
    return lines[0]


@linux_only
def test_fifo_and_link_to_dev_zero_are_skipped_unopened(tmp_path):
    good_npy(tmp_path)
    os.mkfifo(tmp_path / "pipe.dcm")
    os.symlink("/dev/zero", tmp_path / "zero.dcm")
    result = load_capped(tmp_path, timeout=60)
    one_line(result, "pipe.dcm", "not a regular file (a FIFO or device), never opened")
    one_line(result, "zero.dcm", "not a regular file (a FIFO or device), never opened")


def npz_member(path: Path, shape: tuple, dtype: str, data_bytes: int) -> None:
    """A .npz whose one member has a .npy header for ``shape``/``dtype`` followed by ``data_bytes`` zero bytes."""
    import io
    import zipfile

    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                                "shape": shape})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("a.npy", "w", force_zip64=True) as fh:
            fh.write(head.getvalue())
            for start in range(0, data_bytes, 2**26):
                fh.write(bytes(min(2**26, data_bytes - start)))


@linux_only
def test_npz_bomb_is_refused_from_its_npy_header(tmp_path):
    folder = tmp_path / "in"
    good_npy(folder)
    npz_member(folder / "bomb.npz", (1600, 1024, 1024), "u1", 1600 * 2**20)  # 1.6 GB of zeros in 1.6 MB
    (folder / "bomb.json").write_text("{}")
    line = one_line(load_capped(folder), "bomb.npz", "GiB is free here; refused")
    assert "decoding needs 3.1 GiB" in line


@linux_only
def test_npz_member_longer_than_its_header_says_is_refused(tmp_path):
    folder = tmp_path / "in"
    good_npy(folder)
    npz_member(folder / "long.npz", (2, 3, 4), "<u2", 48 + 2**20)
    (folder / "long.json").write_text("{}")
    one_line(load_capped(folder), "long.npz",
             "inflates to 1048752 bytes, its .npy header says shape [2, 3, 4] uint16 (176 bytes")


def nifti_gz(path: Path, shape: tuple, data_bytes: int) -> None:
    """A .nii.gz whose header says ``shape`` int16 and whose stream holds ``data_bytes`` zero bytes of data."""
    nibabel = pytest.importorskip("nibabel")
    header = nibabel.Nifti1Header()
    header.set_data_dtype(np.int16)
    header.set_data_shape(shape)
    header.set_sform(np.eye(4), code=1)
    header.set_data_offset(352)
    with gzip.open(path, "wb", compresslevel=1) as fh:
        fh.write(header.binaryblock + bytes(4))  # 348 bytes + the empty extension flag: data at 352
        for start in range(0, data_bytes, 2**26):
            fh.write(bytes(min(2**26, data_bytes - start)))


@linux_only
def test_nifti_header_claiming_gigabytes_is_refused_before_nibabel_allocates(tmp_path):
    folder = tmp_path / "in"
    good_npy(folder)
    nifti_gz(folder / "claim.nii.gz", (1500, 1500, 700), 64)
    one_line(load_capped(folder), "claim.nii.gz", "decoding needs 5.9 GiB")


@linux_only
def test_nifti_gzip_inflating_past_its_header_is_refused(tmp_path):
    folder = tmp_path / "in"
    good_npy(folder)
    nifti_gz(folder / "bomb.nii.gz", (2, 3, 4), 300 * 2**20)
    one_line(load_capped(folder), "bomb.nii.gz", "the gzip stream inflates past the 400 bytes its header says "
                                                  "(shape [2, 3, 4] int16); refused")


def nrrd_text(fields: dict) -> bytes:
    return ("NRRD0004\n" + "".join(f"{k}: {v}\n" for k, v in fields.items()) + "\n").encode()


NRRD_2X2X2 = {"type": "uint16", "dimension": 3, "sizes": "2 2 2", "endian": "little"}


@linux_only
def test_nrrd_gzip_bomb_stops_inflating_at_the_header_size(tmp_path):
    folder = tmp_path / "in"
    good_npy(folder)
    (folder / "bomb.nrrd").write_bytes(nrrd_text({**NRRD_2X2X2, "encoding": "gzip"})
                                       + zeros_deflated(3000, zlib.MAX_WBITS | 16))  # 3 GB of zeros in 3 MB
    one_line(load_capped(folder), "bomb.nrrd", "the gzip data inflates past the 16 bytes its header's shape and "
                                               "type need; refused")


@linux_only
def test_nrrd_line_skip_beyond_the_file_is_refused_at_once(tmp_path):
    folder = tmp_path / "in"
    good_npy(folder)
    (folder / "skip.nrrd").write_bytes(nrrd_text({**NRRD_2X2X2, "encoding": "raw", "line skip": 10**12})
                                       + bytes(16))
    one_line(load_capped(folder, timeout=30), "skip.nrrd", "line skip 1000000000000 is beyond the 16 bytes left")


@linux_only
@pytest.mark.parametrize("name", ["../secret.raw", "ABS", "sub/../../secret.raw", "/dev/zero"])
def test_nrrd_data_file_outside_the_header_folder_is_refused(tmp_path, name):
    folder = tmp_path / "in"
    good_npy(folder)
    (tmp_path / "secret.raw").write_bytes(np.arange(8, dtype="<u2").tobytes())
    name = str(tmp_path / "secret.raw") if name == "ABS" else name
    (folder / "v.nhdr").write_bytes(nrrd_text({**NRRD_2X2X2, "encoding": "raw", "data file": name}))
    one_line(load_capped(folder), "v.nhdr", f"data file {name!r} outside the header's folder; refused")


def test_nrrd_bzip2_byte_skip_and_detached_raw_still_read(tmp_path):
    nrrd = pytest.importorskip("nrrd")
    from medpipe.volumes import load_volume

    data = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)  # (x, y, z)
    nrrd.write(str(tmp_path / "b.nrrd"), data, {"encoding": "bzip2"}, index_order="F")
    assert np.array_equal(load_volume(tmp_path / "b.nrrd").pixels, np.transpose(data, (2, 1, 0)))
    (tmp_path / "d.raw").write_bytes(b"junk\nmore junk\n12" + data.tobytes(order="F"))
    (tmp_path / "d.nhdr").write_bytes(nrrd_text({"type": "int16", "dimension": 3, "sizes": "3 4 5",
                                                 "endian": "little", "encoding": "raw", "line skip": 2,
                                                 "byte skip": 2, "data file": "d.raw"}))
    assert np.array_equal(load_volume(tmp_path / "d.nhdr").pixels, np.transpose(data, (2, 1, 0)))


def mhd_text(fields: dict) -> bytes:
    return "".join(f"{k} = {v}\n" for k, v in fields.items()).encode()


MHD_2X2X2 = {"ObjectType": "Image", "NDims": 3, "DimSize": "2 2 2", "ElementType": "MET_SHORT"}


@linux_only
def test_metaimage_zlib_bomb_stops_inflating_at_the_header_size(tmp_path):
    folder = tmp_path / "in"
    good_npy(folder)
    stream = zeros_deflated(3000, zlib.MAX_WBITS)  # 3 GB of zeros in 3 MB
    (folder / "bomb.mha").write_bytes(mhd_text({**MHD_2X2X2, "CompressedData": "True",
                                                "CompressedDataSize": len(stream), "ElementDataFile": "LOCAL"})
                                      + stream)
    one_line(load_capped(folder), "bomb.mha", "the zlib data inflates past the 16 bytes its header's shape and "
                                              "type need; refused")


@linux_only
@pytest.mark.parametrize("entry", ["../secret.raw", "ABS", "/dev/zero", "LINK", "LIST"])
def test_metaimage_data_file_outside_the_header_folder_is_refused(tmp_path, entry):
    folder = tmp_path / "in"
    good_npy(folder)
    (tmp_path / "secret.raw").write_bytes(np.arange(8, dtype="<i2").tobytes())
    (folder / "ok.raw").write_bytes(np.arange(4, dtype="<i2").tobytes())
    name = {"ABS": str(tmp_path / "secret.raw"), "LINK": "zero.raw", "LIST": "LIST"}.get(entry, entry)
    if entry == "LINK":  # a link inside the folder leading to a device
        os.symlink("/dev/zero", folder / "zero.raw")
    text = mhd_text({**MHD_2X2X2, "ElementDataFile": name})
    if entry == "LIST":  # one slice per file: the second leaves the folder
        text += b"ok.raw\n../secret.raw\n"
    (folder / "v.mhd").write_bytes(text)
    shown = "../secret.raw" if entry == "LIST" else name
    one_line(load_capped(folder), "v.mhd", f"data file {shown!r} outside the header's folder; refused")


def test_metaimage_compressed_list_and_big_endian_still_read(tmp_path):
    from medpipe.volumes import load_volume

    data = np.arange(2 * 3 * 4, dtype=">i2").reshape(2, 3, 4)  # (z, y, x)
    for z in range(2):
        (tmp_path / f"s{z}.z").write_bytes(zlib.compress(data[z].tobytes()))
    (tmp_path / "v.mhd").write_bytes(mhd_text({**MHD_2X2X2, "DimSize": "4 3 2", "ElementByteOrderMSB": "True",
                                               "CompressedData": "True", "CompressedDataSize": 10**6,
                                               "ElementSpacing": "0.5 0.5 2", "ElementDataFile": "LIST"})
                                     + b"s0.z\ns1.z\n")
    vol = load_volume(tmp_path / "v.mhd")
    assert np.array_equal(vol.pixels, data.astype("=i2")) and vol.spacing == (2.0, 0.5, 0.5)


def test_nrrd_line_skip_across_pieces_lands_after_the_last_skipped_line(tmp_path):
    from medpipe.volumes.research_data import CHUNK, skip_lines

    path = tmp_path / "lines.raw"
    path.write_bytes(b"x" * (CHUNK - 1) + b"\n" + b"\n" * 5 + b"y" * CHUNK + b"\nDATA")
    with open(path, "rb") as fh:
        skip_lines(fh, 7, str(path))
        assert fh.read() == b"DATA"
