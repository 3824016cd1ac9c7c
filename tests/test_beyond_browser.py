"""The playground's 1D signal, Graph and 3D sizes tabs in a real browser (Debian's Chromium, headless)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]
expect = pytest.importorskip("playwright.sync_api").expect


def open_tab(page, app_url: str, name: str):
    page.goto(app_url)
    page.get_by_role("tab", name=name, exact=True).click()


def type_into(page, elem_id: str, text: str) -> None:
    """Fill a textbox and leave it (Tab), as a person does; the tab reads a box when it is left."""
    box = page.locator(f"#{elem_id} textarea, #{elem_id} input").first
    box.fill(text)
    box.press("Tab")


def click_until(cell, shown, text: str, tries: int = 5) -> None:
    """Click ``cell`` until ``shown`` says ``text``: on a loaded machine a redraw still queued after an edit can
    repaint the page with the earlier choice after the first click, as it would for a person clicking early."""
    for _ in range(tries - 1):
        cell.click()
        try:
            expect(shown).to_contain_text(text, timeout=2000)
            return
        except AssertionError:
            continue
    cell.click()
    expect(shown).to_contain_text(text)


def test_signal_tab(app_url, page, artifacts):
    open_tab(page, app_url, "1D signal")
    view = page.locator("#beyond-signal-view")
    total = view.locator("[data-testid=beyond-sum]")
    expect(view.locator("td[data-cell^='output']")).to_have_count(9)
    expect(view.locator("td[data-cell^='pooled']")).to_have_text(["2", "3/2", "1/4"])
    expect(total).to_have_text("output 1 = (0 × -1/2) + (1 × 1) + (3 × -1/2) = -1/2")

    view.locator("td[data-cell='output 2']").click()
    expect(total).to_have_text("output 2 = (1 × -1/2) + (3 × 1) + (1 × -1/2) = 2")
    expect(view.locator("td.cz-win")).to_have_text(["1× -1/2", "3× 1", "1× -1/2"])  # the three taps, weights below
    expect(view.locator("td.cz-sel")).to_have_text("2")
    page.screenshot(path=str(artifacts / "beyond-signal.png"), full_page=True)

    view.locator("td[data-cell='pooled 2']").click()
    expect(total).to_have_text("pooled 2 = max of outputs 4, 5, 6 = max(-3/4, -1/2, 3/2) = 3/2")
    expect(view.locator("td.cz-win")).to_have_text(["-3/4", "-1/2", "3/2"])

    # an edit: the third band 3 -> 5 makes output 2 = -1/2 + 5 - 1/2 = 4 and the first pooled value 4
    type_into(page, "beyond-signal-input", "0, 1, 5, 1, 0, 1/2, 2, 1/2, 0, -1, 1")
    expect(view.locator("td[data-cell='pooled 1']")).to_have_text("4")
    click_until(view.locator("td[data-cell='output 2']"), total, "(5 × 1)")
    expect(total).to_contain_text("= 4")

    # a mistake is a sentence beside the page (the 2-D view's convention), not a traceback; the last good result stays
    type_into(page, "beyond-signal-kernel", "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12")
    expect(page.locator("#beyond-signal-message")).to_contain_text("the kernel has 12 values but the signal only 11")
    expect(page.get_by_text("Traceback")).to_have_count(0)
    expect(view.locator("td[data-cell='pooled 1']")).to_have_text("4")


def test_graph_tab(app_url, page, artifacts):
    open_tab(page, app_url, "Graph")
    view = page.locator("#beyond-graph-view")
    total = view.locator("[data-testid=beyond-sum]")
    expect(view.locator("svg g[data-cell]")).to_have_count(5)

    view.locator("svg g[data-cell='node 2']").click()  # a node of the drawing
    expect(total).to_have_text("node 2: (3 + 1 + 1/2) / 3 = 3/2")
    expect(view.locator("svg g.cz-sel")).to_have_count(1)
    expect(view.locator("svg g.cz-feed")).to_have_count(2)  # nodes 1 and 3 fed it
    expect(view.locator("svg line.cz-feed")).to_have_count(2)
    expect(view).to_contain_text("fed by node 2 itself and its neighbours 1, 3")
    page.screenshot(path=str(artifacts / "beyond-graph.png"), full_page=True)

    view.locator("td[data-cell='node 3']").click()  # or its value in the table
    expect(total).to_have_text("node 3: (1 + 1/2 + 2) / 3 = 7/6")

    # an edit: join node 3 to node 5 as well
    type_into(page, "beyond-graph-adjacency", "1: 2\n2: 3\n3: 4, 5\n4: 5")
    expect(total).to_have_text("node 3: (1 + 1/2 + 2 + 0) / 4 = 7/8")
    expect(view.locator("svg line")).to_have_count(5)

    # a preset: the star, its hub the mean of everything
    page.locator("#beyond-graph-preset input").click()
    page.get_by_role("option", name="star").click()
    expect(view.locator("svg line")).to_have_count(4)
    view.locator("svg g[data-cell='node 1']").click()
    expect(total).to_have_text("node 1: (0 + 1 + 2 + 3 + 4) / 5 = 2")
    expect(view.locator("svg g.cz-feed")).to_have_count(4)

    type_into(page, "beyond-graph-adjacency", "1: 2, 9")
    expect(page.locator("#beyond-graph-message")).to_contain_text("names node 9, but there are only 5 nodes")
    expect(page.get_by_text("Traceback")).to_have_count(0)


def test_volume_tab(app_url, page, artifacts):
    open_tab(page, app_url, "3D sizes")
    view = page.locator("#beyond-volume-view")
    sizes = view.locator("[data-testid=beyond-sizes]")
    total = view.locator("[data-testid=beyond-sum]")
    expect(sizes).to_contain_text("floor((2 + 2·0 - 1·(2 - 1) - 1) / 1) + 1 = 1")
    expect(sizes).to_contain_text("floor((4 + 2·0 - 1·(3 - 1) - 1) / 1) + 1 = 2")
    expect(view).to_contain_text("2 × 4 × 4 input, 2 × 3 × 3 kernel → 1 × 2 × 2 output")
    expect(view.locator("td[data-cell]")).to_have_text(["3/2", "-3", "3/2", "9/2"])

    view.locator("td[data-cell='frame 1, row 2, column 2']").click()
    expect(total).to_contain_text("(1 × -1/2) + (0 × 1) + (1 × -1/2) + ")
    expect(total).to_contain_text("= 9/2")
    expect(view.locator("td.cz-win")).to_have_count(18)  # a 3x3 window in each of the two frames
    page.screenshot(path=str(artifacts / "beyond-volume.png"), full_page=True)

    # padding 1 in space, none in time: 1 x 4 x 4 out; stride 2 in space: 1 x 2 x 2 again
    for axis in ("h", "w"):
        page.locator(f"#beyond-volume-padding-{axis} input").fill("1")
        page.locator(f"#beyond-volume-padding-{axis} input").press("Tab")
    expect(sizes).to_contain_text("floor((4 + 2·1 - 1·(3 - 1) - 1) / 1) + 1 = 4")
    expect(view.locator("td[data-cell]")).to_have_count(16)
    page.locator("#beyond-volume-stride-w input").fill("2")
    page.locator("#beyond-volume-stride-w input").press("Tab")
    expect(sizes).to_contain_text("floor((4 + 2·1 - 1·(3 - 1) - 1) / 2) + 1 = 2")
    expect(view).to_contain_text("→ 1 × 4 × 2 output")

    # a kernel of one frame: two frames out, each output a sum over one frame
    page.locator("#beyond-volume-kernel-d input").fill("1")
    page.locator("#beyond-volume-kernel-d input").press("Tab")
    expect(view).to_contain_text("1 × 3 × 3 kernel → 2 × 4 × 2 output")
    expect(sizes).to_contain_text("floor((2 + 2·0 - 1·(1 - 1) - 1) / 1) + 1 = 2")

    # a kernel deeper than the clip, with no padding in time, is a sentence
    page.locator("#beyond-volume-kernel-d input").fill("3")
    page.locator("#beyond-volume-kernel-d input").press("Tab")
    expect(page.locator("#beyond-volume-message")).to_contain_text(
        "the kernel spans 3 along depth (frames), but the input has only 2")
    expect(page.get_by_text("Traceback")).to_have_count(0)
