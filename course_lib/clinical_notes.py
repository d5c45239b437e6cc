"""Invented clinical data for week 6: notes with labelled PHI spans, triage sentences and a patient cohort.

Every name, date, number and address here is made up from seeded templates. No real patient record was used,
because no package carries real clinical notes under a licence that allows redistribution. Phone numbers use
the 555 exchange and e-mail addresses the reserved `example.org` and `example.com` domains.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

# Labels of the gold PHI spans, named after the HIPAA Safe Harbor identifiers (45 CFR 164.514(b)(2)) that the
# notes contain. A street address, a city and a ZIP code are all "geographic subdivisions smaller than a
# state", kept apart here so that errors can be counted per kind. State names are not PHI.
PHI_LABELS = (
    "NAME",
    "DATE",
    "AGE",
    "PHONE",
    "FAX",
    "EMAIL",
    "SSN",
    "MRN",
    "HEALTH_PLAN",
    "ACCOUNT",
    "LICENSE",
    "VEHICLE",
    "DEVICE",
    "URL",
    "IP",
    "ADDRESS",
    "CITY",
    "ZIP",
)

# The name gazetteer. Every name in the notes comes from these lists.
FIRST_NAMES = (
    "Amara", "Bjorn", "Carmen", "Dmitri", "Elena", "Farid", "Grace", "Hiroshi", "Ingrid", "Jamal",
    "Keiko", "Lars", "Maria", "Nkechi", "Oscar", "Priya", "Quentin", "Rosa", "Samir", "Tamsin",
    "Umar", "Valeria", "Wendell", "Ximena", "Yusuf", "Zofia", "Agnes", "Bruno", "Celeste", "Desmond",
)
LAST_NAMES = (
    "Abernathy", "Balogun", "Castellano", "Dubois", "Eriksen", "Fairweather", "Gallagher", "Haddad",
    "Ivanova", "Jablonski", "Kowalczyk", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Petrakis",
    "Quimby", "Rasmussen", "Szabo", "Thibodeaux", "Uchenna", "Vasquez", "Whitcombe", "Yamamoto", "Zelenko",
)
CITIES = (
    "Millbrook", "Cedar Falls", "Port Alden", "Riverton", "Ashford", "Glenhaven", "Westmere", "Oakridge",
    "Fairhaven", "Brookside",
)
STATES = ("Ohio", "Oregon", "Maine", "Texas", "Vermont", "Iowa", "Nevada", "Georgia")
STREETS = ("Birchwood", "Harbor View", "Maple", "Quarry", "Linden", "Old Mill", "Sycamore", "Juniper")
STREET_SUFFIXES = ("Lane", "Street", "Avenue", "Road", "Drive", "Court")

_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)
_COMPLAINTS = (
    "chest pain radiating to the left arm",
    "shortness of breath on exertion",
    "fever and productive cough",
    "acute confusion",
    "a fall at home with right hip pain",
    "abdominal pain and vomiting",
)
_PLANS = (
    "Continue metoprolol 25 mg twice daily. BP 132/84, HR 88.",
    "Start amoxicillin 500 mg three times daily for 7 days. Temp 38.4 C.",
    "Repeat troponin in 6 hours. Aspirin 81 mg daily. Follow-up in 2 weeks.",
    "Physical therapy 3/week. Hemoglobin 11.2 g/dL, potassium 4.1 mmol/L.",
    "Oxygen 2 L/min by nasal cannula, SpO2 94%. Review in 48 hours.",
)


@dataclass(frozen=True)
class ClinicalNote:
    """One invented note and its gold PHI spans."""

    text: str
    """The note text."""
    spans: tuple[tuple[int, int, str], ...]
    """Gold PHI spans (start, end, label), sorted by start, with text[start:end] the identifier."""


def _digits(rng: np.random.Generator, n: int) -> str:
    return "".join(str(d) for d in rng.integers(0, 10, n))


def _letters(rng: np.random.Generator, n: int) -> str:
    return "".join(chr(ord("A") + int(i)) for i in rng.integers(0, 26, n))


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _date(rng: np.random.Generator) -> str:
    """Return a full date (day and month, so PHI) in one of six common formats."""
    year = int(rng.integers(2015, 2026))
    month = int(rng.integers(1, 13))
    day = int(rng.integers(1, 29))
    style = int(rng.integers(6))
    if style == 0:
        return f"{month:02d}/{day:02d}/{year}"
    if style == 1:
        return f"{month}/{day}/{year}"
    if style == 2:
        return f"{year}-{month:02d}-{day:02d}"
    if style == 3:
        return f"{_MONTHS[month - 1]} {day}, {year}"
    if style == 4:
        return f"{day} {_MONTHS[month - 1][:3]} {year}"
    return f"{_MONTHS[month - 1][:3]} {day}"


def _phone(rng: np.random.Generator) -> str:
    area = f"{int(rng.integers(2, 10))}{_digits(rng, 2)}"
    line = _digits(rng, 4)
    style = int(rng.integers(4))
    if style == 0:
        return f"({area}) 555-{line}"
    if style == 1:
        return f"{area}-555-{line}"
    if style == 2:
        return f"{area}.555.{line}"
    return f"+1 {area} 555 {line}"


def _age(rng: np.random.Generator) -> int:
    """Draw an age: over 89 (PHI) about a third of the time, 89 itself now and then."""
    kind = int(rng.integers(6))
    if kind < 2:
        return int(rng.integers(90, 104))
    if kind == 2:
        return 89
    return int(rng.integers(18, 89))


def _age_phrase(rng: np.random.Generator) -> tuple[str, str]:
    """Return the text around an age as (before, after)."""
    return _pick(rng, (
        (" is a patient aged ", " who presented on "),
        (" is ", " years old and presented on "),
        (" is ", " y/o and presented on "),
        (" (age ", ") presented on "),
    ))


# A template is a list of pieces: plain strings, or (key, label) pairs whose value comes from the fields of a
# note. A label of None marks a value that looks like PHI but is not (an age of 89 or less, a year, a state).
_HEADER = [
    "Patient: ", ("patient", "NAME"), "    MRN: ", ("mrn", "MRN"), "\n",
    "Date of admission: ", ("date1", "DATE"), "    Date of discharge: ", ("date2", "DATE"), "\n",
]
_ATTENDING = ["Attending: Dr. ", ("doctor", "NAME"), "    Phone: ", ("phone", "PHONE"), "    Fax: ", ("fax", "FAX"), "\n"]
_ADDRESS = [
    "Address: ", ("street", "ADDRESS"), ", ", ("city", "CITY"), ", ", ("state", None), " ", ("zip", "ZIP"), "\n",
]
_CONTACT = ["E-mail: ", ("email", "EMAIL"), "    Patient portal: ", ("url", "URL"), "\n"]
_INSURANCE = [
    "Health plan member ID: ", ("plan", "HEALTH_PLAN"), "    Account no.: ", ("account", "ACCOUNT"),
    "    SSN: ", ("ssn", "SSN"), "\n",
]
_SOCIAL = [
    "Social: drives a car with license plate ", ("plate", "VEHICLE"), "; driver's license ",
    ("license", "LICENSE"), ".\n",
]
_DEVICE = ["Device: pacemaker, serial no. ", ("device", "DEVICE"), ", checked remotely from IP ", ("ip", "IP"), ".\n"]
_FAMILY = ["Emergency contact: ", ("relative", "NAME"), " (daughter), ", ("relative_phone", "PHONE"), ".\n"]


def _fields(rng: np.random.Generator) -> dict[str, str]:
    first, last = _pick(rng, FIRST_NAMES), _pick(rng, LAST_NAMES)
    year = int(rng.integers(2005, 2015))
    host = _pick(rng, ("portal.example.org", "myhealth.example.com"))
    return {
        "patient": f"{first} {last}",
        "patient_title": f"{_pick(rng, ('Mr.', 'Ms.', 'Mrs.'))} ",
        "patient_last": last,
        "doctor": _pick(rng, LAST_NAMES),
        "relative": f"{_pick(rng, FIRST_NAMES)} {last}",
        "mrn": _digits(rng, int(rng.integers(7, 9))),
        "date1": _date(rng),
        "date2": _date(rng),
        "date3": _date(rng),
        "year": str(year),
        "phone": _phone(rng),
        "fax": _phone(rng),
        "relative_phone": _phone(rng),
        "street": f"{int(rng.integers(1, 9999))} {_pick(rng, STREETS)} {_pick(rng, STREET_SUFFIXES)}",
        "city": _pick(rng, CITIES),
        "state": _pick(rng, STATES),
        "zip": _digits(rng, 5),
        "email": f"{first.lower()}.{last.lower()}{_digits(rng, 2)}@example.org",
        "url": f"https://{host}/patients/{_digits(rng, 6)}",
        "plan": f"{_letters(rng, 3)}{_digits(rng, 9)}",
        "account": f"{_digits(rng, 2)}-{_digits(rng, 6)}",
        "ssn": f"{int(rng.integers(100, 900))}-{_digits(rng, 2)}-{_digits(rng, 4)}",
        "plate": f"{int(rng.integers(1, 10))}{_letters(rng, 3)}{_digits(rng, 3)}",
        "license": f"{_letters(rng, 1)}{_digits(rng, 7)}",
        "device": f"SN-{_digits(rng, 5)}-{_letters(rng, 2)}",
        "ip": ".".join(str(int(part)) for part in rng.integers(1, 255, 4)),
        "complaint": _pick(rng, _COMPLAINTS),
        "plan_text": _pick(rng, _PLANS),
    }


def _story(rng: np.random.Generator, age: int) -> list:
    """Return the narrative pieces: presentation with the age, history with a bare year, and the plan."""
    before, after = _age_phrase(rng)
    age_label = "AGE" if age > 89 else None
    return [
        ("patient_title", None), ("patient_last", "NAME"), before, ("age", age_label),
        after, ("date3", "DATE"), " with ", ("complaint", None), ". ",
        "Prior admission in ", ("year", None), " for pneumonia. Seen by Dr. ", ("doctor", "NAME"), ".\n",
        "Plan: ", ("plan_text", None), "\n",
    ]


def _render(pieces: list, fields: dict[str, str]) -> ClinicalNote:
    parts, spans, position = [], [], 0
    for piece in pieces:
        if isinstance(piece, str):
            value, label = piece, None
        else:
            key, label = piece
            value = fields[key]
        if label is not None:
            spans.append((position, position + len(value), label))
        parts.append(value)
        position += len(value)
    return ClinicalNote("".join(parts), tuple(spans))


def generate_note(rng: np.random.Generator) -> ClinicalNote:
    """Generate one invented note: a header, a narrative, and a random subset of the identifier sections."""
    fields = _fields(rng)
    age = _age(rng)
    fields["age"] = str(age)

    optional = [_ATTENDING, _ADDRESS, _CONTACT, _INSURANCE, _SOCIAL, _DEVICE, _FAMILY]
    keep = rng.random(len(optional)) < 0.6
    order = rng.permutation(len(optional))
    pieces = list(_HEADER)
    for index in order:
        if keep[index]:
            pieces.extend(optional[index])
    pieces.extend(_story(rng, age))
    return _render(pieces, fields)


def generate_notes(n_notes: int, seed: int = 0) -> list[ClinicalNote]:
    """Generate `n_notes` invented notes from one NumPy generator seeded with `seed`."""
    if n_notes < 0:
        raise ValueError(f"n_notes must be non-negative, got {n_notes}")
    rng = np.random.default_rng(seed)
    return [generate_note(rng) for _ in range(n_notes)]


def join_notes(notes: list[ClinicalNote], separator: str = "\n\n") -> ClinicalNote:
    """Join notes into one text, shifting their gold spans, so a corpus can be scored like a single note."""
    parts, spans, position = [], [], 0
    for index, note in enumerate(notes):
        if index > 0:
            parts.append(separator)
            position += len(separator)
        parts.append(note.text)
        spans.extend((start + position, end + position, label) for start, end, label in note.spans)
        position += len(note.text)
    return ClinicalNote("".join(parts), tuple(spans))


# ---------------------------------------------------------------------------------------------------------
# Triage sentences for a tiny text classifier

_URGENT_FINDINGS = (
    "crushing chest pain", "sudden slurred speech", "severe bleeding", "unresponsive", "seizure",
    "low oxygen saturation", "sepsis", "stroke symptoms", "anaphylaxis", "suicidal thoughts",
)
_ROUTINE_FINDINGS = (
    "mild rash", "medication refill", "seasonal allergies", "routine checkup", "stable blood pressure",
    "mild back pain", "vaccination", "sore throat", "dietary advice", "follow-up visit",
)
_TRIAGE_TEMPLATES = (
    "patient reports {finding} since this morning",
    "presents with {finding} and asks for advice",
    "nurse notes {finding} at triage",
    "{finding} reported by family member",
    "caller describes {finding} today",
)


def triage_sentences(n_sentences: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Return `n_sentences` invented triage sentences and their labels (1 urgent, 0 routine), half each."""
    rng = np.random.default_rng(seed)
    texts, labels = [], np.arange(n_sentences) % 2
    rng.shuffle(labels)
    for label in labels:
        finding = _pick(rng, _URGENT_FINDINGS if label == 1 else _ROUTINE_FINDINGS)
        texts.append(_pick(rng, _TRIAGE_TEMPLATES).format(finding=finding))
    return texts, labels.astype(np.int64)


def tokenize(text: str) -> list[str]:
    """Split a sentence into lowercase words."""
    return re.findall(r"[a-z]+", text.lower())


# ---------------------------------------------------------------------------------------------------------
# A synthetic cohort for fairness


def synthetic_cohort(n_patients: int = 4000, seed: int = 0) -> dict[str, np.ndarray]:
    """Return an invented cohort with a protected group, features and a binary outcome.

    Keys: `group` (0 or 1, group 1 is a third of the cohort), `X` (n, 3) float features, `y` the outcome.
    Group 1 has a lower recorded outcome rate and its first feature is shifted, so a model trained on this
    data selects fewer patients of group 1, the pattern that reweighing and per-group thresholds address.
    """
    rng = np.random.default_rng(seed)
    group = (rng.random(n_patients) < 1 / 3).astype(np.int64)
    severity = rng.normal(0.0, 1.0, n_patients)
    # The outcome depends on severity, and it was recorded less often in group 1 at the same severity.
    logit = 1.6 * severity - 0.3 - 1.0 * group
    y = (rng.random(n_patients) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    X = np.column_stack([
        severity + rng.normal(0.0, 0.8, n_patients) - 0.4 * group,
        rng.normal(0.0, 1.0, n_patients) + 0.8 * group,
        rng.normal(0.0, 1.0, n_patients),
    ])
    return {"group": group, "X": X, "y": y}
