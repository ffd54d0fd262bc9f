"""The ``codethread`` suite's JavaScript tasks (Node): functions and a stdin program."""

from __future__ import annotations

from bot.eval.data.harness import js_tests, task
from bot.eval.suites import Task

__all__ = ["TASKS"]

CAMEL_CASE = task(
    "javascript",
    "camel-case",
    prompt="write a javascript function toCamelCase(text) that turns 'hello world', "
    "'foo-bar_baz' or 'Some Title Here' into camelCase ('helloWorld', 'fooBarBaz', "
    "'someTitleHere')",
    tests=js_tests("""
const { toCamelCase } = load('toCamelCase');

test('the examples', () => {
  assert.equal(toCamelCase('hello world'), 'helloWorld');
  assert.equal(toCamelCase('foo-bar_baz'), 'fooBarBaz');
  assert.equal(toCamelCase('Some Title Here'), 'someTitleHere');
});

test('separators in a row and at the ends', () => {
  assert.equal(toCamelCase('  leading and trailing  '), 'leadingAndTrailing');
  assert.equal(toCamelCase('multiple---dashes'), 'multipleDashes');
});

test('one word and none', () => {
  assert.equal(toCamelCase('word'), 'word');
  assert.equal(toCamelCase(''), '');
});
"""),
    reference="""\
function toCamelCase(text) {
  const words = text.split(/[^A-Za-z0-9]+/).filter(Boolean);
  return words
    .map((word, i) => {
      const lower = word.toLowerCase();
      return i === 0 ? lower : lower[0].toUpperCase() + lower.slice(1);
    })
    .join('');
}

module.exports = { toCamelCase };
""",
)

GROUP_BY = task(
    "javascript",
    "group-by",
    prompt="JS function groupBy(items, keyFn) that returns an object mapping each key to the "
    "array of items with that key, in their original order",
    adjust=("let the second argument also be a property name, e.g. groupBy(users, 'role')",),
    tests=js_tests("""
const { groupBy } = load('groupBy');

test('groups by a function, keeping order', () => {
  const got = groupBy([1, 2, 3, 4, 5], (n) => (n % 2 ? 'odd' : 'even'));
  assert.deepEqual({ ...got }, { odd: [1, 3, 5], even: [2, 4] });
});

test('nothing to group', () => {
  assert.deepEqual({ ...groupBy([], (x) => x) }, {});
});

test('groups by a property name', () => {
  const users = [
    { name: 'ann', role: 'admin' },
    { name: 'bob', role: 'user' },
    { name: 'cy', role: 'admin' },
  ];
  const got = groupBy(users, 'role');
  assert.deepEqual({ ...got }, { admin: [users[0], users[2]], user: [users[1]] });
});
"""),
    first="""\
function groupBy(items, keyFn) {
  const groups = {};
  for (const item of items) {
    const key = keyFn(item);
    (groups[key] ||= []).push(item);
  }
  return groups;
}

module.exports = { groupBy };
""",
    reference="""\
function groupBy(items, key) {
  const keyOf = typeof key === 'function' ? key : (item) => item[key];
  const groups = {};
  for (const item of items) {
    (groups[keyOf(item)] ||= []).push(item);
  }
  return groups;
}

module.exports = { groupBy };
""",
)

DEEP_EQUAL = task(
    "javascript",
    "deep-equal",
    prompt="write deepEqual(a, b) in JavaScript: true when two values are structurally equal — "
    "primitives, arrays and plain objects, nested to any depth",
    tests=js_tests("""
const { deepEqual } = load('deepEqual');

test('primitives', () => {
  assert.equal(deepEqual(1, 1), true);
  assert.equal(deepEqual('a', 'a'), true);
  assert.equal(deepEqual(1, '1'), false);
  assert.equal(deepEqual(null, null), true);
  assert.equal(deepEqual(null, {}), false);
  assert.equal(deepEqual({}, null), false);
});

test('nested objects and arrays', () => {
  assert.equal(deepEqual({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] }), true);
  assert.equal(deepEqual({ a: [1, { b: 2 }] }, { a: [1, { b: 3 }] }), false);
  assert.equal(deepEqual({ a: 1, b: 2 }, { b: 2, a: 1 }), true);
});

test('different shapes', () => {
  assert.equal(deepEqual([1, 2], [2, 1]), false);
  assert.equal(deepEqual([1, 2], [1, 2, 3]), false);
  assert.equal(deepEqual({ a: 1 }, { a: 1, b: 2 }), false);
  assert.equal(deepEqual({ a: 1, b: 2 }, { a: 1 }), false);
});
"""),
    reference="""\
function deepEqual(a, b) {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  const has = (key) => Object.prototype.hasOwnProperty.call(b, key);
  return keys.every((key) => has(key) && deepEqual(a[key], b[key]));
}

module.exports = { deepEqual };
""",
)

PARSE_QUERY = task(
    "javascript",
    "parse-query",
    prompt="node function parseQuery(query) that parses a URL query string like "
    "'?a=1&b=hello%20world' into an object {a: '1', b: 'hello world'}",
    adjust=(
        "a key that appears more than once should give an array of all its values in order, and "
        "an empty string (or just '?') should give {}",
    ),
    tests=js_tests("""
const { parseQuery } = load('parseQuery');

test('the example', () => {
  assert.deepEqual({ ...parseQuery('?a=1&b=hello%20world') }, { a: '1', b: 'hello world' });
});

test('without the question mark', () => {
  assert.deepEqual({ ...parseQuery('x=1&y=2') }, { x: '1', y: '2' });
});

test('repeated keys give arrays', () => {
  assert.deepEqual({ ...parseQuery('tag=a&tag=b&tag=c&q=1') }, { tag: ['a', 'b', 'c'], q: '1' });
});

test('nothing gives an empty object', () => {
  assert.deepEqual({ ...parseQuery('') }, {});
  assert.deepEqual({ ...parseQuery('?') }, {});
});
"""),
    first="""\
function parseQuery(query) {
  const result = {};
  for (const part of query.replace(/^\\?/, '').split('&')) {
    const [key, value = ''] = part.split('=');
    result[decodeURIComponent(key)] = decodeURIComponent(value);
  }
  return result;
}

module.exports = { parseQuery };
""",
    reference="""\
function parseQuery(query) {
  const result = {};
  const text = query.startsWith('?') ? query.slice(1) : query;
  for (const part of text.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const key = decodeURIComponent(eq < 0 ? part : part.slice(0, eq));
    const value = eq < 0 ? '' : decodeURIComponent(part.slice(eq + 1));
    if (Object.prototype.hasOwnProperty.call(result, key)) {
      result[key] = [].concat(result[key], value);
    } else {
      result[key] = value;
    }
  }
  return result;
}

module.exports = { parseQuery };
""",
)

FORMAT_BYTES = task(
    "javascript",
    "format-bytes",
    prompt="javascript function formatBytes(bytes) for file sizes: 0 -> '0 B', 1536 -> '1.5 KB', "
    "1048576 -> '1 MB'. Use 1024 steps, B/KB/MB/GB/TB, at most one decimal, and no trailing .0",
    tests=js_tests("""
const { formatBytes } = load('formatBytes');

test('bytes', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(500), '500 B');
  assert.equal(formatBytes(1023), '1023 B');
});

test('larger units', () => {
  assert.equal(formatBytes(1024), '1 KB');
  assert.equal(formatBytes(1536), '1.5 KB');
  assert.equal(formatBytes(1048576), '1 MB');
  assert.equal(formatBytes(2576980378), '2.4 GB');
  assert.equal(formatBytes(1099511627776), '1 TB');
});
"""),
    reference="""\
function formatBytes(bytes) {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${Number(value.toFixed(1))} ${units[unit]}`;
}

module.exports = { formatBytes };
""",
)

REVERSE_LINES = task(
    "javascript",
    "reverse-lines",
    prompt="node script that reads text from stdin and prints its lines in reverse order",
    adjust=("skip empty lines, and print nothing at all for empty input",),
    tests=js_tests("""
function reversed(input) {
  const run = runSnippet(input);
  assert.equal(run.status, 0, run.stderr);
  return run.stdout;
}

test('lines in reverse order', () => {
  assert.equal(reversed('a\\nb\\nc\\n').trimEnd(), 'c\\nb\\na');
  assert.equal(reversed('one\\ntwo').trimEnd(), 'two\\none');
});

test('empty lines are skipped', () => {
  assert.equal(reversed('a\\n\\nb\\n\\n').trimEnd(), 'b\\na');
});

test('empty input prints nothing', () => {
  assert.equal(reversed(''), '');
});
"""),
    first="""\
const input = require('fs').readFileSync(0, 'utf8');
const lines = input.split('\\n');
if (lines[lines.length - 1] === '') lines.pop();
console.log(lines.reverse().join('\\n'));
""",
    reference="""\
const input = require('fs').readFileSync(0, 'utf8');
const lines = input.split('\\n').filter((line) => line !== '');
if (lines.length) console.log(lines.reverse().join('\\n'));
""",
)

RANGE = task(
    "javascript",
    "range",
    prompt="write range(start, stop, step) in JavaScript that works like Python's range and "
    "returns an array; range(5) alone should give [0, 1, 2, 3, 4], and step can be negative",
    tests=js_tests("""
const { range } = load('range');

test('one, two and three arguments', () => {
  assert.deepEqual(range(5), [0, 1, 2, 3, 4]);
  assert.deepEqual(range(2, 5), [2, 3, 4]);
  assert.deepEqual(range(0, 10, 3), [0, 3, 6, 9]);
});

test('negative steps', () => {
  assert.deepEqual(range(5, 0, -1), [5, 4, 3, 2, 1]);
  assert.deepEqual(range(10, 0, -4), [10, 6, 2]);
});

test('empty ranges', () => {
  assert.deepEqual(range(0), []);
  assert.deepEqual(range(3, 3), []);
  assert.deepEqual(range(0, 5, -1), []);
});

test('a zero step is an error, as in Python', () => {
  assert.throws(() => range(0, 5, 0));
});
"""),
    reference="""\
function range(start, stop, step = 1) {
  if (stop === undefined) {
    stop = start;
    start = 0;
  }
  if (step === 0) throw new RangeError('range() step must not be zero');
  const result = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) result.push(i);
  return result;
}

module.exports = { range };
""",
)

MEMOIZE = task(
    "javascript",
    "memoize",
    prompt="javascript memoize(fn) that returns a function caching results by its arguments, so "
    "calling it again with the same arguments doesn't call fn again",
    tests=js_tests("""
const { memoize } = load('memoize');

test('calls fn once per distinct arguments', () => {
  let calls = 0;
  const add = memoize((a, b) => {
    calls += 1;
    return a + b;
  });
  assert.equal(add(1, 2), 3);
  assert.equal(add(1, 2), 3);
  assert.equal(calls, 1);
  assert.equal(add(2, 1), 3);
  assert.equal(calls, 2);
});

test('arguments of different types are different', () => {
  let calls = 0;
  const kind = memoize((x) => {
    calls += 1;
    return typeof x;
  });
  assert.equal(kind(1), 'number');
  assert.equal(kind('1'), 'string');
  assert.equal(calls, 2);
});

test('no arguments', () => {
  let calls = 0;
  const once = memoize(() => ++calls);
  assert.equal(once(), 1);
  assert.equal(once(), 1);
});
"""),
    reference="""\
function memoize(fn) {
  const cache = new Map();
  return function (...args) {
    const key = JSON.stringify(args);
    if (!cache.has(key)) cache.set(key, fn.apply(this, args));
    return cache.get(key);
  };
}

module.exports = { memoize };
""",
)

TASKS: tuple[Task, ...] = (
    CAMEL_CASE,
    GROUP_BY,
    DEEP_EQUAL,
    PARSE_QUERY,
    FORMAT_BYTES,
    REVERSE_LINES,
    RANGE,
    MEMOIZE,
)
