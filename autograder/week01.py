"""Hidden checks of week 1: sampling, estimation, information theory, eigen-decomposition, SVD and n-grams.

Each `check_<name>` takes the student's function or class, calls it on fixed inputs and raises AssertionError
saying what was expected, what was received and the likely cause. Errors raised inside student code
propagate unchanged, so the student gets the traceback of their own code.
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager

import numpy as np
import scipy.stats
import torch
import torch.nn.functional as F

from course_lib import get_device, tolerance
from course_lib.device import supports_float64

# NumPy results are float64 on the CPU.
_F64 = tolerance(torch.float64)

# Statistical checks use fixed seeds, so their outcome is deterministic for a given implementation. The p-value of
# a correct sampler that draws differently from the reference is uniformly distributed, so such a sampler fails a
# check with probability one in a million.
_MIN_P_VALUE = 1e-6

BOUNDARY = "\n"
UNKNOWN = "\ufffd"


# ---------------------------------------------------------------------------------------------------------
# Helpers


@contextmanager
def _quiet_numpy():
    """Silence NumPy floating-point warnings while student code runs on inputs with zeros or infinities.

    A correct submission must earn its points even when it computes log(0) = -inf on the way, and nbgrader
    scores any output on stderr as a failure.
    """
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _describe(value, n_values: int = 6) -> str:
    """Return the type, shape, dtype and first values of `value` for a failure message."""
    if isinstance(value, torch.Tensor):
        flat = value.detach().cpu().reshape(-1)[:n_values].tolist()
        return f"tensor of shape {tuple(value.shape)}, dtype {value.dtype}, values {flat}"
    if isinstance(value, (tuple, list)) and any(np.ndim(item) > 0 for item in value if not isinstance(item, str)):
        items = ", ".join(_describe(item, n_values) for item in value[:4])
        return f"{type(value).__name__} ({items}{', ...' if len(value) > 4 else ''})"
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):  # ragged sequences and other objects NumPy cannot convert
        array = None
    if array is None or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        return f"{type(value).__name__} {value!r}"[:300]
    if array.ndim == 0:
        return f"{array.item():.6g}" if np.issubdtype(array.dtype, np.floating) else str(array.item())
    flat = array.reshape(-1)[:n_values]
    more = ", ..." if array.size > n_values else ""
    values = ", ".join(f"{x:.6g}" if np.issubdtype(array.dtype, np.floating) else str(x) for x in flat)
    return f"{type(value).__name__} of shape {array.shape}, dtype {array.dtype}, values [{values}{more}]"


def _as_float_array(value, what: str) -> np.ndarray:
    array = np.asarray(value)
    assert np.issubdtype(array.dtype, np.number), (
        f"{what}: expected a number or an array of numbers, received {_describe(value)}"
    )
    return array.astype(np.float64)


def _scale_hint(received: np.ndarray, expected: np.ndarray) -> str:
    """Guess the usual reason why `received` differs from `expected`: log base, sign, missing zero guard."""
    received = np.asarray(received, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if np.any(np.isnan(received)):
        return "the result contains nan: 0 * log(0) gives nan, so skip the terms with p_i = 0"
    finite = np.isfinite(expected) & np.isfinite(received) & (np.abs(expected) > 1e-9)
    if not np.any(finite):
        return "check the terms where a probability is 0"
    ratio = received[finite] / expected[finite]
    for factor, reason in [
        (1 / math.log(10), "log10 instead of the natural logarithm (or the requested base)"),
        (1 / math.log(2), "log2 instead of the natural logarithm (or the requested base)"),
        (math.log(2), "the result is in nats although base=2 was requested: divide by log(base)"),
        (math.log(2) ** 2, "the result was multiplied by log(base); convert from nats by dividing by log(base)"),
        (-1.0, "the sign is flipped: the formula has a minus sign in front of the sum"),
    ]:
        if np.allclose(ratio, factor, rtol=1e-6):
            return reason
    return "compare your formula with the definition in the notebook"


def _assert_close(received, expected, what: str, hint: str = "", tol: dict | None = None) -> None:
    """Assert that `received` equals `expected` in shape and, elementwise, within `tol` (float64 default)."""
    tol = _F64 if tol is None else tol
    received_array = _as_float_array(received, what)
    expected_array = np.asarray(expected, dtype=np.float64)
    assert received_array.shape == expected_array.shape, (
        f"{what}: expected shape {expected_array.shape}, received {_describe(received)}. "
        "Reduce over the last axis only and keep the leading batch axes."
    )
    close = np.isclose(received_array, expected_array, rtol=tol["rtol"], atol=tol["atol"], equal_nan=False)
    # np.isclose treats inf == inf as close, which is the intended behaviour for infinite divergences.
    if not np.all(close):
        hint = hint or _scale_hint(received_array, expected_array)
        raise AssertionError(
            f"{what}: expected {_describe(expected_array)}, received {_describe(received)}. Likely cause: {hint}."
        )


# ---------------------------------------------------------------------------------------------------------
# 1. Probability


def check_sample_categorical(sample_categorical) -> None:
    """Check inverse-CDF sampling from a categorical distribution with a NumPy Generator."""
    probs = np.array([0.1, 0.0, 0.25, 0.4, 0.25])
    n_samples = 20_000
    samples = sample_categorical(probs, n_samples, np.random.default_rng(1234))
    array = np.asarray(samples)

    assert array.shape == (n_samples,), (
        f"sample_categorical(probs, {n_samples}, rng): expected an array of shape ({n_samples},), "
        f"received {_describe(samples)}"
    )
    assert np.issubdtype(array.dtype, np.integer), (
        f"expected integer category indices, received {_describe(samples)}; convert with .astype(np.int64)"
    )
    out_of_range = f"indices must lie in [0, {len(probs)}), received values from {array.min()} to {array.max()}"
    assert array.min() >= 0, f"{out_of_range}. Likely cause: an index shifted down by one"
    assert array.max() < len(probs), (
        f"{out_of_range}. Likely cause: the search runs over probs instead of their cumulative sum, or an index "
        "is shifted up by one"
    )
    n_forbidden = int(np.sum(array == 1))
    assert n_forbidden == 0, (
        f"category 1 has probability 0 but was drawn {n_forbidden} times: the first index with cdf > u "
        "is np.searchsorted(cdf, u, side='right')"
    )

    counts = np.bincount(array, minlength=len(probs))
    positive = probs > 0
    p_value = scipy.stats.chisquare(counts[positive], n_samples * probs[positive]).pvalue
    assert p_value > _MIN_P_VALUE, (
        f"the frequencies {np.round(counts / n_samples, 4).tolist()} of {n_samples} samples do not match "
        f"probs {probs.tolist()} (chi-square p-value {p_value:.1e}). Likely cause: the categories are not "
        "drawn with the probabilities given (searching probs instead of their cumulative sum, or an index shift)"
    )

    repeat = np.asarray(sample_categorical(probs, n_samples, np.random.default_rng(1234)))
    assert np.array_equal(array, repeat), (
        "two calls with generators created from the same seed gave different samples: draw the uniforms "
        "from the `rng` argument, not from np.random or a Generator created inside the function"
    )
    other = np.asarray(sample_categorical(probs, n_samples, np.random.default_rng(4321)))
    assert not np.array_equal(array, other), (
        "generators with different seeds gave identical samples: the function ignores its `rng` argument"
    )

    n_exact = 1_000
    uniforms = np.random.default_rng(7).random(n_exact)
    cdf = np.cumsum(probs)
    expected = np.searchsorted(cdf / cdf[-1], uniforms, side="right")
    received = np.asarray(sample_categorical(probs, n_exact, np.random.default_rng(7)))
    mismatches = np.flatnonzero(received != expected)
    if mismatches.size:
        first = mismatches[0]
        raise AssertionError(
            f"{mismatches.size} of {n_exact} samples differ from inverse-CDF sampling of u = rng.random({n_exact}). "
            f"First difference at position {first}: u = {uniforms[first]:.6f}, expected category {expected[first]}, "
            f"received {received[first]}. The task asks for one call rng.random(n_samples) and the first index "
            "whose CDF value exceeds each u"
        )

    one_hot = np.asarray(sample_categorical([0.0, 0.0, 1.0], 50, np.random.default_rng(0)))
    assert one_hot.shape == (50,), f"with probs [0, 0, 1] expected shape (50,), received {_describe(one_hot)}"
    assert np.all(one_hot == 2), (
        f"with probs [0, 0, 1] (a Python list) every sample must be 2, received {_describe(one_hot)}"
    )


def check_sample_normal(sample_normal) -> None:
    """Check Box-Muller sampling: distribution, scaling by std, odd sizes, std = 0 and use of `rng`."""
    n_samples = 20_000
    for mean, std in [(0.0, 1.0), (3.0, 2.0)]:
        samples = sample_normal(mean, std, n_samples, np.random.default_rng(2024))
        array = np.asarray(samples)
        assert array.shape == (n_samples,), (
            f"sample_normal({mean}, {std}, {n_samples}, rng): expected shape ({n_samples},), "
            f"received {_describe(samples)}"
        )
        assert np.issubdtype(array.dtype, np.floating), (
            f"expected floating-point samples, received {_describe(samples)}"
        )
        assert np.all(np.isfinite(array)), (
            "some samples are inf or nan: log(0) is -inf, so draw U1 from (0, 1] as 1 - rng.random(...)"
        )
        result = scipy.stats.kstest(array, scipy.stats.norm(loc=mean, scale=std).cdf)
        assert result.pvalue > _MIN_P_VALUE, (
            f"samples for mean={mean}, std={std} do not follow N({mean}, {std}^2): sample mean {array.mean():.4f}, "
            f"sample std {array.std(ddof=1):.4f}, Kolmogorov-Smirnov p-value {result.pvalue:.1e}. Likely cause: "
            "a missing square root or 2*pi in the Box-Muller formula, log10 instead of the natural log, or "
            "scaling by the variance std**2 instead of std"
        )

    for odd_size in (1, 7):
        samples = np.asarray(sample_normal(0.0, 1.0, odd_size, np.random.default_rng(0)))
        assert samples.shape == (odd_size,), (
            f"sample_normal(0, 1, {odd_size}, rng): expected shape ({odd_size},), received {_describe(samples)}. "
            "Each pair of uniforms gives two normals: draw ceil(n / 2) pairs and keep the first n values"
        )

    constant = np.asarray(sample_normal(5.0, 0.0, 10, np.random.default_rng(0)))
    assert constant.shape == (10,), (
        f"sample_normal(5, 0, 10, rng): expected shape (10,), received {_describe(constant)}"
    )
    assert np.allclose(constant, 5.0), (
        f"with std = 0 every sample must equal the mean 5.0, received {_describe(constant)}"
    )

    first = np.asarray(sample_normal(0.0, 1.0, 100, np.random.default_rng(99)))
    again = np.asarray(sample_normal(0.0, 1.0, 100, np.random.default_rng(99)))
    other = np.asarray(sample_normal(0.0, 1.0, 100, np.random.default_rng(100)))
    assert np.array_equal(first, again), (
        "two calls with generators created from the same seed gave different samples: draw from the `rng` "
        "argument, not from np.random"
    )
    assert not np.array_equal(first, other), "generators with different seeds gave identical samples: `rng` is ignored"


def check_estimate_mean_variance(estimate_mean_variance) -> None:
    """Check the sample mean, the unbiased variance and the standard error, including a large offset."""
    rng = np.random.default_rng(5)
    cases = [
        ("257 samples of N(2, 3^2)", rng.normal(2.0, 3.0, 257)),
        ("the list [1.0, 3.0]", [1.0, 3.0]),
        # A mean of 1e9 with unit variance: E[x^2] - E[x]^2 loses every significant digit here.
        ("1000 samples of 1e9 + N(0, 1)", 1e9 + rng.standard_normal(1000)),
    ]
    for name, samples in cases:
        result = estimate_mean_variance(samples)
        assert isinstance(result, tuple) and len(result) == 3, (
            f"{name}: expected a tuple (mean, variance, standard_error), received {_describe(result)}"
        )
        mean, variance, standard_error = (float(value) for value in result)

        _assert_close(mean, np.mean(samples), f"{name}: mean", "the mean is the plain average of the samples")
        if math.isclose(variance, np.var(samples, ddof=0), rel_tol=1e-9):
            hint = "you divided by n; the unbiased estimator divides by n - 1"
        elif np.mean(samples) > 1e6:
            hint = "E[x^2] - E[x]^2 cancels catastrophically for a large mean: subtract the mean, then square"
        else:
            hint = "the variance is sum((x - mean)^2) / (n - 1)"
        _assert_close(variance, np.var(samples, ddof=1), f"{name}: variance", hint)
        _assert_close(
            standard_error, scipy.stats.sem(samples), f"{name}: standard error",
            "the standard error of the mean is sqrt(variance / n)",
        )

    try:
        with _quiet_numpy():
            result = estimate_mean_variance([4.0])
    except ValueError:
        pass
    else:
        raise AssertionError(
            f"with a single sample the unbiased variance is undefined, so a ValueError is expected, "
            f"but the function returned {_describe(result)}"
        )


# ---------------------------------------------------------------------------------------------------------
# 2. Information theory


def _random_distributions(rng: np.random.Generator, shape: tuple[int, ...], zeros: bool) -> np.ndarray:
    """Return random distributions along the last axis, some entries set to 0 when `zeros` is True."""
    p = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])
    if zeros:
        p[..., 1] = 0.0
        p[..., -1] = 0.0
        p /= p.sum(axis=-1, keepdims=True)
    return p


def check_entropy(entropy) -> None:
    """Compare `entropy` with scipy.stats.entropy on single, batched, one-hot and zero-containing inputs."""
    rng = np.random.default_rng(11)
    single = _random_distributions(rng, (6,), zeros=False)
    with_zeros = _random_distributions(rng, (6,), zeros=True)
    batch = _random_distributions(rng, (4, 7), zeros=True)

    with _quiet_numpy():
        cases = [
            ("entropy(p) of a random 6-way distribution", entropy(single), scipy.stats.entropy(single)),
            ("entropy(p, base=2) of a fair coin", entropy([0.5, 0.5], base=2), 1.0),
            ("entropy(p, base=2) of [0.5, 0.25, 0.25]", entropy([0.5, 0.25, 0.25], base=2), 1.5),
            ("entropy(p, base=10)", entropy(single, base=10), scipy.stats.entropy(single, base=10)),
            ("entropy(p) of a uniform distribution over 8", entropy(np.full(8, 1 / 8)), math.log(8)),
            ("entropy(p) with zero probabilities", entropy(with_zeros), scipy.stats.entropy(with_zeros)),
            ("entropy(p) of a one-hot distribution", entropy([0.0, 1.0, 0.0, 0.0]), 0.0),
            ("entropy(p) of a (4, 7) batch", entropy(batch), scipy.stats.entropy(batch, axis=-1)),
            (
                "entropy(p, base=2) of a (4, 7) batch",
                entropy(batch, base=2),
                scipy.stats.entropy(batch, base=2, axis=-1),
            ),
        ]
    for what, received, expected in cases:
        _assert_close(received, expected, what)


def check_cross_entropy(cross_entropy) -> None:
    """Compare `cross_entropy` with H(p) + D_KL(p || q) from scipy, including zeros, inf and batches."""
    rng = np.random.default_rng(12)
    p = np.array([0.7, 0.2, 0.1])
    q = np.array([0.2, 0.5, 0.3])
    cases = [
        ("cross_entropy([0.5, 0.5], [0.9, 0.1])", [0.5, 0.5], [0.9, 0.1], None),
        ("cross_entropy(p, q) with p != q", p, q, None),
        ("cross_entropy(p, p), which equals entropy(p)", p, p, None),
        ("cross_entropy(p, q, base=2)", p, q, 2),
        ("cross_entropy(p, q) where p_i = q_i = 0", [0.0, 0.5, 0.5], [0.0, 0.25, 0.75], None),
        (
            "cross_entropy(p, q) of (3, 5) batches",
            _random_distributions(rng, (3, 5), zeros=True),
            _random_distributions(rng, (3, 5), zeros=False),
            None,
        ),
    ]

    def scipy_cross_entropy(p, q, base=None):
        return scipy.stats.entropy(p, base=base, axis=-1) + scipy.stats.entropy(p, q, base=base, axis=-1)

    for what, p_case, q_case, base in cases:
        with _quiet_numpy():
            received = cross_entropy(p_case, q_case) if base is None else cross_entropy(p_case, q_case, base=base)
            swapped = scipy_cross_entropy(q_case, p_case, base)
        expected = scipy_cross_entropy(p_case, q_case, base)
        hint = ""
        same_shape = np.shape(received) == np.shape(expected)
        if same_shape and np.allclose(received, swapped) and not np.allclose(swapped, expected):
            hint = "the arguments are swapped: H(p, q) = -sum p_i log q_i takes the log of the model q"
        _assert_close(received, expected, what, hint)

    with _quiet_numpy():
        infinite = cross_entropy([0.5, 0.5], [1.0, 0.0])
    assert np.isposinf(float(infinite)), (
        f"cross_entropy([0.5, 0.5], [1, 0]): expected inf because q is 0 where p is positive, "
        f"received {_describe(infinite)}"
    )


def check_kl_divergence(kl_divergence) -> None:
    """Compare `kl_divergence` with scipy.stats.entropy(p, q): asymmetry, zeros, inf, base and batches."""
    rng = np.random.default_rng(13)
    p = np.array([0.7, 0.2, 0.1])
    q = np.array([0.2, 0.5, 0.3])
    cases = [
        ("kl_divergence(p, q) with p != q", p, q, None),
        ("kl_divergence(q, p)", q, p, None),
        ("kl_divergence(p, p)", p, p, None),
        ("kl_divergence([0.5, 0.5], [0.9, 0.1])", [0.5, 0.5], [0.9, 0.1], None),
        ("kl_divergence(p, q, base=2)", p, q, 2),
        ("kl_divergence(p, q) where p_i = q_i = 0", [0.0, 0.5, 0.5], [0.0, 0.25, 0.75], None),
        ("kl_divergence(p, q) where only p_i = 0", [0.0, 0.5, 0.5], [0.2, 0.4, 0.4], None),
        (
            "kl_divergence(p, q) of (4, 6) batches",
            _random_distributions(rng, (4, 6), zeros=True),
            _random_distributions(rng, (4, 6), zeros=False),
            None,
        ),
    ]
    for what, p_case, q_case, base in cases:
        with _quiet_numpy():
            received = kl_divergence(p_case, q_case) if base is None else kl_divergence(p_case, q_case, base=base)
        expected = scipy.stats.entropy(p_case, q_case, base=base, axis=-1)
        swapped = scipy.stats.entropy(q_case, p_case, base=base, axis=-1)
        hint = ""
        if np.shape(received) == np.shape(expected):
            if np.allclose(received, swapped) and not np.allclose(swapped, expected):
                hint = "the arguments are swapped: D_KL(p || q) = sum p_i log(p_i / q_i), and KL is not symmetric"
            elif np.allclose(received, -expected) and not np.allclose(expected, 0.0):
                hint = "the log ratio is inverted: use log(p_i / q_i), which makes the divergence non-negative"
        _assert_close(received, expected, what, hint)

    with _quiet_numpy():
        infinite = kl_divergence([0.5, 0.5], [1.0, 0.0])
    assert np.isposinf(float(infinite)), (
        f"kl_divergence([0.5, 0.5], [1, 0]): expected inf because q is 0 where p is positive, "
        f"received {_describe(infinite)}"
    )


def check_perplexity(perplexity) -> None:
    """Compare `perplexity` with the exponential of torch's cross-entropy, per sequence and in bits."""
    generator = torch.Generator().manual_seed(14)
    logits = torch.randn(3, 8, 20, generator=generator, dtype=torch.float64)  # (B, T, V)
    targets = torch.randint(0, 20, (3, 8), generator=generator)  # (B, T)
    log_probs = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T)
    # F.cross_entropy takes the class axis second: (B, V, T).
    expected = torch.exp(F.cross_entropy(logits.transpose(1, 2), targets, reduction="none").mean(dim=-1))

    received = perplexity(log_probs.numpy())
    received_array = _as_float_array(received, "perplexity of a (3, 8) batch")
    hint = "perplexity is exp(-mean(log_probs)) over the last axis"
    if received_array.shape == (3,):
        if np.allclose(received_array, 1.0 / expected.numpy()):
            hint = "the sign is flipped: perplexity is exp of minus the mean log-probability"
        elif np.allclose(received_array, expected.numpy() ** 8):
            hint = "you summed the log-probabilities; perplexity uses their mean"
    _assert_close(received, expected.numpy(), "perplexity of a (3, 8) batch of log-probabilities", hint)

    probs = np.array([0.5, 0.25, 0.125])
    _assert_close(perplexity(np.log(probs)), 4.0, "perplexity(np.log([0.5, 0.25, 0.125]))")
    _assert_close(
        perplexity(np.log2(probs), base=2), 4.0, "perplexity(np.log2([0.5, 0.25, 0.125]), base=2)",
        "with base=2 the log-probabilities are in bits, so the perplexity is 2 ** (-mean)",
    )
    _assert_close(
        perplexity(np.log10(probs), base=10), 4.0, "perplexity(np.log10([0.5, 0.25, 0.125]), base=10)",
        "with base=10 the perplexity is 10 ** (-mean)",
    )
    _assert_close(perplexity(np.full(16, -math.log(50.0))), 50.0, "perplexity of a uniform model over 50 tokens")
    _assert_close(perplexity([0.0, 0.0]), 1.0, "perplexity of a model that is always certain and right")


def _devices() -> list[torch.device]:
    device = get_device()
    return [torch.device("cpu")] + ([device] if device.type != "cpu" else [])


def check_cross_entropy_from_logits(cross_entropy_from_logits) -> None:
    """Compare with torch.nn.functional.cross_entropy: batches, float64, logits of +-1e4, gradients, devices."""
    generator = torch.Generator().manual_seed(15)
    logits_2d = torch.randn(4, 7, generator=generator) * 3.0  # (N, V)
    targets_2d = torch.randint(0, 7, (4,), generator=generator)  # (N,)
    logits_3d = torch.randn(2, 5, 11, generator=generator)  # (B, T, V)
    targets_3d = torch.randint(0, 11, (2, 5), generator=generator)  # (B, T)

    # Rows at very different scales: a shift by one maximum for the whole batch underflows the last rows.
    large = torch.randn(6, 9, generator=generator) * 1e4  # (N, V)
    large[0] = -1e4
    large[1] = -1e4
    large[1, 3] = 1e4
    large[2] = torch.linspace(-1e4, 1e4, 9)
    large_targets = torch.tensor([5, 3, 0, 1, 8, 4])  # row 1 is certain and right (loss 0), row 2 far off (2e4)

    for device in _devices():
        dtypes = [torch.float32, torch.float64] if supports_float64(device) else [torch.float32]
        for dtype in dtypes:
            tol = tolerance(dtype, device)
            cases = [
                ("logits of shape (4, 7)", logits_2d, targets_2d),
                ("logits of shape (2, 5, 11) with targets (2, 5)", logits_3d, targets_3d),
                ("logits of +-1e4 with rows at different scales, shape (6, 9)", large, large_targets),
            ]
            for what, logits, targets in cases:
                logits = logits.to(device=device, dtype=dtype)
                targets = targets.to(device)
                vocab_size = logits.shape[-1]
                expected = F.cross_entropy(
                    logits.double().cpu().reshape(-1, vocab_size), targets.cpu().reshape(-1)
                ).to(dtype)
                received = cross_entropy_from_logits(logits, targets)
                label = f"{what}, {dtype}, on {device.type}"

                assert isinstance(received, torch.Tensor), (
                    f"{label}: expected a torch.Tensor, received {type(received).__name__}: keep the computation "
                    "in torch"
                )
                assert received.dim() == 0, (
                    f"{label}: expected a 0-dim tensor (the mean over all positions), received "
                    f"{_describe(received)}"
                )
                assert received.dtype == dtype, f"{label}: expected dtype {dtype}, received {received.dtype}"
                assert received.device.type == device.type, (
                    f"{label}: expected the result on {device}, received it on {received.device}"
                )
                value = received.detach().cpu()
                n_positions = targets.numel()
                if not torch.isfinite(value):
                    hint = (
                        "exp overflowed or log saw 0: subtract the maximum of each position "
                        "(logits.max(dim=-1, keepdim=True)) before exp"
                    )
                elif torch.allclose(value, expected * n_positions, **tol):
                    hint = "the losses were summed; the result is their mean over all positions"
                else:
                    hint = (
                        "the loss of one position is log(sum(exp(z))) - z[target]; check the axis of the "
                        "max and sum (the last one) and that the maximum is added back"
                    )
                assert torch.allclose(value, expected, **tol), (
                    f"{label}: expected {expected.item():.6g} (F.cross_entropy), received {value.item():.6g}. "
                    f"Likely cause: {hint}"
                )

        # Gradients: softmax(z) - one_hot(target), divided by the number of positions.
        dtype = torch.float64 if supports_float64(device) else torch.float32
        tol = tolerance(dtype, device)
        logits = logits_3d.to(device=device, dtype=dtype).requires_grad_(True)
        loss = cross_entropy_from_logits(logits, targets_3d.to(device))
        assert loss.requires_grad, (
            "the result does not depend on logits in the autograd graph: avoid .item(), .numpy(), .detach() "
            "and torch.no_grad() inside the function"
        )
        (gradient,) = torch.autograd.grad(loss, logits)
        reference_logits = logits_3d.to(dtype).requires_grad_(True)
        F.cross_entropy(reference_logits.reshape(-1, 11), targets_3d.reshape(-1)).backward()
        assert torch.allclose(gradient.cpu(), reference_logits.grad, **tol), (
            f"on {device.type}: the gradient with respect to logits differs from F.cross_entropy's "
            f"(max difference {(gradient.cpu() - reference_logits.grad).abs().max().item():.3g})"
        )


# ---------------------------------------------------------------------------------------------------------
# 3. Linear algebra


def _random_symmetric(rng: np.random.Generator, size: int) -> np.ndarray:
    matrix = rng.standard_normal((size, size))
    return (matrix + matrix.T) / 2


def check_sorted_eigh(sorted_eigh) -> None:
    """Compare with numpy.linalg.eigvalsh: descending order, eigenvector columns, orthonormality, errors."""
    rng = np.random.default_rng(16)
    rotation, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    repeated = rotation @ np.diag([4.0, 1.0, 1.0, -2.0]) @ rotation.T
    cases = {
        "[[2, 1], [1, 2]]": np.array([[2.0, 1.0], [1.0, 2.0]]),
        "a random symmetric 5x5 matrix with negative eigenvalues": _random_symmetric(rng, 5),
        "a 4x4 matrix with eigenvalues 4, 1, 1, -2": repeated,
        "the 1x1 matrix [[5]]": np.array([[5.0]]),
    }
    for name, A in cases.items():
        result = sorted_eigh(A)
        assert isinstance(result, tuple) and len(result) == 2, (
            f"{name}: expected a tuple (eigenvalues, eigenvectors), received {_describe(result)}"
        )
        eigenvalues = _as_float_array(result[0], f"{name}: eigenvalues")
        eigenvectors = _as_float_array(result[1], f"{name}: eigenvectors")
        n = A.shape[0]
        assert eigenvalues.shape == (n,), f"{name}: expected eigenvalues of shape ({n},), received {eigenvalues.shape}"
        assert eigenvectors.shape == (n, n), (
            f"{name}: expected eigenvectors of shape ({n}, {n}), received {eigenvectors.shape}"
        )

        expected = np.linalg.eigvalsh(A)[::-1]
        if np.allclose(eigenvalues, expected[::-1]) and n > 1:
            hint = "the eigenvalues are in ascending order, as np.linalg.eigh returns them: reverse the order"
        elif np.allclose(eigenvalues, expected[np.argsort(-np.abs(expected), kind="stable")]):
            hint = "the eigenvalues are sorted by absolute value; sort them by value"
        else:
            hint = "compare with np.linalg.eigvalsh(A)[::-1]"
        _assert_close(eigenvalues, expected, f"{name}: eigenvalues in descending order", hint)

        residual = np.abs(A @ eigenvectors - eigenvectors * eigenvalues).max()
        if residual > 1e-7:
            transposed = np.abs(A @ eigenvectors.T - eigenvectors.T * eigenvalues).max()
            hint = (
                "the eigenvectors are returned as rows; column i must be the eigenvector of eigenvalue i"
                if transposed < 1e-7
                else "the eigenvectors were not reordered together with the eigenvalues"
            )
            raise AssertionError(
                f"{name}: A @ eigenvectors differs from eigenvectors * eigenvalues by up to {residual:.3g}. "
                f"Likely cause: {hint}"
            )
        gram_error = np.abs(eigenvectors.T @ eigenvectors - np.eye(n)).max()
        assert gram_error < 1e-7, (
            f"{name}: the eigenvectors are not orthonormal (max |V^T V - I| = {gram_error:.3g}); np.linalg.eigh "
            "returns an orthonormal basis even for repeated eigenvalues, np.linalg.eig does not"
        )
        reconstruction_error = np.abs(eigenvectors @ np.diag(eigenvalues) @ eigenvectors.T - A).max()
        assert reconstruction_error < 1e-7, (
            f"{name}: V diag(w) V^T differs from A by up to {reconstruction_error:.3g}"
        )

    for name, A in {
        "the non-symmetric matrix [[1, 2], [0, 1]]": np.array([[1.0, 2.0], [0.0, 1.0]]),
        "a 2x3 matrix": np.ones((2, 3)),
    }.items():
        try:
            with _quiet_numpy():
                result = sorted_eigh(A)
        except ValueError:
            continue
        raise AssertionError(f"sorted_eigh of {name}: expected ValueError, received {_describe(result)}")


def check_best_rank_k(best_rank_k) -> None:
    """Compare with the truncated SVD from numpy.linalg.svd and the Eckart-Young error, for every k."""
    rng = np.random.default_rng(17)
    matrices = {
        "a random 6x4 matrix": rng.standard_normal((6, 4)),
        "a random 3x7 matrix": rng.standard_normal((3, 7)),
    }
    for name, A in matrices.items():
        U, s, Vt = np.linalg.svd(A, full_matrices=False)
        for k in range(len(s) + 1):
            result = best_rank_k(A, k)
            assert isinstance(result, tuple) and len(result) == 2, (
                f"best_rank_k({name}, {k}): expected a tuple (A_k, error), received {_describe(result)}"
            )
            A_k = _as_float_array(result[0], f"best_rank_k({name}, {k}): A_k")
            error = float(result[1])
            expected = (U[:, :k] * s[:k]) @ Vt[:k]
            expected_error = math.sqrt(float(np.sum(s[k:] ** 2)))

            assert A_k.shape == A.shape, (
                f"best_rank_k({name}, {k}): expected A_k of shape {A.shape}, received {_describe(result[0])}"
            )
            if not np.allclose(A_k, expected, rtol=_F64["rtol"], atol=_F64["atol"]):
                smallest = (U[:, len(s) - k:] * s[len(s) - k:]) @ Vt[len(s) - k:] if k else np.zeros_like(A)
                if np.allclose(A_k, smallest):
                    hint = "the k smallest singular values were kept; np.linalg.svd sorts them in descending order"
                elif k and np.allclose(A_k, U[:, :k] @ Vt[:k]):
                    hint = "the singular values are missing: multiply the columns of U by s"
                else:
                    hint = "A_k is U[:, :k] * s[:k] @ Vt[:k, :]"
                raise AssertionError(
                    f"best_rank_k({name}, k={k}): A_k differs from the truncated SVD by up to "
                    f"{np.abs(A_k - expected).max():.3g}. Likely cause: {hint}"
                )
            if not math.isclose(error, expected_error, rel_tol=_F64["rtol"], abs_tol=_F64["atol"]):
                if math.isclose(error, float(np.sum(s[k:])), rel_tol=1e-9):
                    hint = "the error sums the discarded singular values; it is the square root of their squares' sum"
                elif math.isclose(error, math.sqrt(float(np.sum(s[:k] ** 2))), rel_tol=1e-9):
                    hint = "the error uses the kept singular values; it comes from the discarded ones, s[k:]"
                else:
                    hint = "the error is sqrt(sum(s[k:] ** 2))"
                raise AssertionError(
                    f"best_rank_k({name}, k={k}): expected error {expected_error:.6g}, received {error:.6g}. "
                    f"Likely cause: {hint}"
                )

    A = matrices["a random 6x4 matrix"]
    for k in (-1, 5):
        try:
            result = best_rank_k(A, k)
        except ValueError:
            continue
        raise AssertionError(
            f"best_rank_k(A, {k}) for A of shape (6, 4): expected ValueError since k must lie in [0, 4], "
            f"received {_describe(result)}"
        )


# ---------------------------------------------------------------------------------------------------------
# 4. Character n-gram model

# Sentences written for these checks, in the style of the HPO definitions.
_SENTENCES = [
    "An abnormal increase in the size of the liver.",
    "Reduced muscle tone, with decreased resistance to passive movement.",
    "A congenital absence of one or more teeth.",
    "An abnormally small head circumference.",
]
_TOY_TEXTS = ["abab", "ba"]
_TOY_VOCAB = [BOUNDARY, "a", "b", UNKNOWN]

# Hand-computed add-alpha probabilities for _TOY_TEXTS, in the order of _TOY_VOCAB.
# Bigram, alpha = 0.5, V = 4: counts after the boundary a:1 b:1, after a b:2 boundary:1, after b a:2 boundary:1.
_TOY_BIGRAM = {
    "": [0.125, 0.375, 0.375, 0.125],
    "a": [0.3, 0.1, 0.5, 0.1],
    "bab": [0.3, 0.5, 0.1, 0.1],
    "xyz": [0.25, 0.25, 0.25, 0.25],
}
# Trigram, alpha = 1: contexts "\n\n" a:1 b:1, "\na" b:1, "ab" a:1 boundary:1, "ba" b:1 boundary:1, "\nb" a:1.
_TOY_TRIGRAM = {
    "": [1 / 6, 2 / 6, 2 / 6, 1 / 6],
    "a": [1 / 5, 1 / 5, 2 / 5, 1 / 5],
    "abab": [2 / 6, 2 / 6, 1 / 6, 1 / 6],
    "bb": [0.25, 0.25, 0.25, 0.25],
}
# Unigram, alpha = 1: a:3 b:3 boundary:2 out of 8.
_TOY_UNIGRAM = {"": [3 / 12, 4 / 12, 4 / 12, 1 / 12], "ab": [3 / 12, 4 / 12, 4 / 12, 1 / 12]}


def _probabilities(model, context: str) -> np.ndarray:
    probs = model.next_token_probs(context)
    array = _as_float_array(probs, f"next_token_probs({context!r})")
    assert array.shape == (len(model.vocab),), (
        f"next_token_probs({context!r}): expected shape ({len(model.vocab)},), one entry per vocabulary token, "
        f"received {_describe(probs)}"
    )
    return array


def _probability_hint(received: np.ndarray, context: str) -> str:
    total = received.sum()
    if not np.isfinite(total):
        return "nan or inf: an unseen context has count(h) = 0, and add-alpha then gives alpha / (alpha * V)"
    if not math.isclose(total, 1.0, rel_tol=1e-9):
        return (
            f"the probabilities sum to {total:.6g}: add alpha to all V counts in the numerator and "
            "alpha * V to the denominator"
        )
    return (
        f"check which context the model uses for {context!r}: the last n - 1 characters after padding the "
        "start with BOUNDARY"
    )


def check_ngram_probabilities(model_class) -> None:
    """Check fit, the vocabulary and next_token_probs against hand-computed add-alpha tables."""
    model = model_class(n=2, alpha=0.5)
    returned = model.fit(list(_TOY_TEXTS))
    assert returned is model, f"fit must return self (the fitted model), received {_describe(returned)}"
    assert list(model.vocab) == _TOY_VOCAB, (
        f"after fit({_TOY_TEXTS}): expected vocab {_TOY_VOCAB}, received {list(model.vocab)}. The vocabulary is "
        "sorted(set of training characters | {BOUNDARY, UNKNOWN})"
    )

    for (n, alpha), table in {(2, 0.5): _TOY_BIGRAM, (3, 1.0): _TOY_TRIGRAM, (1, 1.0): _TOY_UNIGRAM}.items():
        model = model_class(n=n, alpha=alpha).fit(list(_TOY_TEXTS))
        for context, expected in table.items():
            with _quiet_numpy():
                received = _probabilities(model, context)
            hint = _probability_hint(received, context)
            if context in ("xyz", "bb"):
                hint = "a context never seen in training gets the uniform distribution 1 / V"
            _assert_close(
                received, expected,
                f"n={n}, alpha={alpha}, trained on {_TOY_TEXTS}: next_token_probs({context!r}) over {_TOY_VOCAB}",
                hint,
            )

    model = model_class(n=4, alpha=0.1).fit(list(_SENTENCES))
    contexts = [text[:end] for text in _SENTENCES for end in range(0, len(text) + 1, 3)]
    contexts += ["zzzz", "Qx\u00e9", "\u00e9t\u00e9 ", "the liver"]  # unseen contexts and unknown characters
    for context in contexts:
        with _quiet_numpy():
            received = _probabilities(model, context)
        label = f"n=4, alpha=0.1: next_token_probs({context!r})"
        assert math.isclose(received.sum(), 1.0, rel_tol=1e-9), (
            f"{label} must sum to 1, received sum {received.sum():.6g}. "
            f"Likely cause: {_probability_hint(received, context)}"
        )
        assert np.all(received > 0), (
            f"{label} must be positive for every token with alpha > 0, received minimum {received.min():.3g}"
        )

    for bad_arguments in ({"n": 0}, {"alpha": 0.0}):
        try:
            model_class(**bad_arguments)
        except ValueError:
            continue
        raise AssertionError(f"CharNGramModel(**{bad_arguments}) must raise ValueError")


def check_ngram_log_prob(model_class) -> None:
    """Check log_prob and perplexity against hand-computed values and against next_token_probs."""
    model = model_class(n=2, alpha=0.5).fit(list(_TOY_TEXTS))
    cases = {
        "ab": math.log(0.375 * 0.5 * 0.3),
        "ba": math.log(0.375 * 0.5 * 0.3),
        "": math.log(0.125),
        "abz": math.log(0.375 * 0.5 * 0.1 * 0.25),  # z is unknown; the context UNKNOWN was never seen
    }
    for text, expected in cases.items():
        received = model.log_prob(text)
        if math.isclose(float(received), expected - math.log(0.3 if text in ("ab", "ba") else 0.25), rel_tol=1e-9):
            hint = "the final prediction of BOUNDARY after the last character is missing"
        elif math.isclose(float(received), expected / math.log(10), rel_tol=1e-9):
            hint = "log10 instead of the natural logarithm"
        else:
            hint = "log_prob sums log p(x_t | h_t) over the len(text) + 1 predictions, the last one being BOUNDARY"
        _assert_close(
            received, expected, f"n=2, alpha=0.5, trained on {_TOY_TEXTS}: log_prob({text!r})", hint
        )

    expected_perplexity = math.exp(-2 * math.log(0.375 * 0.5 * 0.3) / 6)
    received = model.perplexity(["ab", "ba"])
    if math.isclose(float(received), math.exp(-2 * math.log(0.375 * 0.5 * 0.3) / 4), rel_tol=1e-9):
        hint = "divide by the number of predictions, len(text) + 1 per text, not by the number of characters"
    elif math.isclose(float(received), 1 / expected_perplexity, rel_tol=1e-9):
        hint = "the sign is flipped: perplexity is exp of minus the mean log-probability"
    else:
        hint = "perplexity is exp(-sum of log_prob / sum of (len(text) + 1))"
    _assert_close(received, expected_perplexity, "perplexity(['ab', 'ba'])", hint)

    model = model_class(n=3, alpha=0.2).fit(list(_SENTENCES))
    heldout = ["An abnormal size of the kidney.", "Reduced tone.", "Ca\u00e9 \u00e9\u00e9", "A", ""]
    for text in heldout:
        expected = 0.0
        for position in range(len(text) + 1):
            with _quiet_numpy():
                probs = _probabilities(model, text[:position])
            token = text[position] if position < len(text) else BOUNDARY
            token = token if token in model.vocab else UNKNOWN
            expected += math.log(probs[list(model.vocab).index(token)])
        received = model.log_prob(text)
        _assert_close(
            received, expected, f"n=3, alpha=0.2: log_prob({text!r}) versus the sum of log next_token_probs",
            "log_prob must agree with next_token_probs at every position, including the final BOUNDARY and "
            "characters outside the vocabulary (counted as UNKNOWN)",
        )

    received_perplexity = model.perplexity(list(heldout))
    expected_perplexity = math.exp(
        -sum(float(model.log_prob(text)) for text in heldout) / sum(len(text) + 1 for text in heldout)
    )
    hint = "pool all texts: exp(-sum of log_prob / sum of (len(text) + 1)), not an average of per-text perplexities"
    _assert_close(received_perplexity, expected_perplexity, "perplexity of 5 held-out texts from log_prob", hint)

    uniform = model_class(n=2, alpha=1e12).fit(list(_SENTENCES))
    _assert_close(
        uniform.perplexity(["An abnormal"]), len(uniform.vocab),
        "perplexity with alpha = 1e12, which makes every distribution uniform (expected V)",
        "a uniform model over V tokens has perplexity V",
    )


def _greedy_continuation(model, prompt: str, max_length: int) -> str:
    generated = ""
    for _ in range(max_length):
        probs = model.next_token_probs(prompt + generated)
        token = model.vocab[int(np.argmax(probs))]
        if token == BOUNDARY:
            break
        generated += token
    return generated


def check_ngram_sampling(model_class) -> None:
    """Check sample: low temperature is greedy, frequencies follow p ** (1 / T), the seed and max_length."""
    model = model_class(n=3, alpha=0.1).fit(["the cat", "the cat", "the dog"])
    for prompt, max_length in [("", 30), ("the d", 30), ("", 2)]:
        expected = _greedy_continuation(model, prompt, max_length)
        received = model.sample(np.random.default_rng(0), max_length=max_length, temperature=0.01, prompt=prompt)
        assert isinstance(received, str), f"sample must return a str, received {_describe(received)}"
        assert received == expected, (
            f"sample(rng, max_length={max_length}, temperature=0.01, prompt={prompt!r}) on a model trained on "
            f"['the cat', 'the cat', 'the dog']: expected the greedy continuation {expected!r}, received "
            f"{received!r}. Likely cause: the temperature must divide the log-probabilities (p ** (1 / T)), the "
            "prompt must be the starting context, and generation stops at BOUNDARY (not included) or max_length"
        )

    toy = model_class(n=2, alpha=0.5).fit(list(_TOY_TEXTS))
    base_probs = np.array(_TOY_BIGRAM[""])
    n_draws = 2_000
    for temperature in (1.0, 2.0):
        rng = np.random.default_rng(21)
        draws = [toy.sample(rng, max_length=1, temperature=temperature) for _ in range(n_draws)]
        unexpected = sorted({draw for draw in draws if draw not in ("", "a", "b", UNKNOWN)})
        assert not unexpected, (
            f"sample(rng, max_length=1) on a model trained on {_TOY_TEXTS} returned {unexpected[:3]}: with "
            "max_length=1 the result is one character, or '' when BOUNDARY is drawn"
        )
        counts = np.array([draws.count(token) for token in ("", "a", "b", UNKNOWN)])
        expected = base_probs ** (1 / temperature)
        expected /= expected.sum()
        p_value = scipy.stats.chisquare(counts, n_draws * expected).pvalue
        assert p_value > _MIN_P_VALUE, (
            f"temperature {temperature}: the first characters of {n_draws} samples have frequencies "
            f"{np.round(counts / n_draws, 3).tolist()} for ['', 'a', 'b', UNKNOWN], expected about "
            f"{np.round(expected, 3).tolist()} (chi-square p-value {p_value:.1e}). Likely cause: sampling must draw "
            "from p ** (1 / temperature), renormalised, with rng (a greedy choice or a temperature that "
            "multiplies the log-probabilities gives other frequencies)"
        )

    unigram = model_class(n=1, alpha=1.0).fit(list(_SENTENCES))
    first = unigram.sample(np.random.default_rng(3), max_length=40)
    again = unigram.sample(np.random.default_rng(3), max_length=40)
    assert first == again, (
        f"two calls with generators created from the same seed gave {first!r} and {again!r}: draw with the "
        "`rng` argument (rng.choice), not with np.random"
    )
    outputs = {unigram.sample(np.random.default_rng(seed), max_length=40) for seed in range(5)}
    assert len(outputs) > 1, "five different seeds gave the same sample: the `rng` argument is ignored"
    assert all(len(output) <= 40 and BOUNDARY not in output for output in outputs), (
        f"samples must have at most max_length=40 characters and no BOUNDARY, received {sorted(outputs)[:2]}"
    )


# ---------------------------------------------------------------------------------------------------------
# Demo submission: (grade_id of a solution cell, text in its reference code, replacement).

DEMO_MISTAKES = [
    ("entropy", "p[mask] * np.log(p[mask])", "p[mask] * np.log10(p[mask])"),
    ("estimate_mean_variance", "np.sum((x - mean) ** 2) / (n - 1)", "np.sum((x - mean) ** 2) / n"),
    ("char_ngram_model", "np.log(self.next_token_probs(context)) / temperature",
     "np.log(self.next_token_probs(context)) * temperature"),
]
