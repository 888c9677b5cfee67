"""Running an X/Y/Z plot on the app's models: each cell on its checkpoint, VAE and refiner (switched back
afterwards), with its styles, progress counted over every cell. Shared by the tabs and the API."""
from engine import EngineError, GenerationRequest, GenerationResult
from engine.styles import apply_styles
from engine.xyz import Axis, XYZError, plan_cells, plot_result, run_cells

from .outputs import save_result
from .studio import Studio


def run_xyz(studio: Studio, request: GenerationRequest, axes: list[Axis], progress=None, should_stop=None,
            should_skip=None, checkpoint: str | None = None, refiner: str | None = None, legend: bool = True,
            margin: int = 0, include_lone: bool = False, include_sub_grids: bool = False,
            keep_random_seeds: bool = False, vary_seeds=(False, False, False), tab: str | None = None,
            ) -> GenerationResult:
    """`tab`: save each cell's pictures to <tab>-images as they are made (the grid is the caller's to save)."""
    state = studio.state
    cells = plan_cells(request, axes, keep_random_seeds, vary_seeds)
    names, vaes = state.checkpoint_names(), state.vae_names()
    for _, cell in cells:                       # every cell checked before the first step
        chosen, unknown = studio.styles.chosen(cell.styles)
        if unknown:
            raise XYZError(f"Styles: no style named {unknown[0]!r}")
        cell.request.prompt, cell.request.negative_prompt = apply_styles(cell.request.prompt,
                                                                         cell.request.negative_prompt, chosen)
        for name, listed, what in ((cell.checkpoint, names, "checkpoint"), (cell.refiner, names, "refiner"),
                                   (cell.vae, vaes, "VAE")):
            if name is not None and name not in listed and not any(n.startswith(name) for n in listed):
                raise XYZError(f"no {what} {name!r} (have: {', '.join(listed)})")
        cell.request.validate()
    pipe = state.pipeline_for(checkpoint)
    totals = {id(cell): pipe.job_steps(cell.request) for _, cell in cells}
    grand, done_before = sum(totals.values()), [0]
    first_vae = state.vae_choice

    def generate(cell):
        if cell.vae is not None and state.vae_choice != cell.vae:
            message = state.set_vae(cell.vae)
            if state.vae_choice != cell.vae:
                raise EngineError(message)
        shift = done_before[0]

        def shifted(done, _, denoised):
            if progress is not None:
                progress(shift + done, grand, denoised)
        result = state.generate(cell.request, shifted, should_stop, should_skip, cell.checkpoint or checkpoint,
                                cell.refiner or refiner)
        if tab is not None:
            save_result(result, studio.outdir, tab, studio.settings.samples_format)
        done_before[0] += totals[id(cell)]
        return result

    try:
        results, interrupted = run_cells(cells, generate, should_stop or (lambda: False))
    finally:
        if state.vae_choice != first_vae:
            state.set_vae(first_vae)
    return plot_result(axes, cells, results, interrupted, legend, margin, include_lone, include_sub_grids)
