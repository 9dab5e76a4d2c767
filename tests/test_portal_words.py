"""The portal speaks every language it offers in full: each language has every key English has, and
each text formats with the same placeholders."""

from __future__ import annotations

import string

from creditd.config.fronts import LANGUAGES
from creditd.portal.words import WORDS


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_language_has_every_word_with_its_placeholders() -> None:
    assert set(WORDS) == set(LANGUAGES)
    for language, words in WORDS.items():
        assert set(words) == set(WORDS["en"]), language
        for key, text in words.items():
            assert placeholders(text) == placeholders(WORDS["en"][key]), (language, key)
