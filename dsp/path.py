"""The monitor path: one compiled kernel for the live callback, the virtual host and ``render``.

``process(inp, out, shared, params, state, meters, counters)`` runs the monitor path's steps 1-6 (docs/monitor-path.md) on
one block. Buffers and their layout are described in ``dsp/layout.py``. The kernel allocates
nothing, takes no locks and touches no Python object, so a numba ``@cfunc`` can call it from
PortAudio's real-time thread without the GIL.

Signal flow per block:
sources (trim, match gain, equal-power crossfade) -> monitor bus L/R -> matrix (mono, solo,
side, polarity; crossfaded) -> master gain (volume x dim x mute; ramped) -> every audible
speaker set (trim, EQ, LR4 bass management, delay; sets crossfade) -> output buses (plus a
calibration's test signal on one output) -> linked peak limiter at the ceiling -> hard clip ->
float32 out.

Arithmetic is float64; filter states are flushed to zero below 1e-30 at block boundaries,
so silence after a loud passage never runs on denormals.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from controlroom.dsp.layout import (
    BUS_DRY,
    BUS_DRY_R,
    BUS_L,
    BUS_R,
    BUS_SUBMIX,
    C_ACTIVE,
    C_APPLIED,
    C_BLOCKS,
    C_CLIPPED,
    C_FRAMES,
    C_LIMITED,
    C_METER_ACK,
    C_METER_RESET,
    C_NONFINITE,
    C_SEQ,
    C_TAP_WRITE,
    C_TORN,
    CHUNK,
    I_LEVEL,
    I_MEASURE,
    I_NOUT,
    I_OUT0,
    I_OUT1,
    I_SOURCE,
    INS_STRIDE,
    INSERTS_BASE,
    K_BANDS,
    K_DELAY,
    K_GAIN,
    K_HIGHPASS,
    K_LANE_DELAY,
    K_LANE_GAIN,
    K_LOWPASS,
    K_MONO,
    K_NBANDS,
    K_NOUT,
    K_OUT0,
    K_OUT1,
    K_SUB_GAIN,
    K_SUB_OUT,
    LANE_L,
    LANE_R,
    LANE_SUB,
    M_FRAMES,
    M_LEN,
    M_LIMITER_MIN,
    M_OUTPUTS,
    M_SOURCES,
    MATRIX_LEFT,
    MATRIX_MONO,
    MATRIX_RIGHT,
    MATRIX_SIDE,
    MAX_TEST_SECTIONS,
    MS_PEAK,
    MS_STRIDE,
    MS_SUMSQ,
    OUTS_BASE,
    P_CEILING,
    P_COHERENT_XFADE,
    P_DELAY_CAP,
    P_MASTER,
    P_MASTER_RAMP,
    P_MATRIX,
    P_N_INSERTS,
    P_N_SETS,
    P_N_SOURCES,
    P_POLARITY,
    P_RAMP,
    P_RELEASE,
    P_SET,
    P_SOURCE,
    P_SUB,
    P_TAP_OUT,
    P_TEST_GAIN,
    P_TEST_NSEC,
    P_TEST_OUT,
    P_TEST_RAMP,
    P_TEST_SOS,
    P_XFADE,
    RAMP,
    S_CH0,
    S_CH1,
    S_DELAY,
    S_GAIN,
    S_NCH,
    S_TAP0,
    S_TAP1,
    S_TRIM,
    SET_STRIDE,
    SETS_BASE,
    SOURCE_DELAY_LANE,
    SOURCES_BASE,
    SRC_STRIDE,
    T_BUS,
    T_DELAY,
    T_LIMITER,
    T_MASTER,
    T_MATRIX,
    T_NOISE,
    T_OUT,
    T_SEEN,
    T_SETS,
    T_SOURCES,
    T_SUBMIX,
    T_TEST_GAIN,
    T_TEST_NOISE,
    T_TEST_SOS,
    T_TOUCHED,
    TAP_FRAMES,
    TAP_PLANE,
    TK_BANDS,
    TK_DELAY_POS,
    TK_DRAIN,
    TK_FADE,
    TK_GAIN,
    TK_HIGHPASS,
    TK_LANE_GAIN,
    TK_LOWPASS,
    TK_STRIDE,
    TK_SUB_GAIN,
    TS_DELAY_POS,
    TS_FADE,
    TS_GAIN,
    TS_STRIDE,
)
from controlroom.dsp.pointers import memory_fence
from controlroom.dsp.tap import publish_frames, take_map, tap_inputs, tap_ring

#: fastmath without nnan/ninf: the non-finite input checks must survive optimisation.
FASTMATH = {"nsz", "arcp", "contract", "reassoc"}
JIT = dict(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")

TINY = 1e-30  # filter states below this are flushed: far above float64 denormals
HALF_PI = 0.5 * math.pi


# --- parameters ----------------------------------------------------------------------------------


@njit(**JIT)
def take_parameters(shared, params, counters):
    """The parameter row to use for this block: a fresh copy of ``shared`` when the control
    plane published a new, complete one (seqlock: even and unchanged across the copy)."""
    active = counters[C_ACTIVE]
    seq = counters[C_SEQ]
    if seq != counters[C_APPLIED] and seq % 2 == 0:
        spare = 1 - active
        memory_fence()
        row = params[spare]
        for i in range(shared.shape[0]):
            row[i] = shared[i]
        memory_fence()
        if counters[C_SEQ] == seq:
            counters[C_ACTIVE] = spare
            counters[C_APPLIED] = seq
            active = spare
        else:
            counters[C_TORN] += 1
    return params[active]


@njit(**JIT)
def publish(shared, counters, new):
    """Control-plane side of the seqlock: write ``new`` into ``shared`` and publish it."""
    counters[C_SEQ] += 1
    memory_fence()
    for i in range(new.shape[0]):
        shared[i] = new[i]
    memory_fence()
    counters[C_SEQ] += 1


# --- ramps: (value, step, samples left, target) ---------------------------------------------------


@njit(**JIT)
def ramp_to(state, off, target, length):
    """Start a linear ramp of ``length`` samples towards ``target`` if the target changed."""
    if state[off + 3] != target:
        state[off + 3] = target
        if length < 1.0:
            state[off] = target
            state[off + 2] = 0.0
        else:
            state[off + 1] = (target - state[off]) / length
            state[off + 2] = length


@njit(**JIT)
def ramp_next(state, off):
    """Advance a ramp by one sample and return its value."""
    left = state[off + 2]
    if left > 0.0:
        left -= 1.0
        state[off + 2] = left
        if left <= 0.0:
            state[off + 2] = 0.0
            state[off] = state[off + 3]
        else:
            state[off] += state[off + 1]
    return state[off]


@njit(**JIT)
def ramp_snap(state, off, target):
    state[off] = target
    state[off + 2] = 0.0
    state[off + 3] = target


@njit(**JIT)
def fade_next(fade, target, step):
    """One sample of a crossfade position moving linearly towards 0 or 1."""
    if fade < target:
        fade = min(target, fade + step)
    elif fade > target:
        fade = max(target, fade - step)
    return fade


# --- matrix ------------------------------------------------------------------------------------


@njit(**JIT)
def matrix_coefficients(mode, polarity):
    """(ll, lr, rl, rr) of the monitor matrix; polarity inverts the left input."""
    if mode == MATRIX_MONO:
        ll, lr, rl, rr = 0.5, 0.5, 0.5, 0.5
    elif mode == MATRIX_LEFT:
        ll, lr, rl, rr = 1.0, 0.0, 1.0, 0.0
    elif mode == MATRIX_RIGHT:
        ll, lr, rl, rr = 0.0, 1.0, 0.0, 1.0
    elif mode == MATRIX_SIDE:
        ll, lr, rl, rr = 0.5, -0.5, 0.5, -0.5
    else:
        ll, lr, rl, rr = 1.0, 0.0, 0.0, 1.0
    if polarity:
        ll, rl = -ll, -rl
    return ll, lr, rl, rr


# --- filters -----------------------------------------------------------------------------------


@njit(**JIT)
def biquad(buf, off, n, coef, c, st, s):
    """Run one transposed-direct-form-II section in place over ``buf[off:off+n]``.

    Coefficients ``coef[c:c+5]`` are ``b0 b1 b2 a1 a2``; states live in ``st[s:s+2]``.
    """
    b0, b1, b2, a1, a2 = coef[c], coef[c + 1], coef[c + 2], coef[c + 3], coef[c + 4]
    s1, s2 = st[s], st[s + 1]
    for i in range(off, off + n):
        x = buf[i]
        y = b0 * x + s1
        s1 = b1 * x - a1 * y + s2
        s2 = b2 * x - a2 * y
        buf[i] = y
    st[s] = flush(s1)
    st[s + 1] = flush(s2)


@njit(**JIT)
def biquad2(buf, off, n, coef, c, st, s):
    """Two consecutive sections (``coef[c:c+10]``, states ``st[s:s+4]``) on one lane in one
    pass: their recursions overlap in the pipeline instead of running one after the other."""
    b0, b1, b2, a1, a2 = coef[c], coef[c + 1], coef[c + 2], coef[c + 3], coef[c + 4]
    d0, d1, d2, e1, e2 = coef[c + 5], coef[c + 6], coef[c + 7], coef[c + 8], coef[c + 9]
    s1, s2, t1, t2 = st[s], st[s + 1], st[s + 2], st[s + 3]
    for i in range(off, off + n):
        x = buf[i]
        y = b0 * x + s1
        s1 = b1 * x - a1 * y + s2
        s2 = b2 * x - a2 * y
        z = d0 * y + t1
        t1 = d1 * y - e1 * z + t2
        t2 = d2 * y - e2 * z
        buf[i] = z
    st[s] = flush(s1)
    st[s + 1] = flush(s2)
    st[s + 2] = flush(t1)
    st[s + 3] = flush(t2)


@njit(**JIT)
def biquad_pair(buf, off, n, coef, c, st, s):
    """``biquad`` on two lanes at once (``buf[off:]`` and ``buf[off + CHUNK:]``, states
    ``st[s:s+4]``): the two independent recursions overlap in the CPU's pipeline, which
    nearly halves the cost of a stereo EQ."""
    b0, b1, b2, a1, a2 = coef[c], coef[c + 1], coef[c + 2], coef[c + 3], coef[c + 4]
    l1, l2, r1, r2 = st[s], st[s + 1], st[s + 2], st[s + 3]
    for i in range(off, off + n):
        xl = buf[i]
        xr = buf[i + CHUNK]
        yl = b0 * xl + l1
        yr = b0 * xr + r1
        l1 = b1 * xl - a1 * yl + l2
        r1 = b1 * xr - a1 * yr + r2
        l2 = b2 * xl - a2 * yl
        r2 = b2 * xr - a2 * yr
        buf[i] = yl
        buf[i + CHUNK] = yr
    st[s] = flush(l1)
    st[s + 1] = flush(l2)
    st[s + 2] = flush(r1)
    st[s + 3] = flush(r2)


@njit(**JIT)
def biquad_pair2(buf, off, n, coef, c, st, s):
    """Two consecutive sections on two lanes in one pass: four recursions in flight, so the
    pipeline is busy instead of waiting on one recursion's latency."""
    b0, b1, b2, a1, a2 = coef[c], coef[c + 1], coef[c + 2], coef[c + 3], coef[c + 4]
    d0, d1, d2, e1, e2 = coef[c + 5], coef[c + 6], coef[c + 7], coef[c + 8], coef[c + 9]
    l1, l2, r1, r2 = st[s], st[s + 1], st[s + 2], st[s + 3]
    m1, m2, q1, q2 = st[s + 4], st[s + 5], st[s + 6], st[s + 7]
    for i in range(off, off + n):
        xl = buf[i]
        xr = buf[i + CHUNK]
        yl = b0 * xl + l1
        yr = b0 * xr + r1
        l1 = b1 * xl - a1 * yl + l2
        r1 = b1 * xr - a1 * yr + r2
        l2 = b2 * xl - a2 * yl
        r2 = b2 * xr - a2 * yr
        zl = d0 * yl + m1
        zr = d0 * yr + q1
        m1 = d1 * yl - e1 * zl + m2
        q1 = d1 * yr - e1 * zr + q2
        m2 = d2 * yl - e2 * zl
        q2 = d2 * yr - e2 * zr
        buf[i] = zl
        buf[i + CHUNK] = zr
    st[s] = flush(l1)
    st[s + 1] = flush(l2)
    st[s + 2] = flush(r1)
    st[s + 3] = flush(r2)
    st[s + 4] = flush(m1)
    st[s + 5] = flush(m2)
    st[s + 6] = flush(q1)
    st[s + 7] = flush(q2)


@njit(**JIT)
def copy_within(state, dst, src, n):
    """``state[dst:dst+n] = state[src:src+n]`` for ranges apart, as a loop over two views.

    numba's slice assignment checks the views for overlap and walks their strides, which
    costs more than the copy at 64 frames. The loops that run on every block in the usual
    case (source read, matrix, copies, outputs, limiter) index views from 0 rather than
    ``state[offset + i]``: numba wraps negative indices round, and with a computed offset it
    cannot rule them out, so every access carries a compare and select that keep LLVM from
    vectorising. Loops that ramp or run only in passing keep the offsets.
    """
    a = state[dst : dst + n]
    b = state[src : src + n]
    for i in range(n):
        a[i] = b[i]


@njit(**JIT)
def flush(v):
    return v if abs(v) > TINY else 0.0


@njit(**JIT)
def cascade(buf, off, n, coef, c, count, st, s, pair):
    """``count`` sections in series, on one lane or (``pair``) on two adjacent lanes."""
    if not pair:
        for k in range(0, count - 1, 2):
            biquad2(buf, off, n, coef, c + 5 * k, st, s + 2 * k)
        if count % 2:
            biquad(buf, off, n, coef, c + 5 * (count - 1), st, s + 2 * (count - 1))
        return
    for k in range(0, count - 1, 2):
        biquad_pair2(buf, off, n, coef, c + 5 * k, st, s + 4 * k)
    if count % 2:
        biquad_pair(buf, off, n, coef, c + 5 * (count - 1), st, s + 4 * (count - 1))


# --- the kernel --------------------------------------------------------------------------------


@njit(**JIT)
def process(inp, out, shared, params, state, meters, counters):
    """Process one block: ``inp`` (frames, n_in) float32 -> ``out`` (frames, n_out) float32."""
    p = take_parameters(shared, params, counters)
    take_map(p, counters)
    if state[T_SEEN] == 0.0:
        settle(p, state, False)
    if counters[C_METER_RESET] != counters[C_METER_ACK]:
        meters[:M_LEN] = 0.0
        meters[M_LIMITER_MIN] = 1.0
        counters[C_METER_ACK] = counters[C_METER_RESET]
    frames = inp.shape[0]
    ring = tap_ring(meters, inp.shape[1] + out.shape[1])
    written = counters[C_TAP_WRITE]
    # int64 from the first pass of type inference on: a literal 0 would have numba compile
    # the whole chunk chain a second time, for start == 0, which nothing then runs
    start = np.int64(0)
    while start < frames:
        row = (written + start) % TAP_FRAMES
        # a chunk's tap rows never wrap round the ring, so its loops need no wrap of their own
        n = min(CHUNK, frames - start, TAP_FRAMES - row)
        process_chunk(inp, out, start, n, p, state, meters, counters, ring, row)
        start += n
    publish_frames(counters, frames)
    meters[M_FRAMES] += frames
    counters[C_BLOCKS] += 1
    counters[C_FRAMES] += frames


@njit(**JIT)
def process_chunk(inp, out, start, n, p, state, meters, counters, ring, row):
    """One chunk of ``n`` frames from ``start``; its tap rows start at ring row ``row``."""
    mix_sources(inp, start, n, p, state, meters, counters, ring, row)
    tap_inputs(inp, start, n, p, ring, row)
    matrix_and_master(n, p, state)
    ramp_to(state, T_SUBMIX, p[P_SUB], p[P_XFADE])
    mix = T_BUS + BUS_SUBMIX * CHUNK
    for i in range(n):
        state[mix + i] = ramp_next(state, T_SUBMIX)
    for k in range(int(p[P_N_SETS])):
        play_set(k, n, p, state)
    test_signal(n, p, state)
    limit_and_write(out, start, n, p, state, meters, counters, ring, row)


@njit(**JIT)
def test_signal(n, p, state):
    """The calibration test signal: uniform white noise through the P_TEST_SOS cascade (pink,
    band-limited), by the ramped P_TEST_GAIN, added to output P_TEST_OUT before the limiter,
    so the ceiling holds for it too. While its gain rests at zero it costs nothing, and its
    filters start afresh at the next fade-in."""
    ramp_to(state, T_TEST_GAIN, p[P_TEST_GAIN], p[P_TEST_RAMP])
    o = int(p[P_TEST_OUT])
    if (state[T_TEST_GAIN] == 0.0 and state[T_TEST_GAIN + 2] == 0.0) or o < 0:
        state[T_TEST_SOS : T_TEST_SOS + 2 * MAX_TEST_SECTIONS] = 0.0
        return
    buf = T_BUS + BUS_L * CHUNK  # the monitor bus is free once the sets have played it
    for i in range(n):
        state[buf + i] = noise_next(state, T_TEST_NOISE)
    for k in range(min(int(p[P_TEST_NSEC]), MAX_TEST_SECTIONS)):
        biquad(state, buf, n, p, P_TEST_SOS + 5 * k, state, T_TEST_SOS + 2 * k)
    ob = T_OUT + o * CHUNK
    for i in range(n):
        state[ob + i] += ramp_next(state, T_TEST_GAIN) * state[buf + i]
    state[T_TOUCHED + o] = 1.0


@njit(**JIT)
def mix_sources(inp, start, n, p, state, meters, counters, ring, row):
    """Steps 1-2: every source is read, tapped and metered, sent to its outboard inserts,
    delayed into line with an insert's return if asked, and mixed into the monitor bus with
    its ramped gain (trim x match) and crossfade: equal power, or equal gain between
    time-aligned copies (``P_COHERENT_XFADE``)."""
    bl = T_BUS + BUS_L * CHUNK
    br = T_BUS + BUS_R * CHUNK
    sl = T_BUS + LANE_L * CHUNK  # the set lanes are free until the sets play
    sr = T_BUS + LANE_R * CHUNK
    state[bl : bl + n] = 0.0
    state[br : br + n] = 0.0
    selected = int(p[P_SOURCE])
    step = 1.0 / max(p[P_XFADE], 1.0)
    coherent = p[P_COHERENT_XFADE] > 0.5
    cap = int(p[P_DELAY_CAP])
    for s in range(int(p[P_N_SOURCES])):
        base = SOURCES_BASE + s * SRC_STRIDE
        tb = T_SOURCES + s * TS_STRIDE
        ramp_to(state, tb + TS_GAIN, p[base + S_GAIN], p[P_RAMP])
        target = 1.0 if s == selected else 0.0
        fade = state[tb + TS_FADE]
        audible = fade != 0.0 or target != 0.0
        d = int(p[base + S_DELAY])
        # the common case, mixed as the source is read: the selected source, fully faded in,
        # its gain not ramping, no delay line in between
        direct = audible and fade == target and state[tb + TS_GAIN + 2] == 0.0 and d == 0
        sends = False
        for k in range(int(p[P_N_INSERTS])):
            sends |= int(p[INSERTS_BASE + k * INS_STRIDE + I_SOURCE]) == s
        keep = sends or d > 0 or (audible and not direct)
        gain = state[tb + TS_GAIN] if direct else 0.0
        read_source(
            inp, start, n, p, base, state, meters, M_SOURCES + s * 2 * MS_STRIDE, counters, ring, row, keep, gain
        )
        if sends:
            send_inserts(s, n, p, base, state, sl, sr)
        if d > 0:
            pos = int(state[tb + TS_DELAY_POS])
            delay_buffers(state, sl, 2, T_DELAY + (SOURCE_DELAY_LANE + 2 * s) * cap, cap, pos, d, n)
            state[tb + TS_DELAY_POS] = (pos + n) % cap
        if direct or not audible:
            continue
        for i in range(n):
            g = ramp_next(state, tb + TS_GAIN)
            fade = fade_next(fade, target, step)
            g *= fade if coherent else math.sin(HALF_PI * fade)
            state[bl + i] += g * state[sl + i]
            state[br + i] += g * state[sr + i]
        state[tb + TS_FADE] = fade


@njit(**JIT)
def read_source(inp, start, n, p, base, state, meters, mb, counters, ring, row, keep, gain):
    """Read a source's channels (a mono source's twice), each sample once: into the tap
    (``ring`` from row ``row``, its S_TAP0/1 columns) as received;
    zeroed and counted if not finite; metered (raw peak and sum of squares); then added to
    the monitor bus at ``gain`` (0: not), and kept in lanes LANE_L/R if ``keep``."""
    c0 = int(p[base + S_CH0])
    c1 = int(p[base + S_CH1]) if p[base + S_NCH] > 1.0 else c0
    t0 = int(p[base + S_TAP0]) * TAP_PLANE + row
    t1 = int(p[base + S_TAP1]) * TAP_PLANE + row
    sl = T_BUS + LANE_L * CHUNK
    sr = T_BUS + LANE_R * CHUNK
    bl = T_BUS + BUS_L * CHUNK
    br = T_BUS + BUS_R * CHUNK
    mix = gain != 0.0
    bad = 0
    pk0, pk1 = meters[mb + MS_PEAK], meters[mb + MS_STRIDE + MS_PEAK]
    sq0 = 0.0
    sq1 = 0.0
    in0, in1 = inp[start : start + n, c0], inp[start : start + n, c1]
    tap0, tap1 = ring[t0 : t0 + n], ring[t1 : t1 + n]
    bus_l, bus_r = state[bl : bl + n], state[br : br + n]
    lane_l, lane_r = state[sl : sl + n], state[sr : sr + n]
    for i in range(n):
        x0 = in0[i]
        x1 = in1[i]
        tap0[i] = x0
        tap1[i] = x1
        if not (math.isfinite(x0) and math.isfinite(x1)):
            if not math.isfinite(x0):
                x0 = 0.0
                bad += 1
            if not math.isfinite(x1):
                x1 = 0.0
                bad += c1 != c0
        pk0 = max(pk0, abs(x0))
        pk1 = max(pk1, abs(x1))
        sq0 += x0 * x0
        sq1 += x1 * x1
        if mix:
            bus_l[i] += gain * x0
            bus_r[i] += gain * x1
        if keep:
            lane_l[i] = x0
            lane_r[i] = x1
    counters[C_NONFINITE] += bad
    # source meters read the raw source; the read-out applies the trim
    meters[mb + MS_PEAK] = pk0
    meters[mb + MS_STRIDE + MS_PEAK] = pk1
    meters[mb + MS_SUMSQ] += sq0
    meters[mb + MS_STRIDE + MS_SUMSQ] += sq1


@njit(**JIT)
def send_inserts(s, n, p, base, state, sl, sr):
    """Feed source ``s`` (after its trim, before matching) to the sends of its inserts, or,
    while an insert is measured, a pseudo-random noise burst instead."""
    trim = p[base + S_TRIM]
    for k in range(int(p[P_N_INSERTS])):
        ib = INSERTS_BASE + k * INS_STRIDE
        if int(p[ib + I_SOURCE]) != s:
            continue
        o0 = T_OUT + int(p[ib + I_OUT0]) * CHUNK
        o1 = T_OUT + int(p[ib + I_OUT1]) * CHUNK
        two = p[ib + I_NOUT] > 1.0
        state[T_TOUCHED + int(p[ib + I_OUT0])] = 1.0
        state[T_TOUCHED + int(p[ib + I_OUT1])] = 1.0
        if p[ib + I_MEASURE] > 0.5:
            level = p[ib + I_LEVEL]
            for i in range(n):
                v = level * noise_next(state, T_NOISE)
                state[o0 + i] += v
                if two:
                    state[o1 + i] += v
        elif two:
            for i in range(n):
                state[o0 + i] += trim * state[sl + i]
                state[o1 + i] += trim * state[sr + i]
        else:
            for i in range(n):
                state[o0 + i] += trim * 0.5 * (state[sl + i] + state[sr + i])


@njit(**JIT)
def noise_next(state, off):
    """Uniform noise in [-1, 1) from the Park-Miller generator whose state is ``state[off]``:
    deterministic, allocation-free and exact in float64 arithmetic."""
    x = state[off]
    if x < 1.0:
        x = 1.0
    x = (16807.0 * x) % 2147483647.0
    state[off] = x
    return 2.0 * x / 2147483647.0 - 1.0


@njit(**JIT)
def matrix_and_master(n, p, state):
    """Steps 3-4: the monitor matrix (crossfaded between modes) and the master gain ramp."""
    bl = T_BUS + BUS_L * CHUNK
    br = T_BUS + BUS_R * CHUNK
    targets = matrix_coefficients(int(p[P_MATRIX]), p[P_POLARITY] > 0.5)
    moving = False
    for j in range(4):
        ramp_to(state, T_MATRIX + RAMP * j, targets[j], p[P_XFADE])
        moving |= state[T_MATRIX + RAMP * j + 2] > 0.0
    ramp_to(state, T_MASTER, p[P_MASTER], p[P_MASTER_RAMP])
    moving |= state[T_MASTER + 2] > 0.0
    if not moving:
        g = state[T_MASTER]
        ll, lr = g * state[T_MATRIX], g * state[T_MATRIX + RAMP]
        rl, rr = g * state[T_MATRIX + 2 * RAMP], g * state[T_MATRIX + 3 * RAMP]
        bus_l = state[bl : bl + n]
        bus_r = state[br : br + n]
        for i in range(n):
            left, right = bus_l[i], bus_r[i]
            bus_l[i] = ll * left + lr * right
            bus_r[i] = rl * left + rr * right
        return
    for i in range(n):
        ll = ramp_next(state, T_MATRIX)
        lr = ramp_next(state, T_MATRIX + RAMP)
        rl = ramp_next(state, T_MATRIX + 2 * RAMP)
        rr = ramp_next(state, T_MATRIX + 3 * RAMP)
        g = ramp_next(state, T_MASTER)
        left, right = state[bl + i], state[br + i]
        state[bl + i] = g * (ll * left + lr * right)
        state[br + i] = g * (rl * left + rr * right)


@njit(**JIT)
def play_set(k, n, p, state):
    """Step 5 for one speaker set: skipped when silent, else trim and crossfade gain, EQ, bass
    management, each output's own trim, delay, then added to its output buses.

    The crossfade gain is applied before the delay so that the fade travels with the signal;
    a set that has faded out keeps running for its delay (the drain) before it is cleared.
    """
    base = SETS_BASE + k * SET_STRIDE
    tb = T_SETS + k * TK_STRIDE
    target = 1.0 if k == int(p[P_SET]) else 0.0
    fade = state[tb + TK_FADE]
    if fade == 0.0 and target == 0.0 and state[tb + TK_DRAIN] <= 0.0:
        return  # silent, and its delay line has drained
    bl = T_BUS + BUS_L * CHUNK
    br = T_BUS + BUS_R * CHUNK
    ll = T_BUS + LANE_L * CHUNK
    lr = T_BUS + LANE_R * CHUNK
    ls = T_BUS + LANE_SUB * CHUNK
    stereo = p[base + K_NOUT] > 1.0 and p[base + K_MONO] < 0.5
    ramp_to(state, tb + TK_GAIN, p[base + K_GAIN], p[P_RAMP])
    step = 1.0 / max(p[P_XFADE], 1.0)
    steady = state[tb + TK_GAIN + 2] == 0.0 and fade == target
    draining = fade == 0.0 and target == 0.0
    silent_from = n  # the first sample at which the fade-out reached zero in this chunk
    g = state[tb + TK_GAIN] * fade
    for i in range(n):
        if not steady:
            fade = fade_next(fade, target, step)
            g = ramp_next(state, tb + TK_GAIN) * math.sin(HALF_PI * fade)
            if fade == 0.0 and silent_from == n:
                silent_from = i
        if stereo:
            state[ll + i] = g * state[bl + i]
            state[lr + i] = g * state[br + i]
        else:
            state[ll + i] = g * 0.5 * (state[bl + i] + state[br + i])
    state[tb + TK_FADE] = fade
    cascade(state, ll, n, p, base + K_BANDS, int(p[base + K_NBANDS]), state, tb + TK_BANDS, stereo)
    two = p[base + K_NOUT] > 1.0
    if not stereo:
        copy_within(state, lr, ll, n)
    has_sub = p[base + K_SUB_OUT] >= 0.0
    if has_sub:
        bass_management(n, p, base, tb, state, two)
    trim_outputs(n, p, base, tb, state, 2 if two else 1)
    delay_lanes(k, n, p, base, tb, state, 3 if has_sub else 2)

    # a set fading out plays on until its last faded sample has left the delay line, and not
    # a sample longer, so where it stops does not depend on the block size
    playing = fade > 0.0 or target > 0.0
    if playing:
        until = n
    elif draining:
        until = int(state[tb + TK_DRAIN])
    else:
        until = silent_from + longest_delay(p, base)
    play = min(n, until)
    add_to_output(state, ll, int(p[base + K_OUT0]), play)
    if two:
        add_to_output(state, lr, int(p[base + K_OUT1]), play)
    if has_sub:
        add_to_output(state, ls, int(p[base + K_SUB_OUT]), play)
    if playing:
        return
    state[tb + TK_DRAIN] = until - n
    if until <= n:
        clear_set(k, p, state)


@njit(**JIT)
def add_to_output(state, lane, o, n):
    """Add ``n`` samples of bus ``lane`` to output ``o``'s bus (0-based) and mark it touched."""
    dst = state[T_OUT + o * CHUNK : T_OUT + o * CHUNK + n]
    src = state[lane : lane + n]
    for i in range(n):
        dst[i] += src[i]
    state[T_TOUCHED + o] = 1.0


@njit(**JIT)
def bass_management(n, p, base, tb, state, two):
    """LR4 high-pass on the mains, LR4 low-pass on the sub of the sum of what the mains play
    (L+R for two outputs; the mono lane for one), blended by the ``sub`` crossfade
    (BUS_SUBMIX), so mains + sub sum flat. The filters run even while ``sub`` is off so that
    engaging it never starts from stale filter state."""
    ll = T_BUS + LANE_L * CHUNK
    ls = T_BUS + LANE_SUB * CHUNK
    dry = T_BUS + BUS_DRY * CHUNK
    mix = T_BUS + BUS_SUBMIX * CHUNK
    if two:
        for i in range(n):
            state[ls + i] = state[ll + i] + state[ll + CHUNK + i]
    else:
        copy_within(state, ls, ll, n)
    cascade(state, ls, n, p, base + K_LOWPASS, 2, state, tb + TK_LOWPASS, False)
    ramp_to(state, tb + TK_SUB_GAIN, p[base + K_SUB_GAIN], p[P_RAMP])
    for i in range(n):
        state[ls + i] *= state[mix + i] * ramp_next(state, tb + TK_SUB_GAIN)
    copy_within(state, dry, ll, n)
    copy_within(state, dry + CHUNK, ll + CHUNK, n)
    cascade(state, ll, n, p, base + K_HIGHPASS, 2, state, tb + TK_HIGHPASS, True)
    for lane in range(2):
        lo = ll + lane * CHUNK
        dl = dry + lane * CHUNK
        for i in range(n):
            m = state[mix + i]
            state[lo + i] = m * state[lo + i] + (1.0 - m) * state[dl + i]


@njit(**JIT)
def trim_outputs(n, p, base, tb, state, outputs):
    """Each of the set's ``outputs`` (1 or 2) lanes by its own trim, ramped so that a reload
    that changes it does not click; a steady trim of 0 dB costs nothing."""
    for j in range(outputs):
        off = tb + TK_LANE_GAIN + j * RAMP
        ramp_to(state, off, p[base + K_LANE_GAIN + j], p[P_RAMP])
        lane = T_BUS + (LANE_L + j) * CHUNK
        if state[off + 2] > 0.0:
            for i in range(n):
                state[lane + i] *= ramp_next(state, off)
        elif state[off] != 1.0:
            g = state[off]
            for i in range(n):
                state[lane + i] *= g


@njit(**JIT)
def longest_delay(p, base):
    """The longest delay (samples) of the set starting at ``base``: its own plus a lane's."""
    return int(p[base + K_DELAY]) + int(
        max(p[base + K_LANE_DELAY], p[base + K_LANE_DELAY + 1], p[base + K_LANE_DELAY + 2])
    )


@njit(**JIT)
def delay_lanes(k, n, p, base, tb, state, lanes):
    """Delay set ``k``'s lanes (its outputs, then the sub if ``lanes`` is 3) by K_DELAY plus
    each lane's own K_LANE_DELAY samples."""
    if longest_delay(p, base) <= 0:
        return
    cap = int(p[P_DELAY_CAP])
    pos = int(state[tb + TK_DELAY_POS])
    ring = T_DELAY + k * 3 * cap
    for lane in range(lanes):
        d = int(p[base + K_DELAY]) + int(p[base + K_LANE_DELAY + lane])
        delay_buffers(state, T_BUS + (LANE_L + lane) * CHUNK, 1, ring + lane * cap, cap, pos, d, n)
    state[tb + TK_DELAY_POS] = (pos + n) % cap


@njit(**JIT)
def delay_buffers(state, buf, lanes, ring, cap, pos, d, n):
    """Delay ``lanes`` adjacent CHUNK buses from ``buf`` by ``d`` samples through adjacent
    rings of ``cap`` samples from ``ring``, written at ``pos``.

    The whole chunk is written before it is read back; the capacity leaves room for the
    longest delay plus a chunk, so no sample is overwritten before it is read.
    """
    back = (pos - d) % cap
    for lane in range(lanes):
        ring_copy(state, buf + lane * CHUNK, ring + lane * cap, cap, pos, n, True)
        ring_copy(state, buf + lane * CHUNK, ring + lane * cap, cap, back, n, False)


@njit(**JIT)
def ring_copy(state, buf, ring, cap, pos, n, into_ring):
    """Copy ``n`` samples between a bus and a ring buffer starting at ring position ``pos``."""
    first = min(n, cap - pos)
    if into_ring:
        copy_within(state, ring + pos, buf, first)
        copy_within(state, ring, buf + first, n - first)
    else:
        copy_within(state, buf, ring + pos, first)
        copy_within(state, buf + first, ring, n - first)


@njit(**JIT)
def clear_set(k, p, state):
    """Forget a silent set's filter and delay history so it re-enters cleanly later."""
    tb = T_SETS + k * TK_STRIDE
    state[tb + TK_HIGHPASS : tb + TK_STRIDE] = 0.0
    cap = int(p[P_DELAY_CAP])
    ring = T_DELAY + k * 3 * cap
    state[ring : ring + 3 * cap] = 0.0


@njit(**JIT)
def limit_and_write(out, start, n, p, state, meters, counters, ring, row):
    """Step 6: one peak limiter linked across all outputs (zero latency: instant attack,
    exponential release), then a hard clip at the ceiling; output meters, and the tapped
    outputs (``P_TAP_OUT``) into the tap as they are written. The output buses are left
    cleared; those nothing was added to are written as silence without more ado."""
    ceiling = p[P_CEILING]
    release = p[P_RELEASE]
    n_out = out.shape[1]
    peaks = T_BUS + BUS_DRY * CHUNK  # the lanes' scratch is free again by now
    gains = T_BUS + BUS_DRY_R * CHUNK
    level = state[peaks : peaks + n]  # the loudest output, sample by sample
    level[:] = 0.0
    for o in range(n_out):
        if p[OUTS_BASE + o] > 0.5 or state[T_TOUCHED + o] == 0.0:
            continue  # an insert send (outboard gear is not the speakers), or silence
        bus = state[T_OUT + o * CHUNK : T_OUT + o * CHUNK + n]
        for i in range(n):
            level[i] = max(level[i], abs(bus[i]))
    top = 0.0
    for i in range(n):
        top = max(top, level[i])
    env = state[T_LIMITER]
    # at rest, with nothing reaching the ceiling, the gain stays exactly 1 all chunk long: the
    # usual case, which then costs no recursion
    rest = env == 1.0 and top <= ceiling
    if not rest:
        lowest = meters[M_LIMITER_MIN]
        limited = 0
        for i in range(n):
            env += (1.0 - env) * release
            if env >= 1.0 - 1e-9:
                # released: exactly 1 from here (the recursion alone stalls a few ulps under
                # it, and the chunk after could not take the rest path)
                env = 1.0
            peak = level[i]
            if peak * env > ceiling:
                # a hair under the ceiling, so that the hard clip below only ever counts real
                # failures, not rounding
                env = ceiling / peak * (1.0 - 1e-12)
            if env < 1.0 - 1e-9:
                limited += 1
                lowest = min(lowest, env)
            state[gains + i] = env
        state[T_LIMITER] = env
        meters[M_LIMITER_MIN] = lowest
        counters[C_LIMITED] += limited
    clipped = 0
    for o in range(n_out):
        col = int(p[P_TAP_OUT + o])
        tapped = col >= 0
        t = col * TAP_PLANE + row
        if state[T_TOUCHED + o] == 0.0:
            out[start : start + n, o] = 0.0  # its meters stay as they are: adding silence
            if tapped:
                ring[t : t + n] = 0.0
            continue
        ob = T_OUT + o * CHUNK
        mb = M_OUTPUTS + o * MS_STRIDE
        pk = meters[mb + MS_PEAK]
        sq = 0.0
        unity = rest or p[OUTS_BASE + o] > 0.5  # an insert send is not limited
        for i in range(n):
            v = state[ob + i] if unity else state[ob + i] * state[gains + i]
            if not abs(v) <= ceiling:  # also catches NaN
                clipped += 1
                v = 0.0 if v != v else math.copysign(ceiling, v)
            out[start + i, o] = v
            if tapped:
                ring[t + i] = v
            pk = max(pk, abs(v))
            sq += v * v
        meters[mb + MS_PEAK] = pk
        meters[mb + MS_SUMSQ] += sq
        state[ob : ob + n] = 0.0  # ready for the next chunk to add to
        state[T_TOUCHED + o] = 0.0
    counters[C_CLIPPED] += clipped


@njit(**JIT)
def settle(p, state, master):
    """Jump every ramp and crossfade to its target (the master gain too if ``master``)."""
    ramp_snap(state, T_MASTER, p[P_MASTER] if master else 0.0)
    targets = matrix_coefficients(int(p[P_MATRIX]), p[P_POLARITY] > 0.5)
    for j in range(4):
        ramp_snap(state, T_MATRIX + RAMP * j, targets[j])
    ramp_snap(state, T_SUBMIX, p[P_SUB])
    state[T_LIMITER] = 1.0
    for s in range(int(p[P_N_SOURCES])):
        tb = T_SOURCES + s * TS_STRIDE
        state[tb + TS_FADE] = 1.0 if s == int(p[P_SOURCE]) else 0.0
        ramp_snap(state, tb + TS_GAIN, p[SOURCES_BASE + s * SRC_STRIDE + S_GAIN])
    for k in range(int(p[P_N_SETS])):
        tb = T_SETS + k * TK_STRIDE
        base = SETS_BASE + k * SET_STRIDE
        state[tb + TK_FADE] = 1.0 if k == int(p[P_SET]) else 0.0
        ramp_snap(state, tb + TK_GAIN, p[base + K_GAIN])
        ramp_snap(state, tb + TK_SUB_GAIN, p[base + K_SUB_GAIN])
        for j in range(2):
            ramp_snap(state, tb + TK_LANE_GAIN + j * RAMP, p[base + K_LANE_GAIN + j])
    state[T_SEEN] = 1.0


@njit(**JIT)
def render(inp, out, blocksize, shared, params, state, meters, counters):
    """The offline host: run ``process`` over a whole signal in blocks of ``blocksize``."""
    frames = inp.shape[0]
    for start in range(0, frames, blocksize):
        stop = min(start + blocksize, frames)
        process(inp[start:stop], out[start:stop], shared, params, state, meters, counters)
