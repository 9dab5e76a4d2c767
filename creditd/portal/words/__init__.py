"""The portal's words in each language (en, th, ru, zh), one module each; a test checks every
language has every key English has, with the same placeholders."""

from __future__ import annotations

from creditd.portal.words import en, ru, th, zh

WORDS: dict[str, dict[str, str]] = {"en": en.WORDS, "th": th.WORDS, "ru": ru.WORDS, "zh": zh.WORDS}
