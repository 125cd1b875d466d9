#!/usr/bin/env python3
"""Train a PyTorch model with differential privacy on Bastion, from Python.

Needs only PyTorch and the standard library (Debian: apt install python3-torch). It exports a small
classifier as TorchScript, uploads it and a dataset (safetensors written by hand, so no extra package),
plans and starts a private training, follows it to the end, downloads the trained model and loads it
back into PyTorch.

    BASTION_URL=https://127.0.0.1:8443 BASTION_CA=var/tls/server-cert.pem \\
    BASTION_TOKEN=$(cat var/admin-token) python3 scripts/examples/train_private.py

The token's principal owns both the data and the model here; with two parties, the data owner uploads
the dataset with a policy naming the data scientist (see the README's walkthrough).
"""

import io
import json
import os
import ssl
import struct
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import torch

URL = os.environ.get("BASTION_URL", "https://127.0.0.1:8443").rstrip("/")
CA = os.environ.get("BASTION_CA", "var/tls/server-cert.pem")
TOKEN = os.environ.get("BASTION_TOKEN") or open("var/admin-token").read().strip()
TLS = ssl.create_default_context(cafile=CA)


def request(method, path, body=None, content_type=None):
    """One API call; returns the decoded JSON (or the raw bytes of a download)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if content_type:
        headers["Content-Type"] = content_type
    req = urllib.request.Request(URL + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, context=TLS) as res:
            data = res.read()
            return json.loads(data) if res.headers.get_content_type().endswith("json") else data
    except urllib.error.HTTPError as err:
        problem = json.loads(err.read() or b"{}")
        sys.exit(f"{method} {path}: {err.code} {problem.get('title')}: {problem.get('detail')}")


def post_json(path, value):
    return request("POST", path, json.dumps(value).encode(), "application/json")


def upload(path, fields, filename, content):
    """multipart/form-data with text fields and one file part."""
    boundary = uuid.uuid4().hex
    body = io.BytesIO()
    for name, value in fields.items():
        body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    body.write(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
    )
    body.write(content)
    body.write(f"\r\n--{boundary}--\r\n".encode())
    return request("POST", path, body.getvalue(), f"multipart/form-data; boundary={boundary}")


def safetensors(tensors):
    """The safetensors format: a little-endian u64 header length, a JSON header, then the raw data."""
    dtypes = {torch.float32: "F32", torch.int64: "I64"}
    header, blobs, offset = {}, [], 0
    for name, tensor in tensors.items():
        data = tensor.contiguous().numpy().tobytes()
        header[name] = {"dtype": dtypes[tensor.dtype], "shape": list(tensor.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs)


class Classifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = torch.nn.Linear(8, 32)
        self.out = torch.nn.Linear(32, 2)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))


def main():
    torch.manual_seed(0)
    model_file = io.BytesIO()
    torch.jit.save(torch.jit.script(Classifier()), model_file)
    model = upload("/v1/models", {"name": "classifier"}, "classifier.pt", model_file.getvalue())
    print("model", model["id"], "checked:", len(model["check"]["operators"]), "operators")

    # 1000 records of 8 features; the label is whether their sum is positive.
    inputs = torch.randn(1000, 8)
    labels = (inputs.sum(dim=1) > 0).long()
    dataset = upload(
        "/v1/datasets",
        {"name": "records", "privacyLimit": "3", "format": "safetensors"},
        "records.safetensors",
        safetensors({"inputs": inputs, "labels": labels}),
    )
    print("dataset", dataset["id"], dataset["sampleCount"], "samples, ε limit", dataset["privacyLimit"])

    training = {
        "modelId": model["id"],
        "datasetIds": [dataset["id"]],
        "epochs": 3,
        "expectedBatchSize": 100,
        "loss": "cross_entropy",
        "optimizer": {"type": "adam", "learningRate": 0.02},
        "privacy": {"targetEpsilon": 2, "maxGradNorm": 1.0},
    }
    plan = post_json("/v1/trainings/plan", training)
    print(f"plan: σ = {plan['noiseMultiplier']:.3f}, {plan['steps']} steps, ε = {plan['epsilon']:.3f} at δ = {plan['delta']}")
    job = post_json("/v1/trainings", training)
    while job["status"] in ("queued", "running"):
        time.sleep(0.5)
        job = request("GET", f"/v1/trainings/{job['id']}")
        print(f"  {job['status']}: step {job['step']}/{job['totalSteps']}")
    if job["status"] != "succeeded":
        sys.exit(f"training {job['status']}: {job['error']}")

    weights = request("GET", f"/v1/models/{job['resultModelId']}/content")
    with tempfile.NamedTemporaryFile(suffix=".pt") as f:
        f.write(weights)
        f.flush()
        trained = torch.jit.load(f.name)
    accuracy = (trained(inputs).argmax(dim=1) == labels).float().mean().item()
    print(f"trained model loaded back in PyTorch; accuracy on the records here: {accuracy:.3f}")
    privacy = request("GET", f"/v1/datasets/{dataset['id']}/privacy")
    print(f"the dataset's budget: ε spent {privacy['epsilonSpent']:.3f} of {privacy['privacyLimit']}")


if __name__ == "__main__":
    main()
