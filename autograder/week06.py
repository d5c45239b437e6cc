"""Hidden checks of week 6: robustness, saliency, de-identification, bias mitigation and clinical validation.

Each `check_<name>` takes the student's functions from one grade cell and raises AssertionError with what was
expected, what was received and the likely cause. Saliency is compared with `torch.autograd.grad` applied
example by example, the clinical metrics with `scikit-learn` (`recall_score`, `precision_score`,
`roc_auc_score`, `confusion_matrix`, `calibration_curve`) and the calibration fits with `statsmodels`.
Errors raised inside student code propagate unchanged.
"""

from __future__ import annotations

import copy
import functools
import math
import random
import warnings
from contextlib import contextmanager

import numpy as np
import torch

from course_lib import get_device, tolerance
from course_lib.clinical_notes import PHI_LABELS, generate_notes, join_notes

# A seed that the notebook never uses, so the de-identifier is measured on notes the student has not seen.
_HIDDEN_NOTES_SEED = 20260606
_MIN_DEID_RECALL = 0.95
_MIN_DEID_PRECISION = 0.90

# Text replacements (grade_id of a solution cell, text in its reference code, replacement) that `course demo`
# applies to build a submission with realistic mistakes. The checks of the flip rate, the de-identifier and
# the ROC AUC fail, and the other ten pass.
DEMO_MISTAKES = [
    (
        "prediction_flip_rate",
        "flipped = (variant_labels != clean_labels[:, None]).any(axis=1)  # (n,)",
        "flipped = variant_labels != clean_labels[:, None]  # (n, n_variants)",
    ),
    (
        "deidentify",
        'if label == "AGE" and int(text[start:end]) <= 89:',
        'if label == "AGE" and int(text[start:end]) < 89:',
    ),
    (
        "roc_auc",
        "return float((greater + 0.5 * ties) / (len(positive_scores) * len(negative_scores)))",
        "return float(greater / (len(positive_scores) * len(negative_scores)))",
    ),
]


# ---------------------------------------------------------------------------------------------------------
# Shared helpers


def _preserve_rng(check):
    """Wrap a check so that it leaves the global random states of the student's session unchanged."""

    @functools.wraps(check)
    def wrapper(*args, **kwargs):
        python_state, numpy_state = random.getstate(), np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):
                return check(*args, **kwargs)
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)

    return wrapper


@contextmanager
def _no_warnings(what: str):
    """Fail when student code warns: nbgrader scores any output on stderr as a failed cell."""
    with np.errstate(all="ignore"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    if caught:
        raise AssertionError(
            f"{what} emitted the warning {caught[0].category.__name__}: {caught[0].message}. A warning reaches "
            "stderr during grading; check the denominator before dividing instead of dividing by zero."
        )


def _describe(value, n_values: int = 6) -> str:
    """Return the type, shape and first values of `value` for a failure message."""
    if isinstance(value, torch.Tensor):
        flat = [round(x, 5) for x in value.detach().cpu().double().reshape(-1)[:n_values].tolist()]
        return f"tensor of shape {tuple(value.shape)}, dtype {value.dtype}, values {flat}"
    if isinstance(value, np.ndarray):
        flat = value.reshape(-1)[:n_values].tolist()
        return f"array of shape {value.shape}, dtype {value.dtype}, values {flat}"
    return f"{type(value).__name__} {value!r}"[:300]


def _same_float(received, expected, rtol: float = 1e-9, atol: float = 1e-12) -> bool:
    """Compare two floats, with nan equal to nan."""
    received, expected = float(received), float(expected)
    if math.isnan(expected) or math.isnan(received):
        return math.isnan(expected) and math.isnan(received)
    return math.isclose(received, expected, rel_tol=rtol, abs_tol=atol)


def _assert_float(value, what: str) -> None:
    assert isinstance(value, (float, np.floating)) and not isinstance(value, bool), (
        f"{what}: expected a float, received {_describe(value)}. Convert with float(...)."
    )


def _expect_value_error(call, what: str, reason: str) -> None:
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call()
    except ValueError:
        return
    raise AssertionError(f"{what} returned without error, expected a ValueError: {reason}.")


# ---------------------------------------------------------------------------------------------------------
# 1.1 add_typo


def _osa_distance(a: str, b: str) -> int:
    """Return the optimal string alignment distance: deletions, insertions, substitutions, adjacent swaps."""
    rows = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        rows[i][0] = i
    for j in range(len(b) + 1):
        rows[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            rows[i][j] = min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                rows[i][j] = min(rows[i][j], rows[i - 2][j - 2] + 1)
    return rows[len(a)][len(b)]


def _non_letters(text: str) -> str:
    return "".join(character for character in text if not character.isalpha())


def _edit_kind(text: str, typo: str) -> str:
    if len(typo) == len(text) - 1:
        return "deletion"
    if len(typo) == len(text) + 1:
        return "insertion"
    return "transposition" if sorted(typo) == sorted(text) else "substitution"


@_preserve_rng
def check_add_typo(add_typo) -> None:
    """Check that `add_typo(text, rng)` makes exactly one edit on letters, reproducibly, from `rng` alone."""
    texts = ["Patient reports sudden slurred speech, BP 132/84.", "aa bb", "x", "Seizure at 10:45"]
    kinds, outputs = set(), set()
    for text in texts:
        for seed in range(150):
            typo = add_typo(text, np.random.default_rng(seed))
            where = f"add_typo({text!r}, np.random.default_rng({seed}))"
            assert isinstance(typo, str), f"{where}: expected a str, received {_describe(typo)}"
            assert typo != text, f"{where} returned the text unchanged: a typo must change it (a substitution by the same letter, or a transposition of equal letters, changes nothing)"
            assert _non_letters(typo) == _non_letters(text), (
                f"{where} = {typo!r}: a non-letter character changed. Edit letters only, and insert or "
                "substitute lowercase letters a-z."
            )
            distance = _osa_distance(text, typo)
            assert distance == 1, (
                f"{where} = {typo!r}: expected exactly one edit (deletion, insertion, substitution or "
                f"transposition of adjacent letters), received {distance} edits"
            )
            inserted = set(typo) - set(text)
            assert all(character in "abcdefghijklmnopqrstuvwxyz" for character in inserted), (
                f"{where} = {typo!r} contains the new character(s) {sorted(inserted)}: inserted and substituted "
                "letters must be lowercase a-z"
            )
            kinds.add(_edit_kind(text, typo))
            if text == texts[0]:
                outputs.add(typo)

    missing = {"deletion", "insertion", "substitution", "transposition"} - kinds
    assert not missing, (
        f"over 600 calls with different seeds, add_typo never made a {', '.join(sorted(missing))}: "
        "choose the edit at random among the four kinds"
    )
    assert len(outputs) >= 50, (
        f"150 different seeds gave only {len(outputs)} different typos of the same text: choose the position "
        "and the letter with rng"
    )

    for text in ["Seizure at 10:45", "a"]:
        random.seed(1)
        np.random.seed(1)
        first = add_typo(text, np.random.default_rng(7))
        random.seed(2)
        np.random.seed(2)
        second = add_typo(text, np.random.default_rng(7))
        assert first == second, (
            f"add_typo({text!r}, np.random.default_rng(7)) returned {first!r} and then {second!r}: the result "
            "depends on the global random state. Draw every random choice from the rng argument, not from "
            "the random module or np.random."
        )

    for text in ["120/80 - 5%", "", "  "]:
        received = add_typo(text, np.random.default_rng(0))
        assert received == text, f"add_typo({text!r}, rng) = {received!r}: a text without letters is returned unchanged"


# ---------------------------------------------------------------------------------------------------------
# 1.2 prediction_flip_rate


def _length_mod_3(texts):
    if isinstance(texts, str):
        raise AssertionError(f"predict was called with the str {texts!r}: it takes a list of strings")
    return np.array([len(text) % 3 for text in texts])


def _append_random_x(text, rng):
    if not isinstance(rng, np.random.Generator):
        raise AssertionError(f"perturb was called with {_describe(rng)} as rng, expected a numpy.random.Generator")
    return text + "x" * int(rng.integers(0, 3))


def _reference_flip_rate(predict, texts, perturb, n_variants, seed):
    rng = np.random.default_rng(seed)
    clean = np.asarray(predict(texts))
    flipped = []
    for i, text in enumerate(texts):
        copies = [perturb(text, rng) for _ in range(n_variants)]  # all copies, so the generator advances fully
        flipped.append(any(label != clean[i] for label in predict(copies)))
    return float(np.mean(flipped))


@_preserve_rng
def check_prediction_flip_rate(prediction_flip_rate) -> None:
    """Check the flip rate against a reference that perturbs in the documented order from one generator."""
    texts = [f"note {'a' * (i % 7)}{i}" for i in range(40)]
    for n_variants, seed in [(1, 0), (2, 5), (3, 11)]:
        received = prediction_flip_rate(_length_mod_3, texts, _append_random_x, n_variants=n_variants, seed=seed)
        expected = _reference_flip_rate(_length_mod_3, texts, _append_random_x, n_variants, seed)
        where = f"prediction_flip_rate with n_variants={n_variants}, seed={seed} on 40 texts"
        _assert_float(received, where)
        assert 0 <= received <= 1, f"{where}: expected a fraction in [0, 1], received {received}. Divide by the number of texts."
        assert _same_float(received, expected), (
            f"{where}: expected {expected:.4f}, received {received:.4f}. A text counts as flipped when at least "
            "one of its copies changes the prediction; the rate is over texts, not over copies. Create one "
            "generator np.random.default_rng(seed) before the loop and perturb texts in order, n_variants "
            "copies each."
        )

    constant = prediction_flip_rate(_length_mod_3, texts, lambda text, rng: text, n_variants=4, seed=0)
    assert _same_float(constant, 0.0), f"a perturbation that returns the text unchanged gives flip rate 0, received {constant}"
    always = prediction_flip_rate(_length_mod_3, texts, lambda text, rng: text + "x", n_variants=2, seed=0)
    assert _same_float(always, 1.0), f"a perturbation that always changes the prediction gives flip rate 1, received {always}"

    _expect_value_error(lambda: prediction_flip_rate(_length_mod_3, [], _append_random_x), "prediction_flip_rate with no texts", "the rate of an empty list is undefined")
    _expect_value_error(
        lambda: prediction_flip_rate(_length_mod_3, texts, _append_random_x, n_variants=0),
        "prediction_flip_rate with n_variants=0",
        "at least one perturbed copy per text is needed",
    )


# ---------------------------------------------------------------------------------------------------------
# 1.3 saliency


def _devices() -> list[torch.device]:
    devices = [torch.device("cpu")]
    accelerator = get_device()
    if accelerator.type != "cpu":
        devices.append(accelerator)
    return devices


def _saliency_models():
    """Return (description, module, inputs, target) cases, built on the CPU in float64."""
    generator = torch.Generator().manual_seed(6)
    mlp = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()

    class MeanEmbeddingHead(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(4, 2)

        def forward(self, embeddings):  # (B, T, C) -> (B, 2)
            return self.head(torch.tanh(embeddings).mean(dim=1))

    text_model = MeanEmbeddingHead().double()
    x = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    embeddings = torch.randn(3, 7, 4, generator=generator, dtype=torch.float64)
    return [
        ("an MLP on (B, F) = (6, 5) with one target per example", mlp, x, torch.tensor([2, 0, 1, 1, 2, 0])),
        ("an MLP on (B, F) = (6, 5) with the int target 1", mlp, x, 1),
        ("a mean-of-embeddings model on (B, T, C) = (3, 7, 4)", text_model, embeddings, torch.tensor([1, 0, 1])),
    ]


def _reference_saliency(module, inputs, target):
    """Return the gradient of each example's target logit, computed example by example with autograd.grad."""
    targets = torch.as_tensor(target).expand(inputs.size(0)) if torch.as_tensor(target).ndim == 0 else target
    rows = []
    for b in range(inputs.size(0)):
        x_b = inputs[b : b + 1].detach().clone().requires_grad_(True)
        (gradient,) = torch.autograd.grad(module(x_b)[0, int(targets[b])], x_b)
        rows.append(gradient[0])
    return torch.stack(rows)


def _saliency_hint(received, module, inputs, target) -> str:
    """Name the likely mistake by comparing with the gradients of other quantities."""
    targets = torch.as_tensor(target).expand(inputs.size(0)) if torch.as_tensor(target).ndim == 0 else target
    x = inputs.detach().clone().requires_grad_(True)
    logits = module(x)
    candidates = {
        "the softmax probability instead of the logit": torch.softmax(logits, -1).gather(1, targets[:, None]).sum(),
        "the log-softmax (cross-entropy) instead of the logit": torch.log_softmax(logits, -1).gather(1, targets[:, None]).sum(),
        "the sum of all logits instead of the target logit": logits.sum(),
        "the predicted class (argmax) instead of target": logits.gather(1, logits.argmax(-1, keepdim=True)).sum(),
    }
    for reason, quantity in candidates.items():
        (gradient,) = torch.autograd.grad(quantity, x, retain_graph=True)
        for scale in (1.0, -1.0):
            if received.shape == gradient.shape and torch.allclose(received.double().cpu(), scale * gradient.cpu(), atol=1e-6):
                return f"It equals the gradient of {reason}."
    return "Differentiate logits[b, target[b]] with respect to inputs[b] with torch.autograd.grad."


@_preserve_rng
def check_saliency(gradient_saliency, gradient_x_input) -> None:
    """Compare both saliency maps with torch.autograd.grad, on the CPU and the course's accelerator."""
    for description, module_cpu, inputs_cpu, target_cpu in _saliency_models():
        expected_gradient = _reference_saliency(module_cpu, inputs_cpu, target_cpu)
        for device in _devices():
            dtype = torch.float64 if device.type != "mps" else torch.float32
            tol = tolerance(dtype, device)
            module = copy.deepcopy(module_cpu).to(dtype).to(device)
            inputs = inputs_cpu.to(dtype).to(device)
            target = target_cpu.to(device) if isinstance(target_cpu, torch.Tensor) else target_cpu
            where = f"for {description} ({dtype}, {device.type})"

            for name, fn, expected in [
                ("gradient_saliency", gradient_saliency, expected_gradient),
                ("gradient_x_input", gradient_x_input, expected_gradient * inputs_cpu),
            ]:
                received = fn(module, inputs, target)
                assert isinstance(received, torch.Tensor), f"{name} {where}: expected a tensor, received {_describe(received)}"
                assert received.shape == inputs.shape, (
                    f"{name} {where}: expected the shape of inputs {tuple(inputs.shape)}, received {_describe(received)}"
                )
                assert not received.requires_grad, f"{name} {where}: return a detached tensor (received one that requires grad)"
                assert not inputs.requires_grad, f"{name} {where} set requires_grad on the caller's inputs: work on inputs.detach()"
                for parameter in module.parameters():
                    assert parameter.grad is None, (
                        f"{name} {where} filled the .grad of a model parameter: use torch.autograd.grad instead "
                        "of .backward(), which accumulates gradients into the parameters"
                    )
                if not torch.allclose(received.detach().cpu().double(), expected.double(), **tol):
                    hint = _saliency_hint(received, module_cpu, inputs_cpu, target_cpu) if name == "gradient_saliency" else (
                        "gradient_x_input must be gradient_saliency(...) * inputs, without absolute values or sums."
                    )
                    raise AssertionError(
                        f"{name} {where}: expected {_describe(expected)}, received {_describe(received)}. {hint}"
                    )


# ---------------------------------------------------------------------------------------------------------
# 2.1 span_precision_recall


def _reference_span_scores(pred, gold, mode):
    pred = {(int(s), int(e), label) for s, e, label in pred}
    gold = {(int(s), int(e), label) for s, e, label in gold}
    if mode == "exact":
        hits_pred = hits_gold = len(pred & gold)
    else:
        hits_pred = sum(any(p[0] < g[1] and g[0] < p[1] for g in gold) for p in pred)
        hits_gold = sum(any(p[0] < g[1] and g[0] < p[1] for p in pred) for g in gold)
    return (hits_pred / len(pred) if pred else math.nan, hits_gold / len(gold) if gold else math.nan)


def _span_cases():
    """Return (description, pred, gold) cases; random ones come from a seeded generator."""
    cases = [
        ("the worked example", [(0, 5, "NAME"), (12, 20, "DATE"), (30, 33, "AGE")], [(0, 5, "NAME"), (10, 20, "DATE")]),
        ("same offsets but another label", [(0, 5, "CITY"), (10, 20, "DATE")], [(0, 5, "NAME"), (10, 20, "DATE")]),
        ("spans that touch but share no character", [(5, 9, "DATE")], [(0, 5, "NAME"), (9, 12, "AGE")]),
        ("one predicted span covering two gold spans", [(0, 20, "NAME")], [(0, 5, "NAME"), (6, 20, "NAME")]),
        ("two predicted spans inside one gold span", [(0, 3, "DATE"), (4, 8, "DATE"), (30, 35, "URL")], [(0, 10, "DATE")]),
        ("a duplicated predicted span", [(0, 5, "NAME"), (0, 5, "NAME"), (7, 9, "AGE")], [(0, 5, "NAME")]),
        ("spans given as lists", [[0, 5, "NAME"], [10, 14, "ZIP"]], [[0, 5, "NAME"], [10, 15, "ZIP"]]),
        ("no predicted spans", [], [(0, 5, "NAME")]),
        ("no gold spans", [(0, 5, "NAME")], []),
    ]
    rng = np.random.default_rng(61)
    labels = ["NAME", "DATE", "PHONE"]
    for index in range(4):
        def random_spans(n):
            starts = rng.integers(0, 200, n)
            return [(int(s), int(s + rng.integers(1, 15)), labels[int(rng.integers(3))]) for s in starts]

        gold = random_spans(25)
        pred = [span for span in gold if rng.random() < 0.6] + random_spans(15)
        cases.append((f"random spans {index}", pred, gold))
    return cases


def check_span_precision_recall(span_precision_recall) -> None:
    """Check exact and overlap span scores on hand-made and random cases, including empty inputs."""
    for description, pred, gold in _span_cases():
        for mode in ("exact", "overlap"):
            received = span_precision_recall(pred, gold, mode=mode)
            where = f"span_precision_recall(pred, gold, mode={mode!r}) on {description}, pred={pred[:4]}, gold={gold[:4]}"
            assert isinstance(received, (tuple, list)) and len(received) == 2, (
                f"{where}: expected a pair (precision, recall), received {_describe(received)}"
            )
            expected = _reference_span_scores(pred, gold, mode)
            for name, value, expected_value in zip(("precision", "recall"), received, expected):
                _assert_float(value, f"{where}: {name}")
                if not _same_float(value, expected_value):
                    if mode == "exact":
                        hint = "An exact match needs the same start, end and label; duplicates count once."
                    else:
                        hint = (
                            "In overlap mode two spans match when s_p < e_g and s_g < e_p (touching spans share no "
                            "character), labels are ignored, precision counts predicted spans that overlap any gold "
                            "span and recall counts gold spans overlapped by any predicted span."
                        )
                    if math.isnan(expected_value):
                        hint = "With a zero denominator the ratio is undefined: return float('nan'), not 0 or 1."
                    raise AssertionError(f"{where}: expected {name} {expected_value:.4f}, received {value}. {hint}")

    _expect_value_error(lambda: span_precision_recall([], [], mode="partial"), "span_precision_recall with mode='partial'", "only 'exact' and 'overlap' are defined")


# ---------------------------------------------------------------------------------------------------------
# 2.2 deidentify

# (text, expected spans): each case must be found exactly, labels included, and nothing else.
_DEID_CASES = [
    ("He is 89 years old.", []),
    ("She is 90 years old.", [(7, 9, "AGE")]),
    ("Mr. Okafor (age 89) presented today.", [(4, 10, "NAME")]),
    ("Ms. Szabo (age 97) presented today.", [(4, 9, "NAME"), (15, 17, "AGE")]),
    ("The patient is a patient aged 104 who presented.", [(30, 33, "AGE")]),
    ("Seen on 03/14/2023.", [(8, 18, "DATE")]),
    ("Seen on 3/4/2023.", [(8, 16, "DATE")]),
    ("Seen on 2023-03-14.", [(8, 18, "DATE")]),
    ("Seen on March 14, 2023.", [(8, 22, "DATE")]),
    ("Seen on 14 Mar 2023.", [(8, 19, "DATE")]),
    ("Seen on Sep 19 with a fall.", [(8, 14, "DATE")]),
    ("Prior admission in 2019 for pneumonia.", []),
    ("Call (617) 555-0123 today.", [(5, 19, "PHONE")]),
    ("Call 617-555-0123 today.", [(5, 17, "PHONE")]),
    ("Call 617.555.0123 today.", [(5, 17, "PHONE")]),
    ("Call +1 617 555 0123 today.", [(5, 20, "PHONE")]),
    ("Fax: 617-555-0199", [(5, 17, "FAX")]),
    ("E-mail: rosa.whitcombe39@example.org", [(8, 36, "EMAIL")]),
    ("SSN: 464-25-4867", [(5, 16, "SSN")]),
    ("MRN: 84806226", [(5, 13, "MRN")]),
    ("Checked remotely from IP 41.201.178.193.", [(25, 39, "IP")]),
    ("Patient portal: https://portal.example.org/patients/581790", [(16, 58, "URL")]),
    ("Address: 42 Quarry Road, Riverton, Ohio 43210", [(9, 23, "ADDRESS"), (25, 33, "CITY"), (40, 45, "ZIP")]),
    ("Attending: Dr. Nakamura", [(15, 23, "NAME")]),
    ("Emergency contact: Grace Haddad (daughter).", [(19, 31, "NAME")]),
    ("Metoprolol 25 mg twice daily. BP 132/84, HR 88. Hemoglobin 11.2 g/dL. Follow-up in 2 weeks.", []),
    ("Physical therapy 3/week. Oxygen 2 L/min, SpO2 94%. Lives in Ohio.", []),
]


def _per_label_recall(pred, gold) -> str:
    parts = []
    for label in PHI_LABELS:
        gold_label = [span for span in gold if span[2] == label]
        if gold_label:
            _, recall = _reference_span_scores(pred, gold_label, "overlap")
            parts.append(f"{label} {recall:.2f}")
    return ", ".join(parts)


def check_deidentify(deidentify) -> None:
    """Check single cases exactly, then overlap recall and precision on fresh generated notes."""
    for text, expected in _DEID_CASES:
        received = deidentify(text)
        assert isinstance(received, list), f"deidentify({text!r}): expected a list of (start, end, label) tuples, received {_describe(received)}"
        spans = [tuple(span) for span in received]
        found = [(text[s:e], label) for s, e, label in spans]
        expected_value = [(text[s:e], label) for s, e, label in expected]
        if sorted(spans) != sorted(expected):
            missing = [item for item in expected_value if item not in found]
            extra = [item for item in found if item not in expected_value]
            detail = []
            if missing:
                detail.append(f"missed {missing}")
            if extra:
                detail.append(f"also returned {extra}, which is not PHI or has the wrong extent or label")
            hint = ""
            if "year" in text or "age" in text:
                hint = " Ages over 89 are PHI; 89 and below are not, and a year alone is not a date."
            raise AssertionError(
                f"deidentify({text!r}): expected {expected_value} as spans {expected}, received spans {spans}: "
                f"{'; '.join(detail)}.{hint}"
            )

    corpus = join_notes(generate_notes(60, seed=_HIDDEN_NOTES_SEED))
    received = [tuple(span) for span in deidentify(corpus.text)]
    for span in received:
        assert len(span) == 3 and span[2] in PHI_LABELS, f"deidentify returned the span {span}: labels must come from PHI_LABELS"
    assert received == sorted(received), "deidentify must return the spans sorted by start"
    for previous, current in zip(received, received[1:]):
        assert current[0] >= previous[1], f"deidentify returned the overlapping spans {previous} and {current}: keep one of them"

    precision, recall = _reference_span_scores(received, corpus.spans, "overlap")
    missed = [(corpus.text[s:e], label) for s, e, label in corpus.spans if not any(p[0] < e and s < p[1] for p in received)]
    false = [(corpus.text[s:e], label) for s, e, label in received if not any(s < g[1] and g[0] < e for g in corpus.spans)]
    assert recall >= _MIN_DEID_RECALL, (
        f"overlap recall {recall:.3f} on 60 fresh notes, expected at least {_MIN_DEID_RECALL}. Recall per label: "
        f"{_per_label_recall(received, corpus.spans)}. Missed, for example: {missed[:6]}"
    )
    assert precision >= _MIN_DEID_PRECISION, (
        f"overlap precision {precision:.3f} on 60 fresh notes, expected at least {_MIN_DEID_PRECISION}. "
        f"Spans that are not PHI, for example: {false[:6]}"
    )


# ---------------------------------------------------------------------------------------------------------
# 2.3 redact


def check_redact(redact) -> None:
    """Check redaction with unsorted, adjacent and repeated spans, and the errors for bad spans."""
    cases = [
        ("Call 555-0123", [(5, 13, "PHONE")], "Call [PHONE]"),
        ("Maria, 03/14/2023", [(7, 17, "DATE"), (0, 5, "NAME")], "[NAME], [DATE]"),
        ("Room 12, bed 12", [(5, 7, "ADDRESS")], "Room [ADDRESS], bed 12"),
        ("AnnaSmith", [(0, 4, "NAME"), (4, 9, "NAME")], "[NAME][NAME]"),
        ("no PHI here", [], "no PHI here"),
        ("Dr. Chen saw Chen", [[13, 17, "NAME"], [4, 8, "NAME"]], "Dr. [NAME] saw [NAME]"),
    ]
    for text, spans, expected in cases:
        received = redact(text, spans)
        assert received == expected, (
            f"redact({text!r}, {spans}): expected {expected!r}, received {received!r}. Replace the characters "
            "text[start:end] of each span, in any input order; offsets refer to the original text, so work from "
            "the last span to the first or build the result from left to right, and do not use str.replace."
        )
    _expect_value_error(lambda: redact("abcdef", [(0, 3, "NAME"), (2, 5, "DATE")]), "redact with overlapping spans", "two spans cannot both be replaced")
    _expect_value_error(lambda: redact("abcdef", [(4, 9, "NAME")]), "redact with a span ending after the text", "the span lies outside the text")
    _expect_value_error(lambda: redact("abcdef", [(-1, 2, "NAME")]), "redact with a negative start", "the span lies outside the text")


# ---------------------------------------------------------------------------------------------------------
# 3.1 reweighing_weights


def _reference_weights(group, y):
    group, y = np.asarray(group), np.asarray(y)
    n = len(y)
    weights = np.empty(n)
    for i in range(n):
        n_group = np.sum(group == group[i])
        n_label = np.sum(y == y[i])
        n_cell = np.sum((group == group[i]) & (y == y[i]))
        weights[i] = n_group * n_label / (n * n_cell)
    return weights


def check_reweighing_weights(reweighing_weights) -> None:
    """Check the Kamiran-Calders weights and that they make group and label independent."""
    rng = np.random.default_rng(63)
    group = rng.choice(np.array(["A", "B", "C"]), 300, p=[0.5, 0.3, 0.2])
    y_binary = (rng.random(300) < np.where(group == "A", 0.6, 0.25)).astype(int)
    y_three = rng.integers(0, 3, 300)
    cases = [
        ("the worked example", ["A"] * 6 + ["B"] * 4, [1, 1, 1, 1, 0, 0, 1, 0, 0, 0]),
        ("three string groups, binary labels", group, y_binary),
        ("integer groups, three classes", (group == "A").astype(int), y_three),
    ]
    for description, g, y in cases:
        received = reweighing_weights(g, y)
        expected = _reference_weights(g, y)
        where = f"reweighing_weights on {description}"
        array = np.asarray(received)
        assert array.shape == expected.shape, f"{where}: expected one weight per example, shape {expected.shape}, received {_describe(received)}"
        assert np.issubdtype(array.dtype, np.floating), f"{where}: expected float weights, received {_describe(received)}"
        if not np.allclose(array, expected, rtol=1e-9, atol=1e-12):
            if np.allclose(array * expected, 1.0, rtol=1e-9):
                hint = "They are the inverse: w = P(g) P(y) / P(g, y), not P(g, y) / (P(g) P(y))."
            elif np.allclose(array, expected * len(expected), rtol=1e-9) or np.allclose(array, expected / len(expected), rtol=1e-9):
                hint = "They are off by a factor n: divide counts by n to get probabilities (the weights have mean 1)."
            else:
                hint = "Use frequencies over the whole data: P(g) = n_g / n, P(y) = n_y / n, P(g, y) = n_gy / n."
            raise AssertionError(f"{where}: expected {_describe(expected)}, received {_describe(array)}. {hint}")
    _expect_value_error(lambda: reweighing_weights([0, 1, 1], [1, 0]), "reweighing_weights with 3 groups and 2 labels", "the lengths differ")
    _expect_value_error(lambda: reweighing_weights([], []), "reweighing_weights with empty inputs", "no frequencies can be estimated")


# ---------------------------------------------------------------------------------------------------------
# 3.2 fairness_gaps


def check_fairness_gaps(fairness_gaps) -> None:
    """Check per-group selection rates and TPRs (TPR from sklearn's recall_score) and the two differences."""
    from sklearn.metrics import recall_score

    rng = np.random.default_rng(64)
    group = rng.choice(np.array(["F", "M", "X"]), 400)
    y_true = rng.integers(0, 2, 400)
    y_pred = (rng.random(400) < np.where(group == "F", 0.3, 0.6)).astype(int)
    cases = [
        ("string groups F, M, X", y_true, y_pred, group),
        ("integer groups 0 and 1", y_true, y_pred, (group == "F").astype(int)),
    ]
    for description, yt, yp, g in cases:
        received = fairness_gaps(yt, yp, g)
        where = f"fairness_gaps on {description}"
        assert isinstance(received, dict), f"{where}: expected a dict, received {_describe(received)}"
        expected_selection = {value: float(np.mean(yp[g == value])) for value in np.unique(g)}
        expected_tpr = {value: float(recall_score(yt[g == value], yp[g == value])) for value in np.unique(g)}
        for key, expected in (("selection_rate", expected_selection), ("tpr", expected_tpr)):
            assert key in received, f"{where}: the key {key!r} is missing, received the keys {sorted(received)}"
            for value, expected_value in expected.items():
                assert value in received[key], f"{where}: {key} has no entry for the group {value!r}, received {received[key]}"
                got = received[key][value]
                assert _same_float(got, expected_value), (
                    f"{where}: {key} of group {value!r}: expected {expected_value:.4f}, received {got}. "
                    + ("The selection rate is the fraction of the group predicted 1." if key == "selection_rate" else
                       "The TPR (recall) is the fraction of the group's examples with y = 1 that are predicted 1.")
                )
        for key, rates in (("demographic_parity_difference", expected_selection), ("equal_opportunity_difference", expected_tpr)):
            expected_value = max(rates.values()) - min(rates.values())
            assert key in received, f"{where}: the key {key!r} is missing, received the keys {sorted(received)}"
            _assert_float(received[key], f"{where}: {key}")
            assert _same_float(received[key], expected_value), (
                f"{where}: {key}: expected {expected_value:.4f}, received {received[key]}. It is the largest minus the "
                "smallest rate over the groups, a non-negative number."
            )
    no_positive_group = np.array([0, 0, 0, 1, 1, 1])
    _expect_value_error(
        lambda: fairness_gaps([1, 0, 1, 0, 0, 0], [1, 1, 0, 0, 1, 0], no_positive_group),
        "fairness_gaps where group 1 has no example with y = 1",
        "the group's TPR is undefined",
    )


# ---------------------------------------------------------------------------------------------------------
# 3.3 group_thresholds


def _brute_force_threshold(scores, y_true, target_tpr):
    positives = scores[y_true == 1]
    return max(t for t in np.unique(positives) if np.mean(positives >= t) >= target_tpr)


def check_group_thresholds(group_thresholds) -> None:
    """Check each group's threshold against a search over all candidate thresholds."""
    rng = np.random.default_rng(65)
    group = rng.choice(np.array(["A", "B"]), 300)
    y_true = (rng.random(300) < 0.4).astype(int)
    scores = np.clip(rng.normal(0.35 + 0.3 * y_true - 0.1 * (group == "B"), 0.2), 0, 1)
    tied_scores = np.round(scores, 1)  # many ties
    cases = [
        ("continuous scores, target 0.8", scores, 0.8),
        ("continuous scores, target 0.5", scores, 0.5),
        ("continuous scores, target 1.0", scores, 1.0),
        ("scores rounded to 0.1 (ties), target 0.7", tied_scores, 0.7),
        ("scores rounded to 0.1 (ties), target 0.05", tied_scores, 0.05),
    ]
    for description, s, target in cases:
        received = group_thresholds(s, y_true, group, target)
        where = f"group_thresholds on {description}"
        assert isinstance(received, dict), f"{where}: expected a dict from group to threshold, received {_describe(received)}"
        for value in np.unique(group):
            in_group = group == value
            expected_value = _brute_force_threshold(s[in_group], y_true[in_group], target)
            assert value in received, f"{where}: no threshold for group {value!r}, received {received}"
            got = received[value]
            if not _same_float(got, expected_value):
                positives = s[in_group & (y_true == 1)]
                achieved = float(np.mean(positives >= got))
                raise AssertionError(
                    f"{where}, group {value!r}: expected the threshold {expected_value:.4f}, received {got} (it gives a TPR "
                    f"of {achieved:.4f} for the target {target}). Take the k-th largest score among the group's "
                    "positives, with k the smallest integer such that k / P >= target_tpr; quantiles over all "
                    "scores or np.quantile interpolation give other values."
                )
    _expect_value_error(lambda: group_thresholds(scores, y_true, group, 0.0), "group_thresholds with target_tpr=0", "the target must lie in (0, 1]")
    _expect_value_error(lambda: group_thresholds(scores, y_true, group, 1.5), "group_thresholds with target_tpr=1.5", "the target must lie in (0, 1]")
    _expect_value_error(
        lambda: group_thresholds([0.2, 0.4, 0.6], [1, 0, 0], ["A", "B", "B"], 0.5),
        "group_thresholds where group B has no positive example",
        "no threshold reaches any TPR",
    )


# ---------------------------------------------------------------------------------------------------------
# 4.1 diagnostic_metrics


def _sklearn_metrics(y_true, y_pred) -> dict:
    from sklearn.metrics import precision_score, recall_score

    options = {"zero_division": np.nan}
    return {
        "sensitivity": recall_score(y_true, y_pred, pos_label=1, labels=[0, 1], **options),
        "specificity": recall_score(y_true, y_pred, pos_label=0, labels=[0, 1], **options),
        "ppv": precision_score(y_true, y_pred, pos_label=1, labels=[0, 1], **options),
        "npv": precision_score(y_true, y_pred, pos_label=0, labels=[0, 1], **options),
    }


def check_diagnostic_metrics(diagnostic_metrics) -> None:
    """Compare with sklearn's recall_score and precision_score (zero_division=nan), degenerate cases included."""
    rng = np.random.default_rng(66)
    y_true = rng.integers(0, 2, 200)
    y_pred = np.where(rng.random(200) < 0.8, y_true, 1 - y_true)
    cases = [
        ("the worked example", np.array([1, 1, 0, 0, 0]), np.array([1, 0, 1, 0, 0])),
        ("200 random labels, 80 % correct", y_true, y_pred),
        ("no positives in y_true", np.array([0, 0, 0, 0]), np.array([0, 1, 0, 0])),
        ("no positive predictions", np.array([1, 0, 1, 0]), np.array([0, 0, 0, 0])),
        ("every prediction positive", np.array([1, 0, 1, 0]), np.array([1, 1, 1, 1])),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's own zero-division notices, not the student's
        references = [_sklearn_metrics(yt, yp) for _, yt, yp in cases]
    for (description, yt, yp), expected in zip(cases, references):
        where = f"diagnostic_metrics on {description}, y_true={yt.tolist()[:8]}, y_pred={yp.tolist()[:8]}"
        with _no_warnings(where):
            received = diagnostic_metrics(yt, yp)
        assert isinstance(received, dict), f"{where}: expected a dict, received {_describe(received)}"
        for name, expected_value in expected.items():
            assert name in received, f"{where}: the key {name!r} is missing, received the keys {sorted(received)}"
            _assert_float(received[name], f"{where}: {name}")
            if not _same_float(received[name], expected_value):
                hint = {
                    "sensitivity": "TP / (TP + FN), the recall of class 1",
                    "specificity": "TN / (TN + FP), the recall of class 0",
                    "ppv": "TP / (TP + FP), the precision of class 1",
                    "npv": "TN / (TN + FN), the precision of class 0",
                }[name]
                if math.isnan(expected_value):
                    hint += "; its denominator is 0 here, so return float('nan')"
                raise AssertionError(f"{where}: {name} expected {expected_value:.4f}, received {received[name]}: {hint}")
    _expect_value_error(lambda: diagnostic_metrics([1, 0, 1], [1, 0]), "diagnostic_metrics with lengths 3 and 2", "the lengths differ")
    _expect_value_error(lambda: diagnostic_metrics([], []), "diagnostic_metrics with empty inputs", "no metric is defined")
    _expect_value_error(lambda: diagnostic_metrics([1, 2, 0], [1, 1, 0]), "diagnostic_metrics with the label 2", "labels must be 0 or 1")


# ---------------------------------------------------------------------------------------------------------
# 4.2 roc_auc


def check_roc_auc(roc_auc) -> None:
    """Compare with sklearn.metrics.roc_auc_score, with ties, and check the one-class error."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(67)
    y_true = rng.integers(0, 2, 1500)
    scores = rng.normal(0.8 * y_true, 1.0)
    cases = [
        ("the public example", np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])),
        ("1500 continuous scores", y_true, scores),
        ("1500 scores rounded to 1 decimal (many ties)", y_true, np.round(scores, 1)),
        ("scores that rank negatives first", y_true, -scores),
        ("integer scores 0, 1, 2", y_true, np.clip(np.round(scores), 0, 2).astype(int)),
        ("boolean labels", y_true.astype(bool), scores),
    ]
    for description, yt, s in cases:
        received = roc_auc(yt, s)
        expected = roc_auc_score(yt, s)
        where = f"roc_auc on {description}"
        _assert_float(received, where)
        if not _same_float(received, expected, rtol=1e-9, atol=1e-12):
            hint = "Count pairs (positive, negative) where the positive scores higher, plus one half per tie."
            if _same_float(received, 1 - expected):
                hint = "It equals 1 - AUC: positives must score higher than negatives, not the reverse."
            raise AssertionError(f"{where}: expected {expected:.6f} (sklearn roc_auc_score), received {received:.6f}. {hint}")
    _expect_value_error(lambda: roc_auc([1, 1, 1], [0.2, 0.5, 0.9]), "roc_auc with positives only", "the AUC needs both classes, as in roc_auc_score")
    _expect_value_error(lambda: roc_auc([0, 0], [0.2, 0.5]), "roc_auc with negatives only", "the AUC needs both classes, as in roc_auc_score")


# ---------------------------------------------------------------------------------------------------------
# 4.3 calibration


def _statsmodels_calibration(y_true, probs):
    import statsmodels.api as sm

    probs = np.clip(probs, 1e-12, 1 - 1e-12)
    logit_p = np.log(probs / (1 - probs))
    binomial = sm.families.Binomial()
    intercept = sm.GLM(y_true, np.ones((len(y_true), 1)), family=binomial, offset=logit_p).fit().params[0]
    slope = sm.GLM(y_true, sm.add_constant(logit_p), family=binomial).fit().params[1]
    return float(intercept), float(slope)


def check_calibration(reliability_curve, calibration_intercept_slope) -> None:
    """Compare with sklearn's calibration_curve (uniform bins) and statsmodels logistic fits."""
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(68)
    probs = rng.uniform(0, 1, 1000)
    y_true = (rng.random(1000) < probs).astype(int)
    edge_probs = np.array([0.0, 0.25, 0.25, 0.5, 0.6, 0.75, 1.0, 1.0, 0.1, 0.9])
    edge_y = np.array([0, 0, 1, 1, 1, 0, 1, 1, 0, 1])
    cases = [
        ("1000 random probabilities, 10 bins", y_true, probs, 10),
        ("1000 random probabilities, 7 bins", y_true, probs, 7),
        ("probabilities on the bin edges 0, 0.25, 0.5, 0.75 and 1, 4 bins", edge_y, edge_probs, 4),
        ("probabilities below 0.3 only, 10 bins (empty bins)", y_true[:50], probs[:50] * 0.3, 10),
    ]
    for description, yt, p, n_bins in cases:
        received = reliability_curve(yt, p, n_bins=n_bins)
        expected_true, expected_pred = calibration_curve(yt, p, n_bins=n_bins)
        where = f"reliability_curve on {description}"
        assert isinstance(received, (tuple, list)) and len(received) == 2, f"{where}: expected (prob_true, prob_pred), received {_describe(received)}"
        for name, got, expected_value in zip(("prob_true", "prob_pred"), received, (expected_true, expected_pred)):
            got = np.asarray(got, dtype=np.float64)
            if got.shape != expected_value.shape or not np.allclose(got, expected_value, rtol=1e-9, atol=1e-12):
                raise AssertionError(
                    f"{where}: {name} expected {_describe(expected_value, 10)} (sklearn calibration_curve), received "
                    f"{_describe(got, 10)}. Keep non-empty bins only; bin k holds (k/B, (k+1)/B] and bin 0 also holds 0, "
                    "so a probability of 1 falls in the last bin: np.searchsorted(edges[1:-1], probs)."
                )

    miscalibrated = 1 / (1 + np.exp(-2.0 * np.log(probs / (1 - probs)) - 0.4))  # too extreme and shifted
    fit_cases = [
        ("well-calibrated probabilities", y_true, probs),
        ("probabilities that are too extreme and too high", y_true, miscalibrated),
        ("probabilities including exact 0 and 1", edge_y, edge_probs),
    ]
    for description, yt, p in fit_cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # statsmodels warns about perfect separation on the tiny edge case
            expected = _statsmodels_calibration(yt, p)
        where = f"calibration_intercept_slope on {description}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            received = calibration_intercept_slope(yt, p)
        assert isinstance(received, (tuple, list)) and len(received) == 2, f"{where}: expected (intercept, slope), received {_describe(received)}"
        for name, got, expected_value in zip(("intercept", "slope"), received, expected):
            _assert_float(got, f"{where}: {name}")
            # 1e-3 admits another solver (sklearn LogisticRegression without penalty stops near 1e-4); the
            # mistakes caught here (no offset, probabilities instead of logits) differ by more than 0.05.
            if not math.isclose(got, expected_value, abs_tol=1e-3):
                hint = (
                    "The intercept is the calibration-in-the-large: fit only an intercept with logit(p) as an offset."
                    if name == "intercept"
                    else "The slope is the coefficient of logit(p), not of p, in a regression with an intercept."
                )
                raise AssertionError(f"{where}: {name} expected {expected_value:.4f} (statsmodels GLM), received {got:.4f}. {hint}")


# ---------------------------------------------------------------------------------------------------------
# 4.4 net_benefit


def check_net_benefit(net_benefit) -> None:
    """Compare with the net benefit computed from sklearn's confusion_matrix, and check invalid thresholds."""
    from sklearn.metrics import confusion_matrix

    rng = np.random.default_rng(69)
    y_true = rng.integers(0, 2, 500)
    probs = np.round(np.clip(rng.normal(0.3 + 0.3 * y_true, 0.2), 0, 1), 2)  # rounded, so some equal pt
    cases = [(y_true, probs, pt) for pt in (0.05, 0.2, 0.3, 0.5, 0.8)]
    cases.append((y_true, np.ones(500), 0.2))  # treat all
    for yt, p, pt in cases:
        treated = (p >= pt).astype(int)
        tn, fp, fn, tp = confusion_matrix(yt, treated, labels=[0, 1]).ravel()
        n = len(yt)
        expected = tp / n - fp / n * pt / (1 - pt)
        received = net_benefit(yt, p, pt)
        where = f"net_benefit at pt = {pt}" + (" with every probability 1 (treat all)" if p is not probs else "")
        _assert_float(received, where)
        if not _same_float(received, expected):
            hint = "NB = TP/n - FP/n * pt / (1 - pt), treating when probs >= pt (not >)."
            if _same_float(received, tp / n - fp / n * (1 - pt) / pt):
                hint = "The odds are inverted: the weight of a false positive is pt / (1 - pt)."
            raise AssertionError(f"{where}: expected {expected:.6f}, received {received:.6f}. {hint}")
    _expect_value_error(lambda: net_benefit(y_true, probs, 0.0), "net_benefit at pt = 0", "pt / (1 - pt) needs 0 < pt < 1")
    _expect_value_error(lambda: net_benefit(y_true, probs, 1.0), "net_benefit at pt = 1", "pt / (1 - pt) is infinite at 1")
