"""Train the library's StyleGAN2 (:mod:`gan_fast.models`) at small resolution.

Usage::

    python -m gan_fast.examples.train_stylegan2 --steps 300                     # procedural shapes, no download
    python -m gan_fast.examples.train_stylegan2 --data DIR --resolution 32      # a folder of images
    python -m gan_fast.examples.train_stylegan2 --resume RUN/checkpoint-000300.pt --steps 600

Data: with no ``--data``, a procedurally generated dataset that ships as code:
coloured discs, rings and polygons on gradient backgrounds, drawn with torch,
image ``i`` a deterministic function of ``(--seed, i)``. With ``--data DIR``,
every image under DIR (recursively) is centre-cropped to a square, resized to
``--resolution`` and kept in memory; files with other extensions are ignored
and counted. PNGs (8-bit, non-interlaced: grey, RGB, palette, with or without
alpha) are read by a built-in zlib reader when Pillow is not installed; other
formats (.jpg, .bmp, .webp, ...) need Pillow, which is used for every file
when it is installed.

Training: :class:`gan_fast.models.StyleGAN2Trainer` (non-saturating loss, lazy
R1 every ``--r1-interval`` steps, lazy path length every ``--pl-interval``
steps, style mixing, an EMA of G). Every ``--log-every`` steps a progress line
gives the mean G and D losses since the last line, R1 and path length when
they ran, seconds per step and images per second. Every ``--sample-every``
steps ``samples-STEP.png`` (a grid from a fixed z, G EMA, constant noise) is
written to ``--out``, every ``--checkpoint-every`` steps ``checkpoint-STEP.pt``
(G, D, G EMA, both optimisers, the path length target, counters, the RNG
state and the configuration); both are also written after the last step.
``--resume`` continues such a checkpoint up to ``--steps`` (a total, not a
count of more steps), bit-identically on the same device and thread count;
options that define the model or the training configuration come from the
checkpoint, and one given on the command line that differs is an error.

``--device`` defaults to CUDA when available; ``--impl`` forces one gan_fast backend for every op
that has it, for the whole run (:func:`gan_fast.config.use_backend`; the models take no ``impl``).
Bad input (a missing or empty folder, a folder without readable images, a resolution that is not
a power of two >= 8, a ``--resume`` checkpoint of another configuration, ...) stops with one line
naming the problem. PNGs are written with ``zlib`` + ``struct`` (no image library needed).
"""

from __future__ import annotations

import argparse
import math
import os
import struct
import time
import zlib
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence

import torch
import torch.nn.functional as F

from .. import backend
from ..config import use_backend
from ..models import Discriminator, Generator, StyleGAN2Trainer, make_adam

__all__ = ["write_png", "read_png", "PNGError", "ShapesDataset", "FolderDataset", "image_grid", "main"]

PROG = "python -m gan_fast.examples.train_stylegan2"
CHECKPOINT_FORMAT = "gan_fast.examples.train_stylegan2"
CHECKPOINT_VERSION = 1
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
PILLOW_HINT = "reading an image folder needs Pillow: pip install pillow"

# The configuration: defines the model and the training; stored in checkpoints and
# restored by --resume (a value given on the command line must agree with the checkpoint).
DEFAULTS = dict(
    resolution=32, z_dim=64, w_dim=64, mapping_layers=2, channel_base=2048, channel_max=64,
    batch=8, lr=0.0025, gamma=None, r1_interval=16, pl_weight=2.0, pl_interval=4, mixing=0.9,
    ema_kimg=None, seed=0, synthetic_size=10000,
)
MODEL_KEYS = ("resolution", "z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max")


# ---------------------------------------------------------------------------------------------
# PNG: a writer and a small reader, zlib + struct only.
# ---------------------------------------------------------------------------------------------
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel


class PNGError(ValueError):
    """A file the built-in PNG reader cannot read (not a PNG, damaged, or an unsupported variant)."""


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png(path: str, image: torch.Tensor) -> None:
    """Writes ``image`` (uint8, [H, W] or [H, W, C] with C in 1, 3, 4) as an 8-bit PNG:
    signature, IHDR, one IDAT (zlib of the scanlines, each with filter byte 0), IEND."""
    if not isinstance(image, torch.Tensor) or image.dtype != torch.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"image must be a uint8 tensor [H, W] or [H, W, C], got {getattr(image, 'shape', image)}")
    if image.ndim == 2:
        image = image.unsqueeze(-1)
    h, w, c = image.shape
    color = {1: 0, 3: 2, 4: 6}.get(c)
    if color is None or h == 0 or w == 0:
        raise ValueError(f"image must have 1, 3 or 4 channels and a non-empty size, got {tuple(image.shape)}")
    rows = torch.cat([torch.zeros(h, 1, dtype=torch.uint8), image.detach().cpu().reshape(h, w * c)], dim=1)
    raw = bytes(rows.contiguous().flatten().tolist())
    data = (_PNG_SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b""))
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _unfilter(raw: bytes, h: int, stride: int, bpp: int) -> bytearray:
    out = bytearray(h * stride)
    prev = bytearray(stride)
    pos = 0
    for y in range(h):
        ft = raw[pos]
        line = bytearray(raw[pos + 1:pos + 1 + stride])
        pos += stride + 1
        if ft == 1:  # Sub
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif ft == 2:  # Up
            line = bytearray(bytes((torch.frombuffer(line, dtype=torch.uint8)
                                    + torch.frombuffer(prev, dtype=torch.uint8)).tolist())) if stride else line
        elif ft == 3:  # Average
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ft == 4:  # Paeth
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        elif ft != 0:
            raise PNGError(f"bad scanline filter type {ft} in row {y}")
        out[y * stride:(y + 1) * stride] = line
        prev = line
    return out


def read_png(path: str) -> torch.Tensor:
    """Reads an 8-bit, non-interlaced PNG (grey, RGB, palette, grey+alpha, RGBA) into a uint8
    tensor [H, W, 3] (alpha dropped, grey repeated). Raises :class:`PNGError` otherwise."""
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(_PNG_SIGNATURE):
        raise PNGError("not a PNG file (bad signature)")
    pos, header, palette, idat = len(_PNG_SIGNATURE), None, None, []
    while True:
        if pos + 8 > len(data):
            raise PNGError("truncated (no IEND chunk)")
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        crc = data[pos + 8 + length:pos + 12 + length]
        if len(body) != length or len(crc) != 4:
            raise PNGError(f"truncated {kind!r} chunk")
        if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body) & 0xFFFFFFFF:
            raise PNGError(f"CRC mismatch in the {kind.decode('latin-1')} chunk")
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise PNGError("no IHDR chunk")
    w, h, depth, color, _, _, interlace = header
    if depth != 8 or color not in _COLOR_CHANNELS or interlace != 0:
        raise PNGError(f"unsupported PNG variant (bit depth {depth}, colour type {color}, interlace {interlace}); "
                       "the built-in reader reads 8-bit non-interlaced PNGs")
    c = _COLOR_CHANNELS[color]
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as exc:
        raise PNGError(f"damaged image data ({exc})") from None
    if len(raw) != h * (w * c + 1):
        raise PNGError(f"image data has {len(raw)} bytes, expected {h * (w * c + 1)} for {w}x{h}")
    px = torch.frombuffer(_unfilter(raw, h, w * c, c), dtype=torch.uint8).reshape(h, w, c)
    if color == 3:
        if palette is None or len(palette) % 3:
            raise PNGError("palette image without a valid PLTE chunk")
        table = torch.frombuffer(bytearray(palette), dtype=torch.uint8).reshape(-1, 3)
        if int(px.max()) >= len(table):
            raise PNGError("palette index out of range")
        return table[px[..., 0].long()]
    if c in (1, 2):
        return px[..., :1].expand(h, w, 3).contiguous()
    return px[..., :3].contiguous()


def image_grid(images: torch.Tensor, cols: int) -> torch.Tensor:
    """images [N, C, R, R] in [-1, 1] -> uint8 [rows*R, cols*R, C], row-major, no padding."""
    n, c, r, _ = images.shape
    rows = math.ceil(n / cols)
    if rows * cols > n:
        images = torch.cat([images, images.new_full([rows * cols - n, c, r, r], -1.0)])
    x = ((images.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.reshape(rows, cols, c, r, r).permute(0, 3, 1, 4, 2).reshape(rows * r, cols * r, c)


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def _hsv(h: float, s: float, v: float) -> torch.Tensor:
    k = (torch.tensor([5.0, 3.0, 1.0]) + h * 6) % 6
    return v - v * s * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


class ShapesDataset:
    """``size`` procedurally drawn images (deterministic in ``(seed, index)``): a linear gradient
    background and one or two discs, rings, triangles, squares or hexagons of saturated colours,
    antialiased by 4x supersampling. ``images(indices)`` -> [N, 3, R, R] in [-1, 1]."""

    KINDS = ("disc", "ring", "triangle", "square", "hexagon")

    def __init__(self, resolution: int, size: int = 10000, seed: int = 0):
        self.resolution, self.size, self.seed = resolution, size, seed
        self.ss = 4 if resolution <= 64 else 2
        n = resolution * self.ss
        t = torch.linspace(-1 + 1 / n, 1 - 1 / n, n)
        self.ys, self.xs = torch.meshgrid(t, t, indexing="ij")

    def __len__(self) -> int:
        return self.size

    def describe(self) -> str:
        return f"procedural shapes ({self.size} images, seed {self.seed}; no --data)"

    def render(self, index: int) -> torch.Tensor:
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + index) % (2 ** 63))

        def u(lo: float = 0.0, hi: float = 1.0) -> float:
            return lo + (hi - lo) * float(torch.rand([], generator=g))

        xs, ys = self.xs, self.ys
        a = u(0, 2 * math.pi)
        t = ((xs * math.cos(a) + ys * math.sin(a)) / math.sqrt(2) + 1) / 2
        h0 = u()
        c0, c1 = _hsv(h0, u(0.2, 0.6), u(0.2, 0.6)), _hsv((h0 + u(0.1, 0.4)) % 1, u(0.2, 0.6), u(0.5, 0.9))
        img = c0[:, None, None] * (1 - t) + c1[:, None, None] * t
        for _ in range(1 + int(torch.randint(0, 2, [], generator=g))):
            kind = self.KINDS[int(torch.randint(0, len(self.KINDS), [], generator=g))]
            cx, cy, r, rot = u(-0.45, 0.45), u(-0.45, 0.45), u(0.25, 0.55), u(0, 2 * math.pi)
            colour = _hsv(u(), u(0.6, 1.0), u(0.75, 1.0))
            dx, dy = xs - cx, ys - cy
            dist = torch.sqrt(dx * dx + dy * dy)
            if kind == "disc":
                mask = dist < r
            elif kind == "ring":
                mask = (dist - 0.75 * r).abs() < 0.22 * r
            else:
                k = {"triangle": 3, "square": 4, "hexagon": 6}[kind]
                sector = 2 * math.pi / k
                ang = torch.remainder(torch.atan2(dy, dx) - rot, sector) - sector / 2
                mask = dist * torch.cos(ang) < r * math.cos(math.pi / k)
            img = torch.where(mask, colour[:, None, None], img)
        img = F.avg_pool2d(img.unsqueeze(0), self.ss)[0]
        return img * 2 - 1

    def images(self, indices: Sequence[int]) -> torch.Tensor:
        return torch.stack([self.render(int(i)) for i in indices])


def _load_pillow():
    try:
        from PIL import Image  # noqa: PLC0415
    except ImportError:
        return None
    return Image


def _to_square(img: torch.Tensor, resolution: int) -> torch.Tensor:
    """uint8 [H, W, 3] -> uint8 [3, R, R]: centre crop to a square, antialiased resize."""
    h, w, _ = img.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    x = img[top:top + s, left:left + s].permute(2, 0, 1).float().unsqueeze(0)
    if s != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False,
                          antialias=s > resolution)
    return x[0].round().clamp(0, 255).to(torch.uint8)


class FolderDataset:
    """Every image under ``root`` (recursively), square-cropped and resized to ``resolution``,
    held in memory as uint8. ``images(indices)`` -> [N, 3, R, R] in [-1, 1].

    Raises ``ValueError`` with a one-line message for a missing or empty folder, a folder
    without images, non-PNG images without Pillow, or an image that cannot be read."""

    def __init__(self, root: str, resolution: int):
        if not os.path.exists(root):
            raise ValueError(f"--data {root}: no such folder")
        if not os.path.isdir(root):
            raise ValueError(f"--data {root}: not a folder")
        files, ignored = [], 0
        for dirpath, dirnames, names in os.walk(root):
            dirnames.sort()
            for name in sorted(names):
                if name.lower().endswith(IMAGE_EXTENSIONS):
                    files.append(os.path.join(dirpath, name))
                else:
                    ignored += 1
        if not files:
            what = "is empty" if ignored == 0 else f"has no images ({ignored} other files ignored)"
            raise ValueError(f"--data {root}: the folder {what}; looked for {', '.join(IMAGE_EXTENSIONS)}")
        pil = _load_pillow()
        if pil is None:
            other = [f for f in files if not f.lower().endswith(".png")]
            if other:
                raise ValueError(f"{PILLOW_HINT} ({len(other)} non-PNG images under {root}, e.g. "
                                 f"{os.path.relpath(other[0], root)}; PNGs are read without it)")
        out = torch.empty(len(files), 3, resolution, resolution, dtype=torch.uint8)
        for i, path in enumerate(files):
            out[i] = _to_square(self._read(path, pil), resolution)
        self.root, self.resolution, self.data, self.ignored = root, resolution, out, ignored
        self.reader = "Pillow" if pil is not None else "built-in PNG reader"

    @staticmethod
    def _read(path: str, pil) -> torch.Tensor:
        try:
            if pil is None:
                return read_png(path)
            with pil.open(path) as im:
                im = im.convert("RGB")
                w, h = im.size
                return torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8).reshape(h, w, 3)
        except PNGError as exc:
            raise ValueError(f"cannot read {path}: {exc}; install Pillow (pip install pillow) for other "
                             "PNG variants") from None
        except Exception as exc:  # Pillow's errors, OSError
            raise ValueError(f"cannot read {path}: {exc}") from None

    def __len__(self) -> int:
        return len(self.data)

    def describe(self) -> str:
        ignored = f", {self.ignored} other files ignored" if self.ignored else ""
        return f"{self.root} ({len(self.data)} images{ignored}; read with {self.reader})"

    def images(self, indices: Sequence[int]) -> torch.Tensor:
        return self.data[torch.as_tensor(list(indices), dtype=torch.long)].float() / 127.5 - 1


class StepSampler:
    """The batch of a step depends only on (seed, step): sample ``p = step * batch + j`` is item
    ``perm_e[p % N]`` of the shuffled epoch ``e = p // N``. So a resumed run sees the same data."""

    def __init__(self, n: int, batch: int, seed: int):
        self.n, self.batch, self.seed = n, batch, seed
        self._perms: Dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            if len(self._perms) > 4:
                self._perms.clear()
            g = torch.Generator().manual_seed(self.seed * 7919 + epoch + 1)
            self._perms[epoch] = torch.randperm(self.n, generator=g)
        return self._perms[epoch]

    def indices(self, step: int) -> List[int]:
        start = step * self.batch
        return [int(self._perm(p // self.n)[p % self.n]) for p in range(start, start + self.batch)]


# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage block
        raise SystemExit(f"{self.prog}: error: {message}")


def _fail(message: str):
    raise SystemExit(f"{PROG}: error: {message}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Train gan_fast.models' StyleGAN2 at small resolution on a folder of images "
                "or, with no --data, on procedurally drawn shapes. See the module docstring for details.",
                epilog="Defaults in brackets. With --resume, the configuration options default to the "
                "checkpoint's values.")
    d = DEFAULTS
    p.add_argument("--data", metavar="DIR",
                   help="folder of training images (recursively; .png read without Pillow, other formats "
                        "need Pillow). Default: a procedurally generated shapes dataset, no download")
    p.add_argument("--out", metavar="DIR", help="where samples and checkpoints go [stylegan2-run, or the "
                   "--resume checkpoint's folder]")
    p.add_argument("--resume", metavar="PATH", help="a checkpoint-STEP.pt to continue (to --steps in total)")
    p.add_argument("--steps", type=int, default=500, metavar="N", help="total training steps (counted from 0) [500]")
    p.add_argument("--sample-every", type=int, default=100, metavar="N", help="write samples-STEP.png every N "
                   "steps and after the last [100]")
    p.add_argument("--checkpoint-every", type=int, default=500, metavar="N", help="write checkpoint-STEP.pt "
                   "every N steps and after the last [500]")
    p.add_argument("--log-every", type=int, default=10, metavar="N", help="a progress line every N steps [10]")
    p.add_argument("--grid", type=int, default=8, metavar="K", help="samples-STEP.png is a KxK grid [8]")
    p.add_argument("--device", help="cpu, cuda, cuda:1, ... [cuda if available, else cpu]")
    p.add_argument("--impl", choices=("ref", "triton", "cpp", "cuda"),
                   help="force one gan_fast backend for every op that has it [automatic choice]")
    p.add_argument("--threads", type=int, default=0, metavar="N", help="torch.set_num_threads on CPU (0: torch's default)")
    g = p.add_argument_group("configuration (stored in checkpoints; --resume restores it)")
    g.add_argument("--resolution", type=int, metavar="R", help=f"image size, a power of two >= 8 [{d['resolution']}]")
    g.add_argument("--batch", type=int, metavar="N", help=f"batch size; a multiple of 4 (minibatch std groups) or < 4 "
                   f"[{d['batch']}]")
    g.add_argument("--seed", type=int, metavar="N", help=f"weights, fixed sample z, data order and procedural data "
                   f"[{d['seed']}]")
    g.add_argument("--z-dim", type=int, metavar="N", help=f"[{d['z_dim']}]")
    g.add_argument("--w-dim", type=int, metavar="N", help=f"[{d['w_dim']}]")
    g.add_argument("--mapping-layers", type=int, metavar="N", help=f"[{d['mapping_layers']}]")
    g.add_argument("--channel-base", type=int, metavar="N", help=f"channels at resolution r: min(base // r, max) "
                   f"[{d['channel_base']}]")
    g.add_argument("--channel-max", type=int, metavar="N", help=f"[{d['channel_max']}]")
    g.add_argument("--lr", type=float, metavar="X", help=f"Adam learning rate of G and D [{d['lr']}]")
    g.add_argument("--gamma", type=float, metavar="X", help="R1 weight (penalty gamma/2 * R1; 0: off) "
                   "[StyleGAN2-ADA's heuristic 0.0002 * resolution**2 / batch]")
    g.add_argument("--r1-interval", type=int, metavar="N", help=f"lazy R1 every N steps [{d['r1_interval']}]")
    g.add_argument("--pl-weight", type=float, metavar="X", help=f"path length weight (0: off) [{d['pl_weight']}]")
    g.add_argument("--pl-interval", type=int, metavar="N", help=f"lazy path length every N steps [{d['pl_interval']}]")
    g.add_argument("--mixing", type=float, metavar="P", help=f"style mixing probability [{d['mixing']}]")
    g.add_argument("--ema-kimg", type=float, metavar="X", help="half-life of G's EMA in thousands of images (0: no EMA) "
                   "[batch * 10 / 32, with StyleGAN2-ADA's ramp-up 0.05]")
    g.add_argument("--synthetic-size", type=int, metavar="N", help=f"images in the procedural dataset [{d['synthetic_size']}]")
    return p


def _validate(cfg: dict) -> None:
    r = cfg["resolution"]
    if r < 8 or r & (r - 1):
        _fail(f"--resolution must be a power of two >= 8 (the discriminator's smallest), got {r}")
    b = cfg["batch"]
    if b < 1 or (b >= 4 and b % 4):
        _fail(f"--batch must be 1, 2, 3 or a multiple of 4 (the minibatch std group size), got {b}")
    for key in ("z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max", "r1_interval", "pl_interval",
                "synthetic_size"):
        if cfg[key] < 1:
            _fail(f"--{key.replace('_', '-')} must be >= 1, got {cfg[key]}")
    for key in ("lr", "gamma", "pl_weight", "ema_kimg"):
        if not (math.isfinite(cfg[key]) and cfg[key] >= 0):
            _fail(f"--{key.replace('_', '-')} must be a finite number >= 0, got {cfg[key]}")
    if not 0 <= cfg["mixing"] <= 1:
        _fail(f"--mixing must be in [0, 1], got {cfg['mixing']}")


def _fill_defaults(cfg: dict) -> dict:
    cfg = dict(cfg)
    for k, v in DEFAULTS.items():
        if cfg.get(k) is None and v is not None:
            cfg[k] = v
    if cfg.get("gamma") is None:
        cfg["gamma"] = 0.0002 * cfg["resolution"] ** 2 / cfg["batch"]
    if cfg.get("ema_kimg") is None:
        cfg["ema_kimg"] = cfg["batch"] * 10 / 32
    return cfg


def _load_checkpoint(path: str) -> dict:
    if not os.path.isfile(path):
        _fail(f"--resume {path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one line
        _fail(f"--resume {path}: not a readable checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0]})")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        _fail(f"--resume {path}: not a train_stylegan2 checkpoint")
    if state.get("version") != CHECKPOINT_VERSION:
        _fail(f"--resume {path}: checkpoint version {state.get('version')}, this script reads {CHECKPOINT_VERSION}")
    return state


def _resolve_device(name: Optional[str]) -> torch.device:
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        _fail(f"--device {name}: not a device (cpu, cuda, cuda:1, ...)")
    if device.type == "cuda" and not torch.cuda.is_available():
        _fail(f"--device {name}: CUDA is not available here")
    if device.type not in ("cpu", "cuda"):
        _fail(f"--device {name}: only cpu and cuda are supported")
    return device


@contextmanager
def _use_backend(impl: Optional[str]) -> Iterator[None]:
    """Forces ``impl`` for every gan_fast op inside (None: the automatic choice). The models take no
    ``impl`` argument, so the choice is made for the whole run, with :func:`gan_fast.config.use_backend`."""
    if impl is None:
        yield
        return
    with use_backend(impl):
        yield


def _build(cfg: dict, device: torch.device) -> StyleGAN2Trainer:
    torch.manual_seed(cfg["seed"])
    common = dict(img_resolution=cfg["resolution"], img_channels=3, channel_base=cfg["channel_base"],
                  channel_max=cfg["channel_max"])
    G = Generator(z_dim=cfg["z_dim"], c_dim=0, w_dim=cfg["w_dim"],
                  mapping_kwargs=dict(num_layers=cfg["mapping_layers"]), **common).to(device)
    D = Discriminator(c_dim=0, **common).to(device)
    pl_on = cfg["pl_weight"] > 0
    G_opt = make_adam(G.parameters(), lr=cfg["lr"], betas=(0, 0.99), reg_interval=cfg["pl_interval"] if pl_on else None)
    D_opt = make_adam(D.parameters(), lr=cfg["lr"], betas=(0, 0.99),
                      reg_interval=cfg["r1_interval"] if cfg["gamma"] > 0 else None)
    return StyleGAN2Trainer(G, D, G_opt, D_opt, r1_gamma=cfg["gamma"], r1_interval=cfg["r1_interval"],
                            pl_weight=cfg["pl_weight"], pl_interval=cfg["pl_interval"],
                            style_mixing_prob=cfg["mixing"],
                            ema_kimg=cfg["ema_kimg"] if cfg["ema_kimg"] > 0 else None,
                            ema_rampup=0.05 if cfg["ema_kimg"] > 0 else None)


@torch.no_grad()
def _samples(trainer: StyleGAN2Trainer, z: torch.Tensor) -> torch.Tensor:
    G = trainer.G_ema if trainer.G_ema is not None else trainer.G
    was_training = G.training
    G.eval()
    try:
        return torch.cat([G(chunk, None, noise_mode="const") for chunk in z.split(64)])
    finally:
        G.train(was_training)


def _save_checkpoint(path: str, trainer: StyleGAN2Trainer, cfg: dict, data: Optional[str]) -> None:
    state = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": cfg, "data": data,
             "trainer": trainer.state_dict()}
    tmp = f"{path}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def _count(module: torch.nn.Module) -> str:
    n = sum(p.numel() for p in module.parameters())
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"


def main(argv: Optional[Sequence[str]] = None) -> StyleGAN2Trainer:
    """Runs the command line; returns the trainer. Bad input raises ``SystemExit`` with one line."""
    args = _parser().parse_args(argv)
    for name in ("steps", "sample_every", "checkpoint_every", "log_every", "grid", "threads"):
        low = 0 if name in ("steps", "threads") else 1
        if getattr(args, name) < low:
            _fail(f"--{name.replace('_', '-')} must be >= {low}, got {getattr(args, name)}")
    given = {k: getattr(args, k) for k in DEFAULTS if getattr(args, k) is not None}

    state = None
    data_arg = args.data
    if args.resume is not None:
        state = _load_checkpoint(args.resume)
        saved = state["config"]
        diff = [f"{k} {saved.get(k)!r} in the checkpoint, {v!r} given" for k, v in given.items()
                if saved.get(k) != v and not (isinstance(v, float) and math.isclose(v, saved.get(k) or 0.0))]
        if diff:
            _fail(f"--resume {args.resume}: configuration mismatch: {'; '.join(diff)} "
                  "(a checkpoint resumes only its own configuration)")
        missing = [k for k in DEFAULTS if k not in saved]
        if missing:
            _fail(f"--resume {args.resume}: the checkpoint's configuration lacks {', '.join(missing)}")
        cfg = {k: saved[k] for k in DEFAULTS}
        if data_arg is None:
            data_arg = state.get("data")
        out = args.out or os.path.dirname(os.path.abspath(args.resume))
    else:
        cfg = _fill_defaults(given)
        out = args.out or "stylegan2-run"
    _validate(cfg)
    device = _resolve_device(args.device)
    if args.impl is not None:
        impl = backend.normalize_impl(args.impl)
        ok, why = backend.available_backends(device)[impl]
        if not ok:
            _fail(f"--impl {args.impl} cannot run on {device.type}: {why}")

    try:
        dataset = FolderDataset(data_arg, cfg["resolution"]) if data_arg is not None else \
            ShapesDataset(cfg["resolution"], cfg["synthetic_size"], cfg["seed"])
    except ValueError as exc:
        from_ckpt = " (the --data of the checkpoint)" if args.data is None and data_arg is not None else ""
        _fail(f"{exc}{from_ckpt}")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        _fail(f"--out {out}: cannot create the folder ({exc.strerror})")

    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        with _use_backend(args.impl):
            return _train(args, cfg, state, dataset, data_arg, device, out)
    finally:
        torch.set_num_threads(threads)


def _train(args, cfg: dict, state: Optional[dict], dataset, data_arg: Optional[str], device: torch.device,
           out: str) -> StyleGAN2Trainer:
    trainer = _build(cfg, device)
    if state is not None:
        tstate = dict(state["trainer"])
        if device.type != "cuda":
            tstate.pop("rng_cuda", None)  # a GPU run resumed on CPU: the CPU RNG state is restored
        try:
            trainer.load_state_dict(tstate)
        except (RuntimeError, KeyError, ValueError) as exc:
            _fail(f"--resume {args.resume}: the checkpoint does not fit this model "
                  f"({str(exc).splitlines()[0]})")
    start = trainer.step_count
    R, batch = cfg["resolution"], cfg["batch"]
    sampler = StepSampler(len(dataset), batch, cfg["seed"])
    z = torch.randn([args.grid ** 2, cfg["z_dim"]], generator=torch.Generator().manual_seed(cfg["seed"])).to(device)

    impl = args.impl or "auto"
    resumed = f", resumed from {args.resume} at step {start}" if state is not None else ""
    print(f"train_stylegan2: {R}x{R}, data {dataset.describe()}", flush=True)
    print(f"train_stylegan2: G {_count(trainer.G)} / D {_count(trainer.D)} parameters, batch {batch}, "
          f"lr {cfg['lr']:g}, R1 gamma {cfg['gamma']:.4g} every {cfg['r1_interval']}, path length "
          f"{cfg['pl_weight']:g} every {cfg['pl_interval']}, EMA {cfg['ema_kimg']:g} kimg; device {device}, "
          f"impl {impl}, {torch.get_num_threads()} threads; out {out}{resumed}", flush=True)
    if start == 0:  # the first grid**2 training images, for comparison with the samples
        n = args.grid ** 2
        idx = [i for s in range(-(-n // batch)) for i in sampler.indices(s)][:n]
        write_png(os.path.join(out, "reals.png"), image_grid(dataset.images(idx), args.grid))
    if start >= args.steps:
        print(f"train_stylegan2: at step {start}, --steps is {args.steps}: nothing to do", flush=True)
        return trainer

    counts: Dict[str, int] = {}
    acc: Dict[str, torch.Tensor] = {}
    t_last, steps_since = time.perf_counter(), 0

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for step in range(start, args.steps):
        real = dataset.images(sampler.indices(step)).to(device, non_blocking=True)
        stats = trainer.step(real)
        for k, v in stats.items():
            acc[k] = acc[k] + v if k in acc else v.clone()
            counts[k] = counts.get(k, 0) + 1
        steps_since += 1
        done = trainer.step_count
        last = done == args.steps
        if done % args.log_every == 0 or last:
            sync()
            now = time.perf_counter()
            sums = {k: float(v) / counts[k] for k, v in acc.items()}
            bad = [k for k, v in sums.items() if not math.isfinite(v)]
            sec = (now - t_last) / steps_since
            parts = [f"step {done:>6d}/{args.steps}", f"kimg {trainer.nimg / 1000:8.3f}",
                     f"G {sums.get('loss_G', float('nan')):7.4f}", f"D {sums.get('loss_D', float('nan')):7.4f}"]
            if "r1" in sums:
                parts.append(f"R1 {sums['r1']:.4g}")
            if "pl" in sums:
                parts.append(f"PL {sums['pl']:.4g}")
            parts += [f"{sec:.3f} s/step", f"{batch / sec:.1f} img/s"]
            print("  ".join(parts), flush=True)
            if bad:
                _fail(f"training diverged at step {done}: non-finite {', '.join(bad)}")
            acc, counts, t_last, steps_since = {}, {}, time.perf_counter(), 0
        io_start = time.perf_counter()
        if done % args.sample_every == 0 or last:
            write_png(os.path.join(out, f"samples-{done:06d}.png"), image_grid(_samples(trainer, z), args.grid))
        if done % args.checkpoint_every == 0 or last:
            _save_checkpoint(os.path.join(out, f"checkpoint-{done:06d}.pt"), trainer, cfg,
                             None if data_arg is None else os.path.abspath(data_arg))
        t_last += time.perf_counter() - io_start  # s/step counts training only, not writing files
    print(f"train_stylegan2: done at step {trainer.step_count}; samples and checkpoints in {out}", flush=True)
    return trainer


if __name__ == "__main__":
    main()
