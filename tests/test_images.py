"""xattr.io.images.read_image: every kind of image file converted by its stated rule or refused in one line.

Oracles: the values written (a 16-bit ramp must come back as ramp / 65535, a float TIFF as its values),
the formulas of the module docstring computed here independently (alpha compositing, CMYK, BT.601
luma), and Pillow's own ``ImageOps.exif_transpose`` for the eight EXIF orientations.  PNGs Pillow cannot
write (16-bit RGB, bombs) are written byte by byte here.
"""
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from xattr.io.images import LUMA_BT601, ImageFileError, probe_image, read_image


def png_bytes(width, height, bit_depth, color_type, raw_rows=None):
    """A PNG written by hand (filter 0 on every row); ``raw_rows`` None: a tiny (invalid) IDAT."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    body = b"".join(b"\x00" + r for r in raw_rows) if raw_rows is not None else b"\x00"
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(body)) + chunk(b"IEND", b"")


def one_line(exc):
    text = str(exc)
    assert "\n" not in text
    return text


# -- value ranges --------------------------------------------------------------------------------------
def test_16bit_gray_png_keeps_its_ramp(tmp_path):
    ramp = np.linspace(0, 65535, 300).astype(np.uint16)[None].repeat(4, 0)
    Image.fromarray(ramp).save(tmp_path / "r.png")  # Pillow writes I;16 as a 16-bit PNG
    pic = read_image(tmp_path / "r.png")
    assert pic.pixels.shape == (1, 4, 300)
    assert np.array_equal(pic.pixels[0], ramp / 65535.0)  # was 99.8 % white through convert("L")
    assert "16-bit grayscale, values 0..65535 / 65535" in pic.describe()
    rgb = read_image(tmp_path / "r.png", channels=3)
    assert np.array_equal(rgb.pixels, np.repeat(pic.pixels, 3, axis=0)) and "gray replicated to RGB" in rgb.describe()


def test_16bit_rgb_png_is_read_at_pillows_8_bits(tmp_path):
    vals = np.array([[[65535, 0, 32768], [4660, 22136, 39612]]], dtype=">u2")  # 1 x 2 RGB, 16 bit
    (tmp_path / "rgb16.png").write_bytes(png_bytes(2, 1, 16, 2, [vals.tobytes()]))
    pic = read_image(tmp_path / "rgb16.png")
    # Pillow has no 48-bit mode: it keeps the high byte of each sample (stated by the 8-bit RGB line)
    assert np.array_equal(pic.pixels[:, 0].T, (vals[0] >> 8) / 255.0)
    assert "8-bit RGB" in pic.describe()


def test_float_tiff_in_range_as_is_out_of_range_refused(tmp_path):
    v = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(v).save(tmp_path / "f.tiff")
    pic = read_image(tmp_path / "f.tiff")
    assert np.array_equal(pic.pixels[0], v.astype(np.float64))  # was black through convert("RGB")
    Image.fromarray(v * 1000).save(tmp_path / "big.tiff")
    with pytest.raises(ImageFileError, match=r"float image with values in \[0, 1000\].*rescale") as e:
        read_image(tmp_path / "big.tiff")
    one_line(e.value)
    Image.fromarray(np.full((2, 2), np.nan, np.float32)).save(tmp_path / "nan.tiff")
    with pytest.raises(ImageFileError, match="NaN/inf"):
        read_image(tmp_path / "nan.tiff")


def test_32bit_integer_tiff_has_no_range_and_is_refused(tmp_path):
    Image.fromarray(np.array([[0, 70000]], dtype=np.int32)).save(tmp_path / "i.tiff")
    with pytest.raises(ImageFileError, match="32-bit integer pixels .* no defined value range"):
        read_image(tmp_path / "i.tiff")


def test_16bit_pgm_scaled_by_pillow(tmp_path):
    (tmp_path / "a.pgm").write_bytes(b"P5\n3 1\n1000\n" + np.array([0, 500, 1000], ">u2").tobytes())
    pic = read_image(tmp_path / "a.pgm")
    np.testing.assert_allclose(pic.pixels[0, 0], [0, 0.5, 1], atol=1 / 65535)  # maxval 1000 -> 0..65535 -> [0, 1]


def test_bilevel_palette_and_cmyk(tmp_path):
    Image.fromarray(np.array([[True, False]])).save(tmp_path / "b.png")
    assert np.array_equal(read_image(tmp_path / "b.png").pixels[0], [[1.0, 0.0]])
    p = Image.new("P", (2, 1))
    p.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    p.putpixel((1, 0), 1)
    p.save(tmp_path / "p.png")
    assert np.array_equal(read_image(tmp_path / "p.png").pixels[:, 0].T, [[1, 0, 0], [0, 0, 1]])
    Image.new("CMYK", (1, 1), (128, 0, 64, 51)).save(tmp_path / "c.tiff")
    c, m, y, k = np.array([128, 0, 64, 51]) / 255.0
    pic = read_image(tmp_path / "c.tiff")
    np.testing.assert_allclose(
        pic.pixels[:, 0, 0], [(1 - c) * (1 - k), (1 - m) * (1 - k), (1 - y) * (1 - k)], rtol=1e-15
    )
    assert "no colour profile" in pic.describe()


# -- alpha ------------------------------------------------------------------------------------------------
def test_alpha_composited_on_the_stated_background(tmp_path):
    rgba = np.array([[[200, 100, 0, 255], [200, 100, 0, 64], [200, 100, 0, 0]]], np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    col, a = rgba[0, :, :3] / 255.0, rgba[0, :, 3:] / 255.0
    for bg in (1.0, 0.0, (0.2, 0.4, 0.6)):
        pic = read_image(tmp_path / "a.png", background=bg)
        want = a * col + (1 - a) * np.broadcast_to(np.asarray(bg, float), (3,))
        np.testing.assert_allclose(pic.pixels[:, 0].T, want, rtol=0, atol=1e-15)
        assert "alpha composited on background" in pic.describe()
    with pytest.raises(ValueError, match="background must be"):
        read_image(tmp_path / "a.png", background=2.0)
    la = Image.merge("LA", [Image.new("L", (1, 1), 0), Image.new("L", (1, 1), 128)])
    la.save(tmp_path / "la.png")
    np.testing.assert_allclose(read_image(tmp_path / "la.png").pixels, [[[1 - 128 / 255]]], rtol=1e-15)
    p = Image.new("P", (2, 1))
    p.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    p.putpixel((1, 0), 1)
    p.save(tmp_path / "pt.png", transparency=1)  # palette entry 1 transparent: white (the default background)
    assert np.array_equal(read_image(tmp_path / "pt.png").pixels[:, 0].T, [[1, 0, 0], [1, 1, 1]])


# -- geometry and channels ------------------------------------------------------------------------------------
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_as_pillow_exif_transpose(tmp_path, orientation):
    img = (np.random.default_rng(0).random((5, 7, 3)) * 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(img).save(tmp_path / "o.png", exif=exif.tobytes())
    want = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")), dtype=np.float64) / 255
    pic = read_image(tmp_path / "o.png")
    assert np.array_equal(pic.pixels, np.moveaxis(want, -1, 0))
    assert probe_image(tmp_path / "o.png") == (3, want.shape[:2])


def test_rgb_to_gray_is_bt601_luma_and_resize_is_bilinear_on_floats(tmp_path):
    img = (np.random.default_rng(0).random((6, 9, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "c.png")
    gray = read_image(tmp_path / "c.png", channels=1)
    np.testing.assert_allclose(gray.pixels[0], img / 255.0 @ np.array(LUMA_BT601), rtol=0, atol=1e-15)
    small = read_image(tmp_path / "c.png", size=(3, 4))
    for c in range(3):
        plane = Image.fromarray((img[..., c] / 255.0).astype(np.float32), "F").resize((4, 3), Image.BILINEAR)
        np.testing.assert_allclose(small.pixels[c], np.asarray(plane, float), rtol=0, atol=1e-7)
    assert "resized 6x9 -> 3x4" in small.describe()
    with pytest.raises(ImageFileError, match="1 \\(gray\\) or 3 \\(RGB\\) channels; the model takes 4"):
        read_image(tmp_path / "c.png", channels=4)


def test_first_frame_of_an_animation_is_stated(tmp_path):
    frames = [Image.new("L", (2, 2), v) for v in (10, 200)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    pic = read_image(tmp_path / "anim.gif")
    assert "first frame of 2" in pic.describe() and np.allclose(pic.pixels, 10 / 255)


# -- refusals --------------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's own, before our refusal
def test_decompression_bomb_refused_from_the_header(tmp_path, monkeypatch):
    (tmp_path / "bomb.png").write_bytes(png_bytes(100000, 100000, 8, 0))  # 10^10 pixels declared, 80 bytes
    with pytest.raises(ImageFileError, match="decompression bomb") as e:
        read_image(tmp_path / "bomb.png")
    one_line(e.value)
    (tmp_path / "bomb2.png").write_bytes(png_bytes(10000, 10000, 8, 0))  # between Pillow's limit and twice it
    with pytest.raises(ImageFileError, match=r"10000x10000 = 100000000 pixels is more than Pillow's limit"):
        probe_image(tmp_path / "bomb2.png")
    from PIL import Image as PILImage

    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 10)  # the limit is Pillow's, adjustable there
    Image.new("L", (4, 4)).save(tmp_path / "small.png")
    with pytest.raises(ImageFileError, match="PIL.Image.MAX_IMAGE_PIXELS = 10"):
        read_image(tmp_path / "small.png")


def test_truncated_corrupt_missing_and_unknown_modes(tmp_path):
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.png").write_text("not a picture")
    for name, message in [("cut.png", "corrupt or truncated"), ("text.png", "not an image Pillow can read"),
                          ("absent.png", "not found")]:
        with pytest.raises(ImageFileError, match=message) as e:
            read_image(tmp_path / name)
        one_line(e.value)
    with pytest.raises(ImageFileError, match="is not a file"):
        read_image(tmp_path)
    Image.new("LAB", (2, 2)).save(tmp_path / "lab.tiff")
    with pytest.raises(ImageFileError, match="mode 'LAB' has no stated conversion"):
        read_image(tmp_path / "lab.tiff")


def test_reader_is_the_one_used_by_explain_and_batch():
    import importlib
    import inspect
    import pkgutil

    from xattr import batch, cli

    assert "read_image" in inspect.getsource(cli.load_image)
    assert "read_image" in inspect.getsource(batch.source._read_image)
    for package in (cli, batch):  # every file of the two packages
        files = [inspect.getsource(importlib.import_module(f"{package.__name__}.{m.name}"))
                 for m in pkgutil.iter_modules(package.__path__)]
        assert len(files) >= 3 and not any("Image.open" in text for text in files + [inspect.getsource(package)])


# -- fit="crop": aspect kept, centre cut (torchvision's evaluation transform) -------------------------------------

@pytest.mark.parametrize("hw, size, resize, want", [
    ((30, 40), (20, 20), None, ((20, 26), (0, 3))),     # shorter side to the crop, int(20·40/30) = 26
    ((300, 451), (224, 224), 256, ((256, 384), (16, 80))),  # torchvision: Resize(256), CenterCrop(224)
    ((451, 300), (224, 224), 256, ((384, 256), (80, 16))),
    ((20, 20), (20, 20), None, ((20, 20), (0, 0))),     # already the size: nothing happens
    ((10, 40), (20, 30), None, ((20, 80), (0, 25))),    # a non-square crop is covered: scale max(20/10, 30/40)
])
def test_crop_geometry(hw, size, resize, want):
    from xattr.io.images import crop_geometry

    assert crop_geometry(hw, size, resize) == want


def test_crop_geometry_refuses_a_resize_smaller_than_the_crop():
    from xattr.io.images import crop_geometry

    with pytest.raises(ValueError, match="smaller than the 20x30 crop"):
        crop_geometry((50, 50), (20, 30), resize=25)


@pytest.mark.parametrize("shape, mode", [((300, 451), "RGB"), ((451, 300), "RGB"), ((200, 200), "RGB"),
                                         ((333, 257), "L"), ((240, 500), "P")])
def test_crop_equals_torchvision_on_8bit_images(tmp_path, shape, mode):
    """fit="crop" on 8-bit files is torchvision's Resize(256) + CenterCrop(224) + ToTensor, pixel for pixel."""
    pytest.importorskip("torchvision", reason="torchvision is the oracle here")
    from torchvision import transforms as T

    img = Image.fromarray(np.random.default_rng(2).integers(0, 256, shape + (3,), dtype=np.uint8)).convert(mode)
    img.save(tmp_path / "a.png")
    pic = read_image(tmp_path / "a.png", channels=3, size=(224, 224), fit="crop", resize=256)
    ref = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor()])(Image.open(tmp_path / "a.png").convert("RGB"))
    np.testing.assert_array_equal(np.round(pic.pixels * 255), np.round(ref.numpy().astype(np.float64) * 255))
    assert "aspect kept, bilinear on the 8-bit values" in pic.describe() and "centre 224x224 cut" in pic.describe()


def test_crop_of_a_16bit_image_keeps_its_precision(tmp_path):
    """16-bit values are resized as floats (not rounded to 8 bits) on the same geometry; within one 8-bit step of
    the 8-bit route on the same picture."""
    ramp = (np.linspace(0, 1, 60 * 90).reshape(60, 90) * 65535).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    pic = read_image(tmp_path / "g16.png", channels=1, size=(40, 40), fit="crop")
    assert pic.pixels.shape == (1, 40, 40)
    assert not np.array_equal(np.round(pic.pixels * 255) / 255, pic.pixels)  # not 8-bit values
    Image.fromarray((ramp // 257).astype(np.uint8)).save(tmp_path / "g8.png")
    eight = read_image(tmp_path / "g8.png", channels=1, size=(40, 40), fit="crop")
    np.testing.assert_allclose(pic.pixels, eight.pixels, atol=1.5 / 255)
    with pytest.raises(ValueError, match="fit must be one of"):
        read_image(tmp_path / "g8.png", size=(4, 4), fit="pad")
