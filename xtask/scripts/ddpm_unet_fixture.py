"""Reference fixture for the `ddpm-unet` DdpmUnet parity test.

A PyTorch U-Net of Ho et al. (2020) in the layout of the common PyTorch port of the authors'
TensorFlow model (keys temb.dense.0, down.1.attn.0.q, mid.block_1, up.2.upsample.conv, ...).
Writes crates/unet/tests/fixtures/ddpm_small.{pth,json}: a small config's state_dict (GroupNorm
affine parameters randomised so that loading them matters), an input batch, timesteps, the
eval-mode output, and the parameter count of the paper's CIFAR-10 config.

Run via `cargo xtask fixtures`, or: python xtask/scripts/ddpm_unet_fixture.py
"""

import argparse
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t, dim):
    half = dim // 2
    # On t's device, so that the model runs on a GPU as on the CPU.
    steps = torch.arange(half, dtype=torch.float32, device=t.device)
    freqs = torch.exp(steps * -(math.log(10000) / (half - 1)))
    angles = t.float()[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def norm(channels, groups):
    return nn.GroupNorm(groups, channels, eps=1e-6, affine=True)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, temb, dropout, groups):
        super().__init__()
        self.norm1 = norm(cin, groups)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.temb_proj = nn.Linear(temb, cout)
        self.norm2 = norm(cout, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1, 1, 0)

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        if hasattr(self, "nin_shortcut"):
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    def __init__(self, channels, groups):
        super().__init__()
        self.norm = norm(channels, groups)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(channels, channels, 1) for _ in range(4))

    def forward(self, x):
        b, c, h, w = x.shape
        hn = self.norm(x)
        q = self.q(hn).reshape(b, c, h * w).permute(0, 2, 1)
        k = self.k(hn).reshape(b, c, h * w)
        v = self.v(hn).reshape(b, c, h * w)
        weights = torch.softmax(torch.bmm(q, k) * c ** -0.5, dim=2)
        out = torch.bmm(v, weights.permute(0, 2, 1)).reshape(b, c, h, w)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 2, 0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Unet(nn.Module):
    def __init__(self, in_ch=3, size=32, ch=128, mult=(1, 2, 2, 2), blocks=2, attn=(16,), dropout=0.1, groups=32):
        super().__init__()
        self.ch = ch
        temb = 4 * ch
        self.temb = nn.Module()
        self.temb.dense = nn.ModuleList([nn.Linear(ch, temb), nn.Linear(temb, temb)])
        self.conv_in = nn.Conv2d(in_ch, ch, 3, 1, 1)
        res, block_in, skips = size, ch, [ch]
        self.down = nn.ModuleList()
        for level, m in enumerate(mult):
            d = nn.Module()
            d.block, d.attn = nn.ModuleList(), nn.ModuleList()
            for _ in range(blocks):
                d.block.append(ResBlock(block_in, ch * m, temb, dropout, groups))
                block_in = ch * m
                if res in attn:
                    d.attn.append(AttnBlock(block_in, groups))
                skips.append(block_in)
            if level != len(mult) - 1:
                d.downsample = Downsample(block_in)
                res //= 2
                skips.append(block_in)
            self.down.append(d)
        self.mid = nn.Module()
        self.mid.block_1 = ResBlock(block_in, block_in, temb, dropout, groups)
        self.mid.attn_1 = AttnBlock(block_in, groups)
        self.mid.block_2 = ResBlock(block_in, block_in, temb, dropout, groups)
        ups = []
        for level in reversed(range(len(mult))):
            u = nn.Module()
            u.block, u.attn = nn.ModuleList(), nn.ModuleList()
            for _ in range(blocks + 1):
                u.block.append(ResBlock(block_in + skips.pop(), ch * mult[level], temb, dropout, groups))
                block_in = ch * mult[level]
                if res in attn:
                    u.attn.append(AttnBlock(block_in, groups))
            if level != 0:
                u.upsample = Upsample(block_in)
                res *= 2
            ups.insert(0, u)
        self.up = nn.ModuleList(ups)
        self.norm_out = norm(block_in, groups)
        self.conv_out = nn.Conv2d(block_in, in_ch, 3, 1, 1)
        self.blocks = blocks

    def forward(self, x, t):
        temb = self.temb.dense[1](F.silu(self.temb.dense[0](timestep_embedding(t, self.ch))))
        hs = [self.conv_in(x)]
        for d in self.down:
            for i, block in enumerate(d.block):
                h = block(hs[-1], temb)
                if len(d.attn) > 0:
                    h = d.attn[i](h)
                hs.append(h)
            if hasattr(d, "downsample"):
                hs.append(d.downsample(hs[-1]))
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(hs[-1], temb)), temb)
        for u in reversed(self.up):
            for i, block in enumerate(u.block):
                h = block(torch.cat([h, hs.pop()], dim=1), temb)
                if len(u.attn) > 0:
                    h = u.attn[i](h)
            if hasattr(u, "upsample"):
                h = u.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("root", nargs="?", default=Path(__file__).resolve().parents[2], type=Path)
    args = parser.parse_args()
    out = args.root / "crates/unet/tests/fixtures"
    torch.manual_seed(0)
    paper_params = sum(p.numel() for p in Unet().parameters())

    config = dict(image_channels=3, image_size=16, base_channels=8, channel_multipliers=[1, 2, 2],
                  num_res_blocks=1, attention_resolutions=[8], dropout=0.1, norm_groups=4)
    model = Unet(3, 16, 8, (1, 2, 2), 1, (8,), 0.1, 4)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.GroupNorm):
                module.weight.add_(torch.randn_like(module.weight) * 0.3)
                module.bias.add_(torch.randn_like(module.bias) * 0.3)
    model.eval()
    x = torch.randn(2, 3, 16, 16)
    t = [3, 880]
    with torch.no_grad():
        y = model(x, torch.tensor(t))
    torch.save(model.state_dict(), out / "ddpm_small.pth")
    fixture = dict(
        generator="xtask/scripts/ddpm_unet_fixture.py",
        torch=torch.__version__,
        config=config,
        trainable_params=sum(p.numel() for p in model.parameters()),
        paper_trainable_params=paper_params,
        input_shape=list(x.shape),
        input=x.flatten().tolist(),
        timesteps=t,
        output=y.flatten().tolist(),
    )
    (out / "ddpm_small.json").write_text(json.dumps(fixture))
    for name in ("ddpm_small.pth", "ddpm_small.json"):
        print(f"wrote {out / name} ({(out / name).stat().st_size} bytes)")
    print(f"paper config: {paper_params} parameters")


if __name__ == "__main__":
    main()
