"""The page in a real headless chromium: type a question, see the answer highlighted in its passage.

Skipped (with the reason) only when chromium is not installed and CI is not set; under
CI a missing browser is a failure, since `make test` installs it there.
"""

from __future__ import annotations

import os

import pytest

from slmqa.serving.app import create_app
from tests.document_helpers import MarkedTokenBackend, document_folder
from tools.headless_browser import chromium, find_browser
from tools.live_server import running_server

pytestmark = pytest.mark.browser
WAIT_S = 30


def _require_browser() -> None:
    browser, driver = find_browser()
    if browser and driver:
        return
    missing = ", ".join(name for name, path in (("chromium", browser), ("chromedriver", driver)) if not path)
    if os.environ.get("CI"):
        pytest.fail(f"{missing} not installed but CI is set: `make test` should have installed it (make browser).")
    pytest.skip(f"{missing} not installed (Debian: `sudo make browser`); CI does not skip this test.")


@pytest.fixture(scope="module")
def page_url(tmp_path_factory, tiny_model_dir, tokenizer):
    _require_browser()
    from slmqa.serving.docqa import DocumentQA, Options

    qa = DocumentQA(tiny_model_dir, document_folder(tmp_path_factory.mktemp("page")),
                    options=Options(passages=3, passage_words=30, passage_overlap=5, retriever="bm25"))
    qa.reader.backend = MarkedTokenBackend(tokenizer.convert_tokens_to_ids("25"))
    with running_server(create_app(qa)) as url:
        yield url


@pytest.fixture(scope="module")
def driver(page_url):
    with chromium() as browser:
        yield browser


def ask(driver, url: str, question: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    box = WebDriverWait(driver, WAIT_S).until(ready.element_to_be_clickable((By.ID, "question")))
    box.clear()
    box.send_keys(question)
    driver.find_element(By.ID, "ask").click()
    WebDriverWait(driver, WAIT_S).until(lambda d: d.find_element(By.ID, "ask").is_enabled()
                                        and d.find_element(By.ID, "status").text.strip()
                                        and not d.find_element(By.ID, "status").text.startswith("Reading"))


def test_typed_question_shows_the_highlighted_answer_and_its_document(driver, page_url, tmp_path):
    from selenium.webdriver.common.by import By

    ask(driver, page_url, "What is the torque setting of the CM-7 compressor?")
    answers = driver.find_elements(By.CSS_SELECTOR, "li.answer")
    assert answers, driver.find_element(By.ID, "status").text
    first = answers[0]
    assert first.find_element(By.CSS_SELECTOR, ".answer-text").text == "25"
    assert first.find_element(By.CSS_SELECTOR, "mark.highlight").text == "25"
    assert first.find_element(By.CSS_SELECTOR, ".document").text == "manual.txt"
    passage = first.find_element(By.CSS_SELECTOR, ".passage").text
    assert "torque setting is 25 Nm" in passage
    assert driver.save_screenshot(str(tmp_path / "page.png"))
    collection = driver.find_element(By.ID, "collection").text
    assert collection == "The folder holds 6 documents in 6 passages (bm25 retrieval).", collection


def test_no_answer_and_errors_are_shown(driver, page_url):
    from selenium.webdriver.common.by import By

    ask(driver, page_url, "zebra xylophone quux")
    assert "No answer" in driver.find_element(By.CSS_SELECTOR, "li.no-answer").text
    ask(driver, page_url, "\u4e00\u4e8c\u4e09" * 150)
    status = driver.find_element(By.ID, "status")
    assert "too many tokens" in status.text and "error" in status.get_attribute("class")
    assert driver.find_elements(By.CSS_SELECTOR, "li.answer") == []
