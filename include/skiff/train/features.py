"""Features of both models: vocabularies, intent prefixes, padding, counts, next-item windows.

Sequences are held as :class:`Ragged` integer ids (one flat ``values`` array and
``offsets``), so windowing and padding are vectorised and scale to millions of sessions.

Conventions shared by training and serving:

- index ``0`` is padding (:data:`PAD`), index ``1`` is out-of-vocabulary (:data:`OOV`);
- padded batches are **right**-padded (ids first, then zeros; the cuDNN-friendly layout)
  and, when too long, keep the **most recent** ``max_len`` ids;
- an intent prefix is the session's events up to and including its first add-to-cart,
  plus ``after_add`` further events (the Coveo cart task scores 0, 2, 4, 6, 8, 10).
"""

# Longer than ~400 lines: the two models' features share the Ragged/Vocabulary machinery
# they are built from; the split by model is skiff.train.intent / skiff.train.next_item.

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from skiff.exceptions import DataContractError, SkiffConfigError

__all__ = [
    "PAD",
    "OOV",
    "PAD_TOKEN",
    "OOV_TOKEN",
    "EVENT_TOKENS",
    "COVEO_AFTER_ADD",
    "Ragged",
    "Vocabulary",
    "IntentExamples",
    "NextItemExamples",
    "build_vocabulary",
    "event_vocabulary",
    "prefix_at_add",
    "intent_examples",
    "pad",
    "count_features",
    "SESSION_FEATURES",
    "intent_session_features",
    "first_item_views",
    "next_item_examples",
    "item_counts",
]

PAD = 0  #: index of padding
OOV = 1  #: index of anything not in the vocabulary
PAD_TOKEN = "[PAD]"
OOV_TOKEN = "[OOV]"
#: The event tokens of ``fct_session_sequences.event_tokens``, in funnel order.
EVENT_TOKENS = ("view", "detail", "add", "remove", "purchase")
#: Events after the first add at which the Coveo cart task scores a prediction.
COVEO_AFTER_ADD = (0, 2, 4, 6, 8, 10)


@dataclass(frozen=True)
class Ragged:
    """Variable-length integer sequences: ``values[offsets[i]:offsets[i + 1]]`` is row ``i``.

    :param values: every row's ids, concatenated (int32).
    :param offsets: ``len(self) + 1`` row boundaries into ``values``, from 0 (int64).
    """

    values: np.ndarray
    offsets: np.ndarray

    def __post_init__(self) -> None:
        offsets = np.asarray(self.offsets, dtype=np.int64)
        if offsets.ndim != 1 or len(offsets) == 0 or offsets[0] != 0 \
                or offsets[-1] != len(self.values) or np.any(np.diff(offsets) < 0):
            raise DataContractError(
                f"Ragged offsets must rise from 0 to len(values)={len(self.values)}; "
                f"got {offsets[:3]}..{offsets[-3:]}.")
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "values", np.asarray(self.values, dtype=np.int32))

    @classmethod
    def from_lists(cls, rows: Iterable[Sequence[int]]) -> Ragged:
        """Build from Python lists of ids.

        :param rows: one sequence of ids per row.
        :return: the ragged rows.
        """
        rows = [np.asarray(r, dtype=np.int32).ravel() for r in rows]
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        values = np.concatenate(rows) if rows else np.zeros(0, np.int32)
        return cls(values, np.concatenate([[0], np.cumsum(lengths)]))

    @classmethod
    def from_lengths(cls, values: np.ndarray, lengths: np.ndarray) -> Ragged:
        """Build from flat values and each row's length.

        :param values: the concatenated rows.
        :param lengths: the length of each row.
        :return: the ragged rows.
        """
        return cls(values, np.concatenate([[0], np.cumsum(np.asarray(lengths, np.int64))]))

    @property
    def lengths(self) -> np.ndarray:
        """Length of each row (int64)."""
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i]:self.offsets[i + 1]]

    def take(self, rows: np.ndarray | Sequence[int]) -> Ragged:
        """The given rows, in the given order.

        :param rows: row indices.
        :return: a new :class:`Ragged`.
        """
        rows = np.asarray(rows, dtype=np.int64)
        starts, lengths = self.offsets[rows], self.lengths[rows]
        return Ragged(self.values[_ranges(starts, lengths)],
                      np.concatenate([[0], np.cumsum(lengths)]))

    def head(self, lengths: np.ndarray) -> Ragged:
        """The first ``lengths[i]`` ids of each row ``i`` (clipped to the row's length).

        :param lengths: how many ids to keep per row.
        :return: a new :class:`Ragged`.
        """
        keep = np.minimum(np.maximum(np.asarray(lengths, np.int64), 0), self.lengths)
        return Ragged(self.values[_ranges(self.offsets[:-1], keep)],
                      np.concatenate([[0], np.cumsum(keep)]))

    def tolist(self) -> list[list[int]]:
        """The rows as Python lists.

        :return: one list of ids per row.
        """
        return [self[i].tolist() for i in range(len(self))]


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, s + n)`` for each start ``s`` and length ``n``."""
    lengths = np.asarray(lengths, np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    row_start = np.cumsum(lengths) - lengths
    return np.repeat(np.asarray(starts, np.int64) - row_start, lengths) + np.arange(total)


def _list_parts(sequences: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """Flat values and row lengths of an Arrow list column (null rows are empty)."""
    if isinstance(sequences, pa.ChunkedArray):
        sequences = sequences.combine_chunks()
    if not pa.types.is_list(sequences.type) and not pa.types.is_large_list(sequences.type):
        raise DataContractError(f"Expected a list column, got {sequences.type}.")
    lengths = pc.fill_null(pc.list_value_length(sequences), 0).to_numpy(zero_copy_only=False)
    return pc.list_flatten(sequences), lengths.astype(np.int64)


@dataclass(frozen=True)
class Vocabulary:
    """A token <-> index mapping with padding at 0 and out-of-vocabulary at 1.

    :param tokens: the token of each index; ``tokens[0]`` is :data:`PAD_TOKEN` and
        ``tokens[1]`` is :data:`OOV_TOKEN`.
    """

    tokens: tuple[str, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tokens = tuple(self.tokens)
        if tokens[:2] != (PAD_TOKEN, OOV_TOKEN):
            raise DataContractError(f"A vocabulary starts with {PAD_TOKEN!r}, {OOV_TOKEN!r}; "
                                    f"got {tokens[:2]}.")
        if len(set(tokens)) != len(tokens):
            dup = [t for t, n in Counter(tokens).items() if n > 1][:5]
            raise DataContractError(f"Vocabulary has duplicate tokens: {dup}.")
        object.__setattr__(self, "tokens", tokens)
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(tokens)})

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._index and self._index[token] > OOV  # type: ignore[index]

    def index(self, token: str) -> int:
        """Index of one token (:data:`OOV` when unknown).

        :param token: the token.
        :return: its index.
        """
        return self._index.get(token, OOV)

    def encode(self, sequence: Iterable[str]) -> np.ndarray:
        """Ids of one sequence of tokens (unknown tokens become :data:`OOV`).

        :param sequence: the tokens.
        :return: int32 ids.
        """
        return np.array([self._index.get(t, OOV) for t in sequence], dtype=np.int32)

    def encode_many(self,
                    sequences: pa.Array | pa.ChunkedArray | Iterable[Sequence[str]]) -> Ragged:
        """Ids of many sequences: an Arrow list column (fast path) or Python lists.

        Null tokens and unknown tokens become :data:`OOV`; null rows become empty rows.

        :param sequences: the sequences of tokens.
        :return: one row of ids per sequence.
        """
        if isinstance(sequences, pa.Array | pa.ChunkedArray):
            flat, lengths = _list_parts(sequences)
            found = pc.index_in(flat.cast(pa.string()), value_set=pa.array(self.tokens))
            ids = pc.fill_null(found, OOV).to_numpy(zero_copy_only=False).astype(np.int32)
            ids[ids == PAD] = OOV  # a literal "[PAD]" in the data is not padding
            return Ragged.from_lengths(ids, lengths)
        return Ragged.from_lists(self.encode(s) for s in sequences)

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ids.

        :param ids: indices into the vocabulary.
        :return: the tokens.
        :raises DataContractError: an id is out of range.
        """
        ids = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.tokens)):
            raise DataContractError(f"Ids must be in 0..{len(self.tokens) - 1}; "
                                    f"got {ids.min()}..{ids.max()}.")
        return [self.tokens[i] for i in ids]

    def to_json(self) -> str:
        """The vocabulary as JSON (saved next to an exported model for serving).

        :return: ``{"tokens": [...]}``.
        """
        return json.dumps({"tokens": list(self.tokens)})

    @classmethod
    def from_json(cls, text: str) -> Vocabulary:
        """Read what :meth:`to_json` wrote.

        :param text: the JSON text.
        :return: the vocabulary.
        :raises DataContractError: the text is not a saved vocabulary.
        """
        try:
            return cls(tuple(json.loads(text)["tokens"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise DataContractError(f"Not a saved vocabulary: {text[:80]!r}") from exc


def build_vocabulary(
    sequences: pa.Array | pa.ChunkedArray | Iterable[Sequence[str]],
    *,
    min_count: int = 1,
    max_size: int | None = None,
) -> Vocabulary:
    """A vocabulary of the tokens seen at least ``min_count`` times, most frequent first.

    :param sequences: training sequences: an Arrow list column or Python lists of tokens.
    :param min_count: fewer occurrences than this map to :data:`OOV`.
    :param max_size: cap on the vocabulary size including PAD and OOV; default no cap.
    :return: the vocabulary; ties in frequency are ordered by token, so it is deterministic.
    :raises SkiffConfigError: ``min_count < 1`` or ``max_size < 3``.
    """
    if min_count < 1:
        raise SkiffConfigError(f"min_count={min_count} must be >= 1.")
    if max_size is not None and max_size < 3:
        raise SkiffConfigError(f"max_size={max_size} must be >= 3 (PAD, OOV and one token).")
    if isinstance(sequences, pa.Array | pa.ChunkedArray):
        flat, _ = _list_parts(sequences)
        counted = pc.value_counts(flat.drop_null()).to_pylist()
        counts = {c["values"]: c["counts"] for c in counted}
    else:
        counts = Counter(t for s in sequences for t in s if t is not None)
    for special in (PAD_TOKEN, OOV_TOKEN):
        counts.pop(special, None)
    kept = sorted((t for t, n in counts.items() if n >= min_count), key=lambda t: (-counts[t], t))
    if max_size is not None:
        kept = kept[:max_size - 2]
    return Vocabulary((PAD_TOKEN, OOV_TOKEN, *kept))


def event_vocabulary() -> Vocabulary:
    """The fixed vocabulary of event tokens (:data:`EVENT_TOKENS`), the same for every run.

    :return: PAD, OOV, then ``view, detail, add, remove, purchase``.
    """
    return Vocabulary((PAD_TOKEN, OOV_TOKEN, *EVENT_TOKENS))


def prefix_at_add(
    tokens: Ragged,
    first_add_index: np.ndarray,
    *,
    after_add: int = 0,
    stop_id: int | None = None,
) -> tuple[Ragged, np.ndarray]:
    """The events up to and including the first add, plus ``after_add`` more events.

    A session is kept only if the prefix is a fair question: it has an add
    (``first_add_index >= 1``), at least ``after_add`` events follow the add, and no
    ``stop_id`` event (the purchase token) is inside the prefix. This is the Coveo cart
    task's rule: a session that ends 3 events after its add is not scored at add+4, and a
    purchase session is scored only on prefixes cut before its purchase.

    :param tokens: event-token ids of each session, in event order.
    :param first_add_index: 1-based position of each session's first add (0 or negative: none).
    :param after_add: events after the add to include (``>= 0``).
    :param stop_id: id of the purchase token; prefixes containing it are dropped.
    :return: the prefixes and, for each, the row of ``tokens`` it comes from.
    :raises SkiffConfigError: ``after_add < 0``.
    :raises DataContractError: ``first_add_index`` has the wrong length or points past a row.
    """
    if after_add < 0:
        raise SkiffConfigError(f"after_add={after_add} must be >= 0.")
    index = np.asarray(first_add_index, dtype=np.int64)
    if index.shape != (len(tokens),):
        raise DataContractError(f"first_add_index has shape {index.shape}; "
                                f"expected ({len(tokens)},), one per session.")
    lengths = tokens.lengths
    if np.any(index > lengths):
        row = int(np.flatnonzero(index > lengths)[0])
        raise DataContractError(f"Session row {row}: first add at event {index[row]} but it has "
                                f"only {lengths[row]} events.")
    keep = (index >= 1) & (index + after_add <= lengths)
    prefix_len = np.where(keep, index + after_add, 0)
    prefixes = tokens.head(prefix_len)
    if stop_id is not None:
        has_stop = np.zeros(len(tokens), bool)
        rows = np.repeat(np.arange(len(tokens)), prefixes.lengths)
        has_stop[rows[prefixes.values == stop_id]] = True
        keep &= ~has_stop
    rows = np.flatnonzero(keep)
    return prefixes.take(rows), rows


@dataclass(frozen=True)
class IntentExamples:
    """Intent prefixes with their labels, one per (session, events after the add).

    :param prefixes: event-token ids of each prefix.
    :param labels: 1 if the session ends in a purchase (int8).
    :param session: row of the input session of each prefix.
    :param after_add: events after the add in each prefix.
    """

    prefixes: Ragged
    labels: np.ndarray
    session: np.ndarray
    after_add: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, rows: np.ndarray) -> IntentExamples:
        """A subset of the examples.

        :param rows: example indices.
        :return: the selected examples.
        """
        return IntentExamples(self.prefixes.take(rows), self.labels[rows], self.session[rows],
                              self.after_add[rows])


def intent_examples(
    tokens: Ragged,
    first_add_index: np.ndarray,
    labels: np.ndarray,
    *,
    after_add: Sequence[int] = (0,),
    stop_id: int | None = None,
) -> IntentExamples:
    """Prefixes at the add (and ``k`` events after it) with the session's purchase label.

    Train on several ``after_add`` values to teach the model every stage the cart task
    scores; evaluate on each value separately.

    :param tokens: event-token ids of each session with an add.
    :param first_add_index: 1-based position of each session's first add.
    :param labels: 1 (or True) when the session ends in a purchase.
    :param after_add: the offsets to produce, e.g. :data:`COVEO_AFTER_ADD`.
    :param stop_id: id of the purchase token (see :func:`prefix_at_add`).
    :return: the examples, grouped by offset in the order given.
    :raises DataContractError: ``labels`` has the wrong length.
    """
    labels = np.asarray(labels).astype(np.int8)
    if labels.shape != (len(tokens),):
        raise DataContractError(f"labels has shape {labels.shape}; expected ({len(tokens)},).")
    parts = []
    for k in after_add:
        prefixes, rows = prefix_at_add(tokens, first_add_index, after_add=k, stop_id=stop_id)
        parts.append((prefixes, rows, np.full(len(rows), k, np.int16)))
    prefixes = _concat([p for p, _, _ in parts])
    rows = np.concatenate([r for _, r, _ in parts]) if parts else np.zeros(0, np.int64)
    return IntentExamples(prefixes, labels[rows], rows,
                          np.concatenate([a for _, _, a in parts]) if parts else rows)


def _concat(parts: Sequence[Ragged]) -> Ragged:
    if not parts:
        return Ragged(np.zeros(0, np.int32), np.zeros(1, np.int64))
    return Ragged.from_lengths(np.concatenate([p.values for p in parts]),
                               np.concatenate([p.lengths for p in parts]))


def pad(sequences: Ragged, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded ``(n, max_len)`` ids and mask, keeping each row's last ``max_len`` ids.

    :param sequences: the rows.
    :param max_len: columns of the result (``>= 1``).
    :return: ``(ids, mask)``: int32 ids with :data:`PAD` after each row, and a bool mask
        that is True on real ids.
    :raises SkiffConfigError: ``max_len < 1``.
    """
    if max_len < 1:
        raise SkiffConfigError(f"max_len={max_len} must be >= 1.")
    lengths = np.minimum(sequences.lengths, max_len)
    start = sequences.offsets[1:] - lengths
    cols = np.arange(max_len)
    mask = cols[None, :] < lengths[:, None]
    src = np.where(mask, start[:, None] + cols[None, :], 0)
    values = sequences.values if len(sequences.values) else np.zeros(1, np.int32)
    ids = np.where(mask, values[np.minimum(src, len(values) - 1)], PAD).astype(np.int32)
    return ids, mask


def count_features(sequences: Ragged, vocab_size: int) -> np.ndarray:
    """Count of each token id in each row, then the row's length (the logistic baseline's input).

    :param sequences: token ids, each in ``1..vocab_size - 1``.
    :param vocab_size: size of the vocabulary (PAD included).
    :return: float32 ``(n, vocab_size)``: column ``j - 1`` counts id ``j`` (``j >= 1``; OOV
        is column 0), the last column is the length.
    :raises DataContractError: an id is outside ``1..vocab_size - 1``.
    """
    values = sequences.values
    if values.size and (values.min() < 1 or values.max() >= vocab_size):
        raise DataContractError(f"Token ids must be in 1..{vocab_size - 1}; "
                                f"got {values.min()}..{values.max()}.")
    rows = np.repeat(np.arange(len(sequences)), sequences.lengths)
    out = np.zeros((len(sequences), vocab_size), np.float32)
    np.add.at(out, (rows, values.astype(np.int64) - 1), 1.0)
    out[:, -1] = sequences.lengths
    return out


#: Names of the columns of :func:`intent_session_features`.
SESSION_FEATURES = ("log_seconds_to_add", "log_seconds_per_detail", "first_item_price",
                    "first_item_price_missing", "first_item_views_before_add")


def intent_session_features(
    seconds_to_first_add: np.ndarray,
    details_before_add: np.ndarray,
    first_item_price: np.ndarray,
    first_item_views: np.ndarray,
) -> np.ndarray:
    """Session features known at the first add (see :data:`SESSION_FEATURES`).

    All are known when the add happens, so they are safe for every prefix at or after it:
    the time from the session's start to the add (the dwell), that time per product detail
    view, the price bucket of the session's first product (the one most often added) and
    how many times that product was viewed before the add (repeat views: the engaged
    shopper's signature). Event tokens carry none of them.

    :param seconds_to_first_add: ``(n,)`` seconds from session start to the first add.
    :param details_before_add: ``(n,)`` detail events up to the add.
    :param first_item_price: ``(n,)`` price bucket of the first product, NaN if unknown.
    :param first_item_views: ``(n,)`` views of the first product before the add
        (:func:`first_item_views`).
    :return: float32 ``(n, 5)``; a missing price is 0 with the missing flag 1.
    :raises DataContractError: the inputs differ in length.
    """
    secs = np.maximum(np.asarray(seconds_to_first_add, np.float64), 0.0)
    details = np.maximum(np.asarray(details_before_add, np.float64), 1.0)
    price = np.asarray(first_item_price, np.float64)
    views = np.maximum(np.asarray(first_item_views, np.float64), 0.0)
    if not len(secs) == len(details) == len(price) == len(views):
        raise DataContractError(f"Session feature inputs differ in length: {len(secs)}, "
                                f"{len(details)}, {len(price)}, {len(views)}.")
    missing = ~np.isfinite(price)
    return np.c_[np.log1p(secs), np.log1p(secs / details), np.where(missing, 0.0, price),
                 missing, views].astype(np.float32)


def first_item_views(items: Ragged, within: np.ndarray) -> np.ndarray:
    """How often each row's first id occurs among its first ``within`` ids.

    For intent: ``items`` are a session's SKUs in view order and ``within`` its detail
    events before the add, so this counts the views of the first product before the add
    (an upper bound on the SKUs viewed before it when the mart collapsed repeats).

    :param items: ids of each row.
    :param within: ``(n,)`` ids of each row to look at (clipped to the row's length).
    :return: int64 ``(n,)``; 0 for an empty row or ``within <= 0``.
    :raises DataContractError: ``within`` has the wrong length.
    """
    within = np.asarray(within, np.int64)
    if within.shape != (len(items),):
        raise DataContractError(f"within has shape {within.shape}; expected ({len(items)},).")
    head = items.head(within)
    rows = np.repeat(np.arange(len(head)), head.lengths)
    if not len(rows):
        return np.zeros(len(items), np.int64)
    firsts = head.values[head.offsets[:-1][rows]]
    return np.bincount(rows[head.values == firsts], minlength=len(items)).astype(np.int64)


@dataclass(frozen=True)
class NextItemExamples:
    """(items so far -> next item) examples.

    :param items: ``(n, window)`` right-padded item ids before the target (the last
        ``window`` of them).
    :param first: ``(n,)`` the session's first item (kept even when the window drops it).
    :param target: ``(n,)`` the item that came next.
    :param length: ``(n,)`` items before the target, untruncated (for short/long slices).
    :param session: ``(n,)`` row of the input session.
    """

    items: np.ndarray
    first: np.ndarray
    target: np.ndarray
    length: np.ndarray
    session: np.ndarray

    def __len__(self) -> int:
        return len(self.target)

    def inputs(self) -> dict[str, np.ndarray]:
        """The model inputs, by input name.

        :return: ``{"items": ..., "first": ...}``.
        """
        return {"items": self.items, "first": self.first}

    def take(self, rows: np.ndarray) -> NextItemExamples:
        """A subset of the examples.

        :param rows: example indices.
        :return: the selected examples.
        """
        return NextItemExamples(self.items[rows], self.first[rows], self.target[rows],
                                self.length[rows], self.session[rows])


def next_item_examples(
    sequences: Ragged,
    *,
    window: int = 10,
    positions: str = "all",
    drop_oov_targets: bool = False,
) -> NextItemExamples:
    """Windowed next-item examples from item sequences.

    :param sequences: item ids of each session, in order.
    :param window: how many preceding items the model sees (``>= 1``).
    :param positions: ``"all"``: every item after the first is a target (training, or
        evaluating every position); ``"last"``: only each session's last item, given the
        rest (the held-out evaluation).
    :param drop_oov_targets: drop examples whose target is :data:`OOV` (for training; keep
        them when evaluating so unknown items count as misses).
    :return: the examples, in session order then position order.
    :raises SkiffConfigError: ``window < 1`` or ``positions`` is unknown.
    """
    if window < 1:
        raise SkiffConfigError(f"window={window} must be >= 1.")
    if positions not in ("all", "last"):
        raise SkiffConfigError(f"positions={positions!r}; use 'all' or 'last'.")
    lengths = sequences.lengths
    if positions == "all":
        per_row = np.maximum(lengths - 1, 0)
        session = np.repeat(np.arange(len(sequences)), per_row)
        t = _ranges(np.ones(len(sequences), np.int64), per_row)  # target position in the row
    else:
        session = np.flatnonzero(lengths >= 2)
        t = lengths[session] - 1
    target_at = sequences.offsets[session] + t
    target = sequences.values[target_at]
    if drop_oov_targets:
        keep = target != OOV
        session, t, target_at, target = session[keep], t[keep], target_at[keep], target[keep]
    seen = np.minimum(t, window)
    cols = np.arange(window)
    mask = cols[None, :] < seen[:, None]
    src = np.where(mask, (target_at - seen)[:, None] + cols[None, :], 0)
    items = np.where(mask, sequences.values[src] if len(sequences.values) else 0, PAD)
    first = sequences.values[sequences.offsets[session]] if len(session) \
        else np.zeros(0, np.int32)
    return NextItemExamples(items.astype(np.int32), first.astype(np.int32),
                            target.astype(np.int32), t.astype(np.int64), session)


def item_counts(sequences: Ragged, n_items: int) -> np.ndarray:
    """How often each item id occurs (popularity), PAD and OOV included as ids 0 and 1.

    :param sequences: item ids.
    :param n_items: vocabulary size.
    :return: int64 ``(n_items,)`` counts.
    """
    return np.bincount(sequences.values, minlength=n_items).astype(np.int64)
