"""Week 1 checks: the reference passes every check, and realistic wrong implementations fail them."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from autograder import week01 as checks
from course_lib.demo import mistakes_module
from course_lib.notebooks import (
    BEGIN_HIDDEN,
    grade_id,
    read_notebook,
)
from course_lib.paths import REPO_ROOT
from course_lib.solutions import load_reference
from notebook_helpers import grade_cells, module_from_notebook, run_grade_cell

SOURCE_NOTEBOOK = REPO_ROOT / "source" / "week01" / "week01.ipynb"

ref = load_reference("week01")



# ---------------------------------------------------------------------------------------------------------
# The notebook and the reference


def test_grade_cells_pass_on_reference_silently(capfd):
    notebook = read_notebook(SOURCE_NOTEBOOK)
    module = module_from_notebook(notebook, "week01_reference_cells")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for cell in grade_cells(notebook):
            run_grade_cell(cell, module)
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out == ""


def test_every_check_has_a_grade_cell():
    notebook = read_notebook(SOURCE_NOTEBOOK)
    hidden_sources = "\n".join(cell.source for cell in grade_cells(notebook))
    check_names = sorted(name for name in dir(checks) if name.startswith("check_"))
    assert check_names
    for name in check_names:
        assert f"{name}(" in hidden_sources, f"{name} is not called by any grade cell"
    for cell in grade_cells(notebook):
        assert BEGIN_HIDDEN in cell.source, f"grade cell {grade_id(cell)} has no hidden-test block"


def test_grade_cell_points_total():
    notebook = read_notebook(SOURCE_NOTEBOOK)
    points = {grade_id(cell): cell.metadata["nbgrader"]["points"] for cell in grade_cells(notebook)}
    assert all(1 <= value <= 3 for value in points.values()), points
    assert sum(points.values()) == 27


def test_notebook_has_fixed_ids_and_no_outputs():
    notebook = read_notebook(SOURCE_NOTEBOOK)
    ids = [cell.get("id") for cell in notebook.cells]
    assert all(ids)
    assert len(ids) == len(set(ids))
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], cell.id
            assert cell.execution_count is None, cell.id


# ---------------------------------------------------------------------------------------------------------
# 1.1 sample_categorical


def categorical_searches_probs(probs, n_samples, rng):
    u = rng.random(n_samples)
    return np.searchsorted(np.asarray(probs), u, side="right").astype(np.int64)


def categorical_uniform(probs, n_samples, rng):
    return rng.integers(0, len(probs), n_samples)


def categorical_global_state(probs, n_samples, rng):
    cdf = np.cumsum(probs)
    return np.searchsorted(cdf, np.random.random(n_samples), side="right")


def categorical_greedy(probs, n_samples, rng):
    return np.full(n_samples, int(np.argmax(probs)))


def categorical_shifted_index(probs, n_samples, rng):
    cdf = np.cumsum(probs)
    return np.clip(np.searchsorted(cdf, rng.random(n_samples), side="right") - 1, 0, None)


def categorical_float_output(probs, n_samples, rng):
    cdf = np.cumsum(probs)
    return np.searchsorted(cdf, rng.random(n_samples), side="right").astype(float)


@pytest.mark.parametrize(
    "wrong",
    [
        categorical_searches_probs,
        categorical_uniform,
        categorical_global_state,
        categorical_greedy,
        categorical_shifted_index,
        categorical_float_output,
    ],
)
def test_sample_categorical_rejects(wrong):
    with pytest.raises(AssertionError):
        checks.check_sample_categorical(wrong)


def test_sample_categorical_accepts_reference():
    checks.check_sample_categorical(ref.sample_categorical)


def test_sample_categorical_accepts_loop_over_uniforms():
    def loop(probs, n_samples, rng):
        cdf = np.cumsum(probs)
        samples = np.empty(n_samples, dtype=np.int64)
        for i, u in enumerate(rng.random(n_samples)):
            samples[i] = next(index for index, value in enumerate(cdf) if value > u)
        return samples

    checks.check_sample_categorical(loop)


# ---------------------------------------------------------------------------------------------------------
# 1.2 sample_normal


def _box_muller(n_samples, rng):
    n_pairs = (n_samples + 1) // 2
    u1 = 1.0 - rng.random(n_pairs)
    u2 = rng.random(n_pairs)
    radius = np.sqrt(-2.0 * np.log(u1))
    return np.concatenate([radius * np.cos(2 * np.pi * u2), radius * np.sin(2 * np.pi * u2)])[:n_samples]


def normal_scaled_by_variance(mean, std, n_samples, rng):
    return mean + std**2 * _box_muller(n_samples, rng)


def normal_missing_sqrt(mean, std, n_samples, rng):
    n_pairs = (n_samples + 1) // 2
    u1 = 1.0 - rng.random(n_pairs)
    u2 = rng.random(n_pairs)
    radius = -2.0 * np.log(u1)
    return mean + std * np.concatenate([radius * np.cos(2 * np.pi * u2), radius * np.sin(2 * np.pi * u2)])[:n_samples]


def normal_log10(mean, std, n_samples, rng):
    n_pairs = (n_samples + 1) // 2
    u1 = 1.0 - rng.random(n_pairs)
    u2 = rng.random(n_pairs)
    radius = np.sqrt(-2.0 * np.log10(u1))
    return mean + std * np.concatenate([radius * np.cos(2 * np.pi * u2), radius * np.sin(2 * np.pi * u2)])[:n_samples]


def normal_floor_pairs(mean, std, n_samples, rng):
    n_pairs = n_samples // 2
    u1 = 1.0 - rng.random(n_pairs)
    u2 = rng.random(n_pairs)
    radius = np.sqrt(-2.0 * np.log(u1))
    return mean + std * np.concatenate([radius * np.cos(2 * np.pi * u2), radius * np.sin(2 * np.pi * u2)])


def normal_global_state(mean, std, n_samples, rng):
    return mean + std * np.random.standard_normal(n_samples)


def normal_uniform(mean, std, n_samples, rng):
    return mean + std * (rng.random(n_samples) - 0.5)


def normal_same_uniform_twice(mean, std, n_samples, rng):
    u = 1.0 - rng.random(n_samples)
    return mean + std * np.sqrt(-2.0 * np.log(u)) * np.cos(2 * np.pi * u)


@pytest.mark.parametrize(
    "wrong",
    [
        normal_scaled_by_variance,
        normal_missing_sqrt,
        normal_log10,
        normal_floor_pairs,
        normal_global_state,
        normal_uniform,
        normal_same_uniform_twice,
    ],
)
def test_sample_normal_rejects(wrong):
    with pytest.raises(AssertionError):
        checks.check_sample_normal(wrong)


def test_sample_normal_accepts_reference():
    checks.check_sample_normal(ref.sample_normal)


def test_sample_normal_accepts_cosine_only_variant():
    def cosine_only(mean, std, n_samples, rng):
        u1 = 1.0 - rng.random(n_samples)
        u2 = rng.random(n_samples)
        return mean + std * np.sqrt(-2.0 * np.log(u1)) * np.cos(2 * np.pi * u2)

    checks.check_sample_normal(cosine_only)


# ---------------------------------------------------------------------------------------------------------
# 1.3 estimate_mean_variance


def estimate_biased_variance(samples):
    x = np.asarray(samples, dtype=float)
    if x.size < 2:
        raise ValueError("need two samples")
    return float(x.mean()), float(x.var()), float(math.sqrt(x.var() / x.size))


def estimate_one_pass(samples):
    x = np.asarray(samples, dtype=float)
    n = x.size
    if n < 2:
        raise ValueError("need two samples")
    variance = (np.sum(x**2) - n * x.mean() ** 2) / (n - 1)
    return float(x.mean()), float(variance), math.sqrt(abs(variance) / n)


def estimate_standard_error_without_sqrt(samples):
    x = np.asarray(samples, dtype=float)
    if x.size < 2:
        raise ValueError("need two samples")
    variance = x.var(ddof=1)
    return float(x.mean()), float(variance), float(variance / x.size)


def estimate_standard_error_divides_std_by_n(samples):
    x = np.asarray(samples, dtype=float)
    if x.size < 2:
        raise ValueError("need two samples")
    variance = x.var(ddof=1)
    return float(x.mean()), float(variance), float(math.sqrt(variance) / x.size)


def estimate_without_size_check(samples):
    x = np.asarray(samples, dtype=float)
    variance = x.var(ddof=1)
    return float(x.mean()), float(variance), float(np.sqrt(variance / x.size))


def estimate_returns_list(samples):
    x = np.asarray(samples, dtype=float)
    if x.size < 2:
        raise ValueError("need two samples")
    return [float(x.mean()), float(x.var(ddof=1)), float(np.sqrt(x.var(ddof=1) / x.size))]


@pytest.mark.parametrize(
    "wrong",
    [
        estimate_biased_variance,
        estimate_one_pass,
        estimate_standard_error_without_sqrt,
        estimate_standard_error_divides_std_by_n,
        estimate_without_size_check,
        estimate_returns_list,
    ],
)
def test_estimate_mean_variance_rejects(wrong):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(AssertionError):
            checks.check_estimate_mean_variance(wrong)


def test_estimate_mean_variance_accepts_reference():
    checks.check_estimate_mean_variance(ref.estimate_mean_variance)


# ---------------------------------------------------------------------------------------------------------
# 2.1 entropy


def entropy_log10(p, base=None):
    p = np.asarray(p, dtype=float)
    terms = np.where(p > 0, p * np.log10(np.where(p > 0, p, 1.0)), 0.0)
    h = -terms.sum(axis=-1)
    return h / np.log(base) if base is not None else h


def entropy_without_zero_guard(p, base=None):
    p = np.asarray(p, dtype=float)
    h = -np.sum(p * np.log(p), axis=-1)
    return h / np.log(base) if base is not None else h


def entropy_missing_minus(p, base=None):
    p = np.asarray(p, dtype=float)
    terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    h = terms.sum(axis=-1)
    return h / np.log(base) if base is not None else h


def entropy_ignores_base(p, base=None):
    p = np.asarray(p, dtype=float)
    terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -terms.sum(axis=-1)


def entropy_sums_all_axes(p, base=None):
    p = np.asarray(p, dtype=float)
    terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    h = -terms.sum()
    return h / np.log(base) if base is not None else h


def entropy_base_multiplied(p, base=None):
    p = np.asarray(p, dtype=float)
    terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    h = -terms.sum(axis=-1)
    return h * np.log(base) if base is not None else h


@pytest.mark.parametrize(
    "wrong",
    [
        entropy_log10,
        entropy_without_zero_guard,
        entropy_missing_minus,
        entropy_ignores_base,
        entropy_sums_all_axes,
        entropy_base_multiplied,
    ],
)
def test_entropy_rejects(wrong):
    with pytest.raises(AssertionError):
        checks.check_entropy(wrong)


def test_entropy_accepts_reference():
    checks.check_entropy(ref.entropy)


def test_entropy_accepts_scipy_xlogy():
    import scipy.special

    def with_xlogy(p, base=None):
        h = -scipy.special.xlogy(p, p).sum(axis=-1)
        return h / np.log(base) if base is not None else h

    checks.check_entropy(with_xlogy)


# ---------------------------------------------------------------------------------------------------------
# 2.2 cross_entropy and kl_divergence


def cross_entropy_swapped(p, q, base=None):
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(q > 0, q * np.log(p), 0.0).sum(axis=-1)
    return h / np.log(base) if base is not None else h


def cross_entropy_without_zero_guard(p, q, base=None):
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    h = -np.sum(p * np.log(q), axis=-1)
    return h / np.log(base) if base is not None else h


def cross_entropy_epsilon(p, q, base=None):
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    h = -np.sum(p * np.log(q + 1e-12), axis=-1)
    return h / np.log(base) if base is not None else h


def cross_entropy_log2_default(p, q, base=2):
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    with np.errstate(divide="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, q, 1.0)), 0.0)
    return -terms.sum(axis=-1) / np.log(base)


def cross_entropy_missing_minus(p, q, base=None):
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    with np.errstate(divide="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, q, 1.0)), 0.0)
    h = terms.sum(axis=-1)
    return h / np.log(base) if base is not None else h


@pytest.mark.parametrize(
    "wrong",
    [
        cross_entropy_swapped,
        cross_entropy_without_zero_guard,
        cross_entropy_epsilon,
        cross_entropy_log2_default,
        cross_entropy_missing_minus,
    ],
)
def test_cross_entropy_rejects(wrong):
    with pytest.raises(AssertionError):
        checks.check_cross_entropy(wrong)


def test_cross_entropy_accepts_reference():
    checks.check_cross_entropy(ref.cross_entropy)


def kl_swapped(p, q, base=None):
    return ref.kl_divergence(q, p, base)


def kl_inverted_ratio(p, q, base=None):
    return -ref.kl_divergence(p, q, base)


def kl_without_zero_guard(p, q, base=None):
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    d = np.sum(p * np.log(p / q), axis=-1)
    return d / np.log(base) if base is not None else d


def kl_ignores_base(p, q, base=None):
    return ref.kl_divergence(p, q)


def kl_epsilon_smoothing(p, q, base=None):
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    d = np.sum(p * np.log((p + 1e-10) / (q + 1e-10)), axis=-1)
    return d / np.log(base) if base is not None else d


def kl_as_cross_entropy(p, q, base=None):
    return ref.cross_entropy(p, q, base)


@pytest.mark.parametrize(
    "wrong",
    [kl_swapped, kl_inverted_ratio, kl_without_zero_guard, kl_ignores_base, kl_epsilon_smoothing, kl_as_cross_entropy],
)
def test_kl_divergence_rejects(wrong):
    with pytest.raises(AssertionError):
        checks.check_kl_divergence(wrong)


def test_kl_divergence_accepts_reference():
    checks.check_kl_divergence(ref.kl_divergence)


# ---------------------------------------------------------------------------------------------------------
# 2.3 perplexity


def perplexity_log10(log_probs, base=None):
    return 10 ** (-np.mean(log_probs, axis=-1))


def perplexity_missing_minus(log_probs, base=None):
    value = np.mean(log_probs, axis=-1)
    return np.exp(value) if base is None else base**value


def perplexity_sum(log_probs, base=None):
    value = -np.sum(log_probs, axis=-1)
    return np.exp(value) if base is None else base**value


def perplexity_ignores_base(log_probs, base=None):
    return np.exp(-np.mean(log_probs, axis=-1))


def perplexity_mean_over_all_axes(log_probs, base=None):
    value = -np.mean(log_probs)
    return np.exp(value) if base is None else base**value


def perplexity_mean_of_exponentials(log_probs, base=None):
    log_probs = np.asarray(log_probs, dtype=float)
    return np.mean(np.exp(-log_probs), axis=-1) if base is None else np.mean(base ** (-log_probs), axis=-1)


@pytest.mark.parametrize(
    "wrong",
    [
        perplexity_log10,
        perplexity_missing_minus,
        perplexity_sum,
        perplexity_ignores_base,
        perplexity_mean_over_all_axes,
        perplexity_mean_of_exponentials,
    ],
)
def test_perplexity_rejects(wrong):
    with pytest.raises(AssertionError):
        checks.check_perplexity(wrong)


def test_perplexity_accepts_reference():
    checks.check_perplexity(ref.perplexity)


# ---------------------------------------------------------------------------------------------------------
# 2.4 cross_entropy_from_logits


def logits_naive(logits, targets):
    log_normalizer = torch.log(torch.exp(logits).sum(dim=-1))
    return (log_normalizer - logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)).mean()


def logits_global_max(logits, targets):
    shifted = logits - logits.max()
    log_normalizer = torch.log(torch.exp(shifted).sum(dim=-1))
    return (log_normalizer - shifted.gather(-1, targets.unsqueeze(-1)).squeeze(-1)).mean()


def logits_max_not_added_back(logits, targets):
    max_logits = logits.max(dim=-1, keepdim=True).values
    log_normalizer = torch.log(torch.exp(logits - max_logits).sum(dim=-1))
    return (log_normalizer - logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)).mean()


def logits_sum_reduction(logits, targets):
    max_logits = logits.max(dim=-1, keepdim=True).values
    shifted = logits - max_logits
    log_normalizer = torch.log(torch.exp(shifted).sum(dim=-1))
    return (log_normalizer - shifted.gather(-1, targets.unsqueeze(-1)).squeeze(-1)).sum()


def logits_wrong_axis(logits, targets):
    max_logits = logits.max(dim=0, keepdim=True).values
    shifted = logits - max_logits
    log_normalizer = torch.log(torch.exp(shifted).sum(dim=0, keepdim=True))
    log_probs = shifted - log_normalizer
    return -log_probs.gather(-1, targets.unsqueeze(-1)).mean()


def logits_through_numpy(logits, targets):
    array = logits.detach().cpu().double().numpy()
    shifted = array - array.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    picked = np.take_along_axis(log_probs, targets.cpu().numpy()[..., None], axis=-1)
    return torch.tensor(-picked.mean(), dtype=logits.dtype)


def logits_clamped(logits, targets):
    clamped = logits.clamp(-80.0, 80.0)
    log_normalizer = torch.log(torch.exp(clamped).sum(dim=-1))
    return (log_normalizer - clamped.gather(-1, targets.unsqueeze(-1)).squeeze(-1)).mean()


def logits_float64_result(logits, targets):
    logits = logits.double()
    max_logits = logits.max(dim=-1, keepdim=True).values
    shifted = logits - max_logits
    log_normalizer = torch.log(torch.exp(shifted).sum(dim=-1))
    return (log_normalizer - shifted.gather(-1, targets.unsqueeze(-1)).squeeze(-1)).mean()


@pytest.mark.parametrize(
    "wrong",
    [
        logits_naive,
        logits_global_max,
        logits_max_not_added_back,
        logits_sum_reduction,
        logits_wrong_axis,
        logits_through_numpy,
        logits_clamped,
        logits_float64_result,
    ],
)
def test_cross_entropy_from_logits_rejects(wrong):
    with pytest.raises(AssertionError):
        checks.check_cross_entropy_from_logits(wrong)


def test_cross_entropy_from_logits_accepts_reference():
    checks.check_cross_entropy_from_logits(ref.cross_entropy_from_logits)


def test_cross_entropy_from_logits_accepts_detached_max():
    def detached_max(logits, targets):
        max_logits = logits.detach().amax(dim=-1, keepdim=True)
        log_normalizer = max_logits.squeeze(-1) + torch.log(torch.exp(logits - max_logits).sum(dim=-1))
        return (log_normalizer - logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)).mean()

    checks.check_cross_entropy_from_logits(detached_max)


# ---------------------------------------------------------------------------------------------------------
# 3.1 sorted_eigh


def _check_symmetric(A):
    A = np.asarray(A, dtype=float)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or not np.allclose(A, A.T):
        raise ValueError("not symmetric")
    return A


def eigh_ascending(A):
    return np.linalg.eigh(_check_symmetric(A))


def eigh_values_only_reversed(A):
    values, vectors = np.linalg.eigh(_check_symmetric(A))
    return values[::-1], vectors


def eigh_sorted_by_magnitude(A):
    values, vectors = np.linalg.eigh(_check_symmetric(A))
    order = np.argsort(-np.abs(values), kind="stable")
    return values[order], vectors[:, order]


def eigh_rows(A):
    values, vectors = np.linalg.eigh(_check_symmetric(A))
    return values[::-1], vectors[:, ::-1].T


def eigh_no_symmetry_check(A):
    values, vectors = np.linalg.eigh(np.asarray(A, dtype=float))
    return values[::-1], vectors[:, ::-1]


def eigh_unnormalised_vectors(A):
    A = _check_symmetric(A)
    values, vectors = np.linalg.eigh(A)
    return values[::-1], vectors[:, ::-1] * 2.0


@pytest.mark.parametrize(
    "wrong",
    [
        eigh_ascending,
        eigh_values_only_reversed,
        eigh_sorted_by_magnitude,
        eigh_rows,
        eigh_no_symmetry_check,
        eigh_unnormalised_vectors,
    ],
)
def test_sorted_eigh_rejects(wrong):
    with pytest.raises(AssertionError):
        checks.check_sorted_eigh(wrong)


def test_sorted_eigh_accepts_reference():
    checks.check_sorted_eigh(ref.sorted_eigh)


# ---------------------------------------------------------------------------------------------------------
# 3.2 best_rank_k


def _validate_rank(A, k):
    A = np.asarray(A, dtype=float)
    if not 0 <= k <= min(A.shape):
        raise ValueError("invalid k")
    return A


def rank_k_smallest_values(A, k):
    A = _validate_rank(A, k)
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    r = len(s)
    A_k = (U[:, r - k:] * s[r - k:]) @ Vt[r - k:] if k else np.zeros_like(A)
    return A_k, float(np.sqrt(np.sum(s[: r - k] ** 2)))


def rank_k_missing_singular_values(A, k):
    A = _validate_rank(A, k)
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    return U[:, :k] @ Vt[:k], float(np.sqrt(np.sum(s[k:] ** 2)))


def rank_k_error_without_squares(A, k):
    A = _validate_rank(A, k)
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    return (U[:, :k] * s[:k]) @ Vt[:k], float(np.sum(s[k:]))


def rank_k_error_from_kept_values(A, k):
    A = _validate_rank(A, k)
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    return (U[:, :k] * s[:k]) @ Vt[:k], float(np.sqrt(np.sum(s[:k] ** 2)))


def rank_k_off_by_one(A, k):
    A = _validate_rank(A, k)
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    return (U[:, : k + 1] * s[: k + 1]) @ Vt[: k + 1], float(np.sqrt(np.sum(s[k + 1:] ** 2)))


def rank_k_transposed_v(A, k):
    A = _validate_rank(A, k)
    U, s, Vt = np.linalg.svd(A)
    V = Vt.T
    return (U[:, :k] * s[:k]) @ V[:k, :], float(np.sqrt(np.sum(s[k:] ** 2)))


def rank_k_no_validation(A, k):
    A = np.asarray(A, dtype=float)
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    return (U[:, :k] * s[:k]) @ Vt[:k], float(np.sqrt(np.sum(s[k:] ** 2)))


@pytest.mark.parametrize(
    "wrong",
    [
        rank_k_smallest_values,
        rank_k_missing_singular_values,
        rank_k_error_without_squares,
        rank_k_error_from_kept_values,
        rank_k_off_by_one,
        rank_k_transposed_v,
        rank_k_no_validation,
    ],
)
def test_best_rank_k_rejects(wrong):
    with pytest.raises(AssertionError):
        checks.check_best_rank_k(wrong)


def test_best_rank_k_accepts_reference():
    checks.check_best_rank_k(ref.best_rank_k)


# ---------------------------------------------------------------------------------------------------------
# 4. CharNGramModel: each wrong variant overrides one method of the reference, as a student's slip would.

Model = ref.CharNGramModel


class AlphaOnlyInNumerator(Model):
    def next_token_probs(self, context):
        key = self.context_key(context)
        probs = np.full(len(self.vocab), float(self.alpha))
        for token, count in self.counts.get(key, {}).items():
            probs[self.token_to_index[token]] += count
        return probs / max(self.context_totals.get(key, 0), 1)


class DenominatorWithoutVocabSize(Model):
    def next_token_probs(self, context):
        key = self.context_key(context)
        probs = np.full(len(self.vocab), float(self.alpha))
        for token, count in self.counts.get(key, {}).items():
            probs[self.token_to_index[token]] += count
        return probs / (self.context_totals.get(key, 0) + self.alpha)


class UnseenContextZeros(Model):
    def next_token_probs(self, context):
        key = self.context_key(context)
        if key not in self.counts:
            return np.zeros(len(self.vocab))
        return super().next_token_probs(context)


class VocabWithoutUnknown(Model):
    def fit(self, texts):
        super().fit(texts)
        self.vocab = [token for token in self.vocab if token != ref.UNKNOWN]
        self.token_to_index = {token: index for index, token in enumerate(self.vocab)}
        return self


class FirstCharactersAsContext(Model):
    def next_token_probs(self, context):
        width = self.n - 1
        padded = ref.BOUNDARY * width + self.replace_unknown(context)
        key = padded[:width]
        probs = np.full(len(self.vocab), float(self.alpha))
        for token, count in self.counts.get(key, {}).items():
            probs[self.token_to_index[token]] += count
        return probs / (self.context_totals.get(key, 0) + self.alpha * len(self.vocab))


class NoStartPadding(Model):
    def fit(self, texts):
        super().fit(texts)
        self.counts.clear()
        self.context_totals.clear()
        width = self.n - 1
        for text in texts:
            padded = text + ref.BOUNDARY
            for end in range(width, len(padded)):
                context = padded[end - width:end]
                self.counts[context][padded[end]] += 1
                self.context_totals[context] += 1
        return self


class FitReturnsNone(Model):
    def fit(self, texts):
        super().fit(texts)


@pytest.mark.parametrize(
    "wrong",
    [
        AlphaOnlyInNumerator,
        DenominatorWithoutVocabSize,
        UnseenContextZeros,
        VocabWithoutUnknown,
        FirstCharactersAsContext,
        NoStartPadding,
        FitReturnsNone,
    ],
)
def test_ngram_probabilities_rejects(wrong):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(AssertionError):
            checks.check_ngram_probabilities(wrong)


def test_ngram_probabilities_accepts_reference():
    checks.check_ngram_probabilities(Model)


class LogProbWithoutFinalBoundary(Model):
    def log_prob(self, text):
        return sum(
            math.log(self.next_token_probs(text[:i])[self.token_to_index.get(text[i], -1)])
            for i in range(len(text))
        )


class LogProbLog10(Model):
    def log_prob(self, text):
        return super().log_prob(text) / math.log(10)


class PerplexityPerCharacter(Model):
    def perplexity(self, texts):
        texts = list(texts)
        return math.exp(-sum(self.log_prob(text) for text in texts) / sum(len(text) for text in texts))


class PerplexityAveragedOverTexts(Model):
    def perplexity(self, texts):
        texts = list(texts)
        return float(np.mean([math.exp(-self.log_prob(text) / (len(text) + 1)) for text in texts]))


class PerplexityMissingMinus(Model):
    def perplexity(self, texts):
        texts = list(texts)
        return math.exp(sum(self.log_prob(text) for text in texts) / sum(len(text) + 1 for text in texts))


class LogProbSkipsUnknown(Model):
    def log_prob(self, text):
        known = "".join(char for char in text if char in self.token_to_index)
        return super().log_prob(known)


@pytest.mark.parametrize(
    "wrong",
    [
        LogProbWithoutFinalBoundary,
        LogProbLog10,
        PerplexityPerCharacter,
        PerplexityAveragedOverTexts,
        PerplexityMissingMinus,
        LogProbSkipsUnknown,
    ],
)
def test_ngram_log_prob_rejects(wrong):
    with pytest.raises(AssertionError):
        checks.check_ngram_log_prob(wrong)


def test_ngram_log_prob_accepts_reference():
    checks.check_ngram_log_prob(Model)


def _sample_with(model, rng, max_length, prompt, weights_of):
    context = prompt
    generated = []
    for _ in range(max_length):
        weights = weights_of(model.next_token_probs(context))
        token = model.vocab[rng.choice(len(model.vocab), p=weights / weights.sum())]
        if token == ref.BOUNDARY:
            break
        generated.append(token)
        context += token
    return "".join(generated)


class TemperatureMultiplied(Model):
    def sample(self, rng, max_length=200, temperature=1.0, prompt=""):
        def weights_of(probs):
            scaled = np.log(probs) * temperature
            return np.exp(scaled - scaled.max())

        return _sample_with(self, rng, max_length, prompt, weights_of)


class TemperatureOnProbabilities(Model):
    def sample(self, rng, max_length=200, temperature=1.0, prompt=""):
        return _sample_with(self, rng, max_length, prompt, lambda probs: probs / temperature)


class AlwaysGreedy(Model):
    def sample(self, rng, max_length=200, temperature=1.0, prompt=""):
        context = prompt
        generated = ""
        for _ in range(max_length):
            token = self.vocab[int(np.argmax(self.next_token_probs(context)))]
            if token == ref.BOUNDARY:
                break
            generated += token
            context += token
        return generated


class GlobalRandomState(Model):
    def sample(self, rng, max_length=200, temperature=1.0, prompt=""):
        context = prompt
        generated = ""
        for _ in range(max_length):
            scaled = np.log(self.next_token_probs(context)) / temperature
            weights = np.exp(scaled - scaled.max())
            token = self.vocab[np.random.choice(len(self.vocab), p=weights / weights.sum())]
            if token == ref.BOUNDARY:
                break
            generated += token
            context += token
        return generated


class IgnoresPrompt(Model):
    def sample(self, rng, max_length=200, temperature=1.0, prompt=""):
        return super().sample(rng, max_length, temperature, prompt="")


class KeepsGoingAfterBoundary(Model):
    def sample(self, rng, max_length=200, temperature=1.0, prompt=""):
        context = prompt
        generated = ""
        for _ in range(max_length):
            scaled = np.log(self.next_token_probs(context)) / temperature
            weights = np.exp(scaled - scaled.max())
            token = self.vocab[rng.choice(len(self.vocab), p=weights / weights.sum())]
            generated += token
            context += token
        return generated


class ReturnsPromptToo(Model):
    def sample(self, rng, max_length=200, temperature=1.0, prompt=""):
        return prompt + super().sample(rng, max_length, temperature, prompt)


@pytest.mark.parametrize(
    "wrong",
    [
        TemperatureMultiplied,
        TemperatureOnProbabilities,
        AlwaysGreedy,
        GlobalRandomState,
        IgnoresPrompt,
        KeepsGoingAfterBoundary,
        ReturnsPromptToo,
    ],
)
def test_ngram_sampling_rejects(wrong):
    with pytest.raises(AssertionError):
        checks.check_ngram_sampling(wrong)


def test_ngram_sampling_accepts_reference():
    checks.check_ngram_sampling(Model)


# ---------------------------------------------------------------------------------------------------------
# Demo mistakes


def test_demo_mistakes_give_partial_credit():
    notebook = read_notebook(SOURCE_NOTEBOOK)
    module = mistakes_module("week01")

    outcomes = {}
    for cell in grade_cells(notebook):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                run_grade_cell(cell, module)
        except AssertionError:
            outcomes[grade_id(cell)] = False
        else:
            outcomes[grade_id(cell)] = True
    failed = sorted(name for name, passed in outcomes.items() if not passed)
    assert failed == ["test_entropy", "test_estimate_mean_variance", "test_ngram_sampling"], outcomes
