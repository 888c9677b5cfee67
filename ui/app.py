"""The Gradio Blocks app: a status line and the tabs, each a small declaration (see ui/studio.py).

ControlNet and Consistency tabs join `TABS` from their own modules; nothing else here changes for them.
"""
import gradio as gr

from extensions import ExtensionAPI, load_extensions

from . import consistency, controlnet, extras, img2img, png_info, settings_tab, txt2img
from .jobs import PROGRESS_CSS
from .model_state import DEMO_NOTE
from .results import wire_send_buttons
from .settings_tab import model_status
from .studio import Studio, Tab

GENERATING_TABS: list[Tab] = [txt2img.TAB, img2img.TAB, controlnet.TAB, consistency.TAB]
TABS: list[Tab] = [*GENERATING_TABS, extras.TAB, png_info.TAB, settings_tab.TAB]
STATUS_SECONDS = 2.0
CSS = PROGRESS_CSS          # passed to launch()


def build_app(studio: Studio, tabs: list[Tab] | None = None) -> gr.Blocks:
    studio.declared = list(tabs or TABS)
    if studio.annotators is None:
        studio.annotators = load_extensions(ExtensionAPI(studio.state.models_dir / "annotators"))
    with gr.Blocks(title="Stable Diffusion studio") as app:
        with gr.Row():
            gr.Markdown("## Stable Diffusion studio")
            status = gr.Markdown(model_status(studio.state), elem_id="model_status")
        demo_note = gr.Markdown(DEMO_NOTE, visible=studio.state.default_checkpoint() == "starter",
                                elem_id="demo_note")
        with gr.Tabs() as studio.tabs:
            for tab in studio.declared:
                with gr.Tab(tab.label, id=tab.id, elem_id=f"tab_{tab.id}"):
                    tab.build(studio)
        wire_send_buttons(studio)
        follow_model(app, studio, status, demo_note)
    return app


def follow_model(app: gr.Blocks, studio: Studio, status: gr.Markdown, demo_note: gr.Markdown) -> None:
    """On page load: the saved defaults and the model's native size in every form. Then every few seconds:
    the status line, the demo note, and - once per newly loaded model in this browser tab - width and
    height set to the model's native size."""
    seen = gr.State(0)
    ready = gr.HTML("", elem_id="page_ready", padding=False)     # marked once the load event has run
    sliders = [slider for pair in studio.size_sliders for slider in pair]
    forms = list(studio.forms.values())
    defaults = [c for box, controls in forms for c in (box.negative, controls.sampler, controls.schedule,
                                                       controls.steps, controls.cfg)]

    def on_load():
        s, state = studio.settings, studio.state
        size = state.pipeline.native_size if state.pipeline is not None else state.expected_size()
        values = [s.default_negative_prompt, s.default_sampler, s.default_schedule, s.default_steps, s.default_cfg]
        return [state.loads, '<span class="ready"></span>', *values * len(forms), *[size] * len(sliders)]

    app.load(on_load, None, [seen, ready, *defaults, *sliders], queue=False, show_progress="hidden")

    def tick(seen_loads):
        state = studio.state
        sizes = [gr.skip()] * len(sliders)
        if state.pipeline is not None and state.loads != seen_loads:
            sizes = [state.pipeline.native_size] * len(sliders)
            seen_loads = state.loads
        return [model_status(state), gr.update(visible=state.is_demo or (state.pipeline is None and state.loading
                                                                         == "starter")), seen_loads, *sizes]

    gr.Timer(STATUS_SECONDS).tick(tick, seen, [status, demo_note, seen, *sliders], queue=False,
                                  show_progress="hidden")
