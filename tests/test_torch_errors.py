"""Explanations of PyTorch device and dtype errors, on messages PyTorch prints on each kind of machine."""

from __future__ import annotations

import pytest
import torch

from course_lib.torch_errors import explain

# Messages as PyTorch 2.x prints them; the CUDA and MPS ones cannot be produced on a CPU-only machine.
RECORDED = [
    ("Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu!",
     "different devices (cuda:0 and cpu)"),
    ("Expected all tensors to be on the same device, but found at least two devices, mps:0 and cpu!",
     "different devices (mps:0 and cpu)"),
    ("Cannot convert a MPS Tensor to float64 dtype as the MPS framework doesn't support float64. "
     "Please use float32 instead.", "float64 tensor was moved to mps"),
    ("expected scalar type Float but found Double", "different dtypes (float32 and float64)"),
    ("expected m1 and m2 to have the same dtype, but got: double != float", "different dtypes (float64 and float32)"),
]


@pytest.mark.parametrize("message, fragment", RECORDED)
def test_recorded_message_explained(message, fragment):
    assert fragment in explain(message)


def test_device_mismatch_on_this_machine():
    with pytest.raises(RuntimeError) as error:
        torch.ones(2) + torch.ones(2, device="meta")
    assert "different devices (meta and cpu)" in explain(str(error.value))


def test_dtype_mismatch_on_this_machine():
    with pytest.raises(RuntimeError) as error:
        torch.ones(2, dtype=torch.float64) @ torch.ones(2, dtype=torch.float32)
    assert "different dtypes (float64 and float32)" in explain(str(error.value))


def test_other_errors_not_explained():
    assert explain("NameError: name 'entropy' is not defined") is None
    assert explain("AssertionError: expected 1.0, got 2.0") is None
