"""Errors raised at the boundary: they name the field, the bad value and what is valid."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


class DiffringError(ValueError):
    """A bad argument, config or file. Its message is one line: field, value, what is valid."""

    def __init__(self, field: str, value: Any, valid: str):
        self.field = field
        self.value = value
        self.valid = valid
        super().__init__(f"{field}: got {value!r}; {valid}")


def _array_instead_of_number(field: str, value: Any) -> None:
    """A JAX (or 0-d NumPy) array where a plain number is expected: say so, instead of calling a
    finite value non-finite. These arguments are static (part of the compiled program)."""
    if hasattr(value, "shape") and hasattr(value, "dtype") and not isinstance(value, _np_number()):
        raise DiffringError(field, value, "expected a Python or NumPy number, not an array (pass float(x) or int(x))")


def check_int(field: str, value: Any, *, minimum: int | None = None) -> int:
    _array_instead_of_number(field, value)
    if isinstance(value, bool) or not isinstance(value, int | _np_integer()):
        raise DiffringError(field, value, "expected an integer" + (f" >= {minimum}" if minimum is not None else ""))
    value = int(value)
    if minimum is not None and value < minimum:
        raise DiffringError(field, value, f"expected an integer >= {minimum}")
    return value


def check_float(
    field: str,
    value: Any,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    lo: float | None = None,
    hi: float | None = None,
) -> float:
    _array_instead_of_number(field, value)
    if isinstance(value, bool) or not isinstance(value, int | float | _np_number()):
        raise DiffringError(field, value, "expected a finite number")
    value = float(value)
    if not math.isfinite(value):
        raise DiffringError(field, value, "expected a finite number (NaN and inf are not allowed)")
    if positive and value <= 0:
        raise DiffringError(field, value, "expected a number > 0")
    if nonnegative and value < 0:
        raise DiffringError(field, value, "expected a number >= 0")
    if lo is not None and value < lo:
        raise DiffringError(field, value, f"expected a number >= {lo}")
    if hi is not None and value > hi:
        raise DiffringError(field, value, f"expected a number <= {hi}")
    return value


def check_choice(field: str, value: Any, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if value not in choices:
        raise DiffringError(field, value, "expected one of " + ", ".join(repr(c) for c in choices))
    return value


def check_finite_array(field: str, array: Any) -> None:
    import numpy as np

    a = np.asarray(array)
    if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise DiffringError(field, f"array with {bad} non-finite entries", "expected finite values only")


def _np_integer():
    import numpy as np

    return np.integer


def _np_number():
    import numpy as np

    return np.number
