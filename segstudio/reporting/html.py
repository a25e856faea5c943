"""The run report as one self-contained HTML page (inline CSS, pictures as PNG data URIs, no
scripts and no reference to any other file, so that it can be mailed and opened anywhere), and
writing it."""

from __future__ import annotations

import base64
import math
from html import escape
from pathlib import Path

from ..errors import SegstudioError
from ..evaluation.evaluate import EvaluationReport, MetricRow, summarise
from ..files import check_writable, write_atomic
from ..palette import COMPARE, CORRECT, FALSE_POSITIVE, MISSED, WRONG_CLASS
from . import figures
from ..tasks import ProgressFn, StopFn
from .run_report import RunReport, gather
from .validation import CaseView, case_means

REPORT_NAME = "report.html"

CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1d2430;
 background:#f4f6f9;margin:0;line-height:1.45;font-size:14px}
main{max-width:1100px;margin:0 auto;padding:24px 28px 48px;background:#fff;min-height:100vh}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 10px;padding-bottom:4px;
 border-bottom:2px solid #e2e7ee}h3{font-size:15px;margin:18px 0 6px}
.sub{color:#5b6573;margin:0 0 16px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{flex:1 1 150px;border:1px solid #e2e7ee;border-radius:8px;padding:8px 12px;background:#fafbfd}
.card b{display:block;font-size:20px}.card span{color:#5b6573;font-size:12px}
.missing{background:#fff7e0;border:1px solid #f0c36d;border-radius:8px;padding:8px 14px;margin:12px 0}
.missing ul{margin:4px 0 4px 18px;padding:0}
.note{color:#5b6573;font-size:12.5px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid #e2e7ee;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f3f7;font-weight:600}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.kv th{width:230px}
tr:nth-child(even) td{background:#fbfcfd}
img{max-width:100%;height:auto;display:block;margin:6px 0}
figure{margin:10px 0 22px}figcaption{font-weight:600;margin-bottom:2px}
details summary{cursor:pointer;color:#2b5cbf}
pre{background:#f6f8fa;padding:10px;border-radius:6px;overflow-x:auto;font-size:12px}
.bad{color:#b03a2e}
.sw{display:inline-block;width:11px;height:11px;border-radius:2px;margin:0 3px 0 2px;vertical-align:-1px}
"""

GENERATOR = '<meta name="generator" content="segstudio report">'  # marks the files it may replace
MAX_SCANS = 100  # scans listed under Data
SETTINGS = (  # config.json keys shown, in order, with what they mean
    ("arch", "Network (U-Net encoder)"), ("pretrained", "Encoder pretrained"), ("weights_path", "Encoder weights file"),
    ("size", "Input size (pixels)"), ("input_mode", "Input"), ("scale", "Scale of the images (patches)"),
    ("norm", "Normalisation layers"), ("deep_supervision", "Deep supervision"), ("epochs", "Epochs"),
    ("bs", "Batch size"), ("schedule", "Learning-rate schedule"), ("freeze_epochs", "Frozen epochs (fine_tune)"),
    ("lr_lo", "Learning rate, first layers"), ("lr_hi", "Learning rate, last layers"), ("loss", "Loss"),
    ("augment", "Augmentation"), ("empty_share", "Share of batches without foreground"), ("seed", "Random seed"),
    ("precision", "Precision"), ("device", "Device asked for"), ("init_from", "Continued from run"),
)
DATA_SETTINGS = (  # config.json's data (its folders are under Data)
    ("valid_pct", "Validation share"),
    ("split_seed", "Split seed"), ("window", "Intensity window (W/L)"), ("labels", "Mask values read as"),
    ("class_names", "Class names given"), ("axis", "Scans sliced"), ("context", "Neighbouring slices (2.5-D)"),
)


def write_run_report(run_dir: str | Path, out: str | Path | None = None, progress: ProgressFn | None = None,
                     should_stop: StopFn | None = None, device: str = "auto", tolerance_mm: float = 1.0) -> Path:
    """The run's report as one self-contained HTML file at `out` (default: report.html in the
    run folder); its path. SegstudioError when `run_dir` is not a run folder, or `out` cannot
    be written or is a file this did not write (left alone); Cancelled when `should_stop()`
    turns True."""
    run_dir = Path(run_dir).expanduser()
    out = Path(out).expanduser() if out else run_dir / REPORT_NAME
    if out.is_dir():
        raise SegstudioError(f"{out} is a folder; give the report's file name (e.g. {out / REPORT_NAME})")
    if out.exists() and not _ours(out):
        raise SegstudioError(f"{out} exists and is not a report segstudio wrote; it is left alone. "
                             "Choose another file name.")
    check_writable(out.parent, "report's folder")
    report = gather(run_dir, progress, should_stop, device=device, tolerance_mm=tolerance_mm)
    (progress or (lambda *a: None))(0, 0, "Drawing the report")
    page = render(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, page)
    return out


def render(report: RunReport) -> str:
    """The whole page."""
    parts = [_header(report), _missing(report), _data(report), _settings(report), _curves(report),
             _cases(report), _pictures(report), _calibration(report), _versions(report)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">" + GENERATOR +
            f"<title>{escape(_title(report))}</title><style>{CSS}</style></head>"
            f"<body><main>{''.join(parts)}</main></body></html>\n")


def _ours(path: Path) -> bool:
    """Whether the file at `path` is a report this wrote (GENERATOR near its top)."""
    try:
        with open(path, "rb") as f:
            return GENERATOR.encode() in f.read(4096)
    except OSError:
        return False


def _title(report: RunReport) -> str:
    return f"Segmentation run {report.run_dir.name}"


def _header(report: RunReport) -> str:
    codes = report.codes
    cards = [("Classes", escape(", ".join(codes[1:]) or "unknown"))]  # (label, HTML)
    meta, outcome = report.meta or {}, report.outcome or {}
    if report.scores is not None and report.scores.rows:
        means = case_means(report.scores.rows)
        unit = report.scores.rows[0].distance_unit
        summary = summarise(EvaluationReport(report.scores.tolerance_mm, rows=report.scores.rows))
        cards.append(("Validation cases", str(len(means))))
        for key, label in (("dice", "Dice"), ("nsd", f"NSD at {report.scores.tolerance_mm:g} {unit}"),
                           ("hd95", f"HD95 ({unit})")):
            cards.append((f"Mean {label}", _class_means(summary, key, 2 if key == "hd95" else 3)))
    if meta.get("epoch"):
        cards.append(("Best model", escape(f"epoch {meta['epoch']}")))
    state = {"Finished": "finished", "Cancelled": "stopped", "Failed": "failed"}.get(outcome.get("event"), "")
    if state:
        done = outcome.get("epochs_done")
        cards.append(("Run", escape(state + (f" after {done} epoch(s)" if done is not None else ""))))
    device = (report.started or {}).get("device_name")
    if device:
        cards.append(("Trained on", escape(str(device))))
    html = [f"<h1>{escape(_title(report))}</h1>",
            f"<p class=\"sub\">Report written {escape(report.created)} by segstudio "
            f"{escape(report.versions.get('segstudio', ''))} from <code>{escape(str(report.run_dir))}</code></p>",
            "<div class=\"cards\">"]
    html += [f"<div class=\"card\"><span>{escape(k)}</span><b>{v}</b></div>" for k, v in cards]
    html.append("</div>")
    if outcome.get("event") == "Failed":
        html.append(f"<p class=\"bad\">The run failed: {escape(str(outcome.get('message', '')))}</p>")
    return "".join(html)


def _class_means(summary: dict, key: str, digits: int) -> str:
    """`key`'s mean per class, a line each (HTML)."""
    parts = []
    for entry in summary["classes"].values():
        mean = entry[key]["mean"]
        parts.append(f"<small>{escape(entry['name'])}</small> {_fmt(mean if mean is not None else math.nan, digits)}")
    return "<br>".join(parts) or "&ndash;"


def _missing(report: RunReport) -> str:
    if not report.missing:
        return ""
    items = "".join(f"<li>{escape(m)}</li>" for m in report.missing)
    return f"<div class=\"missing\"><b>Not in this report</b><ul>{items}</ul></div>"


def _data(report: RunReport) -> str:
    html = ["<h2>Data</h2>"]
    d, started = report.dataset, report.started or {}
    if d is not None:
        rows = [("Images folder", d.images_dir), ("Masks folder", d.masks_dir or "(none)")]
        if d.volumes:
            rows += [("Scans", f"{len(d.volumes)} usable ({d.layout} layout)"),
                     ("Slices", f"{d.n_train + d.n_valid} ({d.n_train} training, {d.n_valid} validation)")]
        else:
            rows.append(("Image/mask pairs", f"{d.n_pairs} ({d.n_train} training, {d.n_valid} validation)"))
        rows += [("Split", d.split), ("Masks", d.mask_convention)]
        if d.n_unlabelled:
            rows.append(("Unlabelled", f"{d.n_unlabelled} image(s) without a mask (not used)"))
        html.append(_kv(rows))
        if d.classes:
            html.append("<h3>Classes</h3><table><tr><th>#</th><th>Class</th><th>Mask value</th>"
                        f"<th>Share of {'voxels' if d.volumes else 'pixels'}</th></tr>")
            html += [f"<tr><td class=\"n\">{c.index}</td><td>{escape(c.name)}</td><td>{escape(str(c.value))}</td>"
                     f"<td class=\"n\">{c.pixel_share:.2%}</td></tr>" for c in d.classes]
            html.append("</table>")
        if d.volumes:
            scores = report.scores
            valid = {r.case for r in scores.rows} | {c for c, _ in scores.problems} if scores is not None else set()
            html.append("<h3>Scans</h3><table><tr><th>Scan</th><th>Voxels (x&times;y&times;z)</th>"
                        "<th>Spacing (mm)</th><th>Orientation</th><th>Slices</th><th>Used for</th></tr>")
            for v in d.volumes[:MAX_SCANS]:
                (z, y, x), (dz, dy, dx) = v.shape, v.spacing
                used = "validation" if v.name in valid else "training" if valid else ""
                html.append(f"<tr><td>{escape(v.name)}</td><td class=\"n\">{x}&times;{y}&times;{z}</td>"
                            f"<td class=\"n\">{dx:.3g}&times;{dy:.3g}&times;{dz:.3g}</td>"
                            f"<td>{escape(v.orientation or '?')}</td><td class=\"n\">{v.slices}</td>"
                            f"<td>{used}</td></tr>")
            html.append("</table>")
            if len(d.volumes) > MAX_SCANS:
                html.append(f"<p class=\"note\">&hellip; and {len(d.volumes) - MAX_SCANS} more scans.</p>")
        html.append(f"<details><summary>The dataset report, as the app shows it</summary>"
                    f"<pre>{escape(d.format())}</pre></details>")
    else:
        folders = (report.config or {}).get("data") or {}
        rows = [("Images folder", folders.get("images", "")), ("Masks folder", folders.get("masks", ""))]
        if started:
            rows += [("Training items", str(started.get("n_train", "?"))),
                     ("Validation items", str(started.get("n_valid", "?")))]
        html.append(_kv(rows) if any(v for _, v in rows) else "")
        html.append("<p class=\"note\">The data was not read for this report (see &ldquo;Not in this report&rdquo;)"
                    + ("; the counts are those the run recorded when it started." if started else ".") + "</p>")
    window = (report.meta or {}).get("window") or ((report.config or {}).get("data") or {}).get("window")
    if window:
        html.append(f"<p class=\"note\">Intensity window the model was trained with: <b>{escape(str(window))}</b> "
                    "(width/level in Hounsfield units for CT; &ldquo;auto&rdquo;, &ldquo;file&rdquo; or "
                    "&ldquo;percentile&rdquo;: each image's own).</p>")
    return "".join(html)


def _settings(report: RunReport) -> str:
    html = ["<h2>Settings</h2>"]
    config = report.config
    if config is None:
        return html[0] + "<p class=\"note\">config.json is missing: the settings are not known.</p>"
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    hidden = {"scale"} if config.get("input_mode") != "patches" else set()
    hidden |= {"freeze_epochs"} if config.get("schedule") != "fine_tune" else set()
    hidden |= {"axis", "context"} if "volumes" not in (report.meta or {}) else set()
    rows = [(label, _setting(config.get(key))) for key, label in SETTINGS
            if key in config and config.get(key) != "" and key not in hidden]
    rows += [(label, _setting(data.get(key))) for key, label in DATA_SETTINGS
             if data.get(key) not in (None, "", []) and key not in hidden]
    meta = report.meta or {}
    if meta.get("input", {}).get("mode") == "patches":
        rows.append(("Patches", f"{meta['input'].get('patch')} px at scale {meta['input'].get('scale')}, "
                                f"{meta['input'].get('overlap', 0.5):.0%} overlap when predicting"))
    if "temperature" in meta:
        rows.append(("Temperature (model.json)", _setting(meta["temperature"])))
    html.append(_kv(rows))
    if report.warnings:
        html.append("<h3>Warnings during training</h3><ul>")
        html += [f"<li>{escape(w)}</li>" for w in report.warnings]
        html.append("</ul>")
    return "".join(html)


def _curves(report: RunReport) -> str:
    html = ["<h2>Learning curves</h2>"]
    if not report.history:
        return html[0] + "<p class=\"note\">No learning curves: metrics.json is missing or empty.</p>"
    best = (report.meta or {}).get("epoch")
    html.append(_img(figures.learning_curves(report.history, report.codes, best), "learning curves"))
    html.append("<p class=\"note\">Dice here is the validation Dice the run tracked after each epoch (over all "
                "validation pixels, at the training size; per scan in 3-D). The table below scores the best "
                "model case by case at each image's own resolution.</p>")
    return "".join(html)


def _cases(report: RunReport) -> str:
    html = ["<h2>Validation cases, worst first</h2>"]
    scores = report.scores
    if scores is None or not scores.rows:
        return html[0] + "<p class=\"note\">No per-case metrics (see &ldquo;Not in this report&rdquo;).</p>"
    rows = scores.rows
    unit, tol = rows[0].distance_unit, scores.tolerance_mm
    classes = sorted({(r.label, r.class_name) for r in rows})
    by_case: dict[str, dict[int, MetricRow]] = {}
    for r in rows:
        by_case.setdefault(r.case, {})[r.label] = r
    html.append(f"<p class=\"note\">{len(by_case)} case(s), {escape(report.rows_from)}. Dice and NSD "
                f"(normalised surface distance at {tol:g} {unit}) run from 0 to 1, higher is better; HD95 "
                f"(95th percentile Hausdorff distance) in {unit}, lower is better. &ndash;: not defined (the class "
                "is in neither truth nor prediction; HD95 also when it is in only one).</p>")
    html.append("<table><tr><th rowspan=\"2\">#</th><th rowspan=\"2\">Case</th><th rowspan=\"2\">Mean Dice</th>")
    html += [f"<th colspan=\"3\">{escape(name)}</th>" for _, name in classes]
    html.append("<th rowspan=\"2\">Notes</th></tr><tr>")
    html += [f"<th>Dice</th><th>NSD</th><th>HD95</th>" for _ in classes]
    html.append("</tr>")
    for n, (case, mean) in enumerate(case_means(rows).items(), start=1):
        cells, notes = [], []
        for label, name in classes:
            r = by_case[case].get(label)
            if r is None:
                cells.append("<td></td><td></td><td></td>")
                continue
            cells.append(f"{_dice_cell(r.dice)}<td class=\"n\">{_fmt(r.nsd)}</td>"
                         f"<td class=\"n\">{_fmt(r.hd95, 2)}</td>")
            if r.empty == "truth":
                notes.append(f"{name}: predicted, not in truth")
            elif r.empty == "prediction":
                notes.append(f"{name}: in truth, not predicted")
        html.append(f"<tr><td class=\"n\">{n}</td><td>{escape(case)}</td>{_dice_cell(mean)}{''.join(cells)}"
                    f"<td>{escape('; '.join(notes))}</td></tr>")
    html.append("</table>")
    if scores.problems:
        html.append("<p class=\"bad\">Not scored:</p><ul>")
        html += [f"<li>{escape(case)}: {escape(why)}</li>" for case, why in scores.problems]
        html.append("</ul>")
    return "".join(html)


def _pictures(report: RunReport) -> str:
    html = ["<h2>Worst and best cases</h2>"]
    scores = report.scores
    if scores is None or not (scores.worst or scores.best):
        return html[0] + "<p class=\"note\">No pictures (see &ldquo;Not in this report&rdquo;).</p>"
    where = ("axial, coronal and sagittal planes through the centre of the structure the case scores worst "
             "on, at the scan's physical proportions" if scores.scans else "each image at its own size")
    html.append(f"<p class=\"note\">The best model's prediction of validation cases, {where}. Compare: "
                f"{_swatch(CORRECT)} (the true class), {_swatch(FALSE_POSITIVE)} (foreground predicted on "
                f"background), {_swatch(MISSED)} (foreground predicted as background), {_swatch(WRONG_CLASS)} "
                "(another foreground class predicted).</p>")
    shown = (("Worst", scores.worst), ("Best", scores.best)) if scores.best else (("All, worst first", scores.worst),)
    for title, views in shown:
        if views:
            html.append(f"<h3>{title}</h3>")
            html += [_case_picture(v, report.codes) for v in views]
    return "".join(html)


def _case_picture(view: CaseView, codes: list[str]) -> str:
    through = f"; planes through {escape(view.focus)}" if view.focus else ""
    return (f"<figure><figcaption>{escape(view.case)} &mdash; mean Dice {_fmt(view.dice_mean)}{through}</figcaption>"
            f"{_img(figures.case_figure(view, codes), view.case)}</figure>")


def _swatch(value: int) -> str:
    """A compare-map colour and its name."""
    name, (r, g, b) = COMPARE[value]
    return f"<span class=\"sw\" style=\"background:rgb({r},{g},{b})\"></span><b>{escape(name)}</b>"


def _calibration(report: RunReport) -> str:
    html = ["<h2>Calibration</h2>"]
    c = report.scores.calibration if report.scores is not None else None
    if c is None:
        return html[0] + "<p class=\"note\">No calibration (see &ldquo;Not in this report&rdquo;).</p>"
    change = "lowers" if c.after.ece < c.before.ece else "does not lower"
    html.append(f"<p>Expected calibration error (ECE, {len(c.before.counts)} equal-width confidence bins, each "
                "pixel a sample): "
                f"<b>{c.before.ece:.4f}</b> as the model predicts; <b>{c.after.ece:.4f}</b> with a temperature "
                f"of <b>{c.temperature:.3g}</b> (one scalar dividing the logits, fitted on the validation cases; "
                f"T &gt; 1 softens over-confident probabilities, T &lt; 1 sharpens them; the masks do not change). "
                f"The temperature {change} the ECE here.</p>")
    html.append(_img(figures.reliability_figure(c), "reliability diagram"))
    html.append(f"<p class=\"note\">From {escape(report.calibration_from)}. A well calibrated model's bars follow "
                "the diagonal: of the pixels predicted with 90% confidence, 90% are right. The temperature is "
                "fitted and measured on the same cases, so the second ECE is an optimistic estimate. The "
                "percentages are each bin's share of the pixels.</p>")
    return "".join(html)


def _versions(report: RunReport) -> str:
    rows = list(report.versions.items())
    trained = (report.meta or {}).get("segstudio")
    if trained:
        rows.insert(1, ("segstudio that trained the model", trained))
    started = report.started or {}
    if started:
        precision = ", mixed precision" if started.get("mixed_precision") else ""
        rows.append(("Trained on", f"{started.get('device_name', started.get('device', '?'))}{precision}"))
    if report.device:
        rows.append(("Predicted for this report on", report.device))
    return "<h2>Versions and device</h2>" + _kv(rows)


def _kv(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows if v not in (None, ""))
    return f"<table class=\"kv\">{body}</table>"


def _setting(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def _img(data: bytes, alt: str) -> str:
    return f"<img alt=\"{escape(alt)}\" src=\"data:image/png;base64,{base64.b64encode(data).decode('ascii')}\">"


def _fmt(value: float, digits: int = 3) -> str:
    return "&ndash;" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _dice_cell(value: float) -> str:
    """A Dice cell shaded from red (0) through yellow to green (1)."""
    if value is None or not math.isfinite(value):
        return "<td class=\"n\">&ndash;</td>"
    hue = round(120 * max(0.0, min(1.0, value)))
    return f"<td class=\"n\" style=\"background:hsl({hue},70%,88%)\">{value:.3f}</td>"

