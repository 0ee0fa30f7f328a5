"""Spelling correction for keyword search: a word of a search that no product title or
category name holds is replaced by the nearest word that one does, when one is near enough.

Trigram similarity (the search's last resort) compares a word with whole titles, and a
typo in a short word falls below any useful threshold: "sneeker" against "Everyday
Sneakers" has a word similarity of 0.375. An edit distance against the catalogue's own
words does not care how long the title is: "sneeker" is two edits from "sneakers", "ankel"
one from "ankle" (a swap of two neighbours counts as one edit).

The catalogue's words are read once per process and kept for :data:`VOCABULARY_SECONDS`: a
new product's words are offered a few minutes late, which a suggestion can afford, and the
read (one pass over at most :data:`TITLES_READ` titles) is not repeated for every misspelt
search. Work per search is bounded: at most :data:`MAX_VOCABULARY` words are kept, and a
word is compared only with words of its first letter and of a length within the edits
allowed.
"""

import re
import threading
import time
from collections import defaultdict

from django.db import connection

from .models import Category, Product

#: How long a process keeps the catalogue's words.
VOCABULARY_SECONDS = 300
#: The most titles read: a larger catalogue's words are read from a sample of its pages.
TITLES_READ = 50_000
#: The most words kept (the most frequent), so a huge catalogue costs bounded memory.
MAX_VOCABULARY = 50_000
#: Shorter words are left alone, and never offered ("or" belongs to the search's syntax;
#: two-letter typos have too many neighbours to guess from).
SHORTEST_CORRECTED = 3
#: Longer words are left alone: nothing in a catalogue is spelt like that.
LONGEST_CORRECTED = 30

_WORD = re.compile(r"[^\W\d_]+")
_lock = threading.Lock()
_cache = {"read_at": None, "words": None}


def allowed_edits(word):
    """Edits a correction of ``word`` may make: one in a short word, two in a longer one."""
    return 1 if len(word) <= 4 else 2


def distance(a, b, limit):
    """The optimal string alignment distance between ``a`` and ``b`` (insertions,
    deletions, substitutions, and swaps of two neighbours, each one edit), or ``limit + 1``
    as soon as it must exceed ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    before, previous = None, list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = ca != cb
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], before[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        before, previous = previous, current
    return previous[-1]


class Vocabulary:
    """The catalogue's words with how many titles hold each, grouped for look-ups.

    A hyphenated word ("T-shirt") is kept whole and looked up without its hyphens, so that
    ``tshirt`` finds it; its parts count as known words too."""

    def __init__(self, counts):
        self.counts = counts
        self.known = set()
        self.by_start = defaultdict(list)
        for word in counts:
            key = word.replace("-", "")
            self.known.update(word.split("-"))
            if len(key) >= SHORTEST_CORRECTED:
                self.by_start[key[0]].append((key, word))

    def nearest(self, word):
        """The catalogue word nearest to ``word`` (lower case) within its allowed edits,
        the most frequent of equally near ones; ``None`` if none is near enough."""
        limit = allowed_edits(word)
        best, best_key = None, None
        for key, candidate in self.by_start.get(word[0], ()):
            edits = distance(word, key, limit)
            if edits <= limit:
                rank = (edits, -self.counts[candidate], candidate)
                if best_key is None or rank < best_key:
                    best, best_key = candidate, rank
        return best


def _read_vocabulary():
    """Words of active products' titles (of a sample of :data:`TITLES_READ` of them in a
    larger catalogue: a word worth offering is common enough to be in it) and of category
    names, hyphenated ones whole, the most frequent first."""
    products = connection.ops.quote_name(Product._meta.db_table)
    categories = connection.ops.quote_name(Category._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [products])
        rows = (cursor.fetchone() or [0])[0]
        sample = ""
        if rows > TITLES_READ:
            sample = f"TABLESAMPLE SYSTEM ({100.0 * TITLES_READ / rows:.6f})"
        cursor.execute(
            f"""
            SELECT word, count(*) FROM (
                SELECT trim('-' FROM part) AS word FROM (
                    SELECT regexp_split_to_table(lower(title), '[^[:alpha:]-]+') AS part
                    FROM {products} {sample} WHERE is_active
                    UNION ALL
                    SELECT regexp_split_to_table(lower(name), '[^[:alpha:]-]+')
                    FROM {categories}
                ) AS parts
            ) AS words
            WHERE word <> '' GROUP BY word ORDER BY count(*) DESC, word LIMIT %s
            """,
            [MAX_VOCABULARY],
        )
        return Vocabulary(dict(cursor.fetchall()))


def vocabulary():
    """This process's copy of the catalogue's words, read again after
    :data:`VOCABULARY_SECONDS`."""
    now = time.monotonic()
    with _lock:
        read_at, words = _cache["read_at"], _cache["words"]
    if words is None or now - read_at > VOCABULARY_SECONDS:
        words = _read_vocabulary()
        if words.counts:  # a catalogue still loading is read again next time
            with _lock:
                _cache.update(read_at=now, words=words)
    return words


def forget():
    """Drop this process's copy (tests, or after loading a catalogue)."""
    with _lock:
        _cache.update(read_at=None, words=None)


def corrected(query):
    """``query`` with each word that the catalogue does not hold replaced by its nearest
    catalogue word, the rest (quotes, ``-``, ``or``, numbers) kept; ``None`` when no word
    was replaced."""
    words = None
    changed = False

    def replace(match):
        nonlocal words, changed
        word = match.group(0).lower()
        if not SHORTEST_CORRECTED <= len(word) <= LONGEST_CORRECTED or word == "or":
            return match.group(0)
        words = words or vocabulary()
        if word in words.known:
            return match.group(0)
        nearest = words.nearest(word)
        if nearest is None:
            return match.group(0)
        changed = True
        return nearest

    result = _WORD.sub(replace, query)
    return result if changed else None
