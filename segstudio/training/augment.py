"""fastai's batch augmentations with the sampling grid built once per batch, as one homography.

fastai's `AffineCoordTfm` (flip, rotate, zoom and perspective warp from `aug_transforms`) builds
its coordinate grid separately for the image and for the mask, and applies the warp as a
second pass over the grid. `SharedGridAffine` draws the same random parameters with fastai's own
code, composes affine and warp into one 3x3 matrix per item, builds one grid and samples both
image and mask from it: the same augmentation (equal up to float rounding), 3-4x less CPU time.

It also never waits for the GPU: fastai's version synchronised the host about five times a batch
(a constant tensor made from a Python list, `torch.linalg.solve`'s error check, a data-dependent
`if`, and `_grid_sample`'s `.item()` for a down-scaling case that never arises when the output
has the input's size), measured with torch.cuda.set_sync_debug_mode on an H200
(tests/benchmarks/bench_train_throughput.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from fastai.torch_core import TensorImage, TensorMask
from fastai.vision.augment import AffineCoordTfm, _draw_mask, _grid_sample, _WarpCoord, aug_transforms, compose_tfms


class SharedGridAffine(AffineCoordTfm):
    """An `AffineCoordTfm` that computes its sampling grid once per batch."""

    @classmethod
    def from_fastai(cls, tfm: AffineCoordTfm) -> "SharedGridAffine":
        coord_fs = [DeviceWarp.of(w) if type(w) is _WarpCoord else w for w in tfm.coord_fs]
        return cls(aff_fs=tfm.aff_fs, coord_fs=coord_fs, size=tfm.size, mode=tfm.mode,
                   pad_mode=tfm.pad_mode, mode_mask=tfm.mode_mask, align_corners=tfm.align_corners, p=tfm.p)

    def before_call(self, b, split_idx):
        super().before_call(b, split_idx)
        self._grid = None

    def _coords(self, x: torch.Tensor) -> torch.Tensor:
        if self._grid is None:
            size = tuple(x.shape[-2:]) if self.size is None else self.cp_size
            warps = [] if self.split_idx else list(self.coord_fs)
            if all(isinstance(w, _WarpCoord) for w in warps):
                self._grid = self._homography_grid(x.shape[0], size, warps, x.device)
            else:  # other coordinate transforms: fastai's way, once
                coords = F.affine_grid(self.mat.as_subclass(torch.Tensor), (x.shape[0], 1, *size),
                                       align_corners=self.align_corners)
                self._grid = compose_tfms(coords, tfms=warps).as_subclass(torch.Tensor)
        return self._grid

    def _homography_grid(self, n: int, size: tuple[int, int], warps, device) -> torch.Tensor:
        affine = self.mat.as_subclass(torch.Tensor).float()
        last_row = torch.zeros(n, 1, 3, device=device)
        last_row[..., 2] = 1.0
        mat = torch.cat([affine, last_row], 1)
        for warp in warps:  # fastai's apply_perspective, as a matrix applied after the affine one
            c = perspective_coeffs(warp.orig_pts, warp.targ_pts).float()
            mat = torch.cat([c, torch.ones_like(c[:, :1])], 1).view(n, 3, 3) @ mat
        base = F.affine_grid(torch.eye(3, device=device)[None, :2], (1, 1, *size), align_corners=self.align_corners)
        base = torch.cat([base.view(1, -1, 2), torch.ones(1, size[0] * size[1], 1, device=device)], -1)
        h = base @ mat.transpose(1, 2)
        if warps:  # where a point maps to infinity fastai skips the warp for the batch (no host sync here)
            skip = (h[..., 2] == 0).any()
            h = torch.where(skip, base @ torch.cat([affine, mat[:, 2:]], 1).transpose(1, 2), h / h[..., 2:])
        return h[..., :2].reshape(n, *size, 2)

    def encodes(self, x: TensorImage):
        coords = self._coords(x)
        # fastai's _grid_sample may pre-shrink the input first, deciding with .item() (a host
        # sync) only where its `d` (computed as fastai does) exceeds 1; elsewhere it is grid_sample
        d = min(x.shape[-2] / coords.shape[-2], x.shape[-1] / coords.shape[-1]) / 2
        sample = _grid_sample if self.mode == "bilinear" and d > 1 else F.grid_sample
        out = sample(x.as_subclass(torch.Tensor), coords, mode=self.mode, padding_mode=self.pad_mode,
                     align_corners=self.align_corners)
        return TensorImage(out)

    def encodes(self, x: TensorMask):  # noqa: F811 - fastai dispatches on the annotation
        y = x.as_subclass(torch.Tensor)
        y = y[:, None] if x.ndim == 3 else y
        out = F.grid_sample(y.float(), self._coords(x), mode=self.mode_mask, padding_mode=self.pad_mode,
                            align_corners=self.align_corners).long()
        return TensorMask(out[:, 0] if x.ndim == 3 else out)


class DeviceWarp(_WarpCoord):
    """fastai's perspective warp drawing, with the square's corners made once per device (fastai
    builds them from a Python list every batch: a host-to-device copy that waits)."""

    _corners: dict = {}

    @classmethod
    def of(cls, warp: _WarpCoord) -> "DeviceWarp":
        return cls(magnitude=warp.magnitude, p=warp.p, draw_x=warp.draw_x, draw_y=warp.draw_y, batch=warp.batch)

    def before_call(self, x):
        x_t = _draw_mask(x, self._def_draw, self.draw_x, p=self.p, batch=self.batch)
        y_t = _draw_mask(x, self._def_draw, self.draw_y, p=self.p, batch=self.batch)
        key = (x.device, x.dtype)
        if key not in self._corners:
            self._corners[key] = torch.tensor([[-1, -1], [-1, 1], [1, -1], [1, 1]], dtype=x.dtype, device=x.device)
        self.orig_pts = self._corners[key].unsqueeze(0).expand(x.size(0), 4, 2)
        targ_pts = torch.stack([torch.stack([-1 - y_t, -1 - x_t]), torch.stack([-1 + y_t, 1 + x_t]),
                                torch.stack([1 + y_t, -1 + x_t]), torch.stack([1 - y_t, 1 - x_t])])
        self.targ_pts = targ_pts.permute(2, 0, 1)


def perspective_coeffs(p1: torch.Tensor, p2: torch.Tensor) -> torch.Tensor:
    """fastai's find_coeffs (the 8 coefficients of the homography taking `p1` to `p2`), solved
    without linalg.solve's singularity check, which reads a flag back from the GPU."""
    p1, p2 = p1.as_subclass(torch.Tensor), p2.as_subclass(torch.Tensor)
    zero, one = torch.zeros_like(p1[:, 0, 0]), torch.ones_like(p1[:, 0, 0])
    rows = []
    for i in range(p1.shape[1]):
        rows.append(torch.stack([p2[:, i, 0], p2[:, i, 1], one, zero, zero, zero,
                                 -p1[:, i, 0] * p2[:, i, 0], -p1[:, i, 0] * p2[:, i, 1]]))
        rows.append(torch.stack([zero, zero, zero, p2[:, i, 0], p2[:, i, 1], one,
                                 -p1[:, i, 1] * p2[:, i, 0], -p1[:, i, 1] * p2[:, i, 1]]))
    a = torch.stack(rows).permute(2, 0, 1)
    return torch.linalg.solve_ex(a, p1.reshape(p1.shape[0], 8, 1), check_errors=False)[0]


# Mild, anatomy-friendly settings for fastai's aug_transforms (no vertical flips).
AUG_PARAMS = dict(do_flip=True, flip_vert=False, max_rotate=10.0, max_zoom=1.1, max_lighting=0.2,
                  max_warp=0.1, p_affine=0.75, p_lighting=0.75)


def augmentations() -> list:
    """Batch augmentations for image and mask together: fastai's `aug_transforms(**AUG_PARAMS)`
    with its affine/warp step replaced by `SharedGridAffine`."""
    return [SharedGridAffine.from_fastai(t) if isinstance(t, AffineCoordTfm) else t
            for t in aug_transforms(**AUG_PARAMS)]
