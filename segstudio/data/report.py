"""What was found in a dataset and what went wrong, as data, plain text and JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .pairing import MASK_NAMES

MIN_PAIRS = 2  # one to train on, one to validate


def training_blocker(n_pairs: int, n_train: int, n_valid: int, what: str = "image/mask pairs") -> str:
    """Why a dataset with these counts cannot be trained on ("" when it can)."""
    if n_pairs and (n_pairs < MIN_PAIRS or not n_train or not n_valid):
        return (f"training needs at least {MIN_PAIRS} usable {what} (one to train on, one "
                f"to validate); found {n_pairs}")
    return ""


@dataclass
class Problem:
    path: str    # file, relative to the dataset folders when possible
    reason: str  # one line, specific, human readable
    images: int = 0  # images (frames, scans) it kept out of the dataset; 0 for a mask's own problem


@dataclass
class ClassInfo:
    index: int
    name: str
    value: str          # original mask value(s) or colour, e.g. "255" or "#ff0000"
    pixel_share: float  # fraction of all mask pixels


@dataclass
class VolumeInfo:
    name: str
    shape: tuple[int, int, int]            # (Z, Y, X)
    spacing: tuple[float, float, float]    # mm, (dz, dy, dx)
    orientation: str                       # the file's axis codes, e.g. "RAS"
    slices: int                            # slices used for training (across the chosen axis)

    def line(self) -> str:
        (z, y, x), (dz, dy, dx) = self.shape, self.spacing
        return (f"{self.name}: {x}x{y}x{z} voxels, {dx:.3g}x{dy:.3g}x{dz:.3g} mm, "
                f"{self.orientation or '?'}, {self.slices} slices")


MAX_VOLUME_LINES = 20


@dataclass
class DatasetReport:
    images_dir: str
    masks_dir: str
    # image items found: each frame of a multi-frame file, each scan of a 3-D dataset; with no
    # masks (images_only), the readable ones
    n_images: int = 0
    n_masks: int = 0
    n_pairs: int = 0   # usable pairs
    n_train: int = 0
    n_valid: int = 0
    split: str = ""
    mask_convention: str = ""
    classes: list[ClassInfo] = field(default_factory=list)
    unmatched_images: list[str] = field(default_factory=list)
    unmatched_masks: list[str] = field(default_factory=list)
    unreadable: list[Problem] = field(default_factory=list)
    size_mismatch: list[Problem] = field(default_factory=list)
    other: list[Problem] = field(default_factory=list)  # odd mask values, duplicates...
    notes: list[str] = field(default_factory=list)
    cannot_train: str = ""  # see training_blocker
    volumes: list[VolumeInfo] = field(default_factory=list)  # usable scans, for 3-D datasets
    layout: str = ""        # 3-D: "decathlon", "kits" or "folders"
    n_unlabelled: int = 0   # images without a mask (not a problem: they can be labelled later)
    n_corrected: int = 0    # masks taken from the corrections folder
    images_only: bool = False  # no masks: the images were only read and checked

    def accounting(self) -> list[tuple[str, int]]:
        """Where every image item went, as (line, count): each frame of a multi-frame file and
        each scan is in exactly one line. With masks the counts add up to `n_images`; with
        images only, `n_images` is the first line (the readable ones)."""
        lines = ([("read", self.n_images)] if self.images_only else
                 [("usable scans" if self.volumes else "in usable pairs", self.n_pairs),
                  ("unlabelled", self.n_unlabelled)])
        lines += [(name, sum(p.images for p in problems)) for name, problems in (
            ("unreadable", self.unreadable), ("with a size mismatch", self.size_mismatch),
            ("with other problems", self.other))]
        return [(name, n) for name, n in lines if n]

    def problems(self) -> list[Problem]:
        """Every problem, for a list widget (images without a mask are unlabelled, not problems)."""
        return (self.unreadable + self.size_mismatch + self.other
                + [Problem(p, "no matching image") for p in self.unmatched_masks])

    def format(self) -> str:
        """A multi-line plain-text report (for the CLI, and copyable from the GUI)."""
        lines = [f"Images folder: {self.images_dir} ({self.n_images}{' readable' * self.images_only} images)",
                 f"Masks folder:  {self.masks_dir} ({self.n_masks} masks)" if self.masks_dir
                 else "Masks folder:  (none given: images checked only)"]
        accounted = self.accounting()
        if len(accounted) > 1:  # how the images add up, when they are not all in one line
            total = sum(n for _, n in accounted)
            lines.append(f"Images:        {total} = " + " + ".join(f"{n} {name}" for name, n in accounted))
        if self.volumes:
            n = len(self.volumes)
            lines.append(f"Volumes:       {n} usable ({self.layout} layout), {self.n_train + self.n_valid} "
                         f"slices ({self.n_train} train, {self.n_valid} valid)")
            lines += [f"  {v.line()}" for v in self.volumes[:MAX_VOLUME_LINES]]
            if n > MAX_VOLUME_LINES:
                lines.append(f"  … and {n - MAX_VOLUME_LINES} more")
        elif self.masks_dir:
            lines.append(f"Usable pairs:  {self.n_pairs} ({self.n_train} train, {self.n_valid} valid)")
        if self.n_unlabelled:
            files = len(self.unmatched_images)
            in_files = f" in {files} file(s)" if files and files != self.n_unlabelled else ""
            lines.append(f"Unlabelled:    {self.n_unlabelled} image(s){in_files} without a mask (not used for "
                         "training; label them in the Review)")
            shown = self.unmatched_images[:MAX_VOLUME_LINES]
            lines += [f"  {p}" for p in shown]
            if len(self.unmatched_images) > len(shown):
                lines.append(f"  … and {len(self.unmatched_images) - len(shown)} more")
        if self.n_corrected:
            lines.append(f"Corrected:     {self.n_corrected} mask(s) from the corrections folder")
        if self.cannot_train:
            lines.append(f"Cannot train:  {self.cannot_train}")
        if self.split:
            lines.append(f"Split:         {self.split}")
        if self.mask_convention:
            lines.append(f"Masks:         {self.mask_convention}")
        if self.classes:
            lines.append("Classes (share of voxels):" if self.volumes else "Classes:")
            width = max(len(c.name) for c in self.classes)
            lines += [f"  {c.index:>3}  {c.name:<{width}}  value {c.value:<8} {c.pixel_share:7.2%}"
                      for c in self.classes]
        if self.notes:
            lines.append("Notes:")
            lines += [f"  - {n}" for n in self.notes]
        problems = self.problems()
        if problems:
            lines.append(f"Problems ({len(problems)}):")
            lines += [f"  {p.path}: {p.reason}" for p in problems]
        elif self.masks_dir and not self.images_only and not self.n_pairs and self.n_images:
            lines.append(f"No usable pairs: no image has a mask of the same name (a mask may be named "
                         f"like its image, or {MASK_NAMES})")
        elif self.n_images or self.n_masks:
            lines.append("No problems found.")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-able dict of every field."""
        return asdict(self)
