"""Week 5 checks: the reference passes every check, and realistic wrong implementations fail them."""

from __future__ import annotations

import itertools
import math
import re
import warnings
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch

from autograder import week05 as checks
from course_lib import eval_data
from course_lib.demo import mistakes_module
from course_lib.notebooks import BEGIN_HIDDEN, grade_id, read_notebook
from course_lib.paths import REPO_ROOT
from course_lib.solutions import load_reference
from notebook_helpers import grade_cells, module_from_notebook, run_grade_cell

SOURCE_NOTEBOOK = REPO_ROOT / "source" / "week05" / "week05.ipynb"

REF = load_reference("week05")



# Each check with the arguments its grade cell passes, taken from a module built like the reference.
def check_calls(module):
    return {
        "perplexity": lambda: checks.check_perplexity(module.next_token_log_probs, module.perplexity),
        "corpus_bleu": lambda: checks.check_corpus_bleu(module.corpus_bleu),
        "rouge": lambda: checks.check_rouge_scores(module.rouge_scores),
        "clinical_concept_f1": lambda: checks.check_clinical_metric(module.clinical_concept_f1),
        "mcq": lambda: checks.check_mcq(module.predict_options, module.accuracy),
        "calibration": lambda: checks.check_calibration(module.calibration_bins, module.expected_calibration_error),
        "brier_score": lambda: checks.check_brier_score(module.brier_score),
        "group_fairness": lambda: checks.check_group_fairness(module.group_rates, module.fairness_gaps),
        "weat": lambda: checks.check_weat(module.weat_association, module.weat_effect_size, module.weat_p_value),
        "bootstrap_ci": lambda: checks.check_bootstrap_ci(module.bootstrap_ci),
        "paired_permutation_test": lambda: checks.check_paired_permutation_test(module.paired_permutation_test),
        "mcnemar": lambda: checks.check_mcnemar(module.paired_contingency_table, module.mcnemar_test),
        "error_analysis": lambda: checks.check_error_analysis(module.error_table, module.errors_by_topic),
    }


# ---------------------------------------------------------------------------------------------------------
# The notebook and the reference


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


def test_grade_cells_pass_on_reference_silently(capfd):
    notebook = read_notebook(SOURCE_NOTEBOOK)
    module = module_from_notebook(notebook, "week05_reference_cells")
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
    assert len(check_names) == len(grade_cells(notebook))
    for name in check_names:
        assert f"{name}(" in hidden_sources, f"{name} is not called by any grade cell"
    for cell in grade_cells(notebook):
        assert BEGIN_HIDDEN in cell.source, f"grade cell {grade_id(cell)} has no hidden-test block"


def test_grade_cell_points_total():
    notebook = read_notebook(SOURCE_NOTEBOOK)
    points = {grade_id(cell): cell.metadata["nbgrader"]["points"] for cell in grade_cells(notebook)}
    assert all(1 <= value <= 4 for value in points.values()), points
    assert sum(points.values()) == 28


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
# course_lib.eval_data


def test_medical_quiz_items_valid():
    items = eval_data.medical_quiz()
    assert len(items) == 40
    for item in items:
        assert len(item.options) in (3, 4), item
        assert 0 <= item.answer < len(item.options), item
        assert len(set(item.options)) == len(item.options), item
    answers = Counter(item.answer for item in items)
    assert set(answers) == {0, 1, 2, 3}


def test_option_token_counts_mark_missing_options():
    items = eval_data.medical_quiz()
    counts = eval_data.option_token_counts(items)
    assert counts.shape == (40, 4)
    for row, item in enumerate(items):
        assert (counts[row, : len(item.options)] > 0).all()
        assert (counts[row, len(item.options) :] == 0).all()


def test_simulated_log_likelihoods_deterministic():
    first = eval_data.simulated_option_log_likelihoods("large")
    again = eval_data.simulated_option_log_likelihoods("large")
    assert np.array_equal(first, again)
    counts = eval_data.option_token_counts()
    assert np.isneginf(first[counts == 0]).all()
    assert np.isfinite(first[counts > 0]).all()
    assert (first[counts > 0] < 0).all()


def test_simulated_models_differ_as_documented():
    answers = np.array([item.answer for item in eval_data.medical_quiz()])
    counts = eval_data.option_token_counts()
    accuracies, first_option_share = {}, {}
    for name in ("large", "small"):
        scores = eval_data.simulated_option_log_likelihoods(name)
        per_token = np.where(counts > 0, scores / np.maximum(counts, 1), -np.inf)
        choices = per_token.argmax(axis=1)
        accuracies[name] = np.mean(choices == answers)
        first_option_share[name] = np.mean(choices == 0)
    assert accuracies["large"] > accuracies["small"]
    assert first_option_share["small"] > first_option_share["large"]


def test_simulated_log_likelihoods_reject_unknown_model():
    with pytest.raises(ValueError, match="unknown simulated model"):
        eval_data.simulated_option_log_likelihoods("medium")


def test_clinical_risk_table_underestimates_group_b():
    table = eval_data.clinical_risk_table()
    assert list(table.columns) == ["group", "age", "outcome", "risk_score"]
    assert len(table) == 2000
    assert set(table["group"]) == {"A", "B"}
    assert table["risk_score"].between(0.0, 1.0).all()
    positives = table[table["outcome"] == 1]
    flagged = positives["risk_score"] >= 0.5
    tpr = flagged.groupby(positives["group"]).mean()
    assert tpr["A"] > tpr["B"] + 0.1
    assert table.equals(eval_data.clinical_risk_table())


def test_weat_vectors_plant_association():
    vectors = eval_data.weat_vectors()
    words = eval_data.WEAT_TARGETS_X + eval_data.WEAT_TARGETS_Y + eval_data.WEAT_ATTRIBUTES_A + eval_data.WEAT_ATTRIBUTES_B
    assert set(vectors) == set(words)
    assert all(vector.shape == (24,) for vector in vectors.values())
    stacks = [np.stack([vectors[w] for w in group]) for group in (
        eval_data.WEAT_TARGETS_X, eval_data.WEAT_TARGETS_Y, eval_data.WEAT_ATTRIBUTES_A, eval_data.WEAT_ATTRIBUTES_B)]
    assert REF.weat_effect_size(*stacks) > 1.0
    neutral = eval_data.weat_vectors(association=0.0)
    neutral_stacks = [np.stack([neutral[w] for w in group]) for group in (
        eval_data.WEAT_TARGETS_X, eval_data.WEAT_TARGETS_Y, eval_data.WEAT_ATTRIBUTES_A, eval_data.WEAT_ATTRIBUTES_B)]
    assert REF.weat_p_value(*neutral_stacks) > 0.05


def test_clinical_concepts_list_multiword_terms_first():
    lengths = [len(concept.split()) for concept in eval_data.CLINICAL_CONCEPTS]
    assert lengths == sorted(lengths, reverse=True)
    assert "denies" in eval_data.NEGATION_CUES


# ---------------------------------------------------------------------------------------------------------
# 1.1 Perplexity


def log_probs_no_shift(logits, input_ids):
    return torch.log_softmax(logits, dim=-1).gather(-1, input_ids[..., None]).squeeze(-1)[:, 1:]


def log_probs_time_axis(logits, input_ids):
    return torch.log_softmax(logits[:, :-1], dim=1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)


def log_probs_naive_softmax(logits, input_ids):
    probabilities = logits[:, :-1].exp() / logits[:, :-1].exp().sum(-1, keepdim=True)
    return probabilities.gather(-1, input_ids[:, 1:, None]).squeeze(-1).log()


def log_probs_float32(logits, input_ids):
    return REF.next_token_log_probs(logits.float(), input_ids)


def perplexity_mask_multiply(token_log_probs, mask=None):
    token_log_probs = torch.as_tensor(token_log_probs, dtype=torch.float64)
    mask = torch.ones_like(token_log_probs) if mask is None else torch.as_tensor(mask, dtype=torch.float64)
    if mask.sum() == 0:
        raise ValueError("no tokens")
    return math.exp(-float((token_log_probs * mask).sum() / mask.sum()))


def perplexity_mean_of_sequences(token_log_probs, mask=None):
    token_log_probs = torch.as_tensor(token_log_probs, dtype=torch.float64)
    if token_log_probs.ndim == 1:
        return REF.perplexity(token_log_probs, mask)
    mask = torch.ones_like(token_log_probs, dtype=torch.bool) if mask is None else torch.as_tensor(mask)
    if mask.sum() == 0:
        raise ValueError("no tokens")
    values = [REF.perplexity(row, m) for row, m in zip(token_log_probs, mask) if m.any()]
    return float(np.mean(values))


def perplexity_ignores_mask(token_log_probs, mask=None):
    values = np.asarray(token_log_probs, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0 or (mask is not None and not np.asarray(mask).any()):
        raise ValueError("no tokens")
    return float(np.exp(-finite.mean()))


def perplexity_base_two(token_log_probs, mask=None):
    token_log_probs = torch.as_tensor(token_log_probs, dtype=torch.float64)
    mask = torch.ones_like(token_log_probs, dtype=torch.bool) if mask is None else torch.as_tensor(mask)
    if mask.sum() == 0:
        raise ValueError("no tokens")
    return 2.0 ** (-float(token_log_probs[mask].mean()))


def perplexity_no_empty_check(token_log_probs, mask=None):
    token_log_probs = torch.as_tensor(token_log_probs, dtype=torch.float64)
    mask = torch.ones_like(token_log_probs, dtype=torch.bool) if mask is None else torch.as_tensor(mask)
    return math.exp(-float(torch.where(mask, token_log_probs, 0.0).sum()) / max(int(mask.sum()), 1))


WRONG_PERPLEXITY = {
    "log probs without shift": (log_probs_no_shift, REF.perplexity),
    "log softmax over time": (log_probs_time_axis, REF.perplexity),
    "naive softmax overflows": (log_probs_naive_softmax, REF.perplexity),
    "log probs always float32": (log_probs_float32, REF.perplexity),
    "mask multiplied into -inf": (REF.next_token_log_probs, perplexity_mask_multiply),
    "mean of sequence perplexities": (REF.next_token_log_probs, perplexity_mean_of_sequences),
    "mask ignored": (REF.next_token_log_probs, perplexity_ignores_mask),
    "base two exponent": (REF.next_token_log_probs, perplexity_base_two),
    "empty mask accepted": (REF.next_token_log_probs, perplexity_no_empty_check),
}


@pytest.mark.parametrize("log_probs_fn, perplexity_fn", WRONG_PERPLEXITY.values(), ids=WRONG_PERPLEXITY.keys())
def test_check_perplexity_rejects(log_probs_fn, perplexity_fn):
    with pytest.raises(AssertionError):
        checks.check_perplexity(log_probs_fn, perplexity_fn)


# ---------------------------------------------------------------------------------------------------------
# 1.2 Corpus BLEU


def _bleu_from_counts(matches, totals, hyp_len, ref_len):
    precisions = [100.0 * m / t if t else 0.0 for m, t in zip(matches, totals)]
    bp = 1.0 if hyp_len >= ref_len else (math.exp(1 - ref_len / hyp_len) if hyp_len else 0.0)
    score = 0.0 if min(precisions) == 0 else bp * math.exp(sum(math.log(p) for p in precisions) / 4)
    return {"score": score, "precisions": precisions, "brevity_penalty": bp, "hyp_len": hyp_len, "ref_len": ref_len}


def make_bleu(clip="max", ref_length="closest", lowercase=False):
    def corpus_bleu(hypotheses, references, max_order=4):
        matches, totals, hyp_len, ref_len = [0] * 4, [0] * 4, 0, 0
        for hypothesis, refs in zip(hypotheses, references):
            if lowercase:
                hypothesis, refs = hypothesis.lower(), [r.lower() for r in refs]
            hyp_tokens, ref_tokens = hypothesis.split(), [r.split() for r in refs]
            hyp_len += len(hyp_tokens)
            lengths = [len(r) for r in ref_tokens]
            if ref_length == "closest":
                ref_len += min((abs(n - len(hyp_tokens)), n) for n in lengths)[1]
            elif ref_length == "closest longer on tie":
                ref_len += min((abs(n - len(hyp_tokens)), -n) for n in lengths)[1] * -1
            else:
                ref_len += min(lengths)
            for n in range(1, 5):
                hyp_ngrams = REF.ngram_counts(hyp_tokens, n)
                ref_ngrams = Counter()
                for r in ref_tokens:
                    if clip == "sum":
                        ref_ngrams += REF.ngram_counts(r, n)
                    else:
                        ref_ngrams |= REF.ngram_counts(r, n)
                if clip == "none":
                    matches[n - 1] += sum(c for g, c in hyp_ngrams.items() if g in ref_ngrams)
                else:
                    matches[n - 1] += sum((hyp_ngrams & ref_ngrams).values())
                totals[n - 1] += sum(hyp_ngrams.values())
        return _bleu_from_counts(matches, totals, hyp_len, ref_len)

    return corpus_bleu


def bleu_mean_of_sentences(hypotheses, references, max_order=4):
    results = [REF.corpus_bleu([h], [r]) for h, r in zip(hypotheses, references)]
    total = REF.corpus_bleu(hypotheses, references)
    total["score"] = float(np.mean([r["score"] for r in results]))
    return total


def bleu_fractions(hypotheses, references, max_order=4):
    result = REF.corpus_bleu(hypotheses, references)
    result["precisions"] = [p / 100 for p in result["precisions"]]
    return result


def bleu_penalty_inverted(hypotheses, references, max_order=4):
    result = REF.corpus_bleu(hypotheses, references)
    c, r = result["hyp_len"], result["ref_len"]
    bp = 1.0 if c >= r else math.exp(1 - c / r)
    precisions = result["precisions"]
    result["brevity_penalty"] = bp
    result["score"] = 0.0 if min(precisions) == 0 else bp * math.exp(sum(math.log(p) for p in precisions) / 4)
    return result


def bleu_skips_zero_precisions(hypotheses, references, max_order=4):
    result = REF.corpus_bleu(hypotheses, references)
    positive = [p for p in result["precisions"] if p > 0]
    result["score"] = result["brevity_penalty"] * math.exp(sum(math.log(p) for p in positive) / len(positive)) if positive else 0.0
    return result


WRONG_BLEU = {
    "no clipping": make_bleu(clip="none"),
    "clipped by summed references": make_bleu(clip="sum"),
    "shortest reference length": make_bleu(ref_length="shortest"),
    "longer reference on tie": make_bleu(ref_length="closest longer on tie"),
    "lowercased": make_bleu(lowercase=True),
    "mean of sentence scores": bleu_mean_of_sentences,
    "precisions as fractions": bleu_fractions,
    "brevity penalty inverted": bleu_penalty_inverted,
    "zero precisions skipped": bleu_skips_zero_precisions,
}


@pytest.mark.parametrize("fn", WRONG_BLEU.values(), ids=WRONG_BLEU.keys())
def test_check_corpus_bleu_rejects(fn):
    with pytest.raises(AssertionError):
        checks.check_corpus_bleu(fn)


# ---------------------------------------------------------------------------------------------------------
# 1.3 ROUGE


def _f1(overlap, n_prediction, n_reference):
    precision, recall = overlap / max(n_prediction, 1), overlap / max(n_reference, 1)
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def make_rouge(tokenize=REF.rouge_tokenize, clip=True, lcs=REF.lcs_length, measure="f1"):
    def rouge_scores(prediction, reference):
        pred, ref = tokenize(prediction), tokenize(reference)
        scores = {}
        for n in (1, 2):
            p, r = REF.ngram_counts(pred, n), REF.ngram_counts(ref, n)
            overlap = sum((p & r).values()) if clip else len(set(p) & set(r))
            if measure == "recall":
                scores[f"rouge{n}"] = overlap / max(sum(r.values()), 1)
            else:
                scores[f"rouge{n}"] = _f1(overlap, sum(p.values()), sum(r.values()))
        scores["rougeL"] = _f1(lcs(pred, ref), len(pred), len(ref))
        return scores

    return rouge_scores


def longest_common_substring(a, b):
    best = 0
    for i in range(len(a)):
        for j in range(len(b)):
            k = 0
            while i + k < len(a) and j + k < len(b) and a[i + k] == b[j + k]:
                k += 1
            best = max(best, k)
    return best


WRONG_ROUGE = {
    "whitespace tokens": make_rouge(tokenize=str.split),
    "no lowercasing": make_rouge(tokenize=lambda text: re.sub(r"[^A-Za-z0-9]+", " ", text).split()),
    "unicode letters kept": make_rouge(tokenize=lambda text: re.findall(r"\w+", text.lower())),
    "set overlap": make_rouge(clip=False),
    "longest common substring": make_rouge(lcs=longest_common_substring),
    "recall instead of f1": make_rouge(measure="recall"),
}


@pytest.mark.parametrize("fn", WRONG_ROUGE.values(), ids=WRONG_ROUGE.keys())
def test_check_rouge_rejects(fn):
    with pytest.raises(AssertionError):
        checks.check_rouge_scores(fn)


# ---------------------------------------------------------------------------------------------------------
# 1.4 Clinical metric


def metric_unigram_f1(prediction, reference):
    pred, ref = Counter(prediction.lower().split()), Counter(reference.lower().split())
    if not pred and not ref:
        return 1.0
    overlap = sum((pred & ref).values())
    return 2 * overlap / (sum(pred.values()) + sum(ref.values()))


def metric_concepts_without_negation(prediction, reference):
    def concepts(text):
        return {concept for concept in eval_data.CLINICAL_CONCEPTS if concept in text.lower()}

    pred, ref = concepts(prediction), concepts(reference)
    if not pred and not ref:
        return 1.0
    return 2 * len(pred & ref) / (len(pred) + len(ref))


def metric_only_no_cue(prediction, reference):
    extract = lambda text: REF.extract_concepts(text, negation_cues=("no",))  # noqa: E731
    pred, ref = extract(prediction), extract(reference)
    if not pred and not ref:
        return 1.0
    return 2 * len(pred & ref) / (len(pred) + len(ref))


def metric_percent(prediction, reference):
    return 100.0 * REF.clinical_concept_f1(prediction, reference)


def metric_empty_scores_zero(prediction, reference):
    pred, ref = REF.extract_concepts(prediction), REF.extract_concepts(reference)
    if not pred or not ref:
        return 0.0
    return 2 * len(pred & ref) / (len(pred) + len(ref))


def metric_recall_of_concepts(prediction, reference):
    pred = {concept for concept, _ in REF.extract_concepts(prediction)}
    ref = {concept for concept, _ in REF.extract_concepts(reference)}
    return len(pred & ref) / len(ref) if ref else 1.0


WRONG_CLINICAL = {
    "unigram f1": metric_unigram_f1,
    "concepts without negation": metric_concepts_without_negation,
    "only the cue no": metric_only_no_cue,
    "percent scale": metric_percent,
    "texts without concepts score zero": metric_empty_scores_zero,
    "concept recall ignoring polarity": metric_recall_of_concepts,
}


@pytest.mark.parametrize("fn", WRONG_CLINICAL.values(), ids=WRONG_CLINICAL.keys())
def test_check_clinical_metric_rejects(fn):
    with pytest.raises(AssertionError):
        checks.check_clinical_metric(fn)


def test_check_clinical_metric_accepts_blended_design():
    def blended(prediction, reference):
        return 0.7 * REF.clinical_concept_f1(prediction, reference) + 0.3 * REF.rouge_scores(prediction, reference)["rouge1"] if (
            prediction or reference
        ) else 1.0

    checks.check_clinical_metric(blended)


# ---------------------------------------------------------------------------------------------------------
# 2.1 Multiple-choice predictions


def predict_naive_softmax(option_log_likelihoods, option_token_counts=None):
    scores = np.asarray(option_log_likelihoods, dtype=float)
    if option_token_counts is not None:
        counts = np.asarray(option_token_counts)
        scores = np.where(counts > 0, scores / np.maximum(counts, 1), -np.inf)
    weights = np.exp(scores)
    return scores.argmax(axis=1), weights / weights.sum(axis=1, keepdims=True)


def predict_ignores_counts(option_log_likelihoods, option_token_counts=None):
    return REF.predict_options(option_log_likelihoods)


def predict_divides_without_mask(option_log_likelihoods, option_token_counts=None):
    scores = np.asarray(option_log_likelihoods, dtype=float)
    if option_token_counts is not None:
        scores = scores / np.maximum(np.asarray(option_token_counts), 1)
    return REF.predict_options(scores)


def predict_softmax_over_items(option_log_likelihoods, option_token_counts=None):
    choices, _ = REF.predict_options(option_log_likelihoods, option_token_counts)
    scores = np.asarray(option_log_likelihoods, dtype=float)
    if option_token_counts is not None:
        counts = np.asarray(option_token_counts)
        scores = np.where(counts > 0, scores / np.maximum(counts, 1), -np.inf)
    weights = np.exp(scores - scores.max(axis=0, keepdims=True))
    return choices, weights / weights.sum(axis=0, keepdims=True)


def predict_one_based(option_log_likelihoods, option_token_counts=None):
    choices, probabilities = REF.predict_options(option_log_likelihoods, option_token_counts)
    return choices + 1, probabilities


def accuracy_percent(choices, answers):
    return 100.0 * REF.accuracy(choices, answers)


def accuracy_truncates(choices, answers):
    n = min(len(choices), len(answers))
    if n == 0:
        raise ValueError("empty")
    return float(np.mean(np.asarray(choices[:n]) == np.asarray(answers[:n])))


WRONG_MCQ = {
    "naive softmax": (predict_naive_softmax, REF.accuracy),
    "token counts ignored": (predict_ignores_counts, REF.accuracy),
    "missing options not masked": (predict_divides_without_mask, REF.accuracy),
    "softmax over items": (predict_softmax_over_items, REF.accuracy),
    "one based choices": (predict_one_based, REF.accuracy),
    "accuracy in percent": (REF.predict_options, accuracy_percent),
    "accuracy truncates lengths": (REF.predict_options, accuracy_truncates),
}


@pytest.mark.parametrize("predict_fn, accuracy_fn", WRONG_MCQ.values(), ids=WRONG_MCQ.keys())
def test_check_mcq_rejects(predict_fn, accuracy_fn):
    with pytest.raises(AssertionError):
        checks.check_mcq(predict_fn, accuracy_fn)


# ---------------------------------------------------------------------------------------------------------
# 2.2 Calibration


def make_bins(assign):
    def calibration_bins(confidences, correct, n_bins=10):
        confidences = np.asarray(confidences, dtype=float)
        correct = np.asarray(correct, dtype=float)
        bins = assign(confidences, n_bins)
        keep = (bins >= 0) & (bins < n_bins)
        counts = np.bincount(bins[keep], minlength=n_bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_confidence = np.bincount(bins[keep], weights=confidences[keep], minlength=n_bins) / counts
            accuracy = np.bincount(bins[keep], weights=correct[keep], minlength=n_bins) / counts
        return counts, mean_confidence, accuracy

    return calibration_bins


bins_right_closed = make_bins(lambda c, m: np.clip(np.ceil(c * m).astype(int) - 1, 0, m - 1))
bins_drop_one = make_bins(lambda c, m: np.floor(c * m).astype(int))
bins_one_too_many = make_bins(lambda c, m: np.minimum(np.floor(c * (m + 1)).astype(int), m - 1))


def make_ece(calibration_bins, weighted=True, signed=False):
    def expected_calibration_error(confidences, correct, n_bins=10):
        counts, mean_confidence, accuracy = calibration_bins(confidences, correct, n_bins)
        filled = counts > 0
        gaps = accuracy[filled] - mean_confidence[filled]
        gaps = gaps if signed else np.abs(gaps)
        if weighted:
            return float(np.sum(counts[filled] * gaps) / len(np.asarray(confidences)))
        return float(np.mean(gaps))

    return expected_calibration_error


WRONG_CALIBRATION = {
    "bins closed on the right": (bins_right_closed, make_ece(bins_right_closed)),
    "confidence one dropped": (bins_drop_one, make_ece(bins_drop_one)),
    "bin width off by one": (bins_one_too_many, make_ece(bins_one_too_many)),
    "ece unweighted": (REF.calibration_bins, make_ece(REF.calibration_bins, weighted=False)),
    "ece signed gaps": (REF.calibration_bins, make_ece(REF.calibration_bins, signed=True)),
}


@pytest.mark.parametrize("bins_fn, ece_fn", WRONG_CALIBRATION.values(), ids=WRONG_CALIBRATION.keys())
def test_check_calibration_rejects(bins_fn, ece_fn):
    with pytest.raises(AssertionError):
        checks.check_calibration(bins_fn, ece_fn)


# ---------------------------------------------------------------------------------------------------------
# 2.3 Brier score


def brier_true_class_only(probabilities, labels):
    probabilities, labels = np.asarray(probabilities, dtype=float), np.asarray(labels)
    if probabilities.ndim == 1:
        return REF.brier_score(probabilities, labels)
    if labels.max() >= probabilities.shape[1]:
        raise ValueError("bad label")
    return float(np.mean((1 - probabilities[np.arange(len(labels)), labels]) ** 2))


def brier_mean_over_classes(probabilities, labels):
    probabilities, labels = np.asarray(probabilities, dtype=float), np.asarray(labels)
    if probabilities.ndim == 1:
        return REF.brier_score(probabilities, labels)
    return REF.brier_score(probabilities, labels) / probabilities.shape[1]


def brier_binary_wrong_class(probabilities, labels):
    probabilities, labels = np.asarray(probabilities, dtype=float), np.asarray(labels)
    if probabilities.ndim == 1:
        return float(np.mean((1 - probabilities - labels) ** 2))
    return REF.brier_score(probabilities, labels)


def brier_no_label_check(probabilities, labels):
    probabilities, labels = np.asarray(probabilities, dtype=float), np.asarray(labels)
    if probabilities.ndim == 1:
        return float(np.mean((probabilities - labels) ** 2))
    one_hot = np.zeros_like(probabilities)
    valid = labels < probabilities.shape[1]
    one_hot[np.arange(len(labels))[valid], labels[valid]] = 1.0
    return float(np.mean(np.sum((probabilities - one_hot) ** 2, axis=1)))


WRONG_BRIER = {
    "true class only": brier_true_class_only,
    "mean over classes": brier_mean_over_classes,
    "binary uses class zero": brier_binary_wrong_class,
    "labels not validated": brier_no_label_check,
}


@pytest.mark.parametrize("fn", WRONG_BRIER.values(), ids=WRONG_BRIER.keys())
def test_check_brier_rejects(fn):
    with pytest.raises(AssertionError):
        checks.check_brier_score(fn)


# ---------------------------------------------------------------------------------------------------------
# 3.1 Group fairness


def make_rates(tpr_denominator="positives", fpr_denominator="negatives"):
    def group_rates(y_true, y_pred, groups):
        y_true, y_pred, groups = (np.asarray(v) for v in (y_true, y_pred, groups))
        y_true, y_pred = y_true.astype(bool), y_pred.astype(bool)
        rows = {}
        for group in np.unique(groups):
            m = groups == group
            with np.errstate(invalid="ignore", divide="ignore"):
                tp = np.sum(y_pred & y_true & m)
                fp = np.sum(y_pred & ~y_true & m)
                tpr_base = np.sum(y_true & m) if tpr_denominator == "positives" else np.sum(y_pred & m)
                fpr_base = np.sum(~y_true & m) if fpr_denominator == "negatives" else np.sum(m)
                rows[group] = {"n": int(m.sum()), "selection_rate": y_pred[m].mean(),
                               "tpr": tp / tpr_base if tpr_base else np.nan,
                               "fpr": fp / fpr_base if fpr_base else np.nan}
        return pd.DataFrame.from_dict(rows, orient="index")

    return group_rates


def gaps_signed(y_true, y_pred, groups):
    rates = REF.group_rates(y_true, y_pred, groups)
    first, last = rates.index[0], rates.index[-1]
    tpr = float(rates.loc[first, "tpr"] - rates.loc[last, "tpr"])
    fpr = float(rates.loc[first, "fpr"] - rates.loc[last, "fpr"])
    return {"demographic_parity_difference": float(rates.loc[first, "selection_rate"] - rates.loc[last, "selection_rate"]),
            "tpr_difference": tpr, "fpr_difference": fpr, "equalized_odds_difference": max(tpr, fpr)}


def gaps_mean_odds(y_true, y_pred, groups):
    gaps = REF.fairness_gaps(y_true, y_pred, groups)
    gaps["equalized_odds_difference"] = (gaps["tpr_difference"] + gaps["fpr_difference"]) / 2
    return gaps


def gaps_nan_dropped(y_true, y_pred, groups):
    rates = REF.group_rates(y_true, y_pred, groups)
    spread = {c: float(np.nanmax(rates[c]) - np.nanmin(rates[c])) for c in ("selection_rate", "tpr", "fpr")}
    return {"demographic_parity_difference": spread["selection_rate"], "tpr_difference": spread["tpr"],
            "fpr_difference": spread["fpr"], "equalized_odds_difference": max(spread["tpr"], spread["fpr"])}


def gaps_base_rates(y_true, y_pred, groups):
    gaps = REF.fairness_gaps(y_true, y_pred, groups)
    base = pd.Series(np.asarray(y_true, dtype=float)).groupby(np.asarray(groups)).mean()
    gaps["demographic_parity_difference"] = float(base.max() - base.min())
    return gaps


WRONG_FAIRNESS = {
    "tpr over flagged patients": (make_rates(tpr_denominator="flagged"), REF.fairness_gaps),
    "fpr over whole group": (make_rates(fpr_denominator="group"), REF.fairness_gaps),
    "signed gaps": (REF.group_rates, gaps_signed),
    "equalized odds averaged": (REF.group_rates, gaps_mean_odds),
    "nan groups dropped": (REF.group_rates, gaps_nan_dropped),
    "parity from base rates": (REF.group_rates, gaps_base_rates),
}


@pytest.mark.parametrize("rates_fn, gaps_fn", WRONG_FAIRNESS.values(), ids=WRONG_FAIRNESS.keys())
def test_check_group_fairness_rejects(rates_fn, gaps_fn):
    with pytest.raises(AssertionError):
        checks.check_group_fairness(rates_fn, gaps_fn)


# ---------------------------------------------------------------------------------------------------------
# 3.2 WEAT


def association_dot_products(W, A, B):
    W, A, B = (np.asarray(M, dtype=float) for M in (W, A, B))
    return (W @ A.T).mean(axis=1) - (W @ B.T).mean(axis=1)


def association_pooled(W, A, B):
    sims_a = REF.cosine_similarity_matrix(W, A)
    sims_b = REF.cosine_similarity_matrix(W, B)
    return (sims_a.sum(axis=1) - sims_b.sum(axis=1)) / (len(A) + len(B))


def effect_size_population_std(X, Y, A, B):
    s_x, s_y = REF.weat_association(X, A, B), REF.weat_association(Y, A, B)
    return float((s_x.mean() - s_y.mean()) / np.concatenate([s_x, s_y]).std())


def effect_size_pooled_within(X, Y, A, B):
    s_x, s_y = REF.weat_association(X, A, B), REF.weat_association(Y, A, B)
    pooled = math.sqrt((s_x.var(ddof=1) + s_y.var(ddof=1)) / 2)
    return float((s_x.mean() - s_y.mean()) / pooled)


def p_value_strict(X, Y, A, B):
    if len(X) != len(Y):
        raise ValueError("sizes differ")
    s = REF.weat_association(np.concatenate([X, Y]), A, B)
    n = len(X)
    observed = s[:n].sum() - s[n:].sum()
    stats = [2 * s[list(c)].sum() - s.sum() for c in itertools.combinations(range(2 * n), n)]
    return float(np.mean(np.array(stats) > observed + 1e-12 * abs(observed)))


def p_value_two_sided(X, Y, A, B):
    if len(X) != len(Y):
        raise ValueError("sizes differ")
    s = REF.weat_association(np.concatenate([X, Y]), A, B)
    n = len(X)
    observed = s[:n].sum() - s[n:].sum()
    stats = np.array([2 * s[list(c)].sum() - s.sum() for c in itertools.combinations(range(2 * n), n)])
    return float(np.mean(np.abs(stats) >= abs(observed) * (1 - 1e-12)))


def p_value_no_size_check(X, Y, A, B):
    s_x, s_y = REF.weat_association(X, A, B), REF.weat_association(Y, A, B)
    s = np.concatenate([s_x, s_y])
    observed = s_x.sum() - s_y.sum()
    stats = [s[list(c)].sum() - (s.sum() - s[list(c)].sum()) for c in itertools.combinations(range(len(s)), len(X))]
    return float(np.mean(np.array(stats) >= observed - 1e-12 * abs(observed)))


WRONG_WEAT = {
    "dot products": (association_dot_products, REF.weat_effect_size, REF.weat_p_value),
    "pooled attribute mean": (association_pooled, REF.weat_effect_size, REF.weat_p_value),
    "population std": (REF.weat_association, effect_size_population_std, REF.weat_p_value),
    "within-group pooled std": (REF.weat_association, effect_size_pooled_within, REF.weat_p_value),
    "strictly greater": (REF.weat_association, REF.weat_effect_size, p_value_strict),
    "two sided": (REF.weat_association, REF.weat_effect_size, p_value_two_sided),
    "unequal sizes accepted": (REF.weat_association, REF.weat_effect_size, p_value_no_size_check),
}


@pytest.mark.parametrize("association_fn, effect_fn, p_fn", WRONG_WEAT.values(), ids=WRONG_WEAT.keys())
def test_check_weat_rejects(association_fn, effect_fn, p_fn):
    with pytest.raises(AssertionError):
        checks.check_weat(association_fn, effect_fn, p_fn)


# ---------------------------------------------------------------------------------------------------------
# 4.1 Bootstrap


def _replicates(values, statistic, n_resamples, rng, replace=True):
    values = np.asarray(values)
    if replace:
        return np.array([statistic(values[rng.integers(0, len(values), len(values))]) for _ in range(n_resamples)])
    return np.array([statistic(rng.permutation(values)) for _ in range(n_resamples)])


def bootstrap_basic(values, statistic=np.mean, n_resamples=2000, confidence_level=0.95, rng=None):
    replicates = _replicates(values, statistic, n_resamples, rng)
    alpha = (1 - confidence_level) / 2
    low, high = np.quantile(replicates, [alpha, 1 - alpha])
    estimate = statistic(np.asarray(values))
    return float(2 * estimate - high), float(2 * estimate - low)


def bootstrap_alpha_not_halved(values, statistic=np.mean, n_resamples=2000, confidence_level=0.95, rng=None):
    replicates = _replicates(values, statistic, n_resamples, rng)
    alpha = 1 - confidence_level
    low, high = np.quantile(replicates, [alpha, 1 - alpha])
    return float(low), float(high)


def bootstrap_without_replacement(values, statistic=np.mean, n_resamples=2000, confidence_level=0.95, rng=None):
    replicates = _replicates(values, statistic, n_resamples, rng, replace=False)
    alpha = (1 - confidence_level) / 2
    low, high = np.quantile(replicates, [alpha, 1 - alpha])
    return float(low), float(high)


def bootstrap_global_state(values, statistic=np.mean, n_resamples=2000, confidence_level=0.95, rng=None):
    values = np.asarray(values)
    replicates = [statistic(np.random.choice(values, len(values))) for _ in range(n_resamples)]
    alpha = (1 - confidence_level) / 2
    low, high = np.quantile(replicates, [alpha, 1 - alpha])
    return float(low), float(high)


def bootstrap_normal(values, statistic=np.mean, n_resamples=2000, confidence_level=0.95, rng=None):
    import scipy.stats

    replicates = _replicates(values, statistic, n_resamples, rng)
    z = scipy.stats.norm.ppf(1 - (1 - confidence_level) / 2)
    estimate = statistic(np.asarray(values))
    return float(estimate - z * replicates.std(ddof=1)), float(estimate + z * replicates.std(ddof=1))


WRONG_BOOTSTRAP = {
    "basic interval": bootstrap_basic,
    "alpha not halved": bootstrap_alpha_not_halved,
    "without replacement": bootstrap_without_replacement,
    "global random state": bootstrap_global_state,
    "normal interval": bootstrap_normal,
}


@pytest.mark.parametrize("fn", WRONG_BOOTSTRAP.values(), ids=WRONG_BOOTSTRAP.keys())
def test_check_bootstrap_rejects(fn):
    with pytest.raises(AssertionError):
        checks.check_bootstrap_ci(fn)


def test_check_bootstrap_accepts_other_draw_order():
    # Drawing resample by resample instead of in one matrix changes the numbers, not the interval's law.
    def bootstrap_loop(values, statistic=np.mean, n_resamples=2000, confidence_level=0.95, rng=None):
        replicates = _replicates(values, statistic, n_resamples, rng)
        alpha = (1 - confidence_level) / 2
        return tuple(float(q) for q in np.quantile(replicates, [alpha, 1 - alpha]))

    checks.check_bootstrap_ci(bootstrap_loop)


# ---------------------------------------------------------------------------------------------------------
# 4.2 Paired permutation test


def permutation_one_sided(scores_a, scores_b, n_resamples=10_000, rng=None):
    d = np.asarray(scores_a, dtype=float) - np.asarray(scores_b, dtype=float)
    observed = d.mean()
    if 2 ** len(d) <= n_resamples:
        signs = np.array(list(itertools.product([1.0, -1.0], repeat=len(d))))
        return float(np.mean((signs * d).mean(axis=1) >= observed - 1e-12 * abs(observed)))
    signs = rng.choice([1.0, -1.0], size=(n_resamples, len(d)))
    return float((np.sum((signs * d).mean(axis=1) >= observed) + 1) / (n_resamples + 1))


def permutation_strict(scores_a, scores_b, n_resamples=10_000, rng=None):
    d = np.asarray(scores_a, dtype=float) - np.asarray(scores_b, dtype=float)
    observed = abs(d.mean())
    if 2 ** len(d) <= n_resamples:
        signs = np.array(list(itertools.product([1.0, -1.0], repeat=len(d))))
        return float(np.mean(np.abs((signs * d).mean(axis=1)) > observed))
    signs = rng.choice([1.0, -1.0], size=(n_resamples, len(d)))
    return float((np.sum(np.abs((signs * d).mean(axis=1)) > observed) + 1) / (n_resamples + 1))


def permutation_unpaired(scores_a, scores_b, n_resamples=10_000, rng=None):
    rng = np.random.default_rng(0) if rng is None else rng
    a, b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    pooled = np.concatenate([a, b])
    observed = abs(a.mean() - b.mean())
    count = 0
    for _ in range(n_resamples):
        shuffled = rng.permutation(pooled)
        count += abs(shuffled[: len(a)].mean() - shuffled[len(a):].mean()) >= observed - 1e-12
    return float((count + 1) / (n_resamples + 1))


def permutation_no_plus_one(scores_a, scores_b, n_resamples=10_000, rng=None):
    d = np.asarray(scores_a, dtype=float) - np.asarray(scores_b, dtype=float)
    if 2 ** len(d) <= n_resamples:
        return REF.paired_permutation_test(scores_a, scores_b, n_resamples, rng)
    observed = abs(d.mean())
    signs = rng.choice([1.0, -1.0], size=(n_resamples, len(d)))
    return float(np.mean(np.abs((signs * d).mean(axis=1)) >= observed * (1 - 1e-12)))


def permutation_t_test(scores_a, scores_b, n_resamples=10_000, rng=None):
    import scipy.stats

    a, b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    if np.all(a == b):
        return 1.0
    return float(scipy.stats.ttest_rel(a, b).pvalue)


WRONG_PERMUTATION = {
    "one sided": permutation_one_sided,
    "strictly greater": permutation_strict,
    "unpaired shuffle": permutation_unpaired,
    "no plus one": permutation_no_plus_one,
    "paired t test": permutation_t_test,
}


@pytest.mark.parametrize("fn", WRONG_PERMUTATION.values(), ids=WRONG_PERMUTATION.keys())
def test_check_paired_permutation_rejects(fn):
    with pytest.raises(AssertionError):
        checks.check_paired_permutation_test(fn)


# ---------------------------------------------------------------------------------------------------------
# 4.3 McNemar


def table_transposed(correct_a, correct_b):
    return REF.paired_contingency_table(correct_a, correct_b).T


def table_swapped_rows(correct_a, correct_b):
    return REF.paired_contingency_table(correct_a, correct_b)[::-1, ::-1]


def make_mcnemar(correction=True, double=True, clip=True, zero_case=True):
    import scipy.stats

    def mcnemar_test(correct_a, correct_b, exact=True):
        table = REF.paired_contingency_table(correct_a, correct_b)
        b, c = int(table[0, 1]), int(table[1, 0])
        if b + c == 0 and zero_case:
            return 0.0, 1.0
        if exact:
            p = scipy.stats.binom.cdf(min(b, c), b + c, 0.5) * (2 if double else 1)
            return float(min(b, c)), float(min(1.0, p) if clip else p)
        with np.errstate(divide="ignore", invalid="ignore"):
            statistic = (abs(b - c) - (1 if correction else 0)) ** 2 / np.float64(b + c)
        return float(statistic), float(scipy.stats.chi2.sf(statistic, 1))

    return mcnemar_test


WRONG_MCNEMAR = {
    "table transposed": (table_transposed, REF.mcnemar_test),
    "table rows swapped": (table_swapped_rows, REF.mcnemar_test),
    "no continuity correction": (REF.paired_contingency_table, make_mcnemar(correction=False)),
    "exact one sided": (REF.paired_contingency_table, make_mcnemar(double=False)),
    "p value not clipped": (REF.paired_contingency_table, make_mcnemar(clip=False)),
    "no disagreement case": (REF.paired_contingency_table, make_mcnemar(zero_case=False)),
}


@pytest.mark.parametrize("table_fn, test_fn", WRONG_MCNEMAR.values(), ids=WRONG_MCNEMAR.keys())
def test_check_mcnemar_rejects(table_fn, test_fn):
    with pytest.raises(AssertionError):
        checks.check_mcnemar(table_fn, test_fn)


# ---------------------------------------------------------------------------------------------------------
# 4.4 Error analysis


def error_table_transposed(answers, choices, n_options=4):
    return REF.error_table(choices, answers, n_options).rename_axis(index="answer", columns="chosen")


def error_table_crosstab(answers, choices, n_options=4):
    letters = np.array([chr(ord("A") + k) for k in range(n_options)])
    return pd.crosstab(pd.Series(letters[np.asarray(answers)]), pd.Series(letters[np.asarray(choices)]))


def errors_sorted_by_rate(topics, correct):
    return REF.errors_by_topic(topics, correct).sort_values(["error_rate", "errors"], ascending=False)


def errors_share_of_all(topics, correct):
    summary = REF.errors_by_topic(topics, correct)
    summary["error_rate"] = summary["errors"] / summary["errors"].sum()
    return summary


WRONG_ERRORS = {
    "table transposed": (error_table_transposed, REF.errors_by_topic),
    "crosstab drops unused letters": (error_table_crosstab, REF.errors_by_topic),
    "sorted by rate": (REF.error_table, errors_sorted_by_rate),
    "rate as share of errors": (REF.error_table, errors_share_of_all),
}


@pytest.mark.parametrize("table_fn, topic_fn", WRONG_ERRORS.values(), ids=WRONG_ERRORS.keys())
def test_check_error_analysis_rejects(table_fn, topic_fn):
    with pytest.raises(AssertionError):
        checks.check_error_analysis(table_fn, topic_fn)


# ---------------------------------------------------------------------------------------------------------
# Demo mistakes


def test_demo_mistakes_give_partial_credit():
    notebook = read_notebook(SOURCE_NOTEBOOK)
    module = mistakes_module("week05")

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
    assert failed == ["test_calibration", "test_corpus_bleu", "test_mcnemar", "test_weat"], outcomes
