"""Where a study step's time goes: one 1-thread bfloat16 training step of the reference recipe,
kernel by kernel (torch.profiler), grouped, beside the floor its FLOPs set."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import torch
from torch.profiler import ProfilerActivity, profile

GROUPS = {
    "convolution, forward": ("aten::mkldnn_convolution",),
    "convolution, backward": ("aten::convolution_backward",),
    "max-pool, forward": ("aten::max_pool2d_with_indices",),
    "max-pool, backward": ("aten::max_pool2d_with_indices_backward",),
    "zero fills (the max-pool gradient's buffer)": ("aten::fill_", "aten::zero_"),
    "linear layers (mm, addmm)": ("aten::mm", "aten::addmm"),
    "ReLU and its backward": ("aten::clamp_min", "aten::threshold_backward", "aten::relu"),
    "fused Adam": ("aten::_fused_adam_",),
    "bfloat16 casts and copies": ("aten::copy_", "aten::_to_copy"),
}
"""Profiler op names (self time) by what they do; everything else is "other"."""


def _profile(steps: int) -> dict:
    """The profile, in a process of its own with one thread, as a study task runs."""
    from mnist_utils import augment, engine
    from mnist_utils.config import RunConfig
    from mnist_utils.data import load_split

    from .bench import epoch_flops, one_thread_bf16_gflops

    os.environ["KINETO_LOG_LEVEL"] = "6"  # this process's own: no profiler_start/stop chatter
    torch.set_num_threads(1)
    config = RunConfig(name="profile", precision="bfloat16", epochs=1)
    train = load_split(True).subset(64 * (steps + 20), seed=0)
    model, opt, sched, g = engine.new_run(config, steps + 20, torch.device("cpu"))
    order, spec = torch.randperm(len(train), generator=g), augment.AugmentSpec()  # the reference's
    cpu = torch.device("cpu")
    batches = engine.augmented_batches(train.images, train.labels, order, g, spec, config, cpu)
    batches = list(batches)
    for x, y in batches[:20]:  # warm-up
        engine.train_step(model, opt, sched, x, y, config)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for x, y in batches[20:]:
            engine.train_step(model, opt, sched, x, y, config)
    ms = {group: 0.0 for group in GROUPS} | {"other": 0.0}
    for event in prof.key_averages():
        group = next((k for k, names in GROUPS.items() if event.key in names), "other")
        ms[group] += event.self_cpu_time_total / 1000 / steps
    floor_ms = epoch_flops() / 60000 * 64 / (one_thread_bf16_gflops() * 1e9) * 1000
    return {"ms": ms, "total_ms": sum(ms.values()), "floor_ms": floor_ms, "steps": steps}


def study_step_profile(steps: int = 40) -> dict:
    """Milliseconds per step of each group of kernels, their total, and the floor."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_profile, steps).result()
