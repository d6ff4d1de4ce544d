"""ts.torch_handler.text_classifier.TextClassifier: a text in, the probability of every class out, as
[{label: probability, ...}] per request (labels from index_to_name.json, else the class index).

The text is cleaned as TorchServe does (HTML tags, lower case, contractions, accents, punctuation),
tokenized with basic_english, extended with bigrams, and looked up in the vocabulary; the model is called
as model(token_ids, offsets), an nn.EmbeddingBag model. TorchServe classifies only the first text of a
batch; here every request of the batch is classified (one bag per text, in one call).
"""

import torch
import torch.nn.functional as F

from _mms_compat.errors import BadInput
from ts.handler_utils.text_utils import TextBatch, ngrams_iterator
from ts.torch_handler.text_handler import TextHandler
from ts.utils.util import map_class_to_label


class TextClassifier(TextHandler):
    ngrams = 2

    def preprocess(self, data):
        """-> (token ids of every text, concatenated; the first text's tokens), with `.offsets` where each
        text starts: unpacking it as TorchServe's (text_tensor, text) pair still works."""
        ids, offsets, texts = [], [], []
        for idx, row in enumerate(data):
            try:
                tokens = self._tokens(row)
            except BadInput as e:
                self._reject(idx, str(e))
                continue
            offsets.append(len(ids))
            ids.extend(self.source_vocab[token] for token in ngrams_iterator(tokens, self.ngrams))
            texts.append(tokens)
        if not texts:
            return None
        batch = TextBatch((torch.as_tensor(ids, dtype=torch.long, device=self.device), texts[0]))
        batch.offsets = torch.as_tensor(offsets, dtype=torch.long, device=self.device)
        batch.texts = texts
        return batch

    def _tokens(self, row):
        text = row.get("data") or row.get("body") if isinstance(row, dict) else None
        if isinstance(text, (bytes, bytearray)):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as e:
                raise BadInput("the request body is not UTF-8 text ({})".format(e))
        if not isinstance(text, str) or not text.strip():
            # TorchServe classifies an empty text (the model's bias alone); we say what is missing
            raise BadInput("the request has no text: send the text as the body (text/plain)")
        text = self._remove_html_tags(text)
        text = text.lower()
        text = self._expand_contractions(text)
        text = self._remove_accented_characters(text)
        text = self._remove_punctuation(text)
        return self._tokenize(text)

    def inference(self, data, *args, **kwargs):
        text_tensor, _ = data
        offsets = getattr(data, "offsets", None)
        if offsets is None:  # a subclass's own preprocess: one text, as TorchServe
            offsets = torch.as_tensor([0], device=self.device)
        return super().inference(text_tensor, offsets)

    def postprocess(self, data):
        return map_class_to_label(F.softmax(data, dim=1).tolist(), self.mapping)

