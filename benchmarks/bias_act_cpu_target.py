"""bias_act forward+backward at [8, 256, 32, 32] float32: the cpp backend (CPU) vs the eager reference.

One run, ratio of medians, timed in alternating blocks (5 warm-up steps, then 20 timed, 4 rounds).
Usage: python -m benchmarks.bias_act_cpu_target [threads|-] [act,act,...]   e.g. `... 1 lrelu`
A standalone check of the CPU target, beside the suite (python -m benchmarks --preset ci), which records it.
"""
import statistics, sys, time, torch
from gan_fast import ops
if len(sys.argv) > 1 and sys.argv[1] != "-": torch.set_num_threads(int(sys.argv[1]))
ACTS = sys.argv[2].split(",") if len(sys.argv) > 2 else ("lrelu", "swish", "tanh")
torch.manual_seed(0)
x = torch.randn(8, 256, 32, 32, requires_grad=True); b = torch.randn(256, requires_grad=True); dy = torch.randn(8, 256, 32, 32)
def step(impl, act):
    y = ops.bias_act(x, b, act=act, impl=impl); y.backward(dy); x.grad = b.grad = None
for act in ACTS:
    t = {"ref": [], "cpp": []}
    for _ in range(4):
        for impl in ("ref", "cpp"):
            for _ in range(5): step(impl, act)
            for _ in range(20):
                s = time.perf_counter(); step(impl, act); t[impl].append(time.perf_counter() - s)
    m = {k: statistics.median(v) for k, v in t.items()}
    print(f"{act}: ref/cpp = {m['ref'] / m['cpp']:.2f}x (medians ref {m['ref']*1e3:.2f} ms, cpp {m['cpp']*1e3:.2f} ms, threads={torch.get_num_threads()})")
