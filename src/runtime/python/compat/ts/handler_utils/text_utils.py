"""ts.handler_utils.text_utils: the two torchtext helpers TorchServe's text handlers use, so that they run
without torchtext (which Debian does not ship): get_tokenizer("basic_english") and ngrams_iterator."""

import re

# basic_english, in order: each pattern and what it becomes (torchtext's documented normalisation).
_RULES = [
    (re.compile(p), r)
    for p, r in (
        (r"\'", " '  "),
        (r"\"", ""),
        (r"\.", " . "),
        (r"<br \/>", " "),
        (r",", " , "),
        (r"\(", " ( "),
        (r"\)", " ) "),
        (r"\!", " ! "),
        (r"\?", " ? "),
        (r"\;", " "),
        (r"\:", " "),
        (r"\s+", " "),
    )
]


def _basic_english(line):
    """Lower-cases the line, spaces out quotes and punctuation, drops `"`, `;`, `:`, then splits on whitespace."""
    line = line.lower()
    for pattern, replacement in _RULES:
        line = pattern.sub(replacement, line)
    return line.split()


def _split(line):
    return line.split()


def get_tokenizer(tokenizer, language="en"):
    """None: str.split; "basic_english": the normalising tokenizer above; a callable: itself."""
    if tokenizer is None:
        return _split
    if tokenizer == "basic_english":
        if language != "en":
            raise ValueError("Basic normalization is only available for English (en)")
        return _basic_english
    if callable(tokenizer):
        return tokenizer
    raise ValueError(
        "tokenizer {!r} is not available without torchtext: use 'basic_english', None or a function".format(tokenizer)
    )


def ngrams_iterator(token_list, ngrams):
    """The tokens, then every run of 2..ngrams consecutive tokens joined by a space:
    ['here', 'we', 'are'], 2 -> here, we, are, 'here we', 'we are'."""
    for token in token_list:
        yield token
    for n in range(2, ngrams + 1):
        for i in range(len(token_list) - n + 1):
            yield " ".join(token_list[i : i + n])


class DictVocab(dict):
    """A vocabulary saved as a plain dict {token: index}, looked up like torchtext's Vocab: an unknown token
    gives the index of "<unk>" (else 0), without adding it to the dict."""

    def __init__(self, mapping):
        super().__init__(mapping)
        self.default_index = mapping.get("<unk>", 0)

    def __missing__(self, token):
        return self.default_index


class TextBatch(tuple):
    """TextClassifier.preprocess's result: the (token ids, first text's tokens) pair TorchServe returns,
    plus `offsets` (where each text of the batch starts) and `texts` (every text's tokens)."""
