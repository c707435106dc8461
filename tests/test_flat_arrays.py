"""Flat buffers (``timelayers.distributed.flat_buffers``): arrays copied in and out of one
buffer per dtype, or, once aliased, living in it."""

import numpy as np

from timelayers.distributed.flat_buffers import flat_buffers


def mixed_arrays(rng):
    return [rng.standard_normal((3, 4)).astype(np.float32),
            np.asfortranarray(rng.standard_normal((5, 2)).astype(np.float32)),
            rng.standard_normal(6)]


def test_flat_buffers_round_trip_arrays_of_any_layout_one_buffer_per_dtype():
    rng = np.random.default_rng(0)
    arrays = mixed_arrays(rng)
    expected = [a.copy() for a in arrays]
    buffers = flat_buffers(arrays)
    assert [b.data.dtype for b in buffers] == [np.float32, np.float64]
    assert [b.data.size for b in buffers] == [22, 6]
    for b in buffers:
        b.gather()
    np.testing.assert_array_equal(buffers[0].data[12:], expected[1].ravel(order="F"))  # its own layout
    for b in buffers:
        b.data *= 2
        b.scatter()
    for a, e in zip(arrays, expected):
        np.testing.assert_array_equal(a, 2 * e)
    assert arrays[1].flags.f_contiguous
    scaled = buffers[0].gather(scale=0.25)  # scaled in the same pass, in the buffer's dtype
    np.testing.assert_array_equal(scaled[12:], (2 * expected[1] * np.float32(0.25)).ravel(order="F"))
    assert scaled is buffers[0].data and scaled.dtype == np.float32


def test_alias_puts_views_of_the_buffer_in_place_of_the_arrays():
    arrays = mixed_arrays(np.random.default_rng(1))
    expected = [a.copy() for a in arrays]
    buffers = flat_buffers(arrays)
    replaced = {}
    for b in buffers:
        replaced.update(b.alias())
    assert set(replaced) == {id(a) for a in arrays}
    views = [replaced[id(a)][1] for a in arrays]
    assert [v for b in buffers for v in b.arrays] == views[:2] + views[2:]
    for v, e in zip(views, expected):
        np.testing.assert_array_equal(v, e)          # the values moved in
        assert v.shape == e.shape and v.dtype == e.dtype
    assert views[1].flags.f_contiguous and not views[1].flags.c_contiguous
    assert np.shares_memory(views[0], buffers[0].data) and np.shares_memory(views[1], buffers[0].data)
    assert np.shares_memory(views[2], buffers[1].data)
    views[1][...] = 7                                # a write to a view is a write to the buffer
    np.testing.assert_array_equal(buffers[0].data[12:], 7)
    assert buffers[0].gather(scale=0.5) is buffers[0].data   # no copy: scaled in place
    np.testing.assert_array_equal(views[1], 3.5)
    np.testing.assert_array_equal(views[0], expected[0] * np.float32(0.5))
    buffers[0].data[:] = 1
    buffers[0].scatter()                             # nothing to copy back
    np.testing.assert_array_equal(views[0], 1)
    assert buffers[0].alias() == {}                  # aliasing twice changes nothing
