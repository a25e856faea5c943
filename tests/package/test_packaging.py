"""Packaging: resources are found from a checkout, a wheel and a frozen bundle; the desktop entry
installs and uninstalls; a process without stdout/stderr still runs."""

import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from segstudio.cli import desktop_entry
from segstudio.cli import main as cli
from segstudio.resource_paths import SHIPPED, find_resources

ROOT = Path(__file__).resolve().parents[2]
PRINT_RESOURCES = "from segstudio.resource_paths import resources_dir; print(resources_dir())"


def run_python(code: str, pythonpath: Path, cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def wheel_tree(tmp_path_factory) -> Path:
    """The segstudio wheel built from this checkout, unpacked as site-packages would hold it."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob("segstudio-*.whl")
    site = out / "site"
    zipfile.ZipFile(wheel).extractall(site)
    return site


def test_checkout_finds_top_level_resources():
    assert find_resources(ROOT / "segstudio") == ROOT / "resources"


@pytest.mark.slow
def test_wheel_ships_every_package_and_the_resources(wheel_tree, tmp_path):
    packages = {p.parent.relative_to(ROOT) for p in (ROOT / "segstudio").rglob("__init__.py")}
    missing = [str(p) for p in packages if not (wheel_tree / p / "__init__.py").is_file()]
    assert not missing, f"add these packages to pyproject's [tool.setuptools] packages: {missing}"
    for name in SHIPPED:
        assert (wheel_tree / "segstudio" / "resources" / name).exists(), name
    assert not (wheel_tree / "segstudio" / "resources" / "screenshots").exists()
    # imported from the unpacked wheel, away from the checkout
    assert run_python(PRINT_RESOURCES, wheel_tree, tmp_path) == str(wheel_tree / "segstudio" / "resources")


@pytest.mark.slow
def test_self_test_passes_from_the_wheel(wheel_tree, tmp_path):
    """The installed-wheel layout end to end: window, icons and styles from site-packages, training, predicting."""
    env = {**os.environ, "PYTHONPATH": str(wheel_tree), "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-m", "segstudio", "--self-test"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("ok    resources")]
    assert line.endswith(str(wheel_tree / "segstudio" / "resources"))
    assert "self-test passed" in done.stdout


@pytest.mark.slow
def test_frozen_layout_finds_resources(wheel_tree, tmp_path):
    """PyInstaller's one-folder layout: modules and data under _internal/, as segstudio.spec lays them out."""
    internal = tmp_path / "bundle" / "_internal"
    shutil.copytree(wheel_tree / "segstudio", internal / "segstudio",
                    ignore=shutil.ignore_patterns("resources"))
    for name in SHIPPED:
        src, dest = ROOT / "resources" / name, internal / "segstudio" / "resources" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, dest) if src.is_dir() else shutil.copyfile(src, dest)
    code = f"import sys; sys.frozen = True; sys._MEIPASS = {str(internal)!r}; {PRINT_RESOURCES}"
    assert run_python(code, internal, tmp_path) == str(internal / "segstudio" / "resources")


def test_missing_resources_give_none(tmp_path):
    (tmp_path / "segstudio").mkdir()
    assert find_resources(tmp_path / "segstudio") is None


def test_desktop_entry_installs_and_uninstalls(tmp_path):
    command = ["/opt/seg studio/segstudio"]
    written = desktop_entry.install(tmp_path, command)
    entry_path = tmp_path / "applications" / f"{desktop_entry.APP_ID}.desktop"
    assert entry_path in written and all(p.is_file() and p.stat().st_size > 0 for p in written)
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(entry_path)
    section = entry["Desktop Entry"]
    assert section["Exec"] == '"/opt/seg studio/segstudio"'
    assert section["TryExec"] == "/opt/seg studio/segstudio"
    assert section["Icon"] == desktop_entry.APP_ID and section["Type"] == "Application"
    assert section["Categories"].endswith(";")
    icons = tmp_path / "icons" / "hicolor"
    for n in desktop_entry.ICON_SIZES:
        assert (icons / f"{n}x{n}" / "apps" / f"{desktop_entry.APP_ID}.png").is_file()
    assert (icons / "scalable" / "apps" / f"{desktop_entry.APP_ID}.svg").is_file()
    assert (tmp_path / "metainfo" / f"{desktop_entry.APP_ID}.metainfo.xml").is_file()

    assert sorted(desktop_entry.uninstall(tmp_path)) == sorted(written)
    assert not any(p.exists() for p in written)
    assert desktop_entry.uninstall(tmp_path) == []


def test_uninstall_works_without_resources(tmp_path, monkeypatch):
    written = desktop_entry.install(tmp_path, ["/usr/bin/segstudio"])
    monkeypatch.setattr(desktop_entry, "resources_dir", lambda: None)
    with pytest.raises(desktop_entry.SegstudioError):
        desktop_entry.install(tmp_path, ["/usr/bin/segstudio"])
    assert sorted(desktop_entry.uninstall(tmp_path)) == sorted(written)


def test_exec_and_tryexec_are_escaped_as_strings_after_quoting():
    template = "[Desktop Entry]\nExec=segstudio\nTryExec=segstudio\nName=x"
    text = desktop_entry.desktop_entry_text(template, ['/x/$HOME"q', "--flag"])
    assert 'Exec="/x/\\\\$HOME\\\\"q" --flag' in text.splitlines()
    text = desktop_entry.desktop_entry_text(template, ["/opt/back\\slash/segstudio"])
    # a literal backslash: quoted to two, then string-escaped to four (the spec's own example)
    assert 'Exec="/opt/back\\\\\\\\slash/segstudio"' in text.splitlines()
    assert "TryExec=/opt/back\\\\slash/segstudio" in text.splitlines()
    assert text.endswith("Name=x\n")


def test_icon_pngs_have_their_sizes():
    from PIL import Image

    for n in desktop_entry.ICON_SIZES:
        with Image.open(ROOT / "resources" / desktop_entry.icon_png(n)) as im:
            assert im.size == (n, n) and im.mode == "RGBA"


@pytest.mark.parametrize("arg, quoted", [
    ("/usr/bin/segstudio", "/usr/bin/segstudio"),
    ("/home/a b/segstudio", '"/home/a b/segstudio"'),
    ('/x/$HOME"q', '"/x/\\$HOME\\"q"'),
    ("/x/100%", "/x/100%%"),
])
def test_exec_arguments_are_quoted_per_spec(arg, quoted):
    assert desktop_entry.quote_exec_arg(arg) == quoted


def test_launch_command_is_this_installation():
    command = desktop_entry.launch_command()
    assert Path(command[0]).is_absolute()
    assert command[-1] == "segstudio" or Path(command[0]).name.startswith("segstudio")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="freedesktop entries are for Linux")
def test_cli_installs_into_xdg_data_home(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert cli.main(["--install-desktop-entry"]) == 0
    assert (tmp_path / "applications" / f"{desktop_entry.APP_ID}.desktop").is_file()
    assert "applications menu" in capsys.readouterr().out
    assert cli.main(["--uninstall-desktop-entry"]) == 0
    assert not (tmp_path / "applications" / f"{desktop_entry.APP_ID}.desktop").exists()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("appstreamcli") is None, reason="appstreamcli is not installed")
def test_metainfo_validates():
    path = ROOT / "resources" / "linux" / f"{desktop_entry.APP_ID}.metainfo.xml"
    done = subprocess.run(["appstreamcli", "validate", "--no-net", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_process_without_stdout_gets_a_sink(monkeypatch):
    monkeypatch.setattr(sys, "stdout", None)
    monkeypatch.setattr(sys, "stderr", None)
    cli.prepare_process()
    print("written to the sink", file=sys.stdout)
    sys.stderr.write("and this\n")
    assert sys.stdout is not None and sys.stderr is not None
