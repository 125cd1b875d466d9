"""Writes the DP benchmark's models as TorchScript (torch.jit.script, then save) into a folder.

    /usr/bin/python3 scripts/bench/dp_models.py <outdir>

The first three and their batch sizes are those of issue 11 (and of Opacus' examples): the MNIST CNN
(batch 256), an MLP 100-256-256-2 (batch 512) and a text classifier over 64 tokens of a 10,000-word
vocabulary (batch 128). Issue 17 adds a transformer text classifier (2 encoder layers, d=64, 4 heads,
64 tokens, batch 64), a ResNet of 3 residual blocks with GroupNorm on 1x28x28 (batch 128) and an LSTM
classifier (batch 64). Weights come from a fixed seed; the benchmark measures speed, not accuracy.
"""
import json
import os
import sys

import torch
from torch import nn


class MnistCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 8, 2, padding=3), nn.ReLU(), nn.MaxPool2d(2, 1),
            nn.Conv2d(16, 32, 4, 2), nn.ReLU(), nn.MaxPool2d(2, 1),
            nn.Flatten(), nn.Linear(32 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, 10),
        )

    def forward(self, x):
        return self.net(x)


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(100, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 2))

    def forward(self, x):
        return self.net(x)


class TextClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(10000, 64)
        self.norm = nn.LayerNorm(64)
        self.head = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))

    def forward(self, tokens):
        return self.head(self.norm(self.embedding(tokens).mean(1)))


class TransformerClassifier(nn.Module):
    def __init__(self, vocabulary=1000, width=64, tokens=64, classes=4):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary, width)
        self.position = nn.Parameter(torch.randn(1, tokens, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, 4, dim_feedforward=128, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2)
        self.head = nn.Linear(width, classes)

    def forward(self, tokens):
        return self.head(self.encoder(self.embedding(tokens) + self.position).mean(1))


class Block(nn.Module):
    """conv3x3-GN-ReLU-conv3x3-GN plus the input (a 1x1 conv and GN where the shape changes), ReLU."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.gn1 = nn.GroupNorm(4, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.gn2 = nn.GroupNorm(4, cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.GroupNorm(4, cout))

    def forward(self, x):
        h = torch.relu(self.gn1(self.conv1(x)))
        return torch.relu(self.gn2(self.conv2(h)) + self.shortcut(x))


class GroupNormResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.GroupNorm(4, 16), nn.ReLU())
        self.blocks = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2))
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


class LstmClassifier(nn.Module):
    def __init__(self, vocabulary=1000, width=64, hidden=64, classes=4):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary, width)
        self.lstm = nn.LSTM(width, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, tokens):
        _, (h, _) = self.lstm(self.embedding(tokens))
        return self.head(h[-1])


def main(outdir):
    torch.manual_seed(0)
    os.makedirs(outdir, exist_ok=True)
    specs = [
        ("mnist_cnn", MnistCnn(), {"input": {"dtype": "F32", "shape": [1, 28, 28]}, "classes": 10, "batchSize": 256}),
        ("mlp", Mlp(), {"input": {"dtype": "F32", "shape": [100]}, "classes": 2, "batchSize": 512}),
        ("text_cls", TextClassifier(), {"input": {"dtype": "I64", "shape": [64], "vocabulary": 10000}, "classes": 4, "batchSize": 128}),
        ("transformer", TransformerClassifier(), {"input": {"dtype": "I64", "shape": [64], "vocabulary": 1000}, "classes": 4, "batchSize": 64}),
        ("gn_resnet", GroupNormResNet(), {"input": {"dtype": "F32", "shape": [1, 28, 28]}, "classes": 10, "batchSize": 128}),
        ("lstm", LstmClassifier(), {"input": {"dtype": "I64", "shape": [64], "vocabulary": 1000}, "classes": 4, "batchSize": 64}),
    ]
    manifest = {}
    for name, model, spec in specs:
        path = os.path.join(outdir, f"{name}.pt")
        torch.jit.save(torch.jit.script(model), path)
        parameters = {n: p.numel() for n, p in model.named_parameters()}
        manifest[name] = {"file": path, **spec, "parameters": parameters}
    json.dump(manifest, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
