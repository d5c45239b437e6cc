"""Plain explanations of PyTorch's device and dtype errors, naming the devices and dtypes involved."""

from __future__ import annotations

import re

# PyTorch's own names for dtypes in error messages, mapped to the names students write.
_DTYPE_NAMES = {
    "double": "float64", "float": "float32", "half": "float16", "bfloat16": "bfloat16",
    "long": "int64", "int": "int32", "bool": "bool",
}

_PATTERNS = [
    (
        re.compile(r"found at least two devices, (?P<a>[\w:]+) and (?P<b>[\w:]+)"),
        "tensors are on different devices ({a} and {b}): create them on one device, or move them with .to(device)",
    ),
    (
        re.compile(r"Tensor on device (?P<a>[\w:]+) is not on the expected device (?P<b>[\w:]+)"),
        "tensors are on different devices ({a} and {b}): create them on one device, or move them with .to(device)",
    ),
    (
        re.compile(r"MPS Tensor to float64|MPS framework doesn't support float64", re.I),
        "a float64 tensor was moved to mps, which has no float64: use dtype=torch.float32",
    ),
    (
        re.compile(r"found (?P<a>Double|Float|Half|Long|Int|BFloat16) and (?P<b>Double|Float|Half|Long|Int|BFloat16)"),
        "tensors have different dtypes ({a} and {b}): convert one with .to(other.dtype)",
    ),
    (
        re.compile(r"expected scalar type (?P<a>\w+) but found (?P<b>\w+)"),
        "tensors have different dtypes ({a} and {b}): convert one with .to(other.dtype)",
    ),
    (
        re.compile(r"to have the same dtype, but got: (?P<a>\w+) != (?P<b>\w+)"),
        "tensors have different dtypes ({a} and {b}): convert one with .to(other.dtype)",
    ),
]


def _dtype(name: str) -> str:
    return _DTYPE_NAMES.get(name.lower(), name)


def explain(message: str) -> str | None:
    """Return a one-line explanation of a PyTorch device or dtype error message, or None for other errors."""
    for pattern, template in _PATTERNS:
        match = pattern.search(message)
        if match:
            groups = {key: _dtype(value) if "dtype" in template else value for key, value in match.groupdict().items()}
            return template.format(**groups)
    return None
