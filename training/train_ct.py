"""Consistency training of "starter-ct": a text-to-image consistency model learnt from data, with no teacher.

    python -m training.train_ct --steps 6000 --bf16     # from scratch, on the starter VAE's latents
    python -m training.train_ct --export                # -> models/Stable-diffusion/starter-ct/

Song et al. 2023 (consistency training, Algorithm 3) with the improved techniques of Song & Dhariwal 2023 (iCT).
For a training latent x, its caption c and z ~ N(0, I), at neighbouring levels sigma_i < sigma_{i+1} of a Karras
grid of N levels (sigma_min 0.002, sigma_max 80, rho 7):

    L = lambda(sigma_i) d(f_theta(x + sigma_{i+1} z, sigma_{i+1}), stopgrad f_theta(x + sigma_i z, sigma_i))

- no EMA teacher: the target is the online network itself without gradient (iCT Sec. 3.2); an EMA of the
  weights (--ema) is kept for the export only;
- d is the pseudo-Huber distance sqrt(|a - b|^2 + c^2) - c with c = 0.00054 sqrt(dim) (iCT Sec. 3.3);
- lambda = 1 / (sigma_{i+1} - sigma_i) (iCT Sec. 3.4);
- i is drawn so that sigma_i follows a discretised lognormal, P_mean -1.1, P_std 2 (iCT Sec. 3.5);
- N doubles from s0 = 10 to s1 = 1280 in equal stages, N(k) = min(s0 2^floor(k / K'), s1) + 1 (iCT Sec. 3.4).

f is the EDM-parametrised consistency function the engine samples (engine.sampling.consistency), the latents
are scaled to unit variance by the starter VAE's scaling factor, so sigma_data = 1.

Text: the starter's frozen text encoder, 10 % empty captions. Classifier-free guidance is an input (w = scale - 1,
embedded as LCM's), learnt without a teacher: for the rows given w > 0 the step from sigma_{i+1} down to sigma_i
follows the guided probability-flow ODE, whose conditional denoiser is estimated by x itself (as consistency
training estimates it) and whose unconditional one by the network's own stop-gradient answer for the empty
prompt at w = 0:

    D_w = x + w (x - f_theta-(x_{i+1}, sigma_{i+1}, empty, 0)),   x_i = x_{i+1} - (sigma_{i+1} - sigma_i)(x_{i+1} - D_w) / sigma_{i+1}

At w = 0 that is x + sigma_i z: plain consistency training. Deterministic and resumable from <runs>/ct.pt.
"""
import argparse
import copy
import json
import math
import shutil
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from engine.models import UNet2DConditionModel, UNetConfig
from engine.sampling.consistency import ConsistencySchedule, guidance_embedding
from engine.tokenizer import CLIPTokenizer
from training.common import (RUNS, STARTER_DIR, UNET_CONFIG, load_checkpoint, optimiser_step, resume,
                             save_checkpoint, setup_threads, write_json)
from training.train_controlnet import frozen_starter, frozen_vae

CT_DIR = STARTER_DIR.parent / "starter-ct"
W_DIM = 64
SIGMA_MIN, SIGMA_MAX, RHO, SIGMA_DATA = 0.002, 80.0, 7.0, 1.0
P_MEAN, P_STD = -1.1, 2.0
S0, S1 = 10, 1280
SCHEDULE = ConsistencySchedule(SIGMA_MIN, SIGMA_MAX, SIGMA_DATA, RHO)   # what the engine samples the export with


def levels_at(step: int, total: int) -> int:
    """N(k): the number of noise levels at training step k of `total` (iCT's exponential curriculum)."""
    stage = total // (int(math.log2(S1 // S0)) + 1)
    return min(S0 * 2 ** (step // max(stage, 1)), S1) + 1


def karras_levels(n: int) -> torch.Tensor:
    """sigma_1 < ... < sigma_n on Karras et al.'s grid."""
    return SCHEDULE.karras(torch.linspace(1, 0, n, dtype=torch.float64)).float()


def lognormal_pick(sigmas: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """Indices i (of pairs sigma_i, sigma_{i+1}) drawn with p(i) proportional to the lognormal's mass between them."""
    cdf = torch.erf((sigmas.double().log() - P_MEAN) / (math.sqrt(2) * P_STD))
    return torch.multinomial((cdf[1:] - cdf[:-1]).float(), count, replacement=True, generator=generator)


def pseudo_huber(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per row: sqrt(|a - b|^2 + c^2) - c, c = 0.00054 sqrt(dim)."""
    c = 0.00054 * math.sqrt(a[0].numel())
    return (((a - b) ** 2).flatten(1).sum(1) + c ** 2).sqrt() - c


def make_network() -> UNet2DConditionModel:
    return UNet2DConditionModel(UNetConfig.from_dict({**UNET_CONFIG, "time_cond_proj_dim": W_DIM}))


def consistency_function(net, x, sigma, context, w):
    """f_theta(x, sigma) = c_skip x + c_out F(c_in x, 250 log sigma; c, w)."""
    c_skip, c_out, c_in = SCHEDULE.scalings(sigma[:, None, None, None])
    out = net(c_in * x, SCHEDULE.sigma_to_t(sigma), context, timestep_cond=guidance_embedding(w, W_DIM)).float()
    return c_skip * x + c_out * out


def training_latents(runs: Path, starter: Path, scenes: int) -> tuple:
    """(latents scaled to unit variance, caption ids): the UNet stage's cache, built here if it is missing."""
    from training.train_unet import build_latent_cache
    cache = load_checkpoint(runs / "latents.pt") or build_latent_cache(frozen_vae(starter), runs, scenes, 3, 2)
    factor = json.loads((starter / "vae" / "config.json").read_text())["scaling_factor"]
    return cache["latents"], cache["ids"], factor


def ct_step(net, x0, context, uncond, w, sigma_lo, sigma_hi, noise):
    """The consistency-training loss of a batch (per row), with the guided ODE step for rows where w > 0."""
    x_hi = x0 + sigma_hi[:, None, None, None] * noise
    x_lo = x0 + sigma_lo[:, None, None, None] * noise
    guided = w > 0
    zero = torch.zeros_like(w)
    with torch.no_grad():
        if guided.any():
            d_uncond = consistency_function(net, x_hi[guided], sigma_hi[guided], uncond[guided], zero[guided])
            d_w = x0[guided] + w[guided, None, None, None] * (x0[guided] - d_uncond)
            step = ((sigma_hi - sigma_lo) / sigma_hi)[guided, None, None, None]
            x_lo = x_lo.clone()
            x_lo[guided] = x_hi[guided] - step * (x_hi[guided] - d_w)
        target = consistency_function(net, x_lo, sigma_lo, context, w)
    guess = consistency_function(net, x_hi, sigma_hi, context, w)
    return pseudo_huber(guess, target) / (sigma_hi - sigma_lo)


def export(net, starter: Path, step: int, levels: int, out: Path = CT_DIR) -> Path:
    """A diffusers folder: the consistency-trained UNet, marked by its CMStochasticIterativeScheduler config, and
    the starter's VAE, text encoder and tokenizer."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(starter, out, ignore=shutil.ignore_patterns("unet", "scheduler"))
    write_json(out / "unet" / "config.json", {"_class_name": "UNet2DConditionModel", **UNET_CONFIG,
                                               "time_cond_proj_dim": W_DIM})
    save_file({k: v.half().contiguous() for k, v in net.state_dict().items()},
              out / "unet" / "diffusion_pytorch_model.safetensors")
    write_json(out / "scheduler" / "scheduler_config.json", {
        "_class_name": "CMStochasticIterativeScheduler", "sigma_min": SIGMA_MIN, "sigma_max": SIGMA_MAX,
        "sigma_data": SIGMA_DATA, "rho": RHO, "num_train_timesteps": levels, "s_noise": 1.0, "clip_denoised": False})
    meta = json.loads((starter / "model_index.json").read_text())
    meta.update(scheduler=["diffusers", "CMStochasticIterativeScheduler"], training_steps=step,
                description="A consistency model trained from scratch on the built-in demo model's latents, with no "
                            "teacher (improved consistency training): 1-4 steps, sampler Consistency, guidance as "
                            "an input. Made by training/train_ct.py.")
    meta.pop("distillation_steps", None)
    write_json(out / "model_index.json", meta)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6000, help="total steps; the N curriculum spans them")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--ema", type=float, default=0.999, help="decay of the exported weights' average")
    parser.add_argument("--empty-captions", type=float, default=0.1)
    parser.add_argument("--guided-share", type=float, default=0.5, help="share of captioned rows given w > 0")
    parser.add_argument("--w-max", type=float, default=6.0, help="guidance scale - 1, highest")
    parser.add_argument("--guidance-from", type=int, default=500, help="step from which rows get w > 0")
    parser.add_argument("--scenes", type=int, default=20000, help="scenes of the latent cache, if it is built here")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for the forward passes")
    parser.add_argument("--starter", type=Path, default=STARTER_DIR, help="text encoder and VAE (an export)")
    parser.add_argument("--runs", type=Path, default=RUNS)
    parser.add_argument("--export", action="store_true", help="write models/Stable-diffusion/starter-ct/ and stop")
    parser.add_argument("--out", type=Path, default=CT_DIR)
    args = parser.parse_args(argv)
    setup_threads()
    checkpoint = args.runs / "ct.pt"
    _, text_encoder = frozen_starter(args.starter)
    net = make_network()
    average = copy.deepcopy(net).requires_grad_(False)
    optimizer = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=0.0)
    step = resume(checkpoint, optimizer, net=net, average=average)
    if args.export:
        levels = levels_at(max(step - 1, 0), args.steps)
        print(f"exported to {export(average.eval(), args.starter, step, levels, args.out)} (step {step}, N {levels})")
        return
    latents, ids, scale = training_latents(args.runs, args.starter, args.scenes)
    with torch.no_grad():
        uncond = text_encoder(CLIPTokenizer()("").long()).last_hidden_state
    net.train()
    start = time.time()
    while step < args.steps:
        g = torch.Generator().manual_seed(40_000_000 + step)
        index = torch.randint(0, len(latents), (args.batch,), generator=g)
        tokens = ids[index, torch.randint(0, ids.shape[1], (args.batch,), generator=g)].long()
        empty = torch.rand(args.batch, generator=g) < args.empty_captions
        w = args.w_max * torch.rand(args.batch, generator=g)
        w[(torch.rand(args.batch, generator=g) >= args.guided_share) | empty] = 0.0
        if step < args.guidance_from:
            w.zero_()
        sigmas = karras_levels(levels_at(step, args.steps))
        i = lognormal_pick(sigmas, args.batch, g)
        noise = torch.randn(args.batch, 4, UNET_CONFIG["sample_size"], UNET_CONFIG["sample_size"], generator=g)
        x0 = latents[index].float() * scale
        with torch.no_grad():
            context = text_encoder(tokens).last_hidden_state
            context = torch.where(empty[:, None, None], uncond, context)
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, (step + 1) / args.warmup)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            loss = ct_step(net, x0, context, uncond.expand(args.batch, -1, -1), w, sigmas[i], sigmas[i + 1],
                           noise).mean()
        optimiser_step(loss, optimizer, net, average, args.ema)
        step += 1
        if step % 50 == 0:
            print(f"step {step} N {len(sigmas)} loss {loss.item():.4f} {(time.time() - start) / 60:.1f} min",
                  flush=True)
        if step % 250 == 0 or step == args.steps:
            save_checkpoint(checkpoint, net=net.state_dict(), average=average.state_dict(),
                            optimizer=optimizer.state_dict(), step=step)


if __name__ == "__main__":
    main()
