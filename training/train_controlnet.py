"""Stage 3: starter ControlNets for the starter model, trained on the scene generator's exact control maps.

    python -m training.train_controlnet --kind edges --steps 4000    # serves canny, lineart, scribble, softedge, mlsd
    python -m training.train_controlnet --kind seg --steps 4000      # ADE20K-coloured segmentation
    python -m training.train_controlnet --kind edges --export        # -> models/ControlNet/starter-edges/

As Zhang et al. 2023: the ControlNet starts as a copy of the starter UNet's encoder with zero-initialised 1x1
convolutions, the UNet and text encoder stay frozen, and the loss is the UNet's eps loss with the ControlNet's
residuals added. Edge maps are randomly thickened (1-3 px) so drawn lines and canny maps of real pictures fit
too. Latents and captions come from the UNet stage's cache. Deterministic and resumable from
<runs>/controlnet-<kind>.pt.
"""
import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from safetensors.torch import load_file, save_file

from engine.models.controlnet import ControlNetConfig, ControlNetModel
from engine.sampling import DiscreteSchedule
from training.common import (RUNS, STARTER_DIR, UNET_CONFIG, latent_cache, load_checkpoint, save_checkpoint,
                             setup_threads)
from training.scenes import render_edges, render_segmentation, scene_for
from training.train_unet import make_models

KINDS = {"edges": render_edges, "seg": render_segmentation}
CONTROLNET_DIR = STARTER_DIR.parents[1] / "ControlNet"
HINT_CHANNELS = [16, 32, 96]            # two stride-2 steps: the starter's latents are 1/4 of the picture


def control_batch(kind: str, seeds, rng: np.random.Generator) -> torch.Tensor:
    """(B, 3, 64, 64) control maps in [0, 1]; edge maps thickened by a random 1-3 px."""
    maps = []
    for seed in seeds:
        picture = np.asarray(KINDS[kind](scene_for(int(seed))[0]))
        if kind == "edges":
            width = int(rng.integers(1, 4))
            if width > 1:
                picture = cv2.dilate(picture, np.ones((width, width), np.uint8))
        maps.append(picture)
    return torch.from_numpy(np.stack(maps)).permute(0, 3, 1, 2).float() / 255.0


def controlnet_from_unet(unet) -> ControlNetModel:
    """The encoder copy with the UNet's weights; the zero convolutions (and the hint's last conv) at zero."""
    config = ControlNetConfig.from_dict({**UNET_CONFIG, "conditioning_embedding_out_channels": HINT_CHANNELS})
    net = ControlNetModel(config)
    own = net.state_dict()
    net.load_state_dict({k: unet.state_dict().get(k, v) for k, v in own.items()})
    with torch.no_grad():
        for conv in [*net.controlnet_down_blocks, net.controlnet_mid_block, net.controlnet_cond_embedding.conv_out]:
            conv.weight.zero_()
            conv.bias.zero_()
    return net


def frozen_starter(starter: Path):
    unet, text_encoder = make_models()
    unet.load_state_dict({k: v.float() for k, v in load_file(starter / "unet" / "diffusion_pytorch_model.safetensors").items()})
    text_encoder.load_state_dict({k: v.float() for k, v in load_file(starter / "text_encoder" / "model.safetensors").items()})
    return unet.eval().requires_grad_(False), text_encoder.eval().requires_grad_(False)


def export(net: ControlNetModel, kind: str, out: Path | None = None) -> Path:
    out = out or CONTROLNET_DIR / f"starter-{kind}"
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.half().contiguous() for k, v in net.state_dict().items()}, out / "diffusion_pytorch_model.safetensors")
    (out / "config.json").write_text(json.dumps({**UNET_CONFIG, "conditioning_embedding_out_channels": HINT_CHANNELS,
                                                 "_class_name": "ControlNetModel"}, indent=2) + "\n")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=sorted(KINDS), required=True)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--starter", type=Path, default=STARTER_DIR, help="the frozen base model (an export)")
    parser.add_argument("--runs", type=Path, default=RUNS)
    parser.add_argument("--export", action="store_true", help="write models/ControlNet/starter-<kind>/ and stop")
    parser.add_argument("--out", type=Path, help="export folder instead of models/ControlNet/starter-<kind>")
    args = parser.parse_args(argv)
    setup_threads()
    checkpoint = args.runs / f"controlnet-{args.kind}.pt"
    unet, text_encoder = frozen_starter(args.starter)
    net = controlnet_from_unet(unet)
    optimizer = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=0.0)
    state, step = load_checkpoint(checkpoint), 0
    if state:
        net.load_state_dict(state["controlnet"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        print(f"resuming at step {step}")
    if args.export:
        print(f"exported to {export(net, args.kind, args.out)} (step {step})")
        return
    latents, ids, scale = latent_cache(args.runs)
    alphas_cumprod = DiscreteSchedule().alphas_cumprod.float()
    net.train()
    start = time.time()
    while step < args.steps:
        g = torch.Generator().manual_seed(10_000_000 + step)
        rng = np.random.default_rng(step)
        index = torch.randint(0, len(latents), (args.batch,), generator=g)
        tokens = ids[index, torch.randint(0, ids.shape[1], (args.batch,), generator=g)].long()
        hint = control_batch(args.kind, index.tolist(), rng)
        x0 = latents[index].float() * scale
        t = torch.randint(0, 1000, (args.batch,), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        a = alphas_cumprod[t][:, None, None, None]
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        with torch.no_grad():
            context = text_encoder(tokens).last_hidden_state
        down, mid = net(x_t, t, context, hint)
        eps = unet(x_t, t, context, down_block_additional_residuals=down, mid_block_additional_residual=mid)
        loss = (eps - noise).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        step += 1
        if step % 50 == 0:
            print(f"step {step} loss {loss.item():.4f} {(time.time() - start) / 60:.1f} min", flush=True)
        if step % 250 == 0 or step == args.steps:
            save_checkpoint(checkpoint, controlnet=net.state_dict(), optimizer=optimizer.state_dict(), step=step)


if __name__ == "__main__":
    main()
