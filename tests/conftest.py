"""Shared fixtures: isolated user folders, the sample dataset, and one small trained run (its
users are marked slow); `implements`, which checks a test double against a core protocol."""

import inspect
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")
# Under pytest-xdist (pyproject runs two workers) the cores are shared: each worker's torch, and
# the processes its tests start, get their share of threads instead of all of them.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(
        os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def isolated_user_dirs(tmp_path_factory):
    """Keep platformdirs (runs, caches, settings) and the torch cache out of the real home."""
    root = tmp_path_factory.mktemp("home")
    saved = {k: os.environ.get(k) for k in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "TORCH_HOME")}
    for key in saved:
        os.environ[key] = str(root / key.lower())
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def sample_dirs(tmp_path_factory):
    """(images_dir, masks_dir) of the built-in sample dataset, generated once."""
    from segstudio.data import sample_dataset

    return sample_dataset(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="session")
def sample_data(sample_dirs):
    """The sample dataset loaded at 64 px."""
    from segstudio.config import DataConfig
    from segstudio.data import load_dataset

    images, masks = sample_dirs
    data, _ = load_dataset(DataConfig(images=str(images), masks=str(masks)), size=64)
    return data


def tiny_config(tmp_path, **overrides):
    """A fast CPU training config: resnet18, 64 px, random encoder, whole images resized (the
    sample's 128 px images would otherwise be cut into many patches at small sizes)."""
    from segstudio.config import Arch, Device, InputMode, TrainConfig

    cfg = TrainConfig(arch=Arch.resnet18, pretrained=False, size=64, bs=8, epochs=1, device=Device.cpu,
                      out_dir=str(tmp_path / "runs"), preview_count=2, input_mode=InputMode.resize)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


@pytest.fixture(scope="session")
def trained_run(sample_data, tmp_path_factory):
    """One short real training on the sample data: (final event, all events)."""
    from segstudio.training.session import TrainingSession

    events = []
    cfg = tiny_config(tmp_path_factory.mktemp("trained"), epochs=TRAIN_EPOCHS, bs=4, augment=False)
    final = TrainingSession().run(cfg, events.append, dataset=sample_data)
    return final, events


TRAIN_EPOCHS = 5


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items):
    """A test that uses the trained run (directly or through a fixture) waits for a training: slow."""
    for item in items:
        if "trained_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


def signature_mismatches(cls, protocol) -> list[str]:
    """How `cls`'s methods differ from those `protocol` declares: each must exist and take the
    same parameters in the same order, of the same kind, with the same defaults (one the
    protocol requires may have a default)."""
    problems = []
    for name, declared in vars(protocol).items():
        if name.startswith("_") or not callable(declared):
            continue
        method = getattr(cls, name, None)
        if method is None:
            problems.append(f"{cls.__name__} has no {name}()")
            continue
        want = list(inspect.signature(declared).parameters.values())
        got = list(inspect.signature(method).parameters.values())
        same = len(want) == len(got) and all(
            w.name == g.name and w.kind == g.kind and (w.default is w.empty or w.default == g.default)
            for w, g in zip(want, got))
        if not same:
            problems.append(f"{cls.__name__}.{name}{inspect.signature(method)} is not "
                            f"{protocol.__name__}.{name}{inspect.signature(declared)}")
    return problems


def implements(*protocols):
    """Class decorator for a test double: TypeError at once (when the class is made) unless it
    implements each of `protocols` with their signatures, so a changed core signature breaks
    the double instead of leaving it testing an interface that no longer exists."""
    def check(cls):
        problems = [p for protocol in protocols for p in signature_mismatches(cls, protocol)]
        if problems:
            raise TypeError("; ".join(problems))
        return cls
    return check


@pytest.fixture
def data_dirs(tmp_path) -> tuple:
    """Empty (images, masks) folders."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    return images, masks


@pytest.fixture(scope="session")
def mk():
    """The writers of tests/makers.py (DICOM files and series, PNGs, test images and masks)."""
    from types import SimpleNamespace

    from tests.makers import gradient, square_mask, write_dicom, write_png, write_series

    return SimpleNamespace(dicom=write_dicom, png=write_png, gradient=gradient,
                           square=square_mask, series=write_series)
