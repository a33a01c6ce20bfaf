"""A pattern a reading must match (``--pattern``): a regular expression over the whole line,
compiled to a deterministic automaton over the model's units that the CTC prefix search walks
(``language_model.lm_beam_search``), with or without the language model.

The expression is parsed and made deterministic by ``greenery``. Making an expression
deterministic can take time and memory exponential in its size (``(a|b)*a(a|b){20}``), so it
happens in a child process (``python -m tf_crnn.network.patterns``) that is given a few seconds
and a bounded memory, and is killed past them: a hostile pattern is refused, never a stuck reader.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAX_PATTERN_LENGTH = 500
"""The longest pattern taken, in characters."""

MAX_STATES = 5000
"""The most states a pattern's automaton may have (a date or an amount needs a few dozen)."""

COMPILE_SECONDS = 5.0
"""How long compiling a pattern may take before it is refused."""

_CHILD_MEMORY = 1 << 30  # bytes of address space beyond which the child's allocations fail


BEST_PATH_CELLS = 20_000_000
"""The most back-pointers (frames x states x classes) ``Pattern.best_path`` keeps (80 MB)."""


class PatternError(ValueError):
    """A pattern that cannot be read with: unparsable, too large, too slow, or matching nothing."""


@dataclass(frozen=True)
class Pattern:
    """A pattern as an automaton over the model's codes.

    Attributes:
        text: the expression as given.
        transitions: ``int32[states, n_classes]``, the state after reading a unit (the blank,
            code 0, leaves the state as it is); -1 where no line that goes on this way can match.
            State 0 is the start.
        accepting: ``bool[states]``, the states where a reading may end.
    """

    text: str
    transitions: np.ndarray
    accepting: np.ndarray

    def matches(self, codes: Sequence[int]) -> bool:
        """Whether the units ``codes`` (blank and padding, codes below 1, ignored) match."""
        state = 0
        for code in codes:
            if code > 0:
                state = int(self.transitions[state, code])
                if state < 0:
                    return False
        return bool(self.accepting[state])

    def best_path(self, log_probs: np.ndarray) -> list[int] | None:
        """The units of the most probable single alignment (CTC's best path) of one line's frames
        ``log_probs`` (``[frames, n_classes]``) whose units match: an exact search, where the
        prefix search can end with every beam on a prefix that the rest of the line cannot
        complete. None where no alignment matches (fewer frames than the pattern needs units) or
        the search would hold more than ``BEST_PATH_CELLS`` back-pointers.

        A Viterbi search over (state, last unit): a unit read again on the next frame is the same
        unit; after a blank or another unit, a new one (CTC's collapsing rule)."""
        log_probs = np.asarray(log_probs, np.float64)
        frames, n_classes = log_probs.shape
        states = self.transitions.shape[0]
        if frames * states * n_classes > BEST_PATH_CELLS:
            return None
        rows, units = np.arange(states), np.arange(n_classes)
        # score[q, u]: the best alignment so far that is in state q with unit u last (0: a blank).
        score = np.full((states, n_classes), -np.inf)
        score[0, 0] = 0.0
        back = np.zeros((frames, states, n_classes, 2), np.int16)  # the (state, last) it came from
        for t in range(frames):
            y = log_probs[t]
            best_last = np.argmax(score, axis=1)
            best = score[rows, best_last]
            new = np.full_like(score, -np.inf)
            came = np.zeros((states, n_classes, 2), np.int16)
            new[:, 0] = best + y[0]  # a blank: the same state
            came[:, 0, 0], came[:, 0, 1] = rows, best_last
            new[:, 1:] = score[:, 1:] + y[1:]  # the same unit again: the same state and unit
            came[:, 1:, 0], came[:, 1:, 1] = rows[:, None], units[None, 1:]
            # A new unit u from state p: from p's best last unit other than u.
            masked = score.copy()
            masked[rows, best_last] = -np.inf
            second_last = np.argmax(masked, axis=1)
            second = masked[rows, second_last]
            for p in np.nonzero(np.isfinite(best))[0]:
                targets = self.transitions[p, 1:]
                u = np.nonzero(targets >= 0)[0] + 1
                q = targets[u - 1]
                again = u == best_last[p]
                value = np.where(again, second[p], best[p]) + y[u]
                better = value > new[q, u]
                q, u, value, last = (
                    q[better],
                    u[better],
                    value[better],
                    np.where(again, second_last[p], best_last[p])[better],
                )
                new[q, u] = value
                came[q, u, 0], came[q, u, 1] = p, last
            score = new
            back[t] = came
        ends = np.where(self.accepting[:, None], score, -np.inf)
        if not np.isfinite(ends).any():
            return None
        q, last = np.unravel_index(np.argmax(ends), ends.shape)
        path = []
        for t in range(frames - 1, -1, -1):
            p, before = back[t, q, last]
            if last > 0 and (p, before) != (q, last):  # a unit begins on this frame
                path.append(int(last))
            q, last = int(p), int(before)
        return path[::-1]


def compile_pattern(pattern: str, units: Sequence[str], seconds: float = COMPILE_SECONDS) -> Pattern:
    """``pattern`` as an automaton over ``units`` (the alphabet's ``units_by_code``: the unit of
    each code, the blank's first), compiled in a child process given ``seconds``.

    The pattern matches the whole line, as Python's ``re.fullmatch`` does; ``^`` and ``$`` are
    not needed. A unit of several characters must match as its characters do in a row.

    Raises:
        PatternError: a pattern that cannot be parsed, longer than ``MAX_PATTERN_LENGTH``, whose
            automaton has more than ``MAX_STATES`` states or takes longer than ``seconds``, or
            that no reading of these units can match. The message says which and names the pattern.
    """
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"pattern of {len(pattern)} characters; at most {MAX_PATTERN_LENGTH} are taken")
    request = json.dumps({"pattern": _greenery_syntax(pattern), "units": list(units)})
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tf_crnn.network.patterns"],
            input=request,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=seconds,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise PatternError(
            f"pattern '{pattern}' still compiling after {seconds:g} s: too complex (a repeated choice "
            "followed by a long count, such as (a|b)*a(a|b){20}); write it more narrowly"
        ) from None
    try:
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        reason = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        raise PatternError(f"pattern '{pattern}' could not be compiled: {reason[0]}") from None
    if "error" in answer:
        raise PatternError(f"pattern '{pattern}': {answer['error']}")
    return Pattern(
        pattern, np.array(answer["transitions"], np.int32).reshape(-1, len(units)), np.array(answer["accepting"], bool)
    )


def _greenery_syntax(pattern: str) -> str:
    """``pattern`` (Python's syntax, matched whole) as greenery reads it: no anchors at its ends
    (greenery reads ``^`` and ``$`` as characters), and the escapes it lacks written otherwise."""
    core = pattern[1:] if pattern.startswith("^") else pattern
    if core.endswith("$") and (len(core) - 1 - len(core[:-1].rstrip("\\"))) % 2 == 0:  # not an escaped $
        core = core[:-1]
    out, i, in_class = [], 0, False
    while i < len(core):
        c = core[i]
        if c == "\\" and i + 1 < len(core):
            escaped = core[i + 1]
            if escaped == "$":
                out.append("$")
            elif escaped in "^-" and not in_class:
                out.append(f"[\\{escaped}]")
            else:
                out.append(core[i : i + 2])
            i += 2
            continue
        if c == "[" and not in_class:
            in_class = True
        elif c == "]" and in_class and out[-1] != "[":
            in_class = False
        out.append(c)
        i += 1
    return "".join(out)


def unit_automaton(pattern: str, units: Sequence[str]) -> dict:
    """The work of the child: ``{"transitions": [...], "accepting": [...]}`` (row by row, as
    ``Pattern`` holds them) or ``{"error": message}``. Pure Python: no NumPy, no TensorFlow."""
    import importlib

    from greenery import parse

    NoMatch = importlib.import_module("greenery.parse").NoMatch  # the package's ``parse`` hides its module

    try:
        fsm = parse(pattern).to_fsm().reduce()
    except (NoMatch, IndexError, ValueError) as error:
        return {
            "error": f"cannot be parsed ({error or type(error).__name__}); the syntax is Python's, without flags or look-arounds"
        }
    if len(fsm.states) > MAX_STATES:
        return {"error": f"its automaton has {len(fsm.states)} states, more than {MAX_STATES}; write it more narrowly"}

    def step(state, character):
        for charclass, following in fsm.map.get(state, {}).items():
            if charclass.accepts(character):
                return following
        return None

    # The states the model's units reach from the start, and from which of them a unit leads where.
    moves, reached, frontier = {}, {fsm.initial}, [fsm.initial]
    while frontier:
        state = frontier.pop()
        moves[state] = [None] + [_walk(step, state, unit) for unit in units[1:]]
        for following in moves[state]:
            if following is not None and following not in reached:
                reached.add(following)
                frontier.append(following)
    # Those from which an accepting state can still be reached: the others lead nowhere.
    live = reached & set(fsm.finals)
    grew = True
    while grew:
        grew = False
        for state in reached - live:
            if any(following in live for following in moves[state]):
                live.add(state)
                grew = True
    if fsm.initial not in live:
        return {"error": "no line of the model's characters can match it"}
    order = [fsm.initial] + sorted(live - {fsm.initial}, key=str)
    number = {state: i for i, state in enumerate(order)}
    transitions = []
    for state in order:
        transitions.append(number[state])  # the blank
        transitions.extend(number[f] if f in live else -1 for f in moves[state][1:])
    if all(t < 0 for i, t in enumerate(transitions) if i % len(units)):
        return {"error": "it matches only the empty line"}
    return {"transitions": transitions, "accepting": [state in fsm.finals for state in order]}


def _walk(step, state, unit: str):
    for character in unit or "\x00":  # a unit without characters reads as nothing a pattern takes
        if state is None:
            return None
        state = step(state, character)
    return state


def _child() -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (_CHILD_MEMORY, _CHILD_MEMORY))
    except (ImportError, ValueError, OSError):  # a platform without it: the time limit still holds
        pass
    request = json.loads(sys.stdin.read())
    try:
        answer = unit_automaton(request["pattern"], request["units"])
    except MemoryError:
        answer = {"error": "its automaton outgrew the memory a pattern may take; write it more narrowly"}
    except RecursionError:
        answer = {"error": "nested too deeply"}
    print(json.dumps(answer))


if __name__ == "__main__":
    _child()


__all__ = ["COMPILE_SECONDS", "MAX_PATTERN_LENGTH", "MAX_STATES", "Pattern", "PatternError", "compile_pattern"]
