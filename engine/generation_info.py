"""The text a picture carries: A1111's infotext fields for a generation (engine.infotext writes them)."""
from .img2img import Source
from .infotext import create_infotext
from .prompt_plan import PromptPlan
from .request import GenerationRequest
from .sampling import SAMPLERS, resolve_schedule
from .version import __version__


def embedding_fields(prompts, plan: PromptPlan, clip_skip: int) -> dict:
    """A1111's "TI hashes" infotext field for the embeddings the prompts used."""
    names = sorted({n for text in plan.texts for n in prompts.embeddings_in(text, clip_skip)})
    if not names:
        return {}
    found, _ = prompts.embeddings.embeddings()
    return {"TI hashes": ", ".join(f"{name}: {found[name].shorthash}" for name in names)}


def generation_infotext(pipe, req: GenerationRequest, seed: int, subseed: int, source: Source | None,
                        extra: dict | None = None) -> str:
    """A picture's infotext in A1111's fields and order, for `pipe` (engine.pipeline.Pipeline)."""
    spec = SAMPLERS[req.sampler]
    default_eta = spec.defaults.get("eta", 1.0)
    eta = req.eta if req.eta is not None else default_eta
    eta_field = {"Eta DDIM" if req.sampler == "DDIM" else "Eta": eta} if "eta" in spec.options and eta != default_eta else {}
    params = {
        "Steps": req.steps,
        "Sampler": req.sampler,
        # a consistency model's own levels: "Automatic" gives them back when the infotext is pasted
        "Schedule type": "Automatic" if getattr(pipe, "consistency_trained", False) and pipe.own_grid(req)
                         else resolve_schedule(req.sampler, req.schedule),
        "CFG scale": req.cfg_scale,
        "Seed": seed,
        "Size": f"{req.width}x{req.height}",
        "Model hash": pipe.model_hash or None,
        "Model": pipe.name,
        "VAE": pipe.vae_name,
        "VAE Decoder": "TAESD" if req.decode_method == "TAESD" else None,
        "DeepCache interval": req.deep_cache or None,
        "Variation seed": subseed if req.subseed_strength else None,
        "Variation seed strength": req.subseed_strength or None,
        "Denoising strength": req.denoising_strength if req.is_img2img else None,
        "Clip skip": req.clip_skip if req.clip_skip > 1 else None,
        "ENSD": req.eta_noise_seed_delta if req.eta_noise_seed_delta and spec.noise == "ancestral" else None,
        "Tiling": True if req.tiling else None,
        "Noise Schedule": "Zero Terminal SNR" if pipe.schedule.zero_terminal_snr else None,
        **(source.infotext if source is not None else {}),
        **{f"ControlNet {i}": unit.infotext or None for i, unit in enumerate(req.control_units)},
        **eta_field,
        **(extra or {}),
        **req.extra_infotext,
        "Version": __version__,
    }
    return create_infotext(req.prompt, req.negative_prompt, params)
