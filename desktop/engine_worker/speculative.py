"""Prompt-lookup (n-gram) drafting and the policy that decides when drafting pays.

Answers over documents repeat stretches of the retrieved passages, and code edits repeat the
code they were given. When the last few tokens of the reply occurred earlier in the prompt or
the reply, the tokens that followed them there are a cheap guess at what comes next: the
decode loop (decode_loop.py) checks such a guess with one batched decode instead of one
decode per token. This module is pure Python (no llama_cpp), so its logic is easy to test.
"""

from __future__ import annotations

from dataclasses import dataclass

N_MAX = 4  # longest n-gram looked up (a longer match predicts better)
N_MIN = 2  # shortest: single tokens match everywhere and predict nothing
INDEX_WINDOW = 16384  # only the newest tokens are indexed (a 128k prompt would cost ~1 s)
WORTH_WEIGHT = 0.3  # weight of the newest verify step in the policy's moving worth


class NgramIndex:
    """Where each 2..4-gram of the history last occurred, kept as the history grows.

    Only n-grams whose continuation is already known are indexed, so a hit always has at
    least one token to propose."""

    def __init__(self, tokens: list[int]) -> None:
        self.tokens: list[int] = list(tokens[-INDEX_WINDOW:])
        self.index: dict[tuple[int, ...], int] = {}
        toks = self.tokens
        for n in range(N_MIN, N_MAX + 1):
            index = self.index
            for end in range(n, len(toks)):
                index[tuple(toks[end - n:end])] = end  # later occurrences overwrite earlier

    def append(self, token: int) -> None:
        toks = self.tokens
        toks.append(token)
        end = len(toks) - 1  # the n-grams ending just before `token` now have a continuation
        for n in range(N_MIN, N_MAX + 1):
            if end >= n:
                self.index[tuple(toks[end - n:end])] = end

    def draft(self, limit: int) -> list[int]:
        """Up to `limit` tokens that followed the longest recent match of the history's tail."""
        if limit <= 0:
            return []
        toks = self.tokens
        for n in range(N_MAX, N_MIN - 1, -1):
            if len(toks) < n:
                continue
            start = self.index.get(tuple(toks[-n:]))
            if start is not None:
                draft = toks[start:start + limit]
                # Images are negative pseudo ids in the history (multimodal.py): no token
                # to propose there, so the draft ends before one.
                return draft[:next((i for i, t in enumerate(draft) if t < 0), len(draft))]
        return []


@dataclass
class DraftPolicy:
    """How many tokens to draft next, from what recent drafts earned.

    A draft costs a batch of k+1 tokens instead of one; on a CPU that batch takes longer than
    one token (about 1.3x for 4 tokens for Gemma 3 270M on the test machine, but 2x for 3
    tokens for SmolLM2 135M), so drafts that keep missing lose time. The policy grows the
    draft while drafts are accepted, shrinks it when they are not, and pauses drafting (for a
    growing number of tokens) after a step that did not pay, and also after one that did while
    steps do not pay on average: each step's worth is the tokens it gave over what single
    decodes would have given in its time, and a moving average of it below 1 keeps the pauses
    growing. (Judging each step alone let an occasional lucky draft end every pause:
    SmolLM2's story, 1 draft in 3 accepted, ran 5% slower with drafting on.)
    `eager` (document answers) starts with long drafts."""

    eager: bool = False
    max_draft: int = 12
    length: int = 0
    cooldown: int = 0  # tokens to go before drafting again
    misses: int = 0  # consecutive steps that did not pay, or paid with the average below 1
    worth: float | None = None  # moving average of the steps' worth (None: no step yet)
    drafted: int = 0
    accepted: int = 0
    steps: int = 0

    def __post_init__(self) -> None:
        self.length = self.max_draft if self.eager else max(2, self.max_draft // 3)

    def want(self) -> int:
        """Draft length for the next step (0: decode one token, no draft)."""
        if self.cooldown > 0:
            self.cooldown -= 1
            return 0
        return self.length

    def unsure(self) -> None:
        """A draft model was asked and proposed nothing (its top token was unlikely): that
        cost a draft-model decode for nothing, so back off as after a draft that did not pay."""
        self.misses += 1
        self.cooldown = min(64, 2 ** self.misses)

    def record(self, drafted: int, accepted: int, worth: float) -> None:
        """One verify step: `worth` is the tokens it gave over what single decodes would have
        given in the time it took (above 1: it paid)."""
        self.drafted += drafted
        self.accepted += accepted
        self.steps += 1
        if accepted == drafted:
            self.length = min(self.max_draft, self.length + max(1, self.length // 2))
        elif accepted * 2 < drafted:
            self.length = max(1, min(self.length, accepted + 1))
        self.worth = worth if self.worth is None else self.worth + WORTH_WEIGHT * (
            worth - self.worth)
        if worth > 1.0 and self.worth >= 1.0:  # it paid, and drafting pays on average
            self.misses = 0
        else:
            self.misses += 1
            # Pause 2, 4, 8 ... 64 tokens: a chat that matches nothing pays almost nothing.
            self.cooldown = min(64, 2 ** self.misses)
