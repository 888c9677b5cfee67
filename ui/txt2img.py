"""The txt2img tab: prompt, sampler settings, Generate, a gallery with the infotext of the pictures."""
import gradio as gr

from engine import EngineError, GenerationRequest
from engine.sampling import SAMPLERS, SCHEDULE_NAMES

from .model_state import DEMO_NOTE, ModelState
from .outputs import save_image

DEFAULT_PROMPT = "a red circle in the center on a blue background"


def txt2img_tab(state: ModelState, outdir) -> None:
    with gr.Tab("txt2img"):
        demo_note = gr.Markdown(DEMO_NOTE, visible=state.default_checkpoint() == "starter")
        status = gr.Markdown(state.status)
        gr.Timer(2.0).tick(lambda: state.status, outputs=status)
        with gr.Row():
            with gr.Column(scale=3):
                prompt = gr.Textbox(DEFAULT_PROMPT, label="Prompt", lines=2)
                negative = gr.Textbox("", label="Negative prompt", lines=1)
                with gr.Row():
                    sampler = gr.Dropdown(list(SAMPLERS), value="DPM++ 2M", label="Sampling method")
                    schedule = gr.Dropdown(SCHEDULE_NAMES, value="Automatic", label="Schedule type")
                    steps = gr.Slider(1, 150, value=20, step=1, label="Sampling steps")
                size = state.expected_size()
                with gr.Row():
                    width = gr.Slider(64, 2048, value=size, step=8, label="Width")
                    height = gr.Slider(64, 2048, value=size, step=8, label="Height")
                    cfg = gr.Slider(1, 30, value=7, step=0.5, label="CFG Scale")
                with gr.Row():
                    seed = gr.Number(-1, label="Seed (-1: random)", precision=0)
                    batch_count = gr.Slider(1, 100, value=1, step=1, label="Batch count")
                    batch_size = gr.Slider(1, 8, value=1, step=1, label="Batch size")
            with gr.Column(scale=2):
                generate = gr.Button("Generate", variant="primary")
                gallery = gr.Gallery(label="Output", columns=2, height=360, object_fit="contain")
                info = gr.Textbox(label="Generation parameters", lines=4, interactive=False)

        def run(prompt, negative, sampler, schedule, steps, width, height, cfg, seed, batch_count, batch_size,
                progress=gr.Progress()):
            request = GenerationRequest(prompt=prompt, negative_prompt=negative, sampler=sampler, schedule=schedule,
                                        steps=int(steps), width=int(width), height=int(height), cfg_scale=float(cfg),
                                        seed=int(seed), batch_count=int(batch_count), batch_size=int(batch_size))
            try:
                result = state.generate(request, progress=lambda i, total, _: progress((i, total), unit="steps"))
            except EngineError as e:
                raise gr.Error(str(e)) from e
            for image, text, image_seed in zip(result.images, result.infotexts, result.seeds):
                save_image(image, text, image_seed, outdir, "txt2img")
            return result.images, result.infotexts[0] if result.infotexts else "", gr.update(visible=state.is_demo)

        generate.click(run, [prompt, negative, sampler, schedule, steps, width, height, cfg, seed, batch_count,
                             batch_size], [gallery, info, demo_note])
