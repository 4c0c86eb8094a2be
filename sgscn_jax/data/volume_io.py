"""Volumes on disk: NIfTI (`.nii`, `.nii.gz`, through nibabel) and multi-page TIFF stacks.

A volume leaves this module as float32 `[D, H, W, C]` in [0, 1] (the intensity rules of
`sgscn_jax.data.decode`, over the whole volume), its voxel spacing `(dz, dy, dx)` and a `Geometry`
that lets a label volume be written back in the input's format, aligned with it:

* NIfTI: the stored array is indexed `(i, j, k)`; here it is transposed to `[k, j, i]`
  (so D runs along k, usually the slice axis), the spacing is the header's voxel sizes
  reversed, `(dz, dy, dx) = (zooms[2], zooms[1], zooms[0])`, in the header's unit (mm
  unless it says otherwise). A label volume is transposed back and written with the
  input's affine and a copy of its header (data type set to an integer type, scaling
  removed), so any viewer overlays it on the input.
* TIFF: pages are D (`read_volume`); spacing from OME-XML or ImageJ metadata where
  present, else from the caller (a flag), else None. A label volume is written as an
  ImageJ hyperstack with the same spacing (X/YResolution tags and `spacing`).

nibabel is an optional extra: `pip install 'sgscn-jax[nifti]'`; without it a NIfTI file
raises an ImportError saying so. Every other failure is a `decode.ImageReadError` naming
the file.
"""

from __future__ import annotations

import gzip
import io as pyio
import os
import re
from pathlib import Path
from typing import Any, NamedTuple, Optional

import numpy as np
import tifffile

from sgscn_jax.data import decode, files

NIFTI_SUFFIXES = (".nii.gz", ".nii")
TIFF_SUFFIXES = (".tif", ".tiff")
VOLUME_SUFFIXES = NIFTI_SUFFIXES + TIFF_SUFFIXES
NIBABEL_MISSING = "reading .nii needs nibabel: pip install 'sgscn-jax[nifti]'"


class Geometry(NamedTuple):
  """Where a volume's voxels are, enough to write labels that line up with it."""
  format: str                    # "nifti" or "tiff"
  spacing: Optional[tuple]       # (dz, dy, dx) in `unit`, or None
  unit: Optional[str]            # e.g. "mm", "um"; None if unknown
  affine: Optional[np.ndarray]   # NIfTI: [4, 4] voxel (i, j, k) -> world; TIFF: None
  header: Any = None             # NIfTI: the nibabel header; TIFF: None


class VolumeFile(NamedTuple):
  """A decoded, normalised volume and its geometry."""
  volume: np.ndarray             # [D, H, W, C] float32 in [0, 1]
  spacing: Optional[tuple]       # (dz, dy, dx), or None
  info: dict                     # normalisation (io rules), format, unit, source shape
  geometry: Geometry


class VolumeRecord(NamedTuple):
  """A decoded, normalised 3D stack."""
  volume: np.ndarray  # [D, H, W, C] float32 in [0, 1], C in {1, 3}
  spacing: tuple[float, float, float] | None  # (dz, dy, dx) in `info["unit"]`, or None
  info: dict


def _tiff_spacing(tif: tifffile.TiffFile) -> tuple[tuple[float, float, float] | None, str | None]:
  """(dz, dy, dx) from ImageJ or OME metadata when all three are known, else None."""
  if tif.is_ome and tif.ome_metadata:
    sizes = {a: re.search(rf'PhysicalSize{a}="([^"]+)"', tif.ome_metadata) for a in "ZYX"}
    if all(sizes.values()):
      unit = re.search(r'PhysicalSizeXUnit="([^"]+)"', tif.ome_metadata)
      return tuple(float(sizes[a].group(1)) for a in "ZYX"), unit.group(1) if unit else "um"
  meta = tif.imagej_metadata or {}
  page = tif.pages[0]
  try:
    xres, yres = page.tags["XResolution"].value, page.tags["YResolution"].value
  except KeyError:
    return None, None
  if "spacing" not in meta or not (xres[0] > 0 and yres[0] > 0):
    return None, None
  spacing = (float(meta["spacing"]), yres[1] / yres[0], xres[1] / xres[0])
  return spacing, meta.get("unit")


def read_volume(path: decode.PathLike) -> VolumeRecord:
  """Reads a multi-page TIFF (a 3D stack) as float32 `[D, H, W, C]` in [0, 1].

  The first series of the file is read; its sample/channel axis goes last and at most
  one other axis (pages, Z, T, ...) of length > 1 becomes D (a single page gives D = 1).
  Normalisation is that of `read_image`, over the whole volume at once.
  The spacing `(dz, dy, dx)` is read from OME-XML (`PhysicalSize{Z,Y,X}`) or from ImageJ
  metadata (`spacing` for dz, the X/YResolution tags for dy, dx); it is None unless all
  three are present and positive.

  Raises:
    decode.ImageReadError: not a TIFF, unreadable, more than one stack axis, NaN/inf, ...
  """
  path = decode.check_file(path)
  if not decode.is_tiff(path):
    raise decode.ImageReadError(path, "not a TIFF file; volumes are read from multi-page TIFF")
  array, axes = decode.tiff_series(path)
  spatial = [(a, n) for a, n in zip(axes, array.shape) if a not in "YXSC"]
  stack = [a for a, n in spatial if n > 1]
  if len(stack) > 1:
    raise decode.ImageReadError(path, f"more than one stack axis ({axes}, shape {array.shape})")
  depth = int(np.prod([n for _, n in spatial], dtype=np.int64))
  array = array.reshape((depth,) + array.shape[len(spatial):])
  source_shape = tuple(int(n) for n in array.shape)
  array, channels = decode.channels_last(path, array, spatial=3)
  decode.check_size(path, array.shape[1:3], "HW")
  decode.check_finite(path, array)
  volume, info = decode.normalise_intensities(array)
  try:
    with tifffile.TiffFile(path) as tif:
      spacing, unit = _tiff_spacing(tif)
  except Exception:  # metadata problems never make a readable volume unreadable
    spacing, unit = None, None
  info.update(channels=channels, source_shape=source_shape, axes=axes, unit=unit)
  return VolumeRecord(np.ascontiguousarray(volume), spacing, info)


def nibabel():
  """The nibabel module, or an ImportError with the install command."""
  try:
    import nibabel as nib
  except ImportError as e:
    raise ImportError(NIBABEL_MISSING) from e
  return nib


def volume_format(path) -> str:
  """"nifti" (name ends in .nii or .nii.gz) or "tiff" (.tif/.tiff); else ValueError."""
  name = os.fspath(path).lower()
  if name.endswith(NIFTI_SUFFIXES):
    return "nifti"
  if name.endswith(TIFF_SUFFIXES):
    return "tiff"
  raise ValueError(f"{os.fspath(path)}: not a volume file (expected one of {VOLUME_SUFFIXES})")


def volume_stem(path) -> str:
  """The file name without its volume suffix: 'a.nii.gz' -> 'a', 'b.tif' -> 'b'."""
  name = Path(path).name
  for suffix in VOLUME_SUFFIXES:
    if name.lower().endswith(suffix):
      return name[: -len(suffix)]
  return Path(path).stem


def label_suffix(path) -> str:
  """The suffix a label volume of `path` is written with: the input's own."""
  name = Path(path).name.lower()
  for suffix in VOLUME_SUFFIXES:
    if name.endswith(suffix):
      return suffix
  raise ValueError(f"{os.fspath(path)}: not a volume file")


def _nifti_array(path) -> tuple[np.ndarray, Any]:
  """The stored array `[i, j, k(, channels)]` (scaling applied) and the image."""
  nib = nibabel()
  path = decode.check_file(path)
  try:
    image = nib.load(os.fspath(path))
    array = np.asanyarray(image.dataobj)
  except Exception as e:  # nibabel raises many types for bad files
    raise decode.ImageReadError(path, f"unreadable or corrupt NIfTI ({decode.first_line(e)})")
  if array.ndim == 4 and array.shape[3] == 1:
    array = array[..., 0]
  if array.ndim != 3:
    raise decode.ImageReadError(path, f"expected a 3D NIfTI volume, got shape {array.shape}")
  return array, image


def _nifti_geometry(image) -> Geometry:
  header = image.header.copy()
  zooms = tuple(float(z) for z in header.get_zooms()[:3])
  unit = header.get_xyzt_units()[0]
  return Geometry("nifti", zooms[::-1], None if unit == "unknown" else unit,
                  np.asarray(image.affine, np.float64), header)


# The screen convention of `display_view`: rows and columns of every panel increase toward
# these world directions (radiological: patient's right on the viewer's left, anterior at
# the top of an axial slice, superior at the top of coronal and sagittal slices).
DISPLAY_AXES = ("I", "P", "L")


def display_view(geometry: Optional[Geometry], *arrays, spacing=None):
  """`arrays` (each `[D, H, W, ...]`, as read here; None passes through) and `spacing`
  reordered and flipped so that axes 0, 1, 2 increase toward inferior, posterior and the
  patient's left (`DISPLAY_AXES`). `report.orthogonal_overlay` then draws an axial,
  a coronal and a sagittal slice the way a radiological viewer shows them.

  The orientation is nibabel's `io_orientation` of the NIfTI affine (for each stored axis
  i, j, k the world axis it is closest to, and its sign); our axes are the stored ones
  reversed. Volumes without an affine (TIFF) are returned unchanged: their orientation
  is unknown.

  Returns:
    `(arrays..., spacing)`, views of the inputs (no copies).
  """
  if geometry is None or geometry.affine is None:
    return (*arrays, spacing)
  orientations = nibabel().orientations
  stored = orientations.io_orientation(geometry.affine)           # rows: i, j, k
  ours = stored[::-1]                                              # rows: D, H, W
  transform = orientations.ornt_transform(ours, orientations.axcodes2ornt(DISPLAY_AXES))
  out = [None if a is None else orientations.apply_orientation(a, transform) for a in arrays]
  if spacing is not None:   # output axis n comes from our axis argsort(transform[:, 0])[n]
    spacing = tuple(spacing[int(n)] for n in np.argsort(transform[:, 0]))
  return (*out, spacing)


def read_volume_file(path, spacing=None) -> VolumeFile:
  """Reads a NIfTI or TIFF volume as float32 `[D, H, W, C]` in [0, 1] (module docstring).

  Args:
    path: a `.nii`, `.nii.gz`, `.tif` or `.tiff` file.
    spacing: `(dz, dy, dx)` to use when the file states none (TIFF without metadata).

  Raises:
    ImageReadError: missing, unreadable or unsupported file.
    ImportError: a NIfTI file without nibabel installed.
  """
  kind = volume_format(path)
  if kind == "tiff":
    record = read_volume(path)
    found = record.spacing
    geometry = Geometry("tiff", found or (None if spacing is None else tuple(map(float, spacing))),
                        record.info.get("unit"), None, None)
    info = dict(record.info, format="tiff", spacing_source="file" if found else
                ("given" if spacing is not None else "none"))
    return VolumeFile(record.volume, geometry.spacing, info, geometry)
  array, image = _nifti_array(path)
  return nifti_volume(image, array, path)


def nifti_volume(image, array: Optional[np.ndarray] = None, path="<image>") -> VolumeFile:
  """A loaded 3D nibabel image (e.g. one a package ships) as a `VolumeFile`, by the rules
  of `read_volume_file`."""
  array = np.asanyarray(image.dataobj) if array is None else array
  source_shape = tuple(int(n) for n in array.shape)
  array = np.transpose(array, (2, 1, 0))[..., None]
  decode.check_size(path, array.shape[:3], "DHW")
  decode.check_finite(path, array)
  volume, info = decode.normalise_intensities(array)
  geometry = _nifti_geometry(image)
  info.update(format="nifti", channels="grey", source_shape=source_shape,
              unit=geometry.unit, spacing_source="file")
  return VolumeFile(np.ascontiguousarray(volume), geometry.spacing, info, geometry)


def peek(path, spacing=None) -> tuple[tuple, int, Optional[tuple]]:
  """`((D, H, W), channels, spacing)` of a volume file from its header, without decoding the
  voxels (for planning memory before anything is read). `channels` is the stored count
  (reading may drop alpha or equal colour channels). `spacing` as `read_volume_file`."""
  if volume_format(path) == "nifti":
    nib = nibabel()
    try:
      image = nib.load(os.fspath(decode.check_file(path)))
    except decode.ImageReadError:
      raise
    except Exception as e:
      raise decode.ImageReadError(path, f"unreadable or corrupt NIfTI ({decode.first_line(e)})")
    shape = image.shape[:3]
    return tuple(int(n) for n in shape[::-1]), 1, _nifti_geometry(image).spacing
  path = decode.check_file(path)
  try:
    with tifffile.TiffFile(path) as tif:
      series = tif.series[0]
      shape, axes = tuple(series.shape), series.axes
      found, _ = _tiff_spacing(tif)
  except Exception as e:
    raise decode.ImageReadError(
        path, f"unreadable, corrupt or truncated TIFF ({decode.first_line(e)})")
  channels = 1
  dims = []
  for a, n in zip(axes, shape):
    if a in "SC":
      channels = int(n)
    else:
      dims.append(int(n))
  depth = int(np.prod(dims[:-2], dtype=np.int64)) if len(dims) > 2 else 1
  found = found or (None if spacing is None else tuple(float(s) for s in spacing))
  return (depth, dims[-2], dims[-1]), channels, found


def read_volume_mask(path, shape: Optional[tuple] = None) -> np.ndarray:
  """A binary label volume as bool `[D, H, W]`: foreground = stored value > 0.

  Args:
    path: NIfTI or TIFF (colour: any channel > 0).
    shape: if given, the `(D, H, W, ...)` of the volume it belongs to.
  """
  if volume_format(path) == "nifti":
    array, _ = _nifti_array(path)
    decode.check_finite(path, array)
    mask = np.transpose(array, (2, 1, 0)) > 0
  else:
    path = decode.check_file(path)
    raw, axes = decode.tiff_series(path)
    if axes[-1] in "SC":
      raw = np.any(raw > 0, axis=-1)
    mask = np.asarray(raw > 0).reshape((-1,) + raw.shape[-2:])
  if shape is not None and tuple(mask.shape) != tuple(shape[:3]):
    raise decode.ImageReadError(path, f"mask is {'x'.join(map(str, mask.shape))} (DxHxW) but its "
                            f"volume is {'x'.join(map(str, shape[:3]))}")
  return np.ascontiguousarray(mask)


def _label_dtype(labels: np.ndarray):
  if labels.size and int(labels.min()) < 0:
    raise ValueError("labels must be non-negative")
  high = int(labels.max()) if labels.size else 0
  return np.uint8 if high < 256 else (np.uint16 if high < 65536 else np.int32)


def write_label_volume(path, labels: np.ndarray, geometry: Geometry) -> None:
  """Writes an integer label volume `[D, H, W]` aligned with the volume of `geometry`.

  NIfTI (`geometry.format == "nifti"`, path ending .nii or .nii.gz): the input's affine and
  a copy of its header, integer data, no scaling. TIFF: an ImageJ stack with the spacing.
  Written atomically (`files.atomic_write_bytes`).
  """
  labels = np.asarray(labels)
  if labels.ndim != 3 or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(
        f"labels must be an integer [D, H, W] array, got {labels.dtype} {labels.shape}")
  dtype = _label_dtype(labels)
  if geometry.format == "nifti":
    nib = nibabel()
    header = geometry.header.copy() if geometry.header is not None else None
    data = np.ascontiguousarray(np.transpose(labels, (2, 1, 0)).astype(dtype))
    image = nib.Nifti1Image(data, geometry.affine, header=header)
    image.set_data_dtype(dtype)
    image.header.set_slope_inter(1.0, 0.0)
    image.header["cal_min"], image.header["cal_max"] = 0, float(labels.max() if labels.size else 0)
    if header is not None:  # keep the input's qform/sform codes
      image.set_qform(geometry.affine, int(header["qform_code"]))
      image.set_sform(geometry.affine, int(header["sform_code"]))
    blob = image.to_bytes()
    if os.fspath(path).lower().endswith(".gz"):
      blob = gzip.compress(blob, mtime=0)
    files.atomic_write_bytes(path, blob)
    return
  if geometry.format != "tiff":
    raise ValueError(f"unknown geometry format {geometry.format!r}")
  buffer = pyio.BytesIO()
  kwargs: dict[str, Any] = {"imagej": True, "metadata": {"axes": "ZYX"}}
  if geometry.spacing is not None:
    dz, dy, dx = geometry.spacing
    kwargs["resolution"] = (1.0 / dx, 1.0 / dy)
    kwargs["metadata"].update(spacing=dz, unit=geometry.unit or "pixel")
  tifffile.imwrite(buffer, labels.astype(dtype if dtype != np.int32 else np.float32), **kwargs)
  files.atomic_write_bytes(path, buffer.getvalue())
