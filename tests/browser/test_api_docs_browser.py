"""/docs/api in Chromium: on a phone nothing is wider than the screen and the contents lead to an operation;
on a desktop the contents stay beside the text."""


def test_the_api_reference_on_a_phone(page):
    page.goto("/docs/api")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.get_by_role("navigation", name="Operations").get_by_role("link", name="Refund a payment").click()
    assert page.url.endswith("#createRefund")
    operation = page.locator("#createRefund")
    assert operation.get_by_text("curl -s -X POST").is_visible()
    assert operation.locator("table").first.evaluate("t => t.getBoundingClientRect().right") <= 390
    page.shot("docs-api-phone")


def test_the_api_reference_on_a_desktop(desktop_page):
    desktop_page.goto("/docs/api#listEvents")
    toc = desktop_page.locator(".docs-toc").bounding_box()
    heading = desktop_page.locator("#listEvents-h").bounding_box()
    assert toc["x"] + toc["width"] <= heading["x"]  # side by side
    assert desktop_page.locator(".docs-toc").is_visible()
    desktop_page.shot("docs-api-desktop")
