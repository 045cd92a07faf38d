"""Any OpenAI-compatible server as the agent (``agent.backend=openai``), through the ``openai``
package: vLLM's ``vllm serve``, SGLang, or a hosted API.

Two ways to talk to it (``agent.openai.api``):

* ``completions`` (default): the prompt goes as the token ids the prompt builder rendered (the
  same prompts as every other backend), and the completion comes back as token ids with one
  log-probability each: vLLM's ``/v1/completions`` does this with ``logprobs=0`` (the sampled
  token only) and ``return_tokens_as_token_ids`` (tokens come back as ``"token_id:<id>"``). Such
  episodes can be trained on. A server that answers with text only gives text-only, untrainable
  turns (warned once). Start vLLM with ``--logprobs-mode processed_logprobs`` (the
  log-probabilities of the distribution sampled from, as the other backends record) and
  ``--generation-config vllm`` (no sampling defaults taken from the model folder).
* ``chat``: the prompt's chat messages go to ``/v1/chat/completions`` and text comes back; the
  turns are recorded as not trainable (``Generation.trainable``), and ``collate`` refuses them.

Each prompt is its own request; at most ``max_concurrency`` are in flight. A request that fails
with a connection error, a timeout, 429 or a 5xx is retried ``max_retries`` times with doubling
waits from ``backoff_s``; after that (or on any other error) the prompt's generation is
:meth:`Generation.failed` with the reason, and the rollout ends that episode as failed: a dead
server fails episodes, it never crashes an evaluation. The backend cannot take new weights
(``update_weights`` raises), so the trainer does not accept it as its rollout engine.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentropy.agents.backends.base import Generation, SamplingParams, TurnContext
from torch import Tensor

if TYPE_CHECKING:
    from agentropy.configs.schema import AgentConfig
    from transformers import PreTrainedTokenizerBase

__all__ = ["OpenAIBackend"]

log = logging.getLogger(__name__)

_TOKEN_ID_PREFIX = "token_id:"


class _GiveUp(Exception):
    """A request error that no retry fixes (a 4xx other than 429, or a malformed answer)."""


class OpenAIBackend:
    """Requests to an OpenAI-compatible server behind the backend interface.

    Args:
        tokenizer: the served model's tokenizer (renders the prompts; decodes ids for records).
        base_url: the server's API root, e.g. ``http://127.0.0.1:8000/v1``.
        model: the served model name.
        api_key: sent as the bearer token (``EMPTY`` suits local servers).
        api: ``completions`` (token ids in and out, trainable) or ``chat`` (text only).
        max_concurrency: requests in flight at once.
        timeout_s: per request.
        max_retries: retries of a retryable failure.
        backoff_s: wait before the first retry; doubled for each further one.
    """

    name = "openai"

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        *,
        base_url: str,
        model: str,
        api_key: str = "EMPTY",
        api: str = "completions",
        max_concurrency: int = 8,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        import openai

        if api not in ("completions", "chat"):
            raise ValueError(f"api must be 'completions' or 'chat', got {api!r}")
        self._openai = openai
        self.tokenizer = tokenizer
        self.model = model
        self.api = api
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        # The client's own retries are off: ours count, wait and report.
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0)
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="openai")
        self.eos_ids = tuple(i for i in (tokenizer.eos_token_id,) if i is not None)
        self._version = 0
        self._warned_text_only = False

    @classmethod
    def from_config(cls, config: AgentConfig, model_path: str | Path) -> OpenAIBackend:
        """From ``agent.openai.*``; the tokenizer is loaded from ``model_path`` (``agent.model``)."""
        from transformers import AutoTokenizer

        o = config.openai
        return cls(
            AutoTokenizer.from_pretrained(str(model_path)),
            base_url=o.base_url,
            model=o.model or str(config.model),
            api_key=os.environ.get(o.api_key_env) or "EMPTY",
            api=o.api,
            max_concurrency=o.max_concurrency,
            timeout_s=o.timeout_s,
            max_retries=o.max_retries,
            backoff_s=o.backoff_s,
        )

    @property
    def policy_version(self) -> int:
        return self._version

    # ------------------------------------------------------------------ generation
    def generate(
        self,
        prompt_ids: Sequence[Sequence[int]],
        sampling: SamplingParams,
        contexts: Sequence[TurnContext] | None = None,
    ) -> list[Generation]:
        sampling.refuse_token_temperature(self.name)
        if any(len(p) == 0 for p in prompt_ids):
            raise ValueError("generate(): an empty prompt")
        if self.api == "chat" and (contexts is None or any(not c.messages for c in contexts)):
            raise ValueError("api=chat needs each prompt's chat messages (TurnContext.messages, step mode)")
        jobs = []
        for i, ids in enumerate(prompt_ids):
            seed = None if sampling.seed is None else sampling.seed + i  # group members must differ
            if self.api == "chat":
                assert contexts is not None
                messages = [dict(m) for m in contexts[i].messages]
                request = partial(self._chat, messages, sampling, seed)
            else:
                request = partial(self._complete, list(ids), sampling, seed)
            jobs.append(self._pool.submit(self._attempts, request))
        return [job.result() for job in jobs]

    def _attempts(self, request: Callable[[], Generation]) -> Generation:
        """Run ``request`` with retries; a failed generation with the reason once they run out."""
        errors = self._openai
        wait = self.backoff_s
        for attempt in range(self.max_retries + 1):
            try:
                return request()
            except _GiveUp as exc:
                return Generation.failed(f"openai: {exc}")
            except errors.APIStatusError as exc:
                reason = f"openai: HTTP {exc.status_code}: {_short(exc.message)}"
                if exc.status_code != 429 and exc.status_code < 500:
                    return Generation.failed(reason)
            except (errors.APIConnectionError, errors.APITimeoutError) as exc:
                reason = f"openai: {type(exc).__name__}: {_short(str(exc))}"
            except errors.OpenAIError as exc:  # e.g. an answer the client cannot read
                return Generation.failed(f"openai: {type(exc).__name__}: {_short(str(exc))}")
            if attempt < self.max_retries:
                log.debug("%s; retry %d of %d in %.2f s", reason, attempt + 1, self.max_retries, wait)
                time.sleep(wait)
                wait *= 2
        log.warning("%s (after %d retries)", reason, self.max_retries)
        return Generation.failed(f"{reason} (after {self.max_retries} retries)")

    def _complete(self, prompt: list[int], sampling: SamplingParams, seed: int | None) -> Generation:
        response = self.client.completions.create(
            model=self.model,
            prompt=prompt,
            max_tokens=sampling.max_new_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=seed,
            logprobs=0,
            extra_body={
                "return_tokens_as_token_ids": True,
                "top_k": 0,
                "stop_token_ids": list(self.eos_ids),
                "skip_special_tokens": True,
            },
        )
        if not response.choices:
            raise _GiveUp("the server returned no choice")
        choice = response.choices[0]
        finish = _finish_reason(choice.finish_reason)
        lp = choice.logprobs
        if lp is None or lp.tokens is None or lp.token_logprobs is None:
            return self._text_only(choice.text or "", finish)
        try:
            ids = tuple(int(t[len(_TOKEN_ID_PREFIX):]) for t in lp.tokens)
        except ValueError:
            if not all(t.startswith(_TOKEN_ID_PREFIX) for t in lp.tokens):
                return self._text_only(choice.text or "", finish)
            raise _GiveUp(f"malformed token ids {lp.tokens[:3]}") from None
        if len(lp.token_logprobs) != len(ids) or any(x is None for x in lp.token_logprobs):
            raise _GiveUp(f"{len(ids)} tokens but {len(lp.token_logprobs)} log-probabilities")
        return Generation(
            token_ids=ids,
            logprobs=tuple(float(x) for x in lp.token_logprobs),
            text=self.tokenizer.decode(ids, skip_special_tokens=True),
            finish_reason=finish,
        )

    def _chat(self, messages: list[dict[str, str]], sampling: SamplingParams, seed: int | None) -> Generation:
        response = self.client.chat.completions.create(
            model=self.model,
            messages=messages,  # type: ignore[arg-type]
            max_tokens=sampling.max_new_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=seed,
        )
        if not response.choices:
            raise _GiveUp("the server returned no choice")
        choice = response.choices[0]
        return Generation(token_ids=(), logprobs=(), text=choice.message.content or "",
                          finish_reason=_finish_reason(choice.finish_reason), trainable=False)

    def _text_only(self, text: str, finish: str) -> Generation:
        if not self._warned_text_only:
            self._warned_text_only = True
            log.warning("the server returned text without token ids and log-probabilities: episodes are "
                        "recorded as not trainable (vLLM returns them with return_tokens_as_token_ids)")
        return Generation(token_ids=(), logprobs=(), text=text, finish_reason=finish, trainable=False)

    # ------------------------------------------------------------------ weights
    def update_weights(self, state_dict: Mapping[str, Tensor], *, version: int | None = None) -> None:
        raise NotImplementedError(
            "agent.backend=openai cannot take new weights: the server owns them; train with "
            "agent.backend=hf or vllm"
        )

    def close(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self.client.close()


def _finish_reason(reason: Any) -> str:
    # Servers say "stop" for EOS or a stop string, "length" at max_tokens; anything else
    # (e.g. "abort") is a length-like cut: the completion did not end by itself.
    return "stop" if reason == "stop" else "length"


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
