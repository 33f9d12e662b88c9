"""Aspect-ratio buckets exactly as kohya-ss/sd-scripts computes them.

Every function here mirrors a piece of sd-scripts (named in its docstring) including its
float operations and rounding, so that the bucket chosen for an image is bit-for-bit the
one sd-scripts chooses. Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Reso = tuple[int, int]


class BucketError(ValueError):
    """A bucket setting or image size that makes sd-scripts fail (assertion or crash)."""


def make_bucket_resolutions(
    max_reso: Reso, min_size: int = 256, max_size: int = 1024, divisible: int = 64
) -> list[Reso]:
    """Predefined buckets; mirrors ``library/model_util.py:make_bucket_resolutions``."""
    max_width, max_height = max_reso
    max_area = max_width * max_height

    resos: set[Reso] = set()

    # float sqrt, then float floor-division, as sd-scripts does
    width = int(math.sqrt(max_area) // divisible) * divisible
    resos.add((width, width))

    width = min_size
    while width <= max_size:
        height = min(max_size, int((max_area // width) // divisible) * divisible)
        if height >= min_size:
            resos.add((width, height))
            resos.add((height, width))
        width += divisible

    return sorted(resos)


def adjust_min_max_bucket_reso(
    resolution: Reso, min_bucket_reso: int, max_bucket_reso: int, bucket_reso_steps: int
) -> tuple[int, int]:
    """Round min down / max up to multiples of the step and check them against the resolution.

    Mirrors ``BaseDataset.adjust_min_max_bucket_reso_by_steps`` (``library/train_util.py``),
    which runs whenever bucketing is enabled, even with ``bucket_no_upscale``. Its two
    assertions are raised as :class:`BucketError` with sd-scripts' English message.
    """
    if bucket_reso_steps <= 0:
        msg = f"bucket_reso_steps must be positive, got {bucket_reso_steps}"
        raise BucketError(msg)
    if min_bucket_reso % bucket_reso_steps != 0:
        min_bucket_reso = min_bucket_reso - min_bucket_reso % bucket_reso_steps
    if max_bucket_reso % bucket_reso_steps != 0:
        max_bucket_reso = max_bucket_reso + bucket_reso_steps - max_bucket_reso % bucket_reso_steps
    if not min(resolution) >= min_bucket_reso:
        msg = "min_bucket_reso must be equal or less than resolution"
        raise BucketError(msg)
    if not max(resolution) <= max_bucket_reso:
        msg = "max_bucket_reso must be equal or greater than resolution"
        raise BucketError(msg)
    return min_bucket_reso, max_bucket_reso


def round_to_steps(x: float, reso_steps: int) -> int:
    """Round half up, then down to a multiple; mirrors ``BucketManager.round_to_steps``."""
    n = int(x + 0.5)
    return n - n % reso_steps


@dataclass(frozen=True, slots=True)
class BucketChoice:
    """The bucket an image falls into, the size it is resized to, and the aspect error."""

    reso: Reso
    resized_size: Reso
    ar_error: float


class BucketSelector:
    """Bucket selection of sd-scripts' ``BucketManager`` (``library/train_util.py``).

    Holds no images; :meth:`select_bucket` is memoised per image size because real
    datasets repeat sizes a lot.
    """

    __slots__ = (
        "_cache",
        "_predefined",
        "_predefined_ars",
        "_predefined_set",
        "max_area",
        "max_reso",
        "no_upscale",
        "reso_steps",
    )

    def __init__(
        self,
        *,
        no_upscale: bool,
        max_reso: Reso,
        reso_steps: int | None,
        predefined: list[Reso] | None,
    ) -> None:
        self.no_upscale = no_upscale
        self.max_reso = max_reso
        self.max_area = max_reso[0] * max_reso[1]
        self.reso_steps = reso_steps
        self._predefined: list[Reso] = list(predefined or [])
        self._predefined_set = frozenset(self._predefined)
        # BucketManager.set_predefined_resos: np.array([w / h ...]); float64 like Python floats
        self._predefined_ars = [w / h for w, h in self._predefined]
        self._cache: dict[Reso, BucketChoice] = {}
        if not no_upscale and not self._predefined:
            msg = "no predefined buckets"
            raise BucketError(msg)
        if no_upscale and not reso_steps:
            msg = "bucket_no_upscale needs bucket_reso_steps"
            raise BucketError(msg)

    @classmethod
    def for_dataset(
        cls,
        resolution: Reso,
        *,
        enable_bucket: bool,
        min_bucket_reso: int = 256,
        max_bucket_reso: int = 1024,
        bucket_reso_steps: int = 64,
        bucket_no_upscale: bool = False,
    ) -> BucketSelector:
        """The selector a DreamBooth dataset builds in ``BaseDataset.make_buckets``.

        Without bucketing: one bucket, the resolution itself. With bucketing: min/max are
        adjusted first (see :func:`adjust_min_max_bucket_reso`); ``bucket_no_upscale``
        ignores them and computes each bucket from the image size.
        """
        if not enable_bucket:
            # make_buckets: BucketManager(False, (w, h), None, None, None) + one predefined reso
            return cls(
                no_upscale=False, max_reso=resolution, reso_steps=None, predefined=[resolution]
            )
        lo, hi = adjust_min_max_bucket_reso(
            resolution, min_bucket_reso, max_bucket_reso, bucket_reso_steps
        )
        if bucket_no_upscale:
            return cls(
                no_upscale=True, max_reso=resolution, reso_steps=bucket_reso_steps, predefined=None
            )
        return cls(
            no_upscale=False,
            max_reso=resolution,
            reso_steps=bucket_reso_steps,
            predefined=make_bucket_resolutions(resolution, lo, hi, bucket_reso_steps),
        )

    @property
    def predefined_resos(self) -> list[Reso]:
        """The predefined buckets (empty with ``bucket_no_upscale``)."""
        return list(self._predefined)

    def select_bucket(self, image_width: int, image_height: int) -> BucketChoice:
        """Mirror ``BucketManager.select_bucket``; :class:`BucketError` where sd-scripts crashes."""
        key = (image_width, image_height)
        choice = self._cache.get(key)
        if choice is None:
            choice = self._select(image_width, image_height)
            self._cache[key] = choice
        return choice

    def _select(self, image_width: int, image_height: int) -> BucketChoice:
        if image_width <= 0 or image_height <= 0:
            msg = (
                f"image size {image_width}x{image_height} is not usable (sd-scripts divides by it)"
            )
            raise BucketError(msg)
        aspect_ratio = image_width / image_height
        if not self.no_upscale:
            reso = (image_width, image_height)
            if reso not in self._predefined_set:
                # np.abs(ars - ar).argmin(): the first minimum wins
                best = 0
                best_err = abs(self._predefined_ars[0] - aspect_ratio)
                for i in range(1, len(self._predefined_ars)):
                    err = abs(self._predefined_ars[i] - aspect_ratio)
                    if err < best_err:
                        best, best_err = i, err
                reso = self._predefined[best]

            ar_reso = reso[0] / reso[1]
            scale = reso[1] / image_height if aspect_ratio > ar_reso else reso[0] / image_width
            resized_size = (int(image_width * scale + 0.5), int(image_height * scale + 0.5))
        else:
            steps = self.reso_steps
            assert steps is not None  # checked in __init__
            if image_width * image_height > self.max_area:
                resized_width = math.sqrt(self.max_area * aspect_ratio)
                resized_height = self.max_area / resized_width

                b_width_rounded = round_to_steps(resized_width, steps)
                b_height_in_wr = round_to_steps(b_width_rounded / aspect_ratio, steps)
                b_height_rounded = round_to_steps(resized_height, steps)
                b_width_in_hr = round_to_steps(b_height_rounded * aspect_ratio, steps)
                if b_height_in_wr == 0 or b_height_rounded == 0:
                    msg = (
                        f"image {image_width}x{image_height} is too elongated for bucket_no_upscale"
                        " (sd-scripts raises ZeroDivisionError)"
                    )
                    raise BucketError(msg)
                ar_width_rounded = b_width_rounded / b_height_in_wr
                ar_height_rounded = b_width_in_hr / b_height_rounded

                if abs(ar_width_rounded - aspect_ratio) < abs(ar_height_rounded - aspect_ratio):
                    resized_size = (b_width_rounded, int(b_width_rounded / aspect_ratio + 0.5))
                else:
                    resized_size = (int(b_height_rounded * aspect_ratio + 0.5), b_height_rounded)
            else:
                resized_size = (image_width, image_height)

            # crop, never pad: the bucket is the resized size rounded down
            reso = (
                resized_size[0] - resized_size[0] % steps,
                resized_size[1] - resized_size[1] % steps,
            )
            if reso[1] == 0 or reso[0] == 0:
                msg = (
                    f"image {image_width}x{image_height} is smaller than bucket_reso_steps={steps}"
                    " in one dimension; its bucket would be empty (sd-scripts crashes)"
                )
                raise BucketError(msg)

        ar_error = (reso[0] / reso[1]) - aspect_ratio
        return BucketChoice(reso, resized_size, ar_error)
