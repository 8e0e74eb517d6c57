"""End to end in a real browser: a smoke run of the quickstart fills an MLflow store, `mlflow
server` serves it on 127.0.0.1, and headless Chromium (driven by Playwright) checks what a user
sees: the experiment page lists the sweep with its nested member runs and the `ensemble` run, and
the ensemble run's PNG artifacts load as images. Screenshots go to pytest's tmp dir and, if the
environment variable RUNNER_SCREENSHOT_DIR is set, are copied there.

The browser is Debian's `chromium` (`.ci/run` installs it when apt is available), or any Chromium
Playwright can find. The test skips only when there is no browser to drive."""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from helpers import free_port

pytestmark = pytest.mark.slow

NO_BROWSER = (
    "no headless Chromium: install Debian's chromium (apt-get install chromium) and "
    "`pip install playwright` (in the dev extra)"
)
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
RUN_NAME_CELL = '[role="gridcell"][col-id="attributes.`Run Name`"]'
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# the "Model training" view of the UI (MLflow 3 opens experiments in its GenAI view)
ML_VIEW = "workflowType=machine_learning"
FETCH_BYTES = "async url => Array.from(new Uint8Array(await (await fetch(url)).arrayBuffer()))"


def chromium_executable() -> str | None:
    """A Chromium binary: the system's (Debian's chromium), else Playwright's own download."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            bundled = p.chromium.executable_path
    except Exception:
        return None
    return bundled if bundled and Path(bundled).exists() else None


@pytest.fixture(scope="module")
def chromium() -> str:
    """The Chromium binary to drive, or a skip: checked before the (slow) smoke run."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip(NO_BROWSER)
    executable = chromium_executable()
    if executable is None:
        pytest.skip(NO_BROWSER)
    return executable


@pytest.fixture
def mlflow_ui(chromium: str, smoke_run, tmp_path: Path) -> Iterator[dict]:
    """A store filled by a real smoke run, served by `mlflow server` on 127.0.0.1."""
    run = smoke_run("quickstart")  # the smoke run test_experiments checks, if it ran first
    workdir, db, summary = run.workdir, run.db, run.summary

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no job runner: fewer processes
    log_path = tmp_path / "mlflow_server.log"
    with open(log_path, "wb") as log:
        # the runs' artifact URIs are absolute local paths (workdir/mlruns/...): the server
        # reads them directly, in the cwd the run had
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                db,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: uvicorn is a child process
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, log_path.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.5)
        yield {"base": base, "client": MlflowClient(db), "summary": summary, "executable": chromium}
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=15)


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, path
    return struct.unpack(">II", head[16:24])


def close_assistant(page) -> None:
    """Close the MLflow Assistant side panel, if the UI shows one, for a clearer screenshot."""
    close = page.get_by_role("button", name="Close", exact=True)
    if close.count() == 1 and close.is_visible():
        close.click()


def test_mlflow_ui_shows_the_run_tree_and_the_ensemble_images(mlflow_ui, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base, client, summary = mlflow_ui["base"], mlflow_ui["client"], mlflow_ui["summary"]
    experiment = client.get_experiment_by_name("quickstart")
    parent_name = client.get_run(summary["parent_run_id"]).info.run_name
    members = [row["name"] for row in summary["members"]]
    ensemble_id = summary["ensemble"]["run_id"]
    assert client.get_run(ensemble_id).info.run_name == "ensemble"
    pngs = sorted(a.path for a in client.list_artifacts(ensemble_id) if a.path.endswith(".png"))
    assert {"weights.png", "diversity_heatmap.png"} <= set(pngs)

    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=mlflow_ui["executable"], headless=True)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(30_000)
        try:
            # the experiment page: one top-level row, the sweep, with its runs nested under it
            page.goto(f"{base}/#/experiments/{experiment.experiment_id}/runs?{ML_VIEW}")
            names = page.locator(RUN_NAME_CELL)
            parent_cell = names.filter(has_text=parent_name)
            expect(parent_cell).to_have_count(1)
            expect(page.get_by_text(f"{len(members) + 2} matching runs")).to_be_visible()
            expect(names).to_have_count(1)  # members and ensemble collapsed under the sweep
            parent_cell.locator("button").first.click()  # expand the nested runs
            expect(names).to_have_count(len(members) + 2)
            for name in ["ensemble", *members]:
                expect(names.filter(has_text=name).first).to_be_visible()
            texts = [" ".join(t.split()) for t in names.all_inner_texts()]
            assert parent_name in texts[0], texts  # the sweep first, its children below it
            close_assistant(page)
            page.screenshot(path=str(shots / "mlflow_ui_experiment.png"), full_page=True)

            # the ensemble run's artifacts: every PNG loads in the browser at its real size
            page.goto(
                f"{base}/#/experiments/{experiment.experiment_id}/runs/{ensemble_id}"
                f"/artifacts?{ML_VIEW}"
            )
            for png in pngs:
                local = Path(client.download_artifacts(ensemble_id, png, str(tmp_path / "ens")))
                width, height = png_size(local)
                with page.expect_response(
                    lambda r, png=png: "get-artifact" in r.url and png in r.url
                ) as fetched:
                    page.get_by_text(png, exact=True).click()
                response = fetched.value
                assert response.status == 200, (png, response.status)
                # the bytes behind the URL the UI used (Playwright's response.body() is empty
                # for these `Content-Disposition: attachment` answers): fetch it in the page
                served = page.evaluate(FETCH_BYTES, response.url)
                assert bytes(served) == local.read_bytes(), png
                shown = page.wait_for_function(
                    """([w, h]) => [...document.images].some(i => i.complete &&
                        i.naturalWidth === w && i.naturalHeight === h &&
                        i.getBoundingClientRect().width > 0)""",
                    arg=[width, height],
                )
                assert shown.json_value() is True, png
                close_assistant(page)
                page.screenshot(path=str(shots / f"mlflow_ui_ensemble_{Path(png).stem}.png"))
        except BaseException:
            page.screenshot(path=str(shots / "mlflow_ui_failure.png"), full_page=True)
            raise
        finally:
            browser.close()
            target = os.environ.get("RUNNER_SCREENSHOT_DIR")
            if target:
                Path(target).mkdir(parents=True, exist_ok=True)
                for shot in shots.glob("*.png"):
                    shutil.copy2(shot, Path(target) / shot.name)

    assert (shots / "mlflow_ui_experiment.png").stat().st_size > 0
