"""User image files in and results out, whatever their size, mode and bit depth.

Editing and translation commands take the user's own pictures: photos with EXIF rotation,
palette GIFs and PNGs, transparent logos, 16-bit scans, CMYK prints. `read_image_file`
brings each to float colour pixels in [0, 1] with the transparency kept apart (a network sees
colour only; the alpha is put back on the result), and `write_image_file` writes results
atomically without ever replacing a user's file by accident.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .. import atomic
from ..data.folder import EXTENSIONS
from ..errors import ConfigError, DataError

# Suffix -> (Pillow format, stores alpha, stores 16-bit gray).
FORMATS = {
    ".png": ("PNG", True, True),
    ".jpg": ("JPEG", False, False),
    ".jpeg": ("JPEG", False, False),
    ".webp": ("WEBP", True, False),
    ".tif": ("TIFF", True, True),
    ".tiff": ("TIFF", True, True),
    ".bmp": ("BMP", False, False),
}
SAVE_OPTIONS = {"JPEG": {"quality": 95}, "WEBP": {"lossless": True}}
LUMA_601 = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass
class ImageFile:
    """One decoded user image.

    Attributes:
        pixels: float32 H x W x C in [0, 1]; C is 1 (gray) or 3 (colour), never alpha.
        alpha: float32 H x W in [0, 1] when the file had an alpha channel or a transparent
            palette entry, else None.
        bits: 16 for 16-bit (and 32-bit integer or float) gray files, else 8.
        mode: the Pillow mode of the file as stored (e.g. 'P', 'I;16', 'CMYK').
    """

    pixels: np.ndarray
    alpha: np.ndarray | None
    bits: int
    mode: str


def read_image_file(path: str | Path) -> ImageFile:
    """Decode an image file of any Pillow mode, upright (EXIF orientation applied).

    Modes: 1 (bilevel) and L become gray; LA adds alpha; RGB, CMYK, YCbCr and the like become
    RGB; RGBA and P (palette, with or without a transparent entry) become RGB plus alpha where
    there is transparency; 16-bit gray (I;16, I) is scaled by 65535, 32-bit float (F) is taken
    as [0, 1] when its maximum is at most 1, else scaled by 65535. Pillow reads 16-bit colour
    PNGs as 8-bit RGB. Images over twice Pillow's MAX_IMAGE_PIXELS (about 179 megapixels) are
    refused as decompression bombs.

    Args:
        path: the file.

    Raises:
        DataError: one line naming the file when it is missing, not an image, truncated or
            otherwise unreadable.

    Example:
        >>> image = read_image_file("photo.jpg")
        >>> image.pixels.shape, image.alpha is None
        ((480, 640, 3), True)
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    try:
        with Image.open(path) as opened:
            opened.load()
            mode = opened.mode
            image = ImageOps.exif_transpose(opened)
    except Image.DecompressionBombError as error:
        raise DataError(f"{path}: too large to decode safely ({error})") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image file Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{path}: unreadable or truncated image ({error})") from None
    pixels, alpha, bits = _decode(image)
    return ImageFile(pixels=pixels, alpha=alpha, bits=bits, mode=mode)


def _decode(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Pillow image -> (float32 H x W x C pixels, float32 H x W alpha or None, bits)."""
    mode = image.mode
    if mode.startswith("I") or mode == "F":
        array = np.asarray(image).astype(np.float64)
        if mode == "F" and array.max(initial=0.0) <= 1.0:
            scaled = array
        else:
            scaled = array / 65535.0
        return np.clip(scaled, 0.0, 1.0).astype(np.float32)[..., None], None, 16
    has_alpha = mode in ("RGBA", "RGBa", "LA", "La", "PA") or (
        mode == "P" and ("transparency" in image.info or image.palette.mode == "RGBA"))
    gray = mode in ("1", "L", "LA", "La")
    if has_alpha:
        converted = np.asarray(image.convert("LA" if gray else "RGBA"), dtype=np.float32) / 255.0
        pixels, alpha = converted[..., :-1], converted[..., -1]
        return np.ascontiguousarray(pixels), np.ascontiguousarray(alpha), 8
    array = np.asarray(image.convert("L" if gray else "RGB"), dtype=np.float32) / 255.0
    return (array[..., None] if array.ndim == 2 else array), None, 8


def without_alpha(image: np.ndarray) -> np.ndarray:
    """An H x W, H x W x 1..4 array as contiguous H x W x C with C 1 or 3: gray+alpha and RGBA
    lose their alpha channel.

    Example:
        >>> without_alpha(np.zeros((4, 4, 2), np.uint8)).shape
        (4, 4, 1)
    """
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 2, 3, 4):
        raise ConfigError(f"an image must be H x W or H x W x C with C 1-4, got shape {image.shape}")
    return np.ascontiguousarray(image[..., :-1] if image.shape[-1] in (2, 4) else image)


def to_model_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """Gray <-> RGB for a network that takes `channels` colour channels.

    Gray is repeated into RGB; RGB becomes gray by ITU-R BT.601 luma (0.299 R + 0.587 G +
    0.114 B), the weights Pillow's own convert('L') uses.

    Args:
        pixels: float H x W x C, C 1 or 3.
        channels: 1 or 3.

    Example:
        >>> to_model_channels(np.ones((4, 4, 1), np.float32), 3).shape
        (4, 4, 3)
    """
    if channels not in (1, 3):
        raise ConfigError(f"channels={channels}: must be 1 (gray) or 3 (RGB)")
    have = pixels.shape[-1]
    if pixels.ndim != 3 or have not in (1, 3):
        raise ValueError(f"expected H x W x 1 or H x W x 3 pixels, got shape {pixels.shape}")
    if have == channels:
        return pixels
    if channels == 3:
        return np.repeat(pixels, 3, axis=-1)
    luma = pixels.astype(np.float32, copy=False) @ LUMA_601
    return luma[..., None].astype(pixels.dtype, copy=False)


def require_new(path: str | Path, force: bool = False) -> None:
    """Refuse to replace an existing output unless `force` (DataError naming the file)."""
    if Path(path).exists() and not force:
        raise DataError(f"{path} exists; pass --force to overwrite")


def write_image_file(path: str | Path, pixels: np.ndarray, alpha: np.ndarray | None = None,
                     bits: int = 8, force: bool = False) -> None:
    """Write a result image atomically; the format comes from the suffix.

    Suffixes: .png, .jpg/.jpeg, .webp (lossless), .tif/.tiff, .bmp. What each keeps:
    - alpha: PNG, WebP and TIFF store it; JPEG and BMP cannot, so the image is laid over
      white. An alpha whose size differs from the pixels' (e.g. the input's alpha with a x4
      result) is resized here with Pillow's bicubic filter.
    - 16 bits: only gray images without alpha in PNG or TIFF (mode I;16). Pillow cannot write
      16-bit colour or 16-bit gray-with-alpha files, so those, and every JPEG, WebP and BMP,
      are written with 8 bits per channel.
    - WebP stores gray as RGB.

    The image goes to a hidden temporary file in the same folder, then replaces `path` in one
    step (os.replace): a crash never leaves a half-written result, and no temporary file
    stays behind.

    Args:
        path: the file to write; its folder is created if needed.
        pixels: float H x W x C (C 1 or 3) or H x W; clamped to [0, 1], NaN written as 0.
        alpha: float H x W (or H x W x 1) in [0, 1], or None.
        bits: 8 or 16 (see above for where 16 is kept).
        force: replace an existing file; without it an existing file is an error.

    Raises:
        DataError: the suffix is not supported, or the file exists and `force` is False; both
            before anything is written.

    Example:
        >>> write_image_file("out/photo.png", result.pixels, result.alpha, bits=result.bits)
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise DataError(f"{path}: cannot write {suffix or 'a file without a suffix'!r}; "
                        f"use one of {', '.join(sorted(FORMATS))}")
    if bits not in (8, 16):
        raise ConfigError(f"bits={bits}: must be 8 or 16")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a file")
    require_new(path, force)
    image = _encode(pixels, alpha, bits, *FORMATS[suffix][1:])
    fmt = FORMATS[suffix][0]

    # Write a temporary file beside the target, then rename it over the target.
    with atomic.replacing(path) as tmp, open(tmp, "xb") as handle:
        image.save(handle, format=fmt, **SAVE_OPTIONS.get(fmt, {}))


def _encode(pixels: np.ndarray, alpha: np.ndarray | None, bits: int, keeps_alpha: bool,
            keeps_16: bool) -> Image.Image:
    """Float pixels (+ alpha) -> the Pillow image a format can store."""
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or pixels.shape[-1] not in (1, 3):
        raise ValueError(f"expected H x W x 1 or H x W x 3 pixels, got shape {pixels.shape}")
    pixels = np.clip(np.nan_to_num(pixels, nan=0.0), 0.0, 1.0)
    height, width = pixels.shape[:2]
    if alpha is not None:
        alpha = _alpha_at(np.asarray(alpha, dtype=np.float32), height, width)
        if not keeps_alpha:
            # Lay the image over white.
            pixels = pixels * alpha[..., None] + (1.0 - alpha[..., None])
            alpha = None
    gray = pixels.shape[-1] == 1
    if bits == 16 and gray and alpha is None and keeps_16:
        # Pillow infers the mode from the array: uint16 H x W is I;16.
        return Image.fromarray(np.round(pixels[..., 0] * 65535.0).astype(np.uint16))
    # uint8 with 1, 2, 3 or 4 planes: L, LA, RGB or RGBA.
    planes = pixels if alpha is None else np.concatenate([pixels, alpha[..., None]], axis=-1)
    array = np.round(planes * 255.0).astype(np.uint8)
    return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)


def _alpha_at(alpha: np.ndarray, height: int, width: int) -> np.ndarray:
    """Alpha as H x W in [0, 1], resized bicubically when it has another size."""
    if alpha.ndim == 3 and alpha.shape[-1] == 1:
        alpha = alpha[..., 0]
    if alpha.ndim != 2:
        raise ValueError(f"expected an H x W alpha, got shape {alpha.shape}")
    alpha = np.nan_to_num(alpha, nan=1.0)
    if alpha.shape != (height, width):
        resized = Image.fromarray(np.ascontiguousarray(alpha)).resize(
            (width, height), Image.Resampling.BICUBIC)
        alpha = np.asarray(resized, dtype=np.float32)
    return np.clip(alpha, 0.0, 1.0)


def output_path(input_path: str | Path, out_dir: str | Path, suffix: str = ".png") -> Path:
    """Where the result for `input_path` goes: `out_dir / (stem + suffix)`.

    Example:
        >>> output_path("photos/cat.jpg", "out")
        PosixPath('out/cat.png')
    """
    if not suffix.startswith("."):
        suffix = "." + suffix
    return Path(out_dir) / (Path(input_path).stem + suffix)


def list_inputs(inputs: list[str | Path]) -> list[Path]:
    """The image files named by `inputs`, in order, each once.

    A file is taken as given (its decoder decides whether it is an image); a folder gives its
    image files (suffixes of ganforge.data.folder.EXTENSIONS, hidden files skipped), sorted by
    name and not recursively: sub-folders are ignored.

    Raises:
        DataError: nothing was given, a path does not exist, or a folder holds no images.

    Example:
        >>> list_inputs(["photos", "extra/dog.png"])
        [PosixPath('photos/a.jpg'), PosixPath('photos/b.png'), PosixPath('extra/dog.png')]
    """
    if not inputs:
        raise DataError("no input images given")
    found: list[Path] = []
    seen: set[Path] = set()
    for entry in inputs:
        path = Path(entry)
        if path.is_dir():
            files = sorted(f for f in path.iterdir() if f.is_file() and not f.name.startswith(".")
                           and f.suffix.lower() in EXTENSIONS)
            if not files:
                raise DataError(f"{path}: folder holds no images (looked for "
                                f"{', '.join(sorted(EXTENSIONS))}; sub-folders are not searched)")
        elif path.exists():
            files = [path]
        else:
            raise DataError(f"{path}: no such file or folder")
        for file in files:
            key = file.resolve()
            if key not in seen:
                seen.add(key)
                found.append(file)
    return found
