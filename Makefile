# locust-llm: `make demo` runs a short load test on the built-in emulator and writes a report;
# `make test` runs every test. Both install what they need first (scripts/setup.sh).
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= reports/demo

.PHONY: setup demo test lint format bench soak clean

setup:
	@bash scripts/setup.sh

demo: setup
	rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	$(BIN)/locust -f locustfiles/chat.py --headless -u 32 -r 32 -t 15s --stop-timeout 10s \
	    --llm-max-tokens 64 --llm-serve-args "--emu-ttft-ms 40 --emu-itl-ms 15" \
	    --llm-summary $(DEMO_DIR)/summary.json --llm-records $(DEMO_DIR)/records.jsonl \
	    --llm-slo 'ttft_p95<=500ms' --llm-slo 'error_rate<=1%' \
	    --csv $(DEMO_DIR)/locust --html $(DEMO_DIR)/locust.html
	$(BIN)/locust-llm report $(DEMO_DIR)
	@echo "summary: $(DEMO_DIR)/summary.json  report: $(DEMO_DIR)/report/report.html"

test: setup
	$(BIN)/pytest -q -p no:cacheprovider

lint: setup
	$(BIN)/ruff format --check . && $(BIN)/ruff check .

format: setup
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python benchmarks/bench_client.py ingest
	$(BIN)/python benchmarks/bench_client.py paced --timestamps user
	$(BIN)/python benchmarks/bench_client.py paced --timestamps kernel
	$(BIN)/python benchmarks/bench_emulator.py
	$(BIN)/python benchmarks/bench_web.py

soak: setup
	$(BIN)/python benchmarks/soak.py --minutes 10

clean:
	rm -rf $(VENV) build *.egg-info reports/*/ tests/artifacts
