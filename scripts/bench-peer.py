"""bench-peer.py — the reference spec (examples/reference.json) trained by PyTorch, for
scripts/bench-peer: the peer vaed is measured against. Not vaed's code and not a test
oracle: an independent implementation of the same model, data and schedule, written as
a PyTorch user would write it.

  python3 scripts/bench-peer.py SPEC.json THREADS

The model: an MLP encoder (the spec's hidden sizes, ReLU) to the mean and log-variance
of a diagonal Gaussian q(z|x), one reparameterised sample, an MLP decoder to Bernoulli
logits; loss = xent + beta * KL (analytic), summed over features, averaged over the
batch; beta by the spec's linear warm-up, step s of S per epoch at s / (S * duration)
(vaed's granularity "step"); Adam; PyTorch's default nn.Linear initialisation (vaed
draws from the same distribution); rows shuffled every epoch, the last batch partial.
Fashion-MNIST is read from Debian's dataset-fashion-mnist, pixels / 255 (binarize
"none"). The test ELBO is vaed's: beta = 1, one sample per row, the whole t10k split.

Prints one JSON object: samples_per_sec (training steps only, like vaed's), train_s,
wall_s, peak_rss_mb, test_elbo, threads, torch (version)."""
import gzip, json, os, resource, sys, time

import numpy as np
import torch
from torch import nn

spec = json.load(open(sys.argv[1]))
threads = int(sys.argv[2])
torch.set_num_threads(threads)
torch.set_num_interop_threads(1)
torch.manual_seed(spec["train"].get("seed", 0))

d = os.environ.get("VAED_FASHION_MNIST_DIR") or "/usr/share/datasets/fashion-mnist"


def idx(path):
    with gzip.open(path, "rb") as f:
        b = f.read()
    n, r, c = (int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(3))
    return torch.from_numpy(np.frombuffer(b, np.uint8, n * r * c, 16).reshape(n, r * c).astype(np.float32) / 255.0)


t_wall = time.monotonic()
train = idx(d + "/train-images-idx3-ubyte.gz")
test = idx(d + "/t10k-images-idx3-ubyte.gz")
lim = spec["dataset"].get("limit", 0)
if lim:
    train = train[:lim]
D = train.shape[1]
m = spec["model"]
L = m["latent"]


def mlp(sizes):
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


enc = mlp([D] + m["encoder"] + [2 * L])
dec = mlp([L] + m["decoder"] + [D])
params = list(enc.parameters()) + list(dec.parameters())
o = spec["optimizer"]
opt = torch.optim.Adam(params, lr=o["lr"], betas=(o.get("beta1", 0.9), o.get("beta2", 0.999)), eps=o.get("eps", 1e-8))
bce = nn.BCEWithLogitsLoss(reduction="none")


def terms(x):
    h = enc(x)
    mu, logvar = h[:, :L], h[:, L:]
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    xent = bce(dec(z), x).sum(1).mean()
    kl = (0.5 * (mu * mu + logvar.exp() - 1.0 - logvar)).sum(1).mean()
    return xent, kl


s = spec["schedule"]
assert s["kind"] == "linear" and s.get("unit", "epochs") == "epochs", "bench-peer knows the reference's linear warm-up"
B = spec["train"]["batch_size"]
N = train.shape[0]
S = (N + B - 1) // B
epochs = spec["train"]["epochs"]
train_s = 0.0
step = 0
for e in range(epochs):
    order = torch.randperm(N)
    t0 = time.monotonic()
    for i in range(S):
        x = train[order[i * B:(i + 1) * B]]
        frac = min(1.0, max(0.0, (step / S - s.get("start", 0.0)) / s["duration"]))
        beta = s.get("from", 0.0) + (s.get("to", 1.0) - s.get("from", 0.0)) * frac
        xent, kl = terms(x)
        opt.zero_grad(set_to_none=True)
        (xent + beta * kl).backward()
        opt.step()
        step += 1
    train_s += time.monotonic() - t0
with torch.no_grad():
    tx = tk = 0.0
    for i in range(0, test.shape[0], 1000):
        x = test[i:i + 1000]
        xent, kl = terms(x)
        tx += xent.item() * x.shape[0]
        tk += kl.item() * x.shape[0]
    elbo = -(tx + tk) / test.shape[0]
print(json.dumps({"samples_per_sec": N * epochs / train_s, "train_s": train_s,
                  "wall_s": time.monotonic() - t_wall,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                  "test_elbo": elbo, "threads": threads, "torch": torch.__version__}))
