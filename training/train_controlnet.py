"""Stage 3: starter ControlNets for the starter model, trained on control maps of generated scenes.

    python -m training.train_controlnet --kind edges --steps 4000    # serves canny, lineart, scribble, softedge, mlsd
    python -m training.train_controlnet --kind seg --steps 4000      # ADE20K-coloured segmentation
    python -m training.train_controlnet --kind pose --steps 1500 --init-from models/ControlNet/starter-edges
    python -m training.train_controlnet --kind depth-normal --steps 1500 --init-from models/ControlNet/starter-edges
    python -m training.train_controlnet --kind edges --export        # -> models/ControlNet/starter-edges/

As Zhang et al. 2023: the ControlNet starts as a copy of the starter UNet's encoder with zero-initialised 1x1
convolutions (or, with --init-from, as an exported ControlNet to continue), the UNet and text encoder stay
frozen, and the loss is the UNet's eps loss with the ControlNet's residuals added.

So that the map, not the caption, decides shape and place (the paper replaces half of the prompts with empty
strings for this reason):
- --empty-captions of the samples have no caption at all, --colour-captions name only the colours (never a
  shape, size or place), --shape-captions name colours and shapes; the rest keep the full caption;
- --free-scenes of the scenes have shapes of any size at any place (training.scenes.free_scene), which no
  caption can name; their latents are encoded on the fly by the starter's frozen VAE;
- edge maps come in the styles users make them (training.user_maps: canny of a larger photo at some processor
  resolution, thick hand-drawn scribbles through "invert", lineart, soft edges, the exact 1-3 px boundaries),
  fitted to 64 px exactly as the app fits a map (engine.control_map).
Deterministic and resumable from <runs>/controlnet-<kind>.pt.
"""
import argparse
import json
import random
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from safetensors.torch import save_file

from engine.control_map import fit_map
from engine.models import AutoencoderKL, VAEConfig
from engine.models.controlnet import ControlNetConfig, ControlNetModel
from engine.sampling import DiscreteSchedule
from engine.tokenizer import CLIPTokenizer
from extensions.annotators import model_free
from training.common import (
    RUNS,
    STARTER_DIR,
    TRAIN_SEEDS,
    UNET_CONFIG,
    VAE_CONFIG,
    fp32_weights,
    load_checkpoint,
    save_checkpoint,
    setup_threads,
)
from training.figures import figure_caption, random_figure, render_figure, render_pose
from training.scenes import (
    SHAPE_WORDS,
    SIZE,
    caption,
    colour_caption,
    free_scene,
    render,
    render_depth,
    render_segmentation,
    scene_for,
)
from training.train_unet import make_models
from training.user_maps import edge_map

KINDS = ("edges", "seg", "depth", "normal", "depth-normal", "shuffle", "pose")
CONTROLNET_DIR = STARTER_DIR.parents[1] / "ControlNet"
HINT_CHANNELS = [16, 32, 96]            # two stride-2 steps: the starter's latents are 1/4 of the picture
EDGE_STYLE_WEIGHTS = {"exact": 2, "canny": 3, "scribble": 3, "lineart": 1, "softedge": 1}
FREE_SEED_SALT = 0x5EED_F4EE


def training_scene(seed: int, free_share: float):
    """(scene, is_free, rng) for a training seed: a grid scene of the caption grammar or a free one."""
    rng = random.Random(seed * 2654435761 % (1 << 61))
    if rng.random() < free_share:
        return free_scene(random.Random(seed ^ FREE_SEED_SALT)), True, rng
    return scene_for(seed)[0], False, rng


def training_caption(scene, free: bool, rng: random.Random, shares: tuple) -> str:
    """Empty, colours only, colours and shapes, shapes only (the colours left to a shuffle map), or the full
    caption (free scenes have no full caption)."""
    empty, colours, shapes, shapes_only = (*shares, 0.0)[:4]
    draw = rng.random()
    if draw < empty:
        return ""
    if draw < empty + colours:
        return colour_caption(scene, rng)
    if draw < empty + colours + shapes_only:
        return " and ".join(f"a {rng.choice(SHAPE_WORDS[s.kind])}" for s in scene.shapes)
    if draw < empty + colours + shapes_only + shapes or free:
        return colour_caption(scene, rng, shapes_named=True)
    return caption(scene, rng)


def control_map(kind: str, scene, rng: random.Random, edge_styles: dict = EDGE_STYLE_WEIGHTS) -> np.ndarray:
    """The scene's map of this kind, made as a user would make it, fitted to the 64-px picture as the app does;
    edge maps in the styles of `edge_styles` (style -> relative weight)."""
    if kind == "edges":
        style = rng.choices(list(edge_styles), weights=list(edge_styles.values()))[0]
        return fit_map(edge_map(style, scene, rng), SIZE, SIZE, "Crop and resize")
    if kind == "seg":
        return np.asarray(render_segmentation(scene))
    if kind == "depth-normal":           # one ControlNet for the depth and the normal tab, as edges serves five
        kind = rng.choice(["depth", "normal"])
    resolution = rng.choice([64, 128, 256, 512])
    if kind == "depth":                  # layer depth, white near
        return np.asarray(render_depth(scene))
    if kind == "normal":                 # the normal tab's default: depth_to_normal of a depth map, as A1111's
        depth = cv2.resize(np.asarray(render_depth(scene)), (resolution, resolution), interpolation=cv2.INTER_NEAREST)
        return fit_map(model_free.depth_to_normal(depth, resolution, 0.4), SIZE, SIZE, "Crop and resize")
    if kind == "shuffle":                # A1111's content shuffle of the picture, a new flow every time
        photo = np.asarray(render(scene, resolution))
        return fit_map(model_free.shuffle(photo, resolution, seed=rng.randrange(1 << 30)), SIZE, SIZE, "Crop and resize")
    raise ValueError(f"kind must be one of {KINDS}")


def pose_sample(seed: int, caption_shares: tuple) -> tuple:
    """(picture, caption, map) of a figure: its OpenPose skeleton drawn at a processor resolution, fitted to 64 px."""
    rng = random.Random(seed * 2654435761 % (1 << 61))
    figure = random_figure(random.Random(seed ^ FREE_SEED_SALT))
    draw = rng.random()
    text = "" if draw < caption_shares[0] else figure_caption(figure, rng, colours_only=draw < sum(caption_shares[:2]))
    skeleton = render_pose(figure, rng.choice([64, 128, 256, 512, 512]))   # 512: the preprocessors' default
    return render_figure(figure), text, fit_map(skeleton, SIZE, SIZE, "Crop and resize")


def sample(kind: str, seed: int, free_share: float, caption_shares: tuple,
           edge_styles: dict = EDGE_STYLE_WEIGHTS) -> tuple:
    """(picture, caption, map) for one training seed."""
    if kind == "pose":
        return pose_sample(seed, caption_shares)
    scene, free, rng = training_scene(seed, free_share)
    return render(scene), training_caption(scene, free, rng, caption_shares), control_map(kind, scene, rng, edge_styles)


def training_batch(kind: str, seeds, free_share: float, caption_shares: tuple,
                   edge_styles: dict = EDGE_STYLE_WEIGHTS) -> tuple:
    """(pictures in [-1, 1], captions, maps in [0, 1]) for a list of training seeds."""
    pictures, texts, maps = [], [], []
    for seed in seeds:
        picture, text, hint = sample(kind, int(seed), free_share, caption_shares, edge_styles)
        pictures.append(np.asarray(picture, np.float32))
        texts.append(text)
        maps.append(np.asarray(hint))
    to_tensor = lambda arrays: torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float()
    return to_tensor(pictures) / 127.5 - 1.0, texts, to_tensor(maps) / 255.0


def net_config(pooled: bool = False) -> dict:
    """The ControlNet's config: the starter UNet's, with its hint encoder; `pooled` averages its residuals over
    space (as A1111's control_v11e_sd15_shuffle), so the map gives colours and textures, not places."""
    return {**UNET_CONFIG, "conditioning_embedding_out_channels": HINT_CHANNELS,
            **({"global_pool_conditions": True} if pooled else {})}


def controlnet_from_unet(unet, pooled: bool = False) -> ControlNetModel:
    """The encoder copy with the UNet's weights; the zero convolutions (and the hint's last conv) at zero."""
    config = ControlNetConfig.from_dict(net_config(pooled))
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
    unet.load_state_dict(fp32_weights(starter / "unet" / "diffusion_pytorch_model.safetensors"))
    text_encoder.load_state_dict(fp32_weights(starter / "text_encoder" / "model.safetensors"))
    return unet.eval().requires_grad_(False), text_encoder.eval().requires_grad_(False)


def frozen_vae(starter: Path) -> AutoencoderKL:
    config = json.loads((starter / "vae" / "config.json").read_text())
    vae = AutoencoderKL(VAEConfig.from_dict({**VAE_CONFIG, "scaling_factor": config["scaling_factor"]}))
    vae.load_state_dict(fp32_weights(starter / "vae" / "diffusion_pytorch_model.safetensors"))
    return vae.eval().requires_grad_(False)


def export(net: ControlNetModel, kind: str, out: Path | None = None, pooled: bool = False) -> Path:
    out = out or CONTROLNET_DIR / f"starter-{kind}"
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.half().contiguous() for k, v in net.state_dict().items()}, out / "diffusion_pytorch_model.safetensors")
    (out / "config.json").write_text(json.dumps({**net_config(pooled), "_class_name": "ControlNetModel"}, indent=2) + "\n")
    return out


def style_weights(text: str) -> dict:
    """"lineart=4,canny=2" -> {"lineart": 4.0, "canny": 2.0}, styles checked against EDGE_STYLE_WEIGHTS."""
    weights = {}
    for item in filter(None, text.split(",")):
        name, _, value = item.partition("=")
        if name not in EDGE_STYLE_WEIGHTS:
            raise argparse.ArgumentTypeError(f"edge style {name!r}; choose from {', '.join(EDGE_STYLE_WEIGHTS)}")
        weights[name] = float(value)
    return weights


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--empty-captions", type=float, default=0.5, help="share of samples with no caption")
    parser.add_argument("--colour-captions", type=float, default=0.25, help="share naming only the colours")
    parser.add_argument("--shape-captions", type=float, default=0.1, help="share naming colours and shapes")
    parser.add_argument("--shapes-only-captions", type=float, default=0.0,
                        help="share naming the shapes but no colour (for shuffle: the map gives the colours)")
    parser.add_argument("--edge-styles", type=style_weights, default={},
                        help="edges: style weights instead of the defaults', e.g. lineart=4,canny=2")
    parser.add_argument("--free-scenes", type=float, default=0.5, help="share of shapes at any size and place")
    parser.add_argument("--pooled", action="store_true",
                        help="average the residuals over space, as A1111's shuffle model (the starter-shuffle does not)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for the forward pass")
    parser.add_argument("--starter", type=Path, default=STARTER_DIR, help="the frozen base model (an export)")
    parser.add_argument("--init-from", type=Path, help="an exported ControlNet to continue from (fresh optimizer)")
    parser.add_argument("--runs", type=Path, default=RUNS)
    parser.add_argument("--export", action="store_true", help="write models/ControlNet/starter-<kind>/ and stop")
    parser.add_argument("--out", type=Path, help="export folder instead of models/ControlNet/starter-<kind>")
    args = parser.parse_args(argv)
    setup_threads()
    checkpoint = args.runs / f"controlnet-{args.kind}.pt"
    unet, text_encoder = frozen_starter(args.starter)
    net = controlnet_from_unet(unet, args.pooled)
    if args.init_from:
        net.load_state_dict(fp32_weights(args.init_from / "diffusion_pytorch_model.safetensors"))
    optimizer = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=0.0)
    state, step = load_checkpoint(checkpoint), 0
    if state:
        net.load_state_dict(state["controlnet"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        print(f"resuming at step {step}")
    if args.export:
        print(f"exported to {export(net, args.kind, args.out, args.pooled)} (step {step})")
        return
    vae, tokenizer = frozen_vae(args.starter), CLIPTokenizer()
    shares = (args.empty_captions, args.colour_captions, args.shape_captions, args.shapes_only_captions)
    edge_styles = {**EDGE_STYLE_WEIGHTS, **args.edge_styles}
    alphas_cumprod = DiscreteSchedule().alphas_cumprod.float()
    net.train()
    start = time.time()
    while step < args.steps:
        g = torch.Generator().manual_seed(10_000_000 + step)
        seeds = torch.randint(0, TRAIN_SEEDS, (args.batch,), generator=g).tolist()
        pictures, texts, hint = training_batch(args.kind, seeds, args.free_scenes, shares, edge_styles)
        t = torch.randint(0, 1000, (args.batch,), generator=g)
        with torch.no_grad():
            x0 = vae.encode(pictures).mean * vae.scaling_factor
            context = text_encoder(tokenizer(texts)).last_hidden_state
        noise = torch.randn(x0.shape, generator=g)
        a = alphas_cumprod[t][:, None, None, None]
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            down, mid = net(x_t, t, context, hint)
            eps = unet(x_t, t, context, down_block_additional_residuals=down, mid_block_additional_residual=mid)
        loss = (eps.float() - noise).pow(2).mean()
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
