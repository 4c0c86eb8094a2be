"""Tests of the pictures: outlines, overlays, label colours, montages."""

from __future__ import annotations

import numpy as np
import pytest

from sgscn_jax.reporting import overlays


def _boundary_by_hand(mask: np.ndarray) -> np.ndarray:
  """Mask pixels with an 8-neighbour outside the mask or outside the image."""
  h, w = mask.shape
  out = np.zeros_like(mask)
  for y in range(h):
    for x in range(w):
      if not mask[y, x]:
        continue
      for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
          yy, xx = y + dy, x + dx
          if not (0 <= yy < h and 0 <= xx < w) or not mask[yy, xx]:
            out[y, x] = True
  return out


def test_outline_of_a_square_is_its_ring():
  mask = np.zeros((7, 7), bool)
  mask[1:6, 1:6] = True
  ring = overlays.outline(mask)
  assert ring.sum() == 16
  assert not ring[2:5, 2:5].any()
  np.testing.assert_array_equal(ring, _boundary_by_hand(mask))
  thick = overlays.outline(mask, width=2)
  assert thick.sum() == 24 and not thick[3, 3]


def test_outline_closes_along_the_image_edge():
  mask = np.zeros((6, 6), bool)
  mask[:3, :] = True
  np.testing.assert_array_equal(overlays.outline(mask), _boundary_by_hand(mask))
  assert overlays.outline(mask)[0].all()


def test_overlay_puts_colours_exactly_on_boundaries():
  rng = np.random.default_rng(0)
  pred = rng.random((20, 24)) < 0.5
  pred[:, :6] = False
  gt = np.zeros((20, 24), bool)
  gt[4:15, 3:18] = True
  image = np.full((20, 24, 1), 0.5, np.float32)
  out = overlays.overlay(image, pred, gt)
  assert out.shape == (20, 24, 3) and out.dtype == np.uint8
  on_pred = _boundary_by_hand(pred)
  on_gt = _boundary_by_hand(gt) & ~on_pred
  np.testing.assert_array_equal(out[on_pred], np.tile(overlays.PRED_COLOUR, (on_pred.sum(), 1)))
  np.testing.assert_array_equal(out[on_gt], np.tile(overlays.GT_COLOUR, (on_gt.sum(), 1)))
  rest = ~(on_pred | on_gt)
  assert np.all(out[rest] == 128)


def test_overlay_keeps_colour_images_and_checks_shapes():
  image = np.random.default_rng(1).random((8, 9, 3)).astype(np.float32)
  out = overlays.overlay(image, None, None)
  np.testing.assert_array_equal(out, np.round(image * 255).astype(np.uint8))
  with pytest.raises(ValueError):
    overlays.overlay(image, np.zeros((8, 8), bool))
  with pytest.raises(ValueError):
    overlays.overlay(np.zeros((8, 9, 2)), None)


def test_label_colours_are_fixed_per_id():
  a = np.array([[0, 1, 2], [3, 4, -1]])
  b = np.array([[4, 4], [0, 9]])
  ca, cb = overlays.label_colours(a), overlays.label_colours(b)
  assert ca.shape == (2, 3, 3) and ca.dtype == np.uint8
  np.testing.assert_array_equal(ca[1, 1], cb[0, 0])  # Label 4 in both maps.
  np.testing.assert_array_equal(ca[0, 0], cb[1, 0])  # Label 0 in both maps.
  np.testing.assert_array_equal(ca[1, 2], [0, 0, 0])  # Negative label.
  colours = overlays.label_colours(np.arange(12)[None])[0]
  assert len({tuple(c) for c in colours}) == 12


def test_montage_shape():
  image = np.random.default_rng(0).random((16, 20, 3))
  mask = np.zeros((16, 20), bool)
  mask[4:10, 5:12] = True
  labels = np.arange(320).reshape(16, 20) % 3
  line = overlays._text_height()
  out = overlays.montage([("a", image, mask, mask, labels), ("b", image, mask, None, None)],
                       gap=4)
  assert out.dtype == np.uint8
  assert out.shape == (4 + line + 2 * (line + 16 + 4), 2 * 4 + 4 * 20 + 3 * 4, 3)
  small = overlays.montage([("", image[..., :1], None, mask, None)], gap=2,
                         panel_height=32)
  assert small.shape == (2 + line + line + 32 + 2, 2 * 2 + 3 * 40 + 2 * 2, 3)
  # The ground-truth panel of the first row is the mask in white.
  y0, x0 = 4 + 2 * line, 4 + 20 + 4
  np.testing.assert_array_equal(out[y0:y0 + 16, x0:x0 + 20, 0], mask * 255)


def test_montage_refuses_mismatched_panels_unless_resized():
  image = np.zeros((16, 20, 3))
  gt = np.zeros((32, 40), bool)
  with pytest.raises(ValueError):
    overlays.montage([("a", image, gt, None, None)])
  out = overlays.montage([("a", image, gt, None, None)], panel_height=16, gap=0)
  assert out.shape[1] == 3 * 20


def test_montage_outlines_are_drawn_at_panel_size():
  image = np.full((64, 64, 3), 0.5)
  mask = np.zeros((64, 64), bool)
  mask[16:48, 16:48] = True
  out = overlays.montage([("", image, None, mask, None)], panel_height=16, gap=0,
                       outlines=True)
  y0 = 2 * overlays._text_height()
  panel = out[y0:y0 + 16, :16]
  yellow = np.all(panel == overlays.PRED_COLOUR, axis=-1)
  np.testing.assert_array_equal(yellow, overlays.outline(overlays._fit_mask(mask, 16)))
  assert yellow.sum() == 28  # The ring of the 8 x 8 square the mask becomes.
