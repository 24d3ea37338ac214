# locust-llm: `make demo` runs a short load test on the built-in emulator and writes a report;
# `make test` runs every test. Both install what they need first (scripts/setup.sh).
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= reports/demo

VLLM_MODEL ?= models/tiny-llama

.PHONY: setup demo demo-vllm scenario-vllm bench-vs-vllm test lint format bench soak clean

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

# the same demo on real vLLM (the tiny model, CPU plan: numactl binding, tcmalloc + libiomp5)
demo-vllm: setup
	rm -rf $(DEMO_DIR)-vllm && mkdir -p $(DEMO_DIR)-vllm
	VLLM_CPU_KVCACHE_SPACE=1 $(BIN)/locust -f locustfiles/chat.py --headless -u 16 -r 16 -t 20s \
	    --stop-timeout 10s --llm-backend cpu --llm-model $(VLLM_MODEL) --llm-max-tokens 64 \
	    --llm-ignore-eos --llm-serve-args "--max-model-len 1024" \
	    --llm-run-dir $(DEMO_DIR)-vllm/backend \
	    --llm-summary $(DEMO_DIR)-vllm/summary.json --llm-records $(DEMO_DIR)-vllm/records.jsonl \
	    --csv $(DEMO_DIR)-vllm/locust --html $(DEMO_DIR)-vllm/locust.html
	$(BIN)/locust-llm report $(DEMO_DIR)-vllm
	@echo "summary: $(DEMO_DIR)-vllm/summary.json  report: $(DEMO_DIR)-vllm/report/report.html"

# numa-vs-baseline.toml on real vLLM here: an unbound replica vs one bound to the NUMA node, the tiny model
scenario-vllm: setup
	VLLM_CPU_KVCACHE_SPACE=1 $(BIN)/locust-llm run scenarios/numa-vs-baseline.toml --backend cpu \
	    --model $(VLLM_MODEL) --run-time 30s --only '*-users-100' --run-id numa-vs-baseline-vllm \
	    --fresh

# `vllm bench serve` and locust-llm against one real vLLM server (table in the README)
bench-vs-vllm: setup
	$(BIN)/python benchmarks/bench_vs_vllm.py --repeats 3 --concurrency 8,16 --output-len 64

test: setup
	BIN=$(BIN) bash scripts/test.sh

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
