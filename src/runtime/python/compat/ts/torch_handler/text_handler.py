"""ts.torch_handler.text_handler.TextHandler: the base of the text handlers. initialize() loads the
vocabulary (the manifest's sourceVocab, else source_vocab.pt in the model); the cleanup helpers (HTML tags,
contractions, accents, punctuation) and the basic_english tokenizer are TorchServe's steps, without torchtext.

The vocabulary is whatever torch.save wrote: a plain dict {token: index} needs nothing more; a torchtext
Vocab object needs torchtext installed (Debian does not package it), and the load failure says so.
"""

import importlib.util
import logging
import os
import re
import string
import unicodedata

import torch

from _mms_compat.packages import install_hint, interpreter
from ts.handler_utils.text_utils import DictVocab, get_tokenizer
from ts.torch_handler.base_handler import BaseHandler
from ts.torch_handler.contractions import CONTRACTION_MAP
from ts.utils.util import CLEANUP_REGEX

logger = logging.getLogger(__name__)

# Longest first, so "can't've" is matched before "can't".
CONTRACTIONS_PATTERN = re.compile(
    "({})".format("|".join(re.escape(k) for k in sorted(CONTRACTION_MAP, key=len, reverse=True))),
    flags=re.IGNORECASE | re.DOTALL,
)


class TextHandler(BaseHandler):
    def __init__(self):
        super().__init__()
        self.source_vocab = None
        self.tokenizer = get_tokenizer("basic_english")
        self.input_text = None
        self.lig = None
        self.initialized = None

    def initialize(self, context):
        super().initialize(context)
        self.initialized = False
        vocab_file = (self.manifest or {}).get("model", {}).get("sourceVocab")
        path = vocab_file or self.get_source_vocab_path(context)
        self.source_vocab = _load_vocab(path)
        self.initialized = True

    def get_source_vocab_path(self, ctx):
        path = os.path.join(ctx.system_properties.get("model_dir"), "source_vocab.pt")
        if os.path.isfile(path):
            return path
        raise Exception(
            "Missing the source_vocab file: put the vocabulary in the archive as source_vocab.pt "
            "(torch.save of a dict {token: index}), e.g. with --extra-files"
        )

    def _expand_contractions(self, text):
        def expand(match):
            found = match.group(0)
            expansion = CONTRACTION_MAP.get(found) or CONTRACTION_MAP.get(found.lower())
            return found[0] + expansion[1:]

        return re.sub("'", "", CONTRACTIONS_PATTERN.sub(expand, text))

    def _remove_accented_characters(self, text):
        return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("utf-8", "ignore")

    def _remove_html_tags(self, text):
        return CLEANUP_REGEX.sub("", text)

    def _remove_puncutation(self, *args, **kwargs):
        """TorchServe's old misspelt name."""
        return self._remove_punctuation(*args, **kwargs)

    def _remove_punctuation(self, text):
        return text.translate(str.maketrans("", "", string.punctuation))

    def _tokenize(self, text):
        return self.tokenizer(text)

    def get_word_token(self, input_tokens):
        return [token.replace("\u0120", "") for token in input_tokens]


def _load_vocab(path):
    """The vocabulary as a lookup with [token] (a dict gets the <unk> index, else 0, for unknown tokens)."""
    try:
        vocab = torch.load(path)
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] == "torchtext":
            raise RuntimeError(
                "{} holds a torchtext vocabulary, and torchtext is not installed for {} (Debian does not package "
                "it): {}; or save the vocabulary as a plain dict with torch.save(dict(vocab.get_stoi()), "
                "'source_vocab.pt')".format(os.path.basename(path), interpreter(), install_hint("torchtext"))
            ) from e
        raise
    if isinstance(vocab, dict):
        has_torchtext = importlib.util.find_spec("torchtext") is not None
        logger.info(
            "Vocabulary %s: a dict of %d tokens; tokenizer basic_english from ts.handler_utils.text_utils (%s)",
            os.path.basename(path), len(vocab),
            "torchtext is installed but not needed" if has_torchtext else "torchtext is not installed for {} and not needed".format(interpreter()),
        )
        return DictVocab(vocab)
    return vocab

