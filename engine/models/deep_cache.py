"""DeepCache: reuse the UNet's deep features between neighbouring steps (Ma, Fang & Wang 2023, arXiv 2312.00858).

The high-level features change slowly from one denoising step to the next, the skip branch of the shallowest
block carries what changes. So every `interval`-th evaluation runs the whole UNet and keeps the feature map
entering its last up block; the evaluations between run only conv_in, the first down block and the last up
block on that kept map (the paper's uniform 1:N schedule with the cache at the outermost skip branch).

A StepCache belongs to one sampling run. Each UNet pass of an evaluation (one batched cond + uncond pass, or
separate passes for prompts of different lengths and AND parts) has its own slot, taken in order.
"""
from dataclasses import dataclass

import torch


@dataclass
class CacheSlot:
    feature: torch.Tensor | None = None     # the input of the last up block at the last full pass
    refresh: bool = True                    # this pass runs the whole UNet

    def reusable(self, batch: int) -> bool:
        return not self.refresh and self.feature is not None and self.feature.shape[0] == batch


class StepCache:
    def __init__(self, interval: int):
        if interval < 2:
            raise ValueError("a step cache refreshes every 2 or more evaluations")
        self.interval, self.evaluation, self.passes, self.slots = interval, -1, 0, {}

    def next_evaluation(self) -> None:
        self.evaluation += 1
        self.passes = 0

    def slot(self) -> CacheSlot:
        slot = self.slots.setdefault(self.passes, CacheSlot())
        self.passes += 1
        slot.refresh = self.evaluation % self.interval == 0
        return slot
