"""Stage 2: the starter UNet and CLIP-architecture text encoder, trained jointly on cached latents.

    python -m training.train_unet --steps 6000

Latents of the scene set are encoded once with the stage-1 VAE (<runs>/latents.pt). The UNet
learns eps-prediction on SD's own noise schedule (1000 "scaled linear" betas), so the engine samples it
like any SD1.x model. Min-SNR-5 loss weighting (Hang et al. 2023), 10 % empty captions for classifier-free
guidance, an EMA of the weights for export. Deterministic and resumable from <runs>/unet.pt.

--x0-weight-floor lifts the weight of the noisiest timesteps. Min-SNR-5 weighs the x0 error by min(SNR, 5), so
at t = 999 (SNR 0.005) the error of the predicted picture counts for almost nothing; yet only there is the
shape's place still undecided by the noisy latent, so only there can the position words be learnt.
--prediction v_prediction --zero-terminal-snr goes further (Lin et al. 2024): on SD's schedule x_T still holds
0.068 of the picture, so the model learns to read the shape's place from it, and samples from pure noise put
the shape wherever the noise suggests; with no signal left at t = 999 the words are all there is to go on.
--high-noise-fraction spends that share of every batch on t >= --high-noise-from, the only timesteps where the
noisy latent has not yet decided the shape's place, so the words get more of the training there.
--pure-noise-from T goes at the same flaw from the other side, keeping SD's schedule (so the ControlNets and the
LCM still fit): for t >= T the UNet is shown noise alone, which is what sampling starts from, and must still
predict the picture (its eps target is the one that turns that noise into x_0), so only the words can tell it where
the shape goes. On the 20-step Karras schedule the first two steps (t = 999 and about 960) fall in t >= 960.
--natural-captions adds captions written as people write prompts (training/natural_captions.py) to the cache;
--anchor-text keeps the text encoder's output for the scene grammar's own captions where --init-from had it,
so the ControlNets and the LCM, trained on those outputs, still fit while the encoder learns the new wording.
--foreground-weight F counts the latent cells the shapes cover (1 + F) times in the loss: a small shape is a few
of the 64 cells, so with a plain mean its colour is a small part of the loss and the one people notice first.
--bf16 trains under bf16 autocast (on CPUs with AMX or AVX-512 BF16 about 1.35x faster a step).
"""
import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.models import AutoencoderKL, CLIPTextConfig, CLIPTextModel, UNet2DConditionModel, UNetConfig, VAEConfig
from engine.sampling import DiscreteSchedule
from engine.tokenizer import CLIPTokenizer
from training.common import (RUNS, TEXT_CONFIG, UNET_CONFIG, VAE_CONFIG, fp32_weights, image_batch,
                             load_checkpoint, save_checkpoint, setup_threads)
from training.natural_captions import natural_caption
from training.scenes import caption, render_depth, scene_for



def stage_one_vae(runs: Path, init_from: Path | None) -> AutoencoderKL:
    """The VAE of <runs>/vae.pt, or of an exported starter folder when continuing in a fresh checkout."""
    state = load_checkpoint(runs / "vae.pt")
    vae = AutoencoderKL(VAEConfig.from_dict(VAE_CONFIG))
    if state is not None:
        vae.load_state_dict(state["model"])
    elif init_from is not None:
        vae.load_state_dict(fp32_weights(init_from / "vae" / "diffusion_pytorch_model.safetensors"))
        save_checkpoint(runs / "vae.pt", model=vae.state_dict(), step=0)
    else:
        raise SystemExit("train the VAE first: python -m training.train_vae")
    return vae.eval()


@torch.no_grad()
def build_latent_cache(vae: AutoencoderKL, runs: Path, count: int, captions_per_scene: int = 3,
                       natural_captions: int = 0) -> dict:
    """Encode `count` training scenes once; keep several captions of each (varied wording): the scene
    generator's own first, then `natural_captions` written as people write prompts."""
    tokenizer = CLIPTokenizer()
    latents, ids = [], []
    for start in range(0, count, 256):
        seeds = range(start, min(start + 256, count))
        latents.append(vae.encode(image_batch(seeds)).mean.half())
        texts = []
        for s in seeds:
            scene, first = scene_for(s)
            rng = random.Random(s * 7919 + 1)
            texts += [first] + [caption(scene, rng) for _ in range(captions_per_scene - 1)]
            texts += [natural_caption(scene, rng) for _ in range(natural_captions)]
        ids.append(tokenizer(texts).view(len(seeds), captions_per_scene + natural_captions, -1).int())
        print(f"encoded {start + len(seeds)} / {count}", flush=True)
    latents = torch.cat(latents)
    cache = {"latents": latents, "ids": torch.cat(ids), "scaling_factor": 1.0 / latents.float().std().item(),
             "own_captions": captions_per_scene}
    save_checkpoint(runs / "latents.pt", **cache)
    return cache


def foreground_cells(count: int, latent_size: int) -> torch.Tensor:
    """(count, 1, latent_size, latent_size): the share of each latent cell that the training scene's shapes cover."""
    masks = [torch.from_numpy(np.asarray(render_depth(scene_for(s)[0]))[..., 0] > 0) for s in range(count)]
    return F.adaptive_avg_pool2d(torch.stack(masks)[:, None].float(), latent_size)


def noisy_sample(x0: torch.Tensor, noise: torch.Tensor, a: torch.Tensor, pure: torch.Tensor) -> tuple:
    """(x_t, eps) with x_t = sqrt(a) x0 + sqrt(1 - a) eps: q(x_t | x_0) (DDPM Eq. 4), except that the rows
    marked `pure` are the noise alone, with the eps that would make it from their x_0."""
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
    if not pure.any():
        return x_t, noise
    pure = pure[:, None, None, None]
    return torch.where(pure, noise, x_t), torch.where(pure, (noise - a.sqrt() * x0) / (1 - a).sqrt(), noise)


def make_models():
    torch.manual_seed(1)
    return (UNet2DConditionModel(UNetConfig.from_dict(UNET_CONFIG)),
            CLIPTextModel(CLIPTextConfig.from_dict(TEXT_CONFIG)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--scenes", type=int, default=60000)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--runs", type=Path, default=RUNS, help="folder for checkpoints and caches (not committed)")
    parser.add_argument("--init-from", type=Path, help="continue from an exported starter folder (fresh optimizer)")
    parser.add_argument("--x0-weight-floor", type=float, default=0.0,
                        help="x0-error weight at least this at every timestep (0: plain min-SNR-5)")
    parser.add_argument("--prediction", choices=["epsilon", "v_prediction"], default="epsilon")
    parser.add_argument("--zero-terminal-snr", action="store_true",
                        help="train on the schedule rescaled to zero terminal SNR (needs v_prediction)")
    parser.add_argument("--freeze-text-encoder", action="store_true",
                        help="train the UNet only (the LCM and ControlNets share the exported text encoder)")
    parser.add_argument("--high-noise-fraction", type=float, default=0.0,
                        help="share of each batch drawn from t >= --high-noise-from (0: t uniform over 0-999)")
    parser.add_argument("--high-noise-from", type=int, default=800)
    parser.add_argument("--pure-noise-from", type=int, default=1000,
                        help="for t >= this the noisy latent is noise alone (1000: never)")
    parser.add_argument("--foreground-weight", type=float, default=0.0,
                        help="extra loss weight of the latent cells the shapes cover (0: a plain mean)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for the forward pass")
    parser.add_argument("--natural-captions", type=int, default=0,
                        help="captions per scene written as people write prompts, beside the 3 of the scene grammar")
    parser.add_argument("--anchor-text", type=float, default=0.0,
                        help="weight of a loss keeping the text encoder's output for the scene grammar's captions "
                             "where --init-from had it (the ControlNets and the LCM were trained on those)")
    args = parser.parse_args(argv)
    if args.zero_terminal_snr and args.prediction != "v_prediction":
        parser.error("--zero-terminal-snr needs --prediction v_prediction (eps is undefined where no signal is left)")
    setup_threads()
    checkpoint = args.runs / "unet.pt"
    cache = load_checkpoint(args.runs / "latents.pt") or build_latent_cache(stage_one_vae(args.runs, args.init_from),
                                                                          args.runs, args.scenes,
                                                                          natural_captions=args.natural_captions)
    latents, ids, scale = cache["latents"], cache["ids"], cache["scaling_factor"]
    own_captions = cache.get("own_captions", ids.shape[1])
    cells = foreground_cells(len(latents), latents.shape[-1]) if args.foreground_weight else None
    unet, text_encoder = make_models()
    ema_unet, ema_text = make_models()
    params = list(unet.parameters()) + list(text_encoder.parameters())
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    step = 0
    state = load_checkpoint(checkpoint)
    if state:
        unet.load_state_dict(state["unet"])
        text_encoder.load_state_dict(state["text_encoder"])
        ema_unet.load_state_dict(state["ema_unet"])
        ema_text.load_state_dict(state["ema_text"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        print(f"resuming at step {step}")
    else:
        if args.init_from is not None:   # an earlier session's export: its EMA weights seed both copies
            unet.load_state_dict(fp32_weights(args.init_from / "unet" / "diffusion_pytorch_model.safetensors"))
            text_encoder.load_state_dict(fp32_weights(args.init_from / "text_encoder" / "model.safetensors"))
            step = json.loads((args.init_from / "model_index.json").read_text()).get("training_steps", 0)
            print(f"continuing from {args.init_from} at step {step}")
        ema_unet.load_state_dict(unet.state_dict())
        ema_text.load_state_dict(text_encoder.state_dict())
    anchor = None
    if args.anchor_text:
        if args.init_from is None:
            parser.error("--anchor-text keeps the text encoder near --init-from's: give --init-from")
        anchor = make_models()[1].eval().requires_grad_(False)
        anchor.load_state_dict(fp32_weights(args.init_from / "text_encoder" / "model.safetensors"))
    schedule = DiscreteSchedule(zero_terminal_snr=args.zero_terminal_snr)
    alphas_cumprod = schedule.alphas_cumprod.float()
    snr = alphas_cumprod / (1 - alphas_cumprod)
    x0_weight = snr.clamp(min=args.x0_weight_floor, max=5.0)          # min-SNR-5, in terms of the x0 error
    loss_weight = x0_weight / (snr if args.prediction == "epsilon" else snr + 1)   # the same, per timestep
    empty = CLIPTokenizer()("")[0].int()
    unet.train()
    text_encoder.train(not args.freeze_text_encoder).requires_grad_(not args.freeze_text_encoder)
    tuned = (ema_unet, unet), *(() if args.freeze_text_encoder else ((ema_text, text_encoder),))
    start = time.time()
    while step < args.steps:
        g = torch.Generator().manual_seed(step)
        index = torch.randint(0, len(latents), (args.batch,), generator=g)
        which = torch.randint(0, ids.shape[1], (args.batch,), generator=g)
        tokens = ids[index, which].clone()
        tokens[torch.rand(args.batch, generator=g) < 0.1] = empty        # unconditional 10 % of the time
        x0 = latents[index].float() * scale
        t = torch.randint(0, 1000, (args.batch,), generator=g)
        high = round(args.batch * args.high_noise_fraction)
        t[:high] = torch.randint(args.high_noise_from, 1000, (high,), generator=g)
        a = alphas_cumprod[t][:, None, None, None]
        x_t, noise = noisy_sample(x0, torch.randn(x0.shape, generator=g), a, t >= args.pure_noise_from)
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, (step + 1) / 200)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            context = text_encoder(tokens.long()).last_hidden_state
            prediction = unet(x_t, t, context).float()
        if args.prediction == "epsilon":
            target = noise
        else:                                                             # v = sqrt(a) eps - sqrt(1 - a) x0
            target = a.sqrt() * noise - (1 - a).sqrt() * x0
        error = (prediction - target).pow(2)
        if cells is not None:   # a weighted mean over each sample's cells
            where = 1 + args.foreground_weight * cells[index]
            error = error * where / where.mean(dim=(2, 3), keepdim=True)
        loss = (loss_weight[t] * error.mean(dim=(1, 2, 3))).mean()
        if anchor is not None:   # the scene grammar's captions (and the empty one) keep their old meaning
            own = which < own_captions
            with torch.no_grad():
                old = anchor(tokens[own].long()).last_hidden_state
            loss = loss + args.anchor_text * (context[own].float() - old).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        step += 1
        with torch.no_grad():
            decay = min(0.999, (1 + step) / (10 + step))
            for ema, live in tuned:
                for e, p in zip(ema.parameters(), live.parameters()):
                    e.lerp_(p, 1 - decay)
        if step % 50 == 0:
            print(f"step {step} loss {loss.item():.4f} {(time.time() - start) / 60:.1f} min", flush=True)
        if step % 250 == 0 or step == args.steps:
            save_checkpoint(checkpoint, unet=unet.state_dict(), text_encoder=text_encoder.state_dict(),
                            ema_unet=ema_unet.state_dict(), ema_text=ema_text.state_dict(),
                            optimizer=optimizer.state_dict(), step=step, scaling_factor=scale,
                            prediction_type=args.prediction, zero_terminal_snr=args.zero_terminal_snr)
        if args.eval_every and step % args.eval_every == 0:
            from training.evaluate import quick_evaluation
            results = quick_evaluation(ema_unet, ema_text, scale, args.runs, args.prediction, args.zero_terminal_snr)
            print(f"step {step} held-out: {results}", flush=True)


if __name__ == "__main__":
    main()
