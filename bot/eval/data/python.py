"""The ``codethread`` suite's Python tasks: functions and small stdin programs."""

from __future__ import annotations

from bot.eval.data.harness import task
from bot.eval.suites import Task

__all__ = ["TASKS"]


# A program's tests run it as the user would: python3 snippet.py < input.
_RUN = """\
import subprocess
import sys


def run(stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "snippet.py"], input=stdin, capture_output=True, text=True, timeout=4
    )
"""

SLUGIFY = task(
    "python",
    "slugify",
    prompt="write a python function slugify(title) that turns a blog post title into a URL "
    "slug: lowercase, words separated by single hyphens, punctuation removed. e.g. "
    "'Hello, World!' -> 'hello-world'",
    adjust=("accented letters should become plain ones (é → e, ü → u) instead of disappearing",),
    tests="""\
import unittest

from snippet import slugify


class SlugifyTest(unittest.TestCase):
    def test_example(self):
        self.assertEqual(slugify("Hello, World!"), "hello-world")

    def test_spaces_collapse(self):
        self.assertEqual(slugify("  Many   spaces  here "), "many-spaces-here")

    def test_digits_stay(self):
        self.assertEqual(slugify("Top 10 tips"), "top-10-tips")

    def test_already_a_slug(self):
        self.assertEqual(slugify("already-a-slug"), "already-a-slug")

    def test_accents_become_plain(self):
        self.assertEqual(slugify("Crème brûlée"), "creme-brulee")
        self.assertEqual(slugify("Über cool"), "uber-cool")

    def test_empty(self):
        self.assertEqual(slugify(""), "")
""",
    first="""\
import re


def slugify(title):
    return "-".join(re.findall(r"[a-z0-9]+", title.lower()))
""",
    reference="""\
import re
import unicodedata


def slugify(title):
    plain = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    return "-".join(re.findall(r"[a-z0-9]+", plain.lower()))
""",
)

PARSE_DURATION = task(
    "python",
    "parse-duration",
    prompt="I need a Python function parse_duration(text) that turns durations like '1h30m', "
    "'45s', '2h' or '1h5m10s' into the number of seconds as an int",
    adjust=(
        "now raise ValueError for anything that isn't a valid duration, including an empty "
        "string, unknown units like '10x' and a number without a unit",
    ),
    tests="""\
import unittest

from snippet import parse_duration


class ParseDurationTest(unittest.TestCase):
    def test_examples(self):
        self.assertEqual(parse_duration("1h30m"), 5400)
        self.assertEqual(parse_duration("45s"), 45)
        self.assertEqual(parse_duration("2h"), 7200)
        self.assertEqual(parse_duration("1h5m10s"), 3910)
        self.assertEqual(parse_duration("90m"), 5400)

    def test_an_int(self):
        self.assertIsInstance(parse_duration("2m"), int)

    def test_invalid(self):
        for text in ("", "10x", "15", "h", "abc", "1h30"):
            with self.subTest(text=text), self.assertRaises(ValueError):
                parse_duration(text)
""",
    first="""\
import re

UNITS = {"h": 3600, "m": 60, "s": 1}


def parse_duration(text):
    return sum(int(n) * UNITS[u] for n, u in re.findall(r"(\\d+)([hms])", text))
""",
    reference="""\
import re

UNITS = {"h": 3600, "m": 60, "s": 1}


def parse_duration(text):
    text = text.strip()
    if not re.fullmatch(r"(?:\\d+[hms])+", text):
        raise ValueError(f"not a duration: {text!r}")
    return sum(int(n) * UNITS[u] for n, u in re.findall(r"(\\d+)([hms])", text))
""",
)

CSV_SUM = task(
    "python",
    "csv-sum",
    prompt="write a python script that reads a CSV file from stdin (first row is the header) and "
    "prints the sum of the column called amount",
    adjust=(
        "handle empty input: when there's nothing on stdin at all, print 0 instead of crashing",
    ),
    tests=_RUN
    + """
import unittest


class CsvSumTest(unittest.TestCase):
    def total(self, stdin):
        done = run(stdin)
        self.assertEqual(done.returncode, 0, done.stderr)
        return float(done.stdout.strip())

    def test_sum(self):
        self.assertAlmostEqual(self.total("name,amount\\na,10\\nb,2.5\\n"), 12.5)

    def test_column_by_name_and_quoted_commas(self):
        data = 'name,note,amount\\n"Smith, J","x, y",3\\nDoe,,4.5\\n'
        self.assertAlmostEqual(self.total(data), 7.5)

    def test_header_only(self):
        self.assertAlmostEqual(self.total("name,amount\\n"), 0)

    def test_empty_input(self):
        self.assertAlmostEqual(self.total(""), 0)
""",
    first="""\
import csv
import sys

reader = csv.reader(sys.stdin)
header = next(reader)
column = header.index("amount")
print(f"{sum(float(row[column]) for row in reader if row):g}")
""",
    reference="""\
import csv
import sys

reader = csv.reader(sys.stdin)
header = next(reader, None)
if header is None:
    print(0)
else:
    column = header.index("amount")
    print(f"{sum(float(row[column]) for row in reader if row):g}")
""",
)

TOP_WORDS = task(
    "python",
    "top-words",
    prompt="python function top_words(text, n) that returns the n most common words in text as a "
    "list of (word, count) tuples, most common first. Words are case-insensitive and "
    "punctuation doesn't count; break ties alphabetically",
    tests="""\
import unittest

from snippet import top_words

TEXT = "The cat and the hat. The END, the end!"


class TopWordsTest(unittest.TestCase):
    def test_most_common_first_ties_alphabetical(self):
        got = [tuple(pair) for pair in top_words(TEXT, 3)]
        self.assertEqual(got, [("the", 4), ("end", 2), ("and", 1)])

    def test_more_than_there_are(self):
        got = [tuple(pair) for pair in top_words("b a b", 10)]
        self.assertEqual(got, [("b", 2), ("a", 1)])

    def test_none(self):
        self.assertEqual(list(top_words(TEXT, 0)), [])
        self.assertEqual(list(top_words("", 3)), [])
""",
    reference="""\
import re
from collections import Counter


def top_words(text, n):
    counts = Counter(re.findall(r"[^\\W_]+", text.lower()))
    return sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))[:n]
""",
)

MERGE_INTERVALS = task(
    "python",
    "merge-intervals",
    prompt="write merge_intervals(intervals) in python: takes a list of (start, end) tuples and "
    "merges the overlapping ones, returning a sorted list of tuples. e.g. "
    "[(1, 3), (2, 6), (8, 10)] -> [(1, 6), (8, 10)]",
    adjust=(
        "intervals that only touch, like (1, 2) and (2, 3), should be merged too, and an empty "
        "list should give an empty list",
    ),
    tests="""\
import unittest

from snippet import merge_intervals


def merged(intervals):
    return [tuple(pair) for pair in merge_intervals(intervals)]


class MergeIntervalsTest(unittest.TestCase):
    def test_example(self):
        self.assertEqual(merged([(1, 3), (2, 6), (8, 10)]), [(1, 6), (8, 10)])

    def test_any_order(self):
        self.assertEqual(merged([(8, 10), (1, 3), (2, 6)]), [(1, 6), (8, 10)])

    def test_contained(self):
        self.assertEqual(merged([(1, 10), (2, 3)]), [(1, 10)])

    def test_touching_merge(self):
        self.assertEqual(merged([(1, 2), (2, 3), (5, 6)]), [(1, 3), (5, 6)])

    def test_empty_and_single(self):
        self.assertEqual(merged([]), [])
        self.assertEqual(merged([(4, 7)]), [(4, 7)])
""",
    first="""\
def merge_intervals(intervals):
    intervals = sorted(intervals)
    merged = [intervals[0]]
    for start, end in intervals[1:]:
        last_start, last_end = merged[-1]
        if start < last_end:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged
""",
    reference="""\
def merge_intervals(intervals):
    merged = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
""",
)

FLATTEN = task(
    "python",
    "flatten",
    prompt="python function flatten(items) that flattens arbitrarily nested lists into one flat "
    "list, like [1, [2, [3, 4]], 5] -> [1, 2, 3, 4, 5]",
    adjust=(
        "tuples inside should be flattened like lists, but strings must stay whole (don't split "
        "them into characters)",
    ),
    tests="""\
import unittest

from snippet import flatten


class FlattenTest(unittest.TestCase):
    def test_example(self):
        self.assertEqual(list(flatten([1, [2, [3, 4]], 5])), [1, 2, 3, 4, 5])

    def test_deep_and_empty(self):
        self.assertEqual(list(flatten([[[[1]]], []])), [1])
        self.assertEqual(list(flatten([])), [])

    def test_tuples_flatten(self):
        self.assertEqual(list(flatten([1, (2, 3), [4, (5,)]])), [1, 2, 3, 4, 5])

    def test_strings_stay_whole(self):
        self.assertEqual(list(flatten(["ab", ["cd", ("e", ["f"])]])), ["ab", "cd", "e", "f"])
""",
    first="""\
def flatten(items):
    flat = []
    for item in items:
        if isinstance(item, list):
            flat.extend(flatten(item))
        else:
            flat.append(item)
    return flat
""",
    reference="""\
def flatten(items):
    flat = []
    for item in items:
        if isinstance(item, (list, tuple)):
            flat.extend(flatten(item))
        else:
            flat.append(item)
    return flat
""",
)

ROMAN = task(
    "python",
    "roman",
    prompt="write two python functions: to_roman(n) converting 1..3999 to a roman numeral "
    "string, and from_roman(s) converting back",
    tests="""\
import unittest

from snippet import from_roman, to_roman

KNOWN = {1: "I", 4: "IV", 9: "IX", 14: "XIV", 40: "XL", 90: "XC", 400: "CD", 1994: "MCMXCIV",
         2024: "MMXXIV", 3999: "MMMCMXCIX"}


class RomanTest(unittest.TestCase):
    def test_known(self):
        for number, numeral in KNOWN.items():
            with self.subTest(number=number):
                self.assertEqual(to_roman(number), numeral)
                self.assertEqual(from_roman(numeral), number)

    def test_round_trip(self):
        for number in range(1, 4000):
            self.assertEqual(from_roman(to_roman(number)), number)
""",
    reference="""\
VALUES = [(1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
          (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")]


def to_roman(n):
    parts = []
    for value, numeral in VALUES:
        count, n = divmod(n, value)
        parts.append(numeral * count)
    return "".join(parts)


def from_roman(s):
    single = {numeral: value for value, numeral in VALUES if len(numeral) == 1}
    total = 0
    for i, char in enumerate(s):
        value = single[char]
        if i + 1 < len(s) and single[s[i + 1]] > value:
            total -= value
        else:
            total += value
    return total
""",
)

CHUNKED = task(
    "python",
    "chunked",
    prompt="I want a python generator chunked(iterable, size) that yields lists of up to size "
    "items from any iterable (the last one can be shorter). size below 1 should raise "
    "ValueError",
    tests="""\
import itertools
import unittest

from snippet import chunked


class ChunkedTest(unittest.TestCase):
    def test_last_shorter(self):
        self.assertEqual(list(chunked(range(7), 3)), [[0, 1, 2], [3, 4, 5], [6]])

    def test_exact(self):
        self.assertEqual(list(chunked("abcd", 2)), [["a", "b"], ["c", "d"]])

    def test_any_iterable_and_empty(self):
        self.assertEqual(list(chunked(iter([1, 2, 3]), 5)), [[1, 2, 3]])
        self.assertEqual(list(chunked([], 3)), [])

    def test_lazy(self):
        self.assertEqual(next(iter(chunked(itertools.count(), 2))), [0, 1])

    def test_bad_size(self):
        for size in (0, -1):
            with self.subTest(size=size), self.assertRaises(ValueError):
                list(chunked([1, 2], size))
""",
    reference="""\
from itertools import islice


def chunked(iterable, size):
    if size < 1:
        raise ValueError("size must be at least 1")
    iterator = iter(iterable)
    while chunk := list(islice(iterator, size)):
        yield chunk
""",
)

RETRY = task(
    "python",
    "retry",
    prompt="write a python decorator retry(times) that calls the decorated function again when "
    "it raises an exception, up to `times` attempts in total, and re-raises the last exception "
    "if all attempts fail",
    tests="""\
import unittest

from snippet import retry


class RetryTest(unittest.TestCase):
    def test_succeeds_after_failures(self):
        calls = []

        @retry(3)
        def flaky(x, y=0):
            calls.append(x)
            if len(calls) < 3:
                raise ConnectionError("not yet")
            return x + y

        self.assertEqual(flaky(2, y=5), 7)
        self.assertEqual(len(calls), 3)

    def test_gives_up_and_reraises(self):
        calls = []

        @retry(2)
        def broken():
            calls.append(1)
            raise KeyError(len(calls))

        with self.assertRaises(KeyError) as caught:
            broken()
        self.assertEqual(len(calls), 2)
        self.assertEqual(caught.exception.args, (2,))

    def test_no_retry_on_success(self):
        calls = []

        @retry(5)
        def fine():
            calls.append(1)
            return "ok"

        self.assertEqual(fine(), "ok")
        self.assertEqual(len(calls), 1)
""",
    reference="""\
import functools


def retry(times):
    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            for attempt in range(times):
                try:
                    return function(*args, **kwargs)
                except Exception:
                    if attempt == times - 1:
                        raise
        return wrapper
    return decorate
""",
)

LRU_CACHE = task(
    "python",
    "lru-cache",
    prompt="python class LRUCache(capacity) with get(key) returning the value or None when "
    "missing, and put(key, value); when full, putting a new key evicts the least recently used "
    "one (get counts as a use)",
    tests="""\
import unittest

from snippet import LRUCache


class LRUCacheTest(unittest.TestCase):
    def test_evicts_least_recently_used(self):
        cache = LRUCache(2)
        cache.put("a", 1)
        cache.put("b", 2)
        self.assertEqual(cache.get("a"), 1)  # b is now the least recently used
        cache.put("c", 3)
        self.assertIsNone(cache.get("b"))
        self.assertEqual(cache.get("a"), 1)
        self.assertEqual(cache.get("c"), 3)

    def test_put_updates_and_counts_as_use(self):
        cache = LRUCache(2)
        cache.put("a", 1)
        cache.put("b", 2)
        cache.put("a", 10)
        cache.put("c", 3)
        self.assertEqual(cache.get("a"), 10)
        self.assertIsNone(cache.get("b"))

    def test_missing(self):
        self.assertIsNone(LRUCache(1).get("nope"))
""",
    reference="""\
from collections import OrderedDict


class LRUCache:
    def __init__(self, capacity):
        self.capacity = capacity
        self.items = OrderedDict()

    def get(self, key):
        if key not in self.items:
            return None
        self.items.move_to_end(key)
        return self.items[key]

    def put(self, key, value):
        self.items[key] = value
        self.items.move_to_end(key)
        if len(self.items) > self.capacity:
            self.items.popitem(last=False)
""",
)

JSON_USERS = task(
    "python",
    "json-users",
    prompt="python script: read JSON objects from stdin, one per line, and print how many "
    'distinct values the field "user" has',
    adjust=(
        "some lines are blank or not valid JSON, skip those instead of crashing (and objects "
        "without a user field too)",
    ),
    tests=_RUN
    + """
import unittest


class JsonUsersTest(unittest.TestCase):
    def count(self, stdin):
        done = run(stdin)
        self.assertEqual(done.returncode, 0, done.stderr)
        return done.stdout.strip()

    def test_distinct(self):
        lines = '{"user": "ann", "n": 1}\\n{"user": "bob"}\\n{"user": "ann"}\\n'
        self.assertEqual(self.count(lines), "2")

    def test_skips_bad_lines(self):
        lines = '{"user": "ann"}\\n\\nnot json\\n{"other": 1}\\n{"user": "cy"}\\n'
        self.assertEqual(self.count(lines), "2")

    def test_empty(self):
        self.assertEqual(self.count(""), "0")
""",
    first="""\
import json
import sys

print(len({json.loads(line)["user"] for line in sys.stdin}))
""",
    reference="""\
import json
import sys

users = set()
for line in sys.stdin:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        continue
    if isinstance(record, dict) and "user" in record:
        users.add(record["user"])
print(len(users))
""",
)

TASKS: tuple[Task, ...] = (
    SLUGIFY,
    PARSE_DURATION,
    CSV_SUM,
    TOP_WORDS,
    MERGE_INTERVALS,
    FLATTEN,
    ROMAN,
    CHUNKED,
    RETRY,
    LRU_CACHE,
    JSON_USERS,
)
