"""The txt2img tab: a prompt and the sampling settings in, pictures out."""
import gradio as gr

from engine.styles import apply_styles

from .generation_form import build_request, prompt_box, sampling_controls
from .hires import hires_controls
from .xyz import xyz_controls
from .refiner import refiner_controls
from .results import results_panel, run_generation
from .studio import Studio, Tab


def build(studio: Studio) -> None:
    last_seed = gr.State(None)
    box = prompt_box(studio, "txt2img")
    with gr.Row():
        with gr.Column(scale=3):
            controls = sampling_controls(studio, "txt2img", last_seed)
            hires = hires_controls(studio, "txt2img", controls.width, controls.height)
            refiner = refiner_controls(studio, "txt2img")
            plot = xyz_controls(studio, "txt2img")
        with gr.Column(scale=2):
            panel = results_panel(studio, "txt2img", last_seed)
    studio.forms["txt2img"] = (box, controls)

    def run(values):
        refiner_name, switch_at = refiner.chosen(values)
        hr = hires.chosen(values)
        if hr is not None and (hr.prompt or hr.negative_prompt):     # styles reach the hires prompts too (A1111)
            chosen, _ = box.book.chosen(values[box.styles] or [])
            hr.prompt, hr.negative_prompt = apply_styles(hr.prompt or values[box.prompt],
                                                         hr.negative_prompt or values[box.negative], chosen)
        request = build_request(box, controls, values, refiner_switch_at=switch_at, hires=hr)
        yield from run_generation(studio, "txt2img", request, refiner=refiner_name, plot=plot.chosen(values))

    box.generate.click(run, {*box.components(), *controls.components(), *hires.components(),
                             *refiner.components(), *plot.components()},
                       panel.outputs(),
                       concurrency_limit=1, concurrency_id="generate", show_progress="minimal",
                       show_progress_on=panel.progress)


TAB = Tab("txt2img", "txt2img", build)
