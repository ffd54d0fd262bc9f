"""The judges' shared parts: how each language's tests reach the version under test.

- Python: a ``unittest`` module beside ``snippet.py`` (the sandbox's test runner); a program
  is run as the user would, ``python3 snippet.py`` with input on stdin.
- JavaScript: a ``node:test`` file beside ``snippet.js``. :data:`JS_PRELUDE`'s ``load`` finds
  the functions whether the snippet exports them (CommonJS ``module.exports`` or ESM
  ``export``) or only defines them: the prompts do not name a module system, and a chat user
  would accept any of these.
- Bash: a Bash driver runs the version, ``candidate.sh``, as a script with arguments and
  stdin, and compares what it prints (:data:`BASH_PRELUDE`).
- C: a driver that includes the version, ``candidate.c``, with its ``main`` renamed (a demo
  ``main`` is welcome), and checks its functions (:data:`C_PRELUDE`).

Every driver says what it expected and what it got: that text is what a repair round shows
the model, as Fix shows a chat user's failed tests.
"""

from __future__ import annotations

from bot.eval.suites import Task

__all__ = ["BASH_FILE", "C_FILE", "bash_tests", "c_tests", "js_tests", "task"]

#: where the version lies beside a Bash or C driver
BASH_FILE = "candidate.sh"
C_FILE = "candidate.c"

#: the id prefix of each language's tasks
_PREFIX = {"python": "py", "javascript": "js", "bash": "sh", "c": "c"}
#: where a driver finds the version; other languages' tests lie beside it as unit tests
_CODE_FILE = {"bash": BASH_FILE, "c": C_FILE}


def task(
    language: str,
    name: str,
    *,
    prompt: str,
    tests: str,
    reference: str,
    adjust: tuple[str, ...] = (),
    first: str | None = None,
) -> Task:
    """A ``codethread`` task: its id is the language's prefix and ``name`` (``py-slugify``)."""
    return Task(
        suite="codethread",
        id=f"{_PREFIX[language]}-{name}",
        language=language,
        prompt=prompt,
        adjust=adjust,
        tests=tests,
        code_file=_CODE_FILE.get(language),
        reference=reference,
        first=first,
    )


JS_PRELUDE = """\
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const Module = require('node:module');
const { spawnSync } = require('node:child_process');

// The snippet's functions by name: its exports, else what it defines at the top level.
function load(...names) {
  const file = path.resolve('snippet.js');
  let source = fs.readFileSync(file, 'utf8');
  source = source.replace(/^export\\s+default\\s+(?=(async\\s+)?(function|class)\\b)/gm, '');
  source = source.replace(/^export\\s+(?=(async\\s+)?(function|class|const|let|var)\\b)/gm, '');
  source = source.replace(/^export\\s*\\{[^}]*\\};?/gm, '');
  const grab = names
    .map((n) => `${JSON.stringify(n)}: typeof ${n} === 'undefined' ? undefined : ${n}`)
    .join(', ');
  const loaded = new Module(file, module);
  loaded.filename = file;
  loaded.paths = Module._nodeModulePaths(path.dirname(file));
  loaded._compile(`${source}\\n;module.exports.__defined = {${grab}};\\n`, file);
  const exported = loaded.exports;
  const found = {};
  for (const name of names) {
    found[name] =
      (exported && exported[name]) ??
      (typeof exported === 'function' && exported.name === name ? exported : undefined) ??
      exported.__defined[name];
    assert.equal(typeof found[name], 'function', `snippet.js defines no function ${name}`);
  }
  return found;
}

// snippet.js as a program, the way the user runs it: node snippet.js ARGS < input
function runSnippet(input, ...args) {
  const run = spawnSync(process.execPath, ['snippet.js', ...args], {
    input, encoding: 'utf8', timeout: 4000,
  });
  return { stdout: run.stdout, stderr: run.stderr, status: run.status };
}
"""

BASH_PRELUDE = f"""\
#!/bin/bash
# The judge: runs the version ({BASH_FILE}) and compares what it prints.
CANDIDATE="$PWD/{BASH_FILE}"
fails=0
input=""

# check NAME EXPECTED [ARGS...]: the script, given ARGS and $input on stdin, prints EXPECTED
check() {{
  local name=$1 expected=$2 actual status
  shift 2
  actual=$(printf '%s' "$input" | bash "$CANDIDATE" "$@" 2>/tmp/judge-stderr)
  status=$?
  if [[ "$actual" != "$expected" ]]; then
    fails=$((fails + 1))
    printf 'FAIL %s: with arguments (%s) and stdin %q\\n' "$name" "$*" "$input"
    printf '  expected stdout:\\n%s\\n' "$expected"
    printf '  got (exit status %d):\\n%s\\n' "$status" "$actual"
    printf '  stderr:\\n%s\\n' "$(cat /tmp/judge-stderr)"
  fi
}}

# check_status NAME STATUS [ARGS...]: the script exits with STATUS and writes to stderr
check_status() {{
  local name=$1 expected=$2 status
  shift 2
  printf '%s' "$input" | bash "$CANDIDATE" "$@" >/tmp/judge-stdout 2>/tmp/judge-stderr
  status=$?
  if [[ "$status" != "$expected" || ! -s /tmp/judge-stderr ]]; then
    fails=$((fails + 1))
    printf 'FAIL %s: with arguments (%s): expected exit status %s and a message on stderr\\n' \\
      "$name" "$*" "$expected"
    printf '  got exit status %d, stdout:\\n%s\\n  stderr:\\n%s\\n' "$status" \\
      "$(cat /tmp/judge-stdout)" "$(cat /tmp/judge-stderr)"
  fi
}}

# fail NAME MESSAGE: a check the driver made itself
fail() {{
  fails=$((fails + 1))
  printf 'FAIL %s: %s\\n' "$1" "$2"
}}

finish() {{
  if ((fails)); then
    printf '%d check(s) failed\\n' "$fails"
    exit 1
  fi
  echo "all checks passed"
}}
"""

C_PRELUDE = f"""\
/* The judge: the version ({C_FILE}) with its main renamed, and checks of its functions. */
#define main candidate_main
#include "{C_FILE}"
#undef main
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond, ...) do {{ \\
    if (!(cond)) {{ \\
      failures++; \\
      printf("FAIL line %d: %s: ", __LINE__, #cond); \\
      printf(__VA_ARGS__); \\
      printf("\\n"); \\
    }} \\
  }} while (0)

#define CHECK_STR(got, want) do {{ \\
    const char *g_ = (got), *w_ = (want); \\
    CHECK(g_ != NULL && strcmp(g_, w_) == 0, "expected \\"%s\\", got \\"%s\\"", w_, \\
          g_ ? g_ : "(null)"); \\
  }} while (0)

static int finish(void) {{
  if (failures) {{
    printf("%d check(s) failed\\n", failures);
    return 1;
  }}
  printf("all checks passed\\n");
  return 0;
}}
"""


def js_tests(body: str) -> str:
    """A ``node:test`` file: :data:`JS_PRELUDE` (``load``, ``runSnippet``), then ``body``."""
    return f"{JS_PRELUDE}\n{body.strip()}\n"


def bash_tests(body: str) -> str:
    """A Bash driver: :data:`BASH_PRELUDE` (``check``, ``check_status``, ``fail``), ``body``,
    then ``finish`` (exit 1 when a check failed)."""
    return f"{BASH_PRELUDE}\n{body.strip()}\n\nfinish\n"


def c_tests(body: str) -> str:
    """A C driver: :data:`C_PRELUDE` (``CHECK``, ``CHECK_STR``), then ``int main(void)`` made
    of ``body`` and ``return finish();``."""
    lines = "\n".join(f"  {line}" if line else "" for line in body.strip().splitlines())
    return (
        f"{C_PRELUDE}\nint main(void) {{\n"
        "  setvbuf(stdout, NULL, _IONBF, 0); /* what was printed survives a crash */\n"
        f"{lines}\n  return finish();\n}}\n"
    )
