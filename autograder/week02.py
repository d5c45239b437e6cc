"""Hidden checks of week 2, the transformer architecture.

Each `check_<name>` takes the student's objects from one grade cell and raises AssertionError with what was
expected, what was received and the likely cause. Attention is compared with
`torch.nn.functional.scaled_dot_product_attention`, multi-head attention with `torch.nn.MultiheadAttention`
carrying the same weights, and the transformer block and model with a functional reference built here from
`torch.nn.functional` and the student's own parameter values.
"""

from __future__ import annotations

import copy
import functools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib import get_device, tolerance
from course_lib.device import supports_float64

SEED = 2

# Widening of the float32 tolerance for a whole block or model, because rounding accumulates over layer norms,
# softmaxes and matrix products. On the CPU the reference differs from the functional version by at most
# 3e-6 on logits up to 13, while the smallest wrong variant checked here (tanh GELU) differs by 5e-4.
MODEL_TOLERANCE_FACTOR = 4.0

# Text replacements (grade_id of a solution cell, text in its reference code, replacement) that `course demo`
# applies to build a submission with realistic mistakes. The checks of the masks, the sinusoidal encoding,
# the block and the model's forward pass fail. Attention, multi-head attention, the learned positions,
# causality and training still pass.
DEMO_MISTAKES = [
    (
        "masks",
        "return positions[None, :] < lengths[:, None]",
        "return positions[None, :] <= lengths[:, None]",
    ),
    (
        "sinusoidal_positional_encoding",
        "pe[:, 0::2] = torch.sin(angles)\n    pe[:, 1::2] = torch.cos(angles)",
        "pe[:, 0::2] = torch.cos(angles)\n    pe[:, 1::2] = torch.sin(angles)",
    ),
    (
        "block",
        "attn_out, _ = self.attn(self.ln1(x), mask)  # (B, T, C)\n"
        "        x = x + attn_out  # (B, T, C)\n"
        "        x = x + self.mlp(self.ln2(x))  # (B, T, C)",
        "attn_out, _ = self.attn(x, mask)  # (B, T, C)\n"
        "        x = self.ln1(x + attn_out)  # (B, T, C)\n"
        "        x = self.ln2(x + self.mlp(x))  # (B, T, C)",
    ),
]


# ---------------------------------------------------------------------------------------------------------
# Shared helpers


def _preserve_rng(check):
    """Wrap a check so that it leaves the CPU random state of the student's session unchanged.

    Checks build modules, and nn.Module constructors draw from the global generator, so a graded run would
    otherwise shift every later random number in the notebook.
    """

    @functools.wraps(check)
    def wrapper(*args, **kwargs):
        with torch.random.fork_rng(devices=[]):
            return check(*args, **kwargs)

    return wrapper


def _devices() -> list[torch.device]:
    """Return the CPU, followed by the course's accelerator when it has one."""
    devices = [torch.device("cpu")]
    accelerator = get_device()
    if accelerator.type != "cpu":
        devices.append(accelerator)
    return devices


def _float_dtypes(device: torch.device) -> list[torch.dtype]:
    return [torch.float32, torch.float64] if supports_float64(device) else [torch.float32]


def _to(tensor: torch.Tensor, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Convert on the CPU first, then move: MPS cannot receive float64 tensors."""
    if dtype is not None:
        tensor = tensor.to(dtype=dtype)
    return tensor.to(device)


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(SEED)


def _describe(value) -> str:
    """Summarise a returned value for a failure message: type, shape, dtype, device and a few values."""
    if not isinstance(value, torch.Tensor):
        text = repr(value)
        return f"{type(value).__name__} {text[:80]}"
    head = value.detach().flatten()[:4].cpu().tolist()
    if value.dtype == torch.bool:
        values = ", ".join(str(item) for item in head)
    else:
        values = ", ".join(f"{item:.4g}" for item in head)
    more = ", ..." if value.numel() > 4 else ""
    return (
        f"tensor of shape {tuple(value.shape)}, dtype {value.dtype}, device {value.device}, "
        f"values [{values}{more}]"
    )


_KEEP_DTYPE = "Keep the dtype of the inputs: do not create float32 tensors with a fixed dtype inside the function."


def _assert_tensor(value, what: str, shape=None, dtype=None, device=None, dtype_hint=_KEEP_DTYPE) -> None:
    """Check the type, shape, dtype and device of a returned tensor."""
    assert isinstance(value, torch.Tensor), f"{what}: expected a torch.Tensor, received {_describe(value)}"
    if shape is not None:
        assert tuple(value.shape) == tuple(shape), (
            f"{what}: expected shape {tuple(shape)}, received {_describe(value)}"
        )
    if dtype is not None:
        assert value.dtype == dtype, f"{what}: expected dtype {dtype}, received {_describe(value)}. {dtype_hint}"
    if device is not None:
        assert value.device.type == torch.device(device).type, (
            f"{what}: expected a tensor on {device}, received {_describe(value)}. "
            "Create new tensors on the device of the inputs (device=x.device)."
        )


def _first_mismatch(actual: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float):
    """Return (index, actual value, expected value, max abs difference) of the first mismatch, or None."""
    actual = actual.detach().cpu().to(torch.float64)
    expected = expected.detach().cpu().to(torch.float64)
    close = torch.isclose(actual, expected, rtol=rtol, atol=atol)
    if bool(close.all()):
        return None
    bad = (~close).nonzero()[0]
    index = tuple(bad.tolist())
    difference = (actual - expected).abs().nan_to_num(nan=math.inf).max().item()
    return index, actual[index].item(), expected[index].item(), difference


def _assert_close(actual, expected, what: str, hint: str, rtol: float, atol: float) -> None:
    """Check values against the expected tensor. The message names the first mismatch and the likely cause."""
    assert tuple(actual.shape) == tuple(expected.shape), (
        f"{what}: expected shape {tuple(expected.shape)}, received {_describe(actual)}"
    )
    if not bool(torch.isfinite(actual.detach()).all()) and bool(torch.isfinite(expected).all()):
        raise AssertionError(f"{what} contains NaN or inf where finite values are expected: {_describe(actual)}. {hint}")
    mismatch = _first_mismatch(actual, expected, rtol, atol)
    if mismatch is not None:
        index, received, wanted, difference = mismatch
        raise AssertionError(
            f"{what}: at index {index} expected {wanted:.6g}, received {received:.6g} "
            f"(largest absolute difference {difference:.3g}, rtol {rtol:.2g}, atol {atol:.2g}). {hint}"
        )


def _matches(actual: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float) -> bool:
    if tuple(actual.shape) != tuple(expected.shape):
        return False
    return _first_mismatch(actual, expected, rtol, atol) is None


def _as_pair(result, what: str, names: str):
    assert isinstance(result, (tuple, list)) and len(result) == 2, (
        f"{what} must return a tuple {names}, received {_describe(result)}"
    )
    return result


def _tril(T: int) -> torch.Tensor:
    return torch.ones(T, T, dtype=torch.bool).tril()


def _lengths_mask(lengths, T: int) -> torch.Tensor:
    return torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]  # (B, T)


# ---------------------------------------------------------------------------------------------------------
# Masks


@_preserve_rng
def check_masks(causal_mask, padding_mask) -> None:
    """Check `causal_mask(T, device=None)` and `padding_mask(lengths, T)` against their definitions."""
    for T in (1, 4, 7):
        expected = _tril(T)
        received = causal_mask(T)
        _assert_tensor(received, f"causal_mask({T})", shape=(T, T))
        assert received.dtype == torch.bool, (
            f"causal_mask({T}): expected dtype torch.bool, received {_describe(received)}. "
            "Masks are boolean: torch.ones(T, T, dtype=torch.bool).tril() is one way."
        )
        if torch.equal(received, expected):
            continue
        if torch.equal(received, expected.tril(-1)):
            cause = "the diagonal is False, but a token must attend to itself"
        elif torch.equal(received, ~expected):
            cause = "the mask is inverted: True must mark the keys a query may attend to (key position <= query position)"
        elif torch.equal(received, expected.T):
            cause = "True lies above the diagonal, so each query would attend to future keys: use tril, not triu"
        else:
            cause = "entry [i, j] must be True exactly when j <= i"
        raise AssertionError(f"causal_mask({T}) = {received.int().tolist()}, expected {expected.int().tolist()}: {cause}")

    lengths = [3, 1, 5, 0]
    expected = _lengths_mask(lengths, 5)
    for given in (lengths, torch.tensor(lengths)):
        received = padding_mask(given, 5)
        _assert_tensor(received, f"padding_mask({lengths}, 5)", shape=(4, 5))
        assert received.dtype == torch.bool, (
            f"padding_mask({lengths}, 5): expected dtype torch.bool, received {_describe(received)}"
        )
        if torch.equal(received, expected):
            continue
        if torch.equal(received, ~expected):
            cause = "the mask is inverted: True must mark real tokens (position < length), False the padding"
        elif torch.equal(received, _lengths_mask([n + 1 for n in lengths], 5)):
            cause = "one position too many is True: use position < length, positions start at 0"
        else:
            cause = "entry [b, t] must be True exactly when t < lengths[b]"
        raise AssertionError(
            f"padding_mask({lengths}, 5) with lengths given as {type(given).__name__} = {received.int().tolist()}, "
            f"expected {expected.int().tolist()}: {cause}"
        )

    try:
        padding_mask([2, 6], 5)
    except ValueError:
        pass
    else:
        raise AssertionError(
            "padding_mask([2, 6], 5) returned without error, expected a ValueError: a length of 6 does not fit "
            "in 5 positions, and silently truncating it would hide a bug in the batching code."
        )

    for device in _devices():
        received = causal_mask(4, device=device)
        _assert_tensor(received, f"causal_mask(4, device={device})", device=device)
        received = padding_mask(torch.tensor(lengths).to(device), 5)
        _assert_tensor(received, f"padding_mask(lengths on {device}, 5)", device=device)


# ---------------------------------------------------------------------------------------------------------
# Scaled dot-product attention


def _reference_attention_weights(q, k, mask, scale=None, dim=-1):
    """Compute attention weights the textbook way. Rows without any allowed key get zero weights."""
    scale = 1.0 / math.sqrt(q.size(-1)) if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale  # (..., T_q, T_k)
    if mask is None:
        return torch.softmax(scores, dim=dim)
    scores = torch.where(mask, scores, float("-inf"))
    row_has_key = mask.any(dim=-1, keepdim=True)
    scores = torch.where(row_has_key, scores, 0.0)
    weights = torch.softmax(scores, dim=dim)
    return torch.where(row_has_key & mask, weights, 0.0)


def _attention_cases() -> list[tuple[str, dict]]:
    """Return (description, inputs) pairs, generated on the CPU in float64."""
    gen = _generator()

    def randn(*shape, scale=1.0):
        return torch.randn(*shape, generator=gen, dtype=torch.float64) * scale

    cases = []
    cases.append(("no batch dimension (T, D), no mask", dict(q=randn(4, 8), k=randn(4, 8), v=randn(4, 8), mask=None)))
    cases.append(("one batch dimension, no mask", dict(q=randn(2, 5, 8), k=randn(2, 5, 8), v=randn(2, 5, 8), mask=None)))
    cases.append((
        "two batch dimensions, T_q=4 != T_k=7 and value size 5 != key size 6",
        dict(q=randn(2, 3, 4, 6), k=randn(2, 3, 7, 6), v=randn(2, 3, 7, 5), mask=None),
    ))
    cases.append((
        "three batch dimensions with a (T, T) causal mask",
        dict(q=randn(2, 2, 3, 6, 4), k=randn(2, 2, 3, 6, 4), v=randn(2, 2, 3, 6, 4), mask=_tril(6)),
    ))
    lengths = [5, 2, 3]
    cases.append((
        "a (B, 1, T_k) padding mask broadcast over the queries",
        dict(q=randn(3, 4, 8), k=randn(3, 5, 8), v=randn(3, 5, 8), mask=_lengths_mask(lengths, 5)[:, None, :]),
    ))
    random_mask = torch.rand(2, 1, 5, 5, generator=gen) < 0.5
    random_mask[..., 0] = True  # every query keeps at least one key
    cases.append((
        "a random (B, 1, T_q, T_k) mask broadcast over the heads",
        dict(q=randn(2, 3, 5, 4), k=randn(2, 3, 5, 4), v=randn(2, 3, 5, 4), mask=random_mask),
    ))
    cases.append((
        "large scores (entries of q and k around 30) with a causal mask",
        dict(q=randn(2, 6, 8, scale=30.0), k=randn(2, 6, 8, scale=30.0), v=randn(2, 6, 8), mask=_tril(6)),
    ))
    fully_masked = _tril(5)
    fully_masked[2] = False
    cases.append((
        "a mask whose query row 2 allows no key at all",
        dict(q=randn(2, 5, 4), k=randn(2, 5, 4), v=randn(2, 5, 4), mask=fully_masked),
    ))
    return cases


def _weights_hint(weights, q, k, mask, rtol, atol) -> str:
    """Name the likely mistake when attention weights are wrong."""
    d_k = q.size(-1)
    if _matches(weights, _reference_attention_weights(q, k, mask, scale=1.0), rtol, atol):
        return "They equal softmax(q kᵀ) without the scale: divide the scores by sqrt(d_k)."
    if _matches(weights, _reference_attention_weights(q, k, mask, scale=1.0 / d_k), rtol, atol):
        return "They equal softmax(q kᵀ / d_k): divide by the square root of d_k, not by d_k."
    if _matches(weights, _reference_attention_weights(q, k, mask, dim=-2), rtol, atol):
        return "They equal a softmax over the query axis: take the softmax over the last (key) dimension."
    return "Compute softmax(q kᵀ / sqrt(d_k)) over the key axis, with k transposed over its last two dimensions."


def _check_attention_case(fn, description, inputs, device, dtype) -> None:
    """Check one case on one device. The expected values come from the CPU, in the same dtype."""
    q_cpu, k_cpu, v_cpu = (inputs[name].to(dtype) for name in ("q", "k", "v"))
    mask_cpu = inputs["mask"]
    q, k, v = (_to(t, device) for t in (q_cpu, k_cpu, v_cpu))
    mask = _to(mask_cpu, device).clone() if mask_cpu is not None else None
    mask_before = mask.clone() if mask is not None else None
    tol = tolerance(dtype, device)
    where = f"scaled_dot_product_attention with {description} ({dtype}, {device.type})"

    q_grad, k_grad, v_grad = (t.clone().requires_grad_(True) for t in (q, k, v))
    result = _as_pair(fn(q_grad, k_grad, v_grad, mask), where, "(output, attn_weights)")
    output, weights = result
    batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2])
    T_q, T_k, d_v = q.size(-2), k.size(-2), v.size(-1)
    _assert_tensor(output, f"{where}: output", shape=(*batch, T_q, d_v), dtype=dtype, device=device)
    _assert_tensor(weights, f"{where}: attn_weights", shape=(*batch, T_q, T_k), dtype=dtype, device=device)

    unchanged = [torch.equal(q_grad.detach(), q), torch.equal(k_grad.detach(), k), torch.equal(v_grad.detach(), v)]
    if mask is not None:
        unchanged.append(torch.equal(mask, mask_before))
    assert all(unchanged), f"{where}: an input was modified in place; compute on new tensors instead."

    weights_d = weights.detach()
    if mask is None:
        allowed = torch.ones(*batch, T_q, T_k, dtype=torch.bool, device=device)
    else:
        allowed = mask.expand(*batch, T_q, T_k)
    row_has_key = allowed.any(dim=-1)  # (..., T_q)
    empty_row = (
        "A query whose keys are all masked must get zero weights: softmax(-inf, ..., -inf) is NaN, and a finite "
        "fill value such as -1e9 spreads the row's weight evenly over the masked keys instead."
    )

    nan_rows = ~torch.isfinite(weights_d).all(dim=-1)  # (..., T_q)
    if bool(nan_rows.any()):
        if mask is not None and not bool((nan_rows & row_has_key).any()):
            cause = empty_row
        elif mask is not None and not bool((nan_rows & ~allowed.all(dim=-1)).any()):
            cause = (
                "NaN appears only in rows where every key is allowed, which have no key left when the mask is "
                "used inverted: keep the scores where the mask is True."
            )
        else:
            cause = "Large scores overflow exp(): use torch.softmax, which subtracts the row maximum first."
        raise AssertionError(f"{where}: attn_weights contain NaN or inf: {_describe(weights_d)}. {cause}")
    assert bool((weights_d >= 0).all()), f"{where}: attn_weights must be non-negative, received {_describe(weights_d)}"

    leaked = (weights_d * ~allowed).abs()  # (..., T_q, T_k): weight on masked keys
    if leaked.max().item() > tol["atol"]:
        leaked_rows = leaked.amax(dim=-1) > tol["atol"]  # (..., T_q)
        kept = weights_d.masked_select(allowed)
        if not bool((leaked_rows & row_has_key).any()):
            cause = empty_row
        elif kept.numel() and kept.abs().max().item() <= tol["atol"]:
            cause = "The mask is used inverted: keep the scores where the mask is True and fill the others with -inf."
        else:
            cause = (
                "Fill the scores of masked keys with -inf before the softmax (filling them with 0 still gives "
                "them weight)."
            )
        raise AssertionError(
            f"{where}: keys where the mask is False receive weight up to {leaked.max().item():.3g}. {cause}"
        )

    sums = weights_d.sum(dim=-1)  # (..., T_q)
    wrong_rows = ~torch.isclose(sums, row_has_key.to(dtype), **tol)
    if bool(wrong_rows.any()):
        query_sums = weights_d.sum(dim=-2)
        if mask is None and bool(torch.isclose(query_sums, torch.ones_like(query_sums), **tol).all()):
            cause = "they sum to 1 along the query axis instead: softmax over the wrong dimension?"
        elif not bool((wrong_rows & row_has_key).any()):
            cause = (
                "a query row whose keys are all masked must get zero weights (and a zero output), as "
                "torch.nn.functional.scaled_dot_product_attention returns"
            )
        elif mask is not None:
            cause = (
                "the mask seems to be applied after the softmax, so the remaining weights no longer sum to 1: "
                "fill masked scores with -inf before the softmax"
            )
        else:
            cause = "softmax over the wrong dimension?"
        raise AssertionError(
            f"{where}: attn_weights do not sum to 1 along the key axis (row sums {_describe(sums)}): {cause}"
        )

    expected_weights = _reference_attention_weights(q_cpu, k_cpu, mask_cpu)
    hint = _weights_hint(weights_d, q_cpu, k_cpu, mask_cpu, **tol)
    _assert_close(weights_d, expected_weights, f"{where}: attn_weights", hint, **tol)

    # PyTorch's CPU implementation is the reference: in PyTorch 2.13 it returns zeros, with finite gradients,
    # for a query row without any allowed key. Its accelerator kernels are not relied on for that case.
    q_ref, k_ref, v_ref = (t.clone().requires_grad_(True) for t in (q_cpu, k_cpu, v_cpu))
    expected_output = F.scaled_dot_product_attention(q_ref, k_ref, v_ref, attn_mask=mask_cpu)
    _assert_close(
        output.detach(), expected_output.detach(), f"{where}: output",
        "The weights are right, so the output should be attn_weights @ v.", **tol,
    )

    assert output.requires_grad, (
        f"{where}: the output does not require grad, so no gradient would reach q, k and v: do not detach "
        "tensors or compute under torch.no_grad()."
    )
    upstream = torch.randn(expected_output.shape, generator=_generator(), dtype=torch.float64).to(dtype)
    output.backward(_to(upstream, device))
    expected_output.backward(upstream)
    for name, received, wanted in (("q", q_grad, q_ref), ("k", k_grad, k_ref), ("v", v_grad, v_ref)):
        assert received.grad is not None, (
            f"{where}: no gradient reached {name}: is the result detached, or computed outside autograd?"
        )
        _assert_close(
            received.grad, wanted.grad, f"{where}: gradient with respect to {name}",
            "The gradient differs from PyTorch's: a fully masked row must not produce NaN in the backward pass "
            "(give its scores a finite value before the softmax and zero its weights afterwards).",
            **tol,
        )


@_preserve_rng
def check_scaled_dot_product_attention(fn) -> None:
    """Compare `fn(q, k, v, mask)` with torch.nn.functional.scaled_dot_product_attention on many cases."""
    cases = _attention_cases()
    for device in _devices():
        for dtype in _float_dtypes(device):
            for description, inputs in cases:
                _check_attention_case(fn, description, inputs, device, dtype)


# ---------------------------------------------------------------------------------------------------------
# Multi-head attention


def _torch_mha(d_model: int, n_heads: int, bias: bool, dtype: torch.dtype) -> nn.MultiheadAttention:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        module = nn.MultiheadAttention(d_model, n_heads, bias=bias, batch_first=True, dtype=dtype)
    with torch.no_grad():
        # PyTorch initialises the biases at zero, which would hide a bias copied to the wrong projection.
        if bias:
            gen = _generator()
            module.in_proj_bias.copy_(0.5 * torch.randn(3 * d_model, generator=gen, dtype=torch.float64))
            module.out_proj.bias.copy_(0.5 * torch.randn(d_model, generator=gen, dtype=torch.float64))
    return module


@_preserve_rng
def check_multi_head_attention(cls) -> None:
    """Compare `cls.from_torch(module)` with torch.nn.MultiheadAttention on the same inputs and masks."""
    module = cls(16, 4)
    assert isinstance(module, nn.Module), f"MultiHeadAttention(16, 4) must be an nn.Module, received {_describe(module)}"
    count = sum(p.numel() for p in module.parameters())
    expected_count = 4 * 16 * 16 + 4 * 16
    assert count == expected_count, (
        f"MultiHeadAttention(16, 4) has {count} parameters, expected {expected_count}: four nn.Linear(d_model, "
        "d_model) projections (q, k, v and output), each with a bias."
    )
    count = sum(p.numel() for p in cls(16, 4, bias=False).parameters())
    assert count == 4 * 16 * 16, (
        f"MultiHeadAttention(16, 4, bias=False) has {count} parameters, expected {4 * 16 * 16}: pass bias to every "
        "projection."
    )
    try:
        cls(10, 3)
    except ValueError:
        pass
    else:
        raise AssertionError("MultiHeadAttention(10, 3) returned a module, expected a ValueError: 10 is not divisible by 3.")

    gen = _generator()
    shapes = [(2, 5, 16, 4, True), (1, 7, 12, 3, True), (3, 4, 8, 1, True), (2, 6, 12, 2, False)]
    for device in _devices():
        for dtype in _float_dtypes(device):
            tol = tolerance(dtype, device)
            for B, T, C, H, bias in shapes:
                reference = _torch_mha(C, H, bias, dtype)  # stays on the CPU and computes the expected values
                student = cls.from_torch(copy.deepcopy(reference).to(device))
                assert isinstance(student, cls), (
                    f"{cls.__name__}.from_torch must return a {cls.__name__}, received {_describe(student)}"
                )
                for name, parameter in student.named_parameters():
                    placement = (
                        f"{cls.__name__}.from_torch of a module in {dtype} on {device.type}: parameter {name} is "
                        f"in {parameter.dtype} on {parameter.device.type}. Move the copy with "
                        ".to(device=..., dtype=...) of the source module's weights."
                    )
                    assert parameter.dtype == dtype, placement
                    assert parameter.device.type == device.type, placement
                x_cpu = torch.randn(B, T, C, generator=gen, dtype=torch.float64).to(dtype)
                x = _to(x_cpu, device)
                lengths = [T - b for b in range(B)]
                key_padding = _lengths_mask(lengths, T)  # (B, T)
                causal = _tril(T)
                masks = [
                    ("no mask", None, {}),
                    ("a (T, T) causal mask", causal, {"attn_mask": ~causal}),
                    ("a (B, 1, 1, T) key padding mask", key_padding[:, None, None, :], {"key_padding_mask": ~key_padding}),
                    (
                        "a causal mask combined with a key padding mask",
                        causal & key_padding[:, None, None, :],
                        {"attn_mask": ~causal, "key_padding_mask": ~key_padding},
                    ),
                ]
                for mask_name, mask, torch_masks in masks:
                    where = (
                        f"MultiHeadAttention(d_model={C}, n_heads={H}, bias={bias}) on x of shape {(B, T, C)} "
                        f"with {mask_name} ({dtype}, {device.type})"
                    )
                    for average in (True, False):
                        with torch.no_grad():
                            expected, expected_weights = reference(
                                x_cpu, x_cpu, x_cpu, need_weights=True, average_attn_weights=average, **torch_masks
                            )
                            result = student(x, mask=_to(mask, device) if mask is not None else None,
                                             average_attn_weights=average)
                        output, weights = _as_pair(result, where, "(output, attn_weights)")
                        weights_shape = (B, T, T) if average else (B, H, T, T)
                        kind = "averaged over heads" if average else "per head"
                        _assert_tensor(output, f"{where}: output", shape=(B, T, C), dtype=dtype, device=device)
                        _assert_tensor(
                            weights, f"{where}: attn_weights {kind} (average_attn_weights={average})",
                            shape=weights_shape, dtype=dtype, device=device,
                        )
                        _assert_close(
                            weights, expected_weights, f"{where}: attn_weights {kind}",
                            "The weights depend only on the q and k projections: split in_proj_weight and "
                            "in_proj_bias in the order q, k, v; split heads with view(B, T, H, D) then transpose(1, 2); pass the mask with "
                            "True = attend (nn.MultiheadAttention's boolean masks use True = blocked).",
                            **tol,
                        )
                        _assert_close(
                            output, expected, f"{where}: output",
                            "The weights match, so look after the attention: the v projection, merging heads "
                            "(transpose(1, 2) back to (B, T, H, D) before reshaping to (B, T, C)) and the output "
                            "projection out_proj with its bias.",
                            **tol,
                        )

    reference = _torch_mha(8, 2, True, torch.float32)
    student = cls.from_torch(reference)
    x = torch.randn(2, 3, 8, generator=gen)
    output, _ = student(x)
    output.sum().backward()
    frozen = [name for name, p in student.named_parameters() if p.requires_grad and p.grad is None]
    assert not frozen, (
        f"after backward() these parameters have no gradient: {frozen}. Copy weights into the existing "
        "parameters under torch.no_grad() (param.copy_(...)) and use every projection in forward."
    )


# ---------------------------------------------------------------------------------------------------------
# Positional encodings


def _sinusoidal(T: int, d_model: int, base: float = 10000.0, layout: str = "interleaved") -> torch.Tensor:
    """Compute the sinusoidal encoding in float64, or one of the layouts of common mistakes for diagnosis."""
    positions = torch.arange(T, dtype=torch.float64)[:, None]  # (T, 1)
    exponents = torch.arange(0, d_model, 2, dtype=torch.float64) / d_model  # (C/2,)
    angles = positions / base**exponents  # (T, C/2)
    pe = torch.empty(T, d_model, dtype=torch.float64)
    if layout == "interleaved":
        pe[:, 0::2], pe[:, 1::2] = torch.sin(angles), torch.cos(angles)
    elif layout == "swapped":
        pe[:, 0::2], pe[:, 1::2] = torch.cos(angles), torch.sin(angles)
    elif layout == "halves":
        pe[:, : d_model // 2], pe[:, d_model // 2 :] = torch.sin(angles), torch.cos(angles)
    return pe


@_preserve_rng
def check_sinusoidal_positional_encoding(fn) -> None:
    """Compare `fn(T, d_model)` with the sinusoidal formula in float64, and check odd d_model raises."""
    for T, d_model in [(1, 2), (10, 16), (50, 64), (128, 6)]:
        received = fn(T, d_model)
        where = f"sinusoidal_positional_encoding({T}, {d_model})"
        _assert_tensor(
            received, where, shape=(T, d_model), dtype=torch.float32,
            dtype_hint="Build the encoding in float32, for example from torch.arange(T, dtype=torch.float32).",
        )
        expected = _sinusoidal(T, d_model)
        # The angle t / 10000^(2i/d) is rounded to float32 before sin and cos, so a correct float32 result
        # differs from the float64 formula by up to about T * 2^-24 (the rounding of an angle up to T).
        tol = tolerance(torch.float32)
        atol = tol["atol"] + 4 * T * 2.0**-24
        if _matches(received, expected, tol["rtol"], atol):
            continue
        if _matches(received, _sinusoidal(T, d_model, layout="swapped"), tol["rtol"], atol):
            hint = "sin and cos are swapped: sin goes on the even dimensions 0, 2, 4, ..., cos on the odd ones."
        elif _matches(received, _sinusoidal(T, d_model, layout="halves"), tol["rtol"], atol):
            hint = (
                "sin fills the first half and cos the second: interleave them, sin on even dimensions "
                "(pe[:, 0::2]) and cos on odd ones (pe[:, 1::2])."
            )
        elif _matches(received, _sinusoidal(T, d_model, base=1.0), tol["rtol"], atol):
            hint = "Every dimension uses the angle t: divide the position by 10000^(2i / d_model)."
        else:
            hint = (
                "PE[t, 2i] = sin(t / 10000^(2i / d_model)) and PE[t, 2i + 1] = cos(t / 10000^(2i / d_model)), "
                "where 2i is the even dimension index itself (0, 2, 4, ...), not i."
            )
        _assert_close(received, expected, where, hint, tol["rtol"], atol)

    try:
        fn(4, 5)
    except ValueError:
        pass
    else:
        raise AssertionError(
            "sinusoidal_positional_encoding(4, 5) returned without error, expected a ValueError: sin and cos "
            "come in pairs, so d_model must be even."
        )


@_preserve_rng
def check_learned_positional_encoding(cls) -> None:
    """Check shapes, values, gradients, devices and the error beyond max_len of the learned encoding."""
    max_len, d_model = 16, 8
    module = cls(max_len, d_model)
    assert isinstance(module, nn.Module), f"LearnedPositionalEncoding must be an nn.Module, received {_describe(module)}"
    tables = [p for p in module.parameters() if tuple(p.shape) == (max_len, d_model)]
    count = sum(p.numel() for p in module.parameters())
    assert len(tables) == 1 and count == max_len * d_model, (
        f"LearnedPositionalEncoding({max_len}, {d_model}) should hold one ({max_len}, {d_model}) table of "
        f"position vectors (nn.Embedding({max_len}, {d_model})) and nothing else; its parameters have shapes "
        f"{[tuple(p.shape) for p in module.parameters()]}"
    )
    table = tables[0]

    for T in (1, 5, max_len):
        received = module(T)
        where = f"LearnedPositionalEncoding({max_len}, {d_model})({T})"
        _assert_tensor(received, where, shape=(T, d_model), dtype=table.dtype)
        assert torch.equal(received.detach(), table.detach()[:T]), (
            f"{where}: expected rows 0 to {T - 1} of the embedding table, received {_describe(received)}; "
            f"expected {_describe(table[:T])}. Look up positions torch.arange(T)."
        )

    module.zero_grad()
    output = module(5)
    assert output.requires_grad, (
        "the output of module(5) does not require grad, so the table would never be trained: return the lookup "
        "itself, not a detached copy or a tensor built under torch.no_grad()."
    )
    output.sum().backward()
    assert table.grad is not None, "after module(5).sum().backward() the embedding table has no gradient."
    expected_grad = torch.zeros(max_len, d_model)
    expected_grad[:5] = 1.0
    assert torch.equal(table.grad, expected_grad), (
        "after module(5).sum().backward(), rows 0-4 of the table should have gradient 1 and the other rows 0; "
        f"received {_describe(table.grad)}"
    )

    try:
        module(max_len + 1)
    except ValueError as error:
        assert str(max_len) in str(error), (
            f"the ValueError for T = {max_len + 1} should name the maximum length {max_len}; its message is {str(error)!r}"
        )
    except Exception as error:  # any other type is the unclear error this task replaces
        raise AssertionError(
            f"module({max_len + 1}) raised {type(error).__name__}: {error}; expected a ValueError that names the "
            f"maximum length {max_len} (nn.Embedding's own IndexError does not say which limit was hit)."
        ) from None
    else:
        raise AssertionError(
            f"module({max_len + 1}) returned a tensor, expected a ValueError: there is no position vector beyond "
            f"max_len = {max_len}."
        )

    for device in _devices():
        moved = cls(max_len, d_model).to(device)
        _assert_tensor(moved(3), f"LearnedPositionalEncoding on {device}: output", device=device)
    doubled = cls(max_len, d_model).double()
    _assert_tensor(doubled(3), "LearnedPositionalEncoding after .double(): output", dtype=torch.float64)


# ---------------------------------------------------------------------------------------------------------
# Transformer block and model: a functional reference built on torch.nn.functional


def _block_parameter_shapes(d_model: int, prefix: str = "") -> dict[str, tuple[int, ...]]:
    C = d_model
    shapes = {"ln1.weight": (C,), "ln1.bias": (C,)}
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        shapes[f"attn.{name}.weight"] = (C, C)
        shapes[f"attn.{name}.bias"] = (C,)
    shapes.update({
        "ln2.weight": (C,), "ln2.bias": (C,),
        "mlp.fc.weight": (4 * C, C), "mlp.fc.bias": (4 * C,),
        "mlp.proj.weight": (C, 4 * C), "mlp.proj.bias": (C,),
    })
    return {prefix + name: shape for name, shape in shapes.items()}


def _gpt_parameter_shapes(config) -> dict[str, tuple[int, ...]]:
    V, C = config.vocab_size, config.d_model
    shapes = {"tok_emb.weight": (V, C), "pos_emb.embedding.weight": (config.block_size, C)}
    for layer in range(config.n_layers):
        shapes.update(_block_parameter_shapes(C, prefix=f"blocks.{layer}."))
    shapes.update({"ln_f.weight": (C,), "ln_f.bias": (C,), "lm_head.weight": (V, C)})
    return shapes


def _random_state(shapes: dict[str, tuple[int, ...]], tie_weights: bool = False) -> dict[str, torch.Tensor]:
    """Draw parameter values (float64, CPU, seeded) large enough that every part of the model matters."""
    gen = _generator()
    state = {}
    for name, shape in shapes.items():
        noise = torch.randn(*shape, generator=gen, dtype=torch.float64)
        if name.startswith("ln") or ".ln" in name:
            state[name] = 1.0 + 0.3 * noise if name.endswith("weight") else 0.3 * noise
        elif name.endswith("bias"):
            state[name] = 0.3 * noise
        elif name.endswith("emb.weight") or name.endswith("embedding.weight"):
            state[name] = noise
        else:
            state[name] = noise / math.sqrt(shape[-1])
    if tie_weights:
        state["lm_head.weight"] = state["tok_emb.weight"]
    return state


def _reference_block(state, x, mask, n_heads, prefix="", variant="pre-norm"):
    """Compute a pre-norm block, or the variant of a common mistake, from parameter values."""

    def p(name):
        return state[prefix + name]

    def layer_norm(name, h):
        return F.layer_norm(h, h.shape[-1:], p(f"{name}.weight"), p(f"{name}.bias"))

    def attention(h):
        B, T, C = h.shape
        D = C // n_heads

        def heads(name):
            projected = F.linear(h, p(f"attn.{name}.weight"), p(f"attn.{name}.bias"))  # (B, T, C)
            return projected.view(B, T, n_heads, D).transpose(1, 2)  # (B, H, T, D)

        out = F.scaled_dot_product_attention(heads("q_proj"), heads("k_proj"), heads("v_proj"), attn_mask=mask)
        out = out.transpose(1, 2).reshape(B, T, C)  # (B, H, T, D) -> (B, T, C)
        return F.linear(out, p("attn.out_proj.weight"), p("attn.out_proj.bias"))

    def mlp(h, approximate="none"):
        hidden = F.gelu(F.linear(h, p("mlp.fc.weight"), p("mlp.fc.bias")), approximate=approximate)  # (B, T, 4C)
        return F.linear(hidden, p("mlp.proj.weight"), p("mlp.proj.bias"))  # (B, T, C)

    if variant == "pre-norm":
        x = x + attention(layer_norm("ln1", x))
        return x + mlp(layer_norm("ln2", x))
    if variant == "post-norm":
        x = layer_norm("ln1", x + attention(x))
        return layer_norm("ln2", x + mlp(x))
    if variant == "no residual":
        x = attention(layer_norm("ln1", x))
        return mlp(layer_norm("ln2", x))
    if variant == "tanh gelu":
        x = x + attention(layer_norm("ln1", x))
        return x + mlp(layer_norm("ln2", x), approximate="tanh")
    raise ValueError(f"unknown block variant {variant!r}")


_BLOCK_HINTS = {
    "post-norm": (
        "Your block matches a post-norm block, LayerNorm(x + sublayer(x)). This course's block is pre-norm: "
        "x = x + attn(ln1(x)), then x = x + mlp(ln2(x))."
    ),
    "no residual": "Your block matches one without residual connections: add each sublayer's output to x.",
    "tanh gelu": "Your block matches one with the tanh approximation of GELU: use nn.GELU() with its default (exact) form.",
}


def _block_hint(state, x, mask, n_heads, received, rtol, atol, prefix="") -> str:
    for variant, hint in _BLOCK_HINTS.items():
        if _matches(received, _reference_block(state, x, mask, n_heads, prefix, variant), rtol, atol):
            return hint
    return (
        "Expected x + attn(ln1(x)) followed by x + mlp(ln2(x)), with mlp = proj(GELU(fc(x))) and the mask "
        "passed to the attention."
    )


def _reference_gpt_logits(state, idx, config):
    T = idx.size(1)
    x = state["tok_emb.weight"][idx] + state["pos_emb.embedding.weight"][:T]  # (B, T, C)
    mask = _tril(T)
    for layer in range(config.n_layers):
        x = _reference_block(state, x, mask, config.n_heads, prefix=f"blocks.{layer}.")
    x = F.layer_norm(x, x.shape[-1:], state["ln_f.weight"], state["ln_f.bias"])
    return x @ state["lm_head.weight"].T  # (B, T, V)


def _named_parameters(module) -> dict[str, torch.Tensor]:
    # remove_duplicate=False lists a tied weight under both of its names, as state_dict() does.
    return dict(module.named_parameters(remove_duplicate=False))


def _assert_parameter_names(module, expected_shapes, what: str) -> None:
    received = {name: tuple(t.shape) for name, t in _named_parameters(module).items()}
    missing = sorted(set(expected_shapes) - set(received))
    unexpected = sorted(set(received) - set(expected_shapes))
    assert not missing and not unexpected, (
        f"{what}: the parameter names differ from the ones the task fixes. Missing: {missing[:6]}; unexpected: "
        f"{unexpected[:6]}. Use the submodule names of the docstrings (ln1, attn, ln2, mlp.fc, mlp.proj, "
        "tok_emb, pos_emb, blocks, ln_f, lm_head)."
    )
    wrong = {name: shape for name, shape in received.items() if shape != tuple(expected_shapes[name])}
    assert not wrong, (
        f"{what}: parameters with unexpected shapes (name: received): {wrong}; expected "
        f"{ {name: expected_shapes[name] for name in wrong} }"
    )


def _load_state(module, state, device, dtype) -> None:
    """Move the module, then copy the check's parameter values into its parameters."""
    module.to(device=device, dtype=dtype)
    parameters = _named_parameters(module)
    with torch.no_grad():
        for name, value in state.items():
            parameters[name].copy_(_to(value, device, dtype))


def _block_config(config_cls, **overrides):
    values = dict(vocab_size=11, block_size=8, n_layers=1, n_heads=4, d_model=16, tie_weights=True)
    values.update(overrides)
    return config_cls(**values)


@_preserve_rng
def check_block(block_cls, config_cls) -> None:
    """Compare the block, with parameters set by the check, with a pre-norm block built from torch.nn.functional."""
    config = _block_config(config_cls)
    shapes = _block_parameter_shapes(config.d_model)
    block = block_cls(config)
    assert isinstance(block, nn.Module), f"Block(config) must be an nn.Module, received {_describe(block)}"
    _assert_parameter_names(block, shapes, "Block(config)")
    state = _random_state(shapes)

    B, T, C = 3, 6, config.d_model
    x_cpu = torch.randn(B, T, C, generator=_generator(), dtype=torch.float64)
    key_padding = _lengths_mask([6, 3, 1], T)[:, None, None, :]  # (B, 1, 1, T)
    masks = [("no mask", None), ("a (T, T) causal mask", _tril(T)), ("a (B, 1, 1, T) key padding mask", key_padding)]

    for device in _devices():
        for dtype in _float_dtypes(device):
            tol = tolerance(dtype, device)
            if dtype == torch.float32:
                tol = {key: value * MODEL_TOLERANCE_FACTOR for key, value in tol.items()}
            _load_state(block, state, device, dtype)
            # The expected values come from the CPU in the same dtype.
            cpu_state = {name: value.to(dtype) for name, value in state.items()}
            x_typed = x_cpu.to(dtype)
            outputs = {}
            for mask_name, mask in masks:
                where = f"Block on x of shape {(B, T, C)} with {mask_name} ({dtype}, {device.type})"
                with torch.no_grad():
                    received = block(_to(x_typed, device), _to(mask, device) if mask is not None else None)
                    expected = _reference_block(cpu_state, x_typed, mask, config.n_heads)
                _assert_tensor(received, where, shape=(B, T, C), dtype=dtype, device=device)
                hint = _block_hint(cpu_state, x_typed, mask, config.n_heads, received, **tol)
                _assert_close(received, expected, where, hint, **tol)
                outputs[mask_name] = received.cpu()
            assert not torch.allclose(outputs["no mask"], outputs["a (T, T) causal mask"]), (
                "Block returns the same output with and without a causal mask: pass the mask to the attention."
            )


def _gpt_parameter_count(config) -> int:
    """Count the parameters of the course's GPT: embeddings, L blocks of 12 C^2 + 13 C, ln_f and the head."""
    V, C, L = config.vocab_size, config.d_model, config.n_layers
    count = V * C + config.block_size * C + L * (12 * C * C + 13 * C) + 2 * C
    if not config.tie_weights:
        count += V * C
    return count


def _build_seeded(model_cls, config):
    """Build the model from a fixed seed without changing the random state of the student's session."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        return model_cls(config)


def _tiny_config(config_cls, **overrides):
    values = dict(vocab_size=13, block_size=8, n_layers=2, n_heads=2, d_model=16, tie_weights=True)
    values.update(overrides)
    return config_cls(**values)


@_preserve_rng
def check_gpt_forward(gpt_cls, config_cls) -> None:
    """Check parameter count, shapes, the loss, its value at initialisation, and logits against a reference."""
    gen = _generator()
    for tie_weights in (True, False):
        config = _tiny_config(config_cls, tie_weights=tie_weights)
        model = _build_seeded(gpt_cls, config)
        assert isinstance(model, nn.Module), f"GPT(config) must be an nn.Module, received {_describe(model)}"
        what = f"GPT({config})"
        count = sum(p.numel() for p in model.parameters())
        expected_count = _gpt_parameter_count(config)
        V, C = config.vocab_size, config.d_model
        if count != expected_count:
            if tie_weights and count == expected_count + V * C:
                cause = "the weights are not tied: set self.lm_head.weight = self.tok_emb.weight"
            elif count in (expected_count + V, expected_count + V + V * C):
                cause = "lm_head has a bias: use nn.Linear(d_model, vocab_size, bias=False)"
            else:
                cause = (
                    "expected token and position embeddings, per block 12 C² + 13 C (LayerNorms, four attention "
                    "projections, MLP with hidden size 4 C), a final LayerNorm and an lm_head without bias"
                )
            raise AssertionError(f"{what} has {count} parameters, expected {expected_count}: {cause}.")
        _assert_parameter_names(model, _gpt_parameter_shapes(config), what)

        B, T = 4, config.block_size
        idx = torch.randint(0, V, (B, T), generator=gen)
        targets = torch.randint(0, V, (B, T), generator=gen)
        model.eval()
        with torch.no_grad():
            logits, loss = _as_pair(model(idx), f"{what}(idx)", "(logits, loss)")
            assert loss is None, f"{what}(idx) without targets should return loss None, received {_describe(loss)}"
            _assert_tensor(logits, f"{what}(idx): logits", shape=(B, T, V), dtype=torch.float32)
            logits, loss = _as_pair(model(idx, targets), f"{what}(idx, targets)", "(logits, loss)")
        _assert_tensor(loss, f"{what}(idx, targets): loss", shape=(), dtype=torch.float32)
        expected_loss = F.cross_entropy(logits.reshape(B * T, V), targets.reshape(B * T))
        assert math.isclose(loss.item(), expected_loss.item(), rel_tol=1e-5), (
            f"{what}: loss {loss.item():.6g} differs from the cross-entropy of the returned logits, "
            f"{expected_loss.item():.6g}: use F.cross_entropy(logits.reshape(B * T, V), targets.reshape(B * T))."
        )
        # With weights drawn from N(0, 0.02²) the logits are close to 0, so every token is about equally likely.
        assert abs(loss.item() - math.log(V)) < 0.2, (
            f"{what}: loss at initialisation is {loss.item():.4g}, expected close to log(V) = {math.log(V):.4g}: "
            "initialise every nn.Linear and nn.Embedding weight from N(0, 0.02²) and the biases at 0."
        )
        with torch.no_grad():
            short_logits, _ = model(idx[:, :3])
        _assert_tensor(short_logits, f"{what} on a sequence of length 3 < block_size: logits", shape=(B, 3, V))

        state = _random_state(_gpt_parameter_shapes(config), tie_weights=tie_weights)
        for device in _devices():
            for dtype in _float_dtypes(device):
                tol = tolerance(dtype, device)
                if dtype == torch.float32:
                    tol = {key: value * MODEL_TOLERANCE_FACTOR for key, value in tol.items()}
                _load_state(model, state, device, dtype)
                cpu_state = {name: value.to(dtype) for name, value in state.items()}  # for the expected logits
                for length in (T, 5):
                    where = (
                        f"{what} with parameters set by the check, on idx of shape {(B, length)} "
                        f"({dtype}, {device.type})"
                    )
                    with torch.no_grad():
                        logits, _ = model(idx[:, :length].to(device))
                        expected = _reference_gpt_logits(cpu_state, idx[:, :length], config)
                    _assert_tensor(logits, f"{where}: logits", shape=(B, length, V), dtype=dtype, device=device)
                    _assert_close(
                        logits, expected, f"{where}: logits",
                        "Expected tok_emb(idx) + pos_emb(T), the pre-norm blocks with a causal mask, the final "
                        "LayerNorm ln_f, then lm_head. Check the block first: its grade cell names the mistake.",
                        **tol,
                    )


def _randomise_parameters(model: nn.Module) -> None:
    """Give every parameter values large enough that a leak from the future shows in the logits."""
    gen = _generator()
    with torch.no_grad():
        for parameter in model.parameters():
            noise = torch.randn(parameter.shape, generator=gen, dtype=torch.float64)
            parameter.copy_(noise * 0.5)


@_preserve_rng
def check_gpt_causal(gpt_cls, config_cls) -> None:
    """Check that logits at position t depend on tokens 0..t only, and on all of them."""
    config = _tiny_config(config_cls)
    model = _build_seeded(gpt_cls, config)
    model.eval()
    _randomise_parameters(model)
    gen = _generator()
    V = config.vocab_size

    for device in _devices():
        model.to(device)
        for T in (config.block_size, 5):
            idx = torch.randint(0, V, (2, T), generator=gen)
            with torch.no_grad():
                logits, _ = model(idx.to(device))
            for t in range(T - 1):
                changed = idx.clone()
                changed[:, t + 1 :] = (changed[:, t + 1 :] + 1 + torch.randint(0, V - 1, (1,), generator=gen)) % V
                with torch.no_grad():
                    changed_logits, _ = model(changed.to(device))
                difference = (changed_logits[:, : t + 1] - logits[:, : t + 1]).abs().max().item()
                assert difference < 1e-4, (
                    f"GPT ({device.type}, T={T}): changing only the tokens at positions {t + 1} and later changed the "
                    f"logits at positions 0..{t} by up to {difference:.3g}. The model sees the future: pass the "
                    "causal mask (True on and below the diagonal) to the attention of every block."
                )

            changed = idx.clone()
            changed[:, 0] = (changed[:, 0] + 1) % V
            with torch.no_grad():
                changed_logits, _ = model(changed.to(device))
            difference = (changed_logits[:, -1] - logits[:, -1]).abs().max().item()
            assert difference > 1e-3, (
                f"GPT ({device.type}, T={T}): changing the first token does not change the logits at the last "
                f"position (difference {difference:.3g}). Each position should attend to all earlier ones: is the "
                "attention output added to the residual stream, and is the mask True on and below the diagonal?"
            )


@_preserve_rng
def check_gpt_training(gpt_cls, config_cls) -> None:
    """Train a tiny model for 40 AdamW steps on a repeated sequence; the loss must fall well below log(V)."""
    vocab_size, steps = 10, 40
    config = _tiny_config(config_cls, vocab_size=vocab_size, block_size=16, d_model=32, tie_weights=False)
    pattern = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 2])
    sequence = pattern.repeat(3)  # period 22 > block_size, so the model must read its context
    starts = [0, 5, 11, 17]
    x_cpu = torch.stack([sequence[s : s + 16] for s in starts])  # (B, T)
    y_cpu = torch.stack([sequence[s + 1 : s + 17] for s in starts])  # (B, T)

    for device in _devices():
        model = _build_seeded(gpt_cls, config).to(device)
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        x, y = x_cpu.to(device), y_cpu.to(device)
        losses = []
        for step in range(steps):
            _, loss = model(x, y)
            assert loss is not None and bool(torch.isfinite(loss)), (
                f"GPT training on {device.type}: step {step} returned loss {_describe(loss)}, expected a finite scalar"
            )
            optimizer.zero_grad()
            loss.backward()
            if step == 0:
                missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
                assert not missing, (
                    f"GPT training on {device.type}: after the first backward() these parameters have no gradient: "
                    f"{missing[:6]}. Every submodule must take part in forward, with no detach()."
                )
            optimizer.step()
            losses.append(loss.item())
        assert losses[-1] < 0.3 * losses[0], (
            f"GPT training on {device.type}: after {steps} AdamW steps (lr 1e-2) on a repeated sequence the loss "
            f"went from {losses[0]:.3f} to {losses[-1]:.3f}, expected below {0.3 * losses[0]:.3f}. A correct model "
            "memorises this sequence quickly: check the residual connections, that forward uses the token and "
            "position embeddings, and that the loss is F.cross_entropy of the logits themselves (it applies "
            "log-softmax, so a softmax before it flattens the loss)."
        )
