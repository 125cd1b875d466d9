"""Writes the end-to-end CNN of Tramèr & Boneh (ICLR 2021, "Differentially Private Learning Needs Better
Features (or Much More Data)"), their Fashion-MNIST model, as TorchScript; or evaluates a trained one.

    /usr/bin/python3 scripts/bench/fashion_mnist_model.py write <out.pt>
    /usr/bin/python3 scripts/bench/fashion_mnist_model.py evaluate <model.pt> <images.idx3.gz> <labels.idx1.gz>
"""
import gzip
import json
import sys

import torch
from torch import nn


class TramerBonehCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 8, 2, padding=2), nn.Tanh(), nn.MaxPool2d(2, 1),
            nn.Conv2d(16, 32, 4, 2), nn.Tanh(), nn.MaxPool2d(2, 1),
            nn.Flatten(), nn.Linear(32 * 4 * 4, 32), nn.Tanh(), nn.Linear(32, 10),
        )

    def forward(self, x):
        return self.net(x)


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return torch.frombuffer(bytearray(data[4 + 4 * dims:]), dtype=torch.uint8).reshape(shape)


def main():
    if sys.argv[1] == "write":
        torch.manual_seed(0)
        torch.jit.save(torch.jit.script(TramerBonehCnn()), sys.argv[2])
    else:
        model = torch.jit.load(sys.argv[2]).eval()
        images = read_idx(sys.argv[3]).float().div(255).unsqueeze(1)
        labels = read_idx(sys.argv[4]).long()
        with torch.no_grad():
            predicted = torch.cat([model(images[i:i + 1000]).argmax(1) for i in range(0, len(images), 1000)])
        print(json.dumps({"accuracy": (predicted == labels).float().mean().item(), "samples": len(labels)}))


if __name__ == "__main__":
    main()
