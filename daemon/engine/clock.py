"""The monotonic clock and an absolute-deadline sleep, callable from numba code without the GIL.

Both are LLVM calls to libc's ``clock_gettime``/``clock_nanosleep`` by symbol name, resolved
when the compiled code is loaded, so functions using them stay cacheable (a ctypes function
pointer would be baked into the machine code as an address and defeat ``cache=True``).
``CLOCK_MONOTONIC`` is the clock behind Python's ``time.monotonic_ns()``, so nanosecond stamps
written by compiled code compare directly with it.
"""

from __future__ import annotations

import ctypes
import ctypes.util

from llvmlite import binding as llvm_binding
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.extending import intrinsic

CLOCK_MONOTONIC = 1
TIMER_ABSTIME = 1
EINTR = 4

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
for _symbol in ("clock_gettime", "clock_nanosleep"):
    # Make the symbols known to numba's JIT linker whatever libraries it searches by default.
    llvm_binding.add_symbol(_symbol, ctypes.cast(getattr(_libc, _symbol), ctypes.c_void_p).value)

_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
#: struct timespec on LP64 Linux: time_t tv_sec, long tv_nsec
_TIMESPEC = ir.LiteralStructType([_I64, _I64])
_NS_PER_S = 1_000_000_000


def _libc_function(builder, name: str, return_type, argument_types):
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(return_type, argument_types), name)


@intrinsic
def monotonic_ns(typingctx):
    """CLOCK_MONOTONIC now, in ns (the same clock as ``time.monotonic_ns()``)."""

    def codegen(context, builder, signature, args):
        clock_gettime = _libc_function(builder, "clock_gettime", _I32, [_I32, _TIMESPEC.as_pointer()])
        spec = cgutils.alloca_once(builder, _TIMESPEC)
        builder.call(clock_gettime, [_I32(CLOCK_MONOTONIC), spec])
        seconds = builder.load(cgutils.gep_inbounds(builder, spec, 0, 0))
        nanoseconds = builder.load(cgutils.gep_inbounds(builder, spec, 0, 1))
        return builder.add(builder.mul(seconds, _I64(_NS_PER_S)), nanoseconds)

    return types.int64(), codegen


@intrinsic
def sleep_until_ns(typingctx, deadline):
    """Sleep until CLOCK_MONOTONIC reaches ``deadline`` (ns); returns at once if it has passed.

    Returns 0, or the errno of a failure other than an interrupted sleep (which is resumed).
    """
    if not isinstance(deadline, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        clock_nanosleep = _libc_function(
            builder,
            "clock_nanosleep",
            _I32,
            [_I32, _I32, _TIMESPEC.as_pointer(), _TIMESPEC.as_pointer()],
        )
        when = context.cast(builder, args[0], signature.args[0], types.int64)
        spec = cgutils.alloca_once(builder, _TIMESPEC)
        builder.store(builder.sdiv(when, _I64(_NS_PER_S)), cgutils.gep_inbounds(builder, spec, 0, 0))
        builder.store(builder.srem(when, _I64(_NS_PER_S)), cgutils.gep_inbounds(builder, spec, 0, 1))
        # An absolute deadline makes resuming after EINTR exact: just call again.
        loop = builder.append_basic_block("sleep_again")
        done = builder.append_basic_block("slept")
        builder.branch(loop)
        builder.position_at_end(loop)
        status = builder.call(
            clock_nanosleep,
            [_I32(CLOCK_MONOTONIC), _I32(TIMER_ABSTIME), spec, _TIMESPEC.as_pointer()(None)],
        )
        builder.cbranch(builder.icmp_signed("==", status, _I32(EINTR)), loop, done)
        builder.position_at_end(done)
        return builder.sext(status, _I64)

    return types.int64(deadline), codegen
