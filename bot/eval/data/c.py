"""The ``codethread`` suite's C tasks: functions with a stated signature, checked by a driver."""

from __future__ import annotations

from bot.eval.data.harness import c_tests, task
from bot.eval.suites import Task

__all__ = ["TASKS"]

REVERSE_WORDS = task(
    "c",
    "reverse-words",
    prompt="C function void reverse_words(char *s) that reverses the order of the words in a "
    'string in place, e.g. "the quick brown fox" becomes "fox brown quick the". Words are '
    "separated by single spaces",
    tests=c_tests("""
char a[] = "the quick brown fox";
reverse_words(a);
CHECK_STR(a, "fox brown quick the");
char b[] = "hello";
reverse_words(b);
CHECK_STR(b, "hello");
char c[] = "a b";
reverse_words(c);
CHECK_STR(c, "b a");
char d[] = "";
reverse_words(d);
CHECK_STR(d, "");
"""),
    reference="""\
#include <string.h>

static void reverse(char *start, char *end) {
    while (start < end) {
        char t = *start;
        *start++ = *--end;
        *end = t;
    }
}

void reverse_words(char *s) {
    size_t n = strlen(s);
    reverse(s, s + n);
    char *word = s;
    for (char *p = s;; p++) {
        if (*p == ' ' || *p == '\\0') {
            reverse(word, p);
            if (*p == '\\0') break;
            word = p + 1;
        }
    }
}
""",
)

IS_PALINDROME = task(
    "c",
    "is-palindrome",
    prompt="write int is_palindrome(const char *s) in C: returns 1 when s reads the same "
    "backwards, ignoring case and anything that isn't a letter or digit (\"A man, a plan, a "
    'canal: Panama" is one), else 0',
    adjust=(
        "NULL should return 0, and an empty string or one with only punctuation counts as a "
        "palindrome (1)",
    ),
    tests=c_tests("""
CHECK(is_palindrome("A man, a plan, a canal: Panama") == 1, "the example is one");
CHECK(is_palindrome("racecar") == 1, "racecar is one");
CHECK(is_palindrome("No 'x' in Nixon") == 1, "mixed case and punctuation");
CHECK(is_palindrome("hello") == 0, "hello is not");
CHECK(is_palindrome("ab") == 0, "ab is not");
CHECK(is_palindrome("0P") == 0, "digits count: 0P is not");
CHECK(is_palindrome("") == 1, "the empty string is one");
CHECK(is_palindrome("!!") == 1, "only punctuation is one");
CHECK(is_palindrome(NULL) == 0, "NULL is not");
"""),
    first="""\
#include <ctype.h>
#include <string.h>

int is_palindrome(const char *s) {
    size_t i = 0, j = strlen(s);
    while (i < j) {
        if (!isalnum((unsigned char)s[i])) { i++; continue; }
        if (!isalnum((unsigned char)s[j - 1])) { j--; continue; }
        if (tolower((unsigned char)s[i]) != tolower((unsigned char)s[j - 1])) return 0;
        i++;
        j--;
    }
    return 1;
}
""",
    reference="""\
#include <ctype.h>
#include <string.h>

int is_palindrome(const char *s) {
    if (s == NULL) return 0;
    size_t i = 0, j = strlen(s);
    while (i < j) {
        if (!isalnum((unsigned char)s[i])) { i++; continue; }
        if (!isalnum((unsigned char)s[j - 1])) { j--; continue; }
        if (tolower((unsigned char)s[i]) != tolower((unsigned char)s[j - 1])) return 0;
        i++;
        j--;
    }
    return 1;
}
""",
)

PARSE_INT = task(
    "c",
    "parse-int",
    prompt="C function int parse_int(const char *s, int *out) that parses a whole string as a "
    "decimal int (optional leading + or -). Return 0 and store the value in *out on success; "
    "return -1 without touching *out when the string is empty, has anything else in it, or "
    "doesn't fit in an int",
    tests=c_tests("""
const char *good[] = {"42", "-17", "+5", "0", "2147483647", "-2147483648"};
const int want[] = {42, -17, 5, 0, 2147483647, -2147483647 - 1};
for (int i = 0; i < 6; i++) {
  int value = 12345;
  CHECK(parse_int(good[i], &value) == 0 && value == want[i], "\\"%s\\" gave %d", good[i], value);
}
const char *bad[] = {"", "12a", " 12", "-", "+", "2147483648", "-2147483649",
                     "99999999999999999999", "1 2"};
for (int i = 0; i < 9; i++) {
  int value = 12345;
  CHECK(parse_int(bad[i], &value) == -1, "\\"%s\\" was accepted", bad[i]);
  CHECK(value == 12345, "\\"%s\\" changed *out to %d", bad[i], value);
}
"""),
    reference="""\
#include <limits.h>

int parse_int(const char *s, int *out) {
    int negative = 0;
    if (*s == '+' || *s == '-') negative = *s++ == '-';
    if (*s == '\\0') return -1;
    long long value = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        value = value * 10 + (*s - '0');
        if (value > (long long)INT_MAX + 1) return -1;
    }
    if (negative) value = -value;
    if (value < INT_MIN || value > INT_MAX) return -1;
    *out = (int)value;
    return 0;
}
""",
)

VECTOR = task(
    "c",
    "vec",
    prompt="I need a growable int array in C: typedef struct { int *data; size_t len, cap; } vec; "
    "with void vec_init(vec *v), int vec_push(vec *v, int x) (0 on success, -1 if out of "
    "memory), int vec_get(const vec *v, size_t i, int *out) (0, or -1 when i is out of range), "
    "void vec_free(vec *v)",
    tests=c_tests("""
vec v;
vec_init(&v);
CHECK(v.len == 0, "a new vec has len %zu", v.len);
int value = -1;
CHECK(vec_get(&v, 0, &value) == -1, "index 0 of an empty vec was found");
for (int i = 0; i < 1000; i++) {
  CHECK(vec_push(&v, i * 3) == 0, "push %d failed", i);
}
CHECK(v.len == 1000, "len is %zu after 1000 pushes", v.len);
int wrong = 0;
for (size_t i = 0; i < 1000; i++) {
  if (vec_get(&v, i, &value) != 0 || value != (int)i * 3) wrong++;
}
CHECK(wrong == 0, "%d of 1000 values came back wrong", wrong);
CHECK(vec_get(&v, 1000, &value) == -1, "index 1000 of 1000 was found");
vec_free(&v);
vec_init(&v);
CHECK(vec_push(&v, 7) == 0 && vec_get(&v, 0, &value) == 0 && value == 7, "reuse after free");
vec_free(&v);
"""),
    reference="""\
#include <stdlib.h>

typedef struct {
    int *data;
    size_t len, cap;
} vec;

void vec_init(vec *v) {
    v->data = NULL;
    v->len = v->cap = 0;
}

int vec_push(vec *v, int x) {
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        int *data = realloc(v->data, cap * sizeof *data);
        if (data == NULL) return -1;
        v->data = data;
        v->cap = cap;
    }
    v->data[v->len++] = x;
    return 0;
}

int vec_get(const vec *v, size_t i, int *out) {
    if (i >= v->len) return -1;
    *out = v->data[i];
    return 0;
}

void vec_free(vec *v) {
    free(v->data);
    vec_init(v);
}
""",
)

COUNT_WORDS = task(
    "c",
    "count-words",
    prompt="write size_t count_words(const char *s) in C that counts the words in a string, where "
    "words are separated by any amount of whitespace (spaces, tabs, newlines)",
    adjust=("handle NULL and empty strings: both have 0 words",),
    tests=c_tests("""
CHECK(count_words("hello world") == 2, "got %zu", count_words("hello world"));
CHECK(count_words("  leading and trailing  ") == 3, "got %zu",
      count_words("  leading and trailing  "));
CHECK(count_words("tabs\\tand\\nnewlines") == 3, "got %zu", count_words("tabs\\tand\\nnewlines"));
CHECK(count_words("one") == 1, "got %zu", count_words("one"));
CHECK(count_words("   ") == 0, "got %zu", count_words("   "));
CHECK(count_words("") == 0, "got %zu", count_words(""));
CHECK(count_words(NULL) == 0, "NULL gave %zu", count_words(NULL));
"""),
    first="""\
#include <ctype.h>
#include <stddef.h>

size_t count_words(const char *s) {
    size_t words = 0;
    int inside = 0;
    for (; *s; s++) {
        if (isspace((unsigned char)*s)) {
            inside = 0;
        } else if (!inside) {
            inside = 1;
            words++;
        }
    }
    return words;
}
""",
    reference="""\
#include <ctype.h>
#include <stddef.h>

size_t count_words(const char *s) {
    size_t words = 0;
    int inside = 0;
    if (s == NULL) return 0;
    for (; *s; s++) {
        if (isspace((unsigned char)*s)) {
            inside = 0;
        } else if (!inside) {
            inside = 1;
            words++;
        }
    }
    return words;
}
""",
)

RUN_LENGTH = task(
    "c",
    "rle",
    prompt="C function char *rle_encode(const char *s) that returns a newly malloc'ed run-length "
    'encoding of s: each run becomes the character followed by its count, so "aaabccdddd" gives '
    '"a3b1c2d4". The caller frees it',
    tests=c_tests("""
const char *in[] = {"aaabccdddd", "", "a", "aaaaaaaaaaaa", "abc"};
const char *want[] = {"a3b1c2d4", "", "a1", "a12", "a1b1c1"};
for (int i = 0; i < 5; i++) {
  char *got = rle_encode(in[i]);
  CHECK_STR(got, want[i]);
  free(got);
}
char long_run[1001];
memset(long_run, 'x', 1000);
long_run[1000] = '\\0';
char *got = rle_encode(long_run);
CHECK_STR(got, "x1000");
free(got);
"""),
    reference="""\
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *rle_encode(const char *s) {
    size_t n = strlen(s);
    char *out = malloc(n * 21 + 1);
    if (out == NULL) return NULL;
    char *p = out;
    for (size_t i = 0; i < n;) {
        size_t run = 1;
        while (i + run < n && s[i + run] == s[i]) run++;
        p += sprintf(p, "%c%zu", s[i], run);
        i += run;
    }
    *p = '\\0';
    return out;
}
""",
)

TASKS: tuple[Task, ...] = (
    REVERSE_WORDS,
    IS_PALINDROME,
    PARSE_INT,
    VECTOR,
    COUNT_WORDS,
    RUN_LENGTH,
)
