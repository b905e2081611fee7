"""sin, cos and atan2 that give the same bits on every machine: the simulator's only trigonometry.

Why not ``math`` / ``numpy``: numpy picks its sin / cos / arctan2 kernels by CPU (Intel's SVML on
AVX-512, its own SIMD code on AVX2, libm elsewhere) and libm varies by library version, so their last
bits depend on the machine. A last bit decides a pixel where a shape's edge passes through a
sub-sample (the gear's teeth did exactly that), and so the bytes of the generated data. Here only
+, -, *, / and floor are used, one IEEE-754 operation at a time (Python and numpy never fuse them),
so every machine computes the same bits. Accuracy: about 1e-16 absolute for |x| < 1e5.

Each function takes a Python float (the simulator's scalar path) or a numpy array (the renderer's
textures): the same formulas, with ``where`` for the branches on arrays.
"""

from __future__ import annotations

import math

import numpy as np

# pi / 2 split in two (fdlibm's pio2_1 / pio2_1t): k * _PIO2_HI is exact for |k| < 2^20
_PIO2_HI = 1.57079632673412561417e+00
_PIO2_LO = 6.07710050650619224932e-11
_TWO_OVER_PI = 6.36619772367581382433e-01
PI = 3.141592653589793  # the double nearest pi, as math.pi
# Taylor coefficients on |r| <= pi/4: the next term is below 5e-17
_SIN = tuple((-1) ** n / math.factorial(2 * n + 1) for n in range(8))  # r, r^3, ..., r^15
_COS = tuple((-1) ** n / math.factorial(2 * n) for n in range(9))  # 1, r^2, ..., r^16
_ATAN = tuple((-1) ** n / (2 * n + 1) for n in range(12))  # atan series on |t| <= 0.2: t^25 / 25 < 1e-19


def _poly(coeffs: tuple, x2):
    """sum_n coeffs[n] * x2**n, by Horner."""
    acc = coeffs[-1]
    for c in coeffs[-2::-1]:
        acc = acc * x2 + c
    return acc


def _sin_cos(x):
    """(sin x, cos x) for a float or an array."""
    if isinstance(x, np.ndarray):
        x = x.astype(np.float64)
        k = np.floor(x * _TWO_OVER_PI + 0.5)
    else:
        x = float(x)
        k = float(math.floor(x * _TWO_OVER_PI + 0.5))
    r = (x - k * _PIO2_HI) - k * _PIO2_LO  # x = k pi/2 + r, |r| <= pi/4
    r2 = r * r
    s, c = r * _poly(_SIN, r2), _poly(_COS, r2)
    q = k % 4  # quadrant: (sin, cos) of x is (s, c), (c, -s), (-s, -c), (-c, s)
    if isinstance(x, np.ndarray):
        sin = np.where(q == 0, s, np.where(q == 1, c, np.where(q == 2, -s, -c)))
        cos = np.where(q == 0, c, np.where(q == 1, -s, np.where(q == 2, -c, s)))
        return sin, cos
    return ((s, c), (c, -s), (-s, -c), (-c, s))[int(q)]


def sin(x):
    return _sin_cos(x)[0]


def cos(x):
    return _sin_cos(x)[1]


def atan2(y: float, x: float) -> float:
    """The angle of (x, y) in [-pi, pi], as math.atan2 (scalars only: the simulator's experts)."""
    y, x = float(y), float(x)
    ay, ax = abs(y), abs(x)
    if ax == 0.0 and ay == 0.0:
        return 0.0 if math.copysign(1.0, x) > 0 else math.copysign(PI, y)
    t = min(ax, ay) / max(ax, ay)  # in [0, 1]
    t = t / (1.0 + math.sqrt(1.0 + t * t))  # atan(t) = 2 atan(this), now in [0, 0.415]
    t = t / (1.0 + math.sqrt(1.0 + t * t))  # twice: in [0, 0.2]
    t2 = t * t
    a = 4.0 * t * _poly(_ATAN, t2)
    if ay > ax:
        a = PI / 2 - a
    if x < 0:
        a = PI - a
    return a if y >= 0 else -a
