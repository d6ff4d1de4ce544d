"""The text classifier's model (eager, archived with --model-file), as in TorchServe's text_classification
example: the mean of the token embeddings of each text (nn.EmbeddingBag), then one linear layer. Called as
model(token_ids, offsets); the defaults are the built vocabulary's size and the 4 news topics."""

from torch import nn

VOCAB_SIZE = 128


class TextClassificationModel(nn.Module):
    def __init__(self, vocab_size=VOCAB_SIZE, embed_dim=16, num_class=4):
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocab_size, embed_dim)
        self.fc = nn.Linear(embed_dim, num_class)

    def forward(self, text, offsets):
        return self.fc(self.embedding(text, offsets))
