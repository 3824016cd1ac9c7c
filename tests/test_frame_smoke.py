def test_app_page_loads_in_chromium(app_url, page, artifacts):
    page.goto(app_url)
    page.get_by_text("convzoo").first.wait_for()
    page.screenshot(path=str(artifacts / "app-frame.png"))
