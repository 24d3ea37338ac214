"""`vllm bench serve` and locust-llm side by side against one real vLLM server.

    python benchmarks/bench_vs_vllm.py --repeats 3 --concurrency 8,16 --output-len 64

One server (the tiny model, the CPU plan that `--llm-backend cpu` builds) serves both tools;
for every concurrency and repeat each tool sends the same number of /v1/completions requests
(random prompts of `--input-len` tokens, `max_tokens = --output-len` with `ignore_eos`, a
closed loop of `--concurrency` streams: `--max-concurrency` for vLLM, users for Locust). The
order of the tools alternates between repeats so drift (thermal, page cache, other tenants)
falls on both. vLLM's numbers come from its own `--save-result` JSON, ours from
`--llm-summary`; both use vLLM's field names, so the table compares them by name.

Prompts: vLLM's random dataset samples exactly `--input-len` token ids; locust-llm's synthetic
prompt counts words, so the bench asks for as many words as make `--input-len` tokens in the
model's tokenizer on average. The table shows both `total_input_tokens` (vLLM counts its
dataset's lengths, locust-llm the server's `usage.prompt_tokens`).

Locust runs `benchmarks/locustfile_vs_vllm.py`: exactly `--num-prompts` requests over all
users, quitting when the last one completes, as `vllm bench serve` does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from compare_tables import compare, markdown  # noqa: E402

from locust_llm.backends import BackendError, Stack, install, make_plan  # noqa: E402

MODEL = "tiny"


def start_server(model_dir: Path, run_dir: Path, log) -> Stack:
    """The CPU plan for one replica of the tiny model, started and verified by `Stack`."""
    plan = make_plan(
        backend="cpu",
        model=str(model_dir),
        models=[{"name": MODEL, "model": str(model_dir)}],
        kvcache_gib=int(os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")),
        serve_args=["--max-model-len", "1024"],
    )
    log(plan.describe())
    return Stack(plan, run_dir, ready_timeout=600, log=log).start()


def run_vllm_bench(
    found: install.VllmInstall,
    url: str,
    model_dir: Path,
    out: Path,
    conc: int,
    n: int,
    input_len: int,
    output_len: int,
    seed: int,
) -> dict:
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        *found.cmd, "bench", "serve", "--backend", "vllm", "--base-url", url,
        "--endpoint", "/v1/completions", "--model", MODEL, "--tokenizer", str(model_dir),
        "--dataset-name", "random", "--random-input-len", str(input_len),
        "--random-output-len", str(output_len), "--random-range-ratio", "0", "--ignore-eos",
        "--max-concurrency", str(conc), "--num-prompts", str(n), "--request-rate", "inf",
        "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,90,99",
        "--seed", str(seed), "--disable-tqdm", "--save-result", "--result-dir",
        str(out.parent), "--result-filename", out.name,
    ]  # fmt: skip
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        check=False,
    )
    (out.parent / (out.stem + ".log")).write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"vllm bench serve failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def words_for_tokens(model_dir: Path, tokens: int) -> int:
    """How many of the synthetic prompt's words make `tokens` tokens in the model's tokenizer
    (locust-llm's prompt counts words; vLLM's random dataset counts token ids)."""
    import random

    from tokenizers import Tokenizer

    from locust_llm.workload.synthetic import random_words

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    rng = random.Random(0)
    words = 50 * tokens
    n = len(tok.encode(" ".join(random_words(rng, words)), add_special_tokens=False).ids)
    return max(1, round(tokens * words / n))


def run_locust(url: str, out: Path, conc: int, n: int, prompt_words: int, output_len: int) -> dict:
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable, "-m", "locust", "-f", str(HERE / "locustfile_vs_vllm.py"),
        "--headless", "-u", str(conc), "-r", str(conc), "-t", "15m", "--host", url,
        "--llm-backend", "none", "--llm-model", MODEL,
        "--llm-prompt-tokens", str(prompt_words), "--llm-max-tokens", str(output_len),
        "--llm-ignore-eos", "--llm-summary", str(out),
        "--exit-code-on-error", "0", "--loglevel", "WARNING",
    ]  # fmt: skip
    env = {**os.environ, "BENCH_REQUESTS": str(n)}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env, check=False)
    (out.parent / (out.stem + ".log")).write_text(done.stdout + done.stderr)
    if done.returncode != 0 or not out.is_file():
        raise SystemExit(f"locust failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--concurrency", default="8,16", help="comma-separated list")
    p.add_argument("--num-prompts", type=int, default=200, help="requests per tool and run")
    p.add_argument("--input-len", type=int, default=128)
    p.add_argument("--output-len", type=int, default=64)
    p.add_argument("--model-dir", type=Path, default=ROOT / "models" / "tiny-llama")
    p.add_argument("--url", help="an already running vLLM serving the model as 'tiny'")
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "bench-vs-vllm")
    args = p.parse_args(argv)
    concs = [int(c) for c in args.concurrency.split(",") if c]

    found = install.find_vllm()
    if found is None:
        print(f"bench_vs_vllm: vLLM is not installed ({install.INSTALL_HINT})", file=sys.stderr)
        return 2
    problem = install.check_model(str(args.model_dir))
    if problem:
        print(f"bench_vs_vllm: {problem}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    words = words_for_tokens(args.model_dir, args.input_len)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    stack = None
    try:
        if args.url:
            url = args.url.rstrip("/")
        else:
            t0 = time.monotonic()
            stack = start_server(args.model_dir, args.out / "server", log)
            url = stack.url
            log(f"bench_vs_vllm: vLLM up in {time.monotonic() - t0:.1f}s at {url}")
        results: dict[int, dict[str, list[dict]]] = {c: {"vllm": [], "locust": []} for c in concs}
        for rep in range(args.repeats):
            for c in concs:
                order = ("vllm", "locust") if rep % 2 == 0 else ("locust", "vllm")
                for tool in order:
                    out = args.out / f"c{c}" / f"{tool}-{rep}.json"
                    t0 = time.monotonic()
                    if tool == "vllm":
                        s = run_vllm_bench(
                            found, url, args.model_dir, out, c, args.num_prompts,
                            args.input_len, args.output_len, seed=rep,
                        )  # fmt: skip
                    else:
                        s = run_locust(url, out, c, args.num_prompts, words, args.output_len)
                    results[c][tool].append(s)
                    log(
                        f"bench_vs_vllm: repeat {rep + 1}/{args.repeats} concurrency {c} "
                        f"{tool}: {s['completed']} requests, {s['output_throughput']:.0f} tok/s "
                        f"({time.monotonic() - t0:.0f}s)"
                    )
    except BackendError as e:
        log(f"bench_vs_vllm: {e}")
        return 1
    finally:
        if stack is not None:
            stack.stop()

    tables = []
    raw = {}
    for c in concs:
        rows = compare(results[c]["locust"], results[c]["vllm"])
        raw[c] = rows
        tables.append(
            markdown(
                rows,
                f"concurrency {c}, {args.num_prompts} requests, {args.input_len} in / "
                f"{args.output_len} out (ignore_eos), mean (min-max) of {args.repeats} repeats",
            )
        )
    text = "\n\n".join(tables)
    (args.out / "table.md").write_text(text + "\n")
    (args.out / "table.json").write_text(json.dumps(raw, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
