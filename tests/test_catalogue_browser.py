"""The catalogue's web page in a real headless Chromium (selenium + Debian's chromium-driver)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fix_http import Client

pytest_plugins = ["fix_catalogue"]
pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser() -> Iterator[Any]:
    """A fresh headless Chromium with its own profile directory."""
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("chromium and chromium-driver are not installed (apt-get install them)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="pgkeel-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1200,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait(driver: Any, condition: Any, timeout: float = 20) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def _by(kind: str) -> Any:
    from selenium.webdriver.common.by import By

    return getattr(By, kind)


def _seed(c: Client) -> None:
    for sku, tags, stock in (("B-1", ["blue", "sale"], 3), ("B-2", ["red"], 0)):
        body = {"sku": sku, "name": f"Item {sku}", "category": "demo", "price": "1.00"}
        answer = c.post("/api/products", {**body, "tags": tags, "stock": stock})
        assert answer.status == 201


def _rows(driver: Any) -> list[str]:
    cells = driver.find_elements(_by("CSS_SELECTOR"), "#products tbody tr td:first-child")
    return [cell.text for cell in cells]


def test_browse_and_search_by_tag(catalogue: Client, browser: Any) -> None:
    """The page lists products; searching a tag narrows the list; a tag link filters too."""
    _seed(catalogue)
    browser.get(catalogue.base + "/")
    assert sorted(_rows(browser)) == ["B-1", "B-2"]
    box = browser.find_element(_by("ID"), "search-tag")
    box.send_keys("sale")
    browser.find_element(_by("ID"), "search-button").click()
    _wait(browser, lambda d: "tag=sale" in d.current_url)
    assert _rows(browser) == ["B-1"]
    browser.find_element(_by("LINK_TEXT"), "Item B-1").click()
    _wait(browser, lambda d: d.find_elements(_by("ID"), "product-name"))
    assert browser.find_element(_by("ID"), "product-name").text == "Item B-1"


def test_create_product_through_the_form(catalogue: Client, browser: Any) -> None:
    """Filling the form creates a product and shows its page; a duplicate shows an error."""
    browser.get(catalogue.base + "/")
    fields = {"sku": "F-1", "name": "Form 'made' <b>", "category": "c", "price": "3.50"}
    for name, value in fields.items():
        browser.find_element(_by("CSS_SELECTOR"), f"#create input[name={name}]").send_keys(value)
    browser.find_element(_by("CSS_SELECTOR"), "#create input[name=tags]").send_keys("x, y")
    browser.find_element(_by("ID"), "create-button").click()
    _wait(browser, lambda d: "/products/" in d.current_url)
    assert browser.find_element(_by("ID"), "product-name").text == "Form 'made' <b>"
    items = catalogue.get("/api/products").json()["items"]
    assert [(p["sku"], p["tags"]) for p in items] == [("F-1", ["x", "y"])]

    browser.get(catalogue.base + "/")
    for name, value in fields.items():
        browser.find_element(_by("CSS_SELECTOR"), f"#create input[name={name}]").send_keys(value)
    browser.find_element(_by("ID"), "create-button").click()
    message = _wait(browser, lambda d: d.find_element(_by("ID"), "message").text)
    assert "conflicts with existing data" in message
    assert "product_sku_key" in message


def test_adjust_stock_below_zero_shows_the_error(catalogue: Client, browser: Any) -> None:
    """Taking more stock than there is shows the API's 409 message; the stock is unchanged."""
    _seed(catalogue)
    item = catalogue.get("/api/products?tag=blue").json()["items"][0]
    browser.get(f"{catalogue.base}/products/{item['id']}")
    browser.find_element(_by("ID"), "delta").send_keys("-5")
    browser.find_element(_by("ID"), "adjust-button").click()
    message = _wait(browser, lambda d: d.find_element(_by("ID"), "message").text)
    assert "not enough stock" in message
    assert browser.find_element(_by("ID"), "message").get_attribute("class") == "error"
    assert catalogue.get(f"/api/products/{item['id']}").json()["stock"] == 3
    delta = browser.find_element(_by("ID"), "delta")
    delta.clear()
    delta.send_keys("-2")
    browser.find_element(_by("ID"), "adjust-button").click()
    _wait(browser, lambda d: d.find_element(_by("ID"), "stock").text == "1")


def test_upload_csv_shows_progress_and_new_rows(
    catalogue: Client, browser: Any, tmp_path: Path
) -> None:
    """Uploading a CSV shows the progress bar and the count, then the new rows are listed."""
    csv_file = tmp_path / "products.csv"
    lines = ["sku,name,category,price,stock,tags,metadata"]
    lines += [f"U-{i:03d},Uploaded {i},up,{i}.25,{i},new|csv,{{}}" for i in range(120)]
    csv_file.write_text("\n".join(lines) + "\n")
    browser.get(catalogue.base + "/")
    browser.find_element(_by("ID"), "upload-file").send_keys(str(csv_file))
    browser.find_element(_by("ID"), "upload-button").click()
    message = _wait(browser, lambda d: d.find_element(_by("ID"), "message").text)
    assert message == "Imported 120 rows."
    progress = browser.find_element(_by("ID"), "upload-progress")
    assert progress.get_attribute("value") == "100"
    assert progress.is_displayed()
    # The page reloads itself after the import: the new rows are listed.
    _wait(browser, lambda d: "120 products" in d.find_element(_by("CLASS_NAME"), "count").text)
    rows = _rows(browser)
    assert len(rows) == 50
    assert all(sku.startswith("U-") for sku in rows)
    assert len(catalogue.get("/api/products?tag=csv&limit=200").json()["items"]) == 120

    bad = tmp_path / "bad.csv"
    bad.write_text("sku,name,category,price\nZ-1,Bad,up,-3\n")
    browser.get(catalogue.base + "/")
    browser.find_element(_by("ID"), "upload-file").send_keys(str(bad))
    browser.find_element(_by("ID"), "upload-button").click()
    message = _wait(browser, lambda d: d.find_element(_by("ID"), "message").text)
    assert message.startswith("Import failed: line 2: price")
