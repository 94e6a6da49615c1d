"""Argument checks whose errors name the parameter."""
import math
import numbers

from .errors import InvalidInputError


def check_int(value, name: str, minimum: int = 1) -> int:
    """Return ``value`` if it is an integer >= ``minimum`` (bool refused)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
            or value < minimum):
        raise InvalidInputError(
            f'{name} must be an integer >= {minimum}, got {value!r}.')
    return int(value)


def check_weight(value, name: str) -> float:
    """Return ``value`` if it is a finite number >= 0 (a loss weight)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or value < 0):
        raise InvalidInputError(
            f'{name} must be a finite number >= 0, got {value!r}.')
    return float(value)
