#!/usr/bin/python3
"""model_numpy.py - an independent NumPy implementation of a vaed model, read from the
safetensors file the daemon exports (format: vae/safetensors.h), used as the oracle of
the serving routes and of `vaed eval`.

    model_numpy.py serve SAFETENSORS DIR      check DIR/<route>.req.json / .json pairs
    model_numpy.py iwae SAFETENSORS IDX_GZ ROWS K SEED   print {"bound", "mc_sd"}
    model_numpy.py serve_text SAFETENSORS WORDS DIR      the same for a text model
    model_numpy.py iwae_text SAFETENSORS WORDS ROWS K SEED

Text models (categorical likelihood): WORDS is the training file, one sequence per line;
the vocabulary is read off it as docs/model.md defines it (symbol 0 is padding, then
every character of the file sorted by code point; the width is the longest line), and
rows are one-hot per position. serve_text checks the routes' string replies too: each
position's most likely symbol, up to the first padding.

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
    def __init__(self, path, vocab=None):
        self.vocab = vocab  # text models: the symbols, "" (padding) first
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

    def log_softmax(self, y):
        V = len(self.vocab)
        y = y.reshape(y.shape[:-1] + (-1, V))
        y = y - y.max(axis=-1, keepdims=True)
        return (y - np.log(np.sum(np.exp(y), axis=-1, keepdims=True))).reshape(y.shape[:-2] + (-1,))

    def params(self, z):
        y = self.logits(z)
        if self.lik == "categorical":
            return np.exp(self.log_softmax(y))
        return 1 / (1 + np.exp(-y)) if self.lik == "bernoulli" else y

    def log_px_z(self, x, y):
        if self.lik == "bernoulli":
            return np.sum(x * y - np.logaddexp(0, y), axis=-1)
        if self.lik == "categorical":
            return np.sum(x * self.log_softmax(y), axis=-1)
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


def text_file(path):
    lines = [l for l in open(path, encoding="utf-8").read().split("\n") if l]
    return lines, [""] + sorted(set("".join(lines))), max(len(l) for l in lines)


def one_hot(strings, vocab, T):
    ids = {c: i for i, c in enumerate(vocab)}
    x = np.zeros((len(strings), T * len(vocab)))
    for r, w in enumerate(strings):
        for t in range(T):  # the positions after the end hold the padding symbol, 0
            x[r, t * len(vocab) + (ids[w[t]] if t < len(w) else 0)] = 1
    return x


def strings_of(p, vocab, T):
    out = []
    for row in np.asarray(p).reshape(len(p), T, len(vocab)):
        w = ""
        for q in row:
            if q.argmax() == 0:
                break
            w += vocab[q.argmax()]
        out.append(w)
    return out


def serve_text(m, words, d):
    lines, vocab, T = text_file(words)
    if int(m.meta["data_width"]) != T * len(vocab):
        fail("data width %s, NumPy reads %d x %d off the file" % (m.meta["data_width"], T, len(vocab)))
        return

    def pair(name):
        return (json.load(open(os.path.join(d, name + ".req.json"))),
                json.load(open(os.path.join(d, name + ".json"))))

    def check_strings(what, r):
        got, want = r["strings"], strings_of(r["params"], vocab, T)
        if got != want:
            fail("%s strings: %s, NumPy's most likely symbols give %s" % (what, got[:5], want[:5]))
    q, r = pair("encode")
    mu, lv = m.encode(one_hot(q["rows"], vocab, T))
    close("text encode mu", r["mu"], mu)
    close("text encode logvar", r["logvar"], lv)
    q, r = pair("decode")
    close("text decode params", r["params"], m.params(np.array(q["z"])))
    check_strings("decode", r)
    q, r = pair("reconstruct")
    close("text reconstruct params", r["params"], m.params(m.encode(one_hot(q["rows"], vocab, T))[0]))
    check_strings("reconstruct", r)
    q, r = pair("sample")
    close("text sample params", r["params"], m.params(np.array(r["z"])))
    check_strings("sample", r)


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
    elif len(sys.argv) == 5 and sys.argv[1] == "serve_text":
        _, vocab, _ = text_file(sys.argv[3])
        serve_text(Model(sys.argv[2], vocab), sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 7 and sys.argv[1] == "iwae_text":
        lines, vocab, T = text_file(sys.argv[3])
        m = Model(sys.argv[2], vocab)
        x = one_hot(lines[:int(sys.argv[4])], vocab, T)
        b, sd = iwae(m, x, int(sys.argv[5]), int(sys.argv[6]))
        print(json.dumps({"bound": b, "mc_sd": sd}))
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
