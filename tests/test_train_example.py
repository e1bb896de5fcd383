"""python -m gan_fast.examples.train_stylegan2: a 3-step run on the procedural data (sample grid,
checkpoint, bit-identical resume), reading a folder of PNGs, the PNG writer/reader, and the
one-line messages for bad input."""

import os
import struct
import subprocess
import sys
import time
import zlib

import pytest
import torch

from gan_fast import config
from gan_fast.examples import train_stylegan2 as ex

TINY = ["--resolution", "16", "--channel-base", "256", "--channel-max", "16", "--z-dim", "16", "--w-dim", "16",
        "--batch", "4", "--threads", "1"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def fail_message(argv) -> str:
    """The SystemExit message of a bad command line: one line, no traceback."""
    with pytest.raises(SystemExit) as exc:
        ex.main(argv)
    msg = exc.value.code
    assert isinstance(msg, str) and "\n" not in msg, msg
    assert msg.startswith(f"{ex.PROG}: error: "), msg
    return msg


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}.{i}")
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def run3(tmp_path_factory):
    """3 steps at 16x16 on the procedural data, samples and checkpoints every 2 steps (and after the last)."""
    out = tmp_path_factory.mktemp("run3")
    old = torch.get_num_threads()
    t0 = time.perf_counter()
    trainer = ex.main(TINY + ["--steps", "3", "--out", str(out), "--grid", "3", "--sample-every", "2",
                              "--checkpoint-every", "2", "--log-every", "1"])
    seconds = time.perf_counter() - t0
    torch.set_num_threads(old)
    return out, trainer, seconds


def test_three_steps_write_samples_and_checkpoints(run3, capsys):
    out, trainer, seconds = run3
    assert seconds <= 30, f"3 steps took {seconds:.1f} s"
    assert trainer.step_count == 3 and trainer.nimg == 12
    files = sorted(os.listdir(out))
    assert files == ["checkpoint-000002.pt", "checkpoint-000003.pt", "reals.png", "samples-000002.png",
                     "samples-000003.png"], files
    for name in ("samples-000002.png", "samples-000003.png", "reals.png"):
        img = ex.read_png(str(out / name))
        assert img.shape == (48, 48, 3) and img.dtype == torch.uint8  # a 3x3 grid of 16x16
    # A fixed z: the grid of step 3 is G_ema's images of that z, with constant noise.
    z = torch.randn([9, 16], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = ex.image_grid(trainer.G_ema(z, None, noise_mode="const"), 3)
    assert torch.equal(ex.read_png(str(out / "samples-000003.png")), want)
    ckpt = load(out / "checkpoint-000003.pt")
    assert ckpt["format"] == ex.CHECKPOINT_FORMAT and ckpt["trainer"]["step"] == 3
    assert ckpt["config"]["resolution"] == 16 and ckpt["config"]["channel_max"] == 16
    assert ckpt["trainer"]["G_ema"] is not None and "rng_cpu" in ckpt["trainer"]
    assert load(out / "checkpoint-000002.pt")["trainer"]["step"] == 2


def test_progress_lines(tmp_path, capsys):
    ex.main(TINY + ["--steps", "2", "--out", str(tmp_path), "--grid", "2", "--log-every", "1"])
    lines = capsys.readouterr().out.splitlines()
    steps = [line for line in lines if line.startswith("step ")]
    assert len(steps) == 2
    first, second = steps
    for part in ("step      1/2", "kimg    0.004", "G ", "D ", "R1 ", "PL ", "s/step", "img/s"):
        assert part in first, first
    assert "R1" not in second and "PL" not in second  # lazy: step 0 only (intervals 16 and 4)
    assert "procedural shapes" in lines[0]


def test_resume_continues_bit_identically(run3, tmp_path, capsys):
    out, _, _ = run3
    resumed = ex.main(["--resume", str(out / "checkpoint-000002.pt"), "--steps", "3", "--out", str(tmp_path),
                       "--grid", "3", "--log-every", "1", "--threads", "1"])
    text = capsys.readouterr().out
    assert "at step 2" in text
    assert [line.split()[1] for line in text.splitlines() if line.startswith("step ")] == ["3/3"]
    assert resumed.step_count == 3
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-000003.pt", "samples-000003.png"]
    want, got = load(out / "checkpoint-000003.pt"), load(tmp_path / "checkpoint-000003.pt")
    assert_same(want, got)  # weights, EMA, optimisers, path length target, RNG, configuration
    assert ex.read_png(str(tmp_path / "samples-000003.png")).equal(ex.read_png(str(out / "samples-000003.png")))
    # Resuming with the checkpoint's own values given explicitly is fine; --steps at the checkpoint: no-op.
    again = ex.main(["--resume", str(out / "checkpoint-000003.pt"), "--steps", "3", "--resolution", "16",
                     "--out", str(tmp_path / "again")])
    assert again.step_count == 3 and "nothing to do" in capsys.readouterr().out


# -- bad input: one line naming the problem ----------------------------------------------------------------
def test_missing_folder(tmp_path):
    msg = fail_message(["--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert "no such folder" in msg and "nope" in msg


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    msg = fail_message(["--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert "is empty" in msg
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "notes.txt").write_text("hello")
    msg = fail_message(["--data", str(tmp_path / "text"), "--out", str(tmp_path / "o")])
    assert "has no images (1 other files ignored)" in msg


def test_damaged_image(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    msg = fail_message(["--data", str(tmp_path / "d"), "--out", str(tmp_path / "o"), "--resolution", "8"])
    assert "cannot read" in msg and "broken.png" in msg


@pytest.mark.parametrize("res", ["24", "4", "0"])
def test_resolution_not_power_of_two(tmp_path, res):
    msg = fail_message(["--resolution", res, "--out", str(tmp_path)])
    assert f"--resolution must be a power of two >= 8 (the discriminator's smallest), got {res}" in msg


def test_bad_batch_and_device(tmp_path):
    assert "--batch must be 1, 2, 3 or a multiple of 4" in fail_message(["--batch", "6", "--out", str(tmp_path)])
    assert "--device nonsense: not a device" in fail_message(["--device", "nonsense", "--out", str(tmp_path)])
    assert "invalid int value" in fail_message(["--steps", "many"])


def test_resume_mismatch(run3, tmp_path):
    ckpt = str(run3[0] / "checkpoint-000003.pt")
    msg = fail_message(["--resume", ckpt, "--resolution", "32", "--out", str(tmp_path)])
    assert "configuration mismatch: resolution 16 in the checkpoint, 32 given" in msg
    msg = fail_message(["--resume", ckpt, "--channel-max", "32", "--z-dim", "8", "--out", str(tmp_path)])
    assert "channel_max 16 in the checkpoint, 32 given" in msg and "z_dim 16 in the checkpoint, 8 given" in msg
    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert "not a readable checkpoint" in fail_message(["--resume", str(tmp_path / "junk.pt")])
    assert "no such file" in fail_message(["--resume", str(tmp_path / "missing.pt")])
    # A checkpoint whose weights do not fit its stated configuration (e.g. edited by hand).
    state = load(ckpt)
    state["config"]["channel_max"] = 8
    torch.save(state, tmp_path / "edited.pt")
    assert "the checkpoint does not fit this model" in fail_message(["--resume", str(tmp_path / "edited.pt"),
                                                                     "--out", str(tmp_path)])


def test_bad_input_cli_prints_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, "-m", "gan_fast.examples.train_stylegan2", "--data",
                           str(tmp_path / "nope"), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "no such folder" in proc.stderr


# -- a folder of images ---------------------------------------------------------------------------------
def _solid(h, w, c, value):
    return torch.tensor(value, dtype=torch.uint8).reshape(1, 1, c).expand(h, w, c).contiguous()


def _write_folder(root):
    root.mkdir()
    (root / "sub").mkdir()
    ex.write_png(str(root / "a_red.png"), _solid(20, 20, 3, [255, 0, 0]))
    ex.write_png(str(root / "b_grey.png"), _solid(16, 16, 1, [128]))
    ex.write_png(str(root / "c_rgba.png"), _solid(10, 30, 4, [0, 0, 255, 7]))  # wide: centre-cropped
    gen = torch.Generator().manual_seed(0)
    ex.write_png(str(root / "sub" / "d_noise.png"), torch.randint(0, 256, (40, 32, 3), dtype=torch.uint8,
                                                                  generator=gen))
    (root / "README.txt").write_text("not an image")


def test_folder_of_pngs(tmp_path, monkeypatch, capsys):
    root = tmp_path / "imgs"
    _write_folder(root)
    ds = ex.FolderDataset(str(root), 8)
    assert len(ds) == 4 and ds.ignored == 1 and ds.data.shape == (4, 3, 8, 8)
    x = ds.images([0, 1, 2])
    assert torch.equal(x[0], _solid(8, 8, 3, [255, 0, 0]).permute(2, 0, 1).float() / 127.5 - 1)
    assert torch.equal(ds.data[1], torch.full((3, 8, 8), 128, dtype=torch.uint8))
    assert torch.equal(ds.data[2], _solid(8, 8, 3, [0, 0, 255]).permute(2, 0, 1))
    assert "4 images, 1 other files ignored" in ds.describe()
    # Without Pillow the built-in reader gives the same pixels.
    monkeypatch.setitem(sys.modules, "PIL", None)
    ds2 = ex.FolderDataset(str(root), 8)
    assert torch.equal(ds.data, ds2.data) and "built-in PNG reader" in ds2.describe()
    # ... and the command line trains on the folder (one step, backend forced to ref for the whole step).
    seen = []
    step = ex.StyleGAN2Trainer.step

    def spy(self, *args, **kwargs):
        seen.append(config.forced_backend("bias_act"))
        return step(self, *args, **kwargs)

    monkeypatch.setattr(ex.StyleGAN2Trainer, "step", spy)
    trainer = ex.main(["--data", str(root), "--resolution", "8", "--channel-base", "64", "--channel-max", "8",
                       "--batch", "4", "--steps", "1", "--grid", "2", "--impl", "ref", "--out", str(tmp_path / "o"),
                       "--threads", "1"])
    assert trainer.step_count == 1 and seen == ["ref"] and config.forced_backend("bias_act") is None
    assert "4 images, 1 other files ignored" in capsys.readouterr().out.splitlines()[0]
    assert ex.read_png(str(tmp_path / "o" / "samples-000001.png")).shape == (16, 16, 3)


def test_non_png_without_pillow(tmp_path, monkeypatch):
    root = tmp_path / "jpgs"
    root.mkdir()
    ex.write_png(str(root / "ok.png"), _solid(8, 8, 3, [1, 2, 3]))
    (root / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    monkeypatch.setitem(sys.modules, "PIL", None)
    msg = fail_message(["--data", str(root), "--out", str(tmp_path / "o")])
    assert "reading an image folder needs Pillow: pip install pillow" in msg and "photo.jpg" in msg


# -- PNG writer and reader ------------------------------------------------------------------------------
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_png_round_trip(tmp_path, channels):
    img = torch.randint(0, 256, (7, 5, channels), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    path = str(tmp_path / "x.png")
    ex.write_png(path, img)
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and data.endswith(b"IEND\xaeB`\x82")
    want = img[..., :1].expand(7, 5, 3) if channels == 1 else img[..., :3]
    assert torch.equal(ex.read_png(path), want)
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(path) as im:  # an independent decoder agrees
        assert im.size == (5, 7)
        got = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8).reshape(7, 5, channels)
    assert torch.equal(got, img)


def _filtered_png(img, filters, color=2, palette=None, depth=8):
    """A PNG whose scanline y uses filter filters[y % len(filters)] (the encoder side of PNG's filters)."""
    h, w, c = img.shape
    stride = w * c
    rows = [list(img[y].flatten().tolist()) for y in range(h)]
    raw = bytearray()
    for y, line in enumerate(rows):
        prev = rows[y - 1] if y else [0] * stride
        ft = filters[y % len(filters)]
        out = []
        for i in range(stride):
            a = line[i - c] if i >= c else 0
            b = prev[i]
            cc = prev[i - c] if i >= c else 0
            if ft == 0:
                pred = 0
            elif ft == 1:
                pred = a
            elif ft == 2:
                pred = b
            elif ft == 3:
                pred = (a + b) // 2
            else:
                p = a + b - cc
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else cc)
            out.append((line[i] - pred) & 0xFF)
        raw += bytes([ft] + out)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    plte = chunk(b"PLTE", palette) if palette is not None else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 0)) + plte
            + chunk(b"IDAT", zlib.compress(bytes(raw))) + chunk(b"IEND", b""))


def test_png_reader_all_filters(tmp_path):
    img = torch.randint(0, 256, (10, 6, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    path = tmp_path / "f.png"
    path.write_bytes(_filtered_png(img, [0, 1, 2, 3, 4]))
    assert torch.equal(ex.read_png(str(path)), img)
    # A palette image.
    palette = bytes(range(30))  # 10 colours
    idx = torch.randint(0, 10, (4, 5, 1), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    path.write_bytes(_filtered_png(idx, [4, 1], color=3, palette=palette))
    table = torch.arange(30, dtype=torch.uint8).reshape(10, 3)
    assert torch.equal(ex.read_png(str(path)), table[idx[..., 0].long()])


def test_png_reader_rejects(tmp_path):
    path = tmp_path / "x.png"
    ex.write_png(str(path), _solid(4, 4, 3, [9, 9, 9]))
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF  # a byte of the IDAT chunk's data
    path.write_bytes(bytes(data))
    with pytest.raises(ex.PNGError, match="CRC mismatch"):
        ex.read_png(str(path))
    path.write_bytes(_filtered_png(_solid(2, 2, 3, [1, 1, 1]), [0], depth=16))
    with pytest.raises(ex.PNGError, match="unsupported PNG variant .bit depth 16"):
        ex.read_png(str(path))
    path.write_bytes(b"GIF89a")
    with pytest.raises(ex.PNGError, match="not a PNG"):
        ex.read_png(str(path))
