"""The app's frame in a real browser: the page loads, shows its version and every tab of ``TABS`` in order,
and no error toast appears on the way."""

import pytest
from PIL import Image

from convzoo import __version__
from convzoo.demos.app import TABS

pytestmark = pytest.mark.browser


def test_app_page_shows_every_tab_and_no_error(app_url, page, artifacts):
    page.goto(app_url)
    page.get_by_text(f"convzoo {__version__}").first.wait_for()
    assert page.title() == "convzoo"
    for title, _ in TABS:  # rendered one by one: on a loaded machine the last may come a moment after the header
        page.get_by_role("tab", name=title, exact=True).first.wait_for()
    tabs = [t.strip() for t in page.get_by_role("tab").all_inner_texts()]  # the frame's, and tabs inside tabs
    positions = [tabs.index(title) for title, _ in TABS]
    assert positions == sorted(positions), tabs
    assert page.locator(".toast-body.error").count() == 0
    shot = artifacts / "app-frame.png"
    page.screenshot(path=str(shot))
    assert Image.open(shot).size == (1280, 1000)
