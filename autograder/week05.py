"""Hidden checks of week 5: evaluation metrics, a medical benchmark, bias and significance testing.

Each `check_<name>` takes the student's functions from one grade cell, calls them on fixed inputs and raises
AssertionError saying what was expected, what was received and the likely cause. Results are compared with
`torch.nn.functional.cross_entropy`, `sacrebleu`, `rouge_score`, `sklearn.metrics`, `scipy.stats` and
`statsmodels`, which are imported inside the checks that need them so that each grade cell pays only for
its own imports. Errors raised inside student code propagate unchanged.
"""

from __future__ import annotations

import functools
import math
import numbers
import warnings
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

from course_lib import get_device, tolerance
from course_lib.eval_data import (
    NEGATION_CUES,
    WEAT_ATTRIBUTES_A,
    WEAT_ATTRIBUTES_B,
    WEAT_TARGETS_X,
    WEAT_TARGETS_Y,
    weat_vectors,
)

# NumPy and float64 results, compared at torch.testing's float64 tolerance.
_F64 = tolerance(torch.float64)

# Text replacements (grade_id of a solution cell, text in its reference code, replacement) that build a
# submission with realistic mistakes. BLEU without clipping, bins closed on the right, the population standard
# deviation in WEAT and McNemar without continuity correction fail. The other nine grade cells pass.
DEMO_MISTAKES = [
    (
        "corpus_bleu",
        "matches[n - 1] += sum((hyp_ngrams & max_ref_ngrams).values())",
        "matches[n - 1] += sum(count for gram, count in hyp_ngrams.items() if gram in max_ref_ngrams)",
    ),
    (
        "calibration",
        "bins = np.minimum(np.floor(confidences * n_bins).astype(np.int64), n_bins - 1)",
        "bins = np.clip(np.ceil(confidences * n_bins).astype(np.int64) - 1, 0, n_bins - 1)",
    ),
    (
        "weat",
        "np.concatenate([s_x, s_y]).std(ddof=1)",
        "np.concatenate([s_x, s_y]).std()",
    ),
    (
        "mcnemar",
        "statistic = (abs(b - c) - 1) ** 2 / (b + c)",
        "statistic = (b - c) ** 2 / (b + c)",
    ),
]


# ---------------------------------------------------------------------------------------------------------
# Helpers


@contextmanager
def _quiet_numpy():
    """Silence NumPy floating-point warnings while student code runs on inputs with -inf, nan or empty bins.

    A correct submission must earn its points even when it computes 0 / 0 on the way, and nbgrader scores any
    output on stderr as a failure.
    """
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _describe(value, n_values: int = 6) -> str:
    """Return the type, shape, dtype and first values of `value` for a failure message."""
    if isinstance(value, torch.Tensor):
        flat = value.detach().cpu().reshape(-1)[:n_values].tolist()
        return f"tensor of shape {tuple(value.shape)}, dtype {value.dtype}, values {flat}"
    if isinstance(value, dict):
        return "dict " + repr({key: value[key] for key in list(value)[:8]})[:300]
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        array = None
    if array is None or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        return f"{type(value).__name__} {value!r}"[:300]
    if array.ndim == 0:
        return f"{array.item():.6g}" if np.issubdtype(array.dtype, np.floating) else str(array.item())
    flat = array.reshape(-1)[:n_values]
    more = ", ..." if array.size > n_values else ""
    values = ", ".join(f"{x:.6g}" if np.issubdtype(array.dtype, np.floating) else str(x) for x in flat)
    return f"{type(value).__name__} of shape {array.shape}, dtype {array.dtype}, values [{values}{more}]"


def _as_number(value, what: str) -> float:
    """Convert a returned scalar (Python, NumPy or 0-d tensor) to float, failing with a message otherwise."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.item())
    assert isinstance(value, (numbers.Real, np.number)) and not isinstance(value, bool), (
        f"{what}: expected a number, received {_describe(value)}"
    )
    return float(value)


def _close(received: float, expected: float, rtol: float = _F64["rtol"], atol: float = _F64["atol"]) -> bool:
    if math.isnan(expected):
        return math.isnan(received)
    return math.isclose(received, expected, rel_tol=rtol, abs_tol=atol)


def _assert_number(received, expected: float, what: str, hint: str = "", rtol=_F64["rtol"], atol=_F64["atol"]):
    value = _as_number(received, what)
    if not _close(value, expected, rtol, atol):
        raise AssertionError(f"{what}: expected {expected:.10g}, received {value:.10g}. {hint}".rstrip())


def _assert_array(received, expected, what: str, hint: str = "", rtol=_F64["rtol"], atol=_F64["atol"]):
    """Check shape and values, nan equal to nan, against `expected`."""
    expected = np.asarray(expected, dtype=np.float64)
    array = np.asarray(received.detach().cpu() if isinstance(received, torch.Tensor) else received)
    assert array.shape == expected.shape, (
        f"{what}: expected shape {expected.shape}, received {_describe(received)}"
    )
    assert np.issubdtype(array.dtype, np.number) or array.dtype == bool, (
        f"{what}: expected numbers, received {_describe(received)}"
    )
    array = array.astype(np.float64)
    if not np.allclose(array, expected, rtol=rtol, atol=atol, equal_nan=True):
        raise AssertionError(
            f"{what}: expected {_describe(expected)}, received {_describe(received)}. {hint}".rstrip()
        )


def _expect_value_error(call, what: str, reason: str) -> None:
    try:
        with _quiet_numpy():
            call()
    except ValueError:
        return
    raise AssertionError(f"{what} returned without error, expected a ValueError: {reason}")


def _devices() -> list[torch.device]:
    devices = [torch.device("cpu")]
    accelerator = get_device()
    if accelerator.type != "cpu":
        devices.append(accelerator)
    return devices


# ---------------------------------------------------------------------------------------------------------
# 1.1 Perplexity


def _reference_token_log_probs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    B, T, V = logits.shape
    nll = F.cross_entropy(logits[:, :-1].reshape(-1, V), input_ids[:, 1:].reshape(-1), reduction="none")
    return -nll.reshape(B, T - 1)  # (B, T-1)


def _log_probs_hint(received: torch.Tensor, logits, input_ids, tol) -> str:
    received = received.detach().cpu().double()
    no_shift = torch.log_softmax(logits, dim=-1).gather(-1, input_ids[..., None]).squeeze(-1)[:, 1:]
    if torch.allclose(received, no_shift.double(), **tol):
        return "The logits at position t were paired with the token at position t: pair them with token t + 1."
    wrong_axis = torch.log_softmax(logits[:, :-1], dim=1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    if torch.allclose(received, wrong_axis.double(), **tol):
        return "The log-softmax ran over the time axis: take it over the vocabulary (dim=-1)."
    return "Take log_softmax(logits[:, :-1], dim=-1) and pick the entries of input_ids[:, 1:]."


def _perplexity_hint(received: float, log_probs: np.ndarray, mask: np.ndarray) -> str:
    if math.isnan(received):
        return "The result is nan: 0 * (-inf) at a padded position gives nan, so select with torch.where or a mask index."
    per_sequence = [math.exp(-log_probs[b][mask[b]].mean()) for b in range(len(log_probs)) if mask[b].any()]
    if _close(received, float(np.mean(per_sequence)), 1e-6, 0.0):
        return "This is the mean of per-sequence perplexities: pool the log-probabilities of all tokens first."
    pooled_bits = 2.0 ** (-log_probs[mask].mean())
    if _close(received, pooled_bits, 1e-6, 0.0):
        return "The exponential has base 2 but the log-probabilities are natural logarithms: use exp."
    finite = np.where(np.isfinite(log_probs), log_probs, 0.0)
    if _close(received, math.exp(-finite.sum() / mask.sum()), 1e-6, 0.0) or _close(
        received, math.exp(-finite.mean()), 1e-6, 0.0
    ):
        return "Padded positions were counted: divide by the number of True entries of the mask only."
    return "Compute exp(-(sum of the masked log-probabilities) / (number of True entries in the mask))."


def check_perplexity(next_token_log_probs, perplexity) -> None:
    """Check the shifted next-token log-probabilities and the pooled corpus perplexity."""
    generator = torch.Generator().manual_seed(5)
    B, T, V = 3, 7, 11
    logits64 = 3.0 * torch.randn(B, T, V, generator=generator, dtype=torch.float64)
    input_ids = torch.randint(0, V, (B, T), generator=generator)

    for device in _devices():
        for dtype in (torch.float64, torch.float32) if device.type != "mps" else (torch.float32,):
            for scale in (1.0, 100.0):
                logits = (logits64 * scale).to(dtype).to(device)
                received = next_token_log_probs(logits, input_ids.to(device))
                what = f"next_token_log_probs(logits of shape {(B, T, V)}, {dtype}, {device.type}, scale {scale})"
                assert isinstance(received, torch.Tensor), f"{what}: expected a tensor, received {_describe(received)}"
                assert tuple(received.shape) == (B, T - 1), (
                    f"{what}: expected shape {(B, T - 1)}, received {_describe(received)}. "
                    "T tokens give T - 1 predictions: the last logits predict a token outside the batch."
                )
                assert received.dtype == dtype, f"{what}: expected dtype {dtype}, received {_describe(received)}"
                expected = _reference_token_log_probs((logits64 * scale).to(dtype), input_ids).double()
                tol = tolerance(dtype, device)
                if scale > 1.0:
                    tol = {key: value * 100 for key, value in tol.items()}  # log-probabilities near -1000
                if not torch.allclose(received.detach().cpu().double(), expected, **tol):
                    hint = _log_probs_hint(received, (logits64 * scale).to(dtype), input_ids, tol)
                    raise AssertionError(
                        f"{what}: expected {_describe(expected)}, received {_describe(received)}. {hint}"
                    )

    log_probs = -np.abs(np.random.default_rng(3).normal(1.5, 1.0, size=(4, 6)))
    mask = np.arange(6)[None, :] < np.array([6, 4, 1, 3])[:, None]
    padded = log_probs.copy()
    padded[~mask] = -np.inf
    padded[3, 5] = np.nan
    garbage = np.where(mask, log_probs, -0.01)  # padded logits give finite log-probabilities too
    expected = math.exp(-log_probs[mask].mean())
    cases = [
        ("a (4, 6) tensor with -inf and nan at masked positions", torch.tensor(padded), torch.tensor(mask), expected),
        ("a NumPy array with the same mask", padded, mask, expected),
        ("a (4, 6) tensor with finite values at masked positions", torch.tensor(garbage), torch.tensor(mask), expected),
        ("a 1-D tensor and mask=None", torch.tensor(log_probs[0]), None, math.exp(-log_probs[0].mean())),
    ]
    for description, values, given_mask, wanted in cases:
        with _quiet_numpy():
            received = perplexity(values, given_mask) if given_mask is not None else perplexity(values)
        value = _as_number(received, f"perplexity({description})")
        if not _close(value, wanted, 1e-9, 0.0):
            raise AssertionError(
                f"perplexity({description}): expected {wanted:.8g}, received {value:.8g}. "
                + _perplexity_hint(value, log_probs, mask if given_mask is not None else np.ones_like(mask))
            )

    uniform = torch.full((2, 5), -math.log(50.0), dtype=torch.float64)
    _assert_number(perplexity(uniform), 50.0, "perplexity of a uniform model over 50 tokens", rtol=1e-9, atol=0.0)
    _expect_value_error(
        lambda: perplexity(torch.tensor(padded), torch.zeros(4, 6, dtype=torch.bool)),
        "perplexity(..., mask with no True entry)",
        "the perplexity of zero tokens is undefined (0 / 0).",
    )


# ---------------------------------------------------------------------------------------------------------
# 1.2 Corpus BLEU

_BLEU_CASES = [
    (
        "a corpus of 4 hypotheses with 2 references each",
        [
            "take the tablet twice a day with food",
            "your blood pressure is high",
            "come back if the pain gets worse",
            "do not drive after taking this medicine",
        ],
        [
            ["take the tablet two times a day with food", "take one tablet twice daily with a meal"],
            ["your blood pressure is too high", "you have high blood pressure"],
            ["return if the pain gets worse", "come back if your pain becomes worse"],
            ["do not drive after you take this medicine", "avoid driving after taking this medicine"],
        ],
    ),
    (
        "hypotheses shorter than their references (brevity penalty below 1)",
        ["the patient has a fever today", "rest and drink water"],
        [["the patient has a high fever today and feels unwell"], ["rest at home and drink plenty of water"]],
    ),
    (
        "hypotheses longer than their references",
        ["the patient has a fever today and a cough since monday", "drink water and rest at home please"],
        [["the patient has a fever today"], ["drink water and rest at home"]],
    ),
    (
        "repeated words that only clipping limits",
        ["the the the the the the", "pain pain pain in the left arm"],
        [["the cat is on the mat"], ["pain in the left arm"]],
    ),
    (
        "repeated words against two references (clipped by the largest count in one reference)",
        ["the the the patient is stable and the nurse is here"],
        [["the patient is stable", "the nurse is here and the doctor"]],
    ),
    (
        "references of 4 and 6 tokens around a 5-token hypothesis (a tie: the shorter counts)",
        ["she has no known allergies", "he takes aspirin every morning"],
        [["she has no allergies", "she has no known drug allergies"],
         ["he takes an aspirin", "he takes aspirin every single morning"]],
    ),
    (
        "case and punctuation kept as they are (whitespace tokens only)",
        ["Patient denies fever . No cough", "BP is 120/80 today"],
        [["patient denies fever. no cough"], ["BP is 120/80 today ."]],
    ),
    (
        "a corpus without any matching 4-gram (BLEU 0 without smoothing)",
        ["fever and cough", "no rash seen"],
        [["fever with a dry cough"], ["rash was seen"]],
    ),
    (
        "an empty hypothesis among others",
        ["", "the wound is healing well and looks clean", "continue the same dose"],
        [["no change"], ["the wound is healing well and is clean"], ["continue the same dose"]],
    ),
    ("a corpus of empty hypotheses", ["", ""], [["take with food"], ["rest"]]),
    ("identical hypothesis and reference", ["call your doctor if the rash spreads"],
     [["call your doctor if the rash spreads"]]),
]


def _sacrebleu(hypotheses, references):
    import sacrebleu

    streams = [list(stream) for stream in zip(*references)]
    return sacrebleu.corpus_bleu(hypotheses, streams, tokenize="none", smooth_method="none", force=True)


def _bleu_hint(received: dict, expected) -> str:
    precisions = [float(p) for p in received.get("precisions", [])]
    if len(precisions) == 4 and precisions[0] > expected.precisions[0] + 1e-9:
        return ("Precisions are too high: clip each n-gram count by its largest count in a single reference "
                "(Counter & and |), not by its count in all references together or not at all.")
    if len(precisions) == 4 and all(abs(p - 100 * e) < 1e-6 for p, e in zip(precisions, expected.precisions)):
        return "Precisions must be in percent, as sacrebleu reports them."
    if received.get("ref_len") != expected.ref_len:
        return ("The reference length must be the sum over hypotheses of the reference length closest to the "
                "hypothesis length, the shorter one on a tie.")
    if received.get("hyp_len") != expected.sys_len:
        return "The hypothesis length is the total number of whitespace tokens of all hypotheses."
    if not _close(float(received.get("brevity_penalty", math.nan)), expected.bp, 1e-9, 1e-12):
        return "The brevity penalty is exp(1 - ref_len / hyp_len) over the whole corpus when hyp_len < ref_len, else 1."
    return ("Combine as 100 * BP * exp(mean of log precisions) with the corpus totals, and return 0 when a "
            "precision is 0 (no smoothing).")


def check_corpus_bleu(corpus_bleu) -> None:
    """Compare corpus BLEU and its parts with sacrebleu (tokenize="none", smooth_method="none")."""
    keys = ("score", "precisions", "brevity_penalty", "hyp_len", "ref_len")
    for description, hypotheses, references in _BLEU_CASES:
        expected = _sacrebleu(hypotheses, references)
        with _quiet_numpy():
            received = corpus_bleu(list(hypotheses), [list(refs) for refs in references])
        what = f"corpus_bleu on {description}"
        assert isinstance(received, dict) and all(key in received for key in keys), (
            f"{what}: expected a dict with the keys {keys}, received {_describe(received)}"
        )
        assert len(received["precisions"]) == 4, (
            f"{what}: expected 4 precisions (n = 1 to 4), received {received['precisions']!r}"
        )
        problems = []
        if not all(_close(float(p), e, 1e-9, 1e-9) for p, e in zip(received["precisions"], expected.precisions)):
            problems.append(f"precisions {list(received['precisions'])} instead of {expected.precisions}")
        if received["hyp_len"] != expected.sys_len or received["ref_len"] != expected.ref_len:
            problems.append(
                f"(hyp_len, ref_len) = ({received['hyp_len']}, {received['ref_len']}) instead of "
                f"({expected.sys_len}, {expected.ref_len})"
            )
        if not _close(float(received["brevity_penalty"]), expected.bp, 1e-9, 1e-12):
            problems.append(f"brevity_penalty {received['brevity_penalty']} instead of {expected.bp}")
        if not _close(float(received["score"]), expected.score, 1e-9, 1e-9):
            problems.append(f"score {received['score']} instead of {expected.score}")
        if problems:
            raise AssertionError(f"{what}: " + "; ".join(problems) + ". " + _bleu_hint(received, expected))


# ---------------------------------------------------------------------------------------------------------
# 1.3 ROUGE

_ROUGE_CASES = [
    ("no chest pain today", "patient has no chest pain"),
    ("Chest pain and shortness of breath; no fever.", "Patient reports chest pain and shortness of breath, no fever."),
    ("BP 120/80, HR 72.", "bp 120 / 80 and hr 72"),
    ("Oedème des membres inférieurs", "oedème of the lower limbs"),
    ("the the the pain", "the pain in the chest"),
    ("a b c d e", "e d c b a"),
    ("fever", "fever"),
    ("fever", "high fever"),
    ("", "patient stable"),
    ("patient stable", ""),
    ("!!! ???", "..."),
    ("Right-sided weakness, no aphasia.", "no aphasia, right sided weakness"),
]


@functools.lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])


def _random_rouge_cases(n_cases: int = 25) -> list[tuple[str, str]]:
    rng = np.random.default_rng(11)
    words = ["the", "patient", "has", "no", "fever", "pain", "in", "chest", "left", "arm", "is", "stable", "and"]
    cases = []
    for _ in range(n_cases):
        prediction = " ".join(rng.choice(words, size=rng.integers(1, 15)))
        reference = " ".join(rng.choice(words, size=rng.integers(1, 15)))
        cases.append((prediction, reference))
    return cases


def _rouge_hint(name: str, prediction: str, reference: str) -> str:
    if prediction.lower() != prediction or reference.lower() != reference or any(
        not (ch.isalnum() or ch == " ") for ch in prediction + reference
    ):
        return ("Tokenise like rouge_score: lowercase, replace every run of characters other than a-z and 0-9 by "
                "a space, then split.")
    if name == "rougeL":
        return "ROUGE-L uses the longest common subsequence (tokens in order, gaps allowed), not the longest common substring."
    return ("Count n-gram overlap with multiplicity, each n-gram at most as often as on the other side (Counter &), "
            "and return F1 = 2PR / (P + R), 0 when P + R = 0.")


def check_rouge_scores(rouge_scores) -> None:
    """Compare ROUGE-1, ROUGE-2 and ROUGE-L F1 with rouge_score's RougeScorer (no stemming)."""
    scorer = _rouge_scorer()
    for prediction, reference in _ROUGE_CASES + _random_rouge_cases():
        expected = scorer.score(reference, prediction)  # rouge_score takes (target, prediction)
        received = rouge_scores(prediction, reference)
        what = f"rouge_scores({prediction!r}, {reference!r})"
        assert isinstance(received, dict) and {"rouge1", "rouge2", "rougeL"} <= set(received), (
            f"{what}: expected a dict with the keys rouge1, rouge2 and rougeL, received {_describe(received)}"
        )
        for name in ("rouge1", "rouge2", "rougeL"):
            value = _as_number(received[name], f"{what}[{name!r}]")
            wanted = expected[name].fmeasure
            if not _close(value, wanted, 1e-9, 1e-12):
                if _close(value, expected[name].recall, 1e-9, 1e-12) or _close(value, expected[name].precision, 1e-9, 1e-12):
                    hint = "This is the recall or the precision: return the F1 score 2PR / (P + R)."
                else:
                    hint = _rouge_hint(name, prediction, reference)
                raise AssertionError(f"{what}[{name!r}]: expected F1 {wanted:.6f}, received {value:.6f}. {hint}")


# ---------------------------------------------------------------------------------------------------------
# 1.4 A clinical metric: property checks

_CONCEPT_PAIRS = [("chest pain", "fever"), ("cough", "shortness of breath"), ("nausea", "headache")]
_FILLER_WORDS = ("also", "recent", "mild")


def _score(metric, prediction: str, reference: str) -> float:
    value = _as_number(metric(prediction, reference), f"clinical_concept_f1({prediction!r}, {reference!r})")
    assert 0.0 <= value <= 1.0, (
        f"clinical_concept_f1({prediction!r}, {reference!r}) = {value:.6g}, expected a score in [0, 1]"
    )
    return value


def check_clinical_metric(clinical_concept_f1) -> None:
    """Check properties of a negation-aware clinical metric: range, identity, negation and omission penalties."""
    texts = [
        "The patient reports chest pain and fever.",
        "Denies nausea. Reports a headache since Monday.",
        "No cough, no fever, no shortness of breath.",
        "Seen in clinic today, follow up in two weeks.",
        "",
    ]
    for text in texts:
        value = _score(clinical_concept_f1, text, text)
        assert math.isclose(value, 1.0, abs_tol=1e-9), (
            f"clinical_concept_f1(text, text) = {value:.6g} for text {text!r}, expected 1: identical texts must "
            "score 1, also texts without any concept (decide what 0 concepts against 0 concepts means)."
        )
    for prediction in texts:
        for reference in texts:
            _score(clinical_concept_f1, prediction, reference)

    for first, second in _CONCEPT_PAIRS:
        reference = f"The patient reports {first} and {second}."
        for cue in NEGATION_CUES:
            n_words = len(cue.split())
            negated = f"The patient reports {first} and {cue} {second}."
            filler = f"The patient reports {first} and {' '.join(_FILLER_WORDS[:n_words])} {second}."
            for prediction, target, direction in [
                (negated, reference, "the prediction negates a finding that the reference affirms"),
                (reference, negated, "the prediction affirms a finding that the reference negates"),
            ]:
                negated_score = _score(clinical_concept_f1, prediction, target)
                filler_target = filler if target == negated else target
                filler_prediction = filler if prediction == negated else prediction
                filler_score = _score(clinical_concept_f1, filler_prediction, filler_target)
                assert negated_score < 1.0 and negated_score < filler_score, (
                    f"{direction} with the cue {cue!r}: clinical_concept_f1({prediction!r}, {target!r}) = "
                    f"{negated_score:.4f}, and with a filler word instead of the cue the score is "
                    f"{filler_score:.4f}. Expected the negated version to score below 1 and below the filler "
                    "version: detect the cues of NEGATION_CUES before a concept."
                )

        dropped = _score(clinical_concept_f1, f"The patient reports {first}.", reference)
        assert dropped < 1.0, (
            f"clinical_concept_f1('The patient reports {first}.', {reference!r}) = {dropped:.4f}, expected below 1: "
            f"the prediction drops the finding {second!r}."
        )


# ---------------------------------------------------------------------------------------------------------
# 2.1 Multiple-choice predictions


def _softmax_rows(scores: np.ndarray) -> np.ndarray:
    import scipy.special

    with _quiet_numpy():
        return scipy.special.softmax(scores, axis=1)


def check_mcq(predict_options, accuracy) -> None:
    """Check option choices and probabilities against np.argmax and scipy.special.softmax, and accuracy."""
    rng = np.random.default_rng(21)
    N, K = 30, 4
    counts = rng.integers(1, 7, size=(N, K))
    counts[::4, 3] = 0  # items with 3 options
    log_likelihoods = rng.normal(-2.5, 0.6, size=(N, K)) * counts
    log_likelihoods[counts == 0] = 0.0  # a missing option must lose because its count is 0, whatever its value
    per_token = np.where(counts > 0, log_likelihoods / np.maximum(counts, 1), -np.inf)
    summed = np.where(counts > 0, log_likelihoods, -np.inf)

    ties = np.array([[-1.0, -1.0, -2.0, -3.0], [-5.0, -2.0, -2.0, -2.0]])
    huge = np.array([[-1000.0, -1001.0, -1003.0, -np.inf], [-2000.0, -2000.5, -np.inf, -np.inf]])
    cases = [
        ("summed log-likelihoods with -inf for missing options", (summed,), summed),
        ("per-token scores: option_token_counts given, 0 for missing options", (log_likelihoods, counts), per_token),
        ("tied scores (the first best option wins)", (ties,), ties),
        ("scores around -1000 and -2000", (huge,), huge),
    ]
    for description, arguments, scores in cases:
        with _quiet_numpy():
            result = predict_options(*arguments)
        what = f"predict_options with {description}"
        assert isinstance(result, (tuple, list)) and len(result) == 2, (
            f"{what}: expected a tuple (choices, probabilities), received {_describe(result)}"
        )
        choices, probabilities = (np.asarray(item) for item in result)
        expected_choices = np.argmax(scores, axis=1)
        assert choices.shape == expected_choices.shape and np.issubdtype(choices.dtype, np.integer), (
            f"{what}: expected integer choices of shape {expected_choices.shape}, received {_describe(result[0])}"
        )
        if not np.array_equal(choices, expected_choices):
            if np.array_equal(choices, expected_choices + 1):
                hint = "Choices are 1-based: return 0-based option indices."
            elif description.startswith("per-token") and np.array_equal(choices, np.argmax(summed, axis=1)):
                hint = "Divide each log-likelihood by its token count before choosing."
            elif np.array_equal(choices, np.argmin(np.where(np.isfinite(scores), scores, np.inf), axis=1)):
                hint = "Log-likelihoods are better when higher: take the argmax, not the argmin."
            else:
                hint = "Choose the option with the highest score, the first one on a tie, and never a missing option."
            raise AssertionError(f"{what}: expected choices {expected_choices.tolist()}, received {choices.tolist()}. {hint}")
        expected_probabilities = _softmax_rows(scores)
        hint = (
            "The probabilities contain nan: subtract each row's maximum score before np.exp."
            if np.isnan(probabilities.astype(float)).any()
            else "Take the softmax of the scores over the options of each row (axis=1); missing options get 0."
        )
        _assert_array(probabilities, expected_probabilities, f"{what}: probabilities", hint)

    answers = rng.integers(0, 4, size=50)
    choices = np.where(rng.random(50) < 0.6, answers, (answers + 1) % 4)
    _assert_number(accuracy(choices, answers), float(np.mean(choices == answers)), "accuracy(choices, answers)",
                   "Return the fraction in [0, 1], not a percentage or a count.")
    _assert_number(accuracy(list(choices[:4]), list(choices[:4])), 1.0, "accuracy of identical lists")
    _expect_value_error(lambda: accuracy([0, 1, 2], [0, 1]), "accuracy([0, 1, 2], [0, 1])",
                        "arrays of different lengths mean misaligned items.")
    _expect_value_error(lambda: accuracy([], []), "accuracy([], [])", "the accuracy of no items is undefined.")


# ---------------------------------------------------------------------------------------------------------
# 2.2 Calibration


def _reference_bins(confidences, correct, n_bins):
    """Bin with np.histogram, whose bins are [a, b) with the last one closed: the convention of the notebook."""
    counts, _ = np.histogram(confidences, bins=n_bins, range=(0.0, 1.0))
    confidence_sums, _ = np.histogram(confidences, bins=n_bins, range=(0.0, 1.0), weights=confidences)
    correct_sums, _ = np.histogram(confidences, bins=n_bins, range=(0.0, 1.0), weights=correct)
    with _quiet_numpy():
        return counts, confidence_sums / counts, correct_sums / counts


def _reference_ece(confidences, correct, n_bins) -> float:
    counts, mean_confidence, bin_accuracy = _reference_bins(confidences, correct, n_bins)
    filled = counts > 0
    return float(np.sum(counts[filled] * np.abs(bin_accuracy[filled] - mean_confidence[filled])) / counts.sum())


def check_calibration(calibration_bins, expected_calibration_error) -> None:
    """Check equal-width bins closed on the left (np.histogram's convention) and the ECE computed from them."""
    rng = np.random.default_rng(8)
    confidences = rng.uniform(0.25, 1.0, size=400)
    correct = (rng.random(400) < confidences**1.5).astype(np.int64)
    edges = np.array([0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 0.5, 0.9])  # bin edges where both conventions are exact
    edge_correct = np.array([0, 1, 1, 0, 1, 1, 0, 1])
    cases = [
        ("400 confidences in [0.25, 1)", confidences, correct, (1, 4, 10, 15)),
        ("confidences on bin edges (0, 0.25, 0.5, 0.75, 1)", edges, edge_correct, (2, 4)),
        ("boolean correctness", confidences[:50], correct[:50].astype(bool), (10,)),
    ]
    for description, conf, corr, bin_counts in cases:
        for n_bins in bin_counts:
            what = f"calibration_bins({description}, n_bins={n_bins})"
            with _quiet_numpy():
                result = calibration_bins(conf, corr, n_bins=n_bins)
            assert isinstance(result, (tuple, list)) and len(result) == 3, (
                f"{what}: expected (counts, mean_confidence, accuracy), received {_describe(result)}"
            )
            counts, mean_confidence, bin_accuracy = _reference_bins(conf, np.asarray(corr, dtype=float), n_bins)
            hint = ("Bin b holds b / n_bins <= c < (b + 1) / n_bins and the last bin also holds c = 1: "
                    "b = min(floor(c * n_bins), n_bins - 1). Bins closed on the right put 0.5 one bin lower.")
            _assert_array(result[0], counts, f"{what}: counts", hint)
            _assert_array(result[1], mean_confidence, f"{what}: mean_confidence", "Empty bins hold nan.")
            _assert_array(result[2], bin_accuracy, f"{what}: accuracy", "Empty bins hold nan.")

            with _quiet_numpy():
                received = expected_calibration_error(conf, corr, n_bins=n_bins)
            wanted = _reference_ece(conf, np.asarray(corr, dtype=float), n_bins)
            _, ref_conf, ref_acc = _reference_bins(conf, np.asarray(corr, dtype=float), n_bins)
            filled = ~np.isnan(ref_conf)
            unweighted = float(np.mean(np.abs(ref_acc[filled] - ref_conf[filled])))
            value = _as_number(received, f"expected_calibration_error({description}, n_bins={n_bins})")
            if _close(value, unweighted) and not _close(unweighted, wanted):
                hint = "This is the plain mean over bins: weight each bin by its share n_b / N of the predictions."
            else:
                hint = "ECE = sum over non-empty bins of (n_b / N) * |accuracy_b - mean_confidence_b|."
            _assert_number(value, wanted, f"expected_calibration_error({description}, n_bins={n_bins})", hint)

    calibrated = np.full(10, 0.7)
    _assert_number(expected_calibration_error(calibrated, [1] * 7 + [0] * 3, n_bins=10), 0.0,
                   "expected_calibration_error of 10 answers at confidence 0.7 with 7 right",
                   "A perfectly calibrated bin contributes |0.7 - 0.7| = 0: take the absolute gap per bin.")


# ---------------------------------------------------------------------------------------------------------
# 2.3 Brier score


def check_brier_score(brier_score) -> None:
    """Compare binary and multiclass Brier scores with sklearn.metrics.brier_score_loss."""
    from sklearn.metrics import brier_score_loss

    rng = np.random.default_rng(4)
    p = rng.random(60)
    y = (rng.random(60) < p).astype(np.int64)
    _assert_number(brier_score(p, y), brier_score_loss(y, p), "brier_score(binary probabilities of class 1, labels)",
                   "Binary: the mean of (p - y)^2 with p the probability of class 1.")
    _assert_number(brier_score(list(p[:5]), list(y[:5])), brier_score_loss(y[:5], p[:5]), "brier_score with lists")
    _assert_number(brier_score([1.0, 0.0], [1, 0]), 0.0, "brier_score of perfect binary predictions")

    for n_classes in (2, 3, 5):
        logits = rng.normal(size=(40, n_classes))
        probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        labels = rng.integers(0, n_classes, size=40)
        expected = brier_score_loss(labels, probabilities, labels=list(range(n_classes)), scale_by_half=False)
        received = _as_number(brier_score(probabilities, labels), f"brier_score(({40}, {n_classes}) probabilities)")
        true_class = float(np.mean((1.0 - probabilities[np.arange(40), labels]) ** 2))
        if _close(received, true_class):
            hint = "Only the true class was counted: sum the squared errors over all K classes."
        elif _close(received, expected / n_classes):
            hint = "The sum over classes was averaged: sum over the K classes, then average over the items."
        elif _close(received, expected / 2):
            hint = "The multiclass score was halved: use the sum over classes, in [0, 2]."
        else:
            hint = "Multiclass: mean over items of sum_k (p_k - [y = k])^2."
        _assert_number(received, expected, f"brier_score of ({40}, {n_classes}) probabilities", hint)

    _expect_value_error(lambda: brier_score(np.full((2, 3), 1 / 3), [0, 3]),
                        "brier_score(probabilities with 3 classes, labels [0, 3])",
                        "label 3 is not one of the classes 0, 1, 2.")


# ---------------------------------------------------------------------------------------------------------
# 3.1 Group fairness


def _reference_rates(y_true, y_pred, groups):
    from sklearn.metrics import confusion_matrix

    rates = {}
    for group in np.unique(groups):
        member = groups == group
        (tn, fp), (fn, tp) = confusion_matrix(y_true[member], y_pred[member], labels=[0, 1])
        with _quiet_numpy():
            rates[group] = {
                "n": int(member.sum()),
                "selection_rate": (tp + fp) / member.sum(),
                "tpr": tp / (tp + fn) if tp + fn else np.nan,
                "fpr": fp / (fp + tn) if fp + tn else np.nan,
            }
    return rates


def _fairness_case(rng, groups_names, n, shift):
    groups = rng.choice(groups_names, size=n)
    y_true = (rng.random(n) < 0.35).astype(np.int64)
    score = 0.5 * y_true + rng.normal(0.2, 0.25, n) - shift * (groups == groups_names[-1])
    return y_true, (score > 0.45).astype(np.int64), groups


def check_group_fairness(group_rates, fairness_gaps) -> None:
    """Compare per-group selection rate, TPR and FPR with sklearn's confusion matrix, and their max - min gaps."""
    import pandas as pd

    rng = np.random.default_rng(9)
    y_true, y_pred, groups = _fairness_case(rng, np.array(["x", "y", "z"]), 300, -0.2)  # group z flagged most
    y2, p2, g2 = _fairness_case(rng, np.array([0, 1]), 200, 0.3)
    no_positive = y2.copy()
    no_positive[g2 == 1] = 0  # group 1 has no patient with the outcome: its TPR is undefined
    cases = [
        ("three groups", y_true, y_pred, groups),
        ("two integer groups given as pandas Series with a boolean y_pred",
         pd.Series(y2), pd.Series(p2.astype(bool)), pd.Series(g2)),
        ("a group without any positive patient", no_positive, p2, g2),
    ]
    for description, truth, predicted, group_values in cases:
        truth_np, predicted_np, groups_np = (np.asarray(v) for v in (truth, predicted, group_values))
        expected = _reference_rates(truth_np, predicted_np.astype(np.int64), groups_np)
        with _quiet_numpy():
            rates = group_rates(truth, predicted, group_values)
        what = f"group_rates with {description}"
        assert isinstance(rates, pd.DataFrame), f"{what}: expected a pandas DataFrame, received {_describe(rates)}"
        assert sorted(rates.index.tolist()) == sorted(expected), (
            f"{what}: expected one row per group {sorted(expected)}, received the index {rates.index.tolist()}"
        )
        for group, row in expected.items():
            for column in ("selection_rate", "tpr", "fpr"):
                assert column in rates.columns, f"{what}: missing column {column!r}, columns are {list(rates.columns)}"
                received = float(rates.loc[group, column])
                if not _close(received, row[column]):
                    hints = {
                        "tpr": "TPR = true positives / patients with the outcome in the group (not / flagged patients).",
                        "fpr": "FPR = false positives / patients without the outcome in the group, nan when there are none.",
                        "selection_rate": "The selection rate is the fraction of the group that the model flags (y_pred = 1).",
                    }
                    raise AssertionError(
                        f"{what}: {column} of group {group!r} expected {row[column]:.6g}, received {received:.6g}. "
                        + hints[column]
                    )

        values = {key: np.array([row[key] for row in expected.values()]) for key in ("selection_rate", "tpr", "fpr")}
        spread = {key: float(v.max() - v.min()) for key, v in values.items()}
        expected_gaps = {
            "demographic_parity_difference": spread["selection_rate"],
            "tpr_difference": spread["tpr"],
            "fpr_difference": spread["fpr"],
            "equalized_odds_difference": float(np.max([spread["tpr"], spread["fpr"]])),
        }
        with _quiet_numpy():
            gaps = fairness_gaps(truth, predicted, group_values)
        assert isinstance(gaps, dict), f"fairness_gaps with {description}: expected a dict, received {_describe(gaps)}"
        for key, wanted in expected_gaps.items():
            assert key in gaps, f"fairness_gaps with {description}: missing key {key!r}, keys are {list(gaps)}"
            received = _as_number(gaps[key], f"fairness_gaps with {description}: {key}")
            if not _close(received, wanted):
                if math.isnan(wanted):
                    hint = "A group has an undefined rate (nan), so the gap is nan too: do not drop the group."
                elif _close(-received, wanted) or received < 0:
                    hint = "A gap is max - min over the groups, never negative."
                else:
                    hint = "Take max - min over the groups; equalized_odds_difference is the larger of the TPR and FPR gaps."
                raise AssertionError(
                    f"fairness_gaps with {description}: {key} expected {wanted:.6g}, received {received:.6g}. {hint}"
                )


# ---------------------------------------------------------------------------------------------------------
# 3.2 WEAT


def _unit_rows(M: np.ndarray) -> np.ndarray:
    return M / np.linalg.norm(M, axis=1, keepdims=True)


def _reference_association(W, A, B) -> np.ndarray:
    return (_unit_rows(W) @ _unit_rows(A).T).mean(axis=1) - (_unit_rows(W) @ _unit_rows(B).T).mean(axis=1)


def _scipy_weat_p_value(X, Y, A, B) -> float:
    import scipy.stats

    s_x, s_y = _reference_association(X, A, B), _reference_association(Y, A, B)
    result = scipy.stats.permutation_test(
        (s_x, s_y),
        lambda x, y, axis: np.sum(x, axis=axis) - np.sum(y, axis=axis),
        permutation_type="independent",
        alternative="greater",
        n_resamples=np.inf,
        vectorized=True,
    )
    return float(result.pvalue)


def _weat_sets():
    rng = np.random.default_rng(13)
    tiny = tuple(rng.normal(size=(n, 8)) for n in (4, 4, 3, 5))
    tiny = (tiny[0] + 0.8 * tiny[2].mean(axis=0), tiny[1], tiny[2], tiny[3])  # X leans toward A
    sets = [("4 + 4 random target vectors (70 splits), |A| = 3, |B| = 5", tiny)]
    for association in (0.6, 0.0):
        vectors = weat_vectors(association=association)
        words = (WEAT_TARGETS_X, WEAT_TARGETS_Y, WEAT_ATTRIBUTES_A, WEAT_ATTRIBUTES_B)
        arrays = tuple(np.stack([vectors[w] for w in group]) for group in words)
        sets.append((f"the course's word vectors with association={association} (924 splits)", arrays))
    return sets


def check_weat(weat_association, weat_effect_size, weat_p_value) -> None:
    """Compare WEAT associations and effect sizes with NumPy, and the p-value with scipy.stats.permutation_test."""
    for description, (X, Y, A, B) in _weat_sets():
        expected = _reference_association(X, A, B)
        received = weat_association(X, A, B)
        hint = ("Use cosine similarities (normalise every vector), and average over A and over B separately: "
                "mean cos(w, a) - mean cos(w, b).")
        _assert_array(received, expected, f"weat_association(X, A, B) with {description}", hint)

        s = np.concatenate([expected, _reference_association(Y, A, B)])
        difference = expected.mean() - s[len(X):].mean()
        wanted = float(difference / s.std(ddof=1))
        value = _as_number(weat_effect_size(X, Y, A, B), f"weat_effect_size with {description}")
        if _close(value, float(difference / s.std(ddof=0))):
            hint = "The standard deviation uses ddof=0: use the sample standard deviation, std(ddof=1)."
        else:
            hint = "d = (mean of s over X - mean of s over Y) / std(ddof=1) of s over X and Y together."
        _assert_number(value, wanted, f"weat_effect_size with {description}", hint)

        expected_p = _scipy_weat_p_value(X, Y, A, B)
        value = _as_number(weat_p_value(X, Y, A, B), f"weat_p_value with {description}")
        n_splits = math.comb(2 * len(X), len(X))
        if _close(value, expected_p - 1 / n_splits):
            hint = "The observed split was not counted: count splits with a statistic >= the observed one, the observed included."
        elif _close(value, min(1.0, 2 * expected_p)):
            hint = "This is a two-sided p-value: the WEAT test is one-sided (statistic >= observed)."
        else:
            hint = (f"Enumerate all {n_splits} splits of X and Y into two halves and return the fraction whose "
                    "statistic sum_x s - sum_y s is >= the observed one.")
        _assert_number(value, expected_p, f"weat_p_value with {description}", hint)

    X, Y, A, B = _weat_sets()[0][1]
    _expect_value_error(lambda: weat_p_value(X, Y[:3], A, B), "weat_p_value with 4 X words and 3 Y words",
                        "the WEAT permutation test splits X and Y into halves of equal size.")


# ---------------------------------------------------------------------------------------------------------
# 4.1 Bootstrap


# The endpoints of two percentile bootstraps of 4000 resamples differ by Monte Carlo error. Over 300 seeds the
# reference's endpoints differed from scipy's fixed-seed interval by at most 0.15 bootstrap standard errors
# on the data below, so the check allows 0.3. On the standard deviation of these skewed data, a normal
# interval is 0.51 and a basic interval 0.89 standard errors away.
_BOOTSTRAP_TOLERANCE = 0.3


def check_bootstrap_ci(bootstrap_ci) -> None:
    """Compare percentile bootstrap intervals with scipy.stats.bootstrap(method="percentile"), statistically."""
    import scipy.stats

    data = np.random.default_rng(17).lognormal(0.0, 1.5, size=40)
    for statistic, level in [(np.mean, 0.9), (np.std, 0.95)]:
        result = bootstrap_ci(data, statistic=statistic, n_resamples=4000, confidence_level=level,
                              rng=np.random.default_rng(123))
        what = f"bootstrap_ci(40 lognormal values, statistic=np.{statistic.__name__}, confidence_level={level})"
        assert isinstance(result, (tuple, list)) and len(result) == 2, (
            f"{what}: expected a tuple (low, high), received {_describe(result)}"
        )
        low, high = (_as_number(v, what) for v in result)
        reference = scipy.stats.bootstrap(
            (data,), statistic, method="percentile", n_resamples=4000, confidence_level=level,
            random_state=np.random.default_rng(7),
        )
        scale = float(reference.standard_error)
        wanted = (float(reference.confidence_interval.low), float(reference.confidence_interval.high))
        if not (abs(low - wanted[0]) <= _BOOTSTRAP_TOLERANCE * scale and abs(high - wanted[1]) <= _BOOTSTRAP_TOLERANCE * scale):
            if high - low < 0.5 * (wanted[1] - wanted[0]):
                hint = "The interval is too narrow: draw with replacement and use the quantiles alpha / 2 and 1 - alpha / 2."
            elif high - low > 1.3 * (wanted[1] - wanted[0]):
                hint = "The interval is too wide: with alpha = 1 - confidence_level, use alpha / 2, not alpha, in each tail."
            else:
                hint = ("Percentile interval: the quantiles of the resampled statistics themselves, not the basic "
                        "(2 * estimate - quantile) or normal interval.")
            raise AssertionError(
                f"{what} = ({low:.4f}, {high:.4f}), expected close to scipy's ({wanted[0]:.4f}, {wanted[1]:.4f}) "
                f"within {_BOOTSTRAP_TOLERANCE} bootstrap standard errors ({scale:.4f}). {hint}"
            )

    first = bootstrap_ci(data, n_resamples=500, rng=np.random.default_rng(1))
    again = bootstrap_ci(data, n_resamples=500, rng=np.random.default_rng(1))
    other = bootstrap_ci(data, n_resamples=500, rng=np.random.default_rng(2))
    assert tuple(map(float, first)) == tuple(map(float, again)), (
        f"bootstrap_ci with the same seed gave {first} and then {again}: draw every index from `rng`, "
        "not from np.random's global state."
    )
    assert tuple(map(float, first)) != tuple(map(float, other)), (
        f"bootstrap_ci gave {first} for two different seeds: the resamples must come from `rng`."
    )
    constant = bootstrap_ci(np.full(12, 2.5), n_resamples=200, rng=np.random.default_rng(0))
    assert tuple(map(float, constant)) == (2.5, 2.5), (
        f"bootstrap_ci of 12 equal values returned {constant}, expected (2.5, 2.5)"
    )


# ---------------------------------------------------------------------------------------------------------
# 4.2 Paired permutation test


def _scipy_paired_p_value(a, b, n_resamples, seed=None) -> float:
    import scipy.stats

    result = scipy.stats.permutation_test(
        (np.asarray(a, dtype=float), np.asarray(b, dtype=float)),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        permutation_type="samples",
        alternative="two-sided",
        n_resamples=n_resamples,
        vectorized=True,
        random_state=None if seed is None else np.random.default_rng(seed),
    )
    return float(result.pvalue)


def check_paired_permutation_test(paired_permutation_test) -> None:
    """Compare exact sign-flip p-values with scipy.stats.permutation_test, and random ones statistically."""
    rng = np.random.default_rng(31)
    a = rng.normal(0.5, 1.0, size=10)
    b = rng.normal(0.0, 1.0, size=10)
    right_a = (rng.random(12) < 0.75).astype(int)
    right_b = (rng.random(12) < 0.45).astype(int)
    exact_cases = [
        ("10 continuous paired scores (1,024 sign patterns)", a, b),
        ("12 paired correct/incorrect outcomes, with many ties (4,096 sign patterns)", right_a, right_b),
        ("identical systems", right_a, right_a),
    ]
    for description, x, y in exact_cases:
        expected = _scipy_paired_p_value(x, y, np.inf)
        value = _as_number(paired_permutation_test(x, y), f"paired_permutation_test on {description}")
        one_sided = _scipy_paired_p_value(x, y, np.inf) / 2
        if _close(value, one_sided):
            hint = "This is a one-sided p-value: count patterns with |mean| >= |observed mean|."
        elif value < expected:
            hint = ("The p-value is too small: count the patterns whose |statistic| equals the observed one too "
                    "(>= with a relative tolerance), including the observed pattern.")
        else:
            hint = "Flip the signs of the paired differences a_i - b_i; do not shuffle items between the systems."
        _assert_number(value, expected, f"paired_permutation_test on {description} (exact, all sign patterns)", hint)

    many_a = (rng.random(60) < 0.7).astype(int)
    many_b = (rng.random(60) < 0.55).astype(int)
    expected = _scipy_paired_p_value(many_a, many_b, 20_000, seed=3)
    value = _as_number(
        paired_permutation_test(many_a, many_b, n_resamples=20_000, rng=np.random.default_rng(0)),
        "paired_permutation_test on 60 paired outcomes with 20,000 random sign patterns",
    )
    # Two Monte Carlo estimates of p from 20,000 draws each differ by about sqrt(2 p (1 - p) / 20000) < 0.005.
    assert abs(value - expected) < 0.03, (
        f"paired_permutation_test on 60 paired outcomes with 20,000 random sign patterns = {value:.4f}, "
        f"expected close to scipy's {expected:.4f}: flip the sign of each difference at random with `rng`."
    )
    floor = _as_number(paired_permutation_test(np.ones(40), np.zeros(40), n_resamples=999, rng=np.random.default_rng(0)),
                       "paired_permutation_test(40 ones, 40 zeros, n_resamples=999)")
    assert math.isclose(floor, 1 / 1000, rel_tol=1e-9), (
        f"paired_permutation_test(40 ones, 40 zeros, n_resamples=999) = {floor:.6g}, expected (0 + 1) / (999 + 1) "
        "= 0.001: with random patterns, count the observed one, so that the p-value is never 0."
    )
    first = paired_permutation_test(many_a, many_b, n_resamples=2000, rng=np.random.default_rng(5))
    again = paired_permutation_test(many_a, many_b, n_resamples=2000, rng=np.random.default_rng(5))
    assert first == again, (
        f"paired_permutation_test with the same seed gave {first} and then {again}: draw the signs from `rng`."
    )


# ---------------------------------------------------------------------------------------------------------
# 4.3 McNemar's test


def _outcomes_from_table(both: int, only_a: int, only_b: int, neither: int, seed: int):
    correct_a = np.array([1] * both + [1] * only_a + [0] * only_b + [0] * neither)
    correct_b = np.array([1] * both + [0] * only_a + [1] * only_b + [0] * neither)
    order = np.random.default_rng(seed).permutation(len(correct_a))
    return correct_a[order], correct_b[order]


def check_mcnemar(paired_contingency_table, mcnemar_test) -> None:
    """Compare McNemar's exact and chi-square tests with statsmodels' mcnemar (correction=True)."""
    from statsmodels.stats.contingency_tables import mcnemar

    tables = [(5, 8, 2, 3), (20, 5, 5, 10), (3, 0, 7, 2), (50, 30, 12, 8), (4, 1, 0, 6), (9, 13, 11, 0)]
    for seed, counts in enumerate(tables):
        correct_a, correct_b = _outcomes_from_table(*counts, seed)
        expected_table = np.array([[counts[0], counts[1]], [counts[2], counts[3]]])
        received_table = paired_contingency_table(correct_a, correct_b)
        hint = ("Rows are A right / A wrong, columns B right / B wrong: [[both right, only A right], "
                "[only B right, both wrong]].")
        _assert_array(received_table, expected_table, f"paired_contingency_table for the table {expected_table.tolist()}",
                      hint, rtol=0.0, atol=0.0)
        for exact in (True, False):
            reference = mcnemar(expected_table, exact=exact, correction=True)
            what = f"mcnemar_test(exact={exact}) for the table {expected_table.tolist()}"
            result = mcnemar_test(correct_a, correct_b, exact=exact)
            assert isinstance(result, (tuple, list)) and len(result) == 2, (
                f"{what}: expected a tuple (statistic, p_value), received {_describe(result)}"
            )
            statistic, p_value = (_as_number(v, what) for v in result)
            b, c = counts[1], counts[2]
            if exact:
                hint = "Exact test: statistic min(b, c), p = min(1, 2 * binom.cdf(min(b, c), b + c, 0.5))."
            elif _close(statistic, (b - c) ** 2 / (b + c)):
                hint = "The continuity correction is missing: (|b - c| - 1)^2 / (b + c)."
            else:
                hint = "Chi-square test: (|b - c| - 1)^2 / (b + c), with the p-value stats.chi2.sf(statistic, df=1)."
            _assert_number(statistic, float(reference.statistic), f"{what}: statistic", hint)
            _assert_number(p_value, float(reference.pvalue), f"{what}: p-value", hint)

    correct_a, correct_b = _outcomes_from_table(6, 0, 0, 4, 0)
    for exact in (True, False):
        result = mcnemar_test(correct_a, correct_b, exact=exact)
        received = tuple(_as_number(v, "mcnemar_test") for v in result)
        assert received == (0.0, 1.0), (
            f"mcnemar_test(exact={exact}) for two systems that never disagree (b = c = 0) returned {received}, "
            "expected (0.0, 1.0): there is no evidence for either system."
        )


# ---------------------------------------------------------------------------------------------------------
# 4.4 Error analysis


def check_error_analysis(error_table, errors_by_topic) -> None:
    """Compare the confusion table with sklearn's confusion_matrix and the topic summary with pandas."""
    import pandas as pd
    from sklearn.metrics import confusion_matrix

    rng = np.random.default_rng(41)
    for n_options in (4, 3, 5):
        answers = rng.integers(0, n_options, size=60)
        choices = np.where(rng.random(60) < 0.6, answers, rng.integers(0, n_options - 1, size=60))
        choices[choices == n_options - 1] = 0  # the last letter is never chosen but must keep its column
        table = error_table(answers, choices, n_options=n_options)
        letters = [chr(ord("A") + k) for k in range(n_options)]
        what = f"error_table with {n_options} options"
        assert isinstance(table, pd.DataFrame), f"{what}: expected a pandas DataFrame, received {_describe(table)}"
        assert list(table.index) == letters and list(table.columns) == letters, (
            f"{what}: expected the letters {letters} as index and columns (also letters never chosen), received "
            f"index {list(table.index)} and columns {list(table.columns)}"
        )
        expected = confusion_matrix(answers, choices, labels=list(range(n_options)))
        hint = "Rows are the correct options and columns the chosen ones."
        if np.array_equal(table.to_numpy(), expected.T):
            hint = "The table is transposed: " + hint
        _assert_array(table.to_numpy(), expected, what, hint, rtol=0.0, atol=0.0)

    topics = np.array(["cardiology"] * 6 + ["neurology"] * 3 + ["pharmacology"] * 8 + ["renal"] * 3)
    # Most errors in pharmacology (3 of 8), the highest rate in neurology (2 of 3).
    correct = np.array([1, 1, 0, 0, 1, 1] + [0, 0, 1] + [1, 0, 1, 0, 1, 1, 0, 1] + [1, 1, 1], dtype=bool)
    frame = pd.DataFrame({"topic": topics, "error": ~correct})
    expected = frame.groupby("topic")["error"].agg(n="size", errors="sum")
    expected["error_rate"] = expected["errors"] / expected["n"]
    expected = expected.reset_index().sort_values(["errors", "error_rate", "topic"], ascending=[False, False, True])
    summary = errors_by_topic(topics, correct)
    assert isinstance(summary, pd.DataFrame), f"errors_by_topic: expected a DataFrame, received {_describe(summary)}"
    assert list(summary.index) == expected["topic"].tolist(), (
        f"errors_by_topic: expected the topics in the order {expected['topic'].tolist()}, received "
        f"{list(summary.index)}. Sort by errors (descending), then error_rate (descending), then topic name."
    )
    for column in ("n", "errors", "error_rate"):
        assert column in summary.columns, f"errors_by_topic: missing column {column!r}, columns are {list(summary.columns)}"
        _assert_array(summary[column].to_numpy(dtype=float), expected[column].to_numpy(dtype=float),
                      f"errors_by_topic: column {column}",
                      "error_rate is errors / n of the topic, not a share of all errors.")
