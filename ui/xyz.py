"""The X/Y/Z plot accordion of txt2img and img2img, as A1111's script: an axis type and its values for X,
Y and Z (A1111's notation: `1-5`, `1-10 (+2)`, `10-20 [5]`, comma lists), legend, sub-pictures, seeds."""
from dataclasses import dataclass

import gradio as gr

from engine.xyz import AXES, Axis, XYZError, parse_values

from .studio import Studio

TXT2IMG_ONLY = {"Hires steps", "Hires sampler", "Hires upscaler", "Hires upscale"}


@dataclass
class XYZControls:
    enabled: gr.Checkbox
    types: list[gr.Dropdown]
    values: list[gr.Textbox]
    legend: gr.Checkbox
    lone: gr.Checkbox
    sub_grids: gr.Checkbox
    keep_seeds: gr.Checkbox
    margin: gr.Slider

    def components(self) -> list:
        return [self.enabled, *self.types, *self.values, self.legend, self.lone, self.sub_grids, self.keep_seeds,
                self.margin]

    def chosen(self, values: dict) -> dict | None:
        """run_xyz's settings from the form, or None when the plot is off; a bad axis is a gr.Error."""
        if not values[self.enabled]:
            return None
        try:
            axes = [Axis(AXES[values[t]], parse_values(AXES[values[t]], values[v] or ""))
                    for t, v in zip(self.types, self.values)]
        except XYZError as e:
            raise gr.Error(str(e)) from e
        return {"axes": axes, "legend": bool(values[self.legend]), "include_lone": bool(values[self.lone]),
                "include_sub_grids": bool(values[self.sub_grids]), "keep_random_seeds": bool(values[self.keep_seeds]),
                "margin": int(values[self.margin])}


def xyz_controls(studio: Studio, tab_id: str) -> XYZControls:
    labels = [name for name in AXES if tab_id == "txt2img" or name not in TXT2IMG_ONLY]
    with gr.Accordion("X/Y/Z plot", open=False, elem_id=f"{tab_id}_xyz"):
        enabled = gr.Checkbox(False, label="Make an X/Y/Z plot", elem_id=f"{tab_id}_xyz_enable")
        types, values = [], []
        for axis, default in (("x", "Seed"), ("y", "Nothing"), ("z", "Nothing")):
            with gr.Row():
                types.append(gr.Dropdown(labels, value=default, label=f"{axis.upper()} type", scale=1,
                                         elem_id=f"{tab_id}_xyz_{axis}_type"))
                values.append(gr.Textbox(label=f"{axis.upper()} values", scale=3, elem_id=f"{tab_id}_xyz_{axis}_values",
                                         placeholder="1-5, 1-10 (+2), 10-20 [5], or a, b, c"))
        with gr.Row():
            legend = gr.Checkbox(True, label="Draw legend", elem_id=f"{tab_id}_xyz_legend")
            lone = gr.Checkbox(False, label="Include Sub Images", elem_id=f"{tab_id}_xyz_lone")
            sub_grids = gr.Checkbox(False, label="Include Sub Grids", elem_id=f"{tab_id}_xyz_sub_grids")
            keep_seeds = gr.Checkbox(False, label="Keep -1 for seeds", elem_id=f"{tab_id}_xyz_keep_seeds")
            margin = gr.Slider(0, 500, value=0, step=2, label="Grid margins (px)", elem_id=f"{tab_id}_xyz_margin")
    return XYZControls(enabled, types, values, legend, lone, sub_grids, keep_seeds, margin)
