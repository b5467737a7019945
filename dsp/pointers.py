"""Low-level numba intrinsics the real-time code needs and numba does not expose.

``memory_fence`` orders the seqlock's reads and writes across cores (ARM reorders plain
loads and stores; x86 only store-load). ``float64_pointer``/``float32_pointer``/
``int64_pointer`` turn an address held in an int64 (the @cfunc callback's pointer table)
into a typed pointer for ``numba.carray``.
"""

from __future__ import annotations

from numba import types
from numba.core.extending import intrinsic


@intrinsic
def memory_fence(typingctx):
    """A full (sequentially consistent) memory barrier."""

    def codegen(context, builder, signature, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.none(), codegen


def _pointer_from_address(element_type):
    @intrinsic
    def cast(typingctx, address):
        if not isinstance(address, types.Integer):
            return None
        pointer_type = types.CPointer(element_type)

        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(pointer_type))

        return pointer_type(address), codegen

    return cast


float64_pointer = _pointer_from_address(types.float64)
float32_pointer = _pointer_from_address(types.float32)
int64_pointer = _pointer_from_address(types.int64)
