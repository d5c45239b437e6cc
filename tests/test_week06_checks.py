"""Week 6 hidden checks and data module: the reference passes every check, realistic wrong implementations fail."""

from __future__ import annotations

import math
import random
import re
import warnings

import numpy as np
import pytest
import torch

from autograder import week06
from course_lib.demo import mistakes_module
from course_lib import clinical_notes
from course_lib.notebooks import grade_id, is_solution_cell, read_notebook
from course_lib.paths import REPO_ROOT
from course_lib.solutions import load_reference

REF = load_reference("week06")
SOURCE_NOTEBOOK = REPO_ROOT / "source" / "week06" / "week06.ipynb"


# Each check with the arguments its grade cell passes, taken from a module built like the reference.
def check_calls(module):
    return {
        "add_typo": lambda: week06.check_add_typo(module.add_typo),
        "prediction_flip_rate": lambda: week06.check_prediction_flip_rate(module.prediction_flip_rate),
        "saliency": lambda: week06.check_saliency(module.gradient_saliency, module.gradient_x_input),
        "span_precision_recall": lambda: week06.check_span_precision_recall(module.span_precision_recall),
        "deidentify": lambda: week06.check_deidentify(module.deidentify),
        "redact": lambda: week06.check_redact(module.redact),
        "reweighing_weights": lambda: week06.check_reweighing_weights(module.reweighing_weights),
        "fairness_gaps": lambda: week06.check_fairness_gaps(module.fairness_gaps),
        "group_thresholds": lambda: week06.check_group_thresholds(module.group_thresholds),
        "diagnostic_metrics": lambda: week06.check_diagnostic_metrics(module.diagnostic_metrics),
        "roc_auc": lambda: week06.check_roc_auc(module.roc_auc),
        "calibration": lambda: week06.check_calibration(module.reliability_curve, module.calibration_intercept_slope),
        "net_benefit": lambda: week06.check_net_benefit(module.net_benefit),
    }


@pytest.mark.parametrize("name", list(check_calls(REF)))
def test_reference_passes_check(name):
    check_calls(REF)[name]()


def test_reference_checks_silent(capfd):
    # nbgrader scores a grade cell 0 when it writes to stderr, so a warning would cost a correct submission its points.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for call in check_calls(REF).values():
            call()
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out == ""


def test_checks_keep_global_rng_state():
    python_state, numpy_state, torch_state = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    week06.check_add_typo(REF.add_typo)
    week06.check_saliency(REF.gradient_saliency, REF.gradient_x_input)
    assert random.getstate() == python_state
    assert np.array_equal(np.random.get_state()[1], numpy_state[1])
    assert torch.equal(torch.random.get_rng_state(), torch_state)


def test_every_check_has_a_grade_cell():
    notebook = read_notebook(SOURCE_NOTEBOOK)
    grade_sources = "\n".join(cell.source for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get("grade"))
    for name in (name for name in dir(week06) if name.startswith("check_")):
        assert f"{name}(" in grade_sources, f"{name} is not called by any grade cell"


def test_grade_cell_points():
    notebook = read_notebook(SOURCE_NOTEBOOK)
    points = [cell.metadata["nbgrader"]["points"] for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get("grade")]
    assert all(1 <= value <= 4 for value in points)
    assert sum(points) == 25


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
# course_lib.clinical_notes


def test_notes_spans_match_labels_and_order():
    for note in clinical_notes.generate_notes(50, seed=3):
        starts = [start for start, _, _ in note.spans]
        assert starts == sorted(starts)
        for start, end, label in note.spans:
            assert label in clinical_notes.PHI_LABELS
            assert 0 <= start < end <= len(note.text)
            assert note.text[start:end].strip() == note.text[start:end]


def test_notes_ages_over_89_only():
    ages = []
    for note in clinical_notes.generate_notes(200, seed=4):
        ages += [int(note.text[s:e]) for s, e, label in note.spans if label == "AGE"]
    assert ages
    assert min(ages) >= 90


def test_notes_age_89_not_labelled():
    found_89 = False
    for note in clinical_notes.generate_notes(200, seed=5):
        narrative_start = note.text.rindex("presented") - 40
        if re.search(r"\b89\b", note.text[narrative_start:]):
            found_89 = True
            assert all(note.text[s:e] != "89" for s, e, _ in note.spans)
    assert found_89


def test_notes_seeded_and_varied():
    first = clinical_notes.generate_notes(5, seed=9)
    assert first == clinical_notes.generate_notes(5, seed=9)
    assert first != clinical_notes.generate_notes(5, seed=10)
    assert len({note.text for note in first}) == 5


def test_notes_cover_every_label():
    labels = {label for note in clinical_notes.generate_notes(100, seed=0) for _, _, label in note.spans}
    assert labels == set(clinical_notes.PHI_LABELS)


def test_notes_negative_count_raises():
    with pytest.raises(ValueError):
        clinical_notes.generate_notes(-1)


def test_join_notes_shifts_spans():
    notes = clinical_notes.generate_notes(3, seed=1)
    joined = clinical_notes.join_notes(notes)
    assert len(joined.spans) == sum(len(note.spans) for note in notes)
    expected = [note.text[s:e] for note in notes for s, e, _ in note.spans]
    assert [joined.text[s:e] for s, e, _ in joined.spans] == expected


def test_triage_sentences_balanced_and_seeded():
    texts, labels = clinical_notes.triage_sentences(100, seed=2)
    assert len(texts) == 100
    assert labels.sum() == 50
    assert clinical_notes.triage_sentences(100, seed=2)[0] == texts


def test_tokenize_lowercase_words():
    assert clinical_notes.tokenize("Sudden slurred-speech, 2x!") == ["sudden", "slurred", "speech", "x"]


def test_synthetic_cohort_shapes_and_gap():
    cohort = clinical_notes.synthetic_cohort(3000, seed=0)
    assert cohort["X"].shape == (3000, 3)
    assert set(np.unique(cohort["group"])) == {0, 1}
    assert set(np.unique(cohort["y"])) == {0, 1}
    rate_0 = cohort["y"][cohort["group"] == 0].mean()
    rate_1 = cohort["y"][cohort["group"] == 1].mean()
    assert rate_0 - rate_1 > 0.1


# ---------------------------------------------------------------------------------------------------------
# 1.1 add_typo


def typo_global_random(text, rng):
    positions = [i for i, c in enumerate(text) if c.isalpha()]
    if not positions:
        return text
    i = random.choice(positions)
    return text[:i] + text[i + 1 :]


def typo_may_substitute_same(text, rng):
    positions = [i for i, c in enumerate(text) if c.isalpha()]
    if not positions:
        return text
    i = positions[rng.integers(len(positions))]
    return text[:i] + "abcdefghijklmnopqrstuvwxyz"[rng.integers(26)] + text[i + 1 :]


def typo_any_character(text, rng):
    if not text:
        return text
    i = int(rng.integers(len(text)))
    return text[:i] + text[i + 1 :]


def typo_deletion_only(text, rng):
    positions = [i for i, c in enumerate(text) if c.isalpha()]
    if not positions:
        return text
    i = positions[rng.integers(len(positions))]
    return text[:i] + text[i + 1 :]


def typo_swap_with_any_neighbour(text, rng):
    positions = [i for i, c in enumerate(text) if c.isalpha()]
    if not positions:
        return text
    i = positions[rng.integers(len(positions))]
    edit = rng.integers(4)
    if edit == 0:
        return text[:i] + text[i + 1 :]
    if edit == 1:
        return text[: i + 1] + "q" + text[i + 1 :]
    if edit == 2:
        return text[:i] + ("z" if text[i] != "z" else "y") + text[i + 1 :]
    return text[:i] + text[i + 1 : i + 2] + text[i] + text[i + 2 :]


def typo_uppercase_insert(text, rng):
    positions = [i for i, c in enumerate(text) if c.isalpha()]
    if not positions:
        return text
    i = positions[rng.integers(len(positions))]
    letter = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[rng.integers(26)]
    return REF.add_typo(text, rng) if rng.random() < 0.5 else text[: i + 1] + letter + text[i + 1 :]


WRONG_TYPO = [
    typo_global_random,
    typo_may_substitute_same,
    typo_any_character,
    typo_deletion_only,
    typo_swap_with_any_neighbour,
    typo_uppercase_insert,
]


@pytest.mark.parametrize("fn", WRONG_TYPO, ids=lambda fn: fn.__name__)
def test_check_add_typo_rejects(fn):
    with pytest.raises(AssertionError):
        week06.check_add_typo(fn)


# ---------------------------------------------------------------------------------------------------------
# 1.2 prediction_flip_rate


def flip_rate_over_copies(predict, texts, perturb, n_variants=5, seed=0):
    if not texts or n_variants < 1:
        raise ValueError("empty")
    rng = np.random.default_rng(seed)
    clean = np.asarray(predict(texts))
    changed = [predict([perturb(t, rng)])[0] != clean[i] for i, t in enumerate(texts) for _ in range(n_variants)]
    return float(np.mean(changed))


def flip_rate_seed_per_text(predict, texts, perturb, n_variants=5, seed=0):
    if not texts or n_variants < 1:
        raise ValueError("empty")
    clean = np.asarray(predict(texts))
    flipped = []
    for i, text in enumerate(texts):
        rng = np.random.default_rng(seed)
        flipped.append(any(np.asarray(predict([perturb(text, rng) for _ in range(n_variants)])) != clean[i]))
    return float(np.mean(flipped))


def flip_rate_all_copies(predict, texts, perturb, n_variants=5, seed=0):
    if not texts or n_variants < 1:
        raise ValueError("empty")
    rng = np.random.default_rng(seed)
    clean = np.asarray(predict(texts))
    flipped = [all(np.asarray(predict([perturb(t, rng) for _ in range(n_variants)])) != clean[i]) for i, t in enumerate(texts)]
    return float(np.mean(flipped))


def flip_rate_count(predict, texts, perturb, n_variants=5, seed=0):
    if not texts or n_variants < 1:
        raise ValueError("empty")
    rng = np.random.default_rng(seed)
    clean = np.asarray(predict(texts))
    return float(sum(any(np.asarray(predict([perturb(t, rng) for _ in range(n_variants)])) != clean[i]) for i, t in enumerate(texts)))


def flip_rate_no_validation(predict, texts, perturb, n_variants=5, seed=0):
    if len(texts) == 0:
        return 0.0
    return REF.prediction_flip_rate(predict, texts, perturb, max(n_variants, 1), seed)


def flip_rate_variant_major(predict, texts, perturb, n_variants=5, seed=0):
    if not texts or n_variants < 1:
        raise ValueError("empty")
    rng = np.random.default_rng(seed)
    clean = np.asarray(predict(texts))
    rounds = np.array([predict([perturb(t, rng) for t in texts]) for _ in range(n_variants)])  # (m, n)
    return float(np.mean((rounds != clean[None, :]).any(axis=0)))


WRONG_FLIP_RATE = [
    flip_rate_over_copies,
    flip_rate_seed_per_text,
    flip_rate_all_copies,
    flip_rate_count,
    flip_rate_no_validation,
    flip_rate_variant_major,
]


@pytest.mark.parametrize("fn", WRONG_FLIP_RATE, ids=lambda fn: fn.__name__)
def test_check_flip_rate_rejects(fn):
    with pytest.raises(AssertionError):
        week06.check_prediction_flip_rate(fn)


# ---------------------------------------------------------------------------------------------------------
# 1.3 saliency


def _targets(logits, target):
    target = torch.as_tensor(target, device=logits.device)
    return target.expand(logits.size(0)) if target.ndim == 0 else target


def saliency_of_probability(forward, inputs, target):
    x = inputs.detach().requires_grad_(True)
    probabilities = torch.softmax(forward(x), dim=-1)
    (gradient,) = torch.autograd.grad(probabilities.gather(1, _targets(probabilities, target)[:, None]).sum(), x)
    return gradient


def saliency_of_argmax(forward, inputs, target):
    x = inputs.detach().requires_grad_(True)
    logits = forward(x)
    (gradient,) = torch.autograd.grad(logits.max(dim=-1).values.sum(), x)
    return gradient


def saliency_with_backward(forward, inputs, target):
    x = inputs.detach().requires_grad_(True)
    logits = forward(x)
    logits.gather(1, _targets(logits, target)[:, None]).sum().backward()
    return x.grad.detach()


def saliency_of_all_logits(forward, inputs, target):
    x = inputs.detach().requires_grad_(True)
    (gradient,) = torch.autograd.grad(forward(x).sum(), x)
    return gradient


def saliency_in_place(forward, inputs, target):
    inputs.requires_grad_(True)
    logits = forward(inputs)
    (gradient,) = torch.autograd.grad(logits.gather(1, _targets(logits, target)[:, None]).sum(), inputs)
    return gradient


def saliency_abs(forward, inputs, target):
    return REF.gradient_saliency(forward, inputs, target).abs()


WRONG_SALIENCY = [
    (saliency_of_probability, REF.gradient_x_input),
    (saliency_of_argmax, REF.gradient_x_input),
    (saliency_with_backward, REF.gradient_x_input),
    (saliency_of_all_logits, REF.gradient_x_input),
    (saliency_in_place, REF.gradient_x_input),
    (saliency_abs, REF.gradient_x_input),
    (REF.gradient_saliency, lambda forward, inputs, target: REF.gradient_saliency(forward, inputs, target)),
    (REF.gradient_saliency, lambda forward, inputs, target: (REF.gradient_saliency(forward, inputs, target) * inputs).abs()),
]


@pytest.mark.parametrize("pair", WRONG_SALIENCY, ids=[f"case{i}" for i in range(len(WRONG_SALIENCY))])
def test_check_saliency_rejects(pair):
    with pytest.raises(AssertionError):
        week06.check_saliency(*pair)


# ---------------------------------------------------------------------------------------------------------
# 2.1 span_precision_recall


def spans_exact_ignores_label(pred, gold, mode="exact"):
    if mode == "exact":
        pred = [(s, e, "X") for s, e, _ in pred]
        gold = [(s, e, "X") for s, e, _ in gold]
    return REF.span_precision_recall(pred, gold, mode)


def spans_touching_overlap(pred, gold, mode="exact"):
    if mode != "overlap":
        return REF.span_precision_recall(pred, gold, mode)
    pred, gold = set(map(tuple, pred)), set(map(tuple, gold))
    hit_p = sum(any(p[0] <= g[1] and g[0] <= p[1] for g in gold) for p in pred)
    hit_g = sum(any(p[0] <= g[1] and g[0] <= p[1] for p in pred) for g in gold)
    return (hit_p / len(pred) if pred else math.nan, hit_g / len(gold) if gold else math.nan)


def spans_zero_when_empty(pred, gold, mode="exact"):
    precision, recall = REF.span_precision_recall(pred, gold, mode)
    return (0.0 if math.isnan(precision) else precision, 0.0 if math.isnan(recall) else recall)


def spans_swapped(pred, gold, mode="exact"):
    precision, recall = REF.span_precision_recall(pred, gold, mode)
    return recall, precision


def spans_duplicates_counted(pred, gold, mode="exact"):
    if mode not in ("exact", "overlap"):
        raise ValueError(mode)
    pred = [tuple(p) for p in pred]
    gold = [tuple(g) for g in gold]
    match = (lambda p, g: p == g) if mode == "exact" else (lambda p, g: p[0] < g[1] and g[0] < p[1])
    hit_p = sum(any(match(p, g) for g in gold) for p in pred)
    hit_g = sum(any(match(p, g) for p in pred) for g in gold)
    return (hit_p / len(pred) if pred else math.nan, hit_g / len(gold) if gold else math.nan)


def spans_overlap_recall_from_pred(pred, gold, mode="exact"):
    precision, recall = REF.span_precision_recall(pred, gold, mode)
    if mode == "overlap" and gold:
        hits = sum(any(p[0] < g[1] and g[0] < p[1] for g in gold) for p in {tuple(p) for p in pred})
        recall = min(1.0, hits / len({tuple(g) for g in gold}))
    return precision, recall


def spans_overlap_needs_label(pred, gold, mode="exact"):
    if mode != "overlap":
        return REF.span_precision_recall(pred, gold, mode)
    pred, gold = set(map(tuple, pred)), set(map(tuple, gold))
    hit_p = sum(any(p[0] < g[1] and g[0] < p[1] and p[2] == g[2] for g in gold) for p in pred)
    hit_g = sum(any(p[0] < g[1] and g[0] < p[1] and p[2] == g[2] for p in pred) for g in gold)
    return (hit_p / len(pred) if pred else math.nan, hit_g / len(gold) if gold else math.nan)


WRONG_SPANS = [
    spans_exact_ignores_label,
    spans_touching_overlap,
    spans_zero_when_empty,
    spans_swapped,
    spans_duplicates_counted,
    spans_overlap_recall_from_pred,
    spans_overlap_needs_label,
]


@pytest.mark.parametrize("fn", WRONG_SPANS, ids=lambda fn: fn.__name__)
def test_check_span_scores_rejects(fn):
    with pytest.raises(AssertionError):
        week06.check_span_precision_recall(fn)


# ---------------------------------------------------------------------------------------------------------
# 2.2 deidentify


def deid_age_89_included(text):
    spans = REF.deidentify(text)
    for match in re.finditer(r"\b89\b(?= years| y/o|\))", text):
        spans.append((match.start(), match.end(), "AGE"))
    return sorted(set(spans))


def deid_year_is_date(text):
    spans = REF.deidentify(text)
    covered = [(s, e) for s, e, _ in spans]
    for match in re.finditer(r"\b(?:19|20)\d\d\b", text):
        if not any(s <= match.start() < e for s, e in covered):
            spans.append((match.start(), match.end(), "DATE"))
    return sorted(spans)


def deid_no_plus_one_phones(text):
    return [span for span in REF.deidentify(text) if not text[span[0] : span[1]].startswith("+1")]


def deid_names_only_with_title(text):
    return [span for span in REF.deidentify(text) if span[2] != "NAME" or text[: span[0]].endswith(("Dr. ", "Mr. ", "Ms. ", "Mrs. "))]


def deid_cue_word_in_span(text):
    spans = []
    for start, end, label in REF.deidentify(text):
        if label == "MRN":
            start = text.rindex("MRN", 0, start)
        spans.append((start, end, label))
    return spans


def deid_fax_as_phone(text):
    return [(s, e, "PHONE" if label == "FAX" else label) for s, e, label in REF.deidentify(text)]


def deid_only_formatted(text):
    return [span for span in REF.deidentify(text) if span[2] not in ("NAME", "CITY", "ADDRESS", "ZIP")]


def deid_numbers_everywhere(text):
    spans = REF.deidentify(text)
    covered = [(s, e) for s, e, _ in spans]
    for match in re.finditer(r"\b\d+(?:\.\d+)?\b", text):
        if not any(s < match.end() and match.start() < e for s, e in covered):
            spans.append((match.start(), match.end(), "MRN"))
    return sorted(spans)


def deid_unsorted(text):
    return list(reversed(REF.deidentify(text)))


WRONG_DEID = [
    deid_age_89_included,
    deid_year_is_date,
    deid_no_plus_one_phones,
    deid_names_only_with_title,
    deid_cue_word_in_span,
    deid_fax_as_phone,
    deid_only_formatted,
    deid_numbers_everywhere,
    deid_unsorted,
]


@pytest.mark.parametrize("fn", WRONG_DEID, ids=lambda fn: fn.__name__)
def test_check_deidentify_rejects(fn):
    with pytest.raises(AssertionError):
        week06.check_deidentify(fn)


def test_reference_deidentify_perfect_on_notes():
    corpus = clinical_notes.join_notes(clinical_notes.generate_notes(100, seed=123))
    assert REF.span_precision_recall(REF.deidentify(corpus.text), corpus.spans, mode="exact") == (1.0, 1.0)


# ---------------------------------------------------------------------------------------------------------
# 2.3 redact


def redact_forward_order(text, spans):
    for start, end, label in spans:
        text = text[:start] + f"[{label}]" + text[end:]
    return text


def redact_str_replace(text, spans):
    for start, end, label in sorted(spans, key=lambda span: span[0], reverse=True):
        text = text.replace(text[start:end], f"[{label}]")
    return text


def redact_no_overlap_check(text, spans):
    for start, end, label in sorted(spans, key=lambda span: span[0], reverse=True):
        text = text[:start] + f"[{label}]" + text[end:]
    return text


def redact_mask_characters(text, spans):
    characters = list(text)
    for start, end, _ in spans:
        if start < 0 or end > len(text):
            raise ValueError("outside")
        characters[start:end] = "*" * (end - start)
    return "".join(characters)


WRONG_REDACT = [redact_forward_order, redact_str_replace, redact_no_overlap_check, redact_mask_characters]


@pytest.mark.parametrize("fn", WRONG_REDACT, ids=lambda fn: fn.__name__)
def test_check_redact_rejects(fn):
    with pytest.raises(AssertionError):
        week06.check_redact(fn)


# ---------------------------------------------------------------------------------------------------------
# 3.1 reweighing_weights


def weights_inverse(group, y):
    return 1.0 / REF.reweighing_weights(group, y)


def weights_counts(group, y):
    group, y = np.asarray(group), np.asarray(y)
    if len(group) != len(y) or len(y) == 0:
        raise ValueError("bad")
    return np.array([np.sum(group == g) * np.sum(y == label) / np.sum((group == g) & (y == label)) for g, label in zip(group, y)], dtype=float)


def weights_group_balance_only(group, y):
    group, y = np.asarray(group), np.asarray(y)
    if len(group) != len(y) or len(y) == 0:
        raise ValueError("bad")
    return np.array([1.0 / (len(np.unique(group)) * np.mean(group == g)) for g in group])


def weights_missing_p_group(group, y):
    group, y = np.asarray(group), np.asarray(y)
    if len(group) != len(y) or len(y) == 0:
        raise ValueError("bad")
    return np.array([np.mean(y == label) / np.mean((group == g) & (y == label)) for g, label in zip(group, y)])


def weights_normalised(group, y):
    weights = REF.reweighing_weights(group, y)
    return weights / weights.sum()


def weights_no_length_check(group, y):
    n = min(len(group), len(y))
    if n == 0:
        raise ValueError("empty")
    return REF.reweighing_weights(list(group)[:n], list(y)[:n])


WRONG_WEIGHTS = [weights_inverse, weights_counts, weights_group_balance_only, weights_missing_p_group, weights_normalised, weights_no_length_check]


@pytest.mark.parametrize("fn", WRONG_WEIGHTS, ids=lambda fn: fn.__name__)
def test_check_reweighing_rejects(fn):
    with pytest.raises(AssertionError):
        week06.check_reweighing_weights(fn)


# ---------------------------------------------------------------------------------------------------------
# 3.2 fairness_gaps


def gaps_tpr_over_group(y_true, y_pred, group):
    result = REF.fairness_gaps(y_true, y_pred, group)
    y_true, y_pred, group = map(np.asarray, (y_true, y_pred, group))
    result["tpr"] = {g: float(np.mean(y_pred[group == g] == y_true[group == g])) for g in np.unique(group)}
    result["equal_opportunity_difference"] = max(result["tpr"].values()) - min(result["tpr"].values())
    return result


def gaps_signed(y_true, y_pred, group):
    result = REF.fairness_gaps(y_true, y_pred, group)
    rates = list(result["selection_rate"].values())
    result["demographic_parity_difference"] = rates[-1] - rates[0]
    return result


def gaps_ppv_instead_of_tpr(y_true, y_pred, group):
    result = REF.fairness_gaps(y_true, y_pred, group)
    y_true, y_pred, group = map(np.asarray, (y_true, y_pred, group))
    result["tpr"] = {g: float(np.mean(y_true[(group == g) & (y_pred == 1)] == 1)) for g in np.unique(group)}
    result["equal_opportunity_difference"] = max(result["tpr"].values()) - min(result["tpr"].values())
    return result


def gaps_nan_for_missing(y_true, y_pred, group):
    y_true, y_pred, group = map(np.asarray, (y_true, y_pred, group))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        selection = {g: float(np.mean(y_pred[group == g])) for g in np.unique(group)}
        tpr = {g: float(np.mean(y_pred[(group == g) & (y_true == 1)])) for g in np.unique(group)}
    return {
        "selection_rate": selection,
        "tpr": tpr,
        "demographic_parity_difference": max(selection.values()) - min(selection.values()),
        "equal_opportunity_difference": float(np.nanmax(list(tpr.values())) - np.nanmin(list(tpr.values()))),
    }


WRONG_GAPS = [gaps_tpr_over_group, gaps_signed, gaps_ppv_instead_of_tpr, gaps_nan_for_missing]


@pytest.mark.parametrize("fn", WRONG_GAPS, ids=lambda fn: fn.__name__)
def test_check_fairness_gaps_rejects(fn):
    with pytest.raises(AssertionError):
        week06.check_fairness_gaps(fn)


# ---------------------------------------------------------------------------------------------------------
# 3.3 group_thresholds


def _validate(target_tpr):
    if not 0 < target_tpr <= 1:
        raise ValueError("target")


def thresholds_quantile_of_positives(scores, y_true, group, target_tpr):
    _validate(target_tpr)
    scores, y_true, group = map(np.asarray, (scores, y_true, group))
    result = {}
    for g in np.unique(group):
        positives = scores[(group == g) & (y_true == 1)]
        if len(positives) == 0:
            raise ValueError("no positives")
        result[g] = float(np.quantile(positives, 1 - target_tpr))
    return result


def thresholds_all_scores(scores, y_true, group, target_tpr):
    _validate(target_tpr)
    scores, y_true, group = map(np.asarray, (scores, y_true, group))
    result = {}
    for g in np.unique(group):
        if not np.any((group == g) & (y_true == 1)):
            raise ValueError("no positives")
        ranked = np.sort(scores[group == g])[::-1]
        result[g] = float(ranked[math.ceil(target_tpr * len(ranked)) - 1])
    return result


def thresholds_floor(scores, y_true, group, target_tpr):
    _validate(target_tpr)
    scores, y_true, group = map(np.asarray, (scores, y_true, group))
    result = {}
    for g in np.unique(group):
        ranked = np.sort(scores[(group == g) & (y_true == 1)])[::-1]
        if len(ranked) == 0:
            raise ValueError("no positives")
        result[g] = float(ranked[max(int(target_tpr * len(ranked)) - 1, 0)])
    return result


def thresholds_one_rank_lower(scores, y_true, group, target_tpr):
    _validate(target_tpr)
    scores, y_true, group = map(np.asarray, (scores, y_true, group))
    result = {}
    for g in np.unique(group):
        ranked = np.sort(scores[(group == g) & (y_true == 1)])[::-1]
        if len(ranked) == 0:
            raise ValueError("no positives")
        k = next(k for k in range(1, len(ranked) + 1) if k / len(ranked) >= target_tpr)
        result[g] = float(ranked[min(k, len(ranked) - 1)])
    return result


def thresholds_no_validation(scores, y_true, group, target_tpr):
    return REF.group_thresholds(scores, y_true, group, min(max(target_tpr, 1e-9), 1.0))


WRONG_THRESHOLDS = [
    thresholds_quantile_of_positives,
    thresholds_all_scores,
    thresholds_floor,
    thresholds_one_rank_lower,
    thresholds_no_validation,
]


@pytest.mark.parametrize("fn", WRONG_THRESHOLDS, ids=lambda fn: fn.__name__)
def test_check_group_thresholds_rejects(fn):
    with pytest.raises(AssertionError):
        week06.check_group_thresholds(fn)


# ---------------------------------------------------------------------------------------------------------
# 4.1 diagnostic_metrics


def metrics_zero_division_warns(y_true, y_pred):
    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    if y_true.shape != y_pred.shape or y_true.size == 0 or not np.isin(y_true, (0, 1)).all():
        raise ValueError("bad")
    tp = np.sum(y_true * y_pred)
    fp = np.sum((1 - y_true) * y_pred)
    tn = np.sum((1 - y_true) * (1 - y_pred))
    fn = np.sum(y_true * (1 - y_pred))
    warnings.warn("division", RuntimeWarning) if tp + fn == 0 or tp + fp == 0 else None
    return {"sensitivity": float(tp / (tp + fn)) if tp + fn else float("nan"), "specificity": float(tn / (tn + fp)),
            "ppv": float(tp / (tp + fp)) if tp + fp else float("nan"), "npv": float(tn / (tn + fn))}


def metrics_zero_for_undefined(y_true, y_pred):
    result = REF.diagnostic_metrics(y_true, y_pred)
    return {name: 0.0 if math.isnan(value) else value for name, value in result.items()}


def metrics_ppv_npv_swapped(y_true, y_pred):
    result = REF.diagnostic_metrics(y_true, y_pred)
    result["ppv"], result["npv"] = result["npv"], result["ppv"]
    return result


def metrics_specificity_as_fpr(y_true, y_pred):
    result = REF.diagnostic_metrics(y_true, y_pred)
    result["specificity"] = 1 - result["specificity"]
    return result


def metrics_no_label_check(y_true, y_pred):
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return REF.diagnostic_metrics(np.clip(y_true, 0, 1), np.clip(y_pred, 0, 1))


WRONG_METRICS = [
    metrics_zero_division_warns,
    metrics_zero_for_undefined,
    metrics_ppv_npv_swapped,
    metrics_specificity_as_fpr,
    metrics_no_label_check,
]


@pytest.mark.parametrize("fn", WRONG_METRICS, ids=lambda fn: fn.__name__)
def test_check_diagnostic_metrics_rejects(fn):
    with pytest.raises(AssertionError):
        week06.check_diagnostic_metrics(fn)


# ---------------------------------------------------------------------------------------------------------
# 4.2 roc_auc


def auc_ignores_ties(y_true, scores):
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=float)
    pos, neg = scores[y_true == 1], scores[y_true == 0]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("one class")
    return float(np.mean(pos[:, None] > neg[None, :]))


def auc_ties_count_fully(y_true, scores):
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=float)
    pos, neg = scores[y_true == 1], scores[y_true == 0]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("one class")
    return float(np.mean(pos[:, None] >= neg[None, :]))


def auc_reversed(y_true, scores):
    return 1.0 - REF.roc_auc(y_true, scores)


def auc_half_for_one_class(y_true, scores):
    if len(set(np.asarray(y_true).tolist())) < 2:
        return 0.5
    return REF.roc_auc(y_true, scores)


def auc_trapezoid_unsorted(y_true, scores):
    y_true, scores = np.asarray(y_true).astype(int), np.asarray(scores, dtype=float)
    if y_true.min() == y_true.max():
        raise ValueError("one class")
    order = np.argsort(-scores, kind="stable")
    tpr = np.concatenate([[0], np.cumsum(y_true[order]) / y_true.sum()])
    fpr = np.concatenate([[0], np.cumsum(1 - y_true[order]) / (1 - y_true).sum()])
    return float(np.trapezoid(tpr, fpr))


WRONG_AUC = [auc_ignores_ties, auc_ties_count_fully, auc_reversed, auc_half_for_one_class, auc_trapezoid_unsorted]


@pytest.mark.parametrize("fn", WRONG_AUC, ids=lambda fn: fn.__name__)
def test_check_roc_auc_rejects(fn):
    with pytest.raises(AssertionError):
        week06.check_roc_auc(fn)


# ---------------------------------------------------------------------------------------------------------
# 4.3 calibration


def reliability_floor_bins(y_true, probs, n_bins=10):
    y_true, probs = np.asarray(y_true, dtype=float), np.asarray(probs, dtype=float)
    ids = np.minimum((probs * n_bins).astype(int), n_bins - 1)
    counts = np.bincount(ids, minlength=n_bins)
    keep = counts > 0
    return (np.bincount(ids, y_true, n_bins)[keep] / counts[keep], np.bincount(ids, probs, n_bins)[keep] / counts[keep])


def reliability_keeps_empty_bins(y_true, probs, n_bins=10):
    y_true, probs = np.asarray(y_true, dtype=float), np.asarray(probs, dtype=float)
    ids = np.searchsorted(np.linspace(0, 1, n_bins + 1)[1:-1], probs)
    counts = np.maximum(np.bincount(ids, minlength=n_bins), 1)
    return np.bincount(ids, y_true, n_bins) / counts, np.bincount(ids, probs, n_bins) / counts


def reliability_bin_centres(y_true, probs, n_bins=10):
    prob_true, _ = REF.reliability_curve(y_true, probs, n_bins)
    ids = np.unique(np.searchsorted(np.linspace(0, 1, n_bins + 1)[1:-1], np.asarray(probs, dtype=float)))
    return prob_true, (ids + 0.5) / n_bins


def intercept_without_offset(y_true, probs):
    _, slope = REF.calibration_intercept_slope(y_true, probs)
    mean = np.mean(y_true)
    return float(np.log(mean / (1 - mean))), slope


def slope_on_probabilities(y_true, probs):
    import statsmodels.api as sm

    intercept, _ = REF.calibration_intercept_slope(y_true, probs)
    fit = sm.GLM(np.asarray(y_true, dtype=float), sm.add_constant(np.asarray(probs, dtype=float)), family=sm.families.Binomial()).fit()
    return intercept, float(fit.params[1])


def intercept_from_slope_model(y_true, probs):
    import statsmodels.api as sm

    p = np.clip(np.asarray(probs, dtype=float), 1e-12, 1 - 1e-12)
    fit = sm.GLM(np.asarray(y_true, dtype=float), sm.add_constant(np.log(p / (1 - p))), family=sm.families.Binomial()).fit()
    return float(fit.params[0]), float(fit.params[1])


WRONG_CALIBRATION = [
    (reliability_floor_bins, REF.calibration_intercept_slope),
    (reliability_keeps_empty_bins, REF.calibration_intercept_slope),
    (reliability_bin_centres, REF.calibration_intercept_slope),
    (REF.reliability_curve, intercept_without_offset),
    (REF.reliability_curve, slope_on_probabilities),
    (REF.reliability_curve, intercept_from_slope_model),
]


@pytest.mark.parametrize("pair", WRONG_CALIBRATION, ids=lambda pair: f"{pair[0].__name__}-{pair[1].__name__}")
def test_check_calibration_rejects(pair):
    with pytest.raises(AssertionError):
        week06.check_calibration(*pair)


# ---------------------------------------------------------------------------------------------------------
# 4.4 net_benefit


def net_benefit_strict(y_true, probs, threshold):
    if not 0 < threshold < 1:
        raise ValueError("threshold")
    y_true, treated = np.asarray(y_true), np.asarray(probs) > threshold
    n = len(y_true)
    return float(np.sum(treated & (y_true == 1)) / n - np.sum(treated & (y_true == 0)) / n * threshold / (1 - threshold))


def net_benefit_inverted_odds(y_true, probs, threshold):
    if not 0 < threshold < 1:
        raise ValueError("threshold")
    y_true, treated = np.asarray(y_true), np.asarray(probs) >= threshold
    n = len(y_true)
    return float(np.sum(treated & (y_true == 1)) / n - np.sum(treated & (y_true == 0)) / n * (1 - threshold) / threshold)


def net_benefit_over_treated(y_true, probs, threshold):
    if not 0 < threshold < 1:
        raise ValueError("threshold")
    y_true, treated = np.asarray(y_true), np.asarray(probs) >= threshold
    n = max(int(treated.sum()), 1)
    return float(np.sum(treated & (y_true == 1)) / n - np.sum(treated & (y_true == 0)) / n * threshold / (1 - threshold))


def net_benefit_no_validation(y_true, probs, threshold):
    with np.errstate(all="ignore"):
        y_true, treated = np.asarray(y_true), np.asarray(probs) >= threshold
        n = len(y_true)
        odds = threshold / (1 - threshold) if threshold < 1 else float("inf")
        return float(np.sum(treated & (y_true == 1)) / n - np.sum(treated & (y_true == 0)) / n * odds)


WRONG_NET_BENEFIT = [net_benefit_strict, net_benefit_inverted_odds, net_benefit_over_treated, net_benefit_no_validation]


@pytest.mark.parametrize("fn", WRONG_NET_BENEFIT, ids=lambda fn: fn.__name__)
def test_check_net_benefit_rejects(fn):
    with pytest.raises(AssertionError):
        week06.check_net_benefit(fn)


# ---------------------------------------------------------------------------------------------------------
# Demo mistakes


def demo_module():
    """Build a module from the reference code with DEMO_MISTAKES applied, as `course demo` does."""
    return mistakes_module("week06")


def test_demo_mistakes_name_solution_cells():
    notebook = read_notebook(SOURCE_NOTEBOOK)
    solution_ids = {grade_id(cell) for cell in notebook.cells if is_solution_cell(cell)}
    assert {target for target, _, _ in week06.DEMO_MISTAKES} <= solution_ids


def test_demo_mistakes_give_partial_credit():
    module = demo_module()
    failed = set()
    for name, call in check_calls(module).items():
        try:
            call()
        except AssertionError:
            failed.add(name)
    assert failed == {"prediction_flip_rate", "deidentify", "roc_auc"}
