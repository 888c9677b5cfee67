"""The running generation as the outside sees it: progress, ETA, live preview, Interrupt and Skip.

One `Job` per generation. The engine thread writes into it through `on_progress`; the page (and later the
API's /progress) reads it. Interrupt and Skip are flags the engine polls before each model evaluation.
"""
import threading
import time
from dataclasses import dataclass, field

from PIL import Image


@dataclass
class Job:
    tab: str
    owner: str = ""                       # a browser session's live mode, which may cancel its own stale run
    total_steps: int = 0
    steps_done: int = 0
    started: float = field(default_factory=time.monotonic)
    preview: Image.Image | None = None
    preview_number: int = 0               # bumps when a new preview arrives
    latent: object = None                 # the latest x_0 estimate (API /progress draws it on request)
    interrupted: bool = False
    skip_requested: bool = False
    finished: bool = False

    @property
    def fraction(self) -> float:
        return self.steps_done / self.total_steps if self.total_steps else 0.0

    @property
    def eta_seconds(self) -> float | None:
        """Remaining time from the mean pace so far; None before the first step."""
        if not self.steps_done:
            return None
        elapsed = time.monotonic() - self.started
        return elapsed / self.steps_done * (self.total_steps - self.steps_done)

    def should_stop(self) -> bool:
        return self.interrupted

    def take_skip(self) -> bool:
        """True once per Skip press: the engine ends the current batch and goes on."""
        if self.skip_requested:
            self.skip_requested = False
            return True
        return False


class Jobs:
    """The job being run now (one at a time, as the model is), for Interrupt, Skip and progress.
    Every generation - a tab, a live redraw, an API call - runs through `run`, one after another, so
    `current` is always the job the engine is working on."""

    def __init__(self):
        self._lock = threading.Lock()
        self._turn = threading.Lock()
        self.current: Job | None = None

    def run(self, job: Job, work):
        """Wait for the engine's turn, make `job` the current one, return work()."""
        with self._turn:
            with self._lock:
                self.current = job
            try:
                return work()
            finally:
                self.finish(job)

    def start(self, tab: str, owner: str = "") -> Job:
        job = Job(tab, owner)
        with self._lock:
            self.current = job
        return job

    def finish(self, job: Job) -> None:
        job.finished = True
        with self._lock:
            if self.current is job:
                self.current = None

    def interrupt(self) -> str:
        return self._flag("interrupted", "Interrupting ...")

    def skip(self) -> str:
        return self._flag("skip_requested", "Skipping the current batch ...")

    def cancel_owned(self, owner: str) -> bool:
        """Stop the running job if `owner` started it (a live run overtaken by a newer one)."""
        with self._lock:
            if self.current is None or not owner or self.current.owner != owner:
                return False
            self.current.interrupted = True
            return True

    def _flag(self, name: str, message: str) -> str:
        """Raise a flag on the running job, which the engine polls before each model call."""
        with self._lock:
            if self.current is None:
                return "Nothing is running."
            setattr(self.current, name, True)
            return message


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA --"
    seconds = int(round(seconds))
    return f"ETA {seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"ETA {seconds}s"


def progress_html(job: Job | None, waiting: str = "") -> str:
    """A progress bar with the step count and ETA (plain HTML, no scripts)."""
    if job is None:
        return f'<div class="studio-progress idle">{waiting}</div>' if waiting else ""
    percent = round(100 * job.fraction)
    label = f"Step {job.steps_done}/{job.total_steps} · {percent}% · {format_eta(job.eta_seconds)}"
    if job.interrupted:
        label += " · interrupting"
    return (f'<div class="studio-progress" data-steps="{job.steps_done}" data-total="{job.total_steps}">'
            f'<div class="studio-progress-bar" style="width:{percent}%"></div>'
            f'<span class="studio-progress-label">{label}</span></div>')


PROGRESS_CSS = """
.studio-progress { position: relative; height: 1.6em; border-radius: 4px; background: var(--block-background-fill);
  border: 1px solid var(--border-color-primary); overflow: hidden; }
.studio-progress.idle { border: none; height: auto; }
.studio-progress-bar { position: absolute; inset: 0 auto 0 0; background: var(--color-accent-soft); }
.studio-progress-label { position: relative; padding: 0 .5em; font-size: .9em; line-height: 1.6em; }
"""
