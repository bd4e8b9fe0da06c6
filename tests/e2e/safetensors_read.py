#!/usr/bin/env python3
"""safetensors_read.py - an independent reader of both checkpoint downloads.

    safetensors_read.py NATIVE SAFETENSORS SPEC_JSON STEP DATA_WIDTH [KEY=VALUE...]

Parses the native blob from the byte layout documented at the top of vae/ckpt.c and
the safetensors file from the published format (u64 LE header length, JSON header
padded with spaces, raw LE data), both with struct + json only, then checks:
  - the native blob: magic, version, length, CRC-32, section sizes, step;
  - the safetensors container: header length a multiple of 8, padding only spaces,
    every tensor F32 with offsets that tile the data section exactly;
  - the tensor names and shapes the spec implies (the naming of vae/safetensors.h,
    spelled out here again), with the data width given on the command line;
  - every value of every tensor equal, bit for bit, to the parameter at the place the
    native layout gives it (layers in order, W (out, in) row-major then b; the latent
    head [mean | logvar], group g owning its rows of each half);
  - __metadata__: every value a string, spec equal to SPEC_JSON, step, format "pt",
    data_width, latent_groups, and each KEY=VALUE given.
Prints what differed and exits 1 on any failure.
"""
import binascii
import json
import struct
import sys

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg, file=sys.stderr)


def read_native(blob):
    """The parameter section of a native blob as a list of 4-byte strings."""
    if len(blob) < 204 or blob[:8] != b"VAEDCKPT":
        raise ValueError("native: not a vaed checkpoint")
    version, hsize, length, step, n = struct.unpack_from("<IIQQQ", blob, 8)
    if version != 1 or hsize != 200:
        raise ValueError("native: version %d, header %d" % (version, hsize))
    if length != len(blob):
        raise ValueError("native: length field %d, file %d" % (length, len(blob)))
    (crc,) = struct.unpack_from("<I", blob, len(blob) - 4)
    if binascii.crc32(blob[:-4]) & 0xFFFFFFFF != crc:
        raise ValueError("native: CRC mismatch")
    (J,) = struct.unpack_from("<I", blob, 60)
    if 200 + J + 12 * n + 4 != len(blob):
        raise ValueError("native: sections do not add up")
    json.loads(blob[200:200 + J].decode())  # the schedule is JSON text
    p0 = 200 + J
    params = [blob[p0 + 4 * i:p0 + 4 * i + 4] for i in range(n)]
    return step, params


def read_safetensors(data):
    """(header dict, data section bytes), checking the container."""
    if len(data) < 8:
        raise ValueError("safetensors: %d bytes" % len(data))
    (N,) = struct.unpack_from("<Q", data, 0)
    if N % 8:
        fail("header length %d is not a multiple of 8" % N)
    if 8 + N > len(data):
        raise ValueError("safetensors: header length %d past the end" % N)
    raw = data[8:8 + N]
    text = raw.rstrip(b" ")
    if N - len(text) >= 8:
        fail("%d bytes of padding" % (N - len(text)))
    if not text.startswith(b"{"):
        fail("header does not start with '{'")
    pairs = json.loads(text.decode("utf-8"), object_pairs_hook=lambda kv: kv)
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        fail("duplicate keys in the header")
    header = dict(pairs)
    body = data[8 + N:]
    spans = []
    for name, t in header.items():
        if name == "__metadata__":
            t = dict(t)
            header[name] = t
            for k, v in t.items():
                if not isinstance(v, str):
                    fail("metadata %s is not a string: %r" % (k, v))
            continue
        t = dict(t)
        header[name] = t
        if set(t) != {"dtype", "shape", "data_offsets"}:
            fail("%s: keys %s" % (name, sorted(t)))
        if t.get("dtype") != "F32":
            fail("%s: dtype %r" % (name, t.get("dtype")))
        b, e = t["data_offsets"]
        count = 1
        for d in t["shape"]:
            count *= d
        if e - b != 4 * count:
            fail("%s: offsets [%d, %d) for shape %s" % (name, b, e, t["shape"]))
        spans.append((b, e, name))
    spans.sort()
    at = 0
    for b, e, name in spans:
        if b != at:
            fail("%s begins at %d, previous ended at %d" % (name, b, at))
        at = e
    if at != len(body):
        fail("tensors cover %d bytes, data section has %d" % (at, len(body)))
    return header, body


def expected_tensors(spec, D):
    """[(name, shape, [parameter indices])] in the native layout, from the spec."""
    model = spec["model"]
    enc, dec = model["encoder"], model["decoder"]
    groups = model["latent"] if isinstance(model["latent"], list) else [model["latent"]]
    L = sum(groups)
    layers = []  # (kind, index, in, out)
    prev = D
    for i, h in enumerate(enc):
        layers.append(("encoder", i, prev, h))
        prev = h
    layers.append(("head", 0, prev, 2 * L))
    prev = L
    for i, h in enumerate(dec):
        layers.append(("decoder", i, prev, h))
        prev = h
    layers.append(("output", 0, prev, D))
    out, off = [], 0
    for kind, i, fan_in, fan_out in layers:
        w, b = off, off + fan_in * fan_out
        off = b + fan_out

        def rows(r0, nr, w=w, fan_in=fan_in):
            return [w + r * fan_in + c for r in range(r0, r0 + nr) for c in range(fan_in)]

        if kind in ("encoder", "decoder"):
            out.append(("%s.%d.weight" % (kind, 2 * i), [fan_out, fan_in], rows(0, fan_out)))
            out.append(("%s.%d.bias" % (kind, 2 * i), [fan_out], list(range(b, b + fan_out))))
        elif kind == "output":
            out.append(("output.weight", [fan_out, fan_in], rows(0, fan_out)))
            out.append(("output.bias", [fan_out], list(range(b, b + fan_out))))
        else:
            g0 = 0
            for g, lg in enumerate(groups):
                sfx = ".%d" % g if len(groups) > 1 else ""
                out.append(("z_mean%s.weight" % sfx, [lg, fan_in], rows(g0, lg)))
                out.append(("z_mean%s.bias" % sfx, [lg], list(range(b + g0, b + g0 + lg))))
                out.append(("z_logvar%s.weight" % sfx, [lg, fan_in], rows(L + g0, lg)))
                out.append(("z_logvar%s.bias" % sfx, [lg],
                            list(range(b + L + g0, b + L + g0 + lg))))
                g0 += lg
    return out, off


def main():
    if len(sys.argv) < 6:
        print(__doc__, file=sys.stderr)
        return 2
    native_path, st_path, spec_path, step, D = sys.argv[1:6]
    step, D = int(step), int(D)
    with open(native_path, "rb") as f:
        native = f.read()
    with open(st_path, "rb") as f:
        st = f.read()
    with open(spec_path) as f:
        spec = json.load(f)
    nstep, params = read_native(native)
    if nstep != step:
        fail("native blob is of step %d, asked for %d" % (nstep, step))
    header, body = read_safetensors(st)
    want, n_layout = expected_tensors(spec, D)
    if n_layout != len(params):
        fail("the spec's layout has %d parameters, the native blob %d" % (n_layout, len(params)))
    names = [k for k in header if k != "__metadata__"]
    if sorted(names) != sorted(w[0] for w in want):
        fail("tensor names %s, expected %s" % (sorted(names), sorted(w[0] for w in want)))
    values = 0
    for name, shape, idx in want:
        t = header.get(name)
        if t is None:
            continue
        if t["shape"] != shape:
            fail("%s: shape %s, expected %s" % (name, t["shape"], shape))
            continue
        b = t["data_offsets"][0]
        bad = [j for j, p in enumerate(idx)
               if p >= len(params) or body[b + 4 * j:b + 4 * j + 4] != params[p]]
        if bad:
            j = bad[0]
            got = struct.unpack_from("<f", body, b + 4 * j)[0]
            exp = struct.unpack("<f", params[idx[j]])[0] if idx[j] < len(params) else None
            fail("%s: %d of %d values differ; first at flat index %d: %r, native %r"
                 % (name, len(bad), len(idx), j, got, exp))
        values += len(idx)
    if values != len(params):
        fail("tensors hold %d values, the model has %d parameters" % (values, len(params)))

    md = header.get("__metadata__", {})
    try:
        if json.loads(md.get("spec", "null")) != spec:
            fail("metadata spec %s differs from the job's %s" % (md.get("spec"), json.dumps(spec)))
    except ValueError as e:
        fail("metadata spec is not JSON: %s" % e)
    groups = spec["model"]["latent"]
    groups = groups if isinstance(groups, list) else [groups]
    wants = {"step": str(step), "format": "pt", "data_width": str(D),
             "latent_groups": json.dumps(groups, separators=(",", ":")),
             "likelihood": spec["model"]["likelihood"],
             "activation": spec["model"]["activation"]}
    for kv in sys.argv[6:]:
        k, v = kv.split("=", 1)
        wants[k] = v
    for k, v in wants.items():
        if md.get(k) != v:
            fail("metadata %s = %r, expected %r" % (k, md.get(k), v))
    print("%s: %d tensors, %d values, step %d: %s" % (st_path, len(names), values, step,
                                                    "ok" if not failures else "FAILED"))
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, KeyError, struct.error) as e:
        print("FAIL: %s" % e, file=sys.stderr)
        sys.exit(1)
