"""The meter tap: it carries the channels that sources, sets, inserts and the calibration mic
use, exactly as they came in and went out, and nothing else; a reader never reads one map's
frames with another's columns.

The oracle for what is carried is written out here from the spec's channel numbers, not taken
from ``PathSpec.tap``; what the tap carries is compared bit for bit with the kernel's own
input and output arrays.
"""

from __future__ import annotations

import numpy as np
import pytest
from pathkit import FS, noise

from controlroom.dsp import layout
from controlroom.dsp.control import Controls, InsertSpec, PathBuffers, PathSpec, SetSpec, SourceSpec, SubSpec
from controlroom.dsp.path import process
from controlroom.dsp.tap import TapReader, tap_ring

N_IN = N_OUT = 8
#: a stereo source on inputs 1-2, a mono one on input 5 with an insert (sends on output 8,
#: its return a source on inputs 3-4); sets on outputs 1-2 with a sub on 4, and on 6; the
#: calibration mic on input 7. Inputs 6 and 8, outputs 3, 5 and 7 nobody uses.
SPEC = PathSpec(
    samplerate=FS,
    n_in=N_IN,
    n_out=N_OUT,
    sources=(SourceSpec((1, 2)), SourceSpec((5,), trim_db=-3.0), SourceSpec((3, 4))),
    sets=(SetSpec((1, 2), sub=SubSpec(4)), SetSpec((6,))),
    inserts=(InsertSpec(1, (8,)),),
    tap_inputs=(7,),
)
USED_INPUTS = [1, 2, 3, 4, 5, 7]
USED_OUTPUTS = [1, 2, 4, 6, 8]
#: another map: the mono source moves to input 6, the second set and the insert go
OTHER = PathSpec(
    samplerate=FS,
    n_in=N_IN,
    n_out=N_OUT,
    sources=(SourceSpec((1, 2)), SourceSpec((6,))),
    sets=(SetSpec((1, 2), sub=SubSpec(4)),),
)
OTHER_INPUTS = [1, 2, 6]
OTHER_OUTPUTS = [1, 2, 4]


def program(frames: int) -> np.ndarray:
    """Noise on every input, with non-finite samples the tap must pass on as received."""
    x = noise(frames, amp=0.9, seed=3, channels=N_IN).astype(np.float32)
    x[100, 0] = np.nan
    x[200, 4] = np.inf
    x[300, 6] = -np.inf
    return x


def run(buffers: PathBuffers, x: np.ndarray, blocksize: int, reader: TapReader | None = None):
    """Process ``x`` in blocks of ``blocksize``; with a ``reader``, take from it after every
    block. Returns the output and what the reader took, concatenated."""
    y = np.zeros((x.shape[0], N_OUT), np.float32)
    taken = []
    for start in range(0, x.shape[0], blocksize):
        stop = min(start + blocksize, x.shape[0])
        process(x[start:stop], y[start:stop], *buffers.arrays)
        if reader is not None:
            taken.append(reader.take()[0].copy())
    width = reader.map.width if reader is not None else 0
    return y, np.concatenate(taken) if taken else np.zeros((0, width), np.float32)


def expected(x: np.ndarray, y: np.ndarray, inputs: list[int], outputs: list[int]) -> np.ndarray:
    return np.hstack([x[:, [c - 1 for c in inputs]], y[:, [o - 1 for o in outputs]]])


@pytest.mark.parametrize("blocksize", [64, 100, 2048])
def test_the_tap_carries_the_used_channels_as_they_came_in_and_went_out(blocksize):
    # longer than the ring, in blocks that do and do not divide it, so that rows wrap round
    x = program(layout.TAP_FRAMES * 2 + 777)
    half = layout.TAP_FRAMES
    buffers = PathBuffers(SPEC, Controls(source=1, master_db=-6.0, delay_samples=(0, 37, 0)))
    reader = TapReader(buffers)
    y, tapped = run(buffers, x[:half], blocksize, reader)
    # the sets switch: outputs that played fall silent in rows that held their sound before
    buffers.update(SPEC, Controls(source=1, speakers=1, master_db=-6.0, delay_samples=(0, 37, 0)))
    y2, tapped2 = run(buffers, x[half:], blocksize, reader)
    assert (reader.map.inputs, reader.map.outputs) == (tuple(USED_INPUTS), tuple(USED_OUTPUTS))
    assert reader.lost == reader.stale == 0
    assert np.any(y[:, 7]) and np.any(y[:, 0]) and np.any(y2[:, 5])  # the send and both sets play
    y = np.vstack([y, y2])
    np.testing.assert_array_equal(np.vstack([tapped, tapped2]), expected(x, y, USED_INPUTS, USED_OUTPUTS))


def test_channels_nobody_uses_are_not_written_at_all():
    x = program(layout.TAP_FRAMES + 500)
    buffers = PathBuffers(SPEC, Controls())
    run(buffers, x, 256)
    planes = tap_ring(buffers.meters, N_IN + N_OUT)[: layout.TAP_PLANE * (N_IN + N_OUT)]
    planes = planes.reshape(N_IN + N_OUT, layout.TAP_PLANE)
    width = len(USED_INPUTS) + len(USED_OUTPUTS)
    assert np.all(planes[width:] == 0.0)  # the room kept for a wider map stays untouched
    assert np.all(np.any(planes[: len(USED_INPUTS), : layout.TAP_FRAMES] != 0.0, axis=1))


def test_a_reload_that_changes_the_map_makes_the_frames_before_it_stale_not_misread():
    x = program(6000)
    buffers = PathBuffers(SPEC, Controls())
    reader = TapReader(buffers)
    y, _ = run(buffers, x[:3000], 500)  # written with the first map, not read yet
    buffers.update(OTHER, Controls())
    y2, tapped = run(buffers, x[3000:], 500, reader)
    assert reader.map.inputs == tuple(OTHER_INPUTS) and reader.map.outputs == tuple(OTHER_OUTPUTS)
    assert reader.stale == 3000
    np.testing.assert_array_equal(tapped, expected(x[3000:], y2, OTHER_INPUTS, OTHER_OUTPUTS))


def test_frames_read_before_a_reload_keep_the_map_they_were_written_with():
    x = program(4000)
    buffers = PathBuffers(SPEC, Controls())
    reader = TapReader(buffers)
    y, before = run(buffers, x[:2000], 500, reader)
    first_map = reader.map
    buffers.update(OTHER, Controls())
    y2, after = run(buffers, x[2000:], 500, reader)
    np.testing.assert_array_equal(before, expected(x[:2000], y, USED_INPUTS, USED_OUTPUTS))
    np.testing.assert_array_equal(after, expected(x[2000:], y2, OTHER_INPUTS, OTHER_OUTPUTS))
    assert first_map.columns(inputs=(5,)) == [4] and reader.map.columns(inputs=(6,)) == [2]
    assert reader.stale == 0


def test_a_reload_that_keeps_the_map_keeps_the_generation():
    buffers = PathBuffers(SPEC, Controls())
    buffers.update(SPEC, Controls(master_db=-30.0))
    run(buffers, program(512), 256)
    assert buffers.counters[layout.C_TAP_GEN] == 0


def test_a_reader_that_falls_a_ring_behind_loses_the_oldest_frames():
    x = program(layout.TAP_FRAMES + 1024)
    buffers = PathBuffers(SPEC, Controls())
    reader = TapReader(buffers)
    y, _ = run(buffers, x, 512)
    block, first = reader.take()
    assert (reader.lost, first) == (1024, 1024)
    np.testing.assert_array_equal(block, expected(x[1024:], y[1024:], USED_INPUTS, USED_OUTPUTS))


def test_a_channel_the_tap_does_not_carry_has_no_column():
    with pytest.raises(ValueError, match="input 8, output 3"):
        SPEC.tap.columns(inputs=(1, 8), outputs=(3,))
