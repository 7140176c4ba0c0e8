"""Which messages go into the prompt when the history outgrows the context window.

Old turns are dropped in large steps: when the window overflows, its start jumps forward
until the kept history fills at most half the budget. The start depends only on the
history, so it stays put turn after turn and llama.cpp's KV-cache prefix stays valid; the
cache is rebuilt only at the rare jumps, not on every turn.
"""

from __future__ import annotations

from collections.abc import Sequence

TURN_OVERHEAD = 8  # template tokens around each message (role markers, separators)


def history_budget(n_ctx: int, fixed_tokens: int, max_tokens: int) -> int:
    """Tokens available for history: the context less the system prompt and the reply reserve."""
    reserve = min(max_tokens, n_ctx // 2)
    return max(0, n_ctx - fixed_tokens - reserve)


def window_start(costs: Sequence[int], roles: Sequence[str], budget: int,
                 keep_fraction: float = 0.5) -> int:
    """Index of the first message to keep. `costs` are token counts per message.

    The newest message is always kept (the caller reports an error if even it cannot fit).
    The window starts on a user message, so a reply is never shown without its question.
    """
    start = 0
    total = 0
    for index, cost in enumerate(costs):
        total += cost + TURN_OVERHEAD
        if total > budget:
            target = budget * keep_fraction
            while start < index and total > target:
                total -= costs[start] + TURN_OVERHEAD
                start += 1
            while start < index and roles[start] != "user":
                total -= costs[start] + TURN_OVERHEAD
                start += 1
    return start
