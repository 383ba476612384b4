"""The results schema is one dataclass (medpipe.results.Row): its fields are the CSV/JSON columns, a row is built
in one place (matrix.cell.new_row), and a name that is not a column is refused."""
from __future__ import annotations

import dataclasses
import json
import math
import pickle

import numpy as np
import pytest

from helpers import make_volume, spec_of
from medpipe.matrix import CellResult, CellSettings, measure_cell
from medpipe.results import COLUMNS, Row, read_rows, write_csv, write_results


def a_row(**kw) -> Row:
    return Row(volume="v", codec="jpegls", setting="", label="JPEG-LS", bits=12, slices=2, rows=3, cols=4,
               raw_bytes=48, **kw)


def test_columns_are_the_dataclass_fields_in_order():
    assert COLUMNS == [f.name for f in dataclasses.fields(Row)]
    assert len(COLUMNS) == len(set(COLUMNS))
    assert list(a_row().as_dict()) == COLUMNS


def test_a_row_needs_its_identity_and_refuses_unknown_columns():
    with pytest.raises(TypeError):
        Row(volume="v", codec="jpegls")  # no label, bits, shape, size: not a row
    r = a_row()
    assert r.status == "ok" and r.reason == "" and r.cr is None
    with pytest.raises(KeyError, match="not a results column: psnr"):
        r.update(psnr=40.0)  # a typo must not become a new column
    assert r.update(psnr_db=40.0, cr=math.inf) is r and r.psnr_db == 40.0


def test_rows_and_dicts_write_the_same_files(tmp_path):
    r = a_row(cr=4.5, psnr_db=math.inf, exact=True, lossless=True, compressed_bytes=11)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_results(tmp_path / "a", [r], [], {})
    write_results(tmp_path / "b", [r.as_dict()], [], {})
    for name in ("results.csv", "results.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    back = read_rows(tmp_path / "a" / "results.csv")[0]
    assert back["cr"] == 4.5 and back["psnr_db"] == math.inf and back["exact"] is True
    again = Row.from_dict(json.loads((tmp_path / "a" / "results.json").read_text())["rows"][0])
    assert again.cr == 4.5 and again.label == "JPEG-LS"
    write_csv(tmp_path / "c.csv", [r], COLUMNS)
    assert (tmp_path / "c.csv").read_bytes() == (tmp_path / "a" / "results.csv").read_bytes()


def test_a_cell_result_is_typed(ctx):
    data = (np.arange(3 * 24 * 20).reshape(3, 24, 20) % 700).astype(np.uint16)
    vol = make_volume(data, "ramp", 12)
    spec = spec_of({"codec": "jpegls", "near": 2})
    res = measure_cell(vol, spec, ctx, CellSettings(), keep=(1,))
    assert isinstance(res, CellResult) and isinstance(res.row, Row)
    assert res.row.status == "ok" and 0 < res.row.max_abs_err <= 2 and res.row.cr > 1
    assert set(res.kept) == {1} and res.kept[1].shape == (24, 20) and res.encoded is not None
    assert list(res.row.as_dict()) == COLUMNS
    again = pickle.loads(pickle.dumps(res))  # how it travels from a worker process or a Dask worker
    assert again.row == res.row and again.kept[1].tobytes() == res.kept[1].tobytes()
    assert again.encoded.chunks == res.encoded.chunks


def test_a_skipped_cell_still_has_a_whole_row(ctx):
    """x265 lossless codes at most 12 bits: 16-bit data is skipped with the reason, before any coding."""
    vol = make_volume((np.arange(2 * 16 * 16).reshape(2, 16, 16) * 211).astype(np.uint16), "wide", 16)
    res = measure_cell(vol, spec_of({"codec": "x265", "bits": 12, "chroma": "gray", "lossless": True}), ctx,
                       CellSettings())
    if res.row.status == "skipped" and "ffmpeg" in res.row.reason and "not available" in res.row.reason:
        pytest.skip(res.row.reason)
    assert res.row.status == "skipped" and "would not be lossless" in res.row.reason, res.row.reason
    assert res.row.cr is None and res.encoded is None and list(res.row.as_dict()) == COLUMNS
