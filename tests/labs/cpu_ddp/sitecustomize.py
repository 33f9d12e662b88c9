"""cpu-ddp-shim, FOR TESTS ON CPU-ONLY MACHINES: put this folder on the PYTHONPATH of
`accelerate launch` (its workers inherit it). Never part of a user's run; GPUs do not need it.

Why: with two or more processes on a machine without a GPU, accelerate runs as
DistributedType.MULTI_CPU, and ``Accelerator.prepare_model`` (accelerate 1.6.0 .. 1.15.0) wraps
EVERY prepared module in torch DDP there, while its MULTI_GPU branch skips modules without
trainable parameters. sd-scripts' train_network.py prepares the frozen U-Net (and text
encoder), so every CPU run with >= 2 processes dies at ``accelerator.prepare(unet)`` with

    RuntimeError: DistributedDataParallel is not needed when a module doesn't have any
    parameter that requires a gradient.

The shim makes MULTI_CPU behave like MULTI_GPU: a module with no trainable parameter is
prepared with ``evaluation_mode=True`` (no DDP wrapper); everything else is unchanged. It patches
lazily, when ``accelerate.accelerator`` is imported, prints one line per rank on stderr
(``cpu-ddp-shim: rank R: not wrapping UNet2DConditionModel in DDP ...``), and changes nothing on
disk. ``--deepspeed`` runs need no shim.
"""

from __future__ import annotations

import importlib.abc
import sys
from typing import Any

_TARGET = "accelerate.accelerator"


def _patch(mod: Any) -> None:
    from accelerate.utils import DistributedType

    orig = mod.Accelerator.prepare_model
    if getattr(orig, "_cpu_ddp_shim", False):
        return

    def prepare_model(
        self: Any, model: Any, device_placement: Any = None, evaluation_mode: bool = False
    ) -> Any:
        if (
            not evaluation_mode
            and self.distributed_type == DistributedType.MULTI_CPU
            and not any(p.requires_grad for p in model.parameters())
        ):
            print(
                f"cpu-ddp-shim: rank {self.process_index}: not wrapping {type(model).__name__} "
                "in DDP (no trainable parameters)",
                file=sys.stderr,
                flush=True,
            )
            evaluation_mode = True
        return orig(self, model, device_placement=device_placement, evaluation_mode=evaluation_mode)

    prepare_model._cpu_ddp_shim = True  # type: ignore[attr-defined]
    mod.Accelerator.prepare_model = prepare_model


class _Finder(importlib.abc.MetaPathFinder):
    """Finds accelerate.accelerator through the other finders, then patches it once loaded."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != _TARGET:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        orig_exec = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            orig_exec(module)
            _patch(module)

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _Finder())
