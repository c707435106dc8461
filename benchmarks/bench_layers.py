"""Speed of TimeAffine and TimeSoftmaxWithLoss against their bare costs.

    python benchmarks/bench_layers.py [--quick]

- TimeAffine forward+backward at N=20, T=35, D=100, H=10000 (float32), as a ratio
  to its three bare matrix products written into preallocated buffers.
- TimeSoftmaxWithLoss forward+backward over (20, 35, 10000), next to PyTorch's
  cross_entropy forward+backward when torch is installed.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import interleaved_medians, table  # noqa: E402

import timelayers as tl  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    repeat = 3 if args.quick else 15
    rng = np.random.default_rng(0)
    N, T, D, H = 20, 35, 100, 10000
    f32 = np.float32
    W = (rng.standard_normal((D, H)) * 0.01).astype(f32)
    b = np.zeros(H, f32)
    x = rng.standard_normal((N, T, D)).astype(f32)
    dout = rng.standard_normal((N, T, H)).astype(f32)
    layer = tl.TimeAffine(W, b)

    x2d, d2d = x.reshape(N * T, D), dout.reshape(N * T, H)
    out_buf = np.empty((N * T, H), f32)
    dW_buf = np.empty((D, H), f32)
    dx_buf = np.empty((N * T, D), f32)

    def bare():
        np.matmul(x2d, W, out=out_buf)
        np.matmul(x2d.T, d2d, out=dW_buf)
        np.matmul(d2d, W.T, out=dx_buf)

    def ours():
        layer.forward(x)
        layer.backward(dout)

    times = interleaved_medians({"bare": bare, "TimeAffine": ours}, repeat=repeat)
    rows = [["TimeAffine fwd+bwd (20,35,100)->10000", f"{times['TimeAffine'] * 1e3:.1f}",
             f"{times['bare'] * 1e3:.1f} (3 bare matmuls)",
             f"{times['TimeAffine'] / times['bare']:.3f}"]]

    xs = rng.standard_normal((N, T, H)).astype(f32)
    ts = rng.integers(0, H, (N, T))
    loss_layer = tl.TimeSoftmaxWithLoss()

    def softmax_ours():
        loss_layer.forward(xs, ts)
        loss_layer.backward()

    fns = {"ours": softmax_ours}
    try:
        import torch

        torch.set_num_threads(max(1, torch.get_num_threads()))
        txs = torch.tensor(xs.reshape(-1, H), requires_grad=True)
        tts = torch.tensor(ts.reshape(-1))

        def softmax_torch():
            txs.grad = None
            torch.nn.functional.cross_entropy(txs, tts, ignore_index=-1).backward()

        fns["torch"] = softmax_torch
    except ImportError:
        pass
    st = interleaved_medians(fns, repeat=repeat)
    ref = f"{st['torch'] * 1e3:.1f} (torch cross_entropy)" if "torch" in st else "torch not installed"
    ratio = f"{st['ours'] / st['torch']:.3f}" if "torch" in st else "-"
    rows.append(["TimeSoftmaxWithLoss fwd+bwd (20,35,10000)", f"{st['ours'] * 1e3:.1f}", ref, ratio])
    print(table(rows, ["case", "ours (ms)", "reference (ms)", "ratio"]))


if __name__ == "__main__":
    main()
