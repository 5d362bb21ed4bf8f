"""Time one 3D convolution in fp32 and bf16, default and channels-last layouts, on this CPU.

Tells whether reduced precision helps here: on a CPU without AVX-512 BF16 (oneDNN reports no bf16
support) PyTorch falls back to a slow bf16 path. Prints seconds per call and the ratio to fp32.

Usage: python benchmarks/conv3d_precision.py
"""

from __future__ import annotations

import time

import torch


def seconds(fn, *args, repeats: int = 3) -> float:
    fn(*args)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main() -> None:
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"oneDNN bf16 supported: {torch.ops.mkldnn._is_mkldnn_bf16_supported()}")
    x = torch.rand(8, 16, 32, 32, 16)
    conv = torch.nn.Conv3d(16, 32, 3, padding=1)
    flops = 2 * x.numel() // 16 * 16 * 32 * 27
    base = None
    with torch.inference_mode():
        for dtype in (torch.float32, torch.bfloat16):
            for fmt in (torch.contiguous_format, torch.channels_last_3d):
                c = conv.to(dtype).to(memory_format=fmt)
                xx = x.to(dtype).contiguous(memory_format=fmt)
                s = seconds(c, xx, repeats=1 if dtype == torch.bfloat16 else 3)
                base = base or s
                print(f"{str(dtype):15s} {str(fmt):25s} {s:8.4f} s  {flops / s / 1e9:7.1f} GFLOP/s  x{base / s:.3f} vs fp32")


if __name__ == "__main__":
    main()
