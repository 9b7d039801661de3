#!/usr/bin/env python
"""Regenerate data/pilotnet_lif.nc (+ data/pilotnet_lif_counts.json) from the lava-dl wheel.

The lava-dl 0.6.0 wheel (PyPI, BSD-3-Clause) carries the PilotNet LIF network
that Intel benchmarked on Loihi 2 (``network.net``) and ground-truth spikes of
every layer for 24 time steps of one image. The wheel only installs on Python
3.10, so it is never installed: it is read as a zip.

    python scripts/make_pilotnet.py                      # pip download into a temp dir
    python scripts/make_pilotnet.py --wheel path/to/lava_dl-0.6.0-py3-none-any.whl

The JSON holds the per-time-step spike counts computed directly from the
wheel's ``.npy`` files (not through the converter), so the tests can check the
committed recording against the ground truth without network access.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from else_dse.record.lava import LIF_GT_DIR, lif_recording, net_layers, read_net

WHEEL = "lava_dl-0.6.0-py3-none-any.whl"
REQ = "lava-dl==0.6.0"
ROOT = Path(__file__).resolve().parents[1]


def fetch_wheel(dest: Path) -> Path:
    """``pip download`` the wheel without installing it (no dependencies)."""
    subprocess.run([sys.executable, "-m", "pip", "download", REQ, "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.10", "-d", str(dest), "-q"], check=True)
    return dest / WHEEL


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_npy(z: zipfile.ZipFile, member: str) -> tuple[np.ndarray, str]:
    raw = z.read(member)
    return np.load(io.BytesIO(raw), allow_pickle=False), sha256(raw)


def synaptic_input(x: np.ndarray, weight: np.ndarray, layer) -> np.ndarray:
    """``(t, c, y, x)`` spikes through a layer's weights (numpy, direct loops over taps)."""
    if layer.op == "fc":
        return np.einsum("tn,on->to", x.reshape(x.shape[0], -1), weight)[:, :, None, None]
    t, b, l, r = layer.padding
    xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
    (sh, sw), (_, ho, wo) = layer.stride, layer.output_shape
    out = np.zeros((x.shape[0], weight.shape[0], ho, wo))
    for i in range(weight.shape[2]):
        for j in range(weight.shape[3]):
            patch = xp[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]
            out += np.einsum("tchw,oc->tohw", patch, weight[:, :, i, j])
    return out


def check_currents(z: zipfile.ZipFile, configs: list, layers, spikes: dict) -> dict[str, float]:
    """Layout check against the wheel's current traces: for every layer, ``u(t)`` (``<layer>-u.npy``)
    must equal ``64 * W * s(t-1)`` of the converted input spikes (Loihi weight scaling 2**6, one
    step of synaptic delay, current decay 4096 = full). Returns the max abs mismatch per layer."""
    from else_dse.record.lava import spikes_to_frames

    weights = [c["weight"] for c in configs if c["type"] in ("conv", "dense")]
    out = {}
    for layer, w in zip(layers, weights):
        x = spikes_to_frames(spikes[layer.input], layer.input_shape, layer.input).astype(np.float64)
        u, _ = load_npy(z, f"{LIF_GT_DIR}/{layer.name}-u.npy")
        u = u.transpose(3, 2, 1, 0) if u.ndim == 4 else u.T[:, :, None, None]
        pred = 64.0 * synaptic_input(x, np.atleast_2d(np.asarray(w, dtype=np.float64)), layer)
        n = min(len(pred) - 1, len(u) - 1)
        out[layer.name] = float(np.abs(pred[:n] - u[1:n + 1]).max())
    return out


def build_lif(wheel: Path, out_dir: Path) -> dict:
    wheel_hash = sha256(wheel.read_bytes())
    with zipfile.ZipFile(wheel) as z:
        net_raw = z.read(f"{LIF_GT_DIR}/network.net")
        configs = read_net(io.BytesIO(net_raw))
        layers = net_layers(configs)
        spikes, hashes = {}, {"network.net": sha256(net_raw)}
        for tensor in dict.fromkeys(layer.input for layer in layers):
            spikes[tensor], hashes[f"{tensor}.npy"] = load_npy(z, f"{LIF_GT_DIR}/{tensor}.npy")
        mismatch = check_currents(z, configs, layers, spikes)
    exact = [k for k, v in mismatch.items() if v == 0]
    attrs = {
        "title": "PilotNet LIF (lava-dl) input spikes of every synaptic layer, one frame per time step",
        "source": f"PyPI {REQ} wheel {WHEEL} (BSD-3-Clause, Intel Corporation), read as a zip",
        "source_sha256": wheel_hash,
        "source_dir": LIF_GT_DIR,
        "source_files_sha256": json.dumps(hashes),
        "layout_conversion": "lava (x, y, c, t) / dense (n, t) -> (t, c, y, x); time step = frame",
        "stimulus": "one image (image.npy) held as the input layer's bias; reset every tSample=16 steps; "
                    "24 steps recorded, i.e. one full sample (steps 0-15) and half of the next",
        "layout_check": "u(t) = 64 * W * s(t-1) holds exactly (current traces <layer>-u.npy) for "
                        + ", ".join(exact) + "; max |mismatch| per layer: " + json.dumps(mismatch),
        "generated_by": "scripts/make_pilotnet.py",
        "generated_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    rec = lif_recording(configs, spikes, attrs=attrs)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = rec.save(out_dir / "pilotnet_lif.nc")
    # Ground-truth counts straight from the lava arrays (last axis = time), not via the converter.
    counts = {
        "source": attrs["source"], "source_sha256": wheel_hash, "source_dir": LIF_GT_DIR,
        "note": "spikes per time step of each layer's input tensor, counted on the wheel's .npy files",
        "tensors": {t: [int(v) for v in np.asarray(a).reshape(-1, np.asarray(a).shape[-1]).sum(0)]
                    for t, a in spikes.items()},
    }
    text = json.dumps(counts, indent=1)
    text = re.sub(r"\[\s+([-0-9,\s]+?)\s+\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text)
    (out_dir / "pilotnet_lif_counts.json").write_text(text + "\n")
    return {"path": str(path), "bytes": path.stat().st_size, "frames": rec.n_frames,
            "current_mismatch": mismatch}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheel", type=Path, help=f"path to {WHEEL} (downloaded with pip if omitted)")
    ap.add_argument("--out", type=Path, default=ROOT / "data", help="output directory (default: data/)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(Path(tmp))
        info = build_lif(wheel, args.out)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
