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

# The demo sweep is small so that it ends in minutes on 2 cores: 3 sizes, 2 repeats, on the default head.
DEMO_SWEEP := --n 400 800 1600 --ratios 0.3 --repeats 2

demo: $(VENV)
	$(PY) prepare_dataset.py --source synth
	$(PY) extract_embeddings.py --model speech-embedding
	$(PY) extract_mfccs.py
	$(PY) pruning.py
	$(PY) run_all_classifications.py $(DEMO_SWEEP)
	$(PY) Plots/plot_results.py --method keep_hard --ratio 0.3

# the tests also run the Keras reference engine on TensorFlow: its pins sit apart, the demo does not need them
$(VENV)/.tensorflow: requirements-tensorflow.txt | $(VENV)
	$(PY) -m pip install --quiet -r requirements-tensorflow.txt
	touch $@

# and the optional extras: Dask distributed (--backend dask), Hugging Face datasets (--source hf)
$(VENV)/.extras: requirements-extras.txt | $(VENV)
	$(PY) -m pip install --quiet -r requirements-extras.txt
	touch $@

test: $(VENV) $(VENV)/.tensorflow $(VENV)/.extras
	$(PY) -m pytest

benchmark: $(VENV) $(VENV)/.extras
	$(PY) benchmarks/mfcc_speed.py
	$(PY) benchmarks/pruning_speed.py --max-epochs 10  # forgetting capped: a full run is up to an hour
	$(PY) benchmarks/training_speed.py
	$(PY) benchmarks/roofline.py  # the engine against this machine's limits, and the sweep against the original's way
	$(PY) benchmarks/original_differences.py --data-root .
	$(PY) benchmarks/full_scale.py  # the original's full experiment: hours here, on Dask workers, on a GPU

clean-demo:
	find Dataset_as_Numpy wav2vec_features MFCCs y_pruned results -type f ! -name .gitkeep -delete
