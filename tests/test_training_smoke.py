"""A few steps of each starter training stage, then export: the result loads and generates like any model.
(The full training runs by hand; see README "Starter model".)"""
import re

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from engine import Device, GenerationRequest, load_pipeline
from training import evaluate, evaluate_controlnet, export, position_check, train_unet, train_vae
from training.scenes import SIZE, render, render_depth, render_edges, render_segmentation, scene_for


def test_scenes_are_deterministic_and_maps_align():
    scene, text = scene_for(42)
    assert scene_for(42) == (scene, text) and scene_for(43)[1] != text
    image, seg, depth, edges = (np.asarray(f(scene)) for f in (render, render_segmentation, render_depth, render_edges))
    assert image.shape == seg.shape == depth.shape == edges.shape == (SIZE, SIZE, 3)
    background = seg[0, 0]
    inside = (seg != background).any(axis=2)
    assert inside.any() and (depth[inside] > 0).all() and (depth[~inside] == 0).all()
    assert set(np.unique(edges)) <= {0, 255} and edges.any()


def test_analyser_reads_ground_truth_renders():
    for seed, scene, _ in evaluate.held_out_cases(40):
        assert all(evaluate.score(scene, render(scene)).values()), scene


def test_shape_classifier_ignores_invisible_noise():
    """Faint pixel noise (std 6 of 255) leaves every shape as it was; Hu moments 2-4 of a symmetric shape are
    rounding noise, and while they were features 4 in 10 such circles were called something else."""
    rng = np.random.default_rng(0)
    right = []
    for _, scene, _ in evaluate.held_out_cases(120):
        pixels = np.asarray(render(scene), np.float32) + rng.normal(0, 6, (SIZE, SIZE, 3))
        found = evaluate.analyse(Image.fromarray(pixels.clip(0, 255).round().astype(np.uint8)))
        right.append(evaluate.classify_shape(found["features"]) == scene.shapes[0].kind)
    assert np.mean(right) >= 0.97


def test_controlnet_adherence_measures_separate_a_match_from_a_miss():
    scenes = evaluate_controlnet.held_out_scenes(20)
    for seed, scene, _ in scenes:
        truth = np.asarray(render_edges(scene))[..., 0] > 0
        assert evaluate_controlnet.edge_f1(truth, truth) == 1.0
        assert evaluate_controlnet.edge_f1(truth, np.roll(truth, (6, 6), axis=(0, 1))) < 0.4  # same edges, moved
        assert evaluate_controlnet.score("edges", scene, render(scene), 1)[0] > 0.9  # canny of the true picture
        accuracy, iou = evaluate_controlnet.seg_scores(scene, render(scene))
        assert accuracy == 1.0 and iou == 1.0
    _, scene, _ = scenes[0]
    flat = render(scene).copy()
    flat.paste(evaluate.COLORS[scene.background], (0, 0, *flat.size))                 # the shapes left out
    accuracy, iou = evaluate_controlnet.seg_scores(scene, flat)
    assert iou == 0.0 and accuracy < 1.0


def test_training_stages_resume_and_export(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    train_vae.main(["--steps", "2", "--batch", "4", "--runs", str(runs)])
    train_vae.main(["--steps", "3", "--batch", "4", "--runs", str(runs)])          # resumes at step 2
    assert torch.load(runs / "vae.pt", weights_only=False)["step"] == 3
    train_unet.main(["--steps", "2", "--batch", "4", "--scenes", "32", "--eval-every", "0", "--runs", str(runs)])
    state = torch.load(runs / "unet.pt", weights_only=False)
    assert state["step"] == 2 and state["scaling_factor"] > 0
    out = tmp_path / "starter"
    export.main(["--runs", str(runs), "--out", str(out), "--single-file", str(tmp_path / "starter.safetensors")])
    size_mb = sum(f.stat().st_size for f in out.rglob("*.safetensors")) / 2 ** 20
    assert size_mb <= 40
    folder = load_pipeline(out, Device.cpu_fp32())
    single = load_pipeline(tmp_path / "starter.safetensors", Device.cpu_fp32())
    assert folder.native_size == 64 and folder.vae.scaling_factor == single.vae.scaling_factor
    request = GenerationRequest(prompt="a red circle on the left on a blue background", steps=3, width=64, height=64,
                                seed=5)
    a, b = folder.generate(request).images[0], single.generate(request).images[0]
    assert a.size == (64, 64)
    assert np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max() <= 2   # same fp16 weights either way


def test_decoder_fine_tune_keeps_the_latent_space(tmp_path):
    """--decoder-only changes the decoder alone, so everything trained on the encoder's latents still fits."""
    runs = tmp_path / "runs"
    train_vae.main(["--steps", "1", "--batch", "2", "--runs", str(runs)])
    train_unet.main(["--steps", "1", "--batch", "2", "--scenes", "16", "--eval-every", "0", "--runs", str(runs)])
    export.main(["--runs", str(runs), "--out", str(tmp_path / "starter")])
    with pytest.raises(SystemExit):      # nothing to keep without a trained encoder
        train_vae.main(["--steps", "1", "--runs", str(tmp_path / "bad"), "--decoder-only"])
    tuned = tmp_path / "tuned"
    train_vae.main(["--steps", "3", "--batch", "2", "--runs", str(tuned), "--init-from", str(tmp_path / "starter"),
                    "--decoder-only", "--edge-weight", "1", "--bf16", "--lr", "1e-2"])
    before = {k: v.float() for k, v in load_file(tmp_path / "starter" / "vae" / "diffusion_pytorch_model.safetensors").items()}
    after = torch.load(tuned / "vae.pt", weights_only=False)["model"]
    kept = [k for k in before if k.startswith(("encoder.", "quant_conv."))]
    changed = [k for k in before if k.startswith(("decoder.", "post_quant_conv.")) and not torch.equal(before[k], after[k])]
    assert kept and all(torch.equal(before[k], after[k]) for k in kept)
    assert len(changed) > len(kept) / 2
    with pytest.raises(SystemExit):
        export.main(["--runs", str(runs), "--out", str(tmp_path / "none"), "--vae", str(tuned / "missing.pt")])
    export.main(["--runs", str(runs), "--out", str(tmp_path / "shipped"), "--vae", str(tuned / "vae.pt")])
    shipped = load_file(tmp_path / "shipped" / "vae" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(shipped[k], after[k].half()) for k in after)
    for part in ("unet/diffusion_pytorch_model", "text_encoder/model"):
        a, b = (load_file(tmp_path / d / f"{part}.safetensors") for d in ("starter", "shipped"))
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_image_gradient_loss_and_reconstruction_measure():
    images = torch.from_numpy(np.stack([np.asarray(render(s), np.float32) for _, s, _ in evaluate.held_out_cases(6)]))
    images = images.permute(0, 3, 1, 2) / 127.5 - 1
    assert train_vae.gradient_l1(images, images) == 0
    blurred = torch.nn.functional.avg_pool2d(images, 5, 1, 2, count_include_pad=False)
    assert train_vae.gradient_l1(blurred, images) > 0.01

    class Perfect(torch.nn.Module):          # decodes every encoding back to its picture
        def encode(self, x):
            return type("Posterior", (), {"mean": x})()

        def decode(self, z):
            return z

    class Flat(Perfect):                     # loses the shapes: every pixel the corner's colour
        def decode(self, z):
            return z[:, :, :1, :1].expand_as(z)

    assert train_vae.reconstruction_shape_accuracy(Perfect(), 12) == 1.0
    assert train_vae.reconstruction_shape_accuracy(Flat(), 12) == 0.0


def test_pure_noise_rows_are_noise_alone_with_the_eps_that_makes_them_from_x0():
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(4, 4, 8, 8, generator=g), torch.randn(4, 4, 8, 8, generator=g)
    a = torch.tensor([0.9, 0.5, 0.0072, 0.0047])[:, None, None, None]
    x_t, eps = train_unet.noisy_sample(x0, noise, a, torch.tensor([False, False, True, True]))
    assert torch.equal(x_t[2:], noise[2:])                       # sampling's start: no picture in it
    assert torch.allclose(a.sqrt() * x0 + (1 - a).sqrt() * eps, x_t, atol=1e-5)   # eps still fits DDPM Eq. 4
    assert torch.equal(eps[:2], noise[:2]) and not torch.allclose(eps[2:], noise[2:])
    assert torch.allclose(a[:2].sqrt() * x0[:2] + (1 - a[:2]).sqrt() * noise[:2], x_t[:2])


def test_training_continues_from_an_export_in_a_fresh_checkout(tmp_path, capsys):
    """A later session has only the committed export: VAE and EMA weights come from it."""
    first = tmp_path / "first"
    train_vae.main(["--steps", "1", "--batch", "2", "--runs", str(first)])
    train_unet.main(["--steps", "2", "--batch", "2", "--scenes", "16", "--eval-every", "0", "--runs", str(first)])
    export.main(["--runs", str(first), "--out", str(tmp_path / "starter")])
    fresh = tmp_path / "fresh"
    train_unet.main(["--steps", "3", "--batch", "2", "--scenes", "16", "--eval-every", "0", "--runs", str(fresh),
                     "--init-from", str(tmp_path / "starter")])
    assert torch.load(fresh / "unet.pt", weights_only=False)["step"] == 3   # continued from step 2
    frozen = tmp_path / "frozen"
    train_unet.main(["--steps", "4", "--batch", "2", "--scenes", "16", "--eval-every", "0", "--runs", str(frozen),
                     "--init-from", str(tmp_path / "starter"), "--freeze-text-encoder", "--x0-weight-floor", "1",
                     "--high-noise-fraction", "0.5", "--high-noise-from", "900", "--pure-noise-from", "960", "--bf16"])
    exported = load_file(tmp_path / "starter" / "text_encoder" / "model.safetensors")
    state = torch.load(frozen / "unet.pt", weights_only=False)
    for copy in ("text_encoder", "ema_text"):           # what the LCM and the ControlNets were trained beside
        assert all(torch.equal(state[copy][k], v.float()) for k, v in exported.items())
    unet = load_file(tmp_path / "starter" / "unet" / "diffusion_pytorch_model.safetensors")
    assert not all(torch.equal(state["unet"][k], v.float()) for k, v in unet.items())

    with pytest.raises(SystemExit):     # eps is undefined where no signal is left
        train_unet.main(["--steps", "1", "--runs", str(tmp_path / "bad"), "--zero-terminal-snr"])
    vpred = tmp_path / "vpred"
    train_unet.main(["--steps", "4", "--batch", "2", "--scenes", "16", "--eval-every", "0", "--runs", str(vpred),
                     "--init-from", str(tmp_path / "starter"), "--prediction", "v_prediction", "--zero-terminal-snr"])
    export.main(["--runs", str(vpred), "--out", str(tmp_path / "starter-v"), "--single-file", str(tmp_path / "v.safetensors")])
    for pipe in (load_pipeline(tmp_path / "starter-v", Device.cpu_fp32()),
                 load_pipeline(tmp_path / "v.safetensors", Device.cpu_fp32())):
        assert pipe.prediction_type == "v_prediction"
    assert pipe.schedule.zero_terminal_snr is False      # a single file cannot say so (A1111 has a setting)
    pipe = load_pipeline(tmp_path / "starter-v", Device.cpu_fp32())
    assert pipe.schedule.zero_terminal_snr
    image = pipe.generate(GenerationRequest(prompt="a red circle", steps=3, width=64, height=64, seed=1)).images[0]
    assert np.asarray(image).std() > 0
    position_check.main(["--model", str(tmp_path / "starter-v"), "--seeds", "1"])
    words, leak = capsys.readouterr().out.strip().splitlines()[-2:]
    assert re.search(r"follows the words \d/9, same place under every phrase [01]/1 seeds$", words)
    counts = re.fullmatch(r"from a top-left .*: top left (\d+), bottom (\d+), elsewhere (\d+)", leak).groups()
    assert sum(map(int, counts)) == 2                    # two seeds per one of --seeds


def test_teacher_origins_are_where_its_ode_leads():
    """A teacher whose eps always points at one picture X0: every guided DDIM solve from pure noise ends at X0."""
    from engine.sampling import DiscreteSchedule
    from training import distill_lcm
    alphas_cumprod = DiscreteSchedule().alphas_cumprod.float()
    target = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(3))

    def oracle(x, t, context):
        a = alphas_cumprod[t][:, None, None, None]
        return (x - a.sqrt() * target) / (1 - a).sqrt()

    def text_encoder(tokens):
        return type("Output", (), {"last_hidden_state": torch.zeros(len(tokens), 77, 128)})()

    ids = torch.randint(0, 49408, (10, 3, 77))
    latents = torch.randn(10, 4, 16, 16)
    for start in (None, latents):       # from pure noise at 999, and from latents noised to steps of the grid
        origins = distill_lcm.teacher_origins(oracle, text_encoder, ids, 5, (2.0, 8.0), alphas_cumprod, start,
                                              steps=6, batch=2)
        assert origins["x_t"].shape == origins["x0"].shape == (5, 4, 16, 16) and origins["x_t"].std() > 0.5
        torch.testing.assert_close(origins["x0"], target.expand(5, -1, -1, -1), atol=1e-4, rtol=1e-4)
        assert ((origins["w"] >= 2) & (origins["w"] <= 8)).all()
    assert (origins["t"] < 999).any() and ((origins["t"] + 1) % 20 == 0).all()


def test_starter_controlnet_starts_as_a_no_op_trains_resumes_and_loads(tmp_path):
    """Zero convolutions: before training the ControlNet changes nothing; a few steps later it loads in the
    app's loader and runs in a generation."""
    from engine.control import ControlUnit
    from engine.loading.controlnet import load_controlnet
    from training import train_controlnet
    runs = tmp_path / "runs"
    train_vae.main(["--steps", "1", "--batch", "2", "--runs", str(runs)])
    train_unet.main(["--steps", "1", "--batch", "2", "--scenes", "16", "--eval-every", "0", "--runs", str(runs)])
    starter = tmp_path / "starter"
    export.main(["--runs", str(runs), "--out", str(starter)])
    unet, _ = train_controlnet.frozen_starter(starter)
    net = train_controlnet.controlnet_from_unet(unet)
    down, mid = net(torch.randn(1, 4, 16, 16), 500, torch.randn(1, 77, 128), torch.rand(1, 3, 64, 64))
    assert all(d.abs().max() == 0 for d in down) and mid.abs().max() == 0
    common = ["--kind", "edges", "--batch", "2", "--starter", str(starter), "--runs", str(runs)]
    train_controlnet.main([*common, "--steps", "2"])
    train_controlnet.main([*common, "--steps", "3"])
    assert torch.load(runs / "controlnet-edges.pt", weights_only=False)["step"] == 3
    train_controlnet.main([*common, "--export", "--out", str(tmp_path / "starter-edges")])
    loaded = load_controlnet(tmp_path / "starter-edges")
    pipe = load_pipeline(starter, Device.cpu_fp32())
    edges = render_edges(scene_for(3)[0])
    result = pipe.generate(GenerationRequest(prompt="a red circle", steps=2, width=64, height=64, seed=1,
                                             control_units=[ControlUnit(loaded, edges)]))
    assert result.images[0].size == (64, 64)


def test_lcm_distillation_starts_as_the_teacher_trains_resumes_and_loads(tmp_path):
    """The student's zero guidance projection makes it the teacher at first; a few distillation steps later
    the export loads as an LCM checkpoint (guidance embedded) and makes a picture in one step."""
    from engine.sampling.consistency import guidance_embedding
    from training import distill_lcm
    from training.train_controlnet import frozen_starter
    runs = tmp_path / "runs"
    train_vae.main(["--steps", "1", "--batch", "2", "--runs", str(runs)])
    train_unet.main(["--steps", "1", "--batch", "2", "--scenes", "16", "--eval-every", "0", "--runs", str(runs)])
    teacher_dir = tmp_path / "starter"
    export.main(["--runs", str(runs), "--out", str(teacher_dir)])
    teacher, _ = frozen_starter(teacher_dir)
    student = distill_lcm.student_from(teacher)
    x, t, context = torch.randn(2, 4, 16, 16), torch.tensor([999, 259]), torch.randn(2, 77, 128)
    torch.testing.assert_close(student(x, t, context, timestep_cond=guidance_embedding(torch.tensor([3.0, 7.0]), 64)),
                               teacher(x, t, context))
    common = ["--batch", "2", "--teacher", str(teacher_dir), "--runs", str(runs)]
    distill_lcm.main([*common, "--steps", "2"])
    distill_lcm.main([*common, "--steps", "3", "--bf16", "--pure-noise-start", "--terminal-fraction", "0.5",
                      "--endpoints", "4", "--endpoint-batch", "2"])
    origins = [torch.load(runs / f"lcm-origins-{half}.pt", weights_only=False) for half in ("noise", "grid")]
    assert len(origins[0]["x0"]) == len(origins[1]["x0"]) == 2 and (origins[0]["t"] == 999).all()
    assert ((origins[1]["t"] + 1) % 20 == 0).all()
    assert torch.load(runs / "lcm.pt", weights_only=False)["step"] == 3
    distill_lcm.main([*common, "--export", "--out", str(tmp_path / "starter-lcm")])
    pipe = load_pipeline(tmp_path / "starter-lcm", Device.cpu_fp32())
    assert pipe.guidance_embedded and "guidance embedding" in pipe.summary()
    result = pipe.generate(GenerationRequest(prompt="a red circle", sampler="LCM", steps=1, cfg_scale=6, width=64,
                                             height=64, seed=1))
    assert result.images[0].size == (64, 64) and "Sampler: LCM" in result.infotexts[0]


class RunsCode:
    def __reduce__(self):
        return (print, ("this pickle ran code",))


def test_training_checkpoints_load_with_the_weights_only_loader(tmp_path):
    import pickle

    from training.common import load_checkpoint, save_checkpoint
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.ones(2))])
    save_checkpoint(tmp_path / "run.pt", model={"w": torch.ones(2)}, optimizer=optimizer.state_dict(), step=7,
                    prediction_type="epsilon")
    assert load_checkpoint(tmp_path / "run.pt")["step"] == 7
    torch.save({"step": RunsCode()}, tmp_path / "planted.pt")
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(tmp_path / "planted.pt")


@pytest.mark.parametrize("kind", ["pose", "depth-normal", "shuffle"])
def test_each_new_starter_controlnet_kind_trains_from_starter_edges_and_loads(tmp_path, kind):
    """One step on the shipped starter, continuing from starter-edges as the shipped pose and depth-normal
    ControlNets did; the export loads in the app's loader (pooled over space where trained so, as A1111's
    shuffle)."""
    from engine.loading.controlnet import load_controlnet
    from training import train_controlnet
    from training.common import STARTER_DIR
    pooled = ["--pooled"] if kind == "shuffle" else []
    common = ["--kind", kind, "--batch", "2", "--starter", str(STARTER_DIR), "--runs", str(tmp_path), *pooled]
    train_controlnet.main([*common, "--steps", "1", "--init-from", str(train_controlnet.CONTROLNET_DIR / "starter-edges")])
    train_controlnet.main([*common, "--export", "--out", str(tmp_path / kind)])
    assert torch.load(tmp_path / f"controlnet-{kind}.pt", weights_only=False)["step"] == 1
    loaded = load_controlnet(tmp_path / kind)
    assert loaded.config.global_pool_conditions == (kind == "shuffle")


def test_natural_captions_join_the_cache_and_the_anchor_keeps_the_old_captions_meaning(tmp_path):
    """--natural-captions adds prompts as people write them to the latent cache, after the grammar's own; with
    --anchor-text the text encoder learns them while its output for the grammar's captions stays near the old."""
    first = tmp_path / "first"
    train_vae.main(["--steps", "1", "--batch", "2", "--runs", str(first)])
    train_unet.main(["--steps", "2", "--batch", "2", "--scenes", "16", "--eval-every", "0", "--runs", str(first)])
    export.main(["--runs", str(first), "--out", str(tmp_path / "starter")])
    with pytest.raises(SystemExit):     # an anchor needs a text encoder to stay near
        train_unet.main(["--steps", "3", "--runs", str(tmp_path / "bad"), "--anchor-text", "1"])
    runs, free = tmp_path / "anchored", tmp_path / "free"
    common = ["--steps", "6", "--batch", "4", "--scenes", "16", "--eval-every", "0", "--lr", "1e-2",
              "--init-from", str(tmp_path / "starter"), "--natural-captions", "2"]
    train_unet.main([*common, "--runs", str(runs), "--anchor-text", "1000"])
    cache = torch.load(runs / "latents.pt", weights_only=True)
    assert cache["ids"].shape[:2] == (16, 5) and cache["own_captions"] == 3
    train_unet.main([*common, "--runs", str(free)])

    from engine.tokenizer import CLIPTokenizer
    old = train_unet.make_models()[1]
    old.load_state_dict(load_file(tmp_path / "starter" / "text_encoder" / "model.safetensors"))
    tokens = CLIPTokenizer()(["a red circle in the center on a blue background"])
    drift = {}
    for name, folder in (("anchored", runs), ("free", free)):
        encoder = train_unet.make_models()[1]
        encoder.load_state_dict(torch.load(folder / "unet.pt", weights_only=True)["text_encoder"])
        with torch.no_grad():
            drift[name] = (encoder(tokens).last_hidden_state - old(tokens).last_hidden_state).pow(2).mean().item()
    assert drift["anchored"] < drift["free"] / 2, drift


def test_foreground_weight_counts_the_shapes_cells_more(tmp_path):
    """--foreground-weight: each latent cell's share of shape, from the scene's own layer render; the loss is a
    weighted mean, so a picture's shape cells count more and the loss keeps its scale."""
    from training.scenes import render_depth, scene_for
    cells = train_unet.foreground_cells(6, 16)
    assert cells.shape == (6, 1, 16, 16) and 0 < cells.mean() < 0.5 and cells.max() <= 1
    for seed in range(6):
        covered = (np.asarray(render_depth(scene_for(seed)[0]))[..., 0] > 0).mean()
        assert abs(cells[seed].mean().item() - covered) < 1e-6
    runs = tmp_path / "weighted"
    train_vae.main(["--steps", "1", "--batch", "2", "--runs", str(runs)])
    train_unet.main(["--steps", "2", "--batch", "2", "--scenes", "8", "--eval-every", "0", "--runs", str(runs),
                     "--foreground-weight", "5"])
    assert torch.load(runs / "unet.pt", weights_only=True)["step"] == 2


def test_consistency_training_pieces_follow_ict():
    """iCT's curriculum (N from 11 to 1281 in equal doubling stages), its lognormal choice of levels, and the
    training pair: at w = 0 the lower point is x + sigma_i z on the same z (plain consistency training); with
    guidance it is the guided ODE's Euler step, whose unconditional denoiser is the network's own answer."""
    from training import train_ct
    assert [train_ct.levels_at(k, 8000) for k in (0, 999, 1000, 6999, 7000, 7999)] == [11, 11, 21, 641, 1281, 1281]
    sigmas = train_ct.karras_levels(1281)
    assert sigmas[0] == pytest.approx(0.002) and sigmas[-1] == pytest.approx(80.0) and (sigmas.diff() > 0).all()
    picks = train_ct.lognormal_pick(sigmas, 20000, torch.Generator().manual_seed(0))
    mid = ((sigmas[picks] * sigmas[picks + 1]).sqrt()).log()
    assert abs(mid.mean().item() - train_ct.P_MEAN) < 0.1 and abs(mid.std().item() - train_ct.P_STD) < 0.15

    seen = {}

    class Recorder(torch.nn.Module):          # F = 0, so f(x, sigma) = c_skip x; records what it was given
        def forward(self, x, t, context, timestep_cond=None):
            seen.setdefault("calls", []).append((x.clone(), context[:, 0, 0].clone()))
            return torch.zeros_like(x)

    x0, noise = torch.randn(3, 4, 16, 16), torch.randn(3, 4, 16, 16)
    lo, hi = torch.tensor([0.5, 0.5, 0.5]), torch.tensor([0.6, 0.6, 0.6])
    cond, uncond = torch.ones(3, 77, 128), torch.zeros(3, 77, 128)
    w = torch.tensor([0.0, 0.0, 2.0])
    train_ct.ct_step(Recorder(), x0, cond, uncond, w, lo, hi, noise)
    (u_in, u_ctx), (target_in, target_ctx), (guess_in, _) = seen["calls"]
    c_in = lambda s: 1 / (s ** 2 + train_ct.SIGMA_DATA ** 2) ** 0.5   # noqa: E731
    assert len(u_in) == 1 and (u_ctx == 0).all() and (target_ctx == 1).all()   # the uncond pass: guided row only
    torch.testing.assert_close(target_in[:2], c_in(0.5) * (x0 + 0.5 * noise)[:2])
    torch.testing.assert_close(guess_in, c_in(0.6) * (x0 + 0.6 * noise))
    x_hi = x0[2] + 0.6 * noise[2]
    d_uncond = train_ct.consistency_function(Recorder(), x_hi[None], hi[:1], uncond[:1], w[:1] * 0)[0]
    d_w = x0[2] + 2.0 * (x0[2] - d_uncond)
    torch.testing.assert_close(target_in[2], c_in(0.5) * (x_hi - (0.1 / 0.6) * (x_hi - d_w)))
    assert (target_in[2] - c_in(0.5) * (x0[2] + 0.5 * noise[2])).abs().max() > 1e-2


def test_consistency_training_trains_resumes_and_loads_as_a_consistency_model(tmp_path):
    """A few steps from scratch on a starter's latents, resumed, exported: the app loads it as an EDM
    consistency model (its CMStochasticIterativeScheduler config), samples it in 1 and 2 steps and img2img,
    and refuses schedules that need SD's timesteps."""
    from training import train_ct
    runs = tmp_path / "runs"
    train_vae.main(["--steps", "1", "--batch", "2", "--runs", str(runs)])
    train_unet.main(["--steps", "1", "--batch", "2", "--scenes", "16", "--eval-every", "0", "--runs", str(runs)])
    starter = tmp_path / "starter"
    export.main(["--runs", str(runs), "--out", str(starter)])
    common = ["--batch", "4", "--starter", str(starter), "--runs", str(runs), "--guidance-from", "1"]
    train_ct.main([*common, "--steps", "2"])
    train_ct.main([*common, "--steps", "3", "--bf16"])
    assert torch.load(runs / "ct.pt", weights_only=True)["step"] == 3
    train_ct.main([*common, "--steps", "3", "--export", "--out", str(tmp_path / "starter-ct")])
    pipe = load_pipeline(tmp_path / "starter-ct", Device.cpu_fp32())
    assert pipe.consistency_trained and pipe.prediction_type == "consistency" and pipe.guidance_embedded
    assert pipe.schedule.sigma_data == 1.0 and pipe.schedule.num_train_timesteps == 41   # N at step 3 of 3
    for steps in (1, 2):
        result = pipe.generate(GenerationRequest(prompt="a red circle", sampler="Consistency", steps=steps,
                                                 cfg_scale=3, width=64, height=64, seed=1))
        assert result.images[0].size == (64, 64) and "Sampler: Consistency, Schedule type: Automatic" in result.infotexts[0]
    euler = pipe.generate(GenerationRequest(prompt="a red circle", sampler="Euler", steps=2, width=64, height=64, seed=1))
    assert "Schedule type: Automatic" in euler.infotexts[0]      # any sampler runs on the model's own levels
    again = pipe.generate(GenerationRequest(prompt="a red circle", sampler="Consistency", steps=2, cfg_scale=3,
                                            width=64, height=64, seed=1))
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(result.images[0]))
    picture = render(scene_for(5)[0])
    edit = pipe.generate(GenerationRequest(prompt="a red circle", sampler="Consistency", steps=1, width=64, height=64,
                                           seed=1, init_image=picture, denoising_strength=0.3))
    assert edit.images[0].size == (64, 64)
    with pytest.raises(ValueError, match="consistency model with its own noise levels"):
        pipe.generate(GenerationRequest(prompt="x", sampler="Euler", schedule="Normal", steps=2, width=64, height=64))
    with pytest.raises(ValueError, match="sampler 'TCD'"):
        pipe.generate(GenerationRequest(prompt="x", sampler="TCD", steps=2, width=64, height=64))
