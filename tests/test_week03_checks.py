"""Week 3 hidden checks: the reference passes every check, and realistic wrong implementations fail them.

Also the unit tests of `course_lib.corpora`, the general-English corpus of the week.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.optimize
import torch
import torch.nn.functional as F

from autograder import week03
from course_lib.demo import mistakes_module
from course_lib import corpora
from course_lib.notebooks import grade_id, is_solution_cell, read_notebook
from course_lib.paths import REPO_ROOT
from course_lib.solutions import load_reference

REF = load_reference("week03")


# Each check with the arguments its grade cell passes, taken from a module built like the reference.
def check_calls(module):
    return {
        "gpt2_parameter_count": lambda: week03.check_gpt2_parameter_count(module.gpt2_parameter_count),
        "chinchilla_loss": lambda: week03.check_chinchilla_loss(module.training_flops, module.chinchilla_loss),
        "compute_optimal": lambda: week03.check_compute_optimal(module.compute_optimal),
        "fit_scaling_law": lambda: week03.check_fit_scaling_law(module.fit_scaling_law),
        "causal_lm_loss": lambda: week03.check_causal_lm_loss(module.causal_lm_loss),
        "mask_tokens": lambda: week03.check_mask_tokens(module.mask_tokens),
        "exact_match_from_token_accuracy": lambda: week03.check_exact_match_from_token_accuracy(
            module.exact_match_from_token_accuracy
        ),
        "perplexity_of": lambda: week03.check_perplexity_of(module.perplexity_of),
        "train_causal_lm": lambda: week03.check_train_causal_lm(module.train_causal_lm),
    }


@pytest.mark.parametrize("name", list(check_calls(REF)))
def test_reference_passes_check(name):
    check_calls(REF)[name]()


def test_reference_checks_silent(capfd):
    # nbgrader scores a grade cell 0 when it writes to stderr, so a warning would cost a correct answer its points.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for call in check_calls(REF).values():
            call()
    assert capfd.readouterr().err == ""


def test_checks_keep_global_rng_state():
    state = torch.random.get_rng_state()
    week03.check_train_causal_lm(REF.train_causal_lm)
    week03.check_mask_tokens(REF.mask_tokens)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_gpt2_small_count_matches_transformers():
    from transformers import GPT2Config, GPT2LMHeadModel

    with torch.device("meta"):
        model = GPT2LMHeadModel(GPT2Config(bos_token_id=0, eos_token_id=0))
    assert model.num_parameters() == week03._GPT2_SMALL_TIED
    assert week03._GPT2_SMALL_UNTIED == week03._GPT2_SMALL_TIED + 50257 * 768


def test_chinchilla_constants_match_notebook():
    assert tuple(week03.CHINCHILLA) == tuple(REF.CHINCHILLA)
    assert week03.Law._fields == REF.ScalingLaw._fields


# ---------------------------------------------------------------------------------------------------------
# Parameter count


def count_without_ln_f(vocab_size, n_positions, n_embd, n_layer, n_inner=None, tie_word_embeddings=True):
    return REF.gpt2_parameter_count(vocab_size, n_positions, n_embd, n_layer, n_inner, tie_word_embeddings) - 2 * n_embd


def count_12_c_squared(vocab_size, n_positions, n_embd, n_layer, n_inner=None, tie_word_embeddings=True):
    total = vocab_size * n_embd + n_positions * n_embd + n_layer * 12 * n_embd**2 + 2 * n_embd
    return total if tie_word_embeddings else total + vocab_size * n_embd


def count_ignores_tying(vocab_size, n_positions, n_embd, n_layer, n_inner=None, tie_word_embeddings=True):
    return REF.gpt2_parameter_count(vocab_size, n_positions, n_embd, n_layer, n_inner, True)


def count_head_always(vocab_size, n_positions, n_embd, n_layer, n_inner=None, tie_word_embeddings=True):
    return REF.gpt2_parameter_count(vocab_size, n_positions, n_embd, n_layer, n_inner, False)


def count_ignores_n_inner(vocab_size, n_positions, n_embd, n_layer, n_inner=None, tie_word_embeddings=True):
    return REF.gpt2_parameter_count(vocab_size, n_positions, n_embd, n_layer, None, tie_word_embeddings)


def count_head_with_bias(vocab_size, n_positions, n_embd, n_layer, n_inner=None, tie_word_embeddings=True):
    total = REF.gpt2_parameter_count(vocab_size, n_positions, n_embd, n_layer, n_inner, tie_word_embeddings)
    return total if tie_word_embeddings else total + vocab_size


def count_as_float(vocab_size, n_positions, n_embd, n_layer, n_inner=None, tie_word_embeddings=True):
    return float(REF.gpt2_parameter_count(vocab_size, n_positions, n_embd, n_layer, n_inner, tie_word_embeddings))


WRONG_COUNTS = [
    count_without_ln_f,
    count_12_c_squared,
    count_ignores_tying,
    count_head_always,
    count_ignores_n_inner,
    count_head_with_bias,
    count_as_float,
]


@pytest.mark.parametrize("fn", WRONG_COUNTS, ids=lambda fn: fn.__name__)
def test_check_gpt2_parameter_count_rejects(fn):
    with pytest.raises(AssertionError):
        week03.check_gpt2_parameter_count(fn)


# ---------------------------------------------------------------------------------------------------------
# Compute and the Chinchilla loss


def flops_2nd(n_params, n_tokens):
    return 2.0 * np.asarray(n_params) * np.asarray(n_tokens)


def loss_swapped_exponents(n_params, n_tokens, law=REF.CHINCHILLA):
    return law.E + law.A / np.asarray(n_params, float) ** law.beta + law.B / np.asarray(n_tokens, float) ** law.alpha


def loss_without_e(n_params, n_tokens, law=REF.CHINCHILLA):
    return law.A / np.asarray(n_params, float) ** law.alpha + law.B / np.asarray(n_tokens, float) ** law.beta


def loss_ignores_law(n_params, n_tokens, law=REF.CHINCHILLA):
    return REF.chinchilla_loss(n_params, n_tokens)


def loss_positive_exponent(n_params, n_tokens, law=REF.CHINCHILLA):
    N, D = np.asarray(n_params, float), np.asarray(n_tokens, float)
    return law.E + law.A * N**-law.alpha + law.B * D**law.beta


def loss_of_floats(n_params, n_tokens, law=REF.CHINCHILLA):
    # math.pow on each element, with a list of numbers as a result
    return [law.E + law.A / math.pow(n, law.alpha) + law.B / math.pow(d, law.beta)
            for n, d in zip(np.ravel(n_params), np.ravel(n_tokens))]


WRONG_LOSSES = {
    "flops 2ND": (flops_2nd, REF.chinchilla_loss),
    "swapped exponents": (REF.training_flops, loss_swapped_exponents),
    "no irreducible loss": (REF.training_flops, loss_without_e),
    "law argument ignored": (REF.training_flops, loss_ignores_law),
    "data term grows": (REF.training_flops, loss_positive_exponent),
    "no broadcasting": (REF.training_flops, loss_of_floats),
}


@pytest.mark.parametrize("flops, loss", WRONG_LOSSES.values(), ids=WRONG_LOSSES.keys())
def test_check_chinchilla_loss_rejects(flops, loss):
    with pytest.raises(AssertionError):
        week03.check_chinchilla_loss(flops, loss)


# ---------------------------------------------------------------------------------------------------------
# Compute-optimal allocation


def _g(law):
    return (law.alpha * law.A / (law.beta * law.B)) ** (1 / (law.alpha + law.beta))


def optimal_swapped_exponents(compute, law=REF.CHINCHILLA):
    compute = np.asarray(compute, float)
    if np.any(compute <= 0):
        raise ValueError("compute must be positive")
    s = law.alpha + law.beta
    return _g(law) * (compute / 6) ** (law.alpha / s), (compute / 6) ** (law.beta / s) / _g(law)


def optimal_without_six(compute, law=REF.CHINCHILLA):
    compute = np.asarray(compute, float)
    if np.any(compute <= 0):
        raise ValueError("compute must be positive")
    s = law.alpha + law.beta
    return _g(law) * compute ** (law.beta / s), compute ** (law.alpha / s) / _g(law)


def optimal_g_inverted(compute, law=REF.CHINCHILLA):
    compute = np.asarray(compute, float)
    if np.any(compute <= 0):
        raise ValueError("compute must be positive")
    s = law.alpha + law.beta
    return (compute / 6) ** (law.beta / s) / _g(law), _g(law) * (compute / 6) ** (law.alpha / s)


def optimal_equal_split(compute, law=REF.CHINCHILLA):
    compute = np.asarray(compute, float)
    if np.any(compute <= 0):
        raise ValueError("compute must be positive")
    n_params = np.sqrt(compute / 6)
    return n_params, n_params


def optimal_without_check(compute, law=REF.CHINCHILLA):
    with np.errstate(all="ignore"):
        s = law.alpha + law.beta
        compute = np.asarray(compute, float)
        return _g(law) * (compute / 6) ** (law.beta / s), (compute / 6) ** (law.alpha / s) / _g(law)


def optimal_by_grid(compute, law=REF.CHINCHILLA):
    # A coarse grid search: 10 sizes per decade is not precise enough.
    compute = float(compute)
    if compute <= 0:
        raise ValueError("compute must be positive")
    sizes = np.logspace(3, 15, 121)
    losses = REF.chinchilla_loss(sizes, compute / (6 * sizes), law)
    n_params = sizes[np.argmin(losses)]
    return n_params, compute / (6 * n_params)


WRONG_OPTIMA = [
    optimal_swapped_exponents,
    optimal_without_six,
    optimal_g_inverted,
    optimal_equal_split,
    optimal_without_check,
    optimal_by_grid,
]


@pytest.mark.parametrize("fn", WRONG_OPTIMA, ids=lambda fn: fn.__name__)
def test_check_compute_optimal_rejects(fn):
    with pytest.raises(AssertionError):
        week03.check_compute_optimal(fn)


# ---------------------------------------------------------------------------------------------------------
# Fitting a scaling law


def fit_fixed_exponents(n_params, n_tokens, losses):
    # Keeps the published exponents and solves only for E, A and B, a linear least-squares problem.
    N, D, L = (np.asarray(x, float) for x in (n_params, n_tokens, losses))
    alpha, beta = REF.CHINCHILLA.alpha, REF.CHINCHILLA.beta
    design = np.stack([np.ones_like(N), N**-alpha, D**-beta], axis=1)
    (E, A, B), *_ = np.linalg.lstsq(design, L, rcond=None)
    return REF.ScalingLaw(float(E), float(A), float(B), alpha, beta)


def fit_without_e(n_params, n_tokens, losses):
    N, D, L = (np.asarray(x, float) for x in (n_params, n_tokens, losses))

    def residuals(theta):
        log_A, log_B, alpha, beta = theta
        return np.log(np.exp(log_A - alpha * np.log(N)) + np.exp(log_B - beta * np.log(D))) - np.log(L)

    with np.errstate(all="ignore"):
        result = scipy.optimize.least_squares(residuals, [5.0, 5.0, 0.3, 0.3], bounds=([-10, -10, 0, 0], [30, 30, 2, 2]))
    log_A, log_B, alpha, beta = result.x
    return REF.ScalingLaw(0.0, math.exp(log_A), math.exp(log_B), alpha, beta)


def fit_e_as_min_loss(n_params, n_tokens, losses):
    # Takes the smallest observed loss as the irreducible loss E and fits the rest.
    N, D, L = (np.asarray(x, float) for x in (n_params, n_tokens, losses))
    E = L.min()

    def residuals(theta):
        log_A, log_B, alpha, beta = theta
        return E + np.exp(log_A - alpha * np.log(N)) + np.exp(log_B - beta * np.log(D)) - L

    with np.errstate(all="ignore"):
        result = scipy.optimize.least_squares(residuals, [5.0, 5.0, 0.3, 0.3], bounds=([-10, -10, 0, 0], [30, 30, 2, 2]))
    log_A, log_B, alpha, beta = result.x
    return REF.ScalingLaw(E, math.exp(log_A), math.exp(log_B), alpha, beta)


def fit_as_tuple_alpha_first(n_params, n_tokens, losses):
    law = REF.fit_scaling_law(n_params, n_tokens, losses)
    return (law.alpha, law.beta, law.E, law.A, law.B)


def fit_few_iterations(n_params, n_tokens, losses):
    N, D, L = (np.asarray(x, float) for x in (n_params, n_tokens, losses))

    def objective(theta):
        E, log_A, log_B, alpha, beta = theta
        predicted = E + np.exp(log_A - alpha * np.log(N)) + np.exp(log_B - beta * np.log(D))
        return np.sum((np.log(predicted) - np.log(L)) ** 2)

    with np.errstate(all="ignore"):
        result = scipy.optimize.minimize(objective, [1.0, 5.0, 5.0, 0.3, 0.3], method="Nelder-Mead",
                                         options={"maxiter": 200})
    E, log_A, log_B, alpha, beta = result.x
    return REF.ScalingLaw(E, math.exp(log_A), math.exp(log_B), alpha, beta)


WRONG_FITS = [fit_fixed_exponents, fit_without_e, fit_e_as_min_loss, fit_as_tuple_alpha_first, fit_few_iterations]


@pytest.mark.parametrize("fn", WRONG_FITS, ids=lambda fn: fn.__name__)
def test_check_fit_scaling_law_rejects(fn):
    with pytest.raises(AssertionError):
        week03.check_fit_scaling_law(fn)


# ---------------------------------------------------------------------------------------------------------
# Autoregressive loss


def loss_not_shifted(logits, labels):
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100)


def loss_shifted_backwards(logits, labels):
    V = logits.size(-1)
    return F.cross_entropy(logits[:, 1:].reshape(-1, V), labels[:, :-1].reshape(-1), ignore_index=-100)


def loss_mean_over_all_positions(logits, labels):
    log_probs = torch.log_softmax(logits[:, :-1], dim=-1)
    targets = labels[:, 1:]
    counted = targets != -100
    nll = -log_probs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (nll * counted).mean()


def loss_per_sequence_mean(logits, labels):
    losses = [F.cross_entropy(logits[b, :-1], labels[b, 1:]) for b in range(labels.size(0))]
    losses = [loss for loss in losses if not torch.isnan(loss)]
    return torch.stack(losses).mean()


def loss_ignored_as_token_zero(logits, labels):
    targets = labels[:, 1:].clamp(min=0)
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), targets.reshape(-1))


def loss_float32(logits, labels):
    return REF.causal_lm_loss(logits.float(), labels)


def loss_detached(logits, labels):
    return REF.causal_lm_loss(logits.detach(), labels)


WRONG_CAUSAL_LOSSES = [
    loss_not_shifted,
    loss_shifted_backwards,
    loss_mean_over_all_positions,
    loss_per_sequence_mean,
    loss_ignored_as_token_zero,
    loss_float32,
    loss_detached,
]


@pytest.mark.parametrize("fn", WRONG_CAUSAL_LOSSES, ids=lambda fn: fn.__name__)
def test_check_causal_lm_loss_rejects(fn):
    with pytest.raises(AssertionError):
        week03.check_causal_lm_loss(fn)


# ---------------------------------------------------------------------------------------------------------
# Masked-language-model corruption


def _draws(input_ids, special_token_ids, mlm_probability, generator):
    ids = input_ids.cpu()
    special = torch.isin(ids, torch.tensor(list(special_token_ids), dtype=ids.dtype))
    selected = (torch.rand(ids.shape, generator=generator) < mlm_probability) & ~special
    return ids, special, selected


def mask_independent_random(input_ids, mask_token_id, vocab_size, special_token_ids=(), mlm_probability=0.15, generator=None):
    ids, _, selected = _draws(input_ids, special_token_ids, mlm_probability, generator)
    labels = ids.clone()
    labels[~selected] = -100
    corrupted = ids.clone()
    to_mask = selected & (torch.rand(ids.shape, generator=generator) < 0.8)
    to_random = selected & ~to_mask & (torch.rand(ids.shape, generator=generator) < 0.1)
    corrupted[to_mask] = mask_token_id
    corrupted[to_random] = torch.randint(0, vocab_size, ids.shape, generator=generator)[to_random]
    return corrupted.to(input_ids.device), labels.to(input_ids.device)


def mask_all_selected(input_ids, mask_token_id, vocab_size, special_token_ids=(), mlm_probability=0.15, generator=None):
    ids, _, selected = _draws(input_ids, special_token_ids, mlm_probability, generator)
    labels = ids.clone()
    labels[~selected] = -100
    corrupted = ids.clone()
    corrupted[selected] = mask_token_id
    return corrupted.to(input_ids.device), labels.to(input_ids.device)


def mask_labels_everywhere(input_ids, mask_token_id, vocab_size, special_token_ids=(), mlm_probability=0.15, generator=None):
    corrupted, _ = REF.mask_tokens(input_ids, mask_token_id, vocab_size, special_token_ids, mlm_probability, generator)
    return corrupted, input_ids.clone()


def mask_special_tokens_too(input_ids, mask_token_id, vocab_size, special_token_ids=(), mlm_probability=0.15, generator=None):
    return REF.mask_tokens(input_ids, mask_token_id, vocab_size, (), mlm_probability, generator)


def mask_one_random_token(input_ids, mask_token_id, vocab_size, special_token_ids=(), mlm_probability=0.15, generator=None):
    # One random id drawn for the whole batch instead of one per position.
    ids, _, selected = _draws(input_ids, special_token_ids, mlm_probability, generator)
    labels = ids.clone()
    labels[~selected] = -100
    corrupted = ids.clone()
    to_mask = selected & (torch.rand(ids.shape, generator=generator) < 0.8)
    to_random = selected & ~to_mask & (torch.rand(ids.shape, generator=generator) < 0.5)
    corrupted[to_mask] = mask_token_id
    corrupted[to_random] = torch.randint(0, vocab_size, (1,), generator=generator).item()
    return corrupted.to(input_ids.device), labels.to(input_ids.device)


def mask_in_place(input_ids, mask_token_id, vocab_size, special_token_ids=(), mlm_probability=0.15, generator=None):
    corrupted, labels = REF.mask_tokens(input_ids, mask_token_id, vocab_size, special_token_ids, mlm_probability, generator)
    input_ids.copy_(corrupted)
    return input_ids, labels


def mask_global_rng(input_ids, mask_token_id, vocab_size, special_token_ids=(), mlm_probability=0.15, generator=None):
    return REF.mask_tokens(input_ids, mask_token_id, vocab_size, special_token_ids, mlm_probability, None)


def mask_random_from_batch(input_ids, mask_token_id, vocab_size, special_token_ids=(), mlm_probability=0.15, generator=None):
    # Random replacements copied from other positions of the batch, not drawn from the vocabulary.
    ids, _, selected = _draws(input_ids, special_token_ids, mlm_probability, generator)
    labels = ids.clone()
    labels[~selected] = -100
    corrupted = ids.clone()
    to_mask = selected & (torch.rand(ids.shape, generator=generator) < 0.8)
    to_random = selected & ~to_mask & (torch.rand(ids.shape, generator=generator) < 0.5)
    corrupted[to_mask] = mask_token_id
    shuffled = ids.flatten()[torch.randperm(ids.numel(), generator=generator)].view(ids.shape)
    corrupted[to_random] = (shuffled[to_random] % 50) + 4
    return corrupted.to(input_ids.device), labels.to(input_ids.device)


def mask_fixed_probability(input_ids, mask_token_id, vocab_size, special_token_ids=(), mlm_probability=0.15, generator=None):
    return REF.mask_tokens(input_ids, mask_token_id, vocab_size, special_token_ids, 0.15, generator)


WRONG_MASKERS = [
    mask_independent_random,
    mask_all_selected,
    mask_labels_everywhere,
    mask_special_tokens_too,
    mask_one_random_token,
    mask_in_place,
    mask_global_rng,
    mask_random_from_batch,
    mask_fixed_probability,
]


@pytest.mark.parametrize("fn", WRONG_MASKERS, ids=lambda fn: fn.__name__)
def test_check_mask_tokens_rejects(fn):
    with pytest.raises(AssertionError):
        week03.check_mask_tokens(fn)


# ---------------------------------------------------------------------------------------------------------
# Exact match


def exact_match_product(token_accuracy, answer_length):
    return np.asarray(token_accuracy, float) * np.asarray(answer_length)


def exact_match_any_token(token_accuracy, answer_length):
    return 1 - (1 - np.asarray(token_accuracy, float)) ** np.asarray(answer_length)


def exact_match_root(token_accuracy, answer_length):
    return np.asarray(token_accuracy, float) ** (1 / np.asarray(answer_length))


def exact_match_without_checks(token_accuracy, answer_length):
    return np.asarray(token_accuracy, float) ** np.asarray(answer_length)


def exact_match_accepts_float_lengths(token_accuracy, answer_length):
    p, k = np.asarray(token_accuracy, float), np.asarray(answer_length)
    if np.any((p < 0) | (p > 1)) or np.any(k < 1):
        raise ValueError("invalid argument")
    return p**k


WRONG_EXACT_MATCH = [
    exact_match_product,
    exact_match_any_token,
    exact_match_root,
    exact_match_without_checks,
    exact_match_accepts_float_lengths,
]


@pytest.mark.parametrize("fn", WRONG_EXACT_MATCH, ids=lambda fn: fn.__name__)
def test_check_exact_match_rejects(fn):
    with pytest.raises(AssertionError):
        week03.check_exact_match_from_token_accuracy(fn)


# ---------------------------------------------------------------------------------------------------------
# Perplexity


def _windows(token_ids, block_size):
    ids = torch.as_tensor(token_ids, dtype=torch.long).flatten()
    if ids.numel() < 2:
        raise ValueError("need 2 tokens")
    return [ids[s : s + block_size] for s in range(0, ids.numel(), block_size) if ids[s : s + block_size].numel() > 1]


def perplexity_dropout_on(model, token_ids, block_size=None):
    block_size = block_size or model.config.n_positions
    total, count = 0.0, 0
    with torch.no_grad():
        for window in _windows(token_ids, block_size):
            total += model(window[None], labels=window[None]).loss.item() * (window.numel() - 1)
            count += window.numel() - 1
    return math.exp(total / count)


def perplexity_mean_of_window_losses(model, token_ids, block_size=None):
    block_size = block_size or model.config.n_positions
    was_training = model.training
    model.eval()
    with torch.no_grad():
        losses = [model(w[None], labels=w[None]).loss.item() for w in _windows(token_ids, block_size)]
    model.train(was_training)
    return math.exp(sum(losses) / len(losses))


def perplexity_mean_of_window_perplexities(model, token_ids, block_size=None):
    block_size = block_size or model.config.n_positions
    was_training = model.training
    model.eval()
    with torch.no_grad():
        values = [math.exp(model(w[None], labels=w[None]).loss.item()) for w in _windows(token_ids, block_size)]
    model.train(was_training)
    return sum(values) / len(values)


def perplexity_leaves_eval_mode(model, token_ids, block_size=None):
    block_size = block_size or model.config.n_positions
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for window in _windows(token_ids, block_size):
            total += model(window[None], labels=window[None]).loss.item() * (window.numel() - 1)
            count += window.numel() - 1
    return math.exp(total / count)


def perplexity_base_two(model, token_ids, block_size=None):
    return 2 ** math.log(REF.perplexity_of(model, token_ids, block_size))


def perplexity_labels_shifted_again(model, token_ids, block_size=None):
    block_size = block_size or model.config.n_positions
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for window in _windows(token_ids, block_size):
            if window.numel() < 3:
                continue
            total += model(window[None, :-1], labels=window[None, 1:]).loss.item() * (window.numel() - 2)
            count += window.numel() - 2
    model.train(was_training)
    return math.exp(total / count)


def perplexity_as_tensor(model, token_ids, block_size=None):
    return torch.tensor(REF.perplexity_of(model, token_ids, block_size))


def perplexity_without_length_check(model, token_ids, block_size=None):
    if len(token_ids) < 2:
        return float("nan")
    return REF.perplexity_of(model, token_ids, block_size)


WRONG_PERPLEXITIES = [
    perplexity_dropout_on,
    perplexity_mean_of_window_losses,
    perplexity_mean_of_window_perplexities,
    perplexity_leaves_eval_mode,
    perplexity_base_two,
    perplexity_labels_shifted_again,
    perplexity_as_tensor,
    perplexity_without_length_check,
]


@pytest.mark.parametrize("fn", WRONG_PERPLEXITIES, ids=lambda fn: fn.__name__)
def test_check_perplexity_of_rejects(fn):
    with pytest.raises(AssertionError):
        week03.check_perplexity_of(fn)


# ---------------------------------------------------------------------------------------------------------
# Training


def _trainer(step_fn=None, shift_labels=False, as_tensor=False, global_rng=False, last_start_excluded=False,
             fixed_seed=None, no_step=False, no_train_mode=False):
    """Build a wrong train_causal_lm from the reference loop with one mistake switched on."""

    def train_causal_lm(model, token_ids, n_steps, batch_size=16, block_size=None, lr=3e-3, seed=0):
        data = torch.as_tensor(token_ids, dtype=torch.long).flatten()
        block_size = model.config.n_positions if block_size is None else block_size
        device = next(model.parameters()).device
        generator = torch.Generator().manual_seed(seed if fixed_seed is None else fixed_seed)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
        if not no_train_mode:
            model.train()
        losses = []
        high = data.numel() - block_size + (0 if last_start_excluded else 1)
        for _ in range(n_steps):
            if global_rng:
                starts = torch.randint(0, high, (batch_size,))
            else:
                starts = torch.randint(0, high, (batch_size,), generator=generator)
            x = torch.stack([data[s : s + block_size] for s in starts]).to(device)
            if shift_labels:
                loss = model(input_ids=x[:, :-1], labels=x[:, 1:]).loss
            else:
                loss = model(input_ids=x, labels=x).loss
            optimizer.zero_grad()
            loss.backward()
            if not no_step:
                optimizer.step()
            losses.append(loss if as_tensor else loss.item())
        return losses

    return train_causal_lm


WRONG_TRAINERS = {
    "labels shifted by hand": _trainer(shift_labels=True),
    "losses kept as tensors": _trainer(as_tensor=True),
    "global random state": _trainer(global_rng=True),
    "last start excluded": _trainer(last_start_excluded=True),
    "seed ignored": _trainer(fixed_seed=0),
    "no optimizer step": _trainer(no_step=True),
    "eval mode kept": _trainer(no_train_mode=True),
}


@pytest.mark.parametrize("fn", WRONG_TRAINERS.values(), ids=WRONG_TRAINERS.keys())
def test_check_train_causal_lm_rejects(fn):
    with pytest.raises(AssertionError):
        week03.check_train_causal_lm(fn)


def test_trainer_factory_reproduces_reference():
    # The wrong trainers differ from a correct loop only by their switch.
    week03.check_train_causal_lm(_trainer())


# ---------------------------------------------------------------------------------------------------------
# course_lib.corpora


def test_python_docs_paragraphs_are_prose():
    paragraphs = corpora.python_docs_paragraphs()
    assert len(paragraphs) > 300
    for paragraph in paragraphs:
        assert "\n" not in paragraph
        assert len(paragraph.split()) >= 12
        assert not paragraph.startswith((" ", "=", "-"))
    assert sum(len(p) for p in paragraphs) > 100_000


def test_general_english_corpus_first_paragraphs():
    text = corpora.general_english_corpus(5)
    assert text.split("\n") == list(corpora.python_docs_paragraphs()[:5])
    assert corpora.general_english_corpus().count("\n") == len(corpora.python_docs_paragraphs()) - 1


def test_general_english_corpus_rejects_zero():
    with pytest.raises(ValueError, match="positive"):
        corpora.general_english_corpus(0)


def test_split_lines_keeps_whole_lines():
    text = "\n".join(f"line {i}" for i in range(20))
    train, heldout = corpora.split_lines(text, heldout_fraction=0.1)
    assert train.split("\n") == [f"line {i}" for i in range(18)]
    assert heldout.split("\n") == ["line 18", "line 19"]
    assert train + "\n" + heldout == text


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_lines_rejects_fraction(fraction):
    with pytest.raises(ValueError, match="heldout_fraction"):
        corpora.split_lines("a\nb\nc", heldout_fraction=fraction)


def test_split_lines_rejects_empty_part():
    with pytest.raises(ValueError, match="non-empty"):
        corpora.split_lines("a\nb\nc", heldout_fraction=0.1)


# ---------------------------------------------------------------------------------------------------------
# Demo mistakes


def demo_module():
    """Build a module from the reference code with DEMO_MISTAKES applied, as `course demo` does."""
    return mistakes_module("week03")


def test_demo_mistakes_name_solution_cells():
    notebook = read_notebook(REPO_ROOT / "source" / "week03" / "week03.ipynb")
    solution_ids = {grade_id(cell) for cell in notebook.cells if is_solution_cell(cell)}
    assert {target for target, _, _ in week03.DEMO_MISTAKES} <= solution_ids


def test_demo_mistakes_give_partial_credit():
    module = demo_module()
    failed = set()
    for name, call in check_calls(module).items():
        try:
            call()
        except AssertionError:
            failed.add(name)
    assert failed == {"gpt2_parameter_count", "mask_tokens", "perplexity_of"}
