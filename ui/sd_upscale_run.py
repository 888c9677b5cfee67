"""Running A1111's SD upscale script on the app's model: tiles through state.generate, progress over all."""
from engine import GenerationRequest, GenerationResult
from engine.sd_upscale import sd_upscale

from .studio import Studio


def run_sd_upscale(studio: Studio, request: GenerationRequest, upscaler: str, scale: float, overlap: int,
                   progress=None, should_stop=None, should_skip=None, checkpoint=None) -> GenerationResult:
    state, made = studio.state, [0]

    def one(tile: GenerationRequest) -> GenerationResult:
        base = made[0]

        def shifted(done, total, denoised):
            if progress is not None:
                progress(base + done, base + total, denoised)
        result = state.generate(tile, shifted, should_stop, should_skip, checkpoint)
        made[0] += state.pipeline_for(checkpoint).steps_run(tile)
        return result
    return sd_upscale(one, request, upscaler, scale, overlap, state.upscalers.steps())
