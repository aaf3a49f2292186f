"""A second pair of eyes for the cpu-demo's samples: how many of a folder of generated digits a
small MNIST classifier recognises with confidence.

Trains (once; cached in target/digit_classifier.pt) a LeNet-style CNN on MNIST's 60,000 training
digits from ../shared/datasets/mnist (about 99% test accuracy), then reads every PNG in the
folder (28×28, or resized to it), and prints the share whose top class has probability ≥ 0.9,
and how many of each digit there are. A person looking at the grid remains the judge; this
number is what makes two recipes' grids comparable without squinting.

Usage: python xtask/scripts/digit_check.py <workspace root> <folder of PNGs>
"""

import gzip
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

CONFIDENT = 0.9


def idx(path: Path) -> np.ndarray:
    data = gzip.open(path).read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def network() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def as_input(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels.astype(np.float32) / 255.0).unsqueeze(1)


def classifier(root: Path) -> nn.Module:
    cached = root / "target" / "digit_classifier.pt"
    model = network()
    if cached.exists():
        model.load_state_dict(torch.load(cached))
        return model.eval()
    mnist = root.parent / "shared" / "datasets" / "mnist"
    images = as_input(idx(mnist / "train-images-idx3-ubyte.gz"))
    labels = torch.from_numpy(idx(mnist / "train-labels-idx1-ubyte.gz").astype(np.int64))
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(2):
        order = torch.randperm(len(images))
        for start in range(0, len(images), 128):
            batch = order[start : start + 128]
            loss = F.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    test = as_input(idx(mnist / "t10k-images-idx3-ubyte.gz"))
    test_labels = torch.from_numpy(idx(mnist / "t10k-labels-idx1-ubyte.gz").astype(np.int64))
    with torch.no_grad():
        accuracy = (model(test).argmax(1) == test_labels).float().mean().item()
    print(f"classifier: {accuracy:.2%} on MNIST's test digits")
    cached.parent.mkdir(exist_ok=True)
    torch.save(model.state_dict(), cached)
    return model


def main() -> None:
    root, folder = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
    model = classifier(root)
    files = sorted(folder.glob("*.png"))
    if not files:
        sys.exit(f"no PNG files in {folder}")
    pixels = np.stack(
        [np.asarray(Image.open(f).convert("L").resize((28, 28), Image.BILINEAR)) for f in files]
    )
    with torch.no_grad():
        probabilities = F.softmax(model(as_input(pixels)), dim=1)
    confidence, digit = probabilities.max(1)
    recognised = int((confidence >= CONFIDENT).sum())
    counts = np.bincount(digit[confidence >= CONFIDENT].numpy(), minlength=10)
    print(
        f"{recognised} of {len(files)} recognised ({recognised / len(files):.0%}, "
        f"p >= {CONFIDENT}); per digit: {counts.tolist()}"
    )


if __name__ == "__main__":
    main()
