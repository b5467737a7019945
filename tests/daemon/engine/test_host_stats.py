"""Host statistics: the duration histogram and the summary the control plane reads."""

from __future__ import annotations

import numpy as np

from controlroom.daemon.engine import stats
from controlroom.dsp import layout

BASE = layout.HOST_BASE


def test_bins_cover_every_duration_in_order():
    durations = np.arange(0, 200_000)
    bins = np.array([stats.duration_bin(d) for d in durations])
    assert bins[0] == 0 and np.all(np.diff(bins) >= 0)
    for d, b in zip(durations[::97], bins[::97]):
        lower = stats.bin_upper_us(b - 1) if b else 0.0
        assert lower <= d < stats.bin_upper_us(b)


def test_bins_are_at_most_an_eighth_of_an_octave_wide():
    for b in range(stats.LINEAR_BINS, stats.N_BINS):
        width = stats.bin_upper_us(b) - stats.bin_upper_us(b - 1)
        assert width <= stats.bin_upper_us(b - 1) / 8


def test_overlong_durations_land_in_the_last_bin():
    assert stats.duration_bin(10**9) == stats.N_BINS - 1


def record(counters, durations_us, flags=0, stream_step_ns=1_333_333):
    for k, duration in enumerate(durations_us):
        start = 1_000_000_000 + k * 2_000_000
        stats.record_block(counters, BASE, 64, flags, start, start + duration * 1000, k * stream_step_ns)


def test_summary_reports_percentiles_max_and_expected_callbacks():
    counters = np.zeros(layout.C_LEN, dtype=np.int64)
    record(counters, [5] * 98 + [40, 900])
    summary = stats.summarise(counters, BASE, 48000, 64)
    assert summary["callbacks"] == 100 and summary["frames"] == 6400
    assert summary["expected_callbacks"] == 100
    assert summary["duration_us"] == {"p50": 6.0, "p99": 44.0, "max": 900.0}


def test_missing_callbacks_show_as_expected_but_not_delivered():
    counters = np.zeros(layout.C_LEN, dtype=np.int64)
    record(counters, [5] * 10, stream_step_ns=2 * 1_333_333)  # every other block skipped
    summary = stats.summarise(counters, BASE, 48000, 64)
    assert summary["callbacks"] == 10 and summary["expected_callbacks"] == 19


def test_status_flags_are_counted_by_kind():
    counters = np.zeros(layout.C_LEN, dtype=np.int64)
    record(counters, [5, 5], flags=0x4 | 0x2)  # what PortAudio's JACK host reports for an xrun
    record(counters, [5], flags=0x10)
    assert stats.summarise(counters, BASE, 48000, 64)["xruns"] == {
        "input_underflow": 0,
        "input_overflow": 2,
        "output_underflow": 2,
        "output_overflow": 0,
        "priming": 1,
    }


def test_an_empty_summary_has_no_durations():
    counters = np.zeros(layout.C_LEN, dtype=np.int64)
    summary = stats.summarise(counters, BASE, 48000, 64)
    assert summary["callbacks"] == 0 and summary["expected_callbacks"] == 0
    assert summary["duration_us"] == {"p50": None, "p99": None, "max": None}


def test_host_counters_fit_after_the_kernels():
    assert layout.HOST_BASE + stats.HOST_LEN <= layout.C_LEN


def test_reset_clears_only_the_host_counters():
    counters = np.ones(layout.C_LEN, dtype=np.int64)
    stats.reset(counters, BASE)
    assert np.all(counters[:BASE] == 1) and np.all(counters[BASE : BASE + stats.HOST_LEN] == 0)


def test_percentile_is_the_upper_edge_of_its_bin():
    histogram = np.zeros(stats.N_BINS, dtype=np.int64)
    histogram[stats.duration_bin(5)] = 3
    histogram[stats.duration_bin(900)] = 1
    assert stats.percentile_us(histogram, 0.5) == 6.0
    assert stats.percentile_us(histogram, 1.0) == 960.0
