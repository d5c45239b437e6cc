"""Comparison tolerances per dtype and device, starting from `torch.testing`'s defaults."""

from __future__ import annotations

import torch

# torch.testing.assert_close defaults (PyTorch 2.x documentation, "assert_close").
_DEFAULTS = {
    torch.float16: (1e-3, 1e-5),
    torch.bfloat16: (1.6e-2, 1e-5),
    torch.float32: (1.3e-6, 1e-5),
    torch.float64: (1e-7, 1e-7),
}

# Accelerators reorder reductions and may use TF32 or fused kernels, so float32 results differ from the
# CPU's by more than one rounding step. The factor is a stated widening, not a measurement of every GPU.
_DEVICE_FACTOR = {"cpu": 1.0, "cuda": 10.0, "mps": 10.0}


def tolerance(dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> dict[str, float]:
    """Return `{"rtol": ..., "atol": ...}` for comparing tensors of `dtype` computed on `device`."""
    if dtype not in _DEFAULTS:
        raise ValueError(f"no tolerance defined for dtype {dtype}; expected a floating dtype")
    kind = torch.device(device).type
    if kind not in _DEVICE_FACTOR:
        raise ValueError(f"no tolerance defined for device type {kind!r}")
    rtol, atol = _DEFAULTS[dtype]
    factor = _DEVICE_FACTOR[kind]
    return {"rtol": rtol * factor, "atol": atol * factor}
