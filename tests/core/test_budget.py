from __future__ import annotations

from desktop.core.chat.budget import TURN_OVERHEAD, history_budget, window_start


def _history(n: int, cost: int = 100) -> tuple[list[int], list[str]]:
    return [cost] * n, ["user" if i % 2 == 0 else "assistant" for i in range(n)]


def test_everything_fits() -> None:
    costs, roles = _history(6)
    assert window_start(costs, roles, 10_000) == 0


def test_window_never_exceeds_budget_and_starts_on_a_user_turn() -> None:
    budget = 1000
    for n in range(1, 60):
        costs, roles = _history(n, cost=97)
        start = window_start(costs, roles, budget)
        kept = sum(c + TURN_OVERHEAD for c in costs[start:])
        assert kept <= budget or start == n - 1
        assert roles[start] == "user"


def test_start_moves_rarely_in_large_steps() -> None:
    budget = 2000
    starts = []
    for n in range(2, 200, 2):
        costs, roles = _history(n, cost=150)
        starts.append(window_start(costs, roles, budget))
    changes = [b for a, b in zip(starts, starts[1:], strict=False) if a != b]
    # 99 turns, each jump drops about half the window: far fewer rebuilds than turns.
    assert 0 < len(changes) < len(starts) / 3
    assert starts == sorted(starts)  # the window only moves forward


def test_budget_reserves_room_for_the_reply() -> None:
    assert history_budget(4096, 100, 1024) == 4096 - 100 - 1024
    assert history_budget(1024, 0, 4096) == 512  # reserve is capped at half the context
