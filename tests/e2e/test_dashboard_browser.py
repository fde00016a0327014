"""The dashboard in a real headless browser (Chromium from Debian's packages, driven by Selenium):
each page loads with no console error, shows the JSON API's figures for a scripted history, a picker
changes what is shown, the login gates unpublished pages; a screenshot of each page is written to
tests/output/dashboard/ (git-ignored)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kpi_reporting import views
from tests.e2e.conftest import RunningSystem
from tests.e2e.test_dashboard import CAT, Q2023, Q2024, REASON, public, script_history, vi

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "tests" / "output" / "dashboard"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
INSTALL = "apt-get install -y chromium chromium-driver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)


def missing_browser(chromium: str = CHROMIUM, driver: str = CHROMEDRIVER) -> str | None:
    """What is missing to run a real browser, and how to install it (None when all is there)."""
    missing = [name for name, path in (("chromium", chromium), ("chromedriver", driver)) if not Path(path).exists()]
    if missing:
        return f"{' and '.join(missing)} not found: the dashboard's browser test needs Debian's packages: {INSTALL}"
    return None


def test_a_missing_browser_fails_the_test_naming_what_to_install() -> None:
    assert missing_browser("/nowhere/chromium", "/nowhere/chromedriver") == (
        "chromium and chromedriver not found: the dashboard's browser test needs Debian's packages: "
        "apt-get install -y chromium chromium-driver"
    )
    assert missing_browser(__file__, "/nowhere/chromedriver").startswith("chromedriver not found")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    problem = missing_browser()
    if problem:
        pytest.fail(problem, pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def history(running: RunningSystem) -> int:
    return script_history(running)


def url(running: RunningSystem, path: str, **params: Any) -> str:
    """A page's address on 127.0.0.1, as `make run` prints it: a browser keeps the Secure session cookie
    from a loopback address over plain HTTP (a secure context), so the login works there too."""
    query = "&".join(f"{name}={value}" for name, value in params.items())
    return f"{running.reporting.base_url}{path}" + (f"?{query}" if query else "")


def console_errors(driver: Any) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def screenshot(driver: Any, name: str) -> Path:
    """The whole page, beyond the window's height (`<name>.png`), and the window's view (`<name>-top.png`)."""
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    path = SHOTS / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.stat().st_size > 10_000
    assert driver.save_screenshot(str(SHOTS / f"{name}-top.png"))
    return path


def load(driver: Any, address: str, name: str) -> None:
    """Open a page: it must load with no console error; its screenshot is kept."""
    driver.get_log("browser")  # forget what earlier pages logged
    driver.get(address)
    errors = console_errors(driver)
    assert errors == [], f"{name}: console errors {errors}"
    screenshot(driver, name)


def submit(driver: Any, selector: str, by: str = "css selector") -> None:
    """Click a form's button (or a link) and wait for the page it leads to (a click does not wait for the
    navigation: reading at once may read the old page, or a row of it the new page has replaced)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    old = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(by, selector).click()
    WebDriverWait(driver, 30).until(expected_conditions.staleness_of(old))


# A table's rows read in the page, in one call: element by element, a scorecard was some thousand
# round trips to the driver (seconds each table).
TABLE_ROWS = """
return Array.from(document.querySelectorAll(`table.${arguments[0]} tbody tr`), (row) => [
  row.dataset.period || row.dataset.unit || row.dataset.code || "",
  Array.from(row.querySelectorAll("td, th"), (cell) => cell.innerText.trim()),
]);
"""


def cells(driver: Any, table_class: str) -> list[tuple[str, list[str]]]:
    """(the row's unit, code or period, its cells' text as shown) for each body row of a table."""
    return [(key, texts) for key, texts in driver.execute_script(TABLE_ROWS, table_class)]


def ranking_as_shown(api: dict[str, Any]) -> list[tuple[str, list[str]]]:
    return [(row["unit_id"], [row["rank_label"], row["unit_name_vi"], vi(row["total"])]) for row in api["rankings"]]


def test_the_public_pages_load_cleanly_and_show_the_apis_figures(
    browser: Any, running: RunningSystem, history: int
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    with public(running) as client:
        api = client.get("/v1/rankings", params={**Q2024, "stage": "published"}).json()
        card = client.get("/v1/units/gia-lai/scorecard", params={**Q2024, "stage": "published"}).json()
        trend = client.get("/v1/units/gia-lai/trend", params={**CAT, "stage": "published"}).json()
    load(browser, url(running, "/dashboard", **Q2024), "rankings")
    shown = [(unit, [row[0], row[1], row[3]]) for unit, row in cells(browser, "ranking")]
    assert shown == ranking_as_shown(api)
    assert browser.find_element(By.CSS_SELECTOR, "strong.stage").text == "Đã công bố"
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.bars g.bar")) == 63
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.heat rect")) == 63 * 8

    load(browser, url(running, "/dashboard/units/gia-lai", **Q2024), "scorecard")
    assert browser.find_element(By.CSS_SELECTOR, "dd.total").text.startswith(vi(card["total"]))
    assert browser.find_element(By.CSS_SELECTOR, "dd.rank").text == card["rank_label"]
    rows = dict(cells(browser, "card"))
    assert rows["1.3"][2] == "5,00" and rows["1.3"][9] == f"Điều chỉnh: {REASON}"

    load(browser, url(running, "/dashboard/units/gia-lai/trend", **CAT), "trend")
    totals = [(key, row[3]) for key, row in cells(browser, "trend")]
    assert totals == [(str(p["period"]), vi(p["lines"][0]["total"])) for p in trend["periods"]]
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.lines")) == 9
    Select(browser.find_element(By.NAME, "indicator")).select_by_value("1.3")  # any indicator, by the picker
    submit(browser, "form.pickers button[type=submit]")
    assert console_errors(browser) == []
    assert [(key, row[2]) for key, row in cells(browser, "indicator-trend")] == [("2023", "0,00"), ("2024", "5,00")]
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.lines")) == 10
    screenshot(browser, "trend-indicator")

    load(browser, url(running, "/dashboard/publications", **Q2024), "publications")
    assert len(browser.find_elements(By.CSS_SELECTOR, "table.publications tbody tr")) == 1

    submit(browser, "English", By.LINK_TEXT)
    assert console_errors(browser) == []
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Publications")


def test_a_picker_changes_what_is_shown(browser: Any, running: RunningSystem, history: int) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    with public(running) as client:
        last_year = client.get("/v1/rankings", params={**Q2023, "stage": "published"}).json()
        by_pillar = client.get("/v1/rankings", params={**Q2024, "stage": "published", "pillar": "3"}).json()
    load(browser, url(running, "/dashboard", **Q2024), "rankings-2024")
    Select(browser.find_element(By.NAME, "period")).select_by_visible_text("2023")
    submit(browser, "form.pickers button[type=submit]")
    assert console_errors(browser) == []
    assert "2023" in browser.find_element(By.TAG_NAME, "h1").text
    assert [(unit, [row[0], row[1], row[3]]) for unit, row in cells(browser, "ranking")] == ranking_as_shown(last_year)
    screenshot(browser, "rankings-2023")

    Select(browser.find_element(By.NAME, "period")).select_by_visible_text("2024")
    Select(browser.find_element(By.NAME, "pillar")).select_by_value("3")
    submit(browser, "form.pickers button[type=submit]")
    assert console_errors(browser) == []
    shown = [(unit, row[0], row[3]) for unit, row in cells(browser, "ranking")]
    assert shown == [(row["unit_id"], row["rank_label"], vi(row["pillars"]["3"])) for row in by_pillar["rankings"]]
    screenshot(browser, "rankings-pillar-3")


def test_the_login_gates_unpublished_pages(browser: Any, running: RunningSystem, history: int) -> None:
    from selenium.webdriver.common.by import By

    verification = {**Q2024, "stage": "verification"}
    with public(running) as client:
        evaluator = {"Authorization": f"Bearer {running.keys['evaluator']}"}
        api = client.get("/v1/rankings", params=verification, headers=evaluator).json()
    browser.get(url(running, "/dashboard", **verification))
    assert "401" in browser.find_element(By.TAG_NAME, "h1").text
    assert cells(browser, "ranking") == []  # not one figure before the login
    screenshot(browser, "login-gate")
    browser.find_element(By.ID, "key").send_keys(running.keys["evaluator"])
    browser.get_log("browser")
    submit(browser, "form.login button")
    assert console_errors(browser) == []
    assert browser.find_element(By.CSS_SELECTOR, "strong.stage").text == "Kết quả đánh giá"
    assert [(unit, [row[0], row[1], row[3]]) for unit, row in cells(browser, "ranking")] == ranking_as_shown(api)
    screenshot(browser, "rankings-verification")
    cookie = browser.get_cookie("kpi_dashboard_key")
    assert cookie is not None and cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"

    load(browser, url(running, "/dashboard/units/gia-lai", **verification), "scorecard-verification")
    directives = dict(cells(browser, "card"))["1.3"]
    assert directives[6:9] == ["7,50", "5,00", "−2,50"]  # self-assessed, verified, gap
    gain = cells(browser, "gain")
    card = public(running).get("/v1/units/gia-lai/scorecard", params=verification, headers=evaluator).json()
    largest = views.points_to_gain(card)[0]
    assert len(gain) > 50 and (gain[0][0], gain[0][1][2]) == (largest["code"], vi(largest["points_missing"]))
    load(browser, url(running, "/dashboard/units/gia-lai/history", **Q2024), "history")
    assert REASON in browser.find_element(By.CSS_SELECTOR, "table.history").text
    formulas = browser.find_elements(By.CSS_SELECTOR, "table.history td.explanation code.formula")
    assert len(formulas) >= 5 and all(formula.text for formula in formulas)  # each measurement's score, explained

    submit(browser, "header form button")  # log out
    browser.get(url(running, "/dashboard", **verification))
    assert "401" in browser.find_element(By.TAG_NAME, "h1").text


def test_a_reporter_sees_its_own_unit_only(browser: Any, running: RunningSystem, history: int) -> None:
    from selenium.webdriver.common.by import By

    own = {**Q2024, "stage": "self_assessment"}
    browser.get(url(running, "/dashboard/login", next="/dashboard/units/gia-lai"))
    browser.find_element(By.ID, "key").send_keys(running.keys["gia-lai"])
    submit(browser, "form.login button")
    load(browser, url(running, "/dashboard/units/gia-lai", **own), "scorecard-self-assessment")
    assert "Gia Lai" in browser.find_element(By.TAG_NAME, "h1").text
    browser.get(url(running, "/dashboard/units/da-nang", **own))
    assert "403" in browser.find_element(By.TAG_NAME, "h1").text
    assert cells(browser, "card") == []
    browser.get(url(running, "/dashboard", **own))  # every unit's unpublished figures: not a reporter's
    assert "403" in browser.find_element(By.TAG_NAME, "h1").text
    submit(browser, "header form button")
