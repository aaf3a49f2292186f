"""Reference trajectories for the `ddpm-schedule` sampler parity tests.

Writes crates/schedule/tests/fixtures/samplers.json: for each case, a DDPM or DDIM run of
diffusers' DDPMScheduler / DDIMScheduler on a small batch with an analytic dummy model,
  out = 0.5 * x + 0.3 * sin(2 * x + pi * t / T),
recording the timesteps, every state from x_T to the result, and the noise each step drew. The
Rust tests feed each state to our sampler with the same noise and compare the next state.
Also lists diffusers' timesteps for a grid of (T, steps, spacing, offset).

Run with `cargo xtask fixtures`, or directly: python xtask/scripts/sampler_fixture.py <repo root>
"""

import json
import math
import sys
from pathlib import Path

import torch
from diffusers import DDIMScheduler, DDPMScheduler

SHAPE = (2, 1, 4, 4)
SCHEDULES = {"linear": "linear", "cosine": "squaredcos_cap_v2"}


def dummy_model(x, t, total):
    return 0.5 * x + 0.3 * torch.sin(2.0 * x + math.pi * t / total)


def f32_list(tensor):
    return [float(f"{v:.9g}") for v in tensor.flatten().tolist()]


def run_case(case):
    total = case["num_timesteps"]
    common = dict(
        num_train_timesteps=total,
        beta_schedule=SCHEDULES[case["beta_schedule"]],
        beta_start=case["beta_start"],
        beta_end=case["beta_end"],
        prediction_type=case["prediction"],
        clip_sample=case["clip_sample"],
    )
    if case["sampler"] == "ddpm":
        scheduler = DDPMScheduler(variance_type=case["variance"], **common)
        scheduler.set_timesteps(total)
    else:
        scheduler = DDIMScheduler(
            set_alpha_to_one=case["set_alpha_to_one"],
            steps_offset=case["steps_offset"],
            timestep_spacing=case["timestep_spacing"],
            **common,
        )
        scheduler.set_timesteps(case["num_inference_steps"])
    torch.manual_seed(case["seed"])
    x = torch.randn(SHAPE)
    states, noises = [f32_list(x)], []
    for i, t in enumerate(scheduler.timesteps.tolist()):
        output = dummy_model(x, t, total)
        noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(case["seed"] * 1000 + i))
        if case["sampler"] == "ddpm":
            # DDPMScheduler draws its noise itself: the same seeded generator gives the same draw.
            g = torch.Generator().manual_seed(case["seed"] * 1000 + i)
            x = scheduler.step(output, t, x, generator=g).prev_sample
            noises.append(f32_list(noise) if t > 0 else None)
        else:
            x = scheduler.step(
                output, t, x, eta=case["eta"], variance_noise=noise,
                use_clipped_model_output=case.get("use_clipped_model_output", False),
            ).prev_sample
            noises.append(f32_list(noise) if case["eta"] > 0 else None)
        states.append(f32_list(x))
    return dict(case, timesteps=scheduler.timesteps.tolist(), states=states, noises=noises)


def cases():
    ddpm = dict(sampler="ddpm", num_timesteps=40, beta_start=1e-4, beta_end=0.2)
    ddim = dict(sampler="ddim", num_timesteps=300, beta_start=1e-4, beta_end=0.02, steps_offset=0)
    return [
        dict(ddpm, seed=1, beta_schedule="linear", prediction="epsilon", variance="fixed_small", clip_sample=True),
        dict(ddpm, seed=2, beta_schedule="cosine", prediction="v_prediction", variance="fixed_large", clip_sample=False),
        dict(ddpm, seed=3, beta_schedule="linear", prediction="sample", variance="fixed_small", clip_sample=False),
        dict(ddim, seed=4, beta_schedule="linear", prediction="epsilon", num_inference_steps=20, eta=0.0,
             timestep_spacing="leading", set_alpha_to_one=True, clip_sample=True),
        dict(ddim, seed=5, beta_schedule="cosine", prediction="v_prediction", num_inference_steps=15, eta=0.5,
             timestep_spacing="trailing", set_alpha_to_one=False, clip_sample=False),
        dict(ddim, seed=6, beta_schedule="linear", prediction="epsilon", num_inference_steps=12, eta=1.0,
             timestep_spacing="linspace", set_alpha_to_one=True, clip_sample=True),
        dict(ddim, seed=7, beta_schedule="linear", prediction="sample", num_inference_steps=10, eta=0.0,
             timestep_spacing="leading", set_alpha_to_one=False, clip_sample=False, steps_offset=1),
        dict(ddim, seed=8, beta_schedule="cosine", prediction="epsilon", num_inference_steps=25, eta=0.3,
             timestep_spacing="trailing", set_alpha_to_one=True, clip_sample=True, use_clipped_model_output=True),
    ]


def timestep_grid():
    grid = []
    for total in (300, 1000):
        for steps in (1, 7, 10, 49, 50, 64, 299):
            for spacing in ("linspace", "leading", "trailing"):
                for offset in (0, 1):
                    if spacing != "leading" and offset:
                        continue
                    s = DDIMScheduler(num_train_timesteps=total, timestep_spacing=spacing, steps_offset=offset)
                    s.set_timesteps(steps)
                    grid.append(dict(num_timesteps=total, steps=steps, timestep_spacing=spacing,
                                     steps_offset=offset, timesteps=s.timesteps.tolist()))
    return grid


def main():
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
    out = root / "crates/schedule/tests/fixtures/samplers.json"
    fixture = dict(
        generator="xtask/scripts/sampler_fixture.py",
        torch=torch.__version__,
        diffusers=__import__("diffusers").__version__,
        shape=list(SHAPE),
        cases=[run_case(c) for c in cases()],
        timestep_grid=timestep_grid(),
    )
    out.write_text(json.dumps(fixture))
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
