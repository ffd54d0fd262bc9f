"""The ``codethread`` suite's Bash tasks: scripts run with arguments, stdin and scratch files."""

from __future__ import annotations

from bot.eval.data.harness import bash_tests, task
from bot.eval.suites import Task

__all__ = ["TASKS"]

SUM_COLUMN = task(
    "bash",
    "sum-column",
    prompt="bash script that reads lines of whitespace-separated numbers from stdin and prints "
    "the sum of the second column",
    adjust=("handle empty input (print 0) and skip lines that have fewer than two columns",),
    tests=bash_tests("""
input=$'1 2\\n3 4\\n'
check "two lines" 6
input=$'a\\t10\\nb    5\\n'
check "tabs and runs of spaces" 15
input=$'x 1.5\\ny 2.25\\n'
check "decimals" 3.75
input=$'5\\n1 2\\n'
check "a line with one column" 2
input=""
check "empty input" 0
"""),
    first="""\
#!/bin/bash
awk '{ sum += $2 } END { print sum }'
""",
    reference="""\
#!/bin/bash
awk 'NF >= 2 { sum += $2 } END { print sum + 0 }'
""",
)

COUNT_EXTENSIONS = task(
    "bash",
    "count-ext",
    prompt="write a bash script that takes a directory as its argument and prints how many "
    "files there are per extension, one 'extension count' line each, sorted by extension. Files "
    "without an extension don't count, and don't go into subdirectories",
    adjust=(
        "if the directory doesn't exist, print an error to stderr and exit with status 1; for "
        "an empty directory print nothing",
    ),
    tests=bash_tests("""
dir=$(mktemp -d)
mkdir "$dir/files" "$dir/files/sub" "$dir/empty"
touch "$dir/files/a.txt" "$dir/files/b.txt" "$dir/files/my notes.txt" "$dir/files/c.md" \\
  "$dir/files/README" "$dir/files/sub/d.txt" "$dir/files/data.csv"
check "per extension" $'csv 1\\nmd 1\\ntxt 3' "$dir/files"
check "empty directory" "" "$dir/empty"
check_status "missing directory" 1 "$dir/missing"
"""),
    first="""\
#!/bin/bash
dir=$1
for file in "$dir"/*; do
  [ -f "$file" ] || continue
  name=$(basename "$file")
  case $name in *.*) echo "${name##*.}" ;; esac
done | sort | uniq -c | awk '{ print $2, $1 }'
""",
    reference="""\
#!/bin/bash
dir=$1
if [ ! -d "$dir" ]; then
  echo "not a directory: $dir" >&2
  exit 1
fi
for file in "$dir"/*; do
  [ -f "$file" ] || continue
  name=$(basename "$file")
  case $name in *.*) echo "${name##*.}" ;; esac
done | sort | uniq -c | awk '{ print $2, $1 }'
""",
)

UNIQUE_WORDS = task(
    "bash",
    "unique-words",
    prompt="bash: read text from stdin and print every distinct word once, lowercased, in the "
    "order they first appear. Words are runs of letters",
    tests=bash_tests("""
input=$'The cat saw the Cat.\\nA dog!\\n'
check "first appearance, lowercased" $'the\\ncat\\nsaw\\na\\ndog'
input=$'abc123def abc\\n'
check "digits separate words" $'abc\\ndef'
input=""
check "empty input" ""
"""),
    reference="""\
#!/bin/bash
tr -cs '[:alpha:]' '\\n' | tr '[:upper:]' '[:lower:]' | awk 'NF && !seen[$0]++'
""",
)

LOG_ERRORS = task(
    "bash",
    "log-errors",
    prompt="I have a log where each line starts with a timestamp like '2024-05-01 13:45:12' "
    "followed by a level (INFO, WARN, ERROR) and a message. Write a bash script that takes the "
    "log file as its argument and prints how many ERROR lines there are per hour, as "
    "'2024-05-01 13:00 N' lines in time order",
    tests=bash_tests("""
log=$(mktemp)
cat >"$log" <<'LOG'
2024-05-01 13:05:00 INFO started
2024-05-01 13:45:12 ERROR disk full
2024-05-01 13:59:59 ERROR disk still full
2024-05-01 14:00:01 INFO retrying after ERROR
2024-05-01 14:10:00 WARN slow
2024-05-01 15:30:00 ERROR timeout
2024-05-02 09:00:00 ERROR next day
LOG
check "errors per hour" $'2024-05-01 13:00 2\\n2024-05-01 15:00 1\\n2024-05-02 09:00 1' "$log"
quiet=$(mktemp)
echo "2024-05-01 10:00:00 INFO nothing wrong" >"$quiet"
check "no errors" "" "$quiet"
"""),
    reference="""\
#!/bin/bash
awk '$3 == "ERROR" { split($2, t, ":"); print $1, t[1] ":00" }' "$1" |
  sort | uniq -c | awk '{ print $2, $3, $1 }'
""",
)

BACKUP = task(
    "bash",
    "backup",
    prompt="write a bash script that makes a backup copy of the file given as its argument: copy "
    "it to FILE.bak, or if that exists to FILE.bak.1, FILE.bak.2 and so on, never overwriting "
    "anything, and print the name of the copy",
    adjust=("when the file doesn't exist, say so on stderr and exit 1 without creating anything",),
    tests=bash_tests("""
cd "$(mktemp -d)" || exit 1
echo "hello" >notes.txt
check "first backup" "notes.txt.bak" notes.txt
check "second backup" "notes.txt.bak.1" notes.txt
check "third backup" "notes.txt.bak.2" notes.txt
for copy in notes.txt.bak notes.txt.bak.1 notes.txt.bak.2; do
  [[ "$(cat "$copy" 2>/dev/null)" == "hello" ]] || fail "copy $copy" "does not hold the file's text"
done
check_status "missing file" 1 missing.txt
[[ -e missing.txt.bak ]] && fail "missing file" "a backup of a missing file was created"
"""),
    first="""\
#!/bin/bash
file=$1
backup="$file.bak"
n=1
while [ -e "$backup" ]; do
  backup="$file.bak.$n"
  n=$((n + 1))
done
cp -- "$file" "$backup"
echo "$backup"
""",
    reference="""\
#!/bin/bash
file=$1
if [ ! -f "$file" ]; then
  echo "no such file: $file" >&2
  exit 1
fi
backup="$file.bak"
n=1
while [ -e "$backup" ]; do
  backup="$file.bak.$n"
  n=$((n + 1))
done
cp -- "$file" "$backup"
echo "$backup"
""",
)

LOWERCASE_NAMES = task(
    "bash",
    "lowercase-names",
    prompt="bash script that renames all files in the current directory to lowercase names. If "
    "the lowercase name is already taken by another file, leave that file alone and print a "
    "warning to stderr",
    tests=bash_tests("""
cd "$(mktemp -d)" || exit 1
touch README.TXT Photo.JPG already.txt "My File.TXT"
echo "upper" >Clash.txt
echo "lower" >clash.txt
bash "$CANDIDATE" 2>warnings
want="Clash.txt/already.txt/clash.txt/my file.txt/photo.jpg/readme.txt/warnings/"
got=$(ls | sort | tr '\\n' '/')
[[ "$got" == "$want" ]] || fail "renamed" "the directory holds $got, not $want"
[[ "$(cat clash.txt)" == "lower" ]] || fail "clash" "clash.txt was overwritten"
[[ -s warnings ]] || fail "clash" "no warning on stderr about Clash.txt"
"""),
    reference="""\
#!/bin/bash
for file in *; do
  [ -f "$file" ] || continue
  lower=$(printf '%s' "$file" | tr '[:upper:]' '[:lower:]')
  [ "$file" = "$lower" ] && continue
  if [ -e "$lower" ]; then
    echo "skipping $file: $lower exists" >&2
    continue
  fi
  mv -- "$file" "$lower"
done
""",
)

TASKS: tuple[Task, ...] = (
    SUM_COLUMN,
    COUNT_EXTENSIONS,
    UNIQUE_WORDS,
    LOG_ERRORS,
    BACKUP,
    LOWERCASE_NAMES,
)
