"""Element-wise functions written so that LLVM vectorises them.

There is no SVML on the machines fastrnn targets, so ``np.exp`` and ``np.tanh``
inside njit compile to one scalar libm call per element (~14 ns).  The versions
here are straight-line arithmetic (range reduction, a polynomial, an exponent
built from bits) that LLVM turns into AVX-512 code, an order of magnitude
cheaper, and accurate to a few units in the last place.

All functions here are compiled with :data:`fastrnn._kernels.jit.EXACT_FASTMATH` (no
reassociation), so the careful order of the range reduction is kept.

Each element-wise function has a float64 and a float32 version, chosen by the
type of the element at compile time (:func:`_exp`, :func:`_tanh`,
:func:`_sigmoid`): a float32 model's activations stay in float32, sixteen
lanes of AVX-512 instead of eight.  Error bounds, in units in the last place
of the result's dtype, measured against NumPy in float64 (and checked by the
tests; a result below the dtype's smallest normal number is off by less than
that number instead):

========  ======================  ================================
function  float64                 float32
========  ======================  ================================
exp       1 ulp; 0 below -708     1 ulp; 0 below -86 (error < 5e-38)
tanh      3 ulp                   4 ulp
sigmoid   4 ulp                   3 ulp
========  ======================  ================================
"""

import numpy as np
from llvmlite import ir
from numba import config, types
from numba.extending import intrinsic, overload

from fastrnn._kernels.jit import EXACT_FASTMATH, kernel

__all__ = [
    "exp_",
    "tanh_",
    "sigmoid_",
    "tanh_into",
    "row_max",
    "softmax_weights",
    "softmax_columns",
]

_LOG2E = 1.4426950408889634
# ln 2 split in two (fdlibm): _LN2_HI has trailing zero bits, so k * _LN2_HI is exact.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
# Below _EXP_MIN exp(x) is subnormal and the kernels return 0 (an error below
# 3e-308); above _EXP_MAX = log(largest float64) it is Inf.
_EXP_MIN = -708.0
_EXP_MAX = 709.782712893384
# tanh(x) rounds to +-1 in float64 for |x| > 19.06.
_TANH_SATURATE = 20.0


@intrinsic
def _bits_to_float_intrinsic(typingctx, bits):
    """Reinterpret the bits of an int64 as a float64 (no conversion)."""
    if bits != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


def _bits_to_float_python(bits):
    """The same in plain Python, for NUMBA_DISABLE_JIT=1 (intrinsics cannot run there).

    Python integers do not wrap, so the bits beyond the 64th (from a shift
    that overflows int64 in compiled code) are dropped here.
    """
    return float(np.array(bits & 0xFFFF_FFFF_FFFF_FFFF, dtype=np.uint64).view(np.float64))


@intrinsic
def _float_to_bits_intrinsic(typingctx, value):
    """Reinterpret the bits of a float64 as an int64 (no conversion)."""
    if value != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


def _float_to_bits_python(value):
    """The same in plain Python, for NUMBA_DISABLE_JIT=1."""
    return int(np.array(value, dtype=np.float64).view(np.int64))


@intrinsic
def _low_bits_to_exponent32_intrinsic(typingctx, value):
    """The float32 whose bits are those of ``value`` shifted left by 23 (into the exponent)."""
    if value != types.float32:
        return None

    def codegen(context, builder, signature, args):
        bits = builder.bitcast(args[0], ir.IntType(32))
        return builder.bitcast(builder.shl(bits, ir.Constant(ir.IntType(32), 23)), ir.FloatType())

    return types.float32(types.float32), codegen


def _low_bits_to_exponent32_python(value):
    """The same in plain Python, for NUMBA_DISABLE_JIT=1."""
    bits = int(np.array(value, dtype=np.float32).view(np.uint32)) << 23
    return np.array(bits & 0xFFFF_FFFF, dtype=np.uint32).view(np.float32)[()]


_bits_to_float = _bits_to_float_python if config.DISABLE_JIT else _bits_to_float_intrinsic
_float_to_bits = _float_to_bits_python if config.DISABLE_JIT else _float_to_bits_intrinsic
_low_bits_to_exponent32 = (_low_bits_to_exponent32_python if config.DISABLE_JIT
                           else _low_bits_to_exponent32_intrinsic)


@kernel(fastmath=EXACT_FASTMATH, inline="always")
def _expm1_poly(r):
    # Taylor series of e^r - 1 to degree 13 for |r| <= ln2/2: error < 1e-17,
    # and no cancellation near r = 0 (the series starts at r).
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    return p * r


@kernel(fastmath=EXACT_FASTMATH, inline="always")
def _split(y):
    """Cody-Waite reduction: y = k ln2 + r with |r| <= ln2/2; returns (r, k).

    ``k`` is a whole float64; NaN is reduced as 0 (callers pass NaN through
    themselves), so :func:`_pow2` never sees it.
    """
    y = y if y == y else 0.0
    k = np.floor(y * _LOG2E + 0.5)
    r = (y - k * _LN2_HI) - k * _LN2_LO
    return r, k


# 2**52 + 1023: for a whole k in [-1023, 1023], k + _POW2_SHIFT is exact and its
# low mantissa bits hold the integer k + 1023.
_POW2_SHIFT = 4503599627371519.0


@kernel(fastmath=EXACT_FASTMATH, inline="always")
def _pow2(k):
    """2.0**k for a whole float64 k in [-1023, 1023] (k = -1023 gives 0), from bits.

    Adding 2**52 + 1023 puts k + 1023 in the low bits of a float64; shifting
    those bits into the exponent field makes 2**k.  Only an addition, a
    reinterpretation and an integer shift: a float-to-int64 conversion would
    do the same, but AVX2 has no vector instruction for it, and LLVM then
    converts one element at a time (tanh and exp were measurably slower so).
    """
    return _bits_to_float(_float_to_bits(k + _POW2_SHIFT) << 52)


@kernel(fastmath=EXACT_FASTMATH, inline="always")
def _exp64(x):
    """e**x; 0 below _EXP_MIN, Inf above _EXP_MAX, NaN for NaN.  Branch-free."""
    r, k = _split(min(max(x, _EXP_MIN), _EXP_MAX))
    # 2**(k-1) * 2 rather than 2**k: k reaches 1024 just below _EXP_MAX.
    result = (_expm1_poly(r) + 1.0) * _pow2(k - 1.0) * 2.0
    result = result if x >= _EXP_MIN else 0.0
    result = result if x <= _EXP_MAX else np.inf
    return result if x == x else x  # NaN in, NaN out


@kernel(fastmath=EXACT_FASTMATH, inline="always")
def _tanh64(x):
    """tanh(x) = m / (m + 2) with m = expm1(2|x|), branch-free.

    expm1(y) = 2^k * expm1(r) + (2^k - 1) with y = k ln2 + r: for k = 0 this is
    the series itself (accurate for tiny x), for k >= 1 the sum has no
    cancellation.
    """
    r, k = _split(2.0 * min(abs(x), _TANH_SATURATE))
    scale = _pow2(k)
    m = scale * _expm1_poly(r) + (scale - 1.0)
    t = m / (m + 2.0)
    t = t if x == x else x  # NaN in, NaN out
    return -t if x < 0.0 else t


@kernel(fastmath=EXACT_FASTMATH, inline="always")
def _sigmoid64(x):
    """1 / (1 + e^-x): e^-x overflows to Inf for x < -709.78, giving exactly 0."""
    return 1.0 / (1.0 + _exp64(-x))


# float32: the same algorithms with float32 constants (a float64 constant
# would promote the arithmetic to float64) and a polynomial of degree 7
# (truncation error < 2e-8 relative, below float32's half ulp of 6e-8).
_F32 = np.float32
_ZERO32, _HALF32, _ONE32, _TWO32 = _F32(0.0), _F32(0.5), _F32(1.0), _F32(2.0)
_LOG2E32 = _F32(_LOG2E)
# ln 2 split in two: _LN2_HI32 has its 12 low mantissa bits zero, so k * _LN2_HI32
# is exact for |k| < 2**12.
_LN2_HI32 = _F32(0.693145751953125)
_LN2_LO32 = _F32(1.428606765330187045e-06)
# Below -86 exp(x) is about 4e-38 (float32's smallest normal is 1.2e-38) and
# the kernel returns 0, which keeps 2**(k-1) normal; above log(largest
# float32) it is Inf.
_EXP_MIN32 = _F32(-86.0)
_EXP_MAX32 = _F32(88.72283)
# tanh(x) rounds to +-1 in float32 for |x| > 9.01.
_TANH_SATURATE32 = _F32(10.0)
_EXPM1_COEFFS32 = tuple(_F32(1.0 / c) for c in (5040.0, 720.0, 120.0, 24.0, 6.0, 2.0, 1.0))
# 2**23 + 127: for a whole k in [-127, 127], k + _POW2_SHIFT32 is exact and its
# low mantissa bits hold k + 127.
_POW2_SHIFT32 = _F32(8388735.0)
_INF32 = _F32(np.inf)


@kernel(fastmath=EXACT_FASTMATH, inline="always")
def _expm1_poly32(r):
    c = _EXPM1_COEFFS32
    p = c[0]
    p = p * r + c[1]
    p = p * r + c[2]
    p = p * r + c[3]
    p = p * r + c[4]
    p = p * r + c[5]
    p = p * r + c[6]
    return p * r


@kernel(fastmath=EXACT_FASTMATH, inline="always")
def _split32(y):
    """:func:`_split` in float32."""
    y = y if y == y else _ZERO32
    k = np.floor(y * _LOG2E32 + _HALF32)
    r = (y - k * _LN2_HI32) - k * _LN2_LO32
    return r, k


@kernel(fastmath=EXACT_FASTMATH, inline="always")
def _pow2_32(k):
    """:func:`_pow2` in float32, for a whole k in [-126, 127]."""
    return _low_bits_to_exponent32(k + _POW2_SHIFT32)


@kernel(fastmath=EXACT_FASTMATH, inline="always")
def _exp32(x):
    """:func:`_exp64` in float32: 0 below -86, Inf above 88.72, NaN for NaN."""
    r, k = _split32(min(max(x, _EXP_MIN32), _EXP_MAX32))
    result = (_expm1_poly32(r) + _ONE32) * _pow2_32(k - _ONE32) * _TWO32
    result = result if x >= _EXP_MIN32 else _ZERO32
    result = result if x <= _EXP_MAX32 else _INF32
    return result if x == x else x


@kernel(fastmath=EXACT_FASTMATH, inline="always")
def _tanh32(x):
    """:func:`_tanh64` in float32."""
    r, k = _split32(_TWO32 * min(abs(x), _TANH_SATURATE32))
    scale = _pow2_32(k)
    m = scale * _expm1_poly32(r) + (scale - _ONE32)
    t = m / (m + _TWO32)
    t = t if x == x else x
    return -t if x < _ZERO32 else t


@kernel(fastmath=EXACT_FASTMATH, inline="always")
def _sigmoid32(x):
    """:func:`_sigmoid64` in float32."""
    return _ONE32 / (_ONE32 + _exp32(-x))


# The element-wise functions by the element's type: float32 in, float32
# arithmetic; anything else, float64.  The Python bodies serve
# NUMBA_DISABLE_JIT=1, the overloads compiled code.


def _exp(x):
    return _exp32(x) if isinstance(x, np.float32) else _exp64(x)


def _tanh(x):
    return _tanh32(x) if isinstance(x, np.float32) else _tanh64(x)


def _sigmoid(x):
    return _sigmoid32(x) if isinstance(x, np.float32) else _sigmoid64(x)


def _by_precision(single, double):
    def choose(x):
        if x == types.float32:
            return lambda x: single(x)
        return lambda x: double(x)

    return choose


if not config.DISABLE_JIT:
    overload(_exp, inline="always")(_by_precision(_exp32, _exp64))
    overload(_tanh, inline="always")(_by_precision(_tanh32, _tanh64))
    overload(_sigmoid, inline="always")(_by_precision(_sigmoid32, _sigmoid64))


# In-place and out-of-place versions are separate functions on purpose: for
# ``f(x, out)`` with ``out is x`` LLVM's runtime overlap check fails and the
# scalar fallback loop runs, five times slower.


@kernel(fastmath=EXACT_FASTMATH)
def exp_(v):
    """Element-wise ``v[i] = exp(v[i])`` in place, for ``v (n,)``."""
    for i in range(v.shape[0]):
        v[i] = _exp(v[i])


@kernel(fastmath=EXACT_FASTMATH)
def tanh_(v):
    """Element-wise ``v[i] = tanh(v[i])`` in place, for ``v (n,)``."""
    for i in range(v.shape[0]):
        v[i] = _tanh(v[i])


@kernel(fastmath=EXACT_FASTMATH)
def sigmoid_(v):
    """Element-wise logistic function ``v[i] = 1 / (1 + exp(-v[i]))`` in place, ``v (n,)``."""
    for i in range(v.shape[0]):
        v[i] = _sigmoid(v[i])


@kernel(fastmath=EXACT_FASTMATH)
def tanh_into(x, out):
    """Element-wise ``out[i] = tanh(x[i])`` for 1-D arrays of equal length.

    Parameters
    ----------
    x : ndarray, shape (n,)
    out : ndarray, shape (n,)
        Modified in place; must not overlap ``x`` (use :func:`tanh_` for that).
    """
    for i in range(x.shape[0]):
        out[i] = _tanh(x[i])


@kernel
def row_max(v):
    """The largest element of ``v (n,)``, NaN if any element is NaN.

    Eight running maxima break the dependency chain of a plain loop (without
    the ``nnan`` flag LLVM will not vectorise a floating-point max reduction).
    """
    n = v.shape[0]
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = v[0]
    i = 0
    while i + 8 <= n:
        m0 = max(m0, v[i])
        m1 = max(m1, v[i + 1])
        m2 = max(m2, v[i + 2])
        m3 = max(m3, v[i + 3])
        m4 = max(m4, v[i + 4])
        m5 = max(m5, v[i + 5])
        m6 = max(m6, v[i + 6])
        m7 = max(m7, v[i + 7])
        i += 8
    while i < n:
        m0 = max(m0, v[i])
        i += 1
    m = max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))
    has_nan = False
    for k in range(n):
        has_nan |= v[k] != v[k]
    return np.nan if has_nan else m


@kernel(fastmath=EXACT_FASTMATH)
def _exp_shifted_scaled(logits, shift, inv_temperature, out):
    # out[i] = exp((logits[i] - shift) * inv_temperature), one pass.  Subtract
    # first: the largest logit then gives exactly exp(0) = 1 whatever the
    # temperature (a fused multiply-add of logits * inv_t - shift would not).
    for i in range(logits.shape[0]):
        out[i] = _exp((logits[i] - shift) * inv_temperature)


@kernel
def softmax_weights(logits, out, inv_temperature):
    """Unnormalised softmax weights ``out = exp((logits - max) * inv_temperature)``.

    What sampling needs: it draws against the weights and their sum and never
    divides.  The largest weight is exactly 1, so the sum is in [1, n].

    Parameters
    ----------
    logits : ndarray, shape (n,)
    out : ndarray, shape (n,)
        Modified in place; must not alias ``logits`` (the loop would not vectorise).
    inv_temperature : float
        Finite and positive.

    Returns
    -------
    float
        The sum of ``out`` (NaN if any logit is NaN).
    """
    _exp_shifted_scaled(logits, row_max(logits), inv_temperature, out)
    total = 0.0
    for i in range(out.shape[0]):
        total += out[i]
    return total


@kernel(fastmath=EXACT_FASTMATH)
def _exp_shifted_accumulate(row, shift, total):
    # row[n] = exp(row[n] - shift[n]); total[n] += row[n]  (element-wise, one pass)
    for n in range(row.shape[0]):
        v = _exp(row[n] - shift[n])
        row[n] = v
        total[n] += v


@kernel
def softmax_columns(z, scale, lse, total):
    """Stable softmax of every column of ``z``, times ``scale``, in place.

    The training kernels keep logits as (O, N) so that each step here is a
    vector operation across the N positions of a chunk (and ``z`` is already
    the layout the weight-gradient GEMM needs).  Sampling, one position at a
    time, uses :func:`softmax_weights` instead.

    Parameters
    ----------
    z : ndarray, shape (O, N)
        Logits in, ``scale * softmax`` of each column out.
    scale : float
        Multiplies the probabilities.
    lse : ndarray, shape (N,)
        Output: the log-normaliser ``log(sum_k exp(z[k, n]))`` of each column.
    total : ndarray, shape (N,)
        Workspace.
    """
    O, N = z.shape
    for n in range(N):
        lse[n] = z[0, n]
    for k in range(1, O):
        row = z[k]
        for n in range(N):
            lse[n] = max(lse[n], row[n])  # column maxima; NaN shows up in the sums
    for n in range(N):
        total[n] = 0.0
    for k in range(O):
        _exp_shifted_accumulate(z[k], lse, total)
    for n in range(N):
        factor = scale / total[n]
        lse[n] += np.log(total[n])
        total[n] = factor
    for k in range(O):
        row = z[k]
        for n in range(N):
            row[n] *= total[n]
