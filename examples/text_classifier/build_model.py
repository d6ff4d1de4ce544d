"""The text classifier example: an EmbeddingBag model (text_model.py) with random weights and a vocabulary built
from a few sentences, served by the built-in `text_classifier` handler (TorchServe's examples/text_classification,
without torchtext: the vocabulary is a plain dict saved with torch.save).

    python3 build_model.py [OUT_DIR]    (default: ./build)

Writes text_classifier.pt (the state dict), source_vocab.pt, index_to_name.json, inputs/*.txt and expected.json: for each
text, the probability of each topic from calling the model directly on its words and word pairs.
"""

import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import _build  # noqa: E402
from text_model import VOCAB_SIZE, TextClassificationModel  # noqa: E402

TOPICS = ["World", "Sports", "Business", "Sci/Tech"]
CORPUS = [
    "the team won the match in the final minute",
    "markets fell as the bank raised rates",
    "the new chip runs models faster on phones",
    "leaders met to talk about the border",
]
# Lower-case words without punctuation: the handler's cleanup and basic_english tokenizer leave them as they are.
TEXTS = [
    "the team won the final",
    "the bank raised rates again",
    "a new chip for phones",
    "leaders talk about unknown things",
]


def tokens_and_bigrams(text):
    words = text.split()
    return words + [" ".join(pair) for pair in zip(words, words[1:])]


def build(out):
    vocab = {"<unk>": 0}
    for sentence in CORPUS:
        for token in tokens_and_bigrams(sentence):
            vocab.setdefault(token, len(vocab))
    assert len(vocab) <= VOCAB_SIZE, len(vocab)
    torch.save(vocab, os.path.join(out, "source_vocab.pt"))
    torch.manual_seed(0)
    model = TextClassificationModel().eval()
    torch.save(model.state_dict(), os.path.join(out, "text_classifier.pt"))
    _build.write_json(os.path.join(out, "index_to_name.json"), {str(i): t for i, t in enumerate(TOPICS)})
    expected = {}
    for i, text in enumerate(TEXTS):
        name = "text_{}.txt".format(i + 1)
        with open(os.path.join(out, "inputs", name), "w") as f:
            f.write(text)
        ids = torch.tensor([vocab.get(t, 0) for t in tokens_and_bigrams(text)])
        with torch.inference_mode():
            probs = torch.softmax(model(ids, torch.tensor([0])), dim=1)[0]
        expected[name] = {topic: float(p) for topic, p in zip(TOPICS, probs)}
    open(os.path.join(out, "inputs", "empty.txt"), "w").close()  # no text: the handler answers 400
    _build.write_json(os.path.join(out, "expected.json"), expected)


if __name__ == "__main__":
    build(_build.out_dir(sys.argv, "build"))
