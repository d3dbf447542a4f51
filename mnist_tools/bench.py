"""`python -m mnist_tools bench`: the reference recipe the stock torchvision way, through the
engine, and as the study trains it, each against the hardware's floor; a kernel-by-kernel profile
of the study's step; and the race to 99 %. Pipelines are measured in interleaved rounds (A B C …
A B C …), so a drift of the machine's load lands on every one alike."""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from mnist_utils import paths
from mnist_utils.augment import REFERENCE_SPEC, augment_batch, reference_pipeline, to_unit
from mnist_utils.config import ALLOCATOR, RunConfig
from mnist_utils.data import load_split, mnist_dataset
from mnist_utils.engine import AUGMENT_IMAGES, autocast, evaluate, fit
from mnist_utils.models import ReferenceCNN
from mnist_utils.runs import write_json

from . import race
from .machine import gemm_gflops, in_two_processes, sgemm_gflops
from .profile import study_step_profile

REFERENCE = RunConfig(name="bench")
EPOCH = 60000
"""Images per epoch of the reference recipe: every rate is converted to seconds per epoch."""
STUDY_VAL = 5000
"""Validation images a study run scores after each epoch."""


def per_epoch(images: int, seconds: float) -> float:
    """Seconds per 60,000-image epoch at the measured rate."""
    return EPOCH * seconds / images


def timed(step: Callable[[], object], steps: int, warmup: int = 5) -> float:
    """Seconds for ``steps`` calls of ``step`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - start


def adam_step(model, opt, x, y, precision: str = "float32") -> None:
    """One step of the reference recipe: forward (autocast to ``precision``), loss, backward,
    Adam."""
    opt.zero_grad(set_to_none=True)
    with autocast(precision):
        log_probs = model(x)
    F.nll_loss(log_probs.float(), y).backward()
    opt.step()


def stock_epoch_s(steps: int, seed: int, workers: int = 0) -> float:
    """The reference recipe as torchvision's docs write it: PIL transforms, a DataLoader, the eager
    model and default Adam."""
    from torch.utils.data import DataLoader

    torch.manual_seed(seed)
    ds = mnist_dataset(train=True, transform=reference_pipeline(train=True))
    loader = iter(DataLoader(ds, batch_size=64, shuffle=True, num_workers=workers))
    model = ReferenceCNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return per_epoch(64 * steps, timed(lambda: adam_step(model, opt, *next(loader)), steps))


def engine_epoch_s(steps: int, seed: int, precision: str = "float32") -> float:
    """The reference recipe through ``engine.fit`` (in-memory uint8, batched augmentation)."""
    train = load_split(True).subset(64 * steps, seed=seed)
    config = REFERENCE.replace(epochs=1, seed=seed, precision=precision)
    result = fit(config, train, None, device="cpu", progress=False)
    return per_epoch(len(train), result.history[0]["epoch_seconds"])


def compute_epoch_s(steps: int, seed: int, precision: str = "float32") -> float:
    """Forward + backward + fused Adam alone on fixed tensors, channels-last, as the engine."""
    torch.manual_seed(seed)
    model = ReferenceCNN().to(memory_format=torch.channels_last)
    x = torch.randn(64, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y, opt = torch.randint(0, 10, (64,)), torch.optim.Adam(model.parameters(), fused=True)
    return per_epoch(64 * steps, timed(lambda: adam_step(model, opt, x, y, precision), steps))


def augment_epoch_s(steps: int, seed: int) -> float:
    """The engine's augmentation alone, as ``engine.fit`` calls it, for at least ``steps``
    batches of 64."""
    g, size = torch.Generator().manual_seed(seed), AUGMENT_IMAGES
    calls = math.ceil(64 * steps / size)
    chunks = iter(load_split(True).images[: size * (calls + 1)].split(size))  # 1 warm-up call
    step = lambda: augment_batch(to_unit(next(chunks)), g, REFERENCE_SPEC, 64)  # noqa: E731
    return per_epoch(size * calls, timed(step, calls, 1))


def one_study_epoch_s(steps: int, seed: int) -> float:
    """A study run's epoch in one 1-thread process: training through the engine in bfloat16, and
    its scoring of the validation images, in the run's precision."""
    torch.set_num_threads(1)
    data = load_split(True)
    train, val = data.subset(64 * steps, seed=seed), data.subset(STUDY_VAL, seed=seed + 1)
    config = REFERENCE.replace(epochs=1, seed=seed, precision="bfloat16")
    result = fit(config, train, None, device="cpu", progress=False)
    start = time.perf_counter()
    evaluate(result.model, val, config.precision)  # as engine.fit scores its validation split
    return per_epoch(len(train), result.history[0]["epoch_seconds"]) + time.perf_counter() - start


def study_epoch_s(steps: int, seed: int) -> float:
    """Seconds per epoch of throughput when two 1-thread processes train side by side, as the
    study's Ray tasks do."""
    return 1 / sum(1 / s for s in in_two_processes(one_study_epoch_s, steps, seed))


STUDY = "study: engine, bfloat16, two 1-thread processes"
PIPELINES: dict[str, Callable[[int, int], float]] = {
    "stock, 0 workers": lambda steps, seed: stock_epoch_s(steps, seed, 0),
    "stock, 2 workers": lambda steps, seed: stock_epoch_s(steps, seed, 2),
    "engine, float32 (notebook 04)": engine_epoch_s,
    "engine, bfloat16": lambda steps, seed: engine_epoch_s(steps, seed, "bfloat16"),
    STUDY: study_epoch_s,
    "compute, float32": compute_epoch_s,
    "compute, bfloat16": lambda steps, seed: compute_epoch_s(steps, seed, "bfloat16"),
    "augmentation alone": augment_epoch_s,
}
"""What one round of the benchmark measures, in this order, each in seconds per epoch."""


def interleaved(pipelines: dict, rounds: int, steps: int) -> dict[str, list[float]]:
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


def one_thread_bf16_gflops() -> float:
    """The bfloat16 matrix-multiply rate of one process with one thread."""
    torch.set_num_threads(1)
    return gemm_gflops(torch.bfloat16)


def floors() -> dict:
    """The measured rates (medians of 3) and the floors they set: an epoch's FLOPs at the float32
    rate of this process, and at the bfloat16 rate of two 1-thread processes (the study's)."""
    sgemm = statistics.median(sgemm_gflops() for _ in range(3))
    bf16 = statistics.median(gemm_gflops(torch.bfloat16) for _ in range(3))
    study = statistics.median(sum(in_two_processes(one_thread_bf16_gflops)) for _ in range(3))
    flops = epoch_flops()
    return {
        "epoch_tflop": flops / 1e12,
        "sgemm_gflops": sgemm,
        "bf16_gflops": bf16,
        "study_bf16_gflops": study,
        "floor_epoch_s": flops / (sgemm * 1e9),
        "bf16_floor_epoch_s": flops / (study * 1e9),
    }


def with_allocator(argv: list[str]) -> None:
    """Restart as the study's processes train, with ``ALLOCATOR``, unless a ``GLIBC_TUNABLES`` is
    set (that one is kept)."""
    if "GLIBC_TUNABLES" not in os.environ:
        env = os.environ | {"GLIBC_TUNABLES": ALLOCATOR}
        os.execve(sys.executable, [sys.executable, "-m", "mnist_tools", "bench", *argv], env)


def measure(args: argparse.Namespace) -> dict:
    """Every measurement of the benchmark, as written to bench.json."""
    values = interleaved(PIPELINES, args.rounds, args.steps)
    epochs = {name: spread(v) for name, v in values.items()}
    median = {name: e["median"] for name, e in epochs.items()}
    stock = min((n for n in epochs if n.startswith("stock")), key=median.get)
    result = {"epoch_s": epochs, "epoch_s_all": values, "stock": stock} | floors()
    result |= {
        "engine_vs_stock": median[stock] / median["engine, float32 (notebook 04)"],
        "engine_share_of_floor": result["floor_epoch_s"] / median["engine, float32 (notebook 04)"],
        "study_share_of_bf16_floor": result["bf16_floor_epoch_s"] / median[STUDY],
        "profile": study_step_profile(),
    }
    train, test = load_split(True), load_split(False)
    raced = race.race(args.race_seeds, train, test)
    racer, peer = race.summary(raced["racer"]), race.summary(raced["peer"])
    result |= {"racer": racer, "peer": peer, "race_all": raced, "peer_recipe": race.PEER_URL}
    result["racer_over_peer"] = racer["seconds"]["median"] / peer["seconds"]["median"]
    return result | {"steps": args.steps, "rounds": args.rounds, "cpu_count": os.cpu_count()}


def table(r: dict) -> str:
    """The benchmark's result as the lines it prints."""
    width = max(map(len, r["epoch_s"]))
    lines = [f"  {'seconds per epoch':<{width}}     min  median     max"]
    lines += [
        f"  {name:<{width}}  {e['min']:6.1f}  {e['median']:6.1f}  {e['max']:6.1f}"
        for name, e in r["epoch_s"].items()
    ]
    lines += [
        f"  {'float32 floor':<{width}}  {r['floor_epoch_s']:6.1f}          ({r['epoch_tflop']:.2f} "
        f"TFLOP at sgemm {r['sgemm_gflops']:.0f} GFLOP/s)",
        f"  {'bfloat16 floor, 2 × 1 thread':<{width}}  {r['bf16_floor_epoch_s']:6.1f}          "
        f"(at {r['study_bf16_gflops']:.0f} GFLOP/s; one process: {r['bf16_gflops']:.0f})",
        "",
        f"  engine: {r['engine_vs_stock']:.2f}x the {r['stock']} pipeline, "
        f"{100 * r['engine_share_of_floor']:.0f} % of the float32 floor; the study's epoch: "
        f"{100 * r['study_share_of_bf16_floor']:.0f} % of the bfloat16 floor (goal ≥ 70 %)",
        "",
        "  where a study step's time goes (one 1-thread bfloat16 step, torch.profiler):",
    ]
    p = r["profile"]
    lines += [
        f"    {k:<44} {v:6.2f} ms  {100 * v / p['total_ms']:4.0f} %" for k, v in p["ms"].items()
    ]
    lines.append(
        f"    {'the floor (its FLOPs at the 1-thread bf16 rate)':<44} {p['floor_ms']:6.2f} ms"
    )
    for name in ("racer", "peer"):
        s, t = r[name], r[name]["seconds"]
        lines.append(
            f"  {name:<5} time to 99 %: {t['min']:.1f} / {t['median']:.1f} / {t['max']:.1f} s "
            f"(min / median / max of {s['seeds']} seeds); accuracy mean {100 * s['mean']:.2f} %, "
            f"min {100 * s['min']:.2f} %, ≥ 99 % in {s['reached']} of {s['seeds']}"
        )
    lines.append(f"  racer / peer ({race.PEER}, medians): {r['racer_over_peer']:.2f} (goal ≤ 0.33)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print a table, write ``artifacts/bench.json``."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m mnist_tools bench", description=__doc__)
    parser.add_argument("--steps", type=int, default=150, help="batches of 64 per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--race-seeds", type=int, default=5, help="seeds of the race to 99 %%")
    args = parser.parse_args(argv)
    with_allocator(argv)
    print(
        f"benchmark on {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; {args.rounds} interleaved rounds of {args.steps} "
        f"batches of 64; GLIBC_TUNABLES {os.environ.get('GLIBC_TUNABLES')}",
        flush=True,
    )
    result = measure(args)
    print("\n" + table(result))
    write_json(paths.artifacts_dir() / "bench.json", result)
    print(f"\nwritten to {paths.artifacts_dir() / 'bench.json'}")
    return 0
