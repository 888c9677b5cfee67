"""The Gradio Blocks app. Tabs are small declarations; later tabs plug in beside these."""
from pathlib import Path

import gradio as gr

from .model_state import ModelState
from .txt2img import txt2img_tab

NO_MODELS = ("No checkpoints found in `{folder}`. Put a `.safetensors` / `.ckpt` file or a diffusers folder there "
             "(A1111 layout), then press Refresh.")


def models_tab(state: ModelState) -> None:
    with gr.Tab("Models & Settings"):
        names = state.checkpoint_names()
        with gr.Row():
            checkpoint = gr.Dropdown(names, value=state.default_checkpoint(), label="Checkpoint", scale=4)
            refresh = gr.Button("Refresh", scale=1)
            load = gr.Button("Load", variant="primary", scale=1)
        status = gr.Markdown(state.status if names else NO_MODELS.format(folder=state.checkpoint_dir))
        gr.Timer(2.0).tick(lambda: state.status if state.checkpoint_names() else NO_MODELS.format(
            folder=state.checkpoint_dir), outputs=status)

        def on_refresh():
            found = state.checkpoint_names()
            message = state.status if found else NO_MODELS.format(folder=state.checkpoint_dir)
            return gr.Dropdown(choices=found, value=found[0] if found else None), message

        refresh.click(on_refresh, outputs=[checkpoint, status])
        load.click(lambda name: state.load(name) if name else "Choose a checkpoint first.",
                   inputs=checkpoint, outputs=status)


def build_app(state: ModelState, outdir: Path = Path("outputs")) -> gr.Blocks:
    with gr.Blocks(title="Stable Diffusion studio") as app:
        gr.Markdown("## Stable Diffusion studio")
        txt2img_tab(state, outdir)
        models_tab(state)
    return app
