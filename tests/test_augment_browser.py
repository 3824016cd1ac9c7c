"""The Invariance lab's augmentation section in a real browser (Debian's Chromium, headless), on the shipped
models: draw views, see them and the recipe, draw again and see new ones, screenshot."""

from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

VIEWS = 1 + 8  # the example itself, then its augmented views
LOADED = ("ids => { const imgs = [...document.querySelectorAll('#augment-gallery img')];"
          " return imgs.length >= ids && imgs.every(img => img.complete && img.naturalWidth > 0); }")


@pytest.fixture(scope="module")
def app_url(shipped_store):
    """The app as `convzoo demo` and the Space run it: on the models this project trained and ships."""
    from conftest import launch_gradio

    yield from launch_gradio(shipped_store)


def open_tab(page, app_url: str, title: str) -> None:
    page.goto(app_url)
    page.get_by_role("tab", name=title, exact=True).click()


def gallery_sources(page) -> list[str]:
    page.wait_for_function(LOADED, arg=VIEWS)
    return page.locator("#augment-gallery img").evaluate_all("imgs => imgs.map(img => img.src)")


def test_augmentation_views_and_new_ones_on_every_press(page, app_url, artifacts):
    open_tab(page, app_url, "Invariance lab")
    page.locator("#augment-run").click()
    expect(page.locator("#augment-recipe")).to_contain_text("crop with 2 px zero padding, horizontal flip p=0.5")
    expect(page.locator("#augment-gallery img")).to_have_count(VIEWS)
    expect(page.locator("#augment-gallery")).to_contain_text("the example, unaugmented")
    first = gallery_sources(page)
    page.locator("#augment-gallery").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "tab-invariance-augment.png"), full_page=True)

    page.locator("#augment-run").click()
    page.wait_for_function(
        "old => { const now = [...document.querySelectorAll('#augment-gallery img')].map(img => img.src);"
        " return now.length === old.length && now.slice(1).some((src, i) => src !== old[i + 1]); }", arg=first)
    second = gallery_sources(page)
    assert second[0] == first[0], "the unaugmented example changed"
    assert second[1:] != first[1:], "a second press drew the same views"


def test_a_recipe_with_erasing_says_so(page, app_url, artifacts):
    open_tab(page, app_url, "Invariance lab")
    page.locator("#augment-model input").click()
    page.get_by_role("option", name=re.compile(r"^resnet18-fashion ")).click()
    expect(page.locator("#augment-recipe")).to_contain_text("random erasing p=0.5")
    page.locator("#augment-run").click()
    expect(page.locator("#augment-recipe")).to_contain_text("resnet18-fashion trains with")
    gallery_sources(page)
    page.locator("#augment-gallery").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "tab-invariance-augment-erase.png"), full_page=True)
