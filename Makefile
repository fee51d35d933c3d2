# make demo: every step on the built-in demo data. make test: the test suite. Both build .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test benchmark clean-demo

$(VENV): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(VENV)

demo: $(VENV)
	$(PY) prepare_dataset.py --source synth
	$(PY) extract_embeddings.py --model speech-embedding
	$(PY) extract_mfccs.py

test: $(VENV)
	$(PY) -m pytest

benchmark: $(VENV)
	$(PY) benchmarks/mfcc_speed.py

clean-demo:
	find Dataset_as_Numpy wav2vec_features MFCCs y_pruned results -type f ! -name .gitkeep -delete
