"""`bench --peer-server PATH`: Hearth's worker against llama-server, request by request.

The in-process loop of `bench` shares Hearth's own configuration, so it cannot show what
Hearth loses against the engine people actually run. Here the same model, threads, context
and batch go to a `llama-server` built from the llama.cpp source that llama-cpp-python
vendors (README, Performance, gives the build commands), started on a loopback port. The
same prompts go to both, alternating which goes first, and every figure is the median of
the paired runs with min and max and the median of the paired ratios. With
`--peer-bench PATH` llama-bench's pp512/tg128 (flash attention off and on) are added, and a
`llama-completion` beside the server binary gives the first-token-after-load reference.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from desktop.bench import _long_text, _physical_cores, chat_format
from desktop.core.chat.templates import render_parts
from desktop.core.engine.client import EngineClient, LoadOptions
from desktop.core.errors import HearthError
from desktop.engine_worker.runner import amx_kernels_compiled

PREFILL_TOKENS = 1800
DEEP_TOKENS = 64  # generated after the long history (generation deep in a chat)
READY_TIMEOUT_S = 300.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PeerServer:
    """llama-server on a loopback port with the worker's model and shape."""

    def __init__(self, binary: str, model: str, *, n_ctx: int, threads: int,
                 threads_batch: int, n_batch: int, log: Path, gpu_layers: int = 0,
                 flash_attn: str = "auto", repack: bool = True) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.started = time.perf_counter()
        # One slot (-np 1) so the whole context is one conversation, as in Hearth; flash
        # attention, SWA cache and context checkpoints stay at llama-server's defaults: that
        # is what people run.
        self.proc = subprocess.Popen(
            [binary, "-m", model, "--host", "127.0.0.1", "--port", str(self.port),
             "-c", str(n_ctx), "-t", str(threads), "-tb", str(threads_batch),
             "-b", str(n_batch), "-ub", str(n_batch), "-np", "1", "-ngl", str(gpu_layers),
             "-fa", flash_attn, *([] if repack else ["--no-repack"])],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self) -> float:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HearthError(f"llama-server exited with code {self.proc.returncode}; "
                                  f"see {self.log.name}.")
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(0.05)  # polling a child process for readiness, not a test
        raise HearthError("llama-server did not become ready in time.")

    def complete(self, prompt: str, n_predict: int, ignore_eos: bool = False,
                 sampling: dict[str, Any] | None = None, stream: bool = False
                 ) -> tuple[float, dict[str, Any]]:
        """One /completion request; with `stream`, read as a chat client does (server-sent
        events, one per token) and return the last event, which carries the timings."""
        body = json.dumps({"prompt": prompt, "n_predict": n_predict, "temperature": 0,
                           "cache_prompt": True, "ignore_eos": ignore_eos,
                           "stream": stream, **(sampling or {})}).encode()
        request = urllib.request.Request(self.base + "/completion", data=body,
                                         headers={"Content-Type": "application/json"})
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=600) as r:
            if not stream:
                result = json.loads(r.read())
            else:
                result = {}
                for line in r:
                    if line.startswith(b"data: "):
                        result = json.loads(line[6:])
        return time.perf_counter() - started, result

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class _Cpu:
    """CPU seconds (user + system, all threads) a process has used so far."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid

    def seconds(self) -> float:
        import psutil

        if self.pid is None:
            return 0.0
        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _pair(name: str, ours: list[float], peer: list[float], note: str,
          lower_is_better: bool = False) -> dict[str, Any]:
    ratios = [a / b for a, b in zip(ours, peer, strict=True) if b]
    return {"name": name, "hearth": _stats(ours), "peer": _stats(peer),
            "ratio": statistics.median(ratios) if ratios else None,
            "lower_is_better": lower_is_better, "note": note}


def _text(parts: list[dict[str, Any]]) -> str:
    return "".join(p.get("text", "") for p in parts)


def _hearth_first(client: EngineClient, parts: list[dict[str, Any]], params: dict[str, Any]
                  ) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    generation = client.generate(parts, {**params, "max_tokens": 1})
    done = generation.wait()
    return time.perf_counter() - started, done


def _first_after_load(args: argparse.Namespace, model: str, options: LoadOptions, log: Path,
                      parts: list[dict[str, Any]], completion: Path | None,
                      server: str, server_opts: dict[str, Any]) -> list[dict[str, Any]]:
    """Start to first token of a ~1,800-token prompt: a new worker process (spawn, load,
    prompt, one token) against a new llama-completion process and a new llama-server."""
    prompt_file = Path(tempfile.mkstemp(prefix="hearth-peer-", suffix=".txt")[1])
    prompt_file.write_text(_text(parts), encoding="utf-8")
    ours, comp, serv = [], [], []
    greedy = {"temperature": 0, "speculative": False}
    try:
        for i in range(args.repeats):
            runs = ["hearth", "completion", "server"]
            if i % 2:
                runs.reverse()
            for kind in runs:
                started = time.perf_counter()
                if kind == "hearth":
                    client = EngineClient(log)
                    try:
                        client.load(options)
                        client.generate(parts, {**greedy, "max_tokens": 1}).wait()
                        ours.append(time.perf_counter() - started)
                    finally:
                        client.kill()
                elif kind == "completion" and completion is not None:
                    subprocess.run(
                        [str(completion), "-m", model, "-f", str(prompt_file), "-n", "1",
                         "-c", str(server_opts["n_ctx"]), "-t", str(server_opts["threads"]),
                         "-tb", str(server_opts["threads_batch"]), "-b", "512", "-ub", "512",
                         "-ngl", str(server_opts["gpu_layers"]), "-fa", server_opts["flash_attn"],
                         "-no-cnv", "--temp", "0",
                         *([] if server_opts["repack"] else ["--no-repack"])],
                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL, check=True, timeout=600)
                    comp.append(time.perf_counter() - started)
                elif kind == "server":
                    peer = PeerServer(server, model, log=log.with_name("bench-peer-server.log"),
                                      **server_opts)
                    try:
                        peer.wait_ready()
                        peer.complete(_text(parts), 1)
                        serv.append(time.perf_counter() - started)
                    finally:
                        peer.stop()
    finally:
        prompt_file.unlink(missing_ok=True)
    rows = []
    if comp:
        rows.append(_pair("first token after load s", ours, comp,
                          "new process: load, ~1,800-token prompt, 1 token; peer = "
                          "llama-completion; target <= 1.0", lower_is_better=True))
    rows.append(_pair("first token after load s", ours, serv,
                      "peer = a new llama-server until /completion answers", True))
    return rows


def _llama_bench(binary: str, model: str, threads: int, repeats: int, gpu_layers: int,
                 repack: bool) -> dict[str, Any]:
    out = subprocess.run(
        [binary, "-m", model, "-t", str(threads), "-p", "512", "-n", "128", "-fa", "0,1",
         "-ngl", str(gpu_layers), "-r", str(repeats), "-o", "json", "--repack", str(int(repack))],
        capture_output=True, text=True, check=True, timeout=1800)
    rows = json.loads(out.stdout)
    result: dict[str, Any] = {}
    for row in rows:
        kind = f"pp{row['n_prompt']}" if row["n_prompt"] else f"tg{row['n_gen']}"
        result[f"{kind}_fa{int(bool(row.get('flash_attn')))}"] = row["avg_ts"]
    return result


def run_peer_bench(args: argparse.Namespace, model: str, log_dir: Path) -> dict[str, Any]:
    if not Path(args.peer_server).is_file():
        raise HearthError(f"No llama-server at {args.peer_server}.")
    fmt = chat_format(model)
    threads = args.threads or _physical_cores()
    threads_batch = args.threads or os.cpu_count() or threads
    n_ctx = 4096
    n_batch = 512
    log = log_dir / "bench-peer-engine.log"
    gpu_layers = int(getattr(args, "gpu_layers", 0) or 0)
    flash = str(getattr(args, "flash_attn", "auto") or "auto")
    # The bench keeps Automatic flash attention's measured verdict as the app does, so only
    # the first load measures it (engine_worker/flash_choice.py).
    options = LoadOptions(model, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads_batch,
                          n_batch=n_batch, n_gpu_layers=gpu_layers, flash_attn=flash,
                          tuning_file=str(log_dir / "bench-tuning.json"))
    server_opts: dict[str, Any] = {
        "n_ctx": n_ctx, "threads": threads, "threads_batch": threads_batch,
        "n_batch": n_batch, "gpu_layers": gpu_layers, "flash_attn": flash,
        "repack": not amx_kernels_compiled()}
    user = lambda text: [{"role": "user", "content": text}]  # noqa: E731
    greedy = {"temperature": 0, "stop": fmt.stop}
    rows: list[dict[str, Any]] = []
    report: dict[str, Any] = {"model": model, "threads": threads,
                              "threads_batch": threads_batch, "repeats": args.repeats,
                              "peer_server": args.peer_server, "gpu_layers": gpu_layers,
                              "flash_attn": flash}
    client = EngineClient(log)
    peer = PeerServer(args.peer_server, model, log=log_dir / "bench-peer-server.log",
                      **server_opts)
    try:
        loaded = client.load(options)["info"]
        report["flash_attn_used"] = loaded.get("flash_attn_used")
        report["flash_choice"] = loaded.get("flash_choice")
        peer.wait_ready()
        warm = render_parts(fmt, user("warm up"))
        client.generate(warm, {**greedy, "max_tokens": 8}).wait()
        peer.complete(_text(warm), 8)
        # Prefill: a new first word each run, so only the template header can be cached.
        p_ours, p_peer, tokens = [], [], (0, 0)
        side_reads = 0  # prompts Hearth read in a flash-attention side context (flash_prefill.py)
        for i in range(args.repeats):
            parts = render_parts(fmt, user(_long_text(PREFILL_TOKENS - 100, f"run {i}")))
            for side in (("h", "p") if i % 2 == 0 else ("p", "h")):
                if side == "h":
                    _, done = _hearth_first(client, parts, greedy)
                    p_ours.append((done["prompt_tokens"] - done["cached_tokens"])
                                  / done["prefill_s"])
                    tokens = (done["prompt_tokens"], tokens[1])
                    side_reads += bool(done.get("prefill_side_flash"))
                else:
                    _, result = peer.complete(_text(parts), 1)
                    p_peer.append(result["timings"]["prompt_per_second"])
                    tokens = (tokens[0], result["tokens_evaluated"])
        side_note = (f"; Hearth read {side_reads} of {args.repeats} with flash attention in a "
                     "side context") if side_reads else ""
        rows.append(_pair("prefill tok/s", p_ours, p_peer,
                          f"{tokens[0]}-token prompt (server: {tokens[1]}){side_note}; "
                          "target >= 1.0"))
        report["prefill_prompt_tokens"] = {"hearth": tokens[0], "peer": tokens[1]}
        # Generation: 256 greedy tokens, without and with Hearth's drafting.
        story = render_parts(fmt, user("Tell me a story."))
        g_plain: list[float] = []
        g_spec: list[float] = []
        g_peer: list[float] = []
        g_stream: list[float] = []  # the server streaming its reply, as a chat client reads it
        # Tokens per CPU-second of each engine's whole process (all its threads) over the same
        # request: on a machine busy with other work, wall-clock speed says as much about the
        # other work as about the engine; the CPU each one spends per token does not.
        c_plain: list[float] = []
        c_peer: list[float] = []
        worker = _Cpu(client.process.pid if client.process else None)
        server = _Cpu(peer.proc.pid)
        for i in range(args.repeats):
            for side in (("h", "s", "p", "t") if i % 2 == 0 else ("t", "p", "s", "h")):
                if side == "t":
                    _, result = peer.complete(_text(story), args.gen_tokens, ignore_eos=True,
                                              stream=True)
                    g_stream.append(result["timings"]["predicted_per_second"])
                elif side in "hs":
                    before = worker.seconds()
                    done = client.generate(story, {
                        **greedy, "max_tokens": args.gen_tokens, "ignore_eos": True,
                        "speculative": side == "s"}).wait()
                    (g_plain if side == "h" else g_spec).append(done["tokens_per_s"])
                    if side == "h":
                        c_plain.append(done["completion_tokens"] / max(worker.seconds() - before,
                                                                       1e-9))
                else:
                    before = server.seconds()
                    _, result = peer.complete(_text(story), args.gen_tokens, ignore_eos=True)
                    g_peer.append(result["timings"]["predicted_per_second"])
                    c_peer.append(result["tokens_predicted"] / max(server.seconds() - before,
                                                                   1e-9))
        rows.append(_pair("generation tok/s", g_plain, g_peer,
                          f"{args.gen_tokens} greedy tokens, drafting off; target >= 1.0"))
        rows.append(_pair("generation, server streams", g_plain, g_stream,
                          "same, the server streaming its reply (stream: true), as a chat "
                          "client reads it; Hearth always streams"))
        # Sampled (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, as Hearth's chat and
        # llama-server's defaults), drafting off on Hearth's side: the sampler chain's cost.
        sampled = {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05, "seed": 7}
        s_ours: list[float] = []
        s_peer: list[float] = []
        for i in range(args.repeats):
            for side in (("h", "p") if i % 2 == 0 else ("p", "h")):
                if side == "h":
                    done = client.generate(story, {
                        **greedy, **sampled, "max_tokens": args.gen_tokens, "ignore_eos": True,
                        "speculative": False}).wait()
                    s_ours.append(done["tokens_per_s"])
                else:
                    _, result = peer.complete(_text(story), args.gen_tokens, ignore_eos=True,
                                              sampling=sampled)
                    s_peer.append(result["timings"]["predicted_per_second"])
        rows.append(_pair("generation, sampled tok/s", s_ours, s_peer,
                          "temperature 0.8, top-k 40, top-p 0.95, min-p 0.05; drafting off"))
        if worker.pid and c_plain and all(c_peer):
            rows.append(_pair("generation tok/CPU-s", c_plain, c_peer,
                              "same requests, tokens per CPU-second of the whole process "
                              "(insensitive to other work on the machine)"))
        rows.append(_pair("generation, drafting on", g_spec, g_peer,
                          "same, Hearth's default (prompt-lookup drafts where they pay)"))
        # Follow-up: a ~1,800-token history and its reply in the cache, a new question.
        history = user(_long_text(PREFILL_TOKENS - 100, "history"))
        reply = "".join(client.generate(render_parts(fmt, history),
                                        {**greedy, "max_tokens": 32}))
        peer.complete(_text(render_parts(fmt, history)), 32)
        f_ours, f_peer, cached = [], [], (0, 0)
        for i in range(args.repeats):
            turn = [*history, {"role": "assistant", "content": reply},
                    {"role": "user", "content": f"Question {i}: what colour was the sea at dusk, "
                     "and which number was painted on the door on the last evening?"}]
            parts = render_parts(fmt, turn)
            for side in (("h", "p") if i % 2 == 0 else ("p", "h")):
                if side == "h":
                    seconds, done = _hearth_first(client, parts, greedy)
                    f_ours.append(seconds)
                    cached = (done["cached_tokens"], cached[1])
                else:
                    seconds, result = peer.complete(_text(parts), 1)
                    f_peer.append(seconds)
                    cached = (cached[0], result["timings"].get("cache_n", 0))
        rows.append(_pair("follow-up TTFT s", f_ours, f_peer,
                          f"{cached[0]} (server: {cached[1]}) tokens from the cache; client "
                          "side, request to first token; target <= 1.0", lower_is_better=True))
        # Generation deep in a chat: after the ~1,900-token history, where attention reads the
        # whole KV cache for every token (flash attention's cost there depends on the model's
        # head size and the device: --flash-attn).
        d_ours, d_peer = [], []
        for i in range(args.repeats):
            turn = [*history, {"role": "assistant", "content": reply},
                    {"role": "user", "content": f"Question {i}: tell me the story again."}]
            parts = render_parts(fmt, turn)
            for side in (("h", "p") if i % 2 == 0 else ("p", "h")):
                if side == "h":
                    done = client.generate(parts, {**greedy, "max_tokens": DEEP_TOKENS,
                                                   "ignore_eos": True,
                                                   "speculative": False}).wait()
                    d_ours.append(done["tokens_per_s"])
                else:
                    _, result = peer.complete(_text(parts), DEEP_TOKENS, ignore_eos=True)
                    d_peer.append(result["timings"]["predicted_per_second"])
        rows.append(_pair("generation after history", d_ours, d_peer,
                          f"{DEEP_TOKENS} greedy tokens after the ~{PREFILL_TOKENS}-token history, "
                          "drafting off"))
    finally:
        client.shutdown()
        peer.stop()
    completion = Path(args.peer_server).with_name("llama-completion")
    first_parts = render_parts(fmt, user(_long_text(PREFILL_TOKENS - 100, "first")))
    rows += _first_after_load(args, model, options, log, first_parts,
                              completion if completion.is_file() else None,
                              args.peer_server, server_opts)
    if args.peer_bench:
        report["llama_bench"] = _llama_bench(args.peer_bench, model, threads, args.repeats,
                                             gpu_layers, bool(server_opts["repack"]))
    report["rows"] = rows
    return report


def print_peer(report: dict[str, Any]) -> None:
    print(f"Hearth vs llama-server ({report['peer_server']}), {report['model']}, "
          f"{report['threads']} threads; median [min-max] of {report['repeats']} interleaved "
          "runs, ratio = median of paired Hearth/peer")
    print(f"{'':28}{'Hearth':>24}{'llama.cpp':>24}{'ratio':>8}  note")
    for row in report["rows"]:
        cells = []
        for side in ("hearth", "peer"):
            s = row[side]
            cells.append(f"{s['median']:.3f} [{s['min']:.3f}-{s['max']:.3f}]")
        ratio = f"{row['ratio']:.3f}" if row["ratio"] is not None else "-"
        print(f"{row['name']:28}{cells[0]:>24}{cells[1]:>24}{ratio:>8}  {row['note']}")
    choice = report.get("flash_choice") or {}
    if report.get("flash_attn_used"):
        timed = ", ".join(
            f"{kind}: {1000 * t['token_s']:.1f} ms a token, "
            + (f"{1000 * t['batch_s']:.0f} ms a follow-up" if t["batch_s"] else
               "follow-up not timed")
            for kind, t in (choice.get("timings") or {}).items())
        print(f"Hearth's flash attention: {report['flash_attn_used']}"
              + (f" ({choice['source']}{': ' + timed if timed else ''})" if choice else ""))
    if "llama_bench" in report:
        print("llama-bench: " + ", ".join(f"{k} {v:.1f} tok/s"
                                          for k, v in report["llama_bench"].items()))


def run_peer_or_spec(args: argparse.Namespace, model: str, log_dir: Path) -> int:
    reports = []
    if args.peer_server:
        reports.append(("peer", run_peer_bench(args, model, log_dir)))
    if args.spec:
        from desktop.bench.spec import run_spec_bench

        reports.append(("spec", run_spec_bench(args, model, log_dir)))
    if args.json:
        print(json.dumps(dict(reports), indent=2, default=str))
        return 0
    for kind, report in reports:
        if kind == "peer":
            print_peer(report)
        else:
            drafts = "prompt-lookup drafts" + (f"; draft model {report['draft_model']}"
                                               if report.get("draft_model") else "")
            print(f"Speculative decoding ({drafts}), {report['model']}, "
                  f"{report['threads']} threads; median [min-max], ratio = median of paired "
                  "with/without")
            print(f"{'':36}{'drafting on':>24}{'drafting off':>24}{'ratio':>8}  note")
            for row in report["rows"]:
                on, off = row["hearth"], row["peer"]
                print(f"{row['name']:36}"
                      f"{on['median']:>10.2f} [{on['min']:.1f}-{on['max']:.1f}]"
                      f"{off['median']:>10.2f} [{off['min']:.1f}-{off['max']:.1f}]"
                      f"{row['ratio']:8.3f}  {row['note']}")
    return 0
