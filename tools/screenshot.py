#!/usr/bin/env python
r"""Take the README's screenshot of the page: a real model, a real question, the answer highlighted.

Labelling is on (with a throwaway label database), so the page shows its Right / Wrong
buttons and labels bar as an expert sees them.

    python -m tools.screenshot --model models/minilm-qa-demo --documents data/mock-docs \
        --question "What is the torque setting of ..." --output docs/ask-your-documents.png
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from slmqa.inference.runtime import add_runtime_arguments, runtime_from_args
from slmqa.logs import get_logger, setup_logging

ROOT = Path(__file__).resolve().parents[1]
logger = get_logger("screenshot")


def main(argv: list[str] | None = None) -> int:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    from slmqa.serving.app import create_app
    from slmqa.serving.docqa import DocumentQA
    from slmqa.serving.feedback import Feedback
    from slmqa.serving.labels import LabelStore
    from tools.headless_browser import chromium
    from tools.live_server import running_server

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--documents", required=True)
    p.add_argument("--question", required=True)
    p.add_argument("--output", default=str(ROOT / "docs" / "ask-your-documents.png"))
    add_runtime_arguments(p)
    args = p.parse_args(argv)
    setup_logging()
    qa = DocumentQA(args.model, args.documents, runtime=runtime_from_args(args))
    with (
        tempfile.TemporaryDirectory(prefix="screenshot-labels-") as labels,
        running_server(create_app(qa, feedback=Feedback(LabelStore(Path(labels) / "labels.sqlite"), qa))) as url,
        chromium() as driver,
    ):
        driver.get(url)
        box = WebDriverWait(driver, 30).until(ready.element_to_be_clickable((By.ID, "question")))
        WebDriverWait(driver, 30).until(lambda d: "labelling-off" not in d.find_element(By.TAG_NAME, "body").get_attribute("class"))
        box.send_keys(args.question)
        driver.find_element(By.ID, "ask").click()
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "li.answer, li.no-answer"))
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1100, min(max(600, height + 40), 1600))
        driver.save_screenshot(args.output)
    logger.info("Saved %s", args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
