"""`make bench`: the reference recipe the stock torchvision way vs the project's engine vs pure compute, and time to 99 %."""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from . import paths
from .augment import reference_pipeline
from .config import RunConfig
from .data import load_split, mnist_dataset
from .engine import evaluate, fit
from .models import ReferenceCNN
from .runs import write_json

REFERENCE = RunConfig(name="bench")

FAST_RECIPE = RunConfig(
    name="fast", model="fast", epochs=2, batch_size=256, lr=5e-3, schedule="onecycle", augment=()
)
"""A recipe of this project's design for the time-to-99 % race (see models.fast_cnn)."""


def _rate(images: int, seconds: float) -> float:
    """Seconds per 60,000-image epoch at the measured rate."""
    return 60000 * seconds / images


def stock_epoch_s(steps: int, workers: int, seed: int = 0) -> float:
    """The reference recipe as torchvision's docs write it: PIL transforms, DataLoader, eager model, default Adam."""
    from torch.utils.data import DataLoader

    torch.manual_seed(seed)
    ds = mnist_dataset(train=True, transform=reference_pipeline(train=True))
    loader = DataLoader(ds, batch_size=64, shuffle=True, num_workers=workers, persistent_workers=False)
    model = ReferenceCNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    it = iter(loader)
    for _ in range(5):  # warm-up (worker start-up excluded from the rate)
        x, y = next(it)
        opt.zero_grad()
        F.nll_loss(model(x), y).backward()
        opt.step()
    start = time.perf_counter()
    for _ in range(steps):
        x, y = next(it)
        opt.zero_grad()
        F.nll_loss(model(x), y).backward()
        opt.step()
    seconds = time.perf_counter() - start
    del it, loader
    return _rate(64 * steps, seconds)


def project_epoch_s(steps: int, seed: int = 0) -> float:
    """The reference recipe through :func:`engine.fit` (in-memory uint8, batched augmentation), on ``steps`` batches."""
    train = load_split(True).subset(64 * steps, seed=seed)
    result = fit(REFERENCE.replace(epochs=1, seed=seed), train, None, device="cpu", progress=False)
    return _rate(len(train), result.history[0]["epoch_seconds"])


def compute_epoch_s(steps: int, seed: int = 0, channels_last: bool = True) -> float:
    """Forward + backward + fused Adam step alone, on random tensors; defaults are the settings the engine trains with."""
    torch.manual_seed(seed)
    model = ReferenceCNN()
    x = torch.randn(64, 1, 28, 28)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    y = torch.randint(0, 10, (64,))
    for i in range(steps + 5):
        if i == 5:
            start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.nll_loss(model(x), y).backward()
        opt.step()
    return _rate(64 * steps, time.perf_counter() - start)


CPU_SETTINGS = {"contiguous": {"channels_last": False}, "channels_last (engine)": {"channels_last": True}}
"""The CPU-side choices the engine makes, measured one against another (same maths, different speed)."""


def time_to_99(config: RunConfig = FAST_RECIPE) -> dict:
    """Wall time from an untrained model to the end of the fast recipe, test evaluation included, and its accuracy."""
    train, test = load_split(True), load_split(False)
    start = time.perf_counter()
    result = fit(config, train, None, device="cpu", progress=False)
    metrics = evaluate(result.model, test)
    return {"seconds": time.perf_counter() - start, "test_accuracy": metrics["accuracy"], "recipe": config.to_dict()}


def median_of(fn, repeats: int, *args) -> tuple[float, list[float]]:
    """Median and all values of ``repeats`` calls."""
    values = [fn(*args) for _ in range(repeats)]
    return statistics.median(values), values


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print a table, write ``artifacts/bench.json``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=150, help="batches of 64 per measurement (an epoch is 938)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per pipeline (the median is kept)")
    parser.add_argument("--race-repeats", type=int, default=3, help="time-to-99 %% runs (the median is kept)")
    args = parser.parse_args(argv)
    print(f"benchmark on {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {args.steps} batches of 64 per measurement, median of {args.repeats}")
    stock = {}
    for workers in (0, 2):
        stock[workers], _ = median_of(stock_epoch_s, args.repeats, args.steps, workers)
        print(f"  stock pipeline, {workers} DataLoader workers: {stock[workers]:.1f} s/epoch")
    best_workers = min(stock, key=stock.get)
    project, project_all = median_of(project_epoch_s, args.repeats, args.steps)
    compute, compute_all = median_of(compute_epoch_s, args.repeats, args.steps)
    settings = {}
    for label, kwargs in CPU_SETTINGS.items():
        settings[label] = statistics.median(compute_epoch_s(args.steps, **kwargs) for _ in range(args.repeats))
        print(f"  model compute, {label}: {settings[label]:.1f} s/epoch")
    races = [time_to_99() for _ in range(args.race_repeats)]
    race = sorted(races, key=lambda r: r["seconds"])[len(races) // 2]
    result = {
        "stock_epoch_s": stock[best_workers],
        "stock_workers": best_workers,
        "stock_epoch_s_by_workers": {str(k): v for k, v in stock.items()},
        "project_epoch_s": project,
        "project_epoch_s_all": project_all,
        "compute_epoch_s": compute,
        "compute_epoch_s_all": compute_all,
        "speedup_vs_stock": stock[best_workers] / project,
        "project_over_compute": project / compute,
        "compute_epoch_s_by_setting": settings,
        "time_to_99_s": race["seconds"],
        "time_to_99_accuracy": race["test_accuracy"],
        "time_to_99_all": [{"seconds": r["seconds"], "test_accuracy": r["test_accuracy"]} for r in races],
        "time_to_99_recipe": race["recipe"],
        "steps_per_measurement": args.steps,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "device": "cpu",
    }
    rows = [
        ("stock torchvision pipeline (s/epoch)", f"{result['stock_epoch_s']:.1f}", f"{best_workers} workers"),
        ("project engine (s/epoch)", f"{project:.1f}", f"{result['speedup_vs_stock']:.2f}x faster than stock"),
        ("model compute alone (s/epoch)", f"{compute:.1f}", f"engine / compute = {result['project_over_compute']:.3f}"),
        ("time to 99 % (s, eval included)", f"{race['seconds']:.1f}", f"test accuracy {100 * race['test_accuracy']:.2f} %"),
    ]
    width = max(len(r[0]) for r in rows)
    print()
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>7}   {note}")
    write_json(paths.artifacts_dir() / "bench.json", result)
    print(f"\nwritten to {paths.artifacts_dir() / 'bench.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
