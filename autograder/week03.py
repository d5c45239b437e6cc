"""Hidden checks of week 3: scaling laws, training objectives, emergent abilities and medical pre-training.

Each `check_<name>` takes the student's objects from one grade cell and raises AssertionError with what was
expected, what was received and the likely cause. Parameter counts are compared with
`GPT2LMHeadModel.num_parameters()`, and the compute-optimal allocation with a numerical minimum from
`scipy.optimize`. The autoregressive loss is compared with `torch.nn.functional.cross_entropy` and with the
loss `GPT2LMHeadModel` returns. The masked-language-model corruption is checked exactly on its invariants and
with `scipy.stats` tests on its proportions. `transformers` is imported only inside the checks that
build a model, because importing it takes seconds.
"""

from __future__ import annotations

import copy
import functools
import math
import numbers
import warnings
from collections import namedtuple
from contextlib import contextmanager

import numpy as np
import scipy.optimize
import scipy.stats
import torch
import torch.nn.functional as F

from course_lib import get_device, tolerance
from course_lib.device import supports_float64

SEED = 3

# A correct implementation that draws its random numbers differently from the reference fails a statistical
# test with probability one in a million per test (the p-value of a correct sampler is uniform).
_MIN_P_VALUE = 1e-6

# The check's own copy of the notebook's ScalingLaw: student functions read the fields by name or by position.
Law = namedtuple("Law", ["E", "A", "B", "alpha", "beta"])
CHINCHILLA = Law(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)

# Text replacements (grade_id of a solution cell, text in its reference code, replacement) that `course demo`
# applies to build a submission with realistic mistakes. Three checks fail: the parameter count (no final
# LayerNorm), the MLM corruption (random tokens drawn independently, 2 % instead of 10 %) and the perplexity
# (dropout left on). The scaling-law, loss, exact-match and training checks still pass.
DEMO_MISTAKES = [
    (
        "gpt2_parameter_count",
        "total = embeddings + n_layer * (attention + mlp + layer_norms) + 2 * C  # + ln_f",
        "total = embeddings + n_layer * (attention + mlp + layer_norms)",
    ),
    (
        "mask_tokens",
        "to_random = selected & ~to_mask & (torch.rand(shape, generator=generator) < 0.5)",
        "to_random = selected & ~to_mask & (torch.rand(shape, generator=generator) < 0.1)",
    ),
    (
        "perplexity_of",
        "    model.eval()\n",
        "",
    ),
]


# ---------------------------------------------------------------------------------------------------------
# Shared helpers


def _preserve_rng(check):
    """Wrap a check so that it leaves the CPU random state of the student's session unchanged."""

    @functools.wraps(check)
    def wrapper(*args, **kwargs):
        with torch.random.fork_rng(devices=[]):
            return check(*args, **kwargs)

    return wrapper


@contextmanager
def _quiet_numpy():
    """Silence NumPy floating-point warnings: a correct fit may overflow on the way, and stderr costs points."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _devices() -> list[torch.device]:
    """Return the CPU, followed by the course's accelerator when it has one."""
    devices = [torch.device("cpu")]
    accelerator = get_device()
    if accelerator.type != "cpu":
        devices.append(accelerator)
    return devices


def _describe(value, n_values: int = 5) -> str:
    """Summarise a returned value for a failure message: type, shape, dtype and a few values."""
    if isinstance(value, torch.Tensor):
        head = value.detach().flatten()[:n_values].cpu().tolist()
        return f"tensor of shape {tuple(value.shape)}, dtype {value.dtype}, device {value.device}, values {head}"
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        array = None
    if array is None or not np.issubdtype(array.dtype, np.number):
        return f"{type(value).__name__} {value!r}"[:200]
    if array.ndim == 0:
        return f"{type(value).__name__} {array.item():.8g}"
    values = ", ".join(f"{x:.6g}" for x in array.reshape(-1)[:n_values])
    more = ", ..." if array.size > n_values else ""
    return f"{type(value).__name__} of shape {array.shape}, values [{values}{more}]"


def _as_array(value, what: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    assert np.issubdtype(array.dtype, np.number), f"{what}: expected a number or a NumPy array, received {_describe(value)}"
    return array.astype(np.float64)


def _assert_close_array(received, expected, what: str, hint: str = "", rtol: float = 1e-9, atol: float = 0.0) -> None:
    received = _as_array(received, what)
    expected = np.asarray(expected, dtype=np.float64)
    assert received.shape == expected.shape, (
        f"{what}: expected shape {expected.shape}, received {_describe(received)}. Broadcast the inputs as NumPy does."
    )
    if not np.allclose(received, expected, rtol=rtol, atol=atol, equal_nan=True):
        index = np.unravel_index(np.argmax(~np.isclose(received, expected, rtol=rtol, atol=atol)), expected.shape)
        at = f" at index {tuple(int(i) for i in index)}" if expected.ndim else ""
        raise AssertionError(
            f"{what}{at}: expected {expected[index]:.8g}, received {received[index]:.8g}. {hint}".rstrip()
        )


def _raises_value_error(call) -> bool:
    try:
        call()
    except ValueError:
        return True
    return False


def _gpt2_config(**kwargs):
    from transformers import GPT2Config

    # bos and eos ids inside the vocabulary, or transformers warns on stderr.
    return GPT2Config(bos_token_id=0, eos_token_id=0, **kwargs)


def _tiny_gpt2(vocab_size, n_positions, n_embd, n_layer, n_head, dropout=0.0, seed=SEED):
    from transformers import GPT2LMHeadModel

    torch.manual_seed(seed)
    config = _gpt2_config(
        vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
        resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
    )
    model = GPT2LMHeadModel(config)
    # The class name names no loss, so transformers 5 would warn once on stderr when a loss is computed.
    model.loss_type = "ForCausalLM"
    return model


# ---------------------------------------------------------------------------------------------------------
# Parameter count

_PARAMETER_CONFIGS = [
    dict(vocab_size=100, n_positions=32, n_embd=16, n_layer=2, n_head=2),
    dict(vocab_size=37, n_positions=8, n_embd=8, n_layer=1, n_head=1, n_inner=20),
    dict(vocab_size=64, n_positions=16, n_embd=24, n_layer=3, n_head=3),
    dict(vocab_size=10, n_positions=4, n_embd=4, n_layer=0, n_head=1),
]

# GPT-2 small, V = 50257, n_positions = 1024, n_embd = 768, 12 layers: the published 124M, and the same
# model with an untied head (+ 50257 * 768). Both equal GPT2LMHeadModel(...).num_parameters() in
# transformers 5.25; the test file rebuilds the tied model on the meta device to confirm the first.
_GPT2_SMALL = dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12)
_GPT2_SMALL_TIED = 124_439_808
_GPT2_SMALL_UNTIED = 163_037_184


def _count_hint(difference: int, config: dict, tie: bool) -> str:
    V, P, C = config["vocab_size"], config["n_positions"], config["n_embd"]
    L = config["n_layer"]
    inner = config.get("n_inner") or 4 * C
    known = {
        2 * C: "the final LayerNorm ln_f (2 n_embd) is missing or extra",
        V * C: "the language-model head (vocab_size * n_embd) is counted when tied or left out when untied",
        P * C: "the position embedding wpe (n_positions * n_embd) is missing or extra",
        L * (3 * C + C + inner + C): "the biases of the attention and MLP projections are missing or extra",
        L * 4 * C: "the two LayerNorms of each layer (4 n_embd) are missing or extra",
        V: "the head has no bias in GPT-2",
    }
    if "n_inner" in config:
        known.setdefault(L * 2 * C * (4 * C - inner) + L * (4 * C - inner), "n_inner is ignored: the MLP width is n_inner when given")
    for amount, cause in known.items():
        if amount and abs(difference) == amount:
            return f"The count is off by {difference:+,}: {cause}."
    return f"The count is off by {difference:+,}; add up the table of the notebook part by part."


def check_gpt2_parameter_count(gpt2_parameter_count) -> None:
    """Compare with GPT2LMHeadModel(GPT2Config(...)).num_parameters(), tied and untied, for small configs."""
    from transformers import GPT2LMHeadModel

    for config in _PARAMETER_CONFIGS:
        arguments = {key: value for key, value in config.items() if key != "n_head"}
        for tie in (True, False):
            # The meta device allocates no memory and runs no initialisation: only the shapes count here.
            with torch.device("meta"):
                model = GPT2LMHeadModel(_gpt2_config(**config, tie_word_embeddings=tie))
            expected = model.num_parameters()
            received = gpt2_parameter_count(**arguments, tie_word_embeddings=tie)
            call = f"gpt2_parameter_count({', '.join(f'{k}={v}' for k, v in arguments.items())}, tie_word_embeddings={tie})"
            assert isinstance(received, numbers.Integral), (
                f"{call}: expected an int, received {_describe(received)}. Convert with int(...)."
            )
            if int(received) != expected:
                hint = _count_hint(int(received) - expected, config, tie)
                raise AssertionError(
                    f"{call}: expected {expected:,} (GPT2LMHeadModel.num_parameters()), received {int(received):,}. {hint}"
                )

    for tie, expected in ((True, _GPT2_SMALL_TIED), (False, _GPT2_SMALL_UNTIED)):
        received = gpt2_parameter_count(**_GPT2_SMALL, tie_word_embeddings=tie)
        assert received == expected, (
            f"GPT-2 small with tie_word_embeddings={tie}: expected {expected:,}, received {received!r}"
        )
    received = gpt2_parameter_count(50257, 1024, 768, 12)
    assert received == _GPT2_SMALL_TIED, (
        f"gpt2_parameter_count(50257, 1024, 768, 12) with the default arguments: expected {_GPT2_SMALL_TIED:,} "
        f"(tied embeddings, n_inner = 4 * n_embd), received {received!r}"
    )


# ---------------------------------------------------------------------------------------------------------
# Compute and the Chinchilla loss


def _law_loss(N, D, law) -> np.ndarray:
    return law.E + law.A / np.asarray(N, dtype=float) ** law.alpha + law.B / np.asarray(D, dtype=float) ** law.beta


def _loss_hint(received, N, D, law) -> str:
    received = _as_array(received, "loss")
    swapped = law.E + law.A / N**law.beta + law.B / D**law.alpha
    if received.shape == swapped.shape and np.allclose(received, swapped, rtol=1e-9):
        return "alpha and beta are swapped: alpha is the exponent of N, beta that of D."
    without_e = law.A / N**law.alpha + law.B / D**law.beta
    if received.shape == without_e.shape and np.allclose(received, without_e, rtol=1e-9):
        return "E is missing: the irreducible loss is added to both terms."
    return "Compute E + A / N**alpha + B / D**beta with the fields of `law`, not those of CHINCHILLA."


def check_chinchilla_loss(training_flops, chinchilla_loss) -> None:
    """Check 6 N D and the Chinchilla loss on numbers, broadcast arrays, other laws and infinite inputs."""
    with _quiet_numpy():
        N = np.array([[1e7], [4e8], [7e10]])  # (3, 1)
        D = np.array([2e8, 1e10, 1.4e12, 3e13])  # (4,)

        _assert_close_array(training_flops(175e9, 300e9), 6 * 175e9 * 300e9, "training_flops(175e9, 300e9)",
                            "The compute of training is 6 N D: 2 N per token forward, 4 N backward.")
        _assert_close_array(training_flops(N, D), 6 * N * D, "training_flops(N of shape (3, 1), D of shape (4,))",
                            "The compute of training is 6 N D, broadcast like a NumPy product.")

        for law in (CHINCHILLA, Law(E=2.1, A=1200.0, B=80.0, alpha=0.5, beta=0.2)):
            expected = _law_loss(N, D, law)
            received = chinchilla_loss(N, D, law)
            _assert_close_array(received, expected, f"chinchilla_loss(N of shape (3, 1), D of shape (4,), {law})",
                                _loss_hint(received, N, D, law))

        received = chinchilla_loss(70e9, 1.4e12)
        _assert_close_array(received, _law_loss(70e9, 1.4e12, CHINCHILLA), "chinchilla_loss(70e9, 1.4e12) with the default law",
                            "The default law must be the published fit CHINCHILLA.")

        for arguments, expected, cause in (
            ((math.inf, math.inf), CHINCHILLA.E, "both terms vanish"),
            ((math.inf, 1e12), CHINCHILLA.E + CHINCHILLA.B / 1e12**CHINCHILLA.beta, "only the data term remains"),
        ):
            _assert_close_array(chinchilla_loss(*arguments), expected, f"chinchilla_loss{arguments}",
                                f"With an infinite argument {cause}.")


# ---------------------------------------------------------------------------------------------------------
# Compute-optimal allocation


def _closed_form_optimum(C, law):
    G = (law.alpha * law.A / (law.beta * law.B)) ** (1.0 / (law.alpha + law.beta))
    C6 = np.asarray(C, dtype=float) / 6.0
    return G * C6 ** (law.beta / (law.alpha + law.beta)), C6 ** (law.alpha / (law.alpha + law.beta)) / G


def _numerical_optimum(C: float, law) -> float:
    """Minimise L(N, C / 6N) over log N with scipy.optimize; return N."""

    def loss_at(log_n):
        n = math.exp(log_n)
        return float(_law_loss(n, C / (6.0 * n), law))

    upper = math.log(C / 6.0)
    result = scipy.optimize.minimize_scalar(loss_at, bounds=(0.0, upper), method="bounded", options={"xatol": 1e-9})
    return math.exp(result.x)


_OPTIMUM_LAWS = [
    CHINCHILLA,
    Law(E=1.5, A=300.0, B=300.0, alpha=0.3, beta=0.3),
    Law(E=2.0, A=900.0, B=150.0, alpha=0.45, beta=0.25),
]


def _optimum_hint(N, D, C, law) -> str:
    expected_n, expected_d = _closed_form_optimum(C, law)
    if np.allclose(N, expected_d, rtol=1e-6) and np.allclose(D, expected_n, rtol=1e-6):
        return "N and D are swapped: return (n_params, n_tokens)."
    G = (law.alpha * law.A / (law.beta * law.B)) ** (1.0 / (law.alpha + law.beta))
    C6 = C / 6.0
    if np.allclose(N, G * C6 ** (law.alpha / (law.alpha + law.beta)), rtol=1e-6):
        return "The exponents are swapped: N_opt grows with (C/6)**(beta / (alpha + beta))."
    if np.allclose(N, C6 ** (law.beta / (law.alpha + law.beta)) / G, rtol=1e-6):
        return "G is inverted: N_opt = G (C/6)**(beta/(alpha+beta)) with G = (alpha A / (beta B))**(1/(alpha+beta))."
    if np.allclose(N, G * C ** (law.beta / (law.alpha + law.beta)), rtol=1e-6):
        return "The factor 6 is missing: the constraint is 6 N D = C, so use C / 6."
    return "Use the closed form with the fields of `law`; check it spends the budget: 6 N D = C."


def check_compute_optimal(compute_optimal) -> None:
    """Compare (N_opt, D_opt) with the closed form and with a numerical minimum found by scipy.optimize."""
    with _quiet_numpy():
        for law in _OPTIMUM_LAWS:
            for C in (1e18, 1e21, 5.76e23):
                result = compute_optimal(C, law)
                assert isinstance(result, (tuple, list)) and len(result) == 2, (
                    f"compute_optimal({C:g}, {law}): expected a pair (n_params, n_tokens), received {_describe(result)}"
                )
                N, D = (float(_as_array(x, "compute_optimal")) for x in result)
                numerical = _numerical_optimum(C, law)
                where = f"compute_optimal({C:g}, {law})"
                # The loss is flat near its minimum, so the numerical optimum gets a loose relative tolerance.
                if not math.isclose(N, numerical, rel_tol=1e-3):
                    raise AssertionError(
                        f"{where}: expected N_opt = {numerical:.6g} (scipy.optimize.minimize_scalar on L(N, C/6N)), "
                        f"received N = {N:.6g}. {_optimum_hint(N, D, C, law)}"
                    )
                expected_n, expected_d = _closed_form_optimum(C, law)
                _assert_close_array(N, expected_n, f"{where}, N_opt", _optimum_hint(N, D, C, law), rtol=1e-7)
                _assert_close_array(D, expected_d, f"{where}, D_opt", _optimum_hint(N, D, C, law), rtol=1e-7)
                assert math.isclose(6 * N * D, C, rel_tol=1e-7), (
                    f"{where}: 6 N D = {6 * N * D:.6g}, expected the budget {C:g}. D must be C / (6 N)."
                )

        budgets = np.array([[1e19, 1e20], [1e22, 1e24]])
        N, D = compute_optimal(budgets)
        expected_n, expected_d = _closed_form_optimum(budgets, CHINCHILLA)
        _assert_close_array(N, expected_n, "compute_optimal(budgets of shape (2, 2)), N_opt",
                            "Compute element-wise with NumPy so that arrays of budgets work; the default law is CHINCHILLA.", rtol=1e-7)
        _assert_close_array(D, expected_d, "compute_optimal(budgets of shape (2, 2)), D_opt",
                            "Compute element-wise with NumPy so that arrays of budgets work.", rtol=1e-7)

        for bad in (0.0, -1e20, np.array([1e20, 0.0])):
            assert _raises_value_error(lambda: compute_optimal(bad)), (
                f"compute_optimal({bad!r}) returned without error, expected ValueError: a budget must be positive."
            )


# ---------------------------------------------------------------------------------------------------------
# Fitting a scaling law


def _grid_points(law, noise: float = 0.0, seed: int = SEED):
    N, D = (grid.ravel() for grid in np.meshgrid(np.logspace(7, 10, 6), np.logspace(8, 11, 6)))
    losses = _law_loss(N, D, law)
    if noise:
        losses = losses * np.exp(noise * np.random.default_rng(seed).standard_normal(losses.shape))
    return N, D, losses


def _read_law(result, what: str) -> Law:
    if all(hasattr(result, name) for name in Law._fields):
        values = [getattr(result, name) for name in Law._fields]
    else:
        raise AssertionError(
            f"{what}: expected a ScalingLaw with the fields E, A, B, alpha, beta, received {_describe(result)}"
        )
    return Law(*(float(_as_array(value, f"{what}.{name}")) for name, value in zip(Law._fields, values)))


def _reference_fit(N, D, losses) -> Law:
    """Fit by least squares on log losses from a grid of starting points, as the notebook explains."""
    log_N, log_D, log_L = np.log(N), np.log(D), np.log(losses)

    def residuals(theta):
        E, log_A, log_B, alpha, beta = theta
        return np.log(E + np.exp(log_A - alpha * log_N) + np.exp(log_B - beta * log_D)) - log_L

    lower, upper = [0.0, -10.0, -10.0, 1e-3, 1e-3], [losses.min(), 30.0, 30.0, 2.0, 2.0]
    best = None
    for alpha in (0.2, 0.5):
        for beta in (0.2, 0.5):
            for log_A in (2.0, 8.0):
                for log_B in (2.0, 8.0):
                    result = scipy.optimize.least_squares(
                        residuals, [0.5 * losses.min(), log_A, log_B, alpha, beta], bounds=(lower, upper),
                        x_scale="jac", xtol=1e-12, ftol=1e-12, gtol=1e-12,
                    )
                    if best is None or result.cost < best.cost:
                        best = result
    E, log_A, log_B, alpha, beta = best.x
    return Law(E, math.exp(log_A), math.exp(log_B), alpha, beta)


def _rms_log_error(law, N, D, losses) -> float:
    return float(np.sqrt(np.mean((np.log(_law_loss(N, D, law)) - np.log(losses)) ** 2)))


_FIT_LAWS = [
    CHINCHILLA,
    Law(E=1.0, A=50.0, B=5000.0, alpha=0.25, beta=0.45),
]


def check_fit_scaling_law(fit_scaling_law) -> None:
    """Recover known parameters from exact points, and fit noisy points as well as a careful fit does."""
    with _quiet_numpy():
        for index, law in enumerate(_FIT_LAWS):
            N, D, losses = _grid_points(law)
            if index == 1:  # lists work as well as arrays
                N, D, losses = N.tolist(), D.tolist(), losses.tolist()
            where = f"fit_scaling_law on 36 exact points of {law}"
            fitted = _read_law(fit_scaling_law(N, D, losses), where)
            for name in Law._fields:
                expected, received = getattr(law, name), getattr(fitted, name)
                if not math.isclose(received, expected, rel_tol=1e-2):
                    error = _rms_log_error(fitted, np.asarray(N), np.asarray(D), np.asarray(losses))
                    raise AssertionError(
                        f"{where}: expected {name} = {expected}, received {received:.6g} (the whole fit: {fitted}; "
                        f"RMS error of log loss {error:.2e}). Fit log losses, optimise log A and log B, bound "
                        f"0 <= E <= min(losses), and start from several points, keeping the best result."
                    )

        N, D, losses = _grid_points(CHINCHILLA, noise=0.005)
        fitted = _read_law(fit_scaling_law(N, D, losses), "fit_scaling_law on noisy points")
        received = _rms_log_error(fitted, N, D, losses)
        expected = _rms_log_error(_reference_fit(N, D, losses), N, D, losses)
        assert received <= 1.05 * expected + 1e-9, (
            f"fit_scaling_law on 36 points of the Chinchilla law with 0.5 % noise: the RMS error of the log loss is "
            f"{received:.5f}, expected at most {expected:.5f} (a least-squares fit in log space). Your fit "
            f"{fitted} stopped at a worse optimum: start from several points."
        )


# ---------------------------------------------------------------------------------------------------------
# Autoregressive loss


def _reference_causal_loss(logits, labels):
    V = logits.size(-1)
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=-100)


def _causal_loss_hint(received, logits, labels) -> str:
    V = logits.size(-1)
    with torch.no_grad():
        candidates = {
            "The labels are not shifted: the logits at position t predict the label at position t + 1.":
                F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1), ignore_index=-100),
            "The shift goes the wrong way: use logits[:, :-1] with labels[:, 1:].":
                F.cross_entropy(logits[:, 1:].reshape(-1, V), labels[:, :-1].reshape(-1), ignore_index=-100),
            "The mean is taken per sequence, then over the batch: average over all counted positions of the batch.":
                torch.stack([
                    F.cross_entropy(logits[b, :-1], labels[b, 1:], ignore_index=-100)
                    for b in range(labels.size(0)) if bool((labels[b, 1:] != -100).any())
                ]).mean(),
            "The sum is returned instead of the mean over the counted positions.":
                F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum"),
        }
        candidates["The mean divides by all positions, ignored ones included: divide by the number of counted labels."] = (
            candidates["The sum is returned instead of the mean over the counted positions."] / labels[:, 1:].numel()
        )
        for hint, value in candidates.items():
            if torch.allclose(received.detach().double().cpu(), value.double().cpu(), rtol=1e-5, atol=1e-7):
                return hint
    return "Compute -log_softmax(logits[:, :-1]) at labels[:, 1:], averaged over the labels that are not -100."


def _causal_cases():
    gen = torch.Generator().manual_seed(SEED)
    cases = []
    logits = torch.randn(3, 9, 13, generator=gen, dtype=torch.float64) * 3
    labels = torch.randint(0, 13, (3, 9), generator=gen)
    labels[torch.rand(3, 9, generator=gen) < 0.3] = -100
    labels[1, :4] = -100  # a prompt that does not count
    cases.append(("B=3, T=9, V=13 with about 30 % of the labels -100", logits, labels))
    logits = torch.randn(2, 6, 11, generator=gen, dtype=torch.float64) * 50
    labels = torch.randint(0, 11, (2, 6), generator=gen)
    cases.append(("large logits (around 50)", logits, labels))
    logits = torch.randn(4, 2, 5, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 5, (4, 2), generator=gen)
    cases.append(("T=2, one prediction per sequence", logits, labels))
    logits = torch.randn(3, 7, 6, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 6, (3, 7), generator=gen)
    labels[2, 1:] = -100  # one sequence contributes nothing
    labels[0, 0] = -100  # position 0 is never predicted anyway
    cases.append(("a sequence whose labels are all -100", logits, labels))
    return cases


@_preserve_rng
def check_causal_lm_loss(causal_lm_loss) -> None:
    """Compare value and gradient with F.cross_entropy on shifted tensors, and with GPT2LMHeadModel's loss."""
    for device in _devices():
        for dtype in ([torch.float32, torch.float64] if supports_float64(device) else [torch.float32]):
            tol = tolerance(dtype, device)
            for description, logits_cpu, labels_cpu in _causal_cases():
                where = f"causal_lm_loss with {description} ({dtype}, {device.type})"
                logits = logits_cpu.to(dtype).to(device).requires_grad_(True)
                labels = labels_cpu.to(device)
                labels_before = labels.clone()
                received = causal_lm_loss(logits, labels)
                assert isinstance(received, torch.Tensor) and received.shape == (), (
                    f"{where}: expected a 0-dimensional tensor, received {_describe(received)}"
                )
                assert received.dtype == dtype, (
                    f"{where}: expected dtype {dtype}, received {_describe(received)}. Keep the dtype of the logits."
                )
                assert torch.equal(labels, labels_before), f"{where}: the labels were modified in place; work on a copy."
                reference_logits = logits_cpu.to(dtype).requires_grad_(True)
                expected = _reference_causal_loss(reference_logits, labels_cpu)
                if not torch.allclose(received.detach().cpu(), expected.detach(), **tol):
                    raise AssertionError(
                        f"{where}: expected {expected.item():.7g} (F.cross_entropy on logits[:, :-1] and labels[:, 1:], "
                        f"ignore_index=-100), received {received.item():.7g}. "
                        f"{_causal_loss_hint(received, reference_logits.detach(), labels_cpu)}"
                    )
                assert received.requires_grad, f"{where}: the loss carries no gradient; do not detach or call .item()."
                received.backward()
                expected.backward()
                assert logits.grad is not None and torch.allclose(logits.grad.cpu(), reference_logits.grad, **tol), (
                    f"{where}: the gradient with respect to the logits differs from that of F.cross_entropy "
                    f"(largest difference {(logits.grad.cpu() - reference_logits.grad).abs().max().item():.3g}). "
                    "The ignored positions must get zero gradient."
                )

            everything_ignored = torch.full((2, 5), -100, device=device)
            logits = torch.randn(2, 5, 7, dtype=dtype).to(device)
            received = causal_lm_loss(logits, everything_ignored)
            value = float(received)
            assert math.isnan(value) or value == 0.0, (
                f"causal_lm_loss with every label -100 ({dtype}, {device.type}): expected NaN (as F.cross_entropy) "
                f"or 0, received {value}"
            )

    # The loss GPT2LMHeadModel computes for the same labels: it shifts them itself.
    model = _tiny_gpt2(vocab_size=13, n_positions=16, n_embd=16, n_layer=2, n_head=2).eval()
    gen = torch.Generator().manual_seed(SEED + 1)
    ids = torch.randint(0, 13, (3, 12), generator=gen)
    labels = ids.clone()
    labels[0, :5] = -100
    labels[2, 9:] = -100
    with torch.no_grad():
        output = model(ids, labels=labels)
        received = causal_lm_loss(output.logits, labels)
    tol = tolerance(torch.float32)
    assert torch.allclose(received, output.loss, **tol), (
        f"causal_lm_loss(GPT2LMHeadModel logits, labels): expected {output.loss.item():.7g}, the loss the model "
        f"returns for the same labels, received {received.item():.7g}. "
        f"{_causal_loss_hint(received, output.logits.double(), labels)}"
    )


# ---------------------------------------------------------------------------------------------------------
# Masked-language-model corruption

_MLM_VOCAB = 1000
_MLM_MASK_ID = 3
_MLM_SPECIAL = (0, 1, 2)


def _mlm_batch() -> torch.Tensor:
    """Return a (256, 512) batch of ordinary tokens with [CLS] = 0, [SEP] = 1 and padding = 2 in a quarter of the rows."""
    gen = torch.Generator().manual_seed(SEED)
    ids = torch.randint(4, _MLM_VOCAB, (256, 512), generator=gen)
    ids[:, 0] = 0
    ids[:, -1] = 1
    ids[::4, -100:] = 2
    return ids


def _call_mask_tokens(mask_tokens, ids, seed, mlm_probability=0.15, special=_MLM_SPECIAL):
    before = ids.clone()
    result = mask_tokens(ids, _MLM_MASK_ID, _MLM_VOCAB, special, mlm_probability, torch.Generator().manual_seed(seed))
    where = f"mask_tokens(input_ids of shape {tuple(ids.shape)} on {ids.device.type}, mlm_probability={mlm_probability})"
    assert isinstance(result, (tuple, list)) and len(result) == 2, (
        f"{where}: expected a pair (corrupted_ids, labels), received {_describe(result)}"
    )
    corrupted, labels = result
    for name, value in (("corrupted_ids", corrupted), ("labels", labels)):
        assert isinstance(value, torch.Tensor) and value.shape == ids.shape and value.dtype == ids.dtype, (
            f"{where}: expected {name} as a tensor of shape {tuple(ids.shape)} and dtype {ids.dtype}, "
            f"received {_describe(value)}"
        )
        assert value.device.type == ids.device.type, (
            f"{where}: expected {name} on {ids.device}, received {_describe(value)}. Move the results to the device "
            "of input_ids."
        )
    assert torch.equal(ids, before), (
        f"{where}: input_ids was modified in place. Clone it before writing mask ids into it."
    )
    return corrupted.cpu(), labels.cpu(), where


def _check_mlm_invariants(ids, corrupted, labels, where) -> torch.Tensor:
    """Check the exact invariants of a corruption; return the boolean tensor of selected positions."""
    ids = ids.cpu()
    selected = labels != -100
    special = torch.isin(ids, torch.tensor(_MLM_SPECIAL))
    assert torch.equal(labels[selected], ids[selected]), (
        f"{where}: labels must be the original ids at the selected positions and -100 elsewhere; "
        f"{int((labels[selected] != ids[selected]).sum())} labels hold other values. Clone input_ids for the labels "
        "before corrupting."
    )
    assert not bool((selected & special).any()), (
        f"{where}: {int((selected & special).sum())} special tokens were selected (their label is not -100); special "
        "tokens must never be selected, and labels are -100 at every position that is not selected."
    )
    changed_unselected = int((corrupted[~selected] != ids[~selected]).sum())
    assert changed_unselected == 0, (
        f"{where}: {changed_unselected} tokens that are not selected (label -100) were changed. Only selected "
        "tokens are masked or randomised, and every changed token must carry its label."
    )
    return selected


def _p_value_message(p_value: float) -> str:
    return f"p-value {p_value:.2g} < {_MIN_P_VALUE:g}"


@_preserve_rng
def check_mask_tokens(mask_tokens) -> None:
    """Check MLM corruption exactly on invariants and statistically on proportions, with seeded generators."""
    ids = _mlm_batch()
    special = torch.isin(ids, torch.tensor(_MLM_SPECIAL))
    n_ordinary = int((~special).sum())

    corrupted, labels, where = _call_mask_tokens(mask_tokens, ids, seed=SEED)
    selected = _check_mlm_invariants(ids, corrupted, labels, where)

    n_selected = int(selected.sum())
    p_value = scipy.stats.binomtest(n_selected, n_ordinary, 0.15).pvalue
    assert p_value > _MIN_P_VALUE, (
        f"{where}: {n_selected:,} of {n_ordinary:,} ordinary tokens selected ({n_selected / n_ordinary:.2%}), "
        f"expected about 15 % ({_p_value_message(p_value)}). Select each token outside special_token_ids with "
        "probability mlm_probability: give special tokens probability 0 instead of selecting first and dropping them."
    )

    original = ids[selected]
    replaced = corrupted[selected]
    is_mask = replaced == _MLM_MASK_ID
    is_kept = replaced == original
    counts = np.array([int(is_mask.sum()), int(is_kept.sum()), int((~is_mask & ~is_kept).sum())])
    # A random token may land on the mask id or on the original token, each with probability 1 / V.
    expected = np.array([0.8 + 0.1 / _MLM_VOCAB, 0.1 + 0.1 / _MLM_VOCAB, 0.1 * (_MLM_VOCAB - 2) / _MLM_VOCAB])
    p_value = scipy.stats.chisquare(counts, expected * counts.sum()).pvalue
    shares = ", ".join(f"{name} {count / counts.sum():.1%}" for name, count in zip(("mask", "kept", "random"), counts))
    assert p_value > _MIN_P_VALUE, (
        f"{where}: of the selected tokens: {shares}; expected mask 80 %, kept 10 %, random 10 % "
        f"({_p_value_message(p_value)}). Choose among the three outcomes once per selected token: mask with "
        "probability 0.8, else random with probability 0.5, else keep."
    )

    random_ids = replaced[~is_mask & ~is_kept]
    bins = np.bincount((random_ids * 10 // _MLM_VOCAB).numpy(), minlength=10)
    p_value = scipy.stats.chisquare(bins).pvalue
    assert p_value > _MIN_P_VALUE, (
        f"{where}: the random replacement tokens are not uniform over [0, {_MLM_VOCAB}): counts per tenth of the "
        f"vocabulary {bins.tolist()} ({_p_value_message(p_value)}). Draw them with torch.randint(0, vocab_size, ...)."
    )

    corrupted, labels, where = _call_mask_tokens(mask_tokens, ids, seed=SEED + 1, mlm_probability=0.3, special=list(_MLM_SPECIAL))
    selected = _check_mlm_invariants(ids, corrupted, labels, where + " with special_token_ids as a list")
    p_value = scipy.stats.binomtest(int(selected.sum()), n_ordinary, 0.3).pvalue
    assert p_value > _MIN_P_VALUE, (
        f"{where}: {int(selected.sum()) / n_ordinary:.2%} of the ordinary tokens selected, expected about 30 % "
        f"({_p_value_message(p_value)}). Use the mlm_probability argument rather than a fixed 0.15."
    )

    small = ids[:8]
    corrupted, labels, where = _call_mask_tokens(mask_tokens, small, seed=SEED, mlm_probability=0.0)
    assert bool((labels == -100).all()) and torch.equal(corrupted, small), (
        f"{where}: with mlm_probability 0 nothing may be selected or changed; {int((labels != -100).sum())} positions "
        "were selected."
    )
    corrupted, labels, where = _call_mask_tokens(mask_tokens, small, seed=SEED, mlm_probability=1.0)
    small_special = torch.isin(small, torch.tensor(_MLM_SPECIAL))
    assert torch.equal(labels != -100, ~small_special), (
        f"{where}: with mlm_probability 1 every ordinary token and no special token must be selected; "
        f"{int(((labels != -100) != ~small_special).sum())} positions disagree."
    )

    first = _call_mask_tokens(mask_tokens, small, seed=21)
    second = _call_mask_tokens(mask_tokens, small, seed=21)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1]), (
        "mask_tokens: two calls with generators of the same seed gave different results. Draw every random number "
        "with generator=generator (torch.rand, torch.randint), not from the global random state."
    )
    other = _call_mask_tokens(mask_tokens, small, seed=22)
    assert not torch.equal(first[1], other[1]), (
        "mask_tokens: generators with seeds 21 and 22 gave the same selection: the generator argument is ignored."
    )

    for device in _devices()[1:]:
        on_device = _call_mask_tokens(mask_tokens, small.to(device), seed=21)
        assert torch.equal(on_device[0], first[0]) and torch.equal(on_device[1], first[1]), (
            f"mask_tokens on {device.type}: expected the same corruption as on the CPU with the same seed. Draw the "
            "random numbers on the CPU from the generator, then move the results to the device of input_ids."
        )


# ---------------------------------------------------------------------------------------------------------
# Exact match from per-token accuracy


def _exact_match_hint(received, p, k) -> str:
    received = _as_array(received, "exact match")
    p, k = np.asarray(p, dtype=float), np.asarray(k, dtype=float)
    for value, hint in (
        (p * k, "This is p * k: an answer is right when all k tokens are, which has probability p**k."),
        (1 - (1 - p) ** k, "This is 1 - (1 - p)**k, the chance that at least one token is right: use p**k."),
        (p ** (1 / k), "This is p**(1/k), the inverse: exact match is p**k."),
    ):
        if value.shape == received.shape and np.allclose(received, value, rtol=1e-9):
            return hint
    return "Return p**k, broadcast like a NumPy power."


def check_exact_match_from_token_accuracy(exact_match_from_token_accuracy) -> None:
    """Compare with numpy.power on numbers, broadcast arrays and the ends of [0, 1]; check the ValueErrors."""
    p = np.array([[0.0], [0.3], [0.9], [0.99], [1.0]])  # (5, 1)
    k = np.array([1, 2, 10, 50])  # (4,)
    for arguments in ((0.8, 10), (0.5, 1), (p, k), (np.array([0.2, 0.7]), 3)):
        received = exact_match_from_token_accuracy(*arguments)
        expected = np.power(np.asarray(arguments[0], dtype=float), arguments[1])
        _assert_close_array(received, expected, f"exact_match_from_token_accuracy({_describe(arguments[0])}, {_describe(arguments[1])})",
                            _exact_match_hint(received, *arguments), rtol=1e-12, atol=1e-300)

    for bad_p, bad_k, reason in (
        (-0.1, 3, "an accuracy below 0"),
        (1.2, 3, "an accuracy above 1"),
        (np.array([0.5, 1.5]), 2, "an array with an accuracy above 1"),
        (0.5, 0, "an answer length of 0"),
        (0.5, -2, "a negative answer length"),
        (0.5, 2.5, "an answer length that is not an integer"),
        (0.5, np.array([1, 0]), "an array with an answer length of 0"),
    ):
        assert _raises_value_error(lambda: exact_match_from_token_accuracy(bad_p, bad_k)), (
            f"exact_match_from_token_accuracy({bad_p!r}, {bad_k!r}) returned without error, expected ValueError for "
            f"{reason}."
        )


# ---------------------------------------------------------------------------------------------------------
# Perplexity


def _reference_perplexity(model, ids: torch.Tensor, block_size: int) -> float:
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, ids.numel(), block_size):
            window = ids[start : start + block_size].to(device)
            if window.numel() < 2:
                continue
            logits = model(window[None]).logits[0].double()
            total += F.cross_entropy(logits[:-1], window[1:], reduction="sum").item()
            count += window.numel() - 1
    model.train(was_training)
    return math.exp(total / count)


def _window_losses(model, ids, block_size):
    was_training = model.training
    model.eval()
    losses = []
    with torch.no_grad():
        for start in range(0, ids.numel(), block_size):
            window = ids[start : start + block_size]
            if window.numel() < 2:
                continue
            logits = model(window[None]).logits[0].double()
            losses.append(F.cross_entropy(logits[:-1], window[1:]).item())
    model.train(was_training)
    return losses


def _perplexity_hint(received: float, model, ids, block_size) -> str:
    losses = _window_losses(model, ids, block_size)
    if math.isclose(received, math.exp(sum(losses) / len(losses)), rel_tol=1e-5):
        return "This is exp of the mean of the windows' losses: weight each window by its number of predicted tokens."
    if math.isclose(received, sum(math.exp(x) for x in losses) / len(losses), rel_tol=1e-5):
        return "This is the mean of the windows' perplexities: sum the negative log-likelihoods first, then exponentiate."
    if math.isclose(received, 2 ** (math.log(_reference_perplexity(model, ids, block_size))), rel_tol=1e-5):
        return "This is 2**(mean NLL): the loss is in nats, so use math.exp."
    return (
        "Run the model in eval mode (dropout off) without gradients, cut the ids into consecutive windows of "
        "block_size tokens, and exponentiate the summed negative log-likelihood divided by the number of predicted tokens."
    )


@_preserve_rng
def check_perplexity_of(perplexity_of) -> None:
    """Compare with exp of GPT2LMHeadModel's loss for one window, and with a windowed reference for long texts."""
    # Dropout 0.1: only eval mode gives deterministic, correct values.
    model = _tiny_gpt2(vocab_size=50, n_positions=16, n_embd=16, n_layer=2, n_head=2, dropout=0.1)
    gen = torch.Generator().manual_seed(SEED)
    ids16 = torch.randint(0, 50, (16,), generator=gen)

    model.eval()
    with torch.no_grad():
        expected = math.exp(model(ids16[None], labels=ids16[None]).loss.item())
    model.train()
    received = perplexity_of(model, ids16)
    where = "perplexity_of(model, 16 token ids) with n_positions = 16"
    assert isinstance(received, float), f"{where}: expected a Python float, received {_describe(received)}. Use .item()."
    assert model.training, (
        f"{where}: the model was in training mode before the call and in eval mode after it. Restore the previous "
        "mode with model.train(was_training)."
    )
    if not math.isclose(received, expected, rel_tol=1e-5):
        hint = _perplexity_hint(received, model, ids16, 16)
        repeated = float(perplexity_of(model, ids16))
        if repeated != received:
            hint = (f"A second call returned {repeated:.6f}: dropout is on. Call model.eval() before the forward "
                    "passes, and restore the previous mode at the end.")
        model.train()
        raise AssertionError(
            f"{where}: expected {expected:.6f}, exp of the loss GPT2LMHeadModel returns in eval mode, received "
            f"{received:.6f}. {hint}"
        )

    cases = [
        ("50 token ids as a list, windows 16, 16, 16, 2", torch.randint(0, 50, (50,), generator=gen), None, True),
        ("41 token ids with block_size=10, windows 10, 10, 10, 10, 1", torch.randint(0, 50, (41,), generator=gen), 10, False),
        ("2 token ids", torch.randint(0, 50, (2,), generator=gen), None, False),
    ]
    for description, ids, block_size, as_list in cases:
        for training in (True, False):
            model.train(training)
            arguments = (model, ids.tolist() if as_list else ids) + (() if block_size is None else (block_size,))
            received = perplexity_of(*arguments)
            expected = _reference_perplexity(model, ids, block_size or 16)
            where = f"perplexity_of with {description}, model in {'training' if training else 'eval'} mode"
            assert model.training == training, f"{where}: the model's mode changed; restore it at the end."
            if not math.isclose(float(received), expected, rel_tol=1e-5):
                raise AssertionError(
                    f"{where}: expected {expected:.6f}, received {float(received):.6f}. "
                    f"{_perplexity_hint(float(received), model, ids, block_size or 16)}"
                )

    for ids in (torch.tensor([7]), torch.tensor([], dtype=torch.long)):
        assert _raises_value_error(lambda: perplexity_of(model, ids)), (
            f"perplexity_of(model, {ids.tolist()}) returned without error, expected ValueError: perplexity needs at "
            "least 2 tokens."
        )

    ids = cases[0][1]
    expected = _reference_perplexity(model, ids, 16)
    for device in _devices()[1:]:
        on_device = copy.deepcopy(model).to(device)
        received = perplexity_of(on_device, ids)
        # Accelerators reorder float32 reductions, so their log-likelihoods differ slightly from the CPU's.
        assert math.isclose(float(received), expected, rel_tol=1e-3), (
            f"perplexity_of with the model on {device.type}: expected {expected:.5f} as on the CPU, received "
            f"{float(received):.5f}. Move each window to the device of the model's parameters."
        )


# ---------------------------------------------------------------------------------------------------------
# Training


class _WindowRecorder:
    """Record the input ids a model receives, through a forward pre-hook on its token embedding."""

    def __init__(self, model):
        self.inputs = []
        self.handle = model.get_input_embeddings().register_forward_pre_hook(self._record)

    def _record(self, module, args):
        self.inputs.append(args[0].detach().cpu().clone())

    def remove(self):
        self.handle.remove()


def _call_train(train_causal_lm, model, data, n_steps, **kwargs):
    recorder = _WindowRecorder(model)
    try:
        losses = train_causal_lm(model, data, n_steps, **kwargs)
    finally:
        recorder.remove()
    where = f"train_causal_lm(model, {len(data)} tokens, n_steps={n_steps}, {', '.join(f'{k}={v}' for k, v in kwargs.items())})"
    assert isinstance(losses, list) and len(losses) == n_steps, (
        f"{where}: expected a list of {n_steps} losses, received {_describe(losses)}"
    )
    assert all(isinstance(loss, float) for loss in losses), (
        f"{where}: expected Python floats, received {type(losses[0]).__name__} values. Append loss.item(): keeping the "
        "tensors would also keep every step's computation graph in memory."
    )
    return losses, recorder.inputs, where


@_preserve_rng
def check_train_causal_lm(train_causal_lm) -> None:
    """Train a tiny GPT-2 on a cyclic sequence: the loss falls, next tokens are learned, runs are reproducible."""
    model = _tiny_gpt2(vocab_size=10, n_positions=12, n_embd=32, n_layer=1, n_head=2)
    initial = copy.deepcopy(model)
    cycle = torch.arange(10).repeat(20)  # each token determines the next one
    model.eval()  # the function must switch training mode on itself

    losses, inputs, where = _call_train(train_causal_lm, model, cycle, 40, batch_size=8, lr=1e-2, seed=5)
    shapes = {tuple(batch.shape) for batch in inputs}
    hint = ""
    if shapes == {(8, 11)}:
        hint = (". The windows are one token short: pass the same window as input_ids and labels, because "
                "GPT2LMHeadModel shifts the labels itself")
    assert shapes == {(8, 12)}, (
        f"{where}: expected batches of shape (batch_size, block_size) = (8, 12), the model received {sorted(shapes)}{hint}"
    )
    assert model.training, f"{where}: the model is not in training mode; call model.train() before the loop."
    start, end = losses[0], sum(losses[-5:]) / 5
    assert end < 0.3 * start, (
        f"{where}: the loss fell from {start:.3f} to {end:.3f} (mean of the last 5 steps), expected below "
        f"{0.3 * start:.3f}. Call optimizer.zero_grad(), loss.backward() and optimizer.step() every step, with "
        "torch.optim.AdamW(model.parameters(), lr=lr)."
    )

    model.eval()
    with torch.no_grad():
        predicted = model(cycle[None, :12]).logits[0, :-1].argmax(-1)  # (11,)
    accuracy = (predicted == cycle[1:12]).float().mean().item()
    assert accuracy >= 0.9, (
        f"{where}: after training the model predicts the next token of 0 1 2 ... 9 0 1 only {accuracy:.0%} of the "
        f"time (predictions {predicted.tolist()} for {cycle[1:12].tolist()}). Pass the same window as input_ids and "
        "labels: GPT2LMHeadModel shifts the labels itself, so shifting them by hand makes it learn the token after next."
    )

    again, _, _ = _call_train(train_causal_lm, copy.deepcopy(initial), cycle, 10, batch_size=8, lr=1e-2, seed=5)
    assert np.allclose(again, losses[:10], rtol=1e-5, atol=1e-6), (
        f"{where}: a second run from the same initial weights with the same seed gave other losses "
        f"({losses[:3]} then {again[:3]}). Draw the start positions with generator = torch.Generator().manual_seed(seed)."
    )
    other, _, _ = _call_train(train_causal_lm, copy.deepcopy(initial), cycle, 3, batch_size=8, lr=1e-2, seed=6)
    assert not np.allclose(other, losses[:3]), (
        f"{where}: seeds 5 and 6 gave the same losses {other}: the seed argument is ignored."
    )

    # Data of 14 tokens and windows of 12: the possible starts are 0, 1 and 2, told apart by their first token.
    short = torch.arange(14) % 10
    _, inputs, where = _call_train(train_causal_lm, copy.deepcopy(initial), short, 15, batch_size=4, block_size=12, seed=0)
    starts = sorted({int(token) for batch in inputs for token in batch[:, 0]})
    assert starts == [0, 1, 2], (
        f"{where}: the windows started at positions {starts}, expected all of [0, 1, 2]. The last valid start is "
        "len(token_ids) - block_size, and torch.randint excludes its upper bound: use len(token_ids) - block_size + 1."
    )
    _, inputs, where = _call_train(train_causal_lm, copy.deepcopy(initial), cycle, 2, batch_size=3, block_size=5)
    shapes = {tuple(batch.shape) for batch in inputs}
    assert shapes == {(3, 5)}, f"{where}: expected batches of shape (3, 5), the model received {sorted(shapes)}"

    for device in _devices()[1:]:
        on_device = copy.deepcopy(initial).to(device)
        losses, _, where = _call_train(train_causal_lm, on_device, cycle, 3, batch_size=4)
        assert all(math.isfinite(loss) for loss in losses), f"{where} on {device.type}: non-finite losses {losses}"
