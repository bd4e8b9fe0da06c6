#!/usr/bin/python3
"""model_numpy.py - an independent NumPy implementation of a vaed model, read from the
safetensors file the daemon exports (format: vae/safetensors.h), used as the oracle of
the serving routes and of `vaed eval`.

    model_numpy.py serve SAFETENSORS DIR      check DIR/<route>.req.json / .json pairs
    model_numpy.py iwae SAFETENSORS IDX_GZ ROWS K SEED   print {"bound", "mc_sd"}

serve: for each reply in DIR (encode, decode, reconstruct, sample, interpolate, and
encode_npy.npy), recompute what the route must answer from the request alone (or, for
sample, from the z it returned) and compare; prints what differed, exits 1 on any.
iwae: the importance-weighted bound (Burda et al. 2016) of the first ROWS test images
with K samples each, with NumPy's own random draws, in float64: the mean over 16
independent sets of draws, and the standard deviation of one set's mean (its
Monte-Carlo noise, which is what separates two honest estimates over the same rows).
"""
import gzip
import json
import os
import struct
import sys

import numpy as np

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg, file=sys.stderr)


def load(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__")
    base = 8 + n
    t = {}
    for name, h in header.items():
        b, e = h["data_offsets"]
        t[name] = np.frombuffer(data[base + b:base + e], dtype="<f4").astype(np.float64).reshape(h["shape"])
    return t, meta


class Model:
    def __init__(self, path):
        self.t, self.meta = load(path)
        self.act = {"relu": lambda a: np.maximum(a, 0), "tanh": np.tanh,
                    "elu": lambda a: np.where(a > 0, a, np.expm1(a))}[self.meta["activation"]]
        self.groups = json.loads(self.meta["latent_groups"])
        self.lik = self.meta["likelihood"]
        self.spec = json.loads(self.meta["spec"])

    def mlp(self, prefix, x):
        i = 0
        while "%s.%d.weight" % (prefix, i) in self.t:
            x = self.act(x @ self.t["%s.%d.weight" % (prefix, i)].T + self.t["%s.%d.bias" % (prefix, i)])
            i += 2
        return x

    def head(self, name, h):
        if len(self.groups) == 1:
            return h @ self.t[name + ".weight"].T + self.t[name + ".bias"]
        return np.concatenate([h @ self.t["%s.%d.weight" % (name, g)].T + self.t["%s.%d.bias" % (name, g)]
                               for g in range(len(self.groups))], axis=1)

    def encode(self, x):
        h = self.mlp("encoder", x)
        return self.head("z_mean", h), self.head("z_logvar", h)

    def logits(self, z):
        return self.mlp("decoder", z) @ self.t["output.weight"].T + self.t["output.bias"]

    def params(self, z):
        y = self.logits(z)
        return 1 / (1 + np.exp(-y)) if self.lik == "bernoulli" else y

    def log_px_z(self, x, y):
        if self.lik == "bernoulli":
            return np.sum(x * y - np.logaddexp(0, y), axis=-1)
        s = self.spec["model"]["sigma"]
        return np.sum(-0.5 * ((x - y) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi), axis=-1)


def close(what, got, want, tol=2e-4):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        fail("%s: shape %s, expected %s" % (what, got.shape, want.shape))
        return
    d = np.max(np.abs(got - want) / np.maximum(1, np.abs(want))) if got.size else 0
    if not d < tol:
        fail("%s: differs from NumPy by %.3g" % (what, d))


def read_npy(path):
    b = open(path, "rb").read()
    if b[:6] != b"\x93NUMPY":
        fail(path + ": not .npy")
        return None
    (hl,) = struct.unpack_from("<H", b, 8)
    h = eval(b[10:10 + hl].decode("latin1"))  # the header is a Python dict literal
    return np.frombuffer(b[10 + hl:], dtype=h["descr"]).reshape(h["shape"]).astype(np.float64)


def serve(m, d):
    def pair(name):
        return (json.load(open(os.path.join(d, name + ".req.json"))),
                json.load(open(os.path.join(d, name + ".json"))))
    q, r = pair("encode")
    x = np.array(q["rows"])
    mu, lv = m.encode(x)
    close("encode mu", r["mu"], mu)
    close("encode logvar", r["logvar"], lv)
    n = q.get("n", 0)
    if n:
        z = np.array(r["z"]).reshape(len(x), n, -1)
        eps = (z - mu[:, None, :]) / np.exp(0.5 * lv)[:, None, :]
        if not np.all(np.isfinite(eps)):
            fail("encode z: not finite")
    q, r = pair("decode")
    close("decode params", r["params"], m.params(np.array(q["z"])))
    if m.lik == "gaussian":
        close("decode variance", r["variance"], m.spec["model"]["sigma"] ** 2)
    q, r = pair("reconstruct")
    close("reconstruct params", r["params"], m.params(m.encode(np.array(q["rows"]))[0]))
    q, r = pair("sample")
    z = np.array(r["z"])
    close("sample params", r["params"], m.params(z))
    sd, t = z.std(), q.get("temperature", 1.0)
    if not abs(sd / t - 1) < 0.05:
        fail("sample z: standard deviation %.4f, temperature %.4f" % (sd, t))
    q, r = pair("interpolate")
    mu, _ = m.encode(np.array(q["rows"]))
    a = np.linspace(0, 1, q["steps"])[:, None]
    zl = (1 - a) * mu[0] + a * mu[1]
    close("interpolate z", r["z"], zl)
    close("interpolate params", r["params"], m.params(zl))
    h = read_npy(os.path.join(d, "encode_npy.npy"))
    if h is not None:
        x = read_npy(os.path.join(d, "rows.npy"))
        mu, lv = m.encode(x)
        close("encode .npy [mu | logvar]", h, np.concatenate([mu, lv], axis=1))


def idx_rows(path, n):
    b = gzip.open(path).read()
    _, _, _, nd = struct.unpack_from(">BBBB", b, 0)
    dims = struct.unpack_from(">" + "I" * nd, b, 4)
    w = int(np.prod(dims[1:]))
    return np.frombuffer(b[4 + 4 * nd:4 + 4 * nd + n * w], dtype=np.uint8).reshape(n, w) / 255.0


def iwae(m, x, k, seed, repeats=16):
    """The mean bound over the rows, averaged over `repeats` independent sets of draws,
    and mc_sd: the standard deviation across those sets of the rows' mean bound, the
    Monte-Carlo noise of one estimate over these rows."""
    rng = np.random.default_rng(seed)
    means = [iwae_once(m, x, k, rng) for _ in range(repeats)]
    return float(np.mean(means)), float(np.std(means, ddof=1))


def iwae_once(m, x, k, rng):
    mu, lv = m.encode(x)
    L = mu.shape[1]
    out = []
    for i in range(len(x)):
        eps = rng.standard_normal((k, L))
        z = mu[i] + np.exp(0.5 * lv[i]) * eps
        lw = (m.log_px_z(x[i], m.logits(z))
              - 0.5 * np.sum(z * z, axis=1) + 0.5 * np.sum(eps * eps, axis=1) + 0.5 * np.sum(lv[i]))
        mx = lw.max()
        out.append(mx + np.log(np.mean(np.exp(lw - mx))))
    return float(np.mean(out))


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "serve":
        serve(Model(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) == 7 and sys.argv[1] == "iwae":
        m = Model(sys.argv[2])
        b, sd = iwae(m, idx_rows(sys.argv[3], int(sys.argv[4])), int(sys.argv[5]), int(sys.argv[6]))
        print(json.dumps({"bound": b, "mc_sd": sd}))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
