"""General English prose shipped with Python itself, to contrast with the medical text of `course_lib.data`.

The prose comes from `pydoc_data.topics`, the help texts that `help("if")` or `help("exceptions")` print:
sections of the Python Language Reference, generated from the documentation of the running Python version
(PSF licence). Every Python installation carries the module, on every platform and without any network
access. The wording changes a little between Python versions, so its exact size does too.
"""

from __future__ import annotations

import re
from functools import lru_cache

# A heading is underlined with one repeated punctuation character, as in reStructuredText.
_UNDERLINE = re.compile(r"[*=\-~^\"]+")
_MIN_WORDS = 12


def _is_prose(lines: list[str]) -> bool:
    """Tell prose paragraphs from code, grammar rules, tables and headings by their layout."""
    if any(line.startswith((" ", "\t")) for line in lines):  # indented: code, grammar, lists, tables
        return False
    if any(_UNDERLINE.fullmatch(line.strip()) for line in lines):  # a heading with its underline
        return False
    return True


@lru_cache(maxsize=1)
def python_docs_paragraphs() -> tuple[str, ...]:
    """Return the prose paragraphs of `pydoc_data.topics`, one line each, topics in alphabetical order.

    Indented blocks (code examples, grammar rules, tables), headings and paragraphs shorter than 12 words
    are left out. About 760 paragraphs and 220,000 characters on Python 3.11.
    """
    from pydoc_data.topics import topics

    paragraphs = []
    for name in sorted(topics):
        for block in re.split(r"\n\s*\n", topics[name]):
            lines = [line for line in block.split("\n") if line.strip()]
            if not lines or not _is_prose(lines):
                continue
            text = " ".join(line.strip() for line in lines)
            if len(text.split()) >= _MIN_WORDS:
                paragraphs.append(text)
    if not paragraphs:
        raise RuntimeError("no prose paragraphs found in pydoc_data.topics: is the Python installation complete?")
    return tuple(paragraphs)


def general_english_corpus(n_paragraphs: int | None = None) -> str:
    """Return the first `n_paragraphs` prose paragraphs of `pydoc_data.topics` (all when None), one per line."""
    paragraphs = python_docs_paragraphs()
    if n_paragraphs is not None:
        if n_paragraphs < 1:
            raise ValueError(f"n_paragraphs must be positive, got {n_paragraphs}")
        paragraphs = paragraphs[:n_paragraphs]
    return "\n".join(paragraphs)


def split_lines(text: str, heldout_fraction: float = 0.1) -> tuple[str, str]:
    """Split `text` at a line boundary into (train, heldout), the last `heldout_fraction` of its lines held out.

    Both parts keep whole lines, so no definition or paragraph is cut in two. Raise ValueError when the
    fraction is not strictly between 0 and 1, or when either part would be empty.
    """
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must lie strictly between 0 and 1, got {heldout_fraction}")
    lines = text.split("\n")
    n_heldout = round(len(lines) * heldout_fraction)
    if n_heldout == 0 or n_heldout == len(lines):
        raise ValueError(
            f"cannot hold out {heldout_fraction:.0%} of {len(lines)} lines and keep both parts non-empty"
        )
    return "\n".join(lines[:-n_heldout]), "\n".join(lines[-n_heldout:])
