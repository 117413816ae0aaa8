"""Text to tokens, split the way GloVe's corpora were (the Stanford PTB tokenizer), so that as
many tokens as possible find a pretrained vector, without spaCy.

Lowercase; HTML tags (IMDB's `<br />`) become spaces and entities (`&amp;`) their characters;
words are runs of letters and digits, apostrophes inside them kept (`o'neill`); every other
visible character is a token of its own (`!`, `#`, `.`); clitics are split off as PTB does:
"don't" -> "do", "n't"; "it's" -> "it", "'s"; "can't" -> "ca", "n't". The replacement character
U+FFFD is dropped: it marks bytes that were not text (corpora.py counts them), not a token.
(Named tokens.py, not tokenize.py, so that it never shadows the standard library's tokenize.)
"""

from __future__ import annotations

import html
import re

CLITICS = ("n't", "'s", "'re", "'ve", "'ll", "'m", "'d")

_TAG = re.compile(r"<[^>]*>")
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[^\w\s\ufffd]")
_CLITIC = re.compile(r"(?<=.)(?:" + "|".join(CLITICS) + r")$")


def tokenize(text: str) -> list[str]:
    """The tokens of `text`, in order; an empty list if it has none."""
    text = html.unescape(_TAG.sub(" ", text)).lower().replace("\u2019", "'")
    tokens = []
    for token in _TOKEN.findall(text):
        clitic = _CLITIC.search(token) if "'" in token else None
        if clitic:
            tokens += [token[:clitic.start()], clitic.group()]
        else:
            tokens.append(token)
    return tokens
