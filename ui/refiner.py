"""The Refiner accordion of txt2img and img2img, as A1111 1.6+ lays it out: a checkpoint that takes over the
sampling run at "Switch at" (a fraction of it). The refiner stays loaded beside the model for the next run."""
from dataclasses import dataclass

import gradio as gr

from engine.refiner import DEFAULT_SWITCH_AT

from .api.convert import pick_name
from .studio import Studio


@dataclass
class RefinerControls:
    enabled: gr.Checkbox
    checkpoint: gr.Dropdown
    switch_at: gr.Slider

    def components(self) -> list:
        return [self.enabled, self.checkpoint, self.switch_at]

    def chosen(self, values: dict) -> tuple[str | None, float]:
        """(refiner checkpoint or None, switch at) from the form's values."""
        if not values[self.enabled]:
            return None, DEFAULT_SWITCH_AT
        if not values[self.checkpoint]:
            raise gr.Error("Choose the refiner's checkpoint, or untick Refiner.")
        return values[self.checkpoint], float(values[self.switch_at])


def refiner_controls(studio: Studio, tab_id: str) -> RefinerControls:
    with gr.Accordion("Refiner", open=False, elem_id=f"{tab_id}_refiner"):
        enabled = gr.Checkbox(False, label="Use a refiner", elem_id=f"{tab_id}_enable_refiner")
        with gr.Row():
            checkpoint = gr.Dropdown(studio.state.checkpoint_names(), value=None, label="Checkpoint",
                                     elem_id=f"{tab_id}_refiner_checkpoint")
            switch_at = gr.Slider(0.01, 1.0, value=DEFAULT_SWITCH_AT, step=0.01, label="Switch at",
                                  elem_id=f"{tab_id}_refiner_switch_at")
    checkpoint.focus(lambda: gr.update(choices=studio.state.checkpoint_names()), outputs=checkpoint, queue=False)
    controls = RefinerControls(enabled, checkpoint, switch_at)
    studio.refiners[tab_id] = controls
    return controls


def pasted(fields: dict, names: list[str]) -> list:
    """Updates for the accordion from infotext fields: "Refiner: name [hash]", "Refiner switch at: 0.8"."""
    if "Refiner" not in fields:
        return [False, gr.skip(), gr.skip()]
    name = pick_name(fields["Refiner"], names)
    try:
        switch_at = float(fields.get("Refiner switch at", DEFAULT_SWITCH_AT))
    except ValueError:
        switch_at = DEFAULT_SWITCH_AT
    return [name is not None, name if name is not None else gr.skip(), switch_at]
