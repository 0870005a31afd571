"""EvalPlus code generation and evaluation in one run; a script for EvalPlus's own Python.

``profiles.bench_run`` runs this file with the Python of ``profiles.evalplus_env`` (it
imports nothing of fit's, only EvalPlus): ``python evalplus_driver.py REQUEST.json``. The
request names the dataset, the OpenAI-compatible endpoint, the model name, the output root,
the most tokens per answer and, where the bench profile needs one, the system prompt.

Two things of EvalPlus's OpenAI client are replaced, each for a reason:

- its request (``openai_request.make_request``) sends a fixed system message ("You are a
  helpful assistant good at coding."); a bench profile's SYSTEM_PROMPT (bench-client.conf)
  replaces that one message, the rest of the request is EvalPlus's own (top_p 0.95 included);
- its retry loop (``make_auto_request``) aborts every request after 100 s with SIGALRM and
  retries it forever, so an answer slower than that (a big model, a thinking one, a busy
  CPU) would never finish; here a request waits for its answer, and a server that cannot be
  reached fails the run after a few tries.

Datasets come from EvalPlus's loaders, which honour HUMANEVAL_OVERRIDE_PATH /
MBPP_OVERRIDE_PATH (the caller sets them for a --limit subset).
"""

import json
import sys
import time

DEFAULT_SYSTEM = "You are a helpful assistant good at coding."  # EvalPlus 0.3.1's
CONNECTION_TRIES = 5


def _patch_requests(system_prompt, max_tokens):
    import openai
    from evalplus.gen.util import openai_request
    from evalplus.provider.base import DecoderBase

    def make_request(client, message, model, max_tokens=512, temperature=1, n=1, **kwargs):
        return client.chat.completions.create(
            model=model,
            messages=[
                {"role": "system", "content": system_prompt or DEFAULT_SYSTEM},
                {"role": "user", "content": message},
            ],
            max_tokens=max_tokens,
            temperature=temperature,
            n=n,
            top_p=0.95,
            **kwargs,
        )

    def make_auto_request(*args, **kwargs):
        for attempt in range(CONNECTION_TRIES):
            try:
                return make_request(*args, **kwargs)
            except openai.APIConnectionError:
                if attempt == CONNECTION_TRIES - 1:
                    raise
                time.sleep(2)

    openai_request.make_request = make_request
    openai_request.make_auto_request = make_auto_request
    original_init = DecoderBase.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.max_new_tokens = max_tokens

    DecoderBase.__init__ = init


def main(request_path):
    with open(request_path) as handle:
        request = json.load(handle)
    _patch_requests(request.get("system_prompt"), request["max_tokens"])
    from evalplus.codegen import run_codegen
    from evalplus.evaluate import evaluate

    samples = run_codegen(
        model=request["model"],
        dataset=request["dataset"],
        root=request["root"],
        backend="openai",
        base_url=request["base_url"],
        greedy=True,
    )
    evaluate(dataset=request["dataset"], samples=samples, parallel=request.get("parallel", 1))
    print(f"samples: {samples}")


if __name__ == "__main__":
    main(sys.argv[1])
