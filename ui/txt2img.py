"""The txt2img tab: a prompt and the sampling settings in, pictures out."""
import gradio as gr

from .generation_form import build_request, prompt_box, sampling_controls
from .hires import hires_controls
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
        with gr.Column(scale=2):
            panel = results_panel(studio, "txt2img", last_seed)
    studio.forms["txt2img"] = (box, controls)

    def run(values):
        refiner_name, switch_at = refiner.chosen(values)
        request = build_request(box, controls, values, refiner_switch_at=switch_at, hires=hires.chosen(values))
        yield from run_generation(studio, "txt2img", request, refiner=refiner_name)

    box.generate.click(run, {box.prompt, box.negative, *controls.components(), *hires.components(),
                             *refiner.components()},
                       panel.outputs(),
                       concurrency_limit=1, concurrency_id="generate", show_progress="minimal",
                       show_progress_on=panel.progress)


TAB = Tab("txt2img", "txt2img", build)
