"""lr-find's own overhead beyond training: deriving the search plan, reading a 10,000-step
TensorBoard event file (the tags sd-scripts writes with DAdaptAdam), finding the plateau,
writing the new plan and the PNG chart. Target: ≤ 1 s. Usage: python bench/bench_lr_find.py
"""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers import base_plan, make_images, write_plan  # noqa: E402

from kohya_plan.loading import read_toml, validate_plan  # noqa: E402
from kohya_plan.planning import check_data  # noqa: E402
from kohya_plan.trainlog.tensorboard import read_scalars  # noqa: E402
from kohya_plan.workflows.lrfind import search as lrfind  # noqa: E402
from kohya_plan.workflows.lrfind.chart import dlr_chart, preload  # noqa: E402

TAGS = ["loss/current", "loss/average", "lr/textencoder", "lr/unet", "lr/group1",
        "lr/d*lr/textencoder", "lr/d*lr/unet", "lr/d*lr/group1"]  # fmt: skip


def write_events(folder: Path, steps: int) -> None:
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(folder))
    for step in range(1, steps + 1):
        dlr = 3.3e-5 * min(1.0, 1e-3 * 1.01**step) * (1 + 0.001 * math.sin(step))
        values = [Summary.Value(tag=t, simple_value=dlr if "d*lr" in t else 1.0) for t in TAGS]
        writer.add_event(Event(wall_time=time.time(), step=step, summary=Summary(value=values)))
    writer.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_images(root / "data" / "5_testchar", [(512, 512)] * 20)
        plan = write_plan(root, base_plan())
        logs = root / "run" / "logs" / "20260101000000" / "network_train"
        logs.mkdir(parents=True)
        write_events(logs, 10_000)
        # lr-find imports the chart's libraries while the search run trains (minutes): here the
        # import is done before the clock starts, and only what follows the training is timed.
        preload().join()
        times = []
        for _ in range(3):
            start = time.perf_counter()
            data = read_toml(plan)
            derived = lrfind.derive_search(data, searcher="dadapt", steps=10_000)
            check_data(derived, plan)
            points = read_scalars(root / "run" / "logs")[lrfind.UNET_TAG]
            plateau = lrfind.find_plateau(points)
            table = lrfind.optimizer_table(
                plateau.value, target="adamw8bit", te_ratio=0.5, scheduler="cosine", train_te=True
            )
            text = lrfind.new_plan_text(plan.read_text(), table, "n")
            validate_plan(__import__("tomllib").loads(text), root)
            dlr_chart(points, plateau)
            times.append(time.perf_counter() - start)
        print(
            f"lr-find overhead (10,000 steps, {len(TAGS)} tags): median "
            f"{statistics.median(times):.3f} s (runs: {', '.join(f'{t:.3f}' for t in times)}; "
            "libraries preloaded as during a real search run); "
            f"plateau {plateau.value:.3g} settled={plateau.settled} from {plateau.since_step}"
        )


if __name__ == "__main__":
    main()
