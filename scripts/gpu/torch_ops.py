#!/usr/bin/env python3
"""torch's time for the shapes of scripts/gpu/ops.json (fp16, cuBLAS / cuDNN channels-last with
cudnn.benchmark / scaled_dot_product_attention / group_norm + SiLU channels-last), as bench-ops.js
names them: {"gemm 4096x320x320": ms, ...}.
  python3 scripts/gpu/torch_ops.py > torch.json"""
import json
import os
import sys

import torch
import torch.nn.functional as F

shapes = json.load(open(os.path.join(os.path.dirname(__file__), "ops.json")))
dev = "cuda"
h = torch.float16
out = {}


def bench(fn, iters=50):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


torch.backends.cudnn.benchmark = True  # cuDNN picks its fastest algorithm per shape, as our plan does

with torch.no_grad():
    for M, K, N in shapes["gemm"]:
        x = torch.randn(M, K, device=dev, dtype=h)
        w = torch.randn(N, K, device=dev, dtype=h) / K**0.5
        out[f"gemm {M}x{K}x{N}"] = bench(lambda: F.linear(x, w))
    for H, W, Ci, Co in shapes["conv"]:
        x = torch.randn(1, Ci, H, W, device=dev, dtype=h).to(memory_format=torch.channels_last)
        w = (torch.randn(Co, Ci, 3, 3, device=dev, dtype=h) / (9 * Ci) ** 0.5).to(memory_format=torch.channels_last)
        out[f"conv3x3 {H}x{W}x{Ci}->{Co}"] = bench(lambda: F.conv2d(x, w, padding=1))
    for B, Nq, Nk, Hd, D in shapes["attention"]:
        q = torch.randn(B, Hd, Nq, D, device=dev, dtype=h)
        k = torch.randn(B, Hd, Nk, D, device=dev, dtype=h)
        v = torch.randn(B, Hd, Nk, D, device=dev, dtype=h)
        out[f"attention {B}x{Nq}x{Nk}x{Hd}x{D}"] = bench(lambda: F.scaled_dot_product_attention(q, k, v))
    for H, W, C, G in shapes["group_norm"]:
        x = torch.randn(1, C, H, W, device=dev, dtype=h).to(memory_format=torch.channels_last)
        gamma, beta = torch.randn(C, device=dev, dtype=h), torch.randn(C, device=dev, dtype=h)
        out[f"group_norm {H}x{W}x{C}/{G}"] = bench(lambda: F.silu(F.group_norm(x, G, gamma, beta)))

json.dump(out, sys.stdout, indent=1)
print(file=sys.stderr)
print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}", file=sys.stderr)
