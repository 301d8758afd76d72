"""Reports: papermill runs a notebook with parameters, nbconvert renders it to HTML without code.

Output lands in `<out>/<YYYY-MM-DD>/<name>-<HHMMSS>.{ipynb,html}`; a failed run leaves nothing.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quantdesk.errors import QuantdeskError

NOTEBOOKS_ENV = "QUANTDESK_NOTEBOOKS"
HIDDEN_TAG = "hide-in-report"


class ReportError(QuantdeskError):
    """A report notebook is unknown, got bad parameters, or failed to run."""


@dataclass(frozen=True)
class ReportPaths:
    """Where a rendered report and its executed notebook were written."""

    html: Path
    notebook: Path


def repo_notebooks_dir() -> Path:
    """The notebooks/ folder of the source checkout (next to platform/)."""
    return Path(__file__).resolve().parents[2] / "notebooks"


def notebooks_dir(override: str | Path | None = None) -> Path:
    """override, else $QUANTDESK_NOTEBOOKS, else ./notebooks, else the checkout's notebooks/."""
    if override:
        return Path(override)
    if os.environ.get(NOTEBOOKS_ENV):
        return Path(os.environ[NOTEBOOKS_ENV])
    local = Path.cwd() / "notebooks"
    return local if local.is_dir() else repo_notebooks_dir()


def find_notebook(name: str, folder: str | Path | None = None) -> Path:
    """notebooks/NAME.ipynb (or dashboards/NAME.ipynb with folder=.../dashboards)."""
    base = notebooks_dir(folder)
    path = base / f"{name}.ipynb"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in base.glob("*.ipynb"))) or "none"
        raise ReportError(f"unknown notebook {name!r} in {base} (available: {known})")
    return path


def parse_value(text: str) -> Any:
    """A -p value: JSON when it parses (10, 0.001, null, {"fast": 5}), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_params(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """(name, text) pairs from `-p name value` into typed notebook parameters."""
    return {name: parse_value(text) for name, text in pairs}


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The parameters a notebook declares in its `parameters` cell."""
    import papermill as pm

    return dict(pm.inspect_notebook(str(path)))


def run_report(
    name: str,
    params: Mapping[str, Any] | None = None,
    out_dir: str | Path = "reports",
    notebooks: str | Path | None = None,
    now: datetime | None = None,
    progress: bool = True,
) -> ReportPaths:
    """Execute notebook NAME with params and render it as HTML without code cells."""
    import papermill as pm

    path = find_notebook(name, notebooks)
    params = dict(params or {})
    declared = notebook_parameters(path)
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ReportError(
            f"notebook {name} has no parameter {unknown[0]!r} (parameters: {', '.join(declared)})"
        )
    now = now or datetime.now(UTC)
    folder = Path(out_dir) / f"{now:%Y-%m-%d}"
    stem = f"{name}-{now:%H%M%S}"
    n = 1
    while (folder / f"{stem}.html").exists():  # two reports in one second keep both
        n += 1
        stem = f"{name}-{now:%H%M%S}-{n}"
    with tempfile.TemporaryDirectory(prefix="quantdesk-report-") as tmp:
        executed = Path(tmp) / f"{stem}.ipynb"
        try:
            pm.execute_notebook(
                str(path),
                str(executed),
                parameters=params,
                kernel_name="python3",
                progress_bar=progress,
                cwd=str(Path.cwd()),
                # Keep the kernel's own log (transport warnings) out of the user's terminal.
                extra_arguments=["--IPKernelApp.log_level=ERROR"],
            )
        except pm.PapermillExecutionError as exc:
            raise ReportError(f"notebook {name} failed: {exc.ename}: {exc.evalue}") from None
        html = render_html(executed)
        folder.mkdir(parents=True, exist_ok=True)
        notebook_out, html_out = folder / f"{stem}.ipynb", folder / f"{stem}.html"
        write_text_atomic(html_out, html)
        write_text_atomic(notebook_out, executed.read_text(encoding="utf-8"))
    return ReportPaths(html=html_out, notebook=notebook_out)


def render_html(notebook: Path) -> str:
    """HTML of an executed notebook with code cells, prompts and cells tagged
    `hide-in-report` (checks for nbval, not for readers) left out."""
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    exporter = HTMLExporter(
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True
    )
    exporter.register_preprocessor(
        TagRemovePreprocessor(remove_cell_tags={HIDDEN_TAG}, enabled=True), enabled=True
    )
    body, _ = exporter.from_notebook_node(nbformat.read(str(notebook), as_version=4))
    return body


def write_text_atomic(path: Path, text: str) -> None:
    """Write text whole or not at all (temp file + rename), readable by all like a report."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # reports are for sharing, not private temp files
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
