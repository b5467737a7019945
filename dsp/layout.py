"""Memory layout of the monitor path: where each value lives in the kernel's flat buffers.

The compiled kernel (``dsp/path.py``) sees five preallocated arrays and nothing else, so that a
numba ``@cfunc`` PortAudio callback can hand them over as raw pointers:

``shared``   float64[P_LEN]       parameters the control plane publishes (seqlock on C_SEQ)
``params``   float64[2, P_LEN]    the kernel's private double-buffered copy of ``shared``
``state``    float64[state_len]   ramps, filter states, delay lines, scratch (kernel-private)
``meters``   float64[meters_len]  peak / sum-of-squares accumulators and the audio tap the
                                  control plane reads
``counters`` int64[C_LEN]         sequence numbers and statistics; [HOST_BASE:] belongs to the host

Offsets are module-level integers, so numba compiles them as constants. Integer-valued
parameters (channel indices, counts, modes) are stored as float64 and truncated on use.
Channels are 0-based here; configs speak 1-based.
"""

from __future__ import annotations

#: Limits fixed at compile time. Sets play 1 or 2 outputs (+ an optional sub).
MAX_SOURCES = 16
MAX_SETS = 16
MAX_BANDS = 24  # per set: configured EQ plus an emulation profile's bands
MAX_CHANNELS = 64  # inputs and outputs each
MAX_DELAY_MS = 50.0
#: Scratch length: the kernel processes longer blocks in slices of this many frames.
CHUNK = 1024

# --- matrix modes (target `solo` and `mono`) --------------------------------------------------
MATRIX_STEREO, MATRIX_MONO, MATRIX_LEFT, MATRIX_RIGHT, MATRIX_SIDE = range(5)

# --- shared / params: globals -----------------------------------------------------------------
P_SOURCE = 0  # selected source index
P_SET = 1  # selected speaker-set index
P_MASTER = 2  # master gain target, linear: volume x dim x mute
P_MATRIX = 3  # MATRIX_* mode
P_POLARITY = 4  # 1.0 inverts the left channel
P_SUB = 5  # 1.0 = bass management on
P_RAMP = 6  # gain ramp length (samples)
P_MASTER_RAMP = 7  # master-gain ramp length (samples); longer at start-up
P_XFADE = 8  # source / set / sub / matrix crossfade length (samples)
P_CEILING = 9  # output ceiling, linear
P_RELEASE = 10  # limiter release: fraction of the remaining gain recovered per sample
P_N_SOURCES = 11
P_N_SETS = 12
P_DELAY_CAP = 13  # delay-line capacity per lane (samples)
P_N_IN = 14
P_N_OUT = 15
#: 1.0: source crossfades are equal-gain (linear), for sources that are time-aligned copies of
#: each other (an insert's dry source and its return): equal power would swell 3 dB mid-fade
P_COHERENT_XFADE = 16
GLOBALS = 17

# --- per source (stride SRC_STRIDE from SOURCES_BASE) -----------------------------------------
S_NCH = 0  # 1 (mono) or 2 (stereo)
S_CH0 = 1  # input channel (0-based)
S_CH1 = 2
S_GAIN = 3  # trim x loudness match x insert compensation, linear (ramped)
S_TRIM = 4  # trim alone, linear: the level sent to an outboard insert
S_DELAY = 5  # samples: delays the source to line it up with an insert's return
S_TAP0 = 6  # tap columns of S_CH0 and S_CH1: a source's inputs are tapped as it is read
S_TAP1 = 7
SRC_STRIDE = 8
SOURCES_BASE = GLOBALS

# --- per speaker set (stride SET_STRIDE from SETS_BASE) ---------------------------------------
K_NOUT = 0  # 1 or 2
K_OUT0 = 1  # output channel (0-based)
K_OUT1 = 2
K_SUB_OUT = 3  # sub output channel, -1 without a sub
K_GAIN = 4  # set trim, linear (ramped)
K_SUB_GAIN = 5  # sub trim, linear (ramped)
K_DELAY = 6  # samples
K_NBANDS = 7
K_MONO = 8  # 1.0: both outputs play the mono sum (mono emulation)
K_HIGHPASS = 10  # 2 sections x 5 coefficients: LR4 high-pass for the mains
K_LOWPASS = 20  # 2 sections x 5 coefficients: LR4 low-pass for the sub
K_BANDS = 30  # MAX_BANDS sections x 5 coefficients
K_LANE_GAIN = K_BANDS + 5 * MAX_BANDS  # per output (2): its own trim, linear (ramped)
K_LANE_DELAY = K_LANE_GAIN + 2  # per lane (outputs 1, 2, sub): its own delay, samples, on top of K_DELAY
SET_STRIDE = K_LANE_DELAY + 3
SETS_BASE = SOURCES_BASE + MAX_SOURCES * SRC_STRIDE

# --- per outboard insert: a source sent to outputs; its return is a source of its own -----------
MAX_INSERTS = 4
I_SOURCE = 0  # index of the source sent
I_NOUT = 1  # 1 or 2 send outputs
I_OUT0 = 2  # send output channels (0-based)
I_OUT1 = 3
I_MEASURE = 4  # 1.0: the send plays the measurement noise instead of the source
I_LEVEL = 5  # measurement noise peak level, linear
INS_STRIDE = 6
INSERTS_BASE = SETS_BASE + MAX_SETS * SET_STRIDE
P_N_INSERTS = INSERTS_BASE + MAX_INSERTS * INS_STRIDE
#: per output: 1.0 when it is an insert send (outside the speakers' linked limiter)
OUTS_BASE = P_N_INSERTS + 1


# --- the calibration test signal: uniform white noise through a cascade of sections (pink,
# band-limited), faded in and out by a ramped gain, added to one output before the limiter ---
MAX_TEST_SECTIONS = 8
TEST_BASE = OUTS_BASE + MAX_CHANNELS
P_TEST_OUT = TEST_BASE  # output (0-based) playing the test signal; -1: none
P_TEST_GAIN = TEST_BASE + 1  # its gain, linear, ramped over P_TEST_RAMP samples (the fades)
P_TEST_RAMP = TEST_BASE + 2
P_TEST_NSEC = TEST_BASE + 3  # sections in use
P_TEST_SOS = TEST_BASE + 4  # MAX_TEST_SECTIONS x 5 coefficients (b0 b1 b2 a1 a2)

# --- the meter tap (dsp/tap.py): which channels each row carries, in which column -------------
TAP_BASE = P_TEST_SOS + 5 * MAX_TEST_SECTIONS
P_TAP_GEN = TAP_BASE  # the map's generation: PathBuffers counts its changes
#: per input no source reads (the calibration mic): its tap column, -1 when it is not tapped
P_TAP_IN = TAP_BASE + 1
#: per output: its tap column, -1 when it is not tapped
P_TAP_OUT = P_TAP_IN + MAX_CHANNELS

P_LEN = P_TAP_OUT + MAX_CHANNELS

# --- state: ramps are (value, step, samples left, target) ---------------------------------------
RAMP = 4
T_MASTER = 0  # master gain ramp
T_MATRIX = 4  # 4 ramps: matrix coefficients ll, lr, rl, rr (left-polarity folded in)
T_SUBMIX = 20  # ramp 0..1: how far bass management is engaged
T_LIMITER = 24  # limiter gain envelope
T_SEEN = 25  # 1.0 once the state has taken its first parameters
T_NOISE = 26  # measurement-noise generator state (an integer held exactly in a float64)
#: per output: 1.0 when something was added to its bus in this chunk; a bus nothing touched is
#: all zeros, so the kernel neither clears, limits nor meters it
T_TOUCHED = 32
#: the test signal: gain ramp, noise generator, section states (cleared whenever it is silent)
T_TEST_GAIN = T_TOUCHED + MAX_CHANNELS
T_TEST_NOISE = T_TEST_GAIN + RAMP
T_TEST_SOS = T_TEST_NOISE + 1
T_GLOBALS = T_TEST_SOS + 2 * MAX_TEST_SECTIONS

#: per source: crossfade position 0..1, gain ramp, delay write index
TS_FADE = 0
TS_GAIN = 1
TS_DELAY_POS = TS_GAIN + RAMP
TS_STRIDE = TS_DELAY_POS + 1
T_SOURCES = T_GLOBALS

#: per set: crossfade position, gain ramp, sub-gain ramp, delay write index, drain, the outputs'
#: trim ramps, filter states (the filter states onwards are cleared when a set falls silent)
TK_FADE = 0
TK_GAIN = 1
TK_SUB_GAIN = TK_GAIN + RAMP
TK_DELAY_POS = TK_SUB_GAIN + RAMP
TK_DRAIN = TK_DELAY_POS + 1  # samples a faded-out set keeps running so its delay line empties
TK_LANE_GAIN = TK_DRAIN + 1  # 2 ramps: the outputs' own trims
TK_HIGHPASS = TK_LANE_GAIN + 2 * RAMP  # 2 sections x 2 lanes x 2 states
TK_LOWPASS = TK_HIGHPASS + 8  # 2 sections x 2 states
TK_BANDS = TK_LOWPASS + 4  # MAX_BANDS x 2 lanes x 2 states
TK_STRIDE = TK_BANDS + 4 * MAX_BANDS
T_SETS = T_SOURCES + MAX_SOURCES * TS_STRIDE

#: scratch buses, CHUNK frames each: monitor L, R; set lanes L, R, sub; full-range copies of
#: lanes L, R; the per-sample sub-mix ramp; then one bus per output. Pairs that are filtered
#: together (L, R) must stay adjacent.
T_BUS = T_SETS + MAX_SETS * TK_STRIDE
BUS_L, BUS_R, LANE_L, LANE_R, LANE_SUB, BUS_DRY, BUS_DRY_R, BUS_SUBMIX = range(8)
N_BUSES = 8
T_OUT = T_BUS + N_BUSES * CHUNK
#: delay lines follow the output buses: MAX_SETS x 3 lanes x capacity, then MAX_SOURCES x 2
#: lanes x capacity for the sources' alignment delays
T_DELAY = T_OUT + MAX_CHANNELS * CHUNK
SOURCE_DELAY_LANE = MAX_SETS * 3  # lane index of source 0, channel 0

# --- meters -------------------------------------------------------------------------------------
#: per source channel (2 per source, pre-volume, after trim): sample peak, sum of squares
MS_PEAK = 0
MS_SUMSQ = 1
MS_STRIDE = 2
M_SOURCES = 0
#: per output channel (post-limiter): sample peak, sum of squares
M_OUTPUTS = M_SOURCES + MAX_SOURCES * 2 * MS_STRIDE
M_FRAMES = M_OUTPUTS + MAX_CHANNELS * MS_STRIDE  # frames accumulated since the last reset
M_LIMITER_MIN = M_FRAMES + 1  # lowest limiter gain since the last reset (linear)
M_LEN = M_LIMITER_MIN + 1
#: The tap: float32 rings (packed two to a float64 word) of the last TAP_FRAMES frames, one
#: per tapped channel (column): the tapped inputs (as received), then the tapped outputs (as
#: sent), each in ascending order (``dsp/tap.py``). A channel's ring (its plane) is contiguous,
#: so that the kernel's writes of one channel are; the planes are TAP_PLANE samples apart, a
#: cache line more than a power of two, so that a frame's samples do not all fall into one
#: cache set. Room is kept for every channel, so that a reload that taps more needs no new
#: arrays. The loudness meters run on it outside the audio thread; C_TAP_WRITE counts the
#: frames written so far.
M_TAP = M_LEN
TAP_FRAMES = 65536  # 1.4 s at 48 kHz, 0.34 s at 192 kHz: the meters may drain it slowly
TAP_PLANE = TAP_FRAMES + 16

# --- counters -------------------------------------------------------------------------------------
C_SEQ = 0  # written by the control plane: odd while it writes `shared`
C_APPLIED = 1  # the sequence number of the parameters in use
C_ACTIVE = 2  # which row of `params` is in use
C_METER_RESET = 3  # written by the control plane: bump to ask for a meter reset
C_METER_ACK = 4  # the reset request last honoured
C_BLOCKS = 5  # kernel calls
C_FRAMES = 6  # frames processed
C_NONFINITE = 7  # non-finite input samples replaced by 0
C_LIMITED = 8  # output frames where the limiter reduced gain
C_CLIPPED = 9  # output samples the final hard clip caught
C_TORN = 10  # parameter reads retried because the writer was busy
C_TAP_WRITE = 11  # frames written into the meter tap since the start
C_TAP_GEN = 12  # the generation (P_TAP_GEN) of the tap map the kernel writes with
C_TAP_FROM = 13  # the first tap frame written with it
HOST_BASE = 32
C_LEN = 256


def state_len(delay_capacity: int) -> int:
    """Length of the ``state`` array for a delay-line capacity of ``delay_capacity`` samples."""
    return T_DELAY + (MAX_SETS * 3 + MAX_SOURCES * 2) * delay_capacity


def delay_capacity(samplerate: float) -> int:
    """Ring-buffer samples for MAX_DELAY_MS at ``samplerate`` (Hz): the longest delay plus a
    whole chunk, which the kernel writes before reading it back."""
    return round(MAX_DELAY_MS * 1e-3 * samplerate) + CHUNK + 1


def meters_len(n_in: int, n_out: int) -> int:
    """Length of the ``meters`` array: the accumulators, then the tap ring."""
    return M_TAP + (TAP_PLANE * (n_in + n_out) + 1) // 2
