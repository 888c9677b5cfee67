"""Stage 4: latent consistency distillation of the starter model into "starter-lcm" (1-8 step pictures).

    python -m training.distill_lcm --steps 2000        # teacher: models/Stable-diffusion/starter
    python -m training.distill_lcm --export            # -> models/Stable-diffusion/starter-lcm/

Luo et al. 2023, Algorithm 1 (LCD): for a training latent z, caption c, guidance w ~ U[w_min, w_max] and a
step t_{n+k} of the 50-step distillation grid (k = 20 DDPM steps), x_{t_{n+k}} = sqrt(a) z + sqrt(1 - a) eps;
the frozen teacher takes one DDIM step with classifier-free guidance w to x_{t_n}; the student f_theta,
given w as an embedding (time_cond_proj_dim), must agree with the target network f_theta- there:
L = huber(f_theta(x_{t_{n+k}}, w, c, t_{n+k}), f_theta-(x_{t_n}, w, c, t_n)), theta- an EMA (decay 0.95).
f = c_skip x_t + c_out x_0(eps) with LCM's boundary scalings (engine.sampling.consistency). The student
starts as the teacher with a zero guidance projection; the text encoder and VAE are the teacher's.
Deterministic and resumable from <runs>/lcm.pt; the export carries the target network's weights.

--endpoints N adds what the consistency function is by definition: from any point it must give the origin of
the teacher's probability-flow ODE trajectory through it. N such origins (random captions and w; the teacher's
25-step guided DDIM solution) are solved once into <runs>/lcm-origins-*.pt: half from pure noise at t = 999,
where one-step sampling starts, half from training latents noised to a random step of the 50-step grid, the
kind of point multistep sampling re-noises to. Every step adds --endpoint-weight x the pseudo-Huber distance of
the student's output to --endpoint-batch of them. The skipping-step loss alone reaches t = 999 only through a
chain of 50 consistency links, and one-step colours drifted further from the teacher's the longer it trained.
"""
import argparse
import copy
import json
import shutil
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from engine.models import UNet2DConditionModel, UNetConfig
from engine.sampling import DiscreteSchedule
from engine.sampling.consistency import guidance_embedding, lcm_boundary
from engine.tokenizer import CLIPTokenizer
from training.common import (RUNS, STARTER_DIR, UNET_CONFIG, latent_cache, load_checkpoint,
                             optimiser_step, resume, save_checkpoint, setup_threads, write_json)
from training.train_controlnet import frozen_starter

LCM_DIR = STARTER_DIR.parent / "starter-lcm"
W_DIM = 64                       # guidance embedding width (LCM_Dreamshaper_v7 uses 256 for a 320-channel UNet)
SKIP = 20                        # DDPM steps between neighbours of the 50-step grid
HUBER_C = 0.001


def student_from(teacher) -> UNet2DConditionModel:
    """The teacher's UNet with a guidance projection that starts at zero (so it starts as the teacher)."""
    student = UNet2DConditionModel(UNetConfig.from_dict({**UNET_CONFIG, "time_cond_proj_dim": W_DIM}))
    own = student.state_dict()
    student.load_state_dict({k: teacher.state_dict().get(k, v) for k, v in own.items()})
    with torch.no_grad():
        student.time_embedding.cond_proj.weight.zero_()
    return student


def consistency_function(unet, x_t, t, context, w_embedding, alphas_cumprod):
    """f(x_t, t) = c_skip x_t + c_out x_0, x_0 = (x_t - sqrt(1 - a) eps) / sqrt(a) (DDPM-scaled x_t)."""
    a = alphas_cumprod[t][:, None, None, None]
    eps = unet(x_t, t, context, timestep_cond=w_embedding)
    x0 = (x_t - (1 - a).sqrt() * eps) / a.sqrt()
    c_skip, c_out = lcm_boundary(t.float()[:, None, None, None])
    return c_skip * x_t + c_out * x0


@torch.no_grad()
def teacher_ddim_step(teacher, x_t, t, t_prev, context, uncond, w, alphas_cumprod, a_prev=None):
    """One DDIM step (eta 0) of the teacher guided with eps_c + w (eps_c - eps_u), w = guidance scale - 1.
    a_prev overrides alphas_cumprod[t_prev] (1 for the last step, to the origin itself)."""
    eps_c, eps_u = teacher(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([context, uncond])).chunk(2)
    eps = eps_c.float() + w[:, None, None, None] * (eps_c.float() - eps_u.float())
    a = alphas_cumprod[t][:, None, None, None]
    a_prev = alphas_cumprod[t_prev][:, None, None, None] if a_prev is None else a_prev
    x0 = (x_t - (1 - a).sqrt() * eps) / a.sqrt()
    return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps


@torch.no_grad()
def teacher_origins(teacher, text_encoder, ids, count: int, w_range: tuple, alphas_cumprod, latents=None,
                    seed: int = 30_000_000, steps: int = 25, batch: int = 64) -> dict:
    """{"x_t", "t", "tokens", "w", "x0"}: `count` starting points with random training captions and guidance, and
    the origin the teacher's guided DDIM solve (the probability-flow ODE's Euler method, `steps` steps) reaches
    from each. Without `latents` each starts from pure noise at t = 999, as one-step sampling does; with them
    from a training latent noised to a random step of the distillation grid, as multistep sampling re-noises."""
    g = torch.Generator().manual_seed(seed)
    index = torch.randint(0, len(ids), (count,), generator=g)
    tokens = ids[index, torch.randint(0, ids.shape[1], (count,), generator=g)].long()
    w = w_range[0] + (w_range[1] - w_range[0]) * torch.rand(count, generator=g)
    noise = torch.randn(count, 4, UNET_CONFIG["sample_size"], UNET_CONFIG["sample_size"], generator=g)
    if latents is None:
        t, x_t = torch.full((count,), 999), noise
    else:
        t = torch.randint(0, 50, (count,), generator=g) * SKIP + SKIP - 1
        a = alphas_cumprod[t][:, None, None, None]
        x_t = a.sqrt() * latents[index].float() + (1 - a).sqrt() * noise
    uncond = text_encoder(CLIPTokenizer()("").long()).last_hidden_state
    grids = (t[:, None] * torch.linspace(1, 0, steps)[None]).round().long()     # each its own way down to 0
    origins = []
    for start in range(0, count, batch):
        part = slice(start, start + batch)
        x, context, grid = x_t[part], text_encoder(tokens[part]).last_hidden_state, grids[part]
        for i in range(steps):
            last = i == steps - 1
            x = teacher_ddim_step(teacher, x, grid[:, i], grid[:, min(i + 1, steps - 1)], context,
                                  uncond.expand(len(x), -1, -1), w[part], alphas_cumprod,
                                  a_prev=torch.ones(()) if last else None)
        origins.append(x)
        print(f"teacher origins {min(start + batch, count)} / {count}", flush=True)
    return {"x_t": x_t, "t": t, "tokens": tokens, "w": w, "x0": torch.cat(origins)}


def origins_cache(runs: Path, teacher, text_encoder, ids, latents, scale, count: int, w_range, alphas_cumprod) -> dict:
    """Half the origins from pure noise at t = 999, half from noised latents; each half solved once and kept."""
    halves = []
    for name, seed in (("noise", 30_000_000), ("grid", 30_000_001)):
        path = runs / f"lcm-origins-{name}.pt"
        half = load_checkpoint(path)
        if half is None or len(half["x0"]) != count // 2:
            start = latents.float() * scale if name == "grid" else None
            half = teacher_origins(teacher, text_encoder, ids, count // 2, w_range, alphas_cumprod, start, seed)
            save_checkpoint(path, **half)
        halves.append(half)
    return {k: torch.cat([h[k] for h in halves]) for k in halves[0]}


def pseudo_huber(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (((a - b) ** 2 + HUBER_C ** 2).sqrt() - HUBER_C).mean()


def export(target, teacher_dir: Path, step: int, out: Path = LCM_DIR) -> Path:
    """A diffusers folder: the distilled UNet, the teacher's VAE, text encoder and tokenizer settings."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(teacher_dir, out, ignore=shutil.ignore_patterns("unet"))
    write_json(out / "unet" / "config.json", {"_class_name": "UNet2DConditionModel", **UNET_CONFIG,
                                               "time_cond_proj_dim": W_DIM})
    save_file({k: v.half().contiguous() for k, v in target.state_dict().items()},
              out / "unet" / "diffusion_pytorch_model.safetensors")
    write_json(out / "scheduler" / "scheduler_config.json", {
        "_class_name": "LCMScheduler", "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
        "num_train_timesteps": 1000, "original_inference_steps": 50, "timestep_scaling": 10.0,
        "prediction_type": "epsilon"})
    meta = json.loads((teacher_dir / "model_index.json").read_text())
    meta.update(scheduler=["diffusers", "LCMScheduler"], distillation_steps=step,
                description="The built-in demo model distilled into a latent consistency model: 1-8 steps, "
                            "sampler LCM, guidance as an input. Made by training/distill_lcm.py.")
    write_json(out / "model_index.json", meta)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--w-min", type=float, default=2.0, help="guidance scale - 1, lowest")
    parser.add_argument("--w-max", type=float, default=8.0, help="guidance scale - 1, highest")
    parser.add_argument("--ema", type=float, default=0.95, help="decay of the target network")
    parser.add_argument("--terminal-fraction", type=float, default=0.0,
                        help="share of each batch put at t = 999, the step one-step sampling takes (besides the "
                             "1 in 50 it gets by chance)")
    parser.add_argument("--pure-noise-start", action="store_true",
                        help="at t = 999 the student sees noise alone, as when sampling starts")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for the forward passes")
    parser.add_argument("--endpoints", type=int, default=0,
                        help="teacher trajectory origins to solve once and fit the one-step output to (0: off)")
    parser.add_argument("--endpoint-batch", type=int, default=16)
    parser.add_argument("--endpoint-weight", type=float, default=1.0)
    parser.add_argument("--teacher", type=Path, default=STARTER_DIR)
    parser.add_argument("--runs", type=Path, default=RUNS)
    parser.add_argument("--export", action="store_true", help="write models/Stable-diffusion/starter-lcm/ and stop")
    parser.add_argument("--out", type=Path, default=LCM_DIR)
    args = parser.parse_args(argv)
    setup_threads()
    checkpoint = args.runs / "lcm.pt"
    teacher, text_encoder = frozen_starter(args.teacher)
    student = student_from(teacher)
    target = copy.deepcopy(student).requires_grad_(False)
    optimizer = torch.optim.AdamW(student.parameters(), lr=args.lr, weight_decay=0.0)
    step = resume(checkpoint, optimizer, student=student, target=target)
    if args.export:
        print(f"exported to {export(target.eval(), args.teacher, step, args.out)} (step {step})")
        return
    latents, ids, scale = latent_cache(args.runs)
    alphas_cumprod = DiscreteSchedule().alphas_cumprod.float()
    with torch.no_grad():
        uncond = text_encoder(CLIPTokenizer()("").long()).last_hidden_state
    origins = None
    if args.endpoints:
        origins = origins_cache(args.runs, teacher, text_encoder, ids, latents, scale, args.endpoints,
                                (args.w_min, args.w_max), alphas_cumprod)
    student.train()
    start = time.time()
    while step < args.steps:
        g = torch.Generator().manual_seed(20_000_000 + step)
        index = torch.randint(0, len(latents), (args.batch,), generator=g)
        tokens = ids[index, torch.randint(0, ids.shape[1], (args.batch,), generator=g)].long()
        x0 = latents[index].float() * scale
        n = torch.randint(0, 50, (args.batch,), generator=g)          # t_{n+k} = 20 n + 19, t_n = t_{n+k} - 20
        if args.terminal_fraction:
            n[torch.rand(args.batch, generator=g) < args.terminal_fraction] = 49
        t, t_prev = n * SKIP + SKIP - 1, (n * SKIP - 1).clamp(min=0)
        w = args.w_min + (args.w_max - args.w_min) * torch.rand(args.batch, generator=g)
        w_embedding = guidance_embedding(w, W_DIM)
        noise = torch.randn(x0.shape, generator=g)
        a = alphas_cumprod[t][:, None, None, None]
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        if args.pure_noise_start:       # sampling starts from noise alone, not from 0.068 of a picture in it
            x_t = torch.where((n == 49)[:, None, None, None], noise, x_t)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            with torch.no_grad():
                context = text_encoder(tokens).last_hidden_state
                x_prev = teacher_ddim_step(teacher, x_t, t, t_prev, context, uncond.expand(len(tokens), -1, -1), w,
                                           alphas_cumprod).float()
                aim = consistency_function(target, x_prev, t_prev, context, w_embedding, alphas_cumprod).float()
            guess = consistency_function(student, x_t, t, context, w_embedding, alphas_cumprod).float()
            if origins is not None:
                pick = torch.randint(0, len(origins["x0"]), (args.endpoint_batch,), generator=g)
                with torch.no_grad():
                    origin_context = text_encoder(origins["tokens"][pick]).last_hidden_state
                one_step = consistency_function(student, origins["x_t"][pick], origins["t"][pick], origin_context,
                                                guidance_embedding(origins["w"][pick], W_DIM), alphas_cumprod).float()
        loss = pseudo_huber(guess, aim)
        if origins is not None:
            loss = loss + args.endpoint_weight * pseudo_huber(one_step, origins["x0"][pick])
        optimiser_step(loss, optimizer, student, target, args.ema)
        step += 1
        if step % 50 == 0:
            print(f"step {step} loss {loss.item():.4f} {(time.time() - start) / 60:.1f} min", flush=True)
        if step % 250 == 0 or step == args.steps:
            save_checkpoint(checkpoint, student=student.state_dict(), target=target.state_dict(),
                            optimizer=optimizer.state_dict(), step=step)


if __name__ == "__main__":
    main()
