"""Request normalisation: requests that differ only in wording details map to one key.

Lower case, punctuation dropped (but ``_`` kept, so ``value_range`` stays one word), stopwords
and filler removed, a light suffix-stripping stemmer, and the words sorted. No synonyms: two
requests share a key only when they use the same words (different verbs can mean different
code, e.g. "return" and "print"). Identifiers such as ``is_prime`` or ``calculator/stats.py``
survive unchanged.
"""

from __future__ import annotations

import re

__all__ = ["normalize_request"]

_WORD = re.compile(r"[a-z0-9_./]+")
_STOP = frozenset(
    """a an the to of for in on at by with from into that which who whom this these those it its
    is are be been being was were do does did please can could would should will shall must may
    me my we our us you your i new some any one ones and or as so then than just also there here
    function method routine helper code""".split()
)
def _stem(word: str) -> str:
    if "_" in word or "/" in word or "." in word or len(word) <= 4:
        return word
    for suffix in ("ing", "es", "ed", "s", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def normalize_request(text: str) -> str:
    """The normal form of a request (see the module docstring)."""
    words = []
    for raw in _WORD.findall(text.lower()):
        word = raw.strip("./")
        if not word or word in _STOP:
            continue
        stem = _stem(word)
        if stem in _STOP:
            continue
        words.append(stem)
    return " ".join(sorted(set(words)))
