"""A character n-gram language model over alphabet units, and the CTC beam search that uses it.

The model (``CharNgram``) is trained from label sequences (alphabet codes ``1..n_units``) with
interpolated absolute discounting, and stored in backoff form: a log-probability for each
n-gram seen in training and a log backoff weight for each context, so that

    P(c | context) = stored(context + c)                    if seen,
                   = backoff(context) * P(c | context[1:])  otherwise,

with add-one unigrams over every unit and the end of a line, so every unit keeps a chance.
``boundary`` (``n_units + 1``) stands for the start of a line in contexts and for its end as a
predicted symbol. An n-gram is keyed by one integer, its symbols as digits in base
``n_units + 2`` (every digit is at least 1, so keys of different orders never collide).

``NgramTables`` holds the two tables as TensorFlow hash tables: an export carries them in its
graph, so that a SavedModel reads bytes to text with the model and no file beside it.
``lm_beam_search`` is CTC prefix beam search (batched, in TensorFlow ops) scoring each prefix by

    log P_ctc(prefix) + lm_weight * log P_lm(prefix) + length_bonus * len(prefix)

and adding the end-of-line probability at the end; ``lm_weight`` 0 leaves greedy decoding in
charge, which is what an export does until ``tf-crnn tune-lm`` finds a weight that
lowers the validation CER. Most frames of a line are blanks the network is sure of; the search
reads each run of them as one frame (``merge_blank_runs``): a sure blank only moves every prefix
to "ends in a blank", so the second one of a run changes nothing the search could choose.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from tf_crnn.alphabet import normalize
from tf_crnn.data.direction import BASES, reorder, reorder_text
from tf_crnn.network.ngram import (
    CANDIDATE_UNITS,
    LM_FILENAME,
    NEG,
    PRUNE_MARGIN,
    CharNgram,
    load_lm,
    train_ngram,
)
from tf_crnn.records import read_csv_rows, split_label


class NgramTables(tf.Module):
    """A ``CharNgram`` as two TensorFlow hash tables, for use inside graphs."""

    def __init__(self, lm: CharNgram):
        super().__init__(name="char_ngram")
        self.order, self.base, self.boundary = lm.order, lm.base, lm.boundary
        # Log-probabilities are at most 0: the default 1 marks a missing n-gram.
        self.ngrams = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(lm.ngram_keys), tf.constant(lm.ngram_log_probs)), 1.0
        )
        self.backoffs = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(lm.context_keys), tf.constant(lm.context_log_backoffs)),
            0.0,
        )

    def log_prob(self, contexts: tf.Tensor, symbols: tf.Tensor) -> tf.Tensor:
        """``log P(symbols | contexts)``: contexts ``int64[..., order - 1]`` (oldest first,
        ``boundary`` before a line's start), symbols ``int64[...]``; float32 ``[...]``."""
        result = tf.zeros(tf.shape(symbols), tf.float32)
        found = tf.zeros(tf.shape(symbols), tf.bool)
        backoff = tf.zeros(tf.shape(symbols), tf.float32)
        for k in range(self.order, 0, -1):
            context_key = tf.zeros(tf.shape(symbols), tf.int64)
            for i in range(self.order - k, self.order - 1):
                context_key = context_key * self.base + contexts[..., i]
            stored = self.ngrams.lookup(context_key * self.base + symbols)
            hit = (stored <= 0.0) & ~found
            result = tf.where(hit, backoff + stored, result)
            found = found | hit
            if k > 1:
                backoff += tf.where(found, 0.0, self.backoffs.lookup(context_key))
        return result


def _logaddexp(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    high = tf.maximum(a, b)
    return high + tf.math.log1p(tf.exp(tf.minimum(a, b) - high))


def merge_blank_runs(log_probs: tf.Tensor, lengths: tf.Tensor, blank_skip: float) -> tuple[tf.Tensor, tf.Tensor]:
    """Each line's frames with every run of sure blanks (blank probability at least
    ``blank_skip``) kept as its first frame alone, packed to the front: ``(log_probs,
    lengths)`` as given, with fewer frames. ``blank_skip`` 1 or more keeps every frame."""
    if blank_skip >= 1.0:
        return log_probs, lengths
    frames = tf.shape(log_probs)[1]
    inside = tf.range(frames)[None, :] < lengths[:, None]
    sure = log_probs[:, :, 0] >= float(np.log(blank_skip))
    after_sure = tf.pad(sure[:, :-1], [[0, 0], [1, 0]])
    keep = inside & ~(sure & after_sure)
    kept = tf.reduce_sum(tf.cast(keep, tf.int32), axis=1)
    # A stable sort of "dropped" puts each line's kept frames first, in their order.
    order = tf.argsort(tf.cast(~keep, tf.int32), axis=1, stable=True)
    longest = tf.reduce_max(tf.concat([kept, [0]], 0))
    return tf.gather(log_probs, order[:, :longest], batch_dims=1), kept


def lm_beam_search(
    log_probs: tf.Tensor,
    lengths: tf.Tensor,
    tables: NgramTables | None,
    lm_weight,
    length_bonus,
    beam_width: int = 8,
    top_paths: int = 1,
    blank_skip: float = 1.0,
    pattern: tuple[tf.Tensor, tf.Tensor] | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """CTC prefix beam search with the language model (see the module docstring), and within a
    pattern where one is given.

    Args:
        log_probs: ``float32[batch, time, n_classes]`` natural log-probabilities (blank: class 0).
        lengths: ``int32[batch]`` each line's own number of frames.
        tables: the language model, or None (then ``lm_weight`` counts for nothing).
        lm_weight, length_bonus: scalars (tensors or numbers).
        beam_width: prefixes kept at each frame.
        top_paths: alternatives returned, at most ``beam_width``.
        blank_skip: runs of frames whose blank probability is at least this are read as one
            (``merge_blank_runs``); 1 reads every frame.
        pattern: ``(transitions, accepting)`` of a ``patterns.Pattern``: each prefix carries its
            state, is extended only by the units its state takes, and is read only if it ends in
            an accepting one. Without it every unit is tried at every prefix.

    Returns:
        ``(codes, scores)`` as ``decoding.beam_search_decode``: ``int32[top_paths, batch, length]``
        padded with -1, best first, and ``float32[batch, top_paths]``, the CTC log-probability of
        each transcription (without the language model's part).
    """
    log_probs = tf.cast(log_probs, tf.float32)
    lengths = tf.cast(lengths, tf.int32)
    lm_weight = tf.cast(lm_weight, tf.float32)
    length_bonus = tf.cast(length_bonus, tf.float32)
    log_probs, lengths = merge_blank_runs(log_probs, lengths, blank_skip)
    batch, frames = tf.shape(log_probs)[0], tf.shape(log_probs)[1]
    n_units = log_probs.shape[-1] - 1
    beams, tried = beam_width, min(CANDIDATE_UNITS, n_units)
    n_context = tables.order - 1 if tables is not None else 0
    boundary = tables.boundary if tables is not None else 0

    def per_beam(value, dtype):
        return tf.fill(tf.stack([batch, beams]), tf.constant(value, dtype))

    only_empty = tf.constant([0.0] + [NEG] * (beams - 1))  # the empty prefix, probability 1
    state = {
        "pb": tf.tile(only_empty[None], tf.stack([batch, 1])),  # ends in a blank
        "pnb": per_beam(NEG, tf.float32),  # ends in its last unit
        "lm": per_beam(0.0, tf.float32),
        "length": per_beam(0, tf.int32),
        "last": per_beam(0, tf.int32),
        "hash": per_beam(0, tf.int64),
        "context": tf.fill(tf.stack([batch, beams, n_context]), tf.constant(boundary, tf.int64)),
    }
    if pattern is not None:
        state["state"] = per_beam(0, tf.int32)  # the pattern's state after the prefix
    # Back-pointers, one pair a frame: the beam each beam came from, and the unit it added (0:
    # none). The readings are traced back once at the end, rather than carried and copied whole
    # at every frame.
    trail = tf.TensorArray(tf.int32, size=frames, element_shape=tf.TensorShape([None, beams]))
    added = tf.TensorArray(tf.int32, size=frames, element_shape=tf.TensorShape([None, beams]))
    stay = tf.tile(tf.range(beams)[None], tf.stack([batch, 1]))

    def step(t, s, trail, added):
        y = log_probs[:, t, :]
        total = _logaddexp(s["pb"], s["pnb"])
        alive = total > NEG / 2
        stay_pb = total + y[:, :1]
        stay_pnb = tf.where(s["last"] > 0, s["pnb"] + tf.gather(y, s["last"], batch_dims=1), NEG)
        # Extensions by the frame's most probable units (within a pattern, of those each prefix's
        # state takes).
        if pattern is None:
            y_units, units = tf.math.top_k(y[:, 1:], tried)
            y_units, units = y_units[:, None, :], units[:, None, :]
        else:
            moves = tf.gather(pattern[0], s["state"])  # (batch, beams, n_classes)
            y_units, units = tf.math.top_k(tf.where(moves[..., 1:] >= 0, y[:, None, 1:], NEG), tried)
        units = units + 1  # (batch, beams or 1, tried)
        same = s["last"][:, :, None] == units
        ext = tf.where(same, s["pb"][:, :, None], total[:, :, None]) + y_units
        ext = tf.where(alive[:, :, None], ext, NEG)
        units = tf.broadcast_to(units, tf.shape(ext))
        units64 = tf.cast(units, tf.int64)
        ext_hash = s["hash"][:, :, None] * 1_000_003 + units64 + 1
        # An extension that is already a beam adds to that beam (prefixes are unique).
        match = (
            (ext_hash[:, :, :, None] == s["hash"][:, None, None, :])
            & ((s["length"] + 1)[:, :, None, None] == s["length"][:, None, None, :])
            & alive[:, None, None, :]
        )
        merged = tf.reduce_logsumexp(tf.where(match, ext[..., None], NEG), axis=[1, 2])
        stay_pnb = _logaddexp(stay_pnb, tf.where(tf.reduce_any(match, axis=[1, 2]), merged, NEG))
        ext = tf.where(tf.reduce_any(match, axis=-1), NEG, ext)
        length = tf.cast(s["length"], tf.float32)
        stay_score = _logaddexp(stay_pb, stay_pnb) + lm_weight * s["lm"] + length_bonus * length
        # The new unit's language-model term is a log-probability (at most 0): an extension
        # scoring under every staying prefix without it cannot be kept, so the tables are only
        # read for the others (most of them, at a frame the network is sure of).
        bound = ext + lm_weight * s["lm"][:, :, None] + length_bonus * (length + 1)[:, :, None]
        floor = tf.reduce_min(stay_score, axis=1) - PRUNE_MARGIN
        wanted = (bound >= floor[:, None, None]) & (ext > NEG / 2)
        where = tf.where(wanted)
        if tables is None:
            ext_lm = tf.broadcast_to(s["lm"][:, :, None], tf.shape(ext))
        else:
            new_lm = tf.scatter_nd(
                where,
                tables.log_prob(tf.gather_nd(s["context"], where[:, :2]), tf.gather_nd(units64, where)),
                tf.shape(ext_hash, out_type=tf.int64),
            )
            ext_lm = s["lm"][:, :, None] + new_lm
        ext_score = tf.where(wanted, ext + lm_weight * ext_lm + length_bonus * (length + 1)[:, :, None], NEG)
        scores = tf.concat([stay_score, tf.reshape(ext_score, tf.stack([batch, beams * tried]))], axis=1)
        _, chosen = tf.math.top_k(scores, beams)
        is_ext = chosen >= beams
        flat = tf.maximum(chosen - beams, 0)
        source = tf.where(is_ext, flat // tried, chosen)

        def pick(x):
            return tf.gather(x, source, batch_dims=1)

        def pick_ext(x):
            return tf.gather(tf.reshape(x, tf.stack([batch, beams * tried])), flat, batch_dims=1)

        unit = tf.where(is_ext, pick_ext(units), 0)

        new_context = pick(s["context"])
        if n_context:
            shifted = tf.concat([new_context[..., 1:], tf.cast(unit, tf.int64)[..., None]], axis=-1)
            new_context = tf.where(is_ext[..., None], shifted, new_context)
        position = pick(s["length"])
        new = {
            "pb": tf.where(is_ext, NEG, pick(stay_pb)),
            "pnb": tf.where(is_ext, pick_ext(ext), pick(stay_pnb)),
            "lm": tf.where(is_ext, pick_ext(ext_lm), pick(s["lm"])),
            "length": position + tf.cast(is_ext, tf.int32),
            "last": tf.where(is_ext, unit, pick(s["last"])),
            "hash": tf.where(is_ext, pick_ext(ext_hash), pick(s["hash"])),
            "context": new_context,
        }
        if pattern is not None:
            new["state"] = tf.where(is_ext, pick_ext(tf.gather(moves, units, batch_dims=2)), pick(s["state"]))
        running = t < lengths  # a line past its own frames keeps its beams
        # One mask per rank of the state (static): a few ops a frame rather than a few per tensor.
        masks = {rank: tf.reshape(running, [-1] + [1] * (rank - 1)) for rank in {v.shape.rank for v in new.values()}}
        trail = trail.write(t, tf.where(masks[2], source, stay))
        added = added.write(t, tf.where(masks[2] & is_ext, unit, 0))
        return t + 1, {k: tf.where(masks[v.shape.rank], v, s[k]) for k, v in new.items()}, trail, added

    _, state, trail, added = tf.while_loop(lambda t, *_: t < frames, step, (tf.constant(0), state, trail, added))
    ctc = _logaddexp(state["pb"], state["pnb"])
    ends = 0.0
    if tables is not None:
        ends = tables.log_prob(state["context"], tf.fill(tf.shape(state["hash"]), tf.constant(boundary, tf.int64)))
    final = ctc + lm_weight * (state["lm"] + ends) + length_bonus * tf.cast(state["length"], tf.float32)
    readable = ctc > NEG / 2
    if pattern is not None:
        readable &= tf.gather(pattern[1], state["state"])
    final = tf.where(readable, final, NEG)
    _, best = tf.math.top_k(final, top_paths)
    codes = _trace_back(trail.stack(), added.stack(), best)  # (batch, top_paths, frames)
    longest = tf.maximum(tf.reduce_max(tf.gather(state["length"], best, batch_dims=1)), 0)
    scores = tf.gather(ctc, best, batch_dims=1)
    if pattern is not None:  # a reading that does not match has no place in the list
        scores = tf.where(tf.gather(readable, best, batch_dims=1), scores, NEG)
    return tf.transpose(codes[:, :, :longest], [1, 0, 2]), scores


def _trace_back(trail: tf.Tensor, added: tf.Tensor, best: tf.Tensor) -> tf.Tensor:
    """The units of the beams ``best`` (``int32[batch, k]``), followed back through the
    back-pointers (``trail``, ``added``: ``int32[frames, batch, beams]``): ``int32[batch, k, frames]``,
    each reading's units first, then -1."""
    frames = tf.shape(trail)[0]

    def back(t, beam, out):
        unit = tf.gather(added[t], beam, batch_dims=1)
        return t - 1, tf.gather(trail[t], beam, batch_dims=1), out.write(t, unit)

    out = tf.TensorArray(tf.int32, size=frames, element_shape=best.shape)
    _, _, out = tf.while_loop(lambda t, *_: t >= 0, back, (frames - 1, best, out))
    units = tf.transpose(out.stack(), [1, 2, 0])  # (batch, k, frames)
    # The units in their order, packed to the front (a stable sort of "no unit").
    order = tf.argsort(tf.cast(units == 0, tf.int32), axis=-1, stable=True)
    packed = tf.gather(units, order, batch_dims=2)
    return tf.where(packed > 0, packed, -1)


_BUILT: dict = {}


def build_lm(params, lm_text: str | os.PathLike | None = None, order: int | None = None) -> tuple[CharNgram, str]:
    """The language model ``params`` asks for: of ``order`` (default ``lm_order``), trained on
    ``lm_text`` (default ``params.lm_text``, else the labels of ``csv_files_train``), with a
    line that names its source. Built once per process for the same files and settings.

    Raises:
        ValueError: no source text is readable, or none of it is in the alphabet.
    """
    text = lm_text or params.lm_text
    sources = [str(text)] if text else [str(f) for f in params.train_csv_files]
    order = order or params.lm_order or 6
    missing = [f for f in sources if not Path(f).is_file()]
    if missing:
        raise ValueError(f"{missing[0]}: no such file to train the language model on; give a text file (--lm-text)")
    key = (
        tuple(sources), tuple(os.stat(f).st_mtime_ns for f in sources), order,
        tuple(sorted(params.alphabet.lookup.items())), params.unicode_normalization,
    )  # fmt: skip
    if key not in _BUILT:
        sequences = sequences_from_text(text, params) if text else sequences_from_csvs(sources, params)
        if not sequences:
            raise ValueError(f"{', '.join(sources)}: no line in the alphabet to train the language model on")
        _BUILT.clear()
        _BUILT[key] = train_ngram(sequences, params.alphabet.n_classes - 1, order)
    return _BUILT[key], ", ".join(sources)


def sequences_from_csvs(csv_files: Sequence[str | os.PathLike], params) -> list[list[int]]:
    """The label codes of data CSVs' rows whose every unit is in ``params.alphabet``, in display
    order (the order the search reads: ``data.direction``)."""
    lookup = params.alphabet.lookup
    out = []
    for csv_file in csv_files:
        for _, _, label in read_csv_rows(csv_file, params.csv_delimiter):
            units = [
                normalize(u, params.unicode_normalization)
                for u in split_label(label or "", params.string_split_delimiter)
            ]
            units, _ = reorder(units, BASES[params.text_direction])
            if units and all(u in lookup for u in units):
                out.append([lookup[u] for u in units])
    return out


def read_text_file(text_file: str | os.PathLike) -> str:
    """A text file in UTF-8 (with or without a BOM) or UTF-16 (with its BOM).

    Raises:
        ValueError: another encoding; the message names the file and how to convert it.
    """
    data = Path(text_file).read_bytes()
    try:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            return data.decode("utf-16")
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{text_file}: not UTF-8 text (byte {data[error.start]:#04x} at offset {error.start}); convert it, "
            f"e.g. iconv -f latin1 -t utf-8 {text_file} > text-utf8.txt"
        ) from None


def sequences_from_text(text_file: str | os.PathLike, params) -> list[list[int]]:
    """The lines of a text file as code sequences: each line in display order (``data.direction``)
    split into the alphabet's units (longest first), characters outside them dropped."""
    lookup = params.alphabet.lookup
    longest = max((len(u) for u in lookup), default=1)
    out = []
    for line in read_text_file(text_file).splitlines():
        line = reorder_text(normalize(line.strip(), params.unicode_normalization), BASES[params.text_direction])
        codes, i = [], 0
        while i < len(line):
            size = next((n for n in range(min(longest, len(line) - i), 0, -1) if line[i : i + n] in lookup), 0)
            if size:
                codes.append(lookup[line[i : i + size]])
            i += max(size, 1)
        if codes:
            out.append(codes)
    return out


__all__ = [
    "LM_FILENAME",
    "CharNgram",
    "NgramTables",
    "build_lm",
    "lm_beam_search",
    "load_lm",
    "read_text_file",
    "sequences_from_csvs",
    "sequences_from_text",
    "train_ngram",
]
