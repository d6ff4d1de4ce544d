"""A small MNIST-style digit classifier (eager PyTorch): 28x28 grey image in, 10 log-probabilities out.
The archive carries this file as --model-file; BaseHandler builds the one class defined here and loads the
state dict (--serialized-file) into it."""

import torch
import torch.nn.functional as F
from torch import nn


class DigitNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3)
        self.conv2 = nn.Conv2d(16, 32, 3)
        self.fc1 = nn.Linear(32 * 12 * 12, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return F.log_softmax(self.fc2(x), dim=1)
