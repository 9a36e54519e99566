"""The published leaderboard page in headless Chromium: it loads from a file with no network, the
table sorts on a header click, a model name holding markup shows as text (and never runs), and a
screenshot is a real PNG.

Needs Debian's chromium and chromium-driver (`apt-get install -y chromium chromium-driver`) and
selenium from PyPI (the `dev` extra); skipped with the reason when they are missing."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from longctx.evals.leaderboard import build_board, write_board
from longctx.evals.leaderboard_page import render_page
from longctx.evals.plot import make_plots
from synthetic_results import write_bench, write_model

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install -e '.[dev]'")
if not CHROMIUM.exists() or not DRIVER.exists():
    pytest.skip("headless Chromium is not installed: apt-get install -y chromium chromium-driver", allow_module_level=True)

EVIL = "zoo:<script>window.__pwned=1</script>"
EVIL_IMG = 'hf:/m/<img src=x onerror="window.__pwned=2">'
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--window-size=1400,900")


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("page")
    ctxs = (4096, 8192)
    for spec, scores in (("zoo:ssa@tiny", (0.9, 0.7)), (EVIL, (0.5, 0.2)), (EVIL_IMG, (1.0, 0.95)), ("zoo:dense", (0.95, 0.9))):
        write_model(root / "results", spec, {"niah_single_1": dict(zip(ctxs, scores))}, n=10)
    bench = write_bench(root / "bench.json", {"ssa": 1.2, "sdpa_flash": 2.0})
    board = build_board([root / "results"], "demo", bench=bench)
    plots = make_plots("cost", None, bench, None, root / "plots", ("png",), 85.6)
    out = root / "lb"
    write_board(board, out)
    path = out / "index.html"
    path.write_text(render_page(board, out, plots[0].parent), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def driver():
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS + (f"--user-data-dir={profile}",):
        options.add_argument(flag)
    d = webdriver.Chrome(service=Service(executable_path=str(DRIVER)), options=options)
    yield d
    d.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _models(driver) -> list[str]:
    return driver.execute_script("return Array.from(document.querySelectorAll('#board tbody tr')).map(r => r.cells[0].textContent)")


def _header(driver, label: str):
    from selenium.webdriver.common.by import By

    return next(th for th in driver.find_elements(By.CSS_SELECTOR, "#board thead th") if th.text.strip() == label)


def test_page_loads_from_file_with_every_model(driver, page):
    driver.get(page.as_uri())
    assert driver.title == "Leaderboard: demo"
    assert sorted(_models(driver)) == sorted(["zoo:ssa@tiny", EVIL, EVIL_IMG, "zoo:dense"])
    assert driver.execute_script("return document.querySelectorAll('#details details img').length") == 4  # a plot per model
    assert driver.execute_script("return document.querySelector('#plots img').getAttribute('src')") == "../plots/cost.png"
    assert driver.execute_script("return document.querySelector('#kernels').textContent").count("n^") == 2
    assert driver.execute_script("return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")  # all drawn
    # hovering a length's cell says which tasks its average covers
    assert driver.execute_script("return document.querySelector('#board tbody tr').cells[6].title") == "average of 1 task: niah_single_1"


def test_markup_in_a_model_name_is_text(driver, page):
    driver.get(page.as_uri())
    assert EVIL in _models(driver) and EVIL_IMG in _models(driver)
    assert driver.execute_script("return window.__pwned") is None
    assert driver.execute_script("return document.querySelectorAll('#board script, #board img, #details summary *').length") == 0


def test_clicking_a_header_sorts_the_table(driver, page):
    driver.get(page.as_uri())
    _header(driver, "average").click()
    assert _models(driver) == [EVIL_IMG, "zoo:dense", "zoo:ssa@tiny", EVIL]  # best first
    assert _header(driver, "average").get_attribute("aria-sort") == "descending"
    _header(driver, "average").click()
    assert _models(driver) == [EVIL, "zoo:ssa@tiny", "zoo:dense", EVIL_IMG]
    _header(driver, "model").click()
    assert _models(driver) == [EVIL_IMG, EVIL, "zoo:dense", "zoo:ssa@tiny"]  # text columns sort A-Z first


def test_screenshot_is_a_png(driver, page, tmp_path):
    driver.get(page.as_uri())
    png = driver.get_screenshot_as_png()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    (tmp_path / "leaderboard.png").write_bytes(png)


@pytest.fixture(scope="module")
def mixed_page(tmp_path_factory) -> Path:
    """One model scored on one RULER task at 4K and 8K and on three at 16K, by two runs."""
    import json

    root = tmp_path_factory.mktemp("mixed")
    scores = {"niah_single_1": {4096: 1.0, 8192: 0.9, 16384: 0.8}, "vt": {16384: 0.2}, "cwe": {16384: 0.2}}
    folder = write_model(root / "results", "hf:/m/smol.gguf", scores, n=4)
    summary = json.loads((folder / "summary.json").read_text())
    summary.pop("ruler_average")  # the board recomputes the average from the cells, with its task sets
    (folder / "summary.json").write_text(json.dumps(summary))
    man = json.loads((folder / "manifest.json").read_text())
    man["training"] = {"steps": 6000, "tokens_seen": 98_304_000, "phases": [
        {"from": "scratch", "steps": 4000, "tokens_seen": 65_536_000, "batch": 32, "seq_len": 512, "lr": 0.001, "pose_span": 0},
        {"from": "x", "steps": 2000, "tokens_seen": 32_768_000, "batch": 16, "seq_len": 1024, "lr": 0.001, "pose_span": 1048576}]}
    man["mqar"] = {"accuracy": 0.2562, "dense_accuracy": 0.9795, "dense_tried": [0.9795, 0.258, 0.257],
                   "tried": [{"lr": 0.01, "accuracy": 0.2562}, {"lr": 0.003, "accuracy": 0.249}],
                   "source": "benchmarks/zoo/mqar_cpu.json",
                   "setup": {"n_layers": 2, "d_model": 64, "seq_len": 64, "pairs": 4, "steps": 2000}}
    (folder / "manifest.json").write_text(json.dumps(man))
    runs = [{**man, "command": "evals run niah_single_1 --ctx 4k,8k -n 4", "samples": 4},
            {**man, "command": "evals run niah_single_1,vt,cwe --ctx 16k -n 4 --model openai:smol@http://x/v1", "samples": 4,
             "generation": {"endpoint": "chat", "answer_prefix": False}}]
    (folder / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    board = build_board([root / "results"], "mixed")
    out = root / "lb"
    write_board(board, out)
    path = out / "index.html"
    path.write_text(render_page(board, out, None), encoding="utf-8")
    return path


def test_a_length_with_fewer_tasks_shows_the_count_not_a_score(driver, mixed_page):
    driver.get(mixed_page.as_uri())
    cells = driver.execute_script("return Array.from(document.querySelector('#board tbody tr').cells).map(c => c.textContent)")
    assert cells[6:9] == ["(1/3 tasks)", "(1/3 tasks)", "40.0"]  # 4K and 8K averaged one task, 16K three


def test_model_details_list_every_run(driver, mixed_page):
    driver.get(mixed_page.as_uri())
    text = driver.execute_script("return document.querySelector('#model-0 dl').textContent")
    assert "evals run niah_single_1 --ctx 4k,8k -n 4" in text and "openai:smol@http://x/v1" in text
    assert "(run 2 of 2)" in text and "endpoint chat; no answer prefix" in text
    assert "6000 steps, 98.3M tokens: 4000 × 32 × 512 at lr 0.001, then 2000 × 16 × 1024 at lr 0.001 with PoSE" in text
    assert "25.6%, best of 2 runs (dense: 98.0%, best of 3 runs): 2 layers, d 64, seq 64, 4 pairs, 2000 steps" in text
