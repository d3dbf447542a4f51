"""`make bench`: the reference recipe the stock torchvision way vs the project's engine vs pure
compute vs the hardware floor, interleaved (A B C … A B C …) so machine noise hits every pipeline
alike; and time to 99 % over several seeds."""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import platform
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mnist_utils import paths
from mnist_utils.augment import (
    REFERENCE_SPEC,
    augment_batch,
    normalize,
    reference_pipeline,
    to_unit,
)
from mnist_utils.config import RunConfig
from mnist_utils.data import Split, load_split, mnist_dataset
from mnist_utils.engine import AUGMENT_IMAGES, autocast, evaluate, fit
from mnist_utils.models import ReferenceCNN
from mnist_utils.runs import write_json

from .machine import sgemm_gflops

REFERENCE = RunConfig(name="bench")
EPOCH = 60000
"""Images per epoch of the reference recipe: every rate is converted to seconds per epoch."""

FAST_RECIPE = RunConfig(
    name="fast",
    model="fast",
    epochs=1,
    batch_size=256,
    lr=2e-2,
    schedule="onecycle",
    augment=(),
    label_smoothing=0.1,
    precision="bfloat16",
    adam_betas=(0.7, 0.9),
)
"""The project's recipe for the race to 99 % (see models.fast_cnn): one epoch, bfloat16 forward
passes and scoring, Adam with fixed betas, label smoothing 0.1; chosen on held-out training images
(docs/speed.md)."""


def _rate(images: int, seconds: float) -> float:
    """Seconds per 60,000-image epoch at the measured rate."""
    return EPOCH * seconds / images


def _timed_steps(step: Callable[[], None], steps: int, warmup: int = 5) -> float:
    """Seconds for ``steps`` calls of ``step`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - start


def _adam_step(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    precision: str = "float32",
) -> None:
    """One training step of the reference recipe: forward (autocast to ``precision``, as the
    engine), NLL loss, backward, Adam."""
    opt.zero_grad(set_to_none=True)
    with autocast(precision):
        log_probs = model(x)
    F.nll_loss(log_probs.float(), y).backward()
    opt.step()


def stock_epoch_s(steps: int, workers: int, seed: int = 0) -> float:
    """The reference recipe as torchvision's docs write it: PIL transforms, DataLoader, eager model,
    default Adam."""
    from torch.utils.data import DataLoader

    torch.manual_seed(seed)
    ds = mnist_dataset(train=True, transform=reference_pipeline(train=True))
    loader = iter(DataLoader(ds, batch_size=64, shuffle=True, num_workers=workers))
    model = ReferenceCNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    # warm-up: worker start
    return _rate(64 * steps, _timed_steps(lambda: _adam_step(model, opt, *next(loader)), steps))


def project_epoch_s(steps: int, seed: int = 0, precision: str = "float32") -> float:
    """The reference recipe through :func:`engine.fit` (in-memory uint8, batched augmentation), on
    ``steps`` batches."""
    train = load_split(True).subset(64 * steps, seed=seed)
    result = fit(
        REFERENCE.replace(epochs=1, seed=seed, precision=precision),
        train,
        None,
        device="cpu",
        progress=False,
    )
    return _rate(len(train), result.history[0]["epoch_seconds"])


def compute_epoch_s(
    steps: int, seed: int = 0, channels_last: bool = True, precision: str = "float32"
) -> float:
    """Forward + backward + fused Adam step alone, on random tensors; defaults are the settings the
    engine trains with."""
    torch.manual_seed(seed)
    model, x, y = ReferenceCNN(), torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    if channels_last:
        model, x = (
            model.to(memory_format=torch.channels_last),
            x.contiguous(memory_format=torch.channels_last),
        )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    return _rate(64 * steps, _timed_steps(lambda: _adam_step(model, opt, x, y, precision), steps))


def augment_epoch_s(steps: int, seed: int = 0) -> float:
    """The engine's augmentation alone, as :func:`engine.fit` calls it (uint8 → float, one affine
    per image, ``grid_sample``; :data:`engine.AUGMENT_IMAGES` images per call, drawn batch by
    batch), for at least ``steps`` batches of 64."""
    g, size = torch.Generator().manual_seed(seed), AUGMENT_IMAGES
    calls = math.ceil(64 * steps / size)
    # 1 warm-up call, then ``calls`` timed
    chunks = iter(load_split(True).images[: size * (calls + 1)].split(size))
    return _rate(
        size * calls,
        _timed_steps(lambda: augment_batch(to_unit(next(chunks)), g, REFERENCE_SPEC, 64), calls, 1),
    )


def _one_thread_compute(steps: int, seed: int) -> float:
    """:func:`compute_epoch_s` in a process of its own, with one thread."""
    torch.set_num_threads(1)
    return compute_epoch_s(steps, seed)


def two_processes_epoch_s(steps: int, seed: int = 0) -> float:
    """Seconds per epoch of throughput when two 1-thread processes train side by side (the study's
    Ray tasks)."""
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        # start both workers (spawn, import torch) before the timed calls
        list(pool.map(abs, range(2)))
        each = list(pool.map(_one_thread_compute, [steps] * 2, [seed, seed + 1]))
    return 1 / sum(1 / s for s in each)


BF16_ENGINE = "engine, bfloat16 forward (the study's runs)"
PIPELINES: dict[str, Callable[[int, int], float]] = {
    "stock, 0 workers": lambda steps, seed: stock_epoch_s(steps, 0, seed),
    "stock, 2 workers": lambda steps, seed: stock_epoch_s(steps, 2, seed),
    "engine": project_epoch_s,
    BF16_ENGINE: lambda steps, seed: project_epoch_s(steps, seed, "bfloat16"),
    "compute, channels-last (engine)": compute_epoch_s,
    "compute, bfloat16 forward": lambda steps, seed: compute_epoch_s(
        steps, seed, precision="bfloat16"
    ),
    "compute, contiguous": lambda steps, seed: compute_epoch_s(steps, seed, channels_last=False),
    "compute, two 1-thread processes": two_processes_epoch_s,
    "augmentation alone": augment_epoch_s,
}
"""What one round of the benchmark measures, in this order, each in seconds per epoch."""


def interleaved(
    pipelines: dict[str, Callable[[int, int], float]], rounds: int, steps: int
) -> dict[str, list[float]]:
    """``rounds`` rounds of A B C …: a drift of the machine's load lands on every pipeline alike."""
    values: dict[str, list[float]] = {name: [] for name in pipelines}
    for r in range(rounds):
        for name, measure in pipelines.items():
            values[name].append(measure(steps, r))
    return values


def spread(values: list[float]) -> dict[str, float]:
    """Min, median and max of repeated measurements."""
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def epoch_flops() -> float:
    """Floating-point operations of one epoch of the reference recipe (forward + backward), counted
    by PyTorch."""
    model, x, y = ReferenceCNN(), torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    with FlopCounterMode(display=False) as counter:
        F.nll_loss(model(x), y).backward()
    return counter.get_total_flops() * EPOCH / 64


def time_to_99(config: RunConfig, train: Split, test: Split) -> dict:
    """Wall time from an untrained model to the end of the fast recipe, test evaluation included,
    and its accuracy."""
    start = time.perf_counter()
    result = fit(config, train, None, device="cpu", progress=False)
    with autocast(config.precision):
        accuracy = evaluate(result.model, test)["accuracy"]
    return {"seed": config.seed, "seconds": time.perf_counter() - start, "test_accuracy": accuracy}


def peer_cnn() -> nn.Sequential:
    """The network of the fastest published MNIST recipe we know (tuomaso/train_mnist_fast, final
    version: 99.04 ± 0.07 % in 0.76 s on a GTX 1660 Ti), written from its description: 1→24 5×5,
    pool, ReLU, 24→32 3×3, pool, ReLU, 800→256, ReLU, 256→10, log-softmax."""
    return nn.Sequential(
        nn.Conv2d(1, 24, 5),
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Conv2d(24, 32, 3),
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(800, 256),
        nn.ReLU(),
        nn.Linear(256, 10),
        nn.LogSoftmax(dim=1),
    )


def peer_time_to_99(seed: int, train: Split, test: Split, batch_size: int = 256) -> dict:
    """The peer recipe in float32, timed like :func:`time_to_99`: normalise the tensors, shuffle
    once, one epoch of Adam (lr 1e-2, betas 0.7/0.9) with OneCycle stepped per batch (no momentum
    cycling), then score the test set."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    x, y = normalize(to_unit(train.images)), train.labels
    model = peer_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.7, 0.9))
    steps = math.ceil(len(x) / batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=1e-2, total_steps=steps, cycle_momentum=False
    )
    order = torch.randperm(len(x))
    model.train()
    for i in range(0, len(x), batch_size):
        idx = order[i : i + batch_size]
        loss = F.nll_loss(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    accuracy = evaluate(model, test)["accuracy"]  # scored as the racer is
    return {"seed": seed, "seconds": time.perf_counter() - start, "test_accuracy": accuracy}


def race(seeds: int, train: Split, test: Split) -> dict[str, list[dict]]:
    """The project's racer and the peer recipe, seed by seed on the same in-memory tensors; who
    goes first alternates with the seed (A B, B A, A B, …), so neither always follows the other."""
    contestants = {
        "racer": lambda seed: time_to_99(FAST_RECIPE.replace(seed=seed), train, test),
        "peer": lambda seed: peer_time_to_99(seed, train, test),
    }
    runs: dict[str, list[dict]] = {name: [] for name in contestants}
    for seed in range(seeds):
        order = list(contestants) if seed % 2 == 0 else list(reversed(contestants))
        for name in order:
            runs[name].append(contestants[name](seed))
    return runs


def accuracy_summary(runs: list[dict]) -> dict:
    """Mean and min test accuracy of a race's runs, and how many reached 99 %."""
    accuracies = [r["test_accuracy"] for r in runs]
    return {
        "mean": statistics.mean(accuracies),
        "min": min(accuracies),
        "reached": sum(a >= 0.99 for a in accuracies),
        "seeds": len(runs),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print a table, write ``artifacts/bench.json``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--steps", type=int, default=150, help="batches of 64 per measurement (an epoch is 938)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="interleaved rounds: every pipeline is measured once per round",
    )
    parser.add_argument("--race-seeds", type=int, default=5, help="seeds of the time-to-99 %% race")
    args = parser.parse_args(argv)
    # `make bench` sets the study's (study.ALLOCATOR) for every pipeline
    tunables = os.environ.get("GLIBC_TUNABLES") or None
    print(
        f"benchmark on {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads; {args.rounds} interleaved rounds "
        f"of {args.steps} batches of 64; GLIBC_TUNABLES {tunables or 'unset (glibc defaults)'}"
    )
    values = interleaved(PIPELINES, args.rounds, args.steps)
    epochs = {name: spread(v) for name, v in values.items()}
    stock = min(
        (name for name in epochs if name.startswith("stock")),
        key=lambda name: epochs[name]["median"],
    )
    gflops = statistics.median(sgemm_gflops() for _ in range(3))
    flops = epoch_flops()
    floor = flops / (gflops * 1e9)
    train, test = load_split(True), load_split(False)
    raced = race(args.race_seeds, train, test)
    races, peers = raced["racer"], raced["peer"]
    median = {name: e["median"] for name, e in epochs.items()}
    result = {
        "epoch_s": epochs,
        "epoch_s_all": values,
        "pipelines": list(PIPELINES),
        "stock": stock,
        "speedup_vs_stock": median[stock] / median["engine"],
        "engine_over_compute": median["engine"] / median["compute, channels-last (engine)"],
        "speedup_vs_stock_bfloat16": median[stock] / median[BF16_ENGINE],
        "engine_over_compute_bfloat16": median[BF16_ENGINE] / median["compute, bfloat16 forward"],
        "two_processes_throughput": median["compute, channels-last (engine)"]
        / median["compute, two 1-thread processes"],
        "epoch_tflop": flops / 1e12,
        "sgemm_gflops": gflops,
        "floor_epoch_s": floor,
        "engine_share_of_floor": floor / median["engine"],
        "time_to_99_s": spread([r["seconds"] for r in races]),
        "time_to_99_accuracy": accuracy_summary(races),
        "time_to_99_all": races,
        "time_to_99_recipe": FAST_RECIPE.to_dict(),
        "peer_s": spread([r["seconds"] for r in peers]),
        "peer_accuracy": accuracy_summary(peers),
        "peer_all": peers,
        "racer_over_peer": statistics.median(r["seconds"] for r in races)
        / statistics.median(r["seconds"] for r in peers),
        "steps_per_measurement": args.steps,
        "rounds": args.rounds,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "device": "cpu",
        "glibc_tunables": tunables,
    }
    width = max(map(len, epochs))
    print(f"\n  {'seconds per epoch':<{width}}     min  median     max")
    for name, e in epochs.items():
        print(f"  {name:<{width}}  {e['min']:6.1f}  {e['median']:6.1f}  {e['max']:6.1f}")
    print(
        f"  {'hardware floor':<{width}}  {floor:6.1f}          ({flops / 1e12:.2f} TFLOP at sgemm "
        f"{gflops:.0f} GFLOP/s)\n"
    )
    t, acc = result["time_to_99_s"], result["time_to_99_accuracy"]
    print(
        f"  engine: {result['speedup_vs_stock']:.2f}x the {stock} pipeline (medians), "
        f"{result['engine_over_compute']:.3f}x compute, "
        f"{100 * result['engine_share_of_floor']:.0f} % of the floor's speed; with the bfloat16 "
        f"forward pass {result['speedup_vs_stock_bfloat16']:.2f}x the {stock} pipeline and "
        f"{result['engine_over_compute_bfloat16']:.3f}x its compute; two 1-thread processes give "
        f"{result['two_processes_throughput']:.2f}x the throughput of one "
        f"{torch.get_num_threads()}-thread process\n"
        f"  time to 99 %: {t['min']:.1f} / {t['median']:.1f} / {t['max']:.1f} s (min / median / "
        f"max of {len(races)} seeds, eval included, at sgemm {gflops:.0f} GFLOP/s); test accuracy "
        f"mean {100 * acc['mean']:.2f} %, min {100 * acc['min']:.2f} %, ≥ 99 % in {acc['reached']} "
        f"of {acc['seeds']}"
    )
    p, pacc = result["peer_s"], result["peer_accuracy"]
    print(
        "  the peer recipe (tuomaso/train_mnist_fast, float32), raced seed by seed: "
        f"{p['min']:.1f} / {p['median']:.1f} / {p['max']:.1f} s; test accuracy mean "
        f"{100 * pacc['mean']:.2f} %, min {100 * pacc['min']:.2f} %, ≥ 99 % in {pacc['reached']} "
        f"of {pacc['seeds']}\n"
        f"  racer / peer (medians): {result['racer_over_peer']:.2f} (goal ≤ 0.5)"
    )
    write_json(paths.artifacts_dir() / "bench.json", result)
    print(f"\nwritten to {paths.artifacts_dir() / 'bench.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
