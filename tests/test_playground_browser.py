"""The filter playground in a real browser (Debian's Chromium, headless, through Playwright)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]
expect = pytest.importorskip("playwright.sync_api").expect


def output_cell(page, letter: str, row: int, column: int):
    return page.locator(f"#pg-outputs td[data-cell='{letter}: row {row}, column {column}']")


def edit_cell(page, grid_id: str, row: int, column: int, value: str) -> None:
    """Double-click a Dataframe cell to edit it, type, Enter: what a person does."""
    cell = page.locator(f"#{grid_id} [data-testid='cell-{row - 1}-{column - 1}']")
    cell.dblclick()
    editor = cell.locator("textarea, input").first
    editor.fill(value)
    editor.press("Enter")


def test_playground_by_hand(app_url, page, artifacts):
    page.goto(app_url)
    outputs = page.locator("#pg-outputs")
    expect(outputs).to_be_visible()

    # the lecture's exercise, exactly: A [[2, -2], [-1, 1]], B [[-1, -1/2], [7/2, 4]], pooled 2 and 4
    for (letter, row, column), value in {("A", 1, 1): "2", ("A", 1, 2): "-2", ("A", 2, 1): "-1", ("A", 2, 2): "1",
                                         ("B", 1, 1): "-1", ("B", 1, 2): "-1/2", ("B", 2, 1): "7/2",
                                         ("B", 2, 2): "4"}.items():
        expect(output_cell(page, letter, row, column)).to_have_text(value)
    pooled = outputs.locator("[data-output] table").nth(1)
    expect(pooled).to_have_text("2")
    expect(outputs.locator("[data-output='B'] table").nth(1)).to_have_text("4")
    for text in ("7/2", "-1/2"):
        expect(page.get_by_text(text, exact=True).first).to_be_visible()
    expect(outputs).to_contain_text("floor((4 + 2·0 - 1·(3 - 1) - 1) / 1) + 1 = 2")
    expansion = page.locator("#pg-expansion [data-testid=expansion]")
    expect(expansion).to_contain_text("(0 × -1/2) + (1 × 1) + (0 × -1/2) +")
    expect(expansion).to_contain_text("= 2")
    page.screenshot(path=str(artifacts / "playground.png"), full_page=True)

    # choose a cell: its sum is written out and its window lit up (9 cells, bottom-right of the image)
    output_cell(page, "B", 2, 1).click()
    expect(expansion).to_contain_text("= 7/2")
    expect(page.locator("#pg-expansion td.cz-win")).to_have_count(9)
    expect(page.locator("#pg-expansion h4").first).to_contain_text("Output B, row 2, column 1 = 7/2")

    # edit one filter value: A's top-middle weight 1 -> 2; A becomes [[3, -2], [0, 1]]
    edit_cell(page, "pg-filter-A", 1, 2, "2")
    expect(output_cell(page, "A", 1, 1)).to_have_text("3")
    expect(output_cell(page, "A", 2, 1)).to_have_text("0")
    expect(output_cell(page, "B", 2, 1)).to_have_text("7/2")  # B did not change

    # a mistake is a sentence on the page, not a traceback
    edit_cell(page, "pg-filter-A", 1, 2, "two")
    expect(page.locator("#pg-message")).to_contain_text("'two' is not a number")
    expect(page.get_by_text("Traceback")).to_have_count(0)
    edit_cell(page, "pg-filter-A", 1, 2, "1")
    expect(output_cell(page, "A", 1, 1)).to_have_text("2")

    # add a filter, load a preset into it
    page.get_by_role("button", name="Add a filter").click()
    expect(page.locator("#pg-filter-C")).to_be_visible()
    expect(output_cell(page, "C", 1, 1)).to_be_visible()
    page.screenshot(path=str(artifacts / "playground-three-filters.png"), full_page=True)


def test_playground_image_view_and_inside(app_url, page, artifacts):
    page.goto(app_url)
    page.get_by_role("tab", name="On an image").click()
    maps = page.locator("#pg-maps img")
    expect(maps).to_be_visible(timeout=60_000)  # the camera example, two filters: one map and its pooled map each
    grey = maps.get_attribute("src")
    grey_width = maps.evaluate("img => img.naturalWidth")
    page.get_by_label("Example image").click()
    page.get_by_role("option", name="astronaut (colour)").click()
    page.get_by_role("radio", name="per channel").check()
    expect(maps).not_to_have_attribute("src", grey, timeout=60_000)
    # red, green and blue maps for each filter: the figure grows wider than the grey one
    page.wait_for_function("([img, w]) => img.complete && img.naturalWidth > w * 1.5",
                           arg=[maps.element_handle(), grey_width], timeout=60_000)
    page.screenshot(path=str(artifacts / "playground-image.png"), full_page=True)

    page.get_by_role("tab", name="Inside a trained CNN").click()
    expect(page.locator("#pg-layer1 img")).to_be_visible(timeout=60_000)
    expect(page.locator("#pg-learned img")).to_be_visible()
    expect(page.locator("#pg-inside-info")).to_contain_text("says:")
    expect(page.locator("#pg-inside-info")).to_contain_text("8 filters of 3x3")
    expect(page.locator("#pg-layer1 .progress-text, #pg-layer1 .eta-bar")).to_have_count(0, timeout=60_000)
    page.screenshot(path=str(artifacts / "playground-inside.png"), full_page=True)


def test_pooled_values_are_clickable_and_show_the_winning_window(app_url, page):
    page.goto(app_url)
    pooled = page.locator("#pg-outputs td[data-cell='B: pooled row 1, column 1']")
    expect(pooled).to_have_text("4")
    pooled.click()
    expansion = page.locator("#pg-expansion [data-testid=expansion]")
    expect(expansion).to_contain_text("max(-1, -1/2, 7/2, 4) = 4")
    expect(page.locator("#pg-expansion td.cz-win")).to_have_count(3)  # the window, its winner marked apart
    expect(page.locator("#pg-expansion td.cz-sel")).to_have_text("4")
    expect(page.locator("#pg-cell input")).to_have_value("B: pooled row 1, column 1")


def test_pooling_that_does_not_fit_keeps_the_convolution_outputs(app_url, page):
    page.goto(app_url)
    expect(page.locator("#pg-outputs td[data-cell='A: row 1, column 1']")).to_have_text("2")
    box = page.locator("#pg-pool-size input")
    box.fill("3")
    box.press("Enter")
    expect(page.locator("#pg-message")).to_contain_text("Pooling does not fit")
    expect(page.locator("#pg-outputs")).to_contain_text("does not fit")
    for (letter, row, column), value in {("A", 1, 1): "2", ("B", 2, 2): "4"}.items():
        expect(page.locator(f"#pg-outputs td[data-cell='{letter}: row {row}, column {column}']")).to_have_text(value)


def test_the_exercise_introduction_stays_with_the_exercise(app_url, page):
    page.goto(app_url)
    intro = page.get_by_text("The 4×4 image and the two 3×3 filters are the lecture's exercise", exact=False)
    expect(intro).to_be_visible()
    for view in ("1D signal", "Graph", "3D sizes"):
        page.get_by_role("tab", name=view, exact=True).click()
        expect(intro).to_be_hidden()
