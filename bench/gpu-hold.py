#!/usr/bin/env python3
"""gpu-hold.py FREE_MIB [GPU] — emulate a smaller card: allocate GPU memory
(plain cudaMalloc through PyTorch's allocator) until only FREE_MIB stay free
on the GPU, print "holding N MiB, M MiB free", then hold it until killed.
Used by bench/tuner-gpu.sh; needs python3 with torch (CUDA)."""
import signal
import sys
import time

import torch

target = int(sys.argv[1])
dev = int(sys.argv[2]) if len(sys.argv) > 2 else 0
torch.cuda.set_device(dev)
torch.cuda.init()
blocks = []
MiB = 1 << 20


def free_mib():
    return torch.cuda.mem_get_info(dev)[0] // MiB


# big steps first, then small ones: the allocator and the context take some too
for step in (4096, 1024, 256, 64, 16, 4):
    while free_mib() - step >= target:
        blocks.append(torch.empty(step * MiB, dtype=torch.uint8, device=f"cuda:{dev}"))
torch.cuda.synchronize()
held = sum(b.numel() for b in blocks) // MiB
print(f"holding {held} MiB, {free_mib()} MiB free", flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(3600)
