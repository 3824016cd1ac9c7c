"""The app's bounds in a real browser (Debian's Chromium, headless, through Playwright; issue 22): typing never
destroys the lecture's exercise, a size past its bound is a sentence, a refused upload is one toast."""

from __future__ import annotations

import re
import time

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]
expect = pytest.importorskip("playwright.sync_api").expect

EXERCISE = [["0", "1", "0", "1"], ["0", "1", "0", "1"], ["1", "1", "1", "1"], ["0", "-2", "0", "-2"]]


def grid(page, elem_id: str, rows: int, columns: int) -> list[list[str]]:
    return [[page.locator(f"#{elem_id} [data-testid='cell-{r}-{c}']").inner_text().strip() for c in range(columns)]
            for r in range(rows)]


def type_size(page, elem_id: str, keys: str) -> None:
    """Select the box's number and type a new one key by key, as a person does, then leave the box."""
    box = page.locator(f"#{elem_id} input")
    box.click()
    box.press("Control+a")
    box.press_sequentially(keys, delay=80)
    box.press("Tab")


def test_typing_12_into_image_rows_and_back_keeps_the_exercise(app_url, page, artifacts):
    page.goto(app_url)
    expect(page.locator("#pg-outputs [data-cell='A: row 1, column 1']")).to_have_text("2")
    type_size(page, "pg-rows", "12")  # passes through 1 on the way: that cut the image to one row (issue 22)
    expect(page.locator("#pg-image [data-testid='cell-11-0']")).to_be_visible()
    assert grid(page, "pg-image", 4, 4) == EXERCISE
    page.screenshot(path=str(artifacts / "app-rows-12.png"), full_page=True)
    type_size(page, "pg-rows", "4")
    expect(page.locator("#pg-image [data-testid='cell-4-0']")).to_have_count(0)
    assert grid(page, "pg-image", 4, 4) == EXERCISE
    expect(page.locator("#pg-outputs [data-cell='B: row 2, column 1']")).to_have_text("7/2")

    type_size(page, "pg-rows", "2")  # shrink: rows 3 and 4 are hidden, not lost
    expect(page.locator("#pg-image [data-testid='cell-2-0']")).to_have_count(0)
    type_size(page, "pg-rows", "4")
    expect(page.locator("#pg-image [data-testid='cell-3-1']")).to_have_text("-2")
    assert grid(page, "pg-image", 4, 4) == EXERCISE

    type_size(page, "pg-cols", "1")
    expect(page.locator("#pg-image [data-testid='cell-0-1']")).to_have_count(0)
    page.get_by_role("button", name="Back to the lecture's exercise").click()
    expect(page.locator("#pg-image [data-testid='cell-3-3']")).to_have_text("-2")
    assert grid(page, "pg-image", 4, 4) == EXERCISE
    expect(page.locator("#pg-outputs [data-cell='B: row 2, column 1']")).to_have_text("7/2")


def test_a_size_past_its_bound_is_a_sentence_at_once(app_url, page):
    page.goto(app_url)
    expect(page.locator("#pg-padding")).to_contain_text("0 to 6")  # the bound is on the page
    started = time.monotonic()
    type_size(page, "pg-padding", "1e5000")  # hung the view for everyone and grew to 11 GB (issue 22)
    # the number box cannot hold 1e5000 and sends nothing: the sentence says so rather than "empty"
    expect(page.locator("#pg-message")).to_contain_text("padding is empty or not a number the box can hold; type a "
                                                        "whole number from 0 to 6", timeout=10_000)
    type_size(page, "pg-padding", "5000")
    expect(page.locator("#pg-message")).to_contain_text("padding must be a whole number from 0 to 6, got 5000")
    assert time.monotonic() - started < 10
    type_size(page, "pg-padding", "1")
    expect(page.locator("#pg-outputs")).to_contain_text("floor((4 + 2·1 - 1·(3 - 1) - 1) / 1) + 1 = 4")


@pytest.mark.parametrize("tab, inner, upload", [("Classify", None, "#classify-image"),
                                                ("Filter playground", "On an image", "#pg-photo"),
                                                ("Filter playground", "Inside a trained CNN", "#pg-inside-photo")])
def test_a_refused_upload_is_one_toast_with_a_sentence(app_url, page, tmp_path, tab, inner, upload):
    notes = tmp_path / "notes.png"
    notes.write_text("a text file with an image's name")
    page.goto(app_url)
    page.get_by_role("tab", name=tab).first.click()
    if inner:
        page.get_by_role("tab", name=inner).click()
    page.locator(f"{upload} input[type=file]").set_input_files(str(notes))
    toast = page.locator("[data-testid='toast-body']")
    expect(toast.first).to_contain_text(re.compile(r"notes\.png .*PNG, JPEG"), timeout=30_000)  # bounds' sentence
    time.sleep(2)  # a second toast would have arrived by now
    assert toast.count() == 1, [t.inner_text() for t in toast.all()]
    assert "Error (2)" not in page.locator("body").inner_text()
