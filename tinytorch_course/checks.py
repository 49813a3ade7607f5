"""Placeholder of the lead's `tinytorch_course.checks` (live mode only), written to the
spec in the common brief so module 01's graded cells can run before it lands on main.
Replaced by main's version at merge."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np


class CheckFailed(AssertionError):
    """A graded check failed; the first line of the message carries the hint."""


@dataclass
class Raised:
    type: str
    types: tuple
    message: str

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"


def _show(value) -> str:
    return np.array2string(
        np.asarray(value, dtype=np.float64), precision=6, separator=", ", max_line_width=10**6
    )


class Check:
    def __init__(self, grade_id: str, points: float):
        self.grade_id, self.points = grade_id, points
        self.rng = np.random.default_rng(zlib.crc32(grade_id.encode("utf-8")))

    def probe(self, fn, label: str):
        try:
            return fn()
        except Exception as error:  # noqa: BLE001 - recorded as a value
            types = tuple(t.__name__ for t in type(error).__mro__)
            return Raised(
                type(error).__name__, types, str(error).splitlines()[0] if str(error) else ""
            )

    def _fail(self, text: str, hint: str = "") -> None:
        raise CheckFailed(f"{text}; hint: {hint}" if hint else text)

    def _value(self, got, what: str, hint: str = ""):
        if isinstance(got, Raised):
            self._fail(f"`{what}` raised {got}", hint)
        return got

    def close(self, got, expected, what: str, rtol=1e-5, atol=1e-8, hint: str = "") -> None:
        got = np.asarray(self._value(got, what, hint))
        expected = np.asarray(expected)
        if got.shape != expected.shape:
            self._fail(f"{what} has shape {got.shape}, expected {expected.shape}", hint)
        if not np.allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True):
            error = np.abs(got.astype(np.float64) - expected)
            index = tuple(int(i) for i in np.unravel_index(int(np.nanargmax(error)), error.shape))
            self._fail(
                f"{what} is {_show(got)}, expected {_show(expected)} (largest error "
                f"{error[index]:.3g} at index {index})",
                hint,
            )

    def equal(self, got, expected, what: str, hint: str = "") -> None:
        got = self._value(got, what, hint)
        same = (
            np.array_equal(got, expected)
            if isinstance(got, np.ndarray) or isinstance(expected, np.ndarray)
            else got == expected
        )
        if not same:
            self._fail(f"{what} is {got!r}, expected {expected!r}", hint)

    def expect(self, condition, message: str) -> None:
        if not condition:
            self._fail(message)

    def raises(self, got, error_type, what: str, hint: str = ""):
        name = error_type if isinstance(error_type, str) else error_type.__name__
        if not isinstance(got, Raised):
            self._fail(f"`{what}` returned {got!r}, expected it to raise {name}", hint)
        if name not in got.types:
            self._fail(f"`{what}` raised {got}, expected {name}", hint)
        return got

    def mentions(self, got, fragments, what: str) -> None:
        text = got.message if isinstance(got, Raised) else str(got)
        for fragment in fragments:
            if fragment.lower() not in text.lower():
                self._fail(f"the message of `{what}` should mention {fragment!r}; it was: {text}")

    def no_raise(self, got, what: str):
        return self._value(got, what)

    def done(self) -> None:
        print(f"✓ {self.grade_id} passed ({self.points:g} points)")


def numerical_gradients(numpy_fn, arrays, grad_output, eps: float = 1e-6) -> list:
    """Central differences of sum(grad_output * numpy_fn(*arrays)), float64, numpy only."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    gradients = []
    for array in arrays:
        gradient = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            original = array[index]
            array[index] = original + eps
            up = np.sum(grad_output * numpy_fn(*arrays))
            array[index] = original - eps
            down = np.sum(grad_output * numpy_fn(*arrays))
            array[index] = original
            gradient[index] = (up - down) / (2 * eps)
        gradients.append(gradient)
    return gradients
