"""ICD-10-CM chapter classification: labelled code descriptions, a stratified split and a word vocabulary.

The codes and descriptions come from the `simple-icd-10-cm` package (the ICD-10-CM tabular list, a free
publication of the CDC's National Center for Health Statistics). The label of a code is its chapter, the
last entry of `simple_icd_10_cm.get_ancestors(code)`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from course_lib.data import icd10cm_descriptions

# Four chapters whose descriptions share a vocabulary of anatomy and disease words but name different organs.
DEFAULT_CHAPTERS = ("4", "9", "10", "11")

PAD_TOKEN, UNK_TOKEN = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1

_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class ChapterSplit:
    """A seeded, stratified train/test split of code descriptions labelled by chapter."""

    train_texts: list[str]
    train_labels: list[int]
    """Index into `chapters` of each training description."""
    test_texts: list[str]
    test_labels: list[int]
    chapters: tuple[str, ...]
    """Chapter numbers as the package names them, "1" to "22". Label i stands for chapters[i]."""
    titles: tuple[str, ...]
    """Chapter titles, in the order of `chapters`."""
    train_codes: list[str]
    test_codes: list[str]


def chapter_of(code: str) -> str:
    """Return the chapter number ("1" to "22") of an ICD-10-CM code, block or category."""
    import simple_icd_10_cm as icd

    if not icd.is_valid_item(code):
        raise ValueError(f"{code!r} is not an ICD-10-CM code, block or chapter")
    if icd.is_chapter(code):
        return code
    return icd.get_ancestors(code)[-1]


def chapter_codes(chapter: str) -> list[str]:
    """Return the leaf codes (those without children) of a chapter, in the package's order."""
    import simple_icd_10_cm as icd

    if not icd.is_chapter(chapter):
        raise ValueError(f"{chapter!r} is not an ICD-10-CM chapter: expected a number from '1' to '22'")
    return [code for code in icd.get_descendants(chapter) if icd.is_leaf(code)]


def load_chapter_classification(
    chapters: tuple[str, ...] = DEFAULT_CHAPTERS,
    n_per_chapter: int = 300,
    test_size: float = 0.25,
    seed: int = 0,
) -> ChapterSplit:
    """Sample `n_per_chapter` leaf codes of each chapter and split them, stratified by chapter.

    A chapter with fewer leaf codes contributes all of them. The sample and the split depend only on `seed`.
    """
    import simple_icd_10_cm as icd
    from sklearn.model_selection import train_test_split

    chapters = tuple(str(chapter) for chapter in chapters)
    if len(set(chapters)) < 2:
        raise ValueError(f"a classification task needs at least two different chapters, got {chapters}")
    if n_per_chapter < 2:
        raise ValueError(f"n_per_chapter must be at least 2 so that each chapter has a test example, got {n_per_chapter}")

    descriptions = icd10cm_descriptions()
    rng = np.random.default_rng(seed)
    codes, labels = [], []
    for label, chapter in enumerate(chapters):
        leaves = chapter_codes(chapter)
        chosen = rng.choice(len(leaves), size=min(n_per_chapter, len(leaves)), replace=False)
        for index in sorted(chosen):
            code = leaves[index]
            # The hierarchy, not the code's letter, defines the chapter: D50-D89 and H60-H95 share letters
            # with other chapters.
            if chapter_of(code) != chapter:
                raise RuntimeError(f"code {code} listed under chapter {chapter} has ancestors {icd.get_ancestors(code)}")
            codes.append(code)
            labels.append(label)

    train_codes, test_codes, train_labels, test_labels = train_test_split(
        codes, labels, test_size=test_size, stratify=labels, random_state=seed
    )
    return ChapterSplit(
        train_texts=[descriptions[code] for code in train_codes],
        train_labels=list(train_labels),
        test_texts=[descriptions[code] for code in test_codes],
        test_labels=list(test_labels),
        chapters=chapters,
        titles=tuple(icd.get_description(chapter) for chapter in chapters),
        train_codes=list(train_codes),
        test_codes=list(test_codes),
    )


def tokenize(text: str) -> list[str]:
    """Split text into lower-case words of letters and digits; punctuation separates words and is dropped."""
    return _WORD.findall(text.lower())


def build_vocabulary(texts: list[str], min_count: int = 1) -> dict[str, int]:
    """Map each word seen at least `min_count` times to an id, most frequent first, ties in alphabetical order.

    Id 0 is the padding token and id 1 stands for unknown words.
    """
    counts = Counter(word for text in texts for word in tokenize(text))
    words = sorted((word for word, count in counts.items() if count >= min_count), key=lambda w: (-counts[w], w))
    vocabulary = {PAD_TOKEN: PAD_ID, UNK_TOKEN: UNK_ID}
    for word in words:
        vocabulary[word] = len(vocabulary)
    return vocabulary


def encode_texts(texts: list[str], vocabulary: dict[str, int], max_length: int | None = None):
    """Return a (N, T) LongTensor of word ids, padded with PAD_ID to the longest text or cut at `max_length`.

    Unknown words get UNK_ID. A text without any word becomes a row of padding.
    """
    import torch

    rows = [[vocabulary.get(word, UNK_ID) for word in tokenize(text)] for text in texts]
    if max_length is not None:
        if max_length < 1:
            raise ValueError(f"max_length must be positive, got {max_length}")
        rows = [row[:max_length] for row in rows]
    width = max((len(row) for row in rows), default=0)
    ids = torch.full((len(rows), width), PAD_ID, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return ids
