"""The character n-gram language model without TensorFlow: ``CharNgram`` (training, storage,
exact lookups) and ``host_beam_search``, the CTC prefix beam search of
``language_model.lm_beam_search`` in numpy, step for step, for reading where TensorFlow is not
imported (``tf_crnn.reading.portable``). The rules are ``language_model``'s module docstring's;
``tests/test_language_model.py`` pins the two searches to the same readings and scores.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from tf_crnn.artifacts import LM_FILENAME

NEG = -1e30
"""Log-probability of nothing: finite, so that sums and differences of it stay finite."""
CANDIDATE_UNITS = 8
"""Units tried as the next character at each frame: the frame's most probable ones."""
PRUNE_MARGIN = 1e-3
"""Slack on the bound that skips the tables (a log-probability may round a hair above 0)."""


def _key(symbols: Sequence[int], base: int) -> int:
    """An n-gram's key: its symbols as the digits of a number in ``base``."""
    k = 0
    for s in symbols:
        k = k * base + int(s)
    return k


@dataclasses.dataclass(frozen=True)
class CharNgram:
    """A character n-gram model in backoff form (``language_model``'s module docstring)."""

    order: int
    n_units: int
    ngram_keys: np.ndarray
    ngram_log_probs: np.ndarray
    context_keys: np.ndarray
    context_log_backoffs: np.ndarray
    discount: float = 0.75

    @property
    def boundary(self) -> int:
        return self.n_units + 1

    @property
    def base(self) -> int:
        return self.n_units + 2

    def key(self, symbols: Sequence[int]) -> int:
        return _key(symbols, self.base)

    @functools.cached_property
    def _tables(self) -> tuple[dict, dict]:
        return (
            dict(zip(self.ngram_keys.tolist(), self.ngram_log_probs.tolist())),
            dict(zip(self.context_keys.tolist(), self.context_log_backoffs.tolist())),
        )

    def log_prob(self, context: Sequence[int], symbol: int) -> float:
        """Natural log P(symbol | the last ``order - 1`` symbols of context); the reference
        that ``NgramTables.log_prob`` is tested against."""
        context = [self.boundary] * (self.order - 1) + list(context)
        context = context[len(context) - (self.order - 1) :] if self.order > 1 else []
        ngrams, backoffs = self._tables
        total = 0.0
        for k in range(self.order, 0, -1):
            ctx = context[len(context) - (k - 1) :] if k > 1 else []
            found = ngrams.get(self.key([*ctx, symbol]))
            if found is not None:
                return total + found
            total += backoffs.get(self.key(ctx), 0.0)
        raise AssertionError("every unigram is stored")

    def line_log_prob(self, codes: Sequence[int]) -> float:
        """Natural log-probability of a whole line, its end included."""
        codes = list(codes)
        return sum(self.log_prob(codes[:i], c) for i, c in enumerate([*codes, self.boundary]))

    def save(self, path: str | os.PathLike) -> None:
        np.savez_compressed(
            path,
            order=self.order, n_units=self.n_units, discount=self.discount,
            ngram_keys=self.ngram_keys, ngram_log_probs=self.ngram_log_probs,
            context_keys=self.context_keys, context_log_backoffs=self.context_log_backoffs,
        )  # fmt: skip

    @classmethod
    def load(cls, path: str | os.PathLike) -> CharNgram:
        with np.load(path) as f:
            return cls(
                order=int(f["order"]), n_units=int(f["n_units"]), discount=float(f["discount"]),
                ngram_keys=f["ngram_keys"], ngram_log_probs=f["ngram_log_probs"],
                context_keys=f["context_keys"], context_log_backoffs=f["context_log_backoffs"],
            )  # fmt: skip

    def describe(self) -> str:
        return f"{self.order}-gram over {self.n_units} units, {len(self.ngram_keys):,} n-grams"


def train_ngram(sequences: Iterable[Sequence[int]], n_units: int, order: int = 6, discount: float = 0.75) -> CharNgram:
    """A ``CharNgram`` of ``order`` trained on ``sequences`` of codes in ``1..n_units``.

    Raises:
        ValueError: an order below 1, a discount outside (0, 1), a code outside the alphabet,
            or an order whose keys would not fit 63 bits.
    """
    if order < 1:
        raise ValueError(f"the language model's order must be at least 1 (got {order})")
    if not 0 < discount < 1:
        raise ValueError(f"the discount must be in (0, 1) (got {discount})")
    boundary, base = n_units + 1, n_units + 2
    if base**order >= 2**63:
        raise ValueError(f"order {order} is too high for {n_units} units (keys must fit 63 bits)")
    counts: list[Counter] = [Counter() for _ in range(order + 1)]
    for sequence in sequences:
        if any(not 1 <= c <= n_units for c in sequence):
            raise ValueError(f"a code outside 1..{n_units} in {list(sequence)}")
        padded = [boundary] * (order - 1) + list(sequence) + [boundary]
        for i in range(order - 1, len(padded)):
            for k in range(1, order + 1):
                counts[k][tuple(padded[i - k + 1 : i + 1])] += 1

    total = sum(counts[1].values())
    lower = {(c,): (counts[1][(c,)] + 1) / (total + n_units + 1) for c in range(1, boundary + 1)}
    ngrams = {_key(g, base): np.log(p) for g, p in lower.items()}
    contexts = {}
    for k in range(2, order + 1):
        context_total, context_types = Counter(), Counter()
        for gram, n in counts[k].items():
            context_total[gram[:-1]] += n
            context_types[gram[:-1]] += 1
        gamma = {ctx: discount * context_types[ctx] / n for ctx, n in context_total.items()}
        probs = {}
        for gram, n in counts[k].items():
            ctx = gram[:-1]
            probs[gram] = (n - discount) / context_total[ctx] + gamma[ctx] * lower[gram[1:]]
        ngrams.update((_key(g, base), np.log(p)) for g, p in probs.items())
        contexts.update((_key(ctx, base), np.log(g)) for ctx, g in gamma.items())
        lower = probs
    return CharNgram(
        order=order,
        n_units=n_units,
        ngram_keys=np.fromiter(ngrams.keys(), np.int64, len(ngrams)),
        ngram_log_probs=np.fromiter(ngrams.values(), np.float32, len(ngrams)),
        context_keys=np.fromiter(contexts.keys(), np.int64, len(contexts)),
        context_log_backoffs=np.fromiter(contexts.values(), np.float32, len(contexts)),
        discount=discount,
    )


def load_lm(export_path: str | os.PathLike) -> CharNgram | None:
    """The language model stored in an export, or None."""
    path = Path(export_path) / LM_FILENAME
    return CharNgram.load(path) if path.is_file() else None


class SortedTables:
    """A ``CharNgram``'s two tables as sorted arrays, looked up with binary search: what
    ``language_model.NgramTables`` does in the graph, in numpy."""

    def __init__(self, lm: CharNgram):
        self.order, self.base, self.boundary = lm.order, lm.base, lm.boundary
        self.ngrams = _sorted(lm.ngram_keys, lm.ngram_log_probs)
        self.backoffs = _sorted(lm.context_keys, lm.context_log_backoffs)

    def log_prob(self, contexts: np.ndarray, symbols: np.ndarray) -> np.ndarray:
        """``NgramTables.log_prob``: contexts ``int64[..., order - 1]``, symbols ``int64[...]``."""
        result = np.zeros(symbols.shape, np.float32)
        found = np.zeros(symbols.shape, bool)
        backoff = np.zeros(symbols.shape, np.float32)
        for k in range(self.order, 0, -1):
            context_key = np.zeros(symbols.shape, np.int64)
            for i in range(self.order - k, self.order - 1):
                context_key = context_key * self.base + contexts[..., i]
            stored = _lookup(self.ngrams, context_key * self.base + symbols, 1.0)
            hit = (stored <= 0.0) & ~found
            result = np.where(hit, backoff + stored, result)
            found = found | hit
            if found.all():  # the lower orders would change nothing (the graph reads them all)
                break
            if k > 1:
                backoff += np.where(found, np.float32(0.0), _lookup(self.backoffs, context_key, 0.0))
        return result


def _sorted(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(keys, kind="stable")
    return keys[order], values[order].astype(np.float32)


def _lookup(table: tuple[np.ndarray, np.ndarray], keys: np.ndarray, default: float) -> np.ndarray:
    stored, values = table
    at = np.minimum(np.searchsorted(stored, keys), len(stored) - 1)
    return np.where(stored[at] == keys, values[at], np.float32(default))


_NEG = np.float32(NEG)


def _logaddexp(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    high = np.maximum(a, b)
    return high + np.log1p(np.exp(np.minimum(a, b) - high))


def _top_k(values: np.ndarray, k: int) -> np.ndarray:
    """The indices of the ``k`` largest along the last axis, largest first, ties by lower index
    (``tf.math.top_k``'s order)."""
    return np.argsort(-values, axis=-1, kind="stable")[..., :k]


def merge_blank_runs(log_probs: np.ndarray, lengths: np.ndarray, blank_skip: float) -> tuple[np.ndarray, np.ndarray]:
    """``language_model.merge_blank_runs`` in numpy."""
    if blank_skip >= 1.0:
        return log_probs, lengths
    frames = log_probs.shape[1]
    inside = np.arange(frames)[None, :] < lengths[:, None]
    sure = log_probs[:, :, 0] >= np.float32(np.log(blank_skip))
    after_sure = np.pad(sure[:, :-1], [[0, 0], [1, 0]])
    keep = inside & ~(sure & after_sure)
    kept = keep.sum(axis=1).astype(np.int32)
    order = np.argsort((~keep).astype(np.int32), axis=1, kind="stable")
    longest = int(kept.max(initial=0))
    return np.take_along_axis(log_probs, order[:, :longest, None], axis=1), kept


def host_beam_search(
    log_probs: np.ndarray,
    lengths: np.ndarray,
    tables: SortedTables | None,
    lm_weight: float,
    length_bonus: float,
    beam_width: int = 8,
    top_paths: int = 1,
    blank_skip: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """``language_model.lm_beam_search`` (without a pattern) in numpy: the same arguments, the
    same ``(codes, scores)``: ``int32[top_paths, batch, length]`` padded with -1, best first, and
    ``float32[batch, top_paths]``, each transcription's CTC log-probability."""
    log_probs = np.asarray(log_probs, np.float32)
    lengths = np.asarray(lengths, np.int32)
    lm_weight, length_bonus = np.float32(lm_weight), np.float32(length_bonus)
    log_probs, lengths = merge_blank_runs(log_probs, lengths, blank_skip)
    batch, frames, n_classes = log_probs.shape
    beams, tried = beam_width, min(CANDIDATE_UNITS, n_classes - 1)
    n_context = tables.order - 1 if tables is not None else 0
    boundary = tables.boundary if tables is not None else 0
    rows = np.arange(batch)[:, None]

    pb = np.full((batch, beams), _NEG)
    pb[:, 0] = 0.0  # the empty prefix, probability 1
    s = {
        "pb": pb,
        "pnb": np.full((batch, beams), _NEG),
        "lm": np.zeros((batch, beams), np.float32),
        "length": np.zeros((batch, beams), np.int32),
        "last": np.zeros((batch, beams), np.int32),
        "hash": np.zeros((batch, beams), np.int64),
        "context": np.full((batch, beams, n_context), boundary, np.int64),
    }
    trail = np.zeros((frames, batch, beams), np.int32)
    added = np.zeros((frames, batch, beams), np.int32)
    stay = np.broadcast_to(np.arange(beams, dtype=np.int32)[None], (batch, beams))
    for t in range(frames):
        y = log_probs[:, t, :]
        total = _logaddexp(s["pb"], s["pnb"])
        alive = total > NEG / 2
        stay_pb = total + y[:, :1]
        stay_pnb = np.where(s["last"] > 0, s["pnb"] + np.take_along_axis(y, s["last"], axis=1), _NEG)
        units = _top_k(y[:, 1:], tried)
        y_units = np.take_along_axis(y[:, 1:], units, axis=1)[:, None, :]
        units = units[:, None, :].astype(np.int32) + 1
        same = s["last"][:, :, None] == units
        ext = np.where(same, s["pb"][:, :, None], total[:, :, None]) + y_units
        ext = np.where(alive[:, :, None], ext, _NEG)
        units = np.broadcast_to(units, ext.shape)
        units64 = units.astype(np.int64)
        ext_hash = s["hash"][:, :, None] * 1_000_003 + units64 + 1
        match = (
            (ext_hash[:, :, :, None] == s["hash"][:, None, None, :])
            & ((s["length"] + 1)[:, :, None, None] == s["length"][:, None, None, :])
            & alive[:, None, None, :]
        )
        matched = match.any(axis=(1, 2))
        if matched.any():
            candidates = np.where(match, ext[..., None], _NEG)
            top = candidates.max(axis=(1, 2))
            merged = np.log(np.exp(candidates - top[:, None, None, :]).sum(axis=(1, 2))) + top
            stay_pnb = _logaddexp(stay_pnb, np.where(matched, merged, _NEG))
            ext = np.where(match.any(axis=-1), _NEG, ext)
        length = s["length"].astype(np.float32)
        stay_score = _logaddexp(stay_pb, stay_pnb) + lm_weight * s["lm"] + length_bonus * length
        bound = ext + lm_weight * s["lm"][:, :, None] + length_bonus * (length + 1)[:, :, None]
        floor = stay_score.min(axis=1) - np.float32(PRUNE_MARGIN)
        wanted = (bound >= floor[:, None, None]) & (ext > NEG / 2)
        new_lm = np.zeros(ext.shape, np.float32)
        if tables is not None and wanted.any():
            where = np.nonzero(wanted)
            new_lm[where] = tables.log_prob(s["context"][where[0], where[1]], units64[where])
        ext_lm = s["lm"][:, :, None] + new_lm
        ext_score = np.where(wanted, ext + lm_weight * ext_lm + length_bonus * (length + 1)[:, :, None], _NEG)
        scores = np.concatenate([stay_score, ext_score.reshape(batch, beams * tried)], axis=1)
        chosen = _top_k(scores, beams)
        is_ext = chosen >= beams
        flat = np.maximum(chosen - beams, 0)
        source = np.where(is_ext, flat // tried, chosen).astype(np.int32)

        def pick(x, source=source):
            return x[rows, source]

        def pick_ext(x, flat=flat):
            return x.reshape(batch, beams * tried)[rows, flat]

        unit = np.where(is_ext, pick_ext(units), 0).astype(np.int32)
        new_context = pick(s["context"])
        if n_context:
            shifted = np.concatenate([new_context[..., 1:], unit.astype(np.int64)[..., None]], axis=-1)
            new_context = np.where(is_ext[..., None], shifted, new_context)
        new = {
            "pb": np.where(is_ext, _NEG, pick(stay_pb)),
            "pnb": np.where(is_ext, pick_ext(ext), pick(stay_pnb)),
            "lm": np.where(is_ext, pick_ext(ext_lm), pick(s["lm"])),
            "length": pick(s["length"]) + is_ext.astype(np.int32),
            "last": np.where(is_ext, unit, pick(s["last"])),
            "hash": np.where(is_ext, pick_ext(ext_hash), pick(s["hash"])),
            "context": new_context,
        }
        running = t < lengths  # a line past its own frames keeps its beams
        trail[t] = np.where(running[:, None], source, stay)
        added[t] = np.where(running[:, None] & is_ext, unit, 0)
        s = {k: np.where(running.reshape([-1] + [1] * (v.ndim - 1)), v, s[k]) for k, v in new.items()}

    ctc = _logaddexp(s["pb"], s["pnb"])
    ends = np.float32(0.0)
    if tables is not None:
        ends = tables.log_prob(s["context"], np.full(s["hash"].shape, boundary, np.int64))
    final = ctc + lm_weight * (s["lm"] + ends) + length_bonus * s["length"].astype(np.float32)
    final = np.where(ctc > NEG / 2, final, _NEG)
    best = _top_k(final, top_paths)
    codes = np.zeros((batch, top_paths, frames), np.int32)
    beam = best
    for t in range(frames - 1, -1, -1):
        codes[:, :, t] = np.take_along_axis(added[t], beam, axis=1)
        beam = np.take_along_axis(trail[t], beam, axis=1)
    order = np.argsort((codes == 0).astype(np.int32), axis=-1, kind="stable")
    packed = np.take_along_axis(codes, order, axis=-1)
    longest = max(int(np.take_along_axis(s["length"], best, axis=1).max(initial=0)), 0)
    codes = np.where(packed > 0, packed, -1)[:, :, :longest]
    return codes.transpose(1, 0, 2), np.take_along_axis(ctc, best, axis=1)
