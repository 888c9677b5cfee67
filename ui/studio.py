"""What every tab is built with: the model, settings, outputs folder, running job, and the send-to targets.

A tab is a small declaration, `Tab(id, label, build, receives)`; `build(studio)` lays out its components
inside a gr.Tab the app opens for it. A tab that accepts pictures from elsewhere (img2img, inpaint, a ControlNet
unit) names them in `receives` and registers a `Destination` for each while it builds; every results gallery
has a "Send to ..." button per name, wired once all tabs exist.
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import gradio as gr

from engine.styles import StyleBook

from .jobs import Jobs
from .model_state import ModelState
from .settings import Settings, save_settings


@dataclass(frozen=True)
class Tab:
    id: str
    label: str
    build: Callable[["Studio"], None]
    receives: tuple[str, ...] = ()      # destination names this tab registers, e.g. ("img2img", "inpaint")


@dataclass
class Destination:
    """A place a picture (and its prompt) can be sent to: an image input on a tab (and sub-tab)."""
    name: str                       # the button says "Send to <name>"
    tab_id: str
    image: gr.components.Component
    prompt: gr.components.Component | None = None
    negative: gr.components.Component | None = None
    subtabs: gr.Tabs | None = None
    subtab_id: str | None = None


@dataclass
class Studio:
    state: ModelState
    settings: Settings
    settings_path: Path
    outdir: Path
    jobs: Jobs = field(default_factory=Jobs)
    declared: list[Tab] = field(default_factory=list)
    tabs: gr.Tabs | None = None
    destinations: dict[str, Destination] = field(default_factory=dict)
    size_sliders: list[tuple] = field(default_factory=list)     # (width, height) pairs to follow the model
    pending_sends: list[tuple] = field(default_factory=list)    # (button, names, chooser, results, selected)
    forms: dict[str, tuple] = field(default_factory=dict)       # tab id -> (PromptBox, SamplingControls)
    refiners: dict[str, object] = field(default_factory=dict)   # tab id -> refiner.RefinerControls
    hires: dict[str, object] = field(default_factory=dict)      # tab id -> hires.HiresControls (txt2img)
    annotators: object = None                                   # extensions.ExtensionAPI: ControlNet preprocessors
    controlnet_tabs: gr.Tabs | None = None
    styles: StyleBook | None = None                             # styles.csv (default: beside the settings file)

    def __post_init__(self):
        if self.styles is None:
            self.styles = StyleBook(Path(self.settings_path).with_name("styles.csv"))

    @property
    def destination_names(self) -> list[str]:
        return [name for tab in self.declared for name in tab.receives]

    def save_settings(self) -> None:
        save_settings(self.settings, self.settings_path)
