"""Batches per epoch, epochs and optimisation steps exactly as kohya-ss/sd-scripts computes them.

``batches_per_epoch`` mirrors ``DreamBoothDataset.__init__`` (subset skipping, validation
split, regularization balancing) and ``BaseDataset.make_buckets`` (bucket assignment,
per-bucket ceiling by the batch size) in ``library/train_util.py``; ``total_steps``
mirrors ``NetworkTrainer.train`` in ``train_network.py`` together with accelerate's
length of a prepared ``DataLoader``. Pure: image sizes come in, numbers go out.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kohya_plan.steps.buckets import BucketSelector

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from kohya_plan.steps.buckets import Reso

DEFAULT_MAX_TRAIN_STEPS = 1600
"""``--max_train_steps`` default in ``train_util.add_training_arguments``."""


@dataclass(frozen=True, slots=True)
class SubsetImages:
    """One DreamBooth subset: image sizes in sd-scripts' (sorted path) order, and its repeats.

    ``image_dir`` is only used to drop a later subset with the same directory, as
    sd-scripts does (``DreamBoothSubset.__eq__`` compares ``image_dir``). ``exists`` is
    False for a directory that is missing (sd-scripts skips it with ``not directory``).
    """

    sizes: Sequence[Reso]
    repeats: int
    is_reg: bool = False
    image_dir: str | None = None
    exists: bool = True


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """One ``[[datasets]]`` entry (or the single dataset of the folder convention)."""

    subsets: Sequence[SubsetImages]
    batch_size: int = 1
    resolution: Reso = (512, 512)
    enable_bucket: bool = False
    min_bucket_reso: int = 256
    max_bucket_reso: int = 1024
    bucket_reso_steps: int = 64
    bucket_no_upscale: bool = False
    validation_split: float = 0.0
    validation_seed: int | None = None


@dataclass(frozen=True, slots=True)
class BucketCount:
    """One used bucket: resolution, samples (images x repeats) and batches."""

    width: int
    height: int
    count: int
    batches: int


@dataclass(frozen=True, slots=True)
class DatasetBatches:
    """What one dataset contributes to an epoch.

    ``train_samples`` and ``reg_images`` are the numbers sd-scripts prints as
    ``{n} train images with repeats.`` and ``{n} reg images with repeats.``;
    ``reg_samples`` is the reg count after balancing (what actually lands in buckets).
    ``exact`` is False only when a validation split without ``validation_seed`` could
    move images between buckets (sd-scripts then shuffles with the global RNG).
    """

    buckets: tuple[BucketCount, ...]
    batches: int
    train_samples: int
    reg_images: int
    reg_samples: int
    reg_images_unused: int
    validation_images: int
    exact: bool


@dataclass(frozen=True, slots=True)
class BatchCount:
    """Batches per epoch of the whole dataset group (``len(train_dataloader)`` before prepare)."""

    datasets: tuple[DatasetBatches, ...]
    total: int
    train_samples: int
    reg_images: int
    reg_samples: int
    exact: bool

    @property
    def buckets(self) -> tuple[tuple[int, int, int], ...]:
        """``(width, height, count)`` of every used bucket, dataset after dataset."""
        return tuple((b.width, b.height, b.count) for d in self.datasets for b in d.buckets)


@dataclass(frozen=True, slots=True)
class StepReport:
    """The numbers ``train_network.py`` prints under ``running training``.

    ``batches_per_epoch`` is the per-process length of the prepared dataloader, which is
    what sd-scripts prints; ``dataset_batches`` is L before sharding across processes.
    """

    batches_per_epoch: int
    steps_per_epoch: int
    epochs: int
    total_optimization_steps: int
    epochs_override_steps: bool
    last_epoch_partial: bool
    dataset_batches: int
    last_epoch_steps: int
    lr_scheduler_steps: int


def _split_train(
    sizes: list[Reso],
    validation_split: float,
    validation_seed: int | None,
    selector: BucketSelector,
) -> tuple[list[Reso], bool]:
    """Training part of ``train_util.split_train_val``; returns it and whether it is exact."""
    if not sizes:
        # zip(*[]) cannot be unpacked into (paths, sizes)
        msg = "sd-scripts crashes on an empty subset when validation_split > 0"
        raise ValueError(msg)
    shuffled = list(sizes)
    exact = True
    if validation_seed is not None:
        # random.seed(seed); random.shuffle(...) on the global RNG == a fresh Random(seed)
        random.Random(validation_seed).shuffle(shuffled)
    split = math.ceil(len(shuffled) * (1 - validation_split))
    kept = shuffled[0:split]
    if validation_seed is None and len(kept) != len(shuffled):
        # global-RNG shuffle: which images remain is unknowable; exact only if it can't matter
        exact = len({selector.select_bucket(w, h).reso for w, h in set(sizes)}) == 1
    return kept, exact


def _dataset_batches(spec: DatasetSpec) -> DatasetBatches:
    if spec.batch_size < 1:
        msg = f"batch_size must be >= 1, got {spec.batch_size}"
        raise ValueError(msg)
    selector = BucketSelector.for_dataset(
        spec.resolution,
        enable_bucket=spec.enable_bucket,
        min_bucket_reso=spec.min_bucket_reso,
        max_bucket_reso=spec.max_bucket_reso,
        bucket_reso_steps=spec.bucket_reso_steps,
        bucket_no_upscale=spec.bucket_no_upscale,
    )

    exact = True
    seen_dirs: set[str] = set()
    train: list[tuple[Sequence[Reso], int]] = []
    reg: list[tuple[Sequence[Reso], int]] = []
    num_train_images = 0
    num_reg_images = 0
    validation_images = 0
    for subset in spec.subsets:
        if subset.repeats < 1:
            continue  # "ignore subset ...: num_repeats is less than 1"
        if subset.image_dir is not None and subset.image_dir in seen_dirs:
            continue  # "ignore duplicated subset ...: use the first one"
        if not subset.exists:
            continue  # "not directory: ..." then "no images found"
        sizes: Sequence[Reso] = subset.sizes
        if spec.validation_split > 0.0 and not subset.is_reg:
            kept, split_exact = _split_train(
                list(sizes), spec.validation_split, spec.validation_seed, selector
            )
            validation_images += len(sizes) - len(kept)
            exact = exact and split_exact
            sizes = kept
        if len(sizes) < 1:
            continue  # "ignore subset ...: no images found"
        if subset.is_reg:
            num_reg_images += subset.repeats * len(sizes)
            reg.append((sizes, subset.repeats))
        else:
            num_train_images += subset.repeats * len(sizes)
            train.append((sizes, subset.repeats))
        if subset.image_dir is not None:
            seen_dirs.add(subset.image_dir)

    counts: dict[Reso, int] = {}

    def add(size: Reso, repeats: int) -> None:
        reso = selector.select_bucket(size[0], size[1]).reso
        counts[reso] = counts.get(reso, 0) + repeats

    for sizes, repeats in train:
        for size in sizes:
            add(size, repeats)

    reg_samples, reg_unused = _register_reg_images(reg, num_train_images, add)

    buckets = tuple(
        BucketCount(w, h, n, math.ceil(n / spec.batch_size)) for (w, h), n in sorted(counts.items())
    )
    return DatasetBatches(
        buckets=buckets,
        batches=sum(b.batches for b in buckets),
        train_samples=num_train_images,
        reg_images=num_reg_images,
        reg_samples=reg_samples,
        reg_images_unused=reg_unused,
        validation_images=validation_images,
        exact=exact,
    )


def _register_reg_images(
    reg: list[tuple[Sequence[Reso], int]],
    num_train_images: int,
    add: Callable[[Reso, int], None],
) -> tuple[int, int]:
    """Reg balancing at the end of ``DreamBoothDataset.__init__``; returns (samples, unused images).

    First pass: reg images in order with their own repeats until the running total reaches
    the train count. If all were registered and it is still short, sd-scripts adds one
    repeat per image round-robin until it is equal; that loop is computed arithmetically.
    """
    flat = [(size, repeats) for sizes, repeats in reg for size in sizes]
    if not flat or num_train_images <= 0:
        return 0, len(flat)  # while n < num_train_images never runs: no reg image is used
    n = 0
    registered: list[tuple[Reso, int]] = []
    for size, repeats in flat:
        registered.append((size, repeats))
        n += repeats
        if n >= num_train_images:
            break
    deficit = num_train_images - n
    if deficit > 0:
        per_image, extra = divmod(deficit, len(registered))
        registered = [
            (size, repeats + per_image + (1 if i < extra else 0))
            for i, (size, repeats) in enumerate(registered)
        ]
        n = num_train_images
    for size, repeats in registered:
        add(size, repeats)
    return n, len(flat) - len(registered)


def batches_per_epoch(datasets: Sequence[DatasetSpec]) -> BatchCount:
    """L = Σ over datasets of Σ over used buckets of ceil(samples / batch_size)."""
    parts = tuple(_dataset_batches(d) for d in datasets)
    return BatchCount(
        datasets=parts,
        total=sum(p.batches for p in parts),
        train_samples=sum(p.train_samples for p in parts),
        reg_images=sum(p.reg_images for p in parts),
        reg_samples=sum(p.reg_samples for p in parts),
        exact=all(p.exact for p in parts),
    )


def prepared_dataloader_length(dataset_batches: int, num_processes: int) -> int:
    """``len()`` of the dataloader after ``accelerator.prepare`` on each process.

    sd-scripts' loader has ``batch_size=1, shuffle=True``; accelerate (defaults:
    ``split_batches=False``, ``even_batches=True``) wraps its batch sampler in
    ``BatchSamplerShard``, whose length is ``ceil(L / P)``.
    """
    if num_processes == 1 or dataset_batches % num_processes == 0:
        return dataset_batches // num_processes
    return dataset_batches // num_processes + 1


def total_steps(
    dataset_batches: int,
    *,
    epochs: int | None = None,
    max_train_steps: int | None = None,
    gradient_accumulation_steps: int = 1,
    num_processes: int = 1,
) -> StepReport:
    """Epochs and optimisation steps as ``NetworkTrainer.train`` computes them.

    ``epochs`` is ``--max_train_epochs`` and overrides ``max_train_steps``; with neither,
    sd-scripts' default of 1600 steps applies. The epoch loop stops at the step limit, so
    the last epoch can be partial when steps (not epochs) were given.
    """
    ga = gradient_accumulation_steps
    if ga < 1 or num_processes < 1:
        msg = "gradient_accumulation_steps and num_processes must be >= 1"
        raise ValueError(msg)
    if dataset_batches <= 0:
        msg = "No data found (sd-scripts stops before training)"
        raise ValueError(msg)
    if (epochs is not None and epochs < 0) or (max_train_steps is not None and max_train_steps < 0):
        msg = "epochs and max_train_steps must not be negative"
        raise ValueError(msg)

    override = epochs is not None
    if epochs is not None:
        # computed on the un-prepared dataloader, with float divisions
        steps = epochs * math.ceil(dataset_batches / num_processes / ga)
    else:
        steps = DEFAULT_MAX_TRAIN_STEPS if max_train_steps is None else max_train_steps

    per_process = prepared_dataloader_length(dataset_batches, num_processes)
    # accelerate also syncs at the end of the dataloader, hence the ceiling
    steps_per_epoch = math.ceil(per_process / ga)
    num_epochs = math.ceil(steps / steps_per_epoch)
    last = steps - (num_epochs - 1) * steps_per_epoch if num_epochs > 0 else 0
    return StepReport(
        batches_per_epoch=per_process,
        steps_per_epoch=steps_per_epoch,
        epochs=num_epochs,
        total_optimization_steps=steps,
        epochs_override_steps=override,
        last_epoch_partial=num_epochs > 0 and last < steps_per_epoch,
        dataset_batches=dataset_batches,
        last_epoch_steps=last,
        lr_scheduler_steps=steps * num_processes,
    )


def tutorial_formula(images: int, repeats: int, epochs: int, batch_size: int) -> float:
    """The tutorial's estimate (T6): images x repeats x epochs / batch size.

    Ignores buckets, regularization images and gradient accumulation; compare with
    :func:`total_steps` to explain the difference.
    """
    return images * repeats * epochs / batch_size


@dataclass(frozen=True, slots=True)
class Warmup:
    """What an ``lr_warmup_steps`` value does with P processes, in optimizer steps.

    sd-scripts builds the scheduler for ``max_train_steps × P`` steps and accelerate steps it
    P times per optimizer step (``AcceleratedScheduler.step`` without ``split_batches``), so
    an integer W ends after W / P optimizer steps, while a ratio keeps its share of the run.
    ``corrected`` is the value that warms up as long as W did on one process (W × P for an
    integer, the ratio unchanged). ``lr_decay_steps`` behaves the same way.
    """

    given: int | float
    num_processes: int
    scheduler_steps: int
    optimizer_steps: float
    peak_at_step: int
    corrected: int | float

    @property
    def shortened(self) -> bool:
        """True when the warm-up is P times shorter than the number suggests."""
        return isinstance(self.given, int) and self.num_processes > 1 and self.given > 0


def warmup_for_processes(
    value: int | float, *, num_processes: int, total_optimization_steps: int
) -> Warmup:
    """The effective warm-up of ``--lr_warmup_steps value`` and the value to offer instead.

    ``value`` as sd-scripts parses it: an int is a count of scheduler steps, a float (< 1) a
    ratio of ``max_train_steps × num_processes`` (``train_util.get_scheduler_fix``).
    """
    if num_processes < 1 or total_optimization_steps < 0:
        msg = "num_processes must be >= 1 and total_optimization_steps >= 0"
        raise ValueError(msg)
    if value < 0:
        msg = f"lr_warmup_steps must not be negative, got {value}"
        raise ValueError(msg)
    if isinstance(value, float):
        scheduler_steps = int(value * total_optimization_steps * num_processes)
        corrected: int | float = value
    else:
        scheduler_steps = value
        corrected = value * num_processes
    return Warmup(
        given=value,
        num_processes=num_processes,
        scheduler_steps=scheduler_steps,
        optimizer_steps=scheduler_steps / num_processes,
        # the scheduler count reaches W at the first optimizer step k with k × P >= W
        peak_at_step=math.ceil(scheduler_steps / num_processes),
        corrected=corrected,
    )
