"""Data of week 5 (evaluation): invented medical quiz items, simulated model scores, a synthetic clinical-risk
table, constructed word vectors and a small clinical vocabulary.

Everything here is written by the course or generated from fixed seeds. None of it comes from patients,
exams or trained models, and the quiz items are not exam questions: they are invented for practice.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

# ---------------------------------------------------------------------------------------------------------
# Medical multiple-choice items


@dataclass(frozen=True)
class QuizItem:
    """One multiple-choice item: a question, 3 or 4 options, the index of the correct option and a topic."""

    question: str
    options: tuple[str, ...]
    answer: int
    topic: str


# Items written by the course. The medical facts are textbook facts, but the wording is invented.
_WRITTEN_ITEMS = [
    QuizItem("Which electrolyte disturbance most often causes peaked T waves on an ECG?",
             ("hyperkalaemia", "hypokalaemia", "hypernatraemia", "hypocalcaemia"), 0, "cardiology"),
    QuizItem("Which valve lies between the left atrium and the left ventricle?",
             ("tricuspid valve", "mitral valve", "pulmonary valve", "aortic valve"), 1, "cardiology"),
    QuizItem("A resting heart rate above which value defines tachycardia in adults?",
             ("60 beats per minute", "80 beats per minute", "100 beats per minute", "140 beats per minute"), 2,
             "cardiology"),
    QuizItem("Which hormone lowers blood glucose?",
             ("glucagon", "cortisol", "adrenaline", "insulin"), 3, "endocrinology"),
    QuizItem("Which gland secretes thyroid-stimulating hormone?",
             ("anterior pituitary", "thyroid", "adrenal cortex"), 0, "endocrinology"),
    QuizItem("Which laboratory value reflects average blood glucose over about three months?",
             ("fasting glucose", "HbA1c", "serum insulin", "C-peptide"), 1, "endocrinology"),
    QuizItem("Which organism causes tuberculosis?",
             ("Staphylococcus aureus", "Streptococcus pneumoniae", "Mycobacterium tuberculosis",
              "Escherichia coli"), 2, "infectious disease"),
    QuizItem("Which class of drugs treats viral infections such as influenza?",
             ("antibiotics", "antifungals", "antihelminthics", "antivirals"), 3, "infectious disease"),
    QuizItem("Which vector transmits malaria?",
             ("the Anopheles mosquito", "the tsetse fly", "the deer tick"), 0, "infectious disease"),
    QuizItem("Which part of the nephron reabsorbs most of the filtered sodium?",
             ("the collecting duct", "the proximal tubule", "the distal tubule", "the glomerulus"), 1,
             "nephrology"),
    QuizItem("Which blood test is the usual marker of kidney filtration?",
             ("serum creatinine", "serum amylase", "troponin", "bilirubin"), 0, "nephrology"),
    QuizItem("Which lobe of the brain contains the primary visual cortex?",
             ("frontal lobe", "temporal lobe", "occipital lobe", "parietal lobe"), 2, "neurology"),
    QuizItem("Which cranial nerve controls most muscles of facial expression?",
             ("the trigeminal nerve", "the vagus nerve", "the oculomotor nerve", "the facial nerve"), 3,
             "neurology"),
    QuizItem("Which scale scores eye, verbal and motor responses after a head injury?",
             ("Glasgow Coma Scale", "Apgar score", "Wells score"), 0, "neurology"),
    QuizItem("Which gas exchange takes place in the alveoli?",
             ("oxygen in, nitrogen out", "oxygen in, carbon dioxide out", "carbon dioxide in, oxygen out",
              "nitrogen in, oxygen out"), 1, "pulmonology"),
    QuizItem("Which test measures the forced expiratory volume in one second?",
             ("spirometry", "bronchoscopy", "chest radiograph", "pulse oximetry"), 0, "pulmonology"),
]

# Drug -> class pairs for templated items. Each item offers the true class and three classes of other drugs.
_DRUG_CLASSES = [
    ("metformin", "biguanide"), ("lisinopril", "ACE inhibitor"), ("losartan", "angiotensin receptor blocker"),
    ("atorvastatin", "statin"), ("metoprolol", "beta blocker"), ("amlodipine", "calcium channel blocker"),
    ("omeprazole", "proton pump inhibitor"), ("sertraline", "selective serotonin reuptake inhibitor"),
    ("warfarin", "vitamin K antagonist"), ("furosemide", "loop diuretic"), ("amoxicillin", "penicillin"),
    ("prednisolone", "corticosteroid"), ("salbutamol", "short-acting beta agonist"), ("ibuprofen", "NSAID"),
    ("morphine", "opioid"), ("heparin", "anticoagulant"), ("levothyroxine", "thyroid hormone"),
    ("ciprofloxacin", "fluoroquinolone"), ("diazepam", "benzodiazepine"), ("spironolactone",
    "aldosterone antagonist"), ("simvastatin", "statin"), ("ramipril", "ACE inhibitor"),
    ("bisoprolol", "beta blocker"), ("hydrochlorothiazide", "thiazide diuretic"),
]

_QUIZ_SEED = 5


def _drug_items() -> list[QuizItem]:
    rng = np.random.default_rng(_QUIZ_SEED)
    classes = sorted({drug_class for _, drug_class in _DRUG_CLASSES})
    items = []
    for index, (drug, drug_class) in enumerate(_DRUG_CLASSES):
        distractors = [c for c in classes if c != drug_class]
        chosen = [distractors[i] for i in rng.choice(len(distractors), size=3, replace=False)]
        answer = index % 4  # the correct option takes every position equally often
        options = chosen[:answer] + [drug_class] + chosen[answer:]
        items.append(QuizItem(f"To which drug class does {drug} belong?", tuple(options), answer, "pharmacology"))
    return items


def medical_quiz() -> list[QuizItem]:
    """Return the course's invented medical multiple-choice items (40 items, 7 topics)."""
    return list(_WRITTEN_ITEMS) + _drug_items()


# Per-topic skill (log-odds of knowing the answer) of the two simulated models, and their preference for the
# first option, added to its per-token log-likelihood.
_SIMULATED_MODELS = {
    "large": {"skill": 1.6, "topic_shift": {"pharmacology": 0.6, "neurology": -0.6}, "first_option_bias": 0.0},
    "small": {"skill": 0.5, "topic_shift": {"pharmacology": -0.8, "cardiology": 0.3}, "first_option_bias": 0.6},
}


def option_token_counts(items: list[QuizItem] | None = None) -> np.ndarray:
    """Return the number of whitespace tokens of every option, shape (n_items, 4), 0 where an item has no option."""
    items = medical_quiz() if items is None else items
    counts = np.zeros((len(items), 4), dtype=np.int64)
    for row, item in enumerate(items):
        for column, option in enumerate(item.options):
            counts[row, column] = len(option.split())
    return counts


def simulated_option_log_likelihoods(model: str = "large", seed: int = 0) -> np.ndarray:
    """Return summed option log-likelihoods of a simulated language model on `medical_quiz()`.

    Entry [i, j] plays the part of log p(option j | question i), summed over the option's tokens, so longer
    options get lower values. Items with 3 options hold -inf in column 3. The numbers are drawn from a seeded
    generator, not computed by a trained model: `model` is "large" (more accurate) or "small" (less accurate,
    and biased toward the first option).
    """
    if model not in _SIMULATED_MODELS:
        raise ValueError(f"unknown simulated model {model!r}: expected one of {sorted(_SIMULATED_MODELS)}")
    settings = _SIMULATED_MODELS[model]
    items = medical_quiz()
    counts = option_token_counts(items)
    rng = np.random.default_rng([seed, zlib.crc32(model.encode())])

    per_token = rng.normal(-2.5, 0.5, size=counts.shape)  # (n_items, 4): mean log-probability of a token
    for row, item in enumerate(items):
        skill = settings["skill"] + settings["topic_shift"].get(item.topic, 0.0)
        knows = rng.random() < 1.0 / (1.0 + np.exp(-skill))
        if knows:
            per_token[row, item.answer] += rng.uniform(0.4, 1.2)
    per_token[:, 0] += settings["first_option_bias"]

    log_likelihoods = per_token * counts
    log_likelihoods[counts == 0] = -np.inf
    return log_likelihoods


# ---------------------------------------------------------------------------------------------------------
# A synthetic clinical-risk table


def clinical_risk_table(n_patients: int = 2000, seed: int = 0):
    """Return a synthetic table of patients with a binary outcome and the risk score of a simulated model.

    Columns: `group` ("A" or "B", a demographic group defined by the course), `age`, `outcome` (1 when the
    patient develops the condition), `risk_score` (the model's probability of the outcome). The simulated
    model underestimates the risk of group B by a fixed shift of its log-odds, so a threshold of 0.5 misses
    more true cases in group B. All values are drawn from a seeded generator: no patient data.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    group = np.where(rng.random(n_patients) < 0.4, "B", "A")
    age = rng.integers(25, 90, size=n_patients)
    true_log_odds = -2.2 + 0.045 * (age - 50) + 0.4 * (group == "B") + rng.normal(0.0, 1.0, n_patients)
    outcome = (rng.random(n_patients) < 1.0 / (1.0 + np.exp(-true_log_odds))).astype(np.int64)

    # The model's log-odds are the true ones plus noise, shifted down for group B.
    model_log_odds = true_log_odds + 1.2 * (2 * outcome - 1) + rng.normal(0.0, 0.8, n_patients)
    model_log_odds -= 0.9 * (group == "B")
    risk_score = 1.0 / (1.0 + np.exp(-model_log_odds))
    return pd.DataFrame({"group": group, "age": age, "outcome": outcome, "risk_score": risk_score})


# ---------------------------------------------------------------------------------------------------------
# Word vectors for an embedding association test

WEAT_TARGETS_X = ("he", "him", "his", "man", "male", "father")
WEAT_TARGETS_Y = ("she", "her", "hers", "woman", "female", "mother")
WEAT_ATTRIBUTES_A = ("surgeon", "cardiologist", "anaesthetist", "neurologist", "radiologist", "urologist")
WEAT_ATTRIBUTES_B = ("nurse", "midwife", "carer", "receptionist", "dietitian", "therapist")


def weat_vectors(dim: int = 24, association: float = 0.6, seed: int = 0) -> dict[str, np.ndarray]:
    """Return constructed word vectors for the WEAT word lists above, as a dict word -> float64 array (dim,).

    Each vector is Gaussian noise plus a component along a "gender" direction (+1 for X words, -1 for Y
    words) and a component along a "role" direction (+1 for A words, -1 for B words). The attribute words
    also get `association` times the gender direction, which plants an association of X with A and Y with B
    that a WEAT should detect; with association=0 there is none by construction. Not trained embeddings.
    """
    rng = np.random.default_rng(seed)
    gender, role = np.linalg.qr(rng.normal(size=(dim, 2)))[0].T  # two orthonormal directions
    vectors = {}
    for words, gender_sign, role_sign in [
        (WEAT_TARGETS_X, 1.0, 0.0),
        (WEAT_TARGETS_Y, -1.0, 0.0),
        (WEAT_ATTRIBUTES_A, association, 1.0),
        (WEAT_ATTRIBUTES_B, -association, -1.0),
    ]:
        for word in words:
            noise = rng.normal(0.0, 0.35, size=dim)
            vectors[word] = 1.5 * gender_sign * gender + 1.5 * role_sign * role + noise
    return vectors


# ---------------------------------------------------------------------------------------------------------
# Clinical vocabulary for a negation-aware concept metric

# Findings and conditions that the week's clinical metric looks for. Multi-word terms come first, so that a
# matcher trying them in order finds "abdominal pain" before "pain".
CLINICAL_CONCEPTS = (
    "shortness of breath", "chest pain", "abdominal pain", "weight loss", "night sweats", "blurred vision",
    "fever", "cough", "nausea", "vomiting", "headache", "dizziness", "palpitations", "rash", "oedema",
    "fatigue", "diarrhoea", "pneumonia", "diabetes", "hypertension", "pain",
)

# Words and phrases that negate the concepts that follow them in the same clause (after NegEx, Chapman et al.
# 2001, reduced to a handful of pre-negation cues).
NEGATION_CUES = ("no", "not", "denies", "denied", "without", "negative for", "free of", "absence of", "never")
