"""Writes the DP benchmark's three models as TorchScript (torch.jit.script, then save) into a folder.

    /usr/bin/python3 scripts/bench/dp_models.py <outdir>

The models and batch sizes are those of the issue (and of Opacus' examples): the MNIST CNN (batch 256),
an MLP 100-256-256-2 (batch 512) and a text classifier over 64 tokens of a 10,000-word vocabulary
(batch 128). Weights come from a fixed seed; the benchmark measures speed, not accuracy.
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


def main(outdir):
    torch.manual_seed(0)
    os.makedirs(outdir, exist_ok=True)
    specs = [
        ("mnist_cnn", MnistCnn(), {"input": {"dtype": "F32", "shape": [1, 28, 28]}, "classes": 10, "batchSize": 256}),
        ("mlp", Mlp(), {"input": {"dtype": "F32", "shape": [100]}, "classes": 2, "batchSize": 512}),
        ("text_cls", TextClassifier(), {"input": {"dtype": "I64", "shape": [64], "vocabulary": 10000}, "classes": 4, "batchSize": 128}),
    ]
    manifest = {}
    for name, model, spec in specs:
        path = os.path.join(outdir, f"{name}.pt")
        torch.jit.save(torch.jit.script(model), path)
        manifest[name] = {"file": path, **spec}
    json.dump(manifest, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
