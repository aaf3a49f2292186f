"""Reference fixtures for the `ddpm-unet` SimpleUnet import and parity tests.

Builds the seed's SimpleUnet (its code, with the channel widths made configurable), gives every
BatchNorm non-trivial running statistics, and writes
  <out>/<name>.pth          the state_dict, as the seed's torch.save(model.state_dict()) does
  <out>/<name>.safetensors  the same weights via safetensors.torch (num_batches_tracked dropped)
  <out>/<name>.json         config, parameter count, state_dict keys and shapes, an input batch,
                            timesteps and the eval-mode output; for the small fixture also a
                            training-mode pass: its output, the running statistics after it and
                            the gradients of mean(output²) for the norms and conv0

Default: the small committed fixture in crates/unet/tests/fixtures/ (channels 4..32, 16 px).
`--full OUT`: the seed's full-size model (62,438,883 parameters) into OUT, used at test time when
torch is installed. Run via `cargo xtask fixtures`, or: python xtask/scripts/simple_unet_fixture.py
"""

import argparse
import copy
import json
import math
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn


class Block(nn.Module):
    def __init__(self, in_ch, out_ch, time_emb_dim, up=False):
        super().__init__()
        self.time_mlp = nn.Linear(time_emb_dim, out_ch)
        if up:
            self.conv1 = nn.Conv2d(2 * in_ch, out_ch, 3, padding=1)
            self.transform = nn.ConvTranspose2d(out_ch, out_ch, 4, 2, 1)
        else:
            self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
            self.transform = nn.Conv2d(out_ch, out_ch, 4, 2, 1)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.bnorm1 = nn.BatchNorm2d(out_ch)
        self.bnorm2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU()

    def forward(self, x, t):
        h = self.bnorm1(self.relu(self.conv1(x)))
        time_emb = self.relu(self.time_mlp(t))
        time_emb = time_emb[(...,) + (None,) * 2]
        h = h + time_emb
        h = self.bnorm2(self.relu(self.conv2(h)))
        return self.transform(h)


class SinusoidalPositionEmbeddings(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, time):
        half_dim = self.dim // 2
        embeddings = math.log(10000) / (half_dim - 1)
        embeddings = torch.exp(torch.arange(half_dim, device=time.device) * -embeddings)
        embeddings = time[:, None] * embeddings[None, :]
        return torch.cat((embeddings.sin(), embeddings.cos()), dim=-1)


class SimpleUnet(nn.Module):
    def __init__(self, image_channels=3, down_channels=(64, 128, 256, 512, 1024), time_emb_dim=32):
        super().__init__()
        up_channels = tuple(reversed(down_channels))
        self.time_mlp = nn.Sequential(
            SinusoidalPositionEmbeddings(time_emb_dim),
            nn.Linear(time_emb_dim, time_emb_dim),
            nn.ReLU(),
        )
        self.conv0 = nn.Conv2d(image_channels, down_channels[0], 3, padding=1)
        self.downs = nn.ModuleList(
            [Block(down_channels[i], down_channels[i + 1], time_emb_dim) for i in range(len(down_channels) - 1)]
        )
        self.ups = nn.ModuleList(
            [Block(up_channels[i], up_channels[i + 1], time_emb_dim, up=True) for i in range(len(up_channels) - 1)]
        )
        self.output = nn.Conv2d(up_channels[-1], image_channels, 1)

    def forward(self, x, timestep):
        t = self.time_mlp(timestep)
        x = self.conv0(x)
        residual_inputs = []
        for down in self.downs:
            x = down(x, t)
            residual_inputs.append(x)
        for up in self.ups:
            residual_x = residual_inputs.pop()
            x = torch.cat((x, residual_x), dim=1)
            x = up(x, t)
        return self.output(x)


def build(name, out, image_channels, channels, size, batch, timesteps, with_safetensors=True, with_training=False):
    torch.manual_seed(0)
    model = SimpleUnet(image_channels, channels)
    # Non-trivial running statistics: a few training-mode passes, then a spread of values.
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, image_channels, size, size), torch.randint(0, 300, (4,)).float())
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.add_(torch.randn_like(module.running_mean) * 0.2)
                module.running_var.mul_(torch.rand_like(module.running_var) + 0.5)
    model.eval()
    x = torch.randn(batch, image_channels, size, size)
    t = torch.tensor(timesteps, dtype=torch.long)
    with torch.no_grad():
        y = model(x, t)

    out.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    torch.save(state, out / f"{name}.pth")
    if with_safetensors:
        weights = {k: v.contiguous() for k, v in state.items() if not k.endswith("num_batches_tracked")}
        save_file(weights, out / f"{name}.safetensors")
    fixture = dict(
        generator="xtask/scripts/simple_unet_fixture.py",
        torch=torch.__version__,
        image_channels=image_channels,
        channels=list(channels),
        time_embedding_dim=32,
        trainable_params=sum(p.numel() for p in model.parameters()),
        keys={k: list(v.shape) for k, v in state.items()},
        input_shape=list(x.shape),
        input=x.flatten().tolist(),
        timesteps=timesteps,
        output=y.flatten().tolist(),
    )
    if with_training:
        fixture["training"] = training_pass(model, x, t)
    (out / f"{name}.json").write_text(json.dumps(fixture))
    for suffix in ("pth", "safetensors", "json"):
        path = out / f"{name}.{suffix}"
        if path.exists():
            print(f"wrote {path} ({path.stat().st_size} bytes)")


def training_pass(model, x, t):
    """One training-mode forward and backward on a copy: BatchNorm's batch statistics, its
    running-statistics update and its gradients, checked by the Rust tests."""
    model = copy.deepcopy(model).train()
    y = model(x, t)
    y.pow(2).mean().backward()
    named = dict(model.named_parameters())
    grads = {k: p.grad.flatten().tolist() for k, p in named.items() if "bnorm" in k or k.startswith("conv0.")}
    running = {
        k: v.flatten().tolist() for k, v in model.state_dict().items() if "running_" in k
    }
    return dict(output=y.detach().flatten().tolist(), running=running, grads=grads)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("root", nargs="?", default=Path(__file__).resolve().parents[2], type=Path)
    parser.add_argument("--full", type=Path, help="write the full-size model's fixture here instead")
    args = parser.parse_args()
    if args.full:
        build("seed_full", args.full, 3, (64, 128, 256, 512, 1024), 32, 2, [7, 260], with_safetensors=False)
    else:
        out = args.root / "crates/unet/tests/fixtures"
        build("seed_small", out, 3, (4, 8, 16, 32), 16, 2, [5, 250], with_training=True)


if __name__ == "__main__":
    main()
