import numpy as np

from medpipe.depth import plan_depth


def test_unsigned_data_that_fits_is_left_alone():
    m = plan_depth((0, 4095), np.uint16, 12)
    assert (m.offset, m.shift, m.exact) == (0, 0, True) and m.describe() == "identity"


def test_signed_ct_is_offset_exactly():
    px = np.array([[-1500, 0, 2121]], np.int16)
    m = plan_depth((-1500, 2121), px.dtype, 12)
    coded = m.forward(px)
    assert coded.dtype == np.uint16 and coded.min() == 0 and m.exact
    assert np.array_equal(m.inverse(coded), px) and m.inverse(coded).dtype == np.int16


def test_reduction_is_recorded_and_bounded():
    px = np.arange(0, 65536, 7, dtype=np.uint16)
    m = plan_depth((int(px.min()), int(px.max())), px.dtype, 10)
    assert m.shift == 6 and not m.exact and "16->10 bits" in m.describe()
    back = m.inverse(m.forward(px))
    assert np.abs(back.astype(int) - px).max() <= 32  # half a bin


def test_window_clips_and_says_so():
    px = np.array([-2000, -1000, 0, 3000], np.int16)
    m = plan_depth((-2000, 3000), px.dtype, 12, window=(-1024, 3071))
    assert m.clipped and not m.exact and "window" in m.describe()
    assert list(m.inverse(m.forward(px))) == [-1024, -1000, 0, 3000]
