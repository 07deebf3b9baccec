"""Labelling in the page, in a real headless chromium: judge answers, select corrections with the mouse, browse.

Every selection is made by dragging the mouse over the rendered text (the pixel boxes of its
first and last characters come from the browser), and every check of what was stored goes
through the API (GET /feedback, GET /feedback/export), so a label with wrong offsets or a
page that never sent it fails here. Skipped like test_page.py when chromium is missing.
"""

from __future__ import annotations

import contextlib
import json

import httpx
import pytest

from slmqa.serving.app import create_app
from slmqa.serving.feedback import Feedback
from slmqa.serving.labels import LabelStore
from tests.document_helpers import MANUAL, MarkedTokenBackend, document_folder
from tests.serving.test_page import _require_browser
from tools.headless_browser import chromium
from tools.live_server import running_server

pytestmark = pytest.mark.browser
WAIT_S = 30
SERVICE_QUESTION = "How often must the compressor be serviced?"
TORQUE_QUESTION = "What is the torque setting of the CM-7 compressor?"
TWO_PASSAGE_QUESTION = "How many days must the compressor be serviced by the team lead?"
IMG = '<img src=x onerror="window.__pwned=1">'
SCRIPT = "<script>window.__pwned=2</script>"
EVIL_NAME = "<img src=x onerror=window.__pwned=3>.txt"
EVIL_TEXT = f"Warning: {IMG} the pressure limit is 25 bar. {SCRIPT} Keep the valve closed."


def _qa(folder, model_dir, tokenizer):
    from slmqa.serving.docqa import DocumentQA, Options

    qa = DocumentQA(model_dir, folder, options=Options(passages=3, passage_words=30, passage_overlap=5, retriever="bm25"))
    qa.reader.backend = MarkedTokenBackend(tokenizer.convert_tokens_to_ids("25"))  # the answer is always "25"
    return qa


@pytest.fixture(scope="module")
def qa(tmp_path_factory, tiny_model_dir, tokenizer):
    _require_browser()
    return _qa(document_folder(tmp_path_factory.mktemp("labelling")), tiny_model_dir, tokenizer)


@pytest.fixture(scope="module")
def evil_qa(tmp_path_factory, tiny_model_dir, tokenizer):
    _require_browser()
    folder = tmp_path_factory.mktemp("evil") / "docs"
    folder.mkdir()
    (folder / EVIL_NAME).write_text(EVIL_TEXT, encoding="utf-8")
    return _qa(folder, tiny_model_dir, tokenizer)


@contextlib.contextmanager
def serving(qa, tmp_path, **options):
    """The app with a fresh label database, on a real socket (a new port: a fresh sessionStorage too)."""
    feedback = Feedback(LabelStore(tmp_path / "labels.sqlite"), qa)
    with running_server(create_app(qa, feedback=feedback, **options)) as url:
        yield url


@pytest.fixture
def site(qa, tmp_path):
    with serving(qa, tmp_path) as url:
        yield url


@pytest.fixture(scope="module")
def driver(qa):
    with chromium() as browser:
        yield browser


# ---------------------------------------------------------------- helpers


def by_css(selector):
    from selenium.webdriver.common.by import By

    return By.CSS_SELECTOR, selector


def wait(driver, condition, message: str = ""):
    """Poll `condition` until it holds; an element the page re-rendered meanwhile (stale) just means: poll again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, ignored_exceptions=(StaleElementReferenceException,)).until(condition, message)


def text_of(driver, selector: str) -> str:
    """textContent (also of hidden elements), '' when the element is missing."""
    found = driver.find_elements(*by_css(selector))
    return found[0].get_attribute("textContent") if found else ""


def wait_text(driver, selector: str, part: str) -> str:
    wait(driver, lambda d: part in text_of(d, selector), f"{part!r} never appeared in {selector}: {text_of(driver, selector)!r}")
    return text_of(driver, selector)


def open_page(driver, url: str, labelling: bool = True) -> None:
    driver.get(url)
    wait(driver, lambda d: d.find_element(*by_css("#question")).is_enabled())
    if labelling:
        wait(driver, lambda d: "labelling-off" not in d.find_element(*by_css("body")).get_attribute("class"),
             "the page never switched labelling on")


def ask(driver, question: str) -> None:
    box = driver.find_element(*by_css("#question"))
    box.clear()
    box.send_keys(question)
    driver.find_element(*by_css("#ask")).click()
    wait(driver, lambda d: d.find_element(*by_css("#ask")).is_enabled()
         and d.find_element(*by_css("#status")).text.strip()
         and not d.find_element(*by_css("#status")).text.startswith("Reading"))


def api(url: str, method: str, path: str, key: str | None = None, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.request(method, url + path, headers=headers, timeout=WAIT_S, **kwargs)


def labels(url: str, key: str | None = None) -> dict:
    response = api(url, "GET", "/feedback?limit=100", key)
    assert response.status_code == 200, response.text
    return response.json()


def document_text(url: str, name: str) -> str:
    return api(url, "GET", "/document", params={"name": name}).json()["text"]


# Pixel boxes of characters `start` and `end - 1` of an element's text, and the in-view centre
# point of the element that WebDriver offsets are measured from.
CHARACTER_BOXES = """
const [element, start, end, scroll] = arguments;
if (scroll) element.scrollIntoView({block: "center"});
const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
const nodes = [];
let length = 0;
for (let node = walker.nextNode(); node; node = walker.nextNode()) { nodes.push([node, length]); length += node.data.length; }
function box(index) {
  for (const [node, from] of nodes) {
    if (index >= from && index < from + node.data.length) {
      const range = document.createRange();
      range.setStart(node, index - from);
      range.setEnd(node, index - from + 1);
      const r = range.getClientRects()[0];
      return {left: r.left, right: r.right, middle: (r.top + r.bottom) / 2};
    }
  }
  return null;
}
const r = element.getClientRects()[0];
const centre = {x: Math.floor((Math.max(0, r.left) + Math.min(innerWidth, r.right)) / 2),
                y: Math.floor((Math.max(0, r.top) + Math.min(innerHeight, r.bottom)) / 2)};
return {text: nodes.map(([node]) => node.data).join(""), first: box(start), last: box(end - 1), centre};
"""


def drag_select(driver, start_element, start: int, end_element, end: int) -> None:
    """Press the mouse on the left of character `start` of one element, release on the right of character `end - 1` of another."""
    from selenium.webdriver.common.action_chains import ActionChains

    # (A press inside an existing selection would drag that text away instead of selecting anew.)
    driver.execute_script("if (!window.getSelection().isCollapsed) window.getSelection().removeAllRanges()")
    begin = driver.execute_script(CHARACTER_BOXES, start_element, start, start + 1, True)
    finish = driver.execute_script(CHARACTER_BOXES, end_element, end - 1, end, False)
    assert begin["first"] and finish["last"], (begin, finish)

    def offset(boxes, x, y):  # WebDriver measures from the element's in-view centre
        return round(x - boxes["centre"]["x"]), round(y - boxes["centre"]["y"])

    start_x, start_y = offset(begin, begin["first"]["left"] + 2, begin["first"]["middle"])
    end_x, end_y = offset(finish, finish["last"]["right"] - 2, finish["last"]["middle"])
    (ActionChains(driver)
     .move_to_element_with_offset(start_element, start_x, start_y)
     .click_and_hold()
     .move_to_element_with_offset(start_element, start_x + 6, start_y)
     .move_to_element_with_offset(end_element, end_x, end_y)
     .release()
     .perform())


def select_words(driver, element, words: str) -> None:
    """Drag the mouse over the first `words` in `element`'s text."""
    at = element.get_attribute("textContent").index(words)
    drag_select(driver, element, at, element, at + len(words))


def passage_holding(driver, words: str):
    found = [p for p in driver.find_elements(*by_css("#passages .passage-text")) if words in p.get_attribute("textContent")]
    assert found, [p.get_attribute("textContent") for p in driver.find_elements(*by_css("#passages .passage-text"))]
    return found[0]


def picked(driver, words: str) -> None:
    wait(driver, lambda d: d.find_element(*by_css("#pick")).is_displayed() and text_of(d, "#pick-text") == words,
         f"the page did not pick {words!r}: pick {text_of(driver, '#pick-text')!r}, message {text_of(driver, '#pick-message')!r}")
    assert f"Selected: «{words}»" in driver.find_element(*by_css("#pick")).text


def exported(url: str, key: str | None = None) -> list[tuple[str, dict, dict]]:
    """(context, question, answer) of every answer in the SQuAD v2 export."""
    response = api(url, "GET", "/feedback/export", key)
    assert response.status_code == 200, response.text
    return [(paragraph["context"], qa, answer)
            for article in response.json()["data"] for paragraph in article["paragraphs"]
            for qa in paragraph["qas"] for answer in qa["answers"]]


# ---------------------------------------------------------------- tests


def test_wrong_answer_then_a_mouse_selected_correction_is_stored_with_exact_offsets(driver, site):
    words = "400 operating hours"
    text = document_text(site, "manual.txt")
    assert text == MANUAL
    open_page(driver, site)
    ask(driver, SERVICE_QUESTION)
    card = driver.find_elements(*by_css("li.answer"))[0]
    assert card.find_element(*by_css(".answer-text")).text == "25"
    assert not driver.find_element(*by_css("#correction")).is_displayed()
    card.find_element(*by_css(".verdict-wrong")).click()
    wait_text(driver, "li.answer .verdict-status", "Recorded as wrong")
    assert driver.find_element(*by_css("#correction")).is_displayed()

    passage = passage_holding(driver, words)
    assert passage.find_elements(*by_css("mark.model-answer"))  # the text is split around the model's answer
    select_words(driver, passage, words)
    picked(driver, words)
    driver.find_element(*by_css("#confirm")).click()
    wait_text(driver, "#pick-message", "Recorded «400 operating hours»")

    start = text.index(words)
    stored = labels(site)
    assert stored["total"] == 2 and stored["by_kind"]["answer"] == 1 and stored["by_kind"]["rejected"] == 1
    answer = next(label for label in stored["labels"] if label["kind"] == "answer")
    assert (answer["question"], answer["document"], answer["start"], answer["end"], answer["answer"], answer["source"]) == (
        SERVICE_QUESTION, "manual.txt", start, start + len(words), words, "answers")
    rejected = next(label for label in stored["labels"] if label["kind"] == "rejected")
    assert (rejected["document"], rejected["start"], rejected["end"], rejected["answer"]) == (
        "manual.txt", text.index("25"), text.index("25") + 2, "25")

    squad = exported(site)
    assert [answer["text"] for _, _, answer in squad] == [words]  # the rejected answer is not training data
    context, question, answer = squad[0]
    assert question["question"] == SERVICE_QUESTION and not question["is_impossible"]
    assert context[answer["answer_start"]:answer["answer_start"] + len(words)] == words

    wait(driver, lambda d: text_of(d, "#label-count") == "2 labels stored")
    assert len(driver.find_elements(*by_css("#recent-labels li.recent-label"))) == 2


def test_right_stores_a_confirmed_label_and_export_downloads_it(driver, site):
    open_page(driver, site)
    wait(driver, lambda d: text_of(d, "#label-count") == "0 labels stored")
    ask(driver, TORQUE_QUESTION)
    card = driver.find_elements(*by_css("li.answer"))[0]
    card.find_element(*by_css(".verdict-right")).click()
    wait_text(driver, "li.answer .verdict-status", "Recorded as right")
    assert not card.find_element(*by_css(".verdict-right")).is_enabled()
    assert not driver.find_element(*by_css("#correction")).is_displayed()

    text = document_text(site, "manual.txt")
    stored = labels(site)
    assert stored["total"] == 1
    label = stored["labels"][0]
    assert (label["kind"], label["question"], label["document"], label["start"], label["end"], label["answer"]) == (
        "confirmed", TORQUE_QUESTION, "manual.txt", text.index("25"), text.index("25") + 2, "25")
    wait(driver, lambda d: text_of(d, "#label-count") == "1 label stored")

    # Export: catch the blob the page hands to a download link instead of letting chromium save it.
    driver.execute_script("""
        window.__downloads = [];
        const create = URL.createObjectURL.bind(URL);
        URL.createObjectURL = (blob) => { const url = create(blob); window.__downloads.push({blob}); return url; };
        HTMLAnchorElement.prototype.click = function () { window.__downloads.push({name: this.download, href: this.href}); };
    """)
    driver.find_element(*by_css("#export")).click()
    wait_text(driver, "#label-status", "Downloaded labels-squad-v2.json")
    name = driver.execute_script("return window.__downloads.filter((d) => d.name).map((d) => d.name)")
    assert name == ["labels-squad-v2.json"]
    content = json.loads(driver.execute_async_script(
        "const done = arguments[0]; window.__downloads.find((d) => d.blob).blob.text().then(done);"))
    assert content["version"] == "v2.0"
    answers = [qa["answers"][0]["text"] for article in content["data"] for p in article["paragraphs"] for qa in p["qas"]]
    assert answers == ["25"]


def test_not_in_these_documents_stores_a_no_answer_label(driver, site):
    open_page(driver, site)
    ask(driver, "zebra xylophone quux")
    assert "No answer" in text_of(driver, "#answers li.no-answer"), text_of(driver, "#status")
    assert driver.find_element(*by_css("#correction")).is_displayed()  # shown without a Wrong click
    assert "No passage matched" in driver.find_element(*by_css("#passages")).text
    driver.find_element(*by_css("#not-in-documents")).click()
    wait_text(driver, "#pick-message", "Recorded: not in these documents")
    stored = labels(site)
    assert stored["total"] == 1
    label = stored["labels"][0]
    assert (label["kind"], label["question"], label["document"], label["answer"]) == ("no_answer", "zebra xylophone quux", None, None)
    wait_text(driver, "#recent-labels", "not in these documents")


def test_selections_across_passages_or_outside_one_are_refused_and_spaces_are_trimmed(driver, site):
    open_page(driver, site)
    ask(driver, TWO_PASSAGE_QUESTION)
    driver.find_elements(*by_css("li.answer"))[0].find_element(*by_css(".verdict-wrong")).click()
    wait_text(driver, "li.answer .verdict-status", "Recorded as wrong")
    policy, manual = passage_holding(driver, "team lead"), passage_holding(driver, "400 operating hours")
    assert policy != manual

    drag_select(driver, policy, policy.get_attribute("textContent").index("team lead"),
                manual, manual.get_attribute("textContent").index("compressor") + len("compressor"))
    wait_text(driver, "#pick-message", "spans two passages")
    assert not driver.find_element(*by_css("#pick")).is_displayed()

    meta = manual.find_element("xpath", "../div[@class='meta']")  # "Passage 2 · manual.txt · characters ..."
    drag_select(driver, meta, 0, manual, len("The CM-7"))
    wait_text(driver, "#pick-message", "goes outside the passage")
    assert not driver.find_element(*by_css("#pick")).is_displayed()

    words = "400 operating hours"
    text = manual.get_attribute("textContent")
    at = text.index(words)
    assert text[at - 1] == " " and text[at + len(words)] == " "
    drag_select(driver, manual, at - 1, manual, at + len(words) + 1)  # the spaces around the words too
    picked(driver, words)
    assert text_of(driver, "#pick-message") == ""
    driver.find_element(*by_css("#cancel")).click()
    wait(driver, lambda d: not d.find_element(*by_css("#pick")).is_displayed())
    assert driver.execute_script("return window.getSelection().isCollapsed")
    assert labels(site)["by_kind"]["answer"] == 0


def test_browse_a_document_and_label_a_mouse_selected_answer(driver, site):
    words = "certified technician"
    question = "Who services the compressor?"
    open_page(driver, site)
    driver.find_element(*by_css("#tab-browse")).click()
    wait(driver, lambda d: d.find_elements(*by_css("#document-list .document-open")))
    assert not driver.find_element(*by_css("#ask-view")).is_displayed()
    names = [b.find_element(*by_css(".document")).text for b in driver.find_elements(*by_css("#document-list .document-open"))]
    assert "manual.txt" in names and "sub/policy.md" in names

    driver.find_element(*by_css("#document-filter")).send_keys("manu")
    wait(driver, lambda d: [b.get_attribute("data-name") for b in d.find_elements(*by_css("#document-list .document-open"))]
         == ["manual.txt"])
    driver.find_element(*by_css("#document-list .document-open")).click()
    wait(driver, lambda d: text_of(d, "#document-text") == MANUAL)
    assert driver.find_element(*by_css("#document-title")).text == "manual.txt"

    # Confirm without a question is refused on the page; with one it is stored.
    select_words(driver, driver.find_element(*by_css("#document-text")), words)
    wait(driver, lambda d: text_of(d, "#browse-pick-text") == words)
    driver.find_element(*by_css("#browse-confirm")).click()
    wait_text(driver, "#browse-message", "Type the question")
    assert labels(site)["total"] == 0
    driver.find_element(*by_css("#browse-question")).send_keys(question)
    driver.find_element(*by_css("#browse-confirm")).click()
    wait_text(driver, "#browse-message", "Recorded «certified technician»")

    start = document_text(site, "manual.txt").index(words)
    stored = labels(site)
    assert stored["total"] == 1
    label = stored["labels"][0]
    assert (label["kind"], label["source"], label["question"], label["document"], label["start"], label["end"], label["answer"]) == (
        "answer", "browse", question, "manual.txt", start, start + len(words), words)
    assert label["model"] is None
    ((context, _, answer),) = exported(site)
    assert context[answer["answer_start"]:answer["answer_start"] + len(words)] == words


def _assert_inert(driver) -> None:
    assert driver.execute_script("return typeof window.__pwned") == "undefined"
    for container in ("#recent-labels", "#answers", "#passages", "#document-list", "#document-view", "#labels-bar"):
        assert driver.execute_script(
            "return document.querySelectorAll(arguments[0] + ' img, ' + arguments[0] + ' script').length", container) == 0, container


def test_markup_from_the_server_stays_text(driver, evil_qa, tmp_path):
    with serving(evil_qa, tmp_path) as url:
        text = document_text(url, EVIL_NAME)
        for question, span in ((f"{SCRIPT} what is dangerous?", IMG), (f"{IMG} and then?", SCRIPT)):
            start = text.index(span)
            response = api(url, "POST", "/feedback", json={
                "question": question, "document": EVIL_NAME, "start": start, "end": start + len(span), "text": span})
            assert response.status_code == 201, response.text

        open_page(driver, url)
        wait(driver, lambda d: len(d.find_elements(*by_css("#recent-labels li.recent-label"))) == 2)
        shown = [(item.find_element(*by_css(".label-question")).text, item.find_element(*by_css(".label-answer")).text,
                  item.find_element(*by_css(".document")).text)
                 for item in driver.find_elements(*by_css("#recent-labels li.recent-label"))]
        assert shown == [(f"{IMG} and then?", SCRIPT, EVIL_NAME), (f"{SCRIPT} what is dangerous?", IMG, EVIL_NAME)]
        _assert_inert(driver)

        ask(driver, "What is the pressure limit?")
        card = driver.find_elements(*by_css("li.answer"))[0]
        assert card.find_element(*by_css(".document")).text == EVIL_NAME
        assert IMG in card.find_element(*by_css(".passage")).text and SCRIPT in card.find_element(*by_css(".passage")).text
        card.find_element(*by_css(".verdict-wrong")).click()
        wait_text(driver, "li.answer .verdict-status", "Recorded as wrong")
        assert IMG in passage_holding(driver, IMG).text
        _assert_inert(driver)

        driver.find_element(*by_css("#tab-browse")).click()
        wait(driver, lambda d: d.find_elements(*by_css("#document-list .document-open")))
        opener = driver.find_element(*by_css("#document-list .document-open"))
        assert opener.find_element(*by_css(".document")).text == EVIL_NAME
        opener.click()
        wait(driver, lambda d: text_of(d, "#document-text") == EVIL_TEXT)
        assert driver.find_element(*by_css("#document-title")).text == EVIL_NAME
        _assert_inert(driver)


def test_delete_in_the_recent_list_removes_the_label(driver, site):
    text = document_text(site, "manual.txt")
    for question, words in (("Where is the CM-7?", "hall 3"), ("What torque?", "25 Nm")):
        start = text.index(words)
        response = api(site, "POST", "/feedback", json={"question": question, "document": "manual.txt", "start": start, "end": start + len(words)})
        assert response.status_code == 201, response.text
    keep, remove = (label["id"] for label in labels(site)["labels"][::-1])

    open_page(driver, site)
    wait(driver, lambda d: len(d.find_elements(*by_css("#recent-labels li.recent-label"))) == 2)
    assert text_of(driver, "#label-count") == "2 labels stored"
    item = driver.find_element(*by_css(f'#recent-labels li.recent-label[data-id="{remove}"]'))
    assert "What torque?" in item.text and "25 Nm" in item.text
    item.find_element(*by_css("button.delete-label")).click()
    wait(driver, lambda d: [li.get_attribute("data-id") for li in d.find_elements(*by_css("#recent-labels li.recent-label"))] == [str(keep)])
    assert text_of(driver, "#label-count") == "1 label stored"
    stored = labels(site)
    assert stored["total"] == 1 and stored["labels"][0]["id"] == keep


def test_a_server_with_an_api_key_asks_for_it_and_then_stores_labels(driver, qa, tmp_path):
    words = "400 operating hours"
    with serving(qa, tmp_path, api_key="k") as url:
        open_page(driver, url)
        ask(driver, SERVICE_QUESTION)
        driver.find_elements(*by_css("li.answer"))[0].find_element(*by_css(".verdict-wrong")).click()
        wait_text(driver, "li.answer .verdict-status", "needs its API key")
        assert driver.find_element(*by_css("#key-form")).is_displayed()
        assert labels(url, key="k")["total"] == 0

        passage = passage_holding(driver, words)
        select_words(driver, passage, words)
        picked(driver, words)
        driver.find_element(*by_css("#confirm")).click()
        wait_text(driver, "#pick-message", "needs its API key")
        assert labels(url, key="k")["total"] == 0

        key = driver.find_element(*by_css("#api-key"))
        key.send_keys("not-the-key")
        driver.find_element(*by_css("#key-save")).click()
        wait_text(driver, "#pick-message", "refused")
        assert driver.find_element(*by_css("#key-form")).is_displayed()

        driver.find_element(*by_css("#api-key")).send_keys("k")
        driver.find_element(*by_css("#key-save")).click()  # runs the refused Wrong and Confirm again
        wait_text(driver, "#pick-message", "Recorded «400 operating hours»")
        wait_text(driver, "li.answer .verdict-status", "Recorded as wrong")
        assert not driver.find_element(*by_css("#key-form")).is_displayed()
        assert driver.execute_script("return sessionStorage.getItem('slmqa-api-key')") == "k"
        stored = labels(url, key="k")
        assert sorted(label["kind"] for label in stored["labels"]) == ["answer", "rejected"]
        answer = next(label for label in stored["labels"] if label["kind"] == "answer")
        start = document_text(url, "manual.txt").index(words)
        assert (answer["start"], answer["end"], answer["answer"]) == (start, start + len(words), words)
        wait(driver, lambda d: text_of(d, "#label-count") == "2 labels stored")

        # The key is kept for the tab: the next label goes through without asking again.
        ask(driver, TORQUE_QUESTION)
        driver.find_elements(*by_css("li.answer"))[0].find_element(*by_css(".verdict-right")).click()
        wait_text(driver, "li.answer .verdict-status", "Recorded as right")
        assert labels(url, key="k")["by_kind"]["confirmed"] == 1


def test_without_labelling_the_page_shows_no_labelling_controls(driver, qa):
    with running_server(create_app(qa)) as url:
        open_page(driver, url, labelling=False)
        ask(driver, TORQUE_QUESTION)
        assert driver.find_elements(*by_css("li.answer"))
        assert "labelling-off" in driver.find_element(*by_css("body")).get_attribute("class")
        for selector in ("#labels-bar", "#recent", "#key-form", "#correction", "li.answer .verdict-wrong"):
            assert not driver.find_element(*by_css(selector)).is_displayed(), selector
        driver.find_element(*by_css("#tab-browse")).click()  # reading documents still works
        wait(driver, lambda d: d.find_elements(*by_css("#document-list .document-open")))
        driver.find_element(*by_css('#document-list .document-open[data-name="manual.txt"]')).click()
        wait(driver, lambda d: text_of(d, "#document-text") == MANUAL)
        assert not driver.find_element(*by_css("#browse-question")).is_displayed()
